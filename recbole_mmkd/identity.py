"""Run identity: which project code a run executes, and digests of it.

A run's config hash (:func:`config_hash`) covers its settings and the source of every project
module it executes: the modules its model class is built from, the run path (preparation,
trainer, metrics, data, teacher artefacts, robustness) and, transitively, every project module
those import. Imports are read from the source (``ast``), function-level ones included, so an
edit to a helper such as ``model/graph.py`` or ``distill/losses.py`` changes the hash of every
model that uses it, and of no other. The model registry loads the built-in models by name
(``importlib``), so the registry's own source is covered but not every model it can load.

The hash also covers the data: :func:`data_digest` of the dataset's files, so a re-imported
or re-split dataset under the same name, or another folder holding one, is another run. A
model of your own (``package.module:Class``) and a KD method you registered are covered by
their own modules' source.

Each RunResult also records :func:`code_info`: the package version, the digest of the whole
package source and the git commit of a source checkout.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import subprocess
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from recbole_mmkd.config import PACKAGE, hashable_config, settings_digest

PREFIX = "recbole_mmkd"
# What every run executes, whatever the model: the preparation and training path.
RUN_MODULES = ("recbole_mmkd.pipeline", "recbole_mmkd.prepare", "recbole_mmkd.compat")


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@cache
def imported_modules(module: str) -> frozenset[str]:
    """The project modules that ``module``'s source imports (at any level of its code)."""
    spec = importlib.util.find_spec(module)
    tree = ast.parse(Path(spec.origin).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from pkg import module` imports pkg.module
                child = f"{node.module}.{alias.name}"
                found.add(child if _is_module(child) else node.module)
    return frozenset(m for m in found if m.startswith(f"{PREFIX}.") and m != PREFIX)


def module_closure(roots: Iterable[str]) -> list[str]:
    """``roots`` and every project module they import, transitively, sorted."""
    seen: set[str] = set()
    todo = [r for r in roots if r.startswith(f"{PREFIX}.")]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(imported_modules(module) - seen)
    return sorted(seen)


def _outside(module: str) -> bool:
    """Whether ``module`` is a user's own (not this package, RecBole, torch or builtins)."""
    top = module.split(".")[0]
    return top not in {PREFIX, "recbole", "torch", "builtins", "abc", "typing"}


def run_modules(model_class: type, *, extra: tuple[type, ...] = ()) -> list[str]:
    """Every project module a run of ``model_class`` executes, and the user's own modules its
    class hierarchy and the ``extra`` classes (a registered KD method) come from."""
    own = {cls.__module__ for cls in (*model_class.__mro__, *extra)}
    return sorted({*module_closure([*own, *RUN_MODULES]), *filter(_outside, own)})


def _source(module: str) -> str:
    return Path(importlib.util.find_spec(module).origin).read_text()


def code_digest(modules: Iterable[str]) -> str:
    """Digest of the source of ``modules``."""
    digest = hashlib.sha1()
    for module in sorted(modules):
        digest.update(f"{module}\0{_source(module)}\0".encode())
    return digest.hexdigest()[:12]


def config_hash(config: Any, model_class: type | None = None) -> str:
    """Digest of the config's settings, of its dataset's files and of the source of every
    module the run executes, so a RunResult on disk is reused only for the same settings,
    data *and* code. The model class defaults to the one registered as ``config["model"]``."""
    if model_class is None:
        from recbole_mmkd.model import get_model

        model_class = get_model(config["model"])
    modules = run_modules(model_class, extra=extra_classes(config))
    return settings_digest(
        hashable_config(config), code_digest(modules), data=data_digest(config["data_path"])
    )


def extra_classes(config: Any) -> tuple[type, ...]:
    """Classes a run resolves by name from its config beyond its model: the KD method of
    ``kd_method`` where the KD registry is loaded (read without importing it, so that the
    registry is not in every run's code)."""
    methods = sys.modules.get("recbole_mmkd.distill.methods")
    name = config["kd_method"] if "kd_method" in config.final_config_dict else None
    if methods is None or name not in methods.KD_METHODS:
        return ()
    return (methods.KD_METHODS[name],)


def data_digest(folder: str | Path) -> str:
    """Digest of a dataset folder's files (names and contents), cached by size and time."""
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    return _digest_files(tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))


@cache
def _digest_files(files: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha1()
    for name, _size, _mtime in files:
        digest.update(Path(name).name.encode() + b"\0" + Path(name).read_bytes())
    return digest.hexdigest()[:12]


@cache
def package_digest() -> str:
    """Digest of every ``.py`` file of the installed package."""
    digest = hashlib.sha1()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(f"{path.relative_to(PACKAGE)}\0".encode() + path.read_bytes())
    return digest.hexdigest()[:12]


@cache
def git_commit() -> str | None:
    """The commit of the source checkout the package runs from (``+dirty`` when the package
    has uncommitted changes), or None outside a git checkout."""
    top = PACKAGE.parent
    if not (top / ".git").exists():
        return None

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(top), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--", PACKAGE.name)
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def code_info(config: Any, model_class: type) -> dict[str, Any]:
    """What a RunResult records of the code and data that made it."""
    from recbole_mmkd import __version__

    modules = run_modules(model_class, extra=extra_classes(config))
    return {
        "version": __version__,
        "code_digest": code_digest(modules),
        "data_digest": data_digest(config["data_path"]),
        "package_digest": package_digest(),
        "git_commit": git_commit(),
        "modules": modules,
    }
