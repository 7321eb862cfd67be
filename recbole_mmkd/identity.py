"""Run identity: which project code a run executes, and digests of it.

A run's config hash (:func:`config_hash`) covers its settings and the source of every project
module it executes: the modules its model class is built from, the run path (preparation,
trainer, metrics, data, teacher artefacts, robustness) and, transitively, every project module
those import. Imports are read from the source (``ast``), function-level ones included, so an
edit to a helper such as ``model/graph.py`` or ``distill/losses.py`` changes the hash of every
model that uses it, and of no other. The model registry loads the built-in models by name
(``importlib``), so the registry's own source is covered but not every model it can load.

Each RunResult also records :func:`code_info`: the package version, the digest of the whole
package source and the git commit of a source checkout.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import subprocess
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


def run_modules(model_class: type) -> list[str]:
    """Every project module a run of ``model_class`` executes."""
    own = {cls.__module__ for cls in model_class.__mro__}
    return module_closure([*own, *RUN_MODULES])


def _source(module: str) -> str:
    return Path(importlib.util.find_spec(module).origin).read_text()


def code_digest(modules: Iterable[str]) -> str:
    """Digest of the source of ``modules``."""
    digest = hashlib.sha1()
    for module in sorted(modules):
        digest.update(f"{module}\0{_source(module)}\0".encode())
    return digest.hexdigest()[:12]


def config_hash(config: Any, model_class: type | None = None) -> str:
    """Digest of the config's settings and of the source of every module the run executes, so
    a RunResult on disk is reused only for the same settings *and* the same code. The model
    class defaults to the one registered as ``config["model"]``."""
    if model_class is None:
        from recbole_mmkd.model import get_model

        model_class = get_model(config["model"])
    return settings_digest(hashable_config(config), code_digest(run_modules(model_class)))


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


def code_info(model_class: type) -> dict[str, Any]:
    """What a RunResult records of the code that made it."""
    from recbole_mmkd import __version__

    modules = run_modules(model_class)
    return {
        "version": __version__,
        "code_digest": code_digest(modules),
        "package_digest": package_digest(),
        "git_commit": git_commit(),
        "modules": modules,
    }
