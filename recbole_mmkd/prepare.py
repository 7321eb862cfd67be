"""The one path into a run: config -> dataset -> split -> seed -> model -> device.

:func:`prepare` is what the pipeline, sweep trials, tests and bench scripts call; nothing else
builds a dataset, its loaders or a model. :func:`check_run` does every check that needs no
data loaded, so a benchmark or sweep can refuse a bad entry before anything trains.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recbole.data import data_preparation
from recbole.data.dataloader import AbstractDataLoader
from recbole.utils import init_seed

from recbole_mmkd.config import MMKDConfig, build_config
from recbole_mmkd.data import MultimodalDataset, files
from recbole_mmkd.data.negatives import POOLS, restrict_negatives
from recbole_mmkd.errors import ConfigError
from recbole_mmkd.identity import config_hash
from recbole_mmkd.model import get_model
from recbole_mmkd.model.options import check_choice
from recbole_mmkd.teacher import check_teacher


@dataclass
class Prepared:
    """Everything a run needs, built from one config and one seed."""

    config: MMKDConfig
    dataset: MultimodalDataset
    train: AbstractDataLoader
    valid: AbstractDataLoader
    test: AbstractDataLoader
    model: Any  # the model, on config["device"]


def config_for(
    model: str,
    dataset: str,
    *,
    overrides: Mapping[str, Any] | None = None,
    data_path: str | Path | None = None,
    properties: Any = None,
    source: str = "overrides",
) -> MMKDConfig:
    """The checked config of registered ``model`` on ``dataset`` with ``overrides``."""
    model_class = get_model(model, source=source)
    return build_config(
        model_class,
        dataset,
        overrides=overrides,
        name=model,
        data_path=data_path,
        properties=properties,
        source=source,
    )


def hashed_config(
    model: str,
    dataset: str,
    *,
    seed: int,
    overrides: Mapping[str, Any] | None = None,
    **common: Any,
) -> MMKDConfig:
    """The config a run of ``model`` with ``overrides`` and ``seed`` is hashed by, found
    without training anything: a student's points at the config hash of the teacher run it
    would read (its ``teacher_config`` with the same seed), not at a folder."""
    fixed = {**(overrides or {}), "seed": seed}
    if getattr(get_model(model), "needs_teacher", False):
        probe = config_for(model, dataset, overrides=fixed, **common)
        teacher = {**(probe["teacher_config"] or {}), "seed": seed}
        teacher_config = config_for(probe["teacher"], dataset, overrides=teacher, **common)
        fixed["teacher_hash"] = config_hash(teacher_config)
    return config_for(model, dataset, overrides=fixed, **common)


def check_run(config: MMKDConfig, *, source: str = "overrides") -> None:
    """Checks that need no data loaded: a multimodal model needs features on disk, a student's
    teacher must be a model that can teach, with settings of its own that pass the same
    checks; ``negative_pool`` must name a rule."""
    check_choice("negative_pool", config["negative_pool"], POOLS)
    model_class = get_model(config["model"])
    if getattr(model_class, "needs_features", False):
        found = files.find_modalities(Path(config["data_path"]), config["dataset"])
        wanted = config["modalities"]
        if not found or (wanted is not None and not set(wanted) <= set(found)):
            raise ConfigError(
                source,
                config["model"],
                f"is multimodal and dataset '{config['dataset']}' has "
                + (f"only the modalities {found}" if found else "no item features")
                + f" ({config['data_path']})",
                "add <name>.<modality>.npy files (`recbole-mmkd import` converts public "
                "layouts), set `modalities`, or choose an ID-only model",
            )
    if getattr(model_class, "needs_teacher", False):
        teacher = config["teacher"]
        check_teacher(get_model(teacher, source=f"{source}: teacher"), teacher, source=source)
        teacher_config = config_for(
            teacher,
            config["dataset"],
            overrides=config["teacher_config"] or {},
            data_path=Path(config["data_path"]).parent,
            properties=config["properties"],
            source=f"{source}: teacher_config",
        )
        check_run(teacher_config, source=f"{source}: teacher_config")


def prepare(
    model: str,
    dataset: str,
    *,
    overrides: Mapping[str, Any] | None = None,
    seed: int = 0,
    data_path: str | Path | None = None,
    properties: Any = None,
    source: str = "overrides",
    config: MMKDConfig | None = None,
) -> Prepared:
    """Config (or the given ``config``), dataset, train/valid/test loaders and the model on its
    device, seeded with ``seed`` before the data and again before the model (so a model's
    initialisation does not depend on how much randomness loading consumed). The training
    loader draws its negatives from ``negative_pool`` (:mod:`recbole_mmkd.data.negatives`)."""
    if config is None:
        config = config_for(
            model,
            dataset,
            overrides={**(overrides or {}), "seed": seed},
            data_path=data_path,
            properties=properties,
            source=source,
        )
    check_run(config, source=source)
    init_seed(seed, config["reproducibility"])
    data = MultimodalDataset(config)
    train, valid, test = data_preparation(config, data)
    restrict_negatives(train, config["negative_pool"])
    init_seed(seed, config["reproducibility"])
    net = get_model(model)(config, train.dataset).to(config["device"])
    return Prepared(config, data, train, valid, test, net)
