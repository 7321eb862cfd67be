"""Building RecBole configs from layered ``properties/`` YAML, and refusing settings that cannot
be right before anything trains.

This module is a leaf of the package: it takes model *classes*, never names, so it imports no
model. Name resolution lives in :mod:`recbole_mmkd.model` and :mod:`recbole_mmkd.prepare`.

Where things are found:

- ``properties/``: the shipped folder (inside the package when installed from a wheel, beside
  it in a source checkout), then each folder in ``$RECBOLE_MMKD_PROPERTIES`` (``os.pathsep``
  separated) or given as ``properties=``; later folders take precedence, file by file.
- datasets: ``<folder>/<name>/`` for the first folder that holds ``<name>``, among the given
  ``data_path``, the folders in ``$RECBOLE_MMKD_DATA``, then the shipped ``dataset/``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from recbole.config import Config

from recbole_mmkd.errors import ConfigError, DataError

PACKAGE = Path(__file__).resolve().parent
ENV_PROPERTIES = "RECBOLE_MMKD_PROPERTIES"
ENV_DATA = "RECBOLE_MMKD_DATA"


def _shipped(name: str) -> Path:
    """A folder the project ships: inside the package (wheel) or beside it (source checkout)."""
    inside = PACKAGE / name
    return inside if inside.is_dir() else PACKAGE.parent / name


PROPERTIES = _shipped("properties")
DATASETS = _shipped("dataset")

# Keys that say where or how a run executes, not what it computes: left out of the config hash.
NOT_HASHED = frozenset(
    {
        "seed",
        "data_path",
        "checkpoint_dir",
        "device",
        "gpu_id",
        "use_gpu",
        "state",
        "show_progress",
        "progress_every",
        "log_wandb",
        "wandb_project",
        "local_rank",
        "single_spec",
        "nproc",
        "world_size",
        "offset",
        "ip",
        "port",
        "worker",
        "save_dataset",
        "save_dataloaders",
        "dataset_save_path",
        "dataloaders_save_path",
        "verbose",
        "eval_batch_size",
        "teacher_run",  # a path; the teacher's identity is hashed as teacher_hash
        "properties",  # folders; what they set is hashed as values
    }
)
# Keys the runner sets itself, which no YAML defines.
RUN_KEYS = frozenset({"seed", "data_path", "device", "properties", "teacher_run", "teacher_hash"})
# Keys whose values are text whatever they look like: RecBole evaluates override strings, which
# would read a hash of digits as a number (or "12e45" as a float) and a path as an expression.
TEXT_KEYS = frozenset({"data_path", "teacher_run", "teacher_hash"})

# Ranges checked on every final config (YAML layers and overrides alike).
_POSITIVE = frozenset(
    {
        "epochs",
        "embedding_size",
        "train_batch_size",
        "eval_batch_size",
        "eval_step",
        "stopping_step",
        "learning_rate",
        "latent_dim",
        "feat_embed_dim",
        "sgfd_dim",
        "kd_items",
        "rd_topk",
        "rd_lambda",
        "rrd_top_n",
        "rrd_k",
        "rrd_l",
        "rrd_temperature",
        "t_decay",
        "knn_k",
        "label_clusters",
    }
)
_NON_NEGATIVE = frozenset({"n_layers", "n_mm_layers", "n_ui_layers", "n_routing", "weight_decay"})
_UNIT = frozenset({"dropout", "attention_dropout", "modality_dropout", "lambda_coeff"})


class MMKDConfig(Config):
    """RecBole ``Config`` that never reads ``sys.argv`` and never sets ``CUDA_VISIBLE_DEVICES``.

    RecBole's Config parses every ``--key=value`` on the command line (pytest's and Ray
    workers' flags included) and writes ``gpu_id`` into ``CUDA_VISIBLE_DEVICES``, which would
    override the device a scheduler gave the process. Here the device is CUDA when ``use_gpu``
    is true and torch sees a GPU (whichever ones the environment exposes), else the CPU.
    """

    def _load_cmd_line(self) -> dict:
        return {}

    def _load_variable_config_dict(self, config_dict: dict | None) -> dict:
        text = {k: v for k, v in (config_dict or {}).items() if k in TEXT_KEYS}
        return {**super()._load_variable_config_dict(config_dict), **text}

    def _init_device(self) -> None:
        use_cuda = bool(self.final_config_dict.get("use_gpu", True)) and torch.cuda.is_available()
        self.final_config_dict.update(
            single_spec=True,
            local_rank=0,
            device=torch.device("cuda" if use_cuda else "cpu"),
        )

    def defined_keys(self) -> set[str]:
        """Every key a YAML layer (RecBole's or the project's) or RecBole's defaults define."""
        overridden = set(self.variable_config_dict) - set(self.internal_config_dict)
        overridden -= set(self.file_config_dict)
        return (set(self.final_config_dict) - overridden) | set(self.file_config_dict)

    def default(self, key: str) -> Any:
        """What ``key`` would be without the run's overrides."""
        return self.file_config_dict.get(key, self.internal_config_dict.get(key))


def _split_env(variable: str) -> list[Path]:
    return [Path(p) for p in os.environ.get(variable, "").split(os.pathsep) if p]


def properties_dirs(properties: str | Path | Sequence[str | Path] | None = None) -> list[Path]:
    """The ``properties/`` folders a run reads, lowest precedence first: the shipped one, then
    ``$RECBOLE_MMKD_PROPERTIES``, then ``properties`` (one folder or several)."""
    given = [properties] if isinstance(properties, str | Path) else list(properties or [])
    folders = [PROPERTIES, *_split_env(ENV_PROPERTIES), *map(Path, given)]
    for folder in folders[1:]:
        if not folder.is_dir():
            raise DataError(folder, "properties", "no such folder", "name an existing folder")
    return list(dict.fromkeys(folders))


def find_spec(kind: str, name: str, properties: Any = None) -> Path:
    """``<properties>/<kind>/<name>.yaml`` from the highest-precedence folder that has it."""
    folders = properties_dirs(properties)
    for folder in reversed(folders):
        path = folder / kind / f"{name}.yaml"
        if path.is_file():
            return path
    known = sorted({p.stem for f in folders for p in (f / kind).glob("*.yaml")})
    raise DataError(
        folders[-1] / kind / f"{name}.yaml",
        kind,
        "no such file" + _did_you_mean(name, known),
        f"name one of: {', '.join(known) or 'none'}",
    )


def dataset_root(dataset: str, data_path: str | Path | None = None) -> Path:
    """The folder holding ``<dataset>/``: the first of ``data_path``, ``$RECBOLE_MMKD_DATA``
    and the shipped ``dataset/`` that has it."""
    candidates = [*([Path(data_path)] if data_path else []), *_split_env(ENV_DATA), DATASETS]
    for folder in candidates:
        if (folder / dataset).is_dir():
            return folder
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise DataError(
        Path(candidates[0]) / dataset,
        "dataset",
        f"no dataset '{dataset}' (looked in {looked})",
        "give --data-path (or $RECBOLE_MMKD_DATA) the folder holding it, or convert a public "
        "layout with `recbole-mmkd import`",
    )


def config_files(config_names: Sequence[str], dataset: str, *, properties: Any = None) -> list[str]:
    """The YAML files a run reads, lowest precedence first: overall, dataset, the model's
    (``config_names``: a wrapper such as SGFD-BM3 reads BM3, SGFD, SGFD-BM3), then the model's
    on this dataset (``model/<dataset>/<name>.yaml``: the values chosen on its validation
    split, or how it runs there, such as MAML's validation interval on TikTok), each from
    every properties folder in turn."""
    relative = [
        Path("overall.yaml"),
        Path("dataset") / f"{dataset}.yaml",
        *(Path("model") / f"{name}.yaml" for name in config_names),
        *(Path("model") / dataset / f"{name}.yaml" for name in config_names),
    ]
    folders = properties_dirs(properties)
    return [str(f / rel) for rel in relative for f in folders if (f / rel).is_file()]


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _kind(value: Any) -> str:
    name = "bool" if isinstance(value, bool) else type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _type_matches(value: Any, default: Any) -> bool:
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, list):  # RecBole takes a scalar for a one-element list (topk: 20)
        return isinstance(value, list) or (bool(default) and _type_matches(value, default[0]))
    return isinstance(value, type(default))


def check_overrides(
    config: MMKDConfig,
    overrides: Mapping[str, Any],
    *,
    source: str = "overrides",
    nullable: frozenset[str] = frozenset(),
) -> None:
    """Refuse an override that no layer defines (with a did-you-mean) or whose value is not of
    its default's type; ``None`` is taken for the ``nullable`` keys (a layer sets them to
    null: off). ``source`` names where the overrides came from."""
    known = config.defined_keys() | RUN_KEYS
    for key, value in overrides.items():
        converted = config.variable_config_dict.get(key, value)  # RecBole evals strings
        if key not in known:
            raise ConfigError(
                source,
                key,
                f"no YAML layer, model or RecBole default defines this key for "
                f"{config['model']}" + _did_you_mean(key, sorted(known)),
                "check the spelling; a model's keys are in properties/model/<Model>.yaml",
            )
        default = config.default(key)
        if value is None and key in nullable:
            continue
        if not (_type_matches(value, default) or _type_matches(converted, default)):
            raise ConfigError(
                source,
                key,
                f"{value!r} is {_kind(value)}, its default {default!r} is {_kind(default)}",
                f"give {_kind(default)}",
            )


def check_ranges(
    config: MMKDConfig, overrides: Mapping[str, Any], files: Sequence[str], *, source: str
) -> None:
    """Refuse values that make no sense: a non-positive size, count, rate or temperature, a
    negative weight or layer count, a dropout outside [0, 1]. The error names ``source`` for a
    value from ``overrides``, else the last of the YAML ``files`` that sets it."""
    for key, value in config.final_config_dict.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        problem = None
        if key in _POSITIVE and value <= 0:
            problem, fix = f"{value} is not positive", "give a value > 0"
        elif (key in _NON_NEGATIVE or key.endswith("_weight")) and value < 0:
            problem, fix = f"{value} is negative", "give a value >= 0"
        elif key in _UNIT and not 0 <= value <= 1:
            problem, fix = f"{value} is outside [0, 1]", "give a share between 0 and 1"
        if problem:
            setters = [f for f in files if key in (read_yaml(Path(f)) or {})]
            where = source if key in overrides or not setters else setters[-1]
            raise ConfigError(where, key, problem, fix)


def build_config(
    model_class: type,
    dataset: str,
    *,
    overrides: Mapping[str, Any] | None = None,
    name: str | None = None,
    data_path: str | Path | None = None,
    properties: Any = None,
    source: str = "overrides",
) -> MMKDConfig:
    """Config for ``model_class`` (registered as ``name``) on ``dataset``: the YAML layers,
    then ``overrides``, checked (:func:`check_overrides`, :func:`check_ranges`).

    A model reads ``properties/model/<name>.yaml`` for each name in its class attribute
    ``config_names`` (a wrapper such as SGFD-BM3: BM3, SGFD, SGFD-BM3), else its own name's.
    """
    name = name or model_class.__name__
    overrides = dict(overrides or {})
    names = getattr(model_class, "config_names", (model_class.__name__,))
    root = dataset_root(dataset, overrides.pop("data_path", None) or data_path)
    files = config_files(names, dataset, properties=properties)
    config = MMKDConfig(
        model=model_class,
        dataset=dataset,
        config_file_list=files,
        config_dict={"data_path": str(root), **overrides},
    )
    config["model"] = name  # the registry name (e.g. "recbole.LightGCN"), not the class name
    config["properties"] = [str(f) for f in properties_dirs(properties)]
    nullable = frozenset(
        k for f in files for k, v in (read_yaml(Path(f)) or {}).items() if v is None
    )
    check_overrides(config, overrides, source=source, nullable=nullable)
    check_ranges(config, overrides, files, source=source)
    return config


def read_yaml(path: Path) -> Any:
    """A YAML file's content; a syntax error is a :class:`DataError` naming the file."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "-"
        raise DataError(path, where, "not valid YAML", "fix the syntax there") from None


def hashable_config(config: Config) -> dict[str, Any]:
    """The JSON-safe part of a config that determines what a run computes (seed excluded)."""
    out = {}
    for key, value in sorted(config.final_config_dict.items()):
        if key in NOT_HASHED:
            continue
        try:
            json.dumps(value)
        except TypeError:
            continue
        out[key] = value
    return out


def settings_digest(settings: Mapping[str, Any], code_digest: str, *, data: str = "") -> str:
    """The config hash: a digest of the settings, of the code that runs them and of the
    data they run on."""
    payload = json.dumps({"config": settings, "code": code_digest, "data": data}, sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()[:10]
