"""Building RecBole configs from the project's ``properties/`` YAML files."""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import torch
from recbole.config import Config

ROOT = Path(__file__).resolve().parent.parent
PROPERTIES = ROOT / "properties"
DATASETS = ROOT / "dataset"

# Keys that say where or how a run executes, not what it computes: left out of the config hash.
_NOT_HASHED = frozenset(
    {
        "seed",
        "data_path",
        "checkpoint_dir",
        "device",
        "gpu_id",
        "use_gpu",
        "state",
        "show_progress",
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
        "teacher_tables",  # paths; the teacher's identity is hashed as teacher_hash
        "teacher_state",
    }
)


class MMKDConfig(Config):
    """RecBole ``Config`` that never reads ``sys.argv`` and never sets ``CUDA_VISIBLE_DEVICES``.

    RecBole's Config parses every ``--key=value`` on the command line (pytest's and Ray
    workers' flags included) and writes ``gpu_id`` into ``CUDA_VISIBLE_DEVICES``, which would
    override the device a scheduler gave the process. Here the device is CUDA when ``use_gpu``
    is true and torch sees a GPU (whichever ones the environment exposes), else the CPU.
    """

    def _load_cmd_line(self) -> dict:
        return {}

    def _init_device(self) -> None:
        use_cuda = bool(self.final_config_dict.get("use_gpu", True)) and torch.cuda.is_available()
        self.final_config_dict.update(
            single_spec=True,
            local_rank=0,
            device=torch.device("cuda" if use_cuda else "cpu"),
        )


def config_files(model_name: str, dataset: str) -> list[str]:
    """The YAML files a run reads, lowest precedence first: overall, dataset, then the model's.

    A model reads ``properties/model/<name>.yaml`` for each name in its class attribute
    ``config_names`` (a wrapper such as SGFD-BM3: BM3, SGFD, SGFD-BM3), else its own name's.
    """
    from recbole_mmkd.model import get_model

    names = getattr(get_model(model_name), "config_names", (model_name,))
    candidates = [
        PROPERTIES / "overall.yaml",
        PROPERTIES / "dataset" / f"{dataset}.yaml",
        *(PROPERTIES / "model" / f"{name}.yaml" for name in names),
    ]
    return [str(path) for path in candidates if path.is_file()]


def build_config(
    model: str,
    dataset: str,
    overrides: dict[str, Any] | None = None,
    data_path: str | Path | None = None,
) -> MMKDConfig:
    """Config for registered ``model`` on ``dataset``: YAML files, then ``overrides``."""
    from recbole_mmkd.model import get_model

    model_class = get_model(model)
    config_dict = {"data_path": str(data_path or DATASETS), **(overrides or {})}
    config = MMKDConfig(
        model=model_class,
        dataset=dataset,
        config_file_list=config_files(model, dataset),
        config_dict=config_dict,
    )
    config["model"] = model  # the registry name (e.g. "recbole.LightGCN"), not the class name
    return config


def hashable_config(config: Config) -> dict[str, Any]:
    """The JSON-safe part of a config that determines what a run computes (seed excluded)."""
    out = {}
    for key, value in sorted(config.final_config_dict.items()):
        if key in _NOT_HASHED:
            continue
        try:
            json.dumps(value)
        except TypeError:
            continue
        out[key] = value
    return out


def config_hash(config: Config) -> str:
    """Digest of :func:`hashable_config` and of the source of every project module the model
    class is built from (its own file and those of its base classes, e.g. SGFD-BM3: sgfd.py,
    bm3.py, base.py), so a RunResult on disk is reused only for the same settings *and* the
    same model code."""
    from recbole_mmkd.model import get_model

    modules = {
        cls.__module__
        for cls in get_model(config["model"]).__mro__
        if cls.__module__.startswith("recbole_mmkd.") or cls.__module__ == "recbole_mmkd"
    }
    sources = {name: inspect.getsource(sys.modules[name]) for name in sorted(modules)}
    payload = json.dumps(
        {"config": hashable_config(config), "model_source": sources}, sort_keys=True
    )
    return hashlib.sha1(payload.encode()).hexdigest()[:10]
