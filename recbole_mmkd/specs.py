"""Benchmarks and sweeps as data: reading ``properties/{benchmark,sweep}/<name>.yaml``, and
checking every setting they name before anything trains.

A benchmark:

.. code-block:: yaml

    datasets: [tiktok]
    seeds: [2020, 2021, 2022]
    metrics: [recall@20, ndcg@20]
    models:
      - LightGCN
      - {model: KD-LightGCN, set: {teacher: FREEDOM}}   # per-model config overrides
      - {model: GRCN, set: {routing: paper}, label: GRCN-paper}  # a model twice needs labels
      - {model: BPR, space: {reg_weight: [1.0e-4, 1.0e-3]}}  # tuned on validation first
      - {model: VBPR, datasets: [tiktok]}   # runs on these of the benchmark's datasets only
      - {model: SMORE, label: best, datasets: [tiktok]}   # one label, another entry on each
      - {model: LightGCN, label: best, datasets: [ml-100k]}  # dataset (never on the same one)
      - {model: KD-BPR, tuned_on: BPR,      # searched from BPR's chosen point on each dataset
         space: {kd_weight: [0.01, 0.1]}}
      - {model: FREEDOM, label: teacher, space: {embedding_size: [64, 128]}}
      - {model: KD-LightGCN, label: KD 1/4,  # distils from the entry `teacher` at its chosen
         teacher_from: teacher,              # point, at a quarter of its chosen width
         width: {of: teacher, ratio: 0.25}}
      - matrix:                 # an entry per combination of its axes' keys (first outermost)
          method: {logit: {set: {kd_method: logit}}, rd: {set: {kd_method: rd}}}
          width: {x1/2: {width: {of: teacher, ratio: 0.5}}, x1/4: {width: {of: teacher,
                  ratio: 0.25}}}
        model: KD-LightGCN      # the rest: what every combination shares, its keys' parts
        teacher_from: teacher   # merged over it; {AXIS} in a value reads that axis's key;
        compare_to: LightGCN    # labels "logit x1/2" ... (the keys), unless given
    dataset_set:              # settings every entry takes on a dataset, under its own
      ml-100k: {learning_rate: 0.01}
    comparisons:                                         # [label, reference] pairs, or all
      - [KD-LightGCN, LightGCN]
    reference: LightGCN       # the LaTeX table marks significant differences from it
    test: t                   # paired test over per-user metrics: t | randomisation | wilcoxon
    correction: holm          # across each metric's comparisons: holm | bh | none
    tuning:                   # how entries with a `space` are searched (defaults shown)
      search: grid            # grid | random | tpe, as a sweep's
      num_samples: 1
      scheduler: asha         # none | asha | halving (synchronous, grid only: tune/halving.py)
      grace_period: 10
      seed: 2020              # the one seed of every trial
      cpus_per_trial: 1
      per_dataset:            # a dataset's own scheduler / grace_period / reduction_factor /
        ml-100k-mm: {scheduler: none}    # resources; its points and trials stay the same

An entry's ``space`` is searched on validation only, per dataset, before its seeds run (a
sweep per entry under ``<out>/tuning/``); its seeds then run with the validation-best point.
The two sides of every comparison get the same budget: both tuned with the same number of
trials, or neither tuned. An entry ``tuned_on`` another (one with a space of its own) is
searched with that entry's chosen point set, so a student tunes its own knobs over the
backbone its baseline chose on the same dataset. An entry with ``teacher_from`` distils from
that entry's model at that entry's settings and chosen point (``teacher``, ``teacher_config``);
one with ``width: {of: NAME, ratio: R}`` has ``embedding_size`` R times NAME's (its chosen or
configured width, rounded, at least 1): students a fraction of their teacher's width. An
entry's ``compare_to`` (a name or a list) adds its comparisons against those entries.

A sweep:

.. code-block:: yaml

    model: SGFD-BM3
    dataset: tiktok
    search: grid              # grid | random | tpe (Optuna's TPE through Ray Tune)
    num_samples: 16           # random / tpe: trials; grid: repeats of the grid (1)
    scheduler: asha           # none | asha (early stopping on the per-epoch validation metric)
                              # | halving (grid: rounds of capped re-training, tune/halving.py)
    space:
      ce_weight: [0.01, 0.1, 1.0]            # a list: grid values (choice for random / tpe)
      kd_weight: {loguniform: [0.001, 1.0]}  # or {uniform: [a, b]}, {choice: [...]}
    set: {epochs: 200}        # fixed overrides for every trial
    seed: 2020                # the seed of every trial
    final_seeds: [2020, 2021, 2022, 2023, 2024]

Resources: ``cpus_per_trial``, ``gpus_per_trial`` (fractions share a GPU), ``max_concurrent``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from recbole_mmkd.config import find_spec, read_yaml
from recbole_mmkd.errors import ConfigError, DataError
from recbole_mmkd.model.student.kd import check_kd_settings
from recbole_mmkd.prepare import check_run, config_for
from recbole_mmkd.reporting.stats import CORRECTIONS, TESTS

SEARCHES = ("grid", "random", "tpe")
SCHEDULERS = ("none", "asha", "halving")
DISTRIBUTIONS = ("loguniform", "uniform", "choice")
DEFAULT_METRICS = ["recall@20", "ndcg@20"]
PLACEHOLDER = re.compile(r"\{(\w+)\}")  # an axis's key in a matrix entry's values


@dataclass(frozen=True)
class Entry:
    model: str
    overrides: dict[str, Any] = field(default_factory=dict)
    label: str = ""  # the name in tables, figures and comparisons; the model's by default
    space: dict[str, Any] = field(default_factory=dict)  # searched on validation first
    datasets: list[str] = field(default_factory=list)  # the datasets it runs on; [] = all
    # another entry whose point chosen on each dataset this entry's search starts from (a KD
    # student tuned over its backbone's choice); its own `set` still wins
    tuned_on: str = ""
    teacher_from: str = ""  # an entry whose model, at its settings and chosen point, teaches
    width: tuple[str, float] | None = None  # (entry, ratio): ratio x that entry's width

    @property
    def depends_on(self) -> list[str]:
        """The entries this one is built from (each settled on a dataset before it)."""
        names = (self.tuned_on, self.teacher_from, self.width[0] if self.width else "")
        return [n for n in names if n]

    def runs_on(self, dataset: str) -> bool:
        return not self.datasets or dataset in self.datasets

    @property
    def name(self) -> str:
        return self.label or self.model


@dataclass(frozen=True)
class Benchmark:
    name: str
    datasets: list[str]
    seeds: list[int]
    metrics: list[str]
    entries: list[Entry]
    comparisons: list[tuple[str, str]]
    test: str = "t"  # paired test: t | randomisation | wilcoxon
    correction: str = "holm"  # across a metric's comparisons: holm | bh | none
    reference: str | None = None  # the model the LaTeX table marks significance against
    source: str = "benchmark"  # where it was read from, for error messages
    tuning: Tuning = field(default_factory=lambda: Tuning())
    # a part's whole benchmark's entries (`restrict`), where a `tuned_on` entry is found
    context: list[Entry] = field(default_factory=list, compare=False, repr=False)
    compression: Compression | None = None  # students of several widths against a teacher
    # {dataset: {key: value}}: settings every entry takes on that dataset, under its own
    # `set` and `space`
    dataset_set: dict[str, dict[str, Any]] = field(default_factory=dict)

    def entries_on(self, dataset: str) -> list[Entry]:
        """The entries that run on ``dataset``."""
        return [e for e in self.entries if e.runs_on(dataset)]

    def dataset_settings(self, entry: Entry, dataset: str) -> dict[str, Any]:
        """What ``dataset``'s ``dataset_set`` gives ``entry``: every key but those its space
        searches (a searched key is no fixed setting of its sweep)."""
        shared = self.dataset_set.get(dataset, {})
        return {k: v for k, v in shared.items() if k not in entry.space}

    def on(self, dataset: str) -> Benchmark:
        """The benchmark as it runs on ``dataset``: the entries (and the whole benchmark's,
        for a part) that run there, where each label names one entry."""
        context = [e for e in self.context if e.runs_on(dataset)]
        return replace(self, entries=self.entries_on(dataset), context=context)

    def entry(self, name: str) -> Entry:
        """The entry named ``name``, of this benchmark or of the whole one it is part of."""
        return next(e for e in self.context or self.entries if e.name == name)


@dataclass(frozen=True)
class Compression:
    """A compression benchmark's reading (:mod:`recbole_mmkd.reporting.compression`): the
    entry that is the teacher, and how close to its mean a student must come to count."""

    teacher: str
    tolerance: float = 0.02


@dataclass(frozen=True)
class Tuning:
    """How a benchmark searches the entries that have a ``space`` (as a sweep does)."""

    search: str = "grid"
    num_samples: int = 1
    scheduler: str = "asha"
    grace_period: int = 10
    reduction_factor: int = 3
    seed: int = 2020
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    max_concurrent: int = 0
    # {dataset: {key: value}}: how one dataset's searches depart from the above (the keys of
    # PER_DATASET_TUNING only, so that every dataset's entries keep the same trials)
    per_dataset: dict[str, dict[str, Any]] = field(default_factory=dict)

    def on(self, dataset: str) -> Tuning:
        """The tuning of ``dataset``'s searches."""
        return replace(self, **self.per_dataset.get(dataset, {}), per_dataset={})


# what a dataset's searches may change: how far trials run, not which points are tried
PER_DATASET_TUNING = frozenset(
    {"scheduler", "grace_period", "reduction_factor", "cpus_per_trial", "gpus_per_trial",
     "max_concurrent"}
)  # fmt: skip


@dataclass(frozen=True)
class Sweep:
    name: str
    model: str
    dataset: str
    space: dict[str, Any]
    search: str = "grid"
    num_samples: int = 1
    scheduler: str = "none"
    grace_period: int = 10
    reduction_factor: int = 3
    overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 2020
    final_seeds: list[int] = field(default_factory=lambda: [2020, 2021, 2022, 2023, 2024])
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    max_concurrent: int = 0  # 0: as many as the resources allow
    source: str = "sweep"


def _read(kind: str, name_or_path: str | Path, properties: Any) -> tuple[Path, dict, str]:
    """The spec file (a path, or a name looked up in the properties folders), its mapping and
    its name."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = find_spec(kind, str(name_or_path), properties)
    elif not path.is_file():
        raise DataError(path, kind, "no such file", "give the path of an existing YAML file")
    spec = read_yaml(path) or {}
    if not isinstance(spec, dict):
        raise DataError(path, kind, "not a mapping", "write 'key: value' lines")
    return path, spec, path.stem


def _check_per_dataset(path: Path, tuning: Tuning, datasets: list[str]) -> None:
    """``tuning.per_dataset`` names the benchmark's datasets, and changes only what
    :data:`PER_DATASET_TUNING` allows, to values its scheduler accepts."""
    if not isinstance(tuning.per_dataset, dict):
        raise DataError(path, "tuning.per_dataset", "not a mapping",
                        "write 'per_dataset: {DATASET: {scheduler: none}}'")  # fmt: skip
    for dataset, changes in tuning.per_dataset.items():
        where = f"tuning.per_dataset.{dataset}"
        if dataset not in datasets:
            raise DataError(path, where, "not one of the benchmark's datasets",
                            f"use one of {datasets}")  # fmt: skip
        if not isinstance(changes, dict):
            raise DataError(path, where, "not a mapping", "write '{scheduler: none}'")
        _refuse_unknown(path, changes, set(PER_DATASET_TUNING), where=where)
        _check_search(path, tuning.search, tuning.on(dataset).scheduler, key=f"{where}.scheduler")


def _refuse_unknown(path: Path, spec: dict, known: set[str], *, where: str = "") -> None:
    unknown = sorted(set(spec) - known)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise DataError(path, key, "unknown key", f"use one of {sorted(known)}")


def load_benchmark(name_or_path: str | Path, *, properties: Any = None) -> Benchmark:
    """Read and validate a benchmark file; errors name the file, the field and the fix."""
    path, spec, name = _read("benchmark", name_or_path, properties)
    _refuse_unknown(path, spec, {f.name for f in fields(Benchmark)} - {"name", "entries",
                    "source", "context"} | {"models"})  # fmt: skip
    tuning_spec = spec.get("tuning") or {}
    if not isinstance(tuning_spec, dict):
        raise DataError(path, "tuning", "not a mapping", "write 'tuning: {search: grid, ...}'")
    _refuse_unknown(path, tuning_spec, {f.name for f in fields(Tuning)})
    tuning = Tuning(**tuning_spec)
    _check_search(path, tuning.search, tuning.scheduler)

    def need(key: str, kind: type) -> Any:
        value = spec.get(key)
        if not isinstance(value, kind) or not value:
            raise DataError(path, key, "missing or empty", f"give a non-empty {kind.__name__}")
        return value

    _check_per_dataset(path, tuning, need("datasets", list))

    entries, compared = [], []
    items = [e for item in need("models", list) for e in _expand_matrix(path, item)]
    for item in items:
        if isinstance(item, str):
            entries.append(Entry(item))
        elif isinstance(item, dict) and isinstance(item.get("model"), str):
            _refuse_unknown(path, item, {"model", "set", "label", "space", "datasets", "tuned_on",
                                         "teacher_from", "width", "compare_to"})  # fmt: skip
            others = item.get("compare_to") or []
            others = [others] if isinstance(others, str) else others
            label = item.get("label") or item["model"]
            compared += [[label, other] for other in others]
            space = dict(item.get("space") or {})
            for key, value in space.items():
                _check_dimension(path, tuning.search, key, value)
            only = item.get("datasets") or []
            if not (isinstance(only, list) and set(only) <= set(spec.get("datasets") or [])):
                raise DataError(
                    path, f"models ({item['model']}) datasets", f"bad value {only!r}",
                    "give a list of the benchmark's datasets (or leave it out: all of them)",
                )  # fmt: skip
            entries.append(
                Entry(
                    item["model"],
                    dict(item.get("set") or {}),
                    item.get("label", ""),
                    space,
                    only,
                    item.get("tuned_on", ""),
                    item.get("teacher_from", ""),
                    _width(path, item),
                )
            )
        else:
            raise DataError(
                path,
                "models",
                f"bad entry {item!r}",
                "use NAME or {model: NAME, set: {...}, label: NAME, space: {...}, datasets: [...], "
                "tuned_on: NAME, teacher_from: NAME, width: {of: NAME, ratio: R}, compare_to: "
                "NAME} (or a {matrix: {AXIS: {KEY: {...}}}, ...} of them)",
            )
    names = list(dict.fromkeys(e.name for e in entries))
    on: dict[str, dict[str, Entry]] = {}  # per dataset, its entries by name
    for dataset in spec["datasets"]:
        here = [e for e in entries if e.runs_on(dataset)]
        twice = sorted(name for name, n in Counter(e.name for e in here).items() if n > 1)
        if twice:
            raise DataError(
                path,
                "models",
                f"{twice[0]} is listed twice on {dataset}",
                "give entries of the same model distinct `label`s (or list each model once; "
                "entries sharing a label need `datasets` apart)",
            )
        _check_tuned_on(path, here, dataset)
        _check_built_from(path, here, dataset)
        on[dataset] = {e.name: e for e in here}

    def together(pair: list[str]) -> bool:  # both run on some dataset
        return any(set(pair) <= set(here) for here in on.values())

    comparisons = []
    pairs = spec.get("comparisons") or []
    if pairs == "all":  # every model against every model listed before it, where both run
        pairs = [[b, a] for i, a in enumerate(names) for b in names[i + 1 :] if together([a, b])]
    if not isinstance(pairs, list):
        raise DataError(path, "comparisons", f"bad value {pairs!r}", "give a list of pairs, or all")
    for pair in [*pairs, *compared]:
        if not (isinstance(pair, list) and len(pair) == 2 and set(pair) <= set(names)):
            raise DataError(
                path,
                "comparisons",
                f"bad entry {pair!r}",
                "use [NAME, REFERENCE] pairs of listed models (their labels where given)",
            )
        if not together(pair):
            raise DataError(
                path, "comparisons", f"{pair[0]} and {pair[1]} never run on the same dataset",
                "compare entries that share a dataset (see their `datasets`)",
            )  # fmt: skip
        if (pair[0], pair[1]) not in comparisons:
            comparisons.append((pair[0], pair[1]))
    for (model, reference), (dataset, here) in itertools.product(comparisons, on.items()):
        if not {model, reference} <= set(here):
            continue
        budgets = {n: tuning_budget(here[n], tuning) for n in (model, reference)}
        if budgets[model] != budgets[reference]:
            raise DataError(
                path,
                "comparisons",
                f"on {dataset}, {model} is tuned with {budgets[model]} trials and {reference} "
                f"with {budgets[reference]}",
                "give both sides of a comparison a space of the same size (or neither)",
            )
    metrics = [m.lower() for m in spec.get("metrics") or DEFAULT_METRICS]
    test, correction = spec.get("test", "t"), spec.get("correction", "holm")
    if test not in TESTS:
        raise DataError(path, "test", f"unknown {test!r}", f"use one of {TESTS}")
    if correction not in CORRECTIONS:
        raise DataError(
            path, "correction", f"unknown {correction!r}", f"use one of {tuple(CORRECTIONS)}"
        )
    reference = spec.get("reference")
    if reference is not None and reference not in names:
        raise DataError(path, "reference", f"{reference!r} is not a listed model", "name one")
    return Benchmark(
        name, need("datasets", list), need("seeds", list), metrics, entries, comparisons,
        test, correction, reference, str(path), tuning,
        compression=_compression(path, spec.get("compression"), names),
        dataset_set=_dataset_set(path, spec.get("dataset_set"), spec["datasets"]),
    )  # fmt: skip


def _merged(base: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``part`` over it, mappings merged key by key (``part`` wins)."""
    out = dict(base)
    for key, value in part.items():
        both = isinstance(out.get(key), dict) and isinstance(value, dict)
        out[key] = _merged(out[key], value) if both else value
    return out


def _filled(value: Any, keys: dict[str, str]) -> Any:
    """``value`` with ``{AXIS}`` in its strings (at any depth) replaced by ``keys[AXIS]``."""
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: keys.get(m[1], m[0]), value)
    if isinstance(value, dict):
        return {k: _filled(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, keys) for v in value]
    return value


def _placeholders(value: Any) -> set[str]:
    """The ``{NAME}`` placeholders in ``value``'s strings, at any depth."""
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, dict | list):
        return set().union(
            *map(_placeholders, value.values() if isinstance(value, dict) else value)
        )
    return set()


def _expand_matrix(path: Path, item: Any) -> list[Any]:
    """A ``models`` item: itself, or for a ``{matrix: {AXIS: {KEY: part}}, ...}`` one entry per
    combination of keys (the first axis outermost): the item's other keys with each chosen
    key's part merged over them (:func:`_merged`), ``{AXIS}`` in any value read as that
    axis's key, labelled by the keys joined by spaces unless the item gives a label."""
    if not (isinstance(item, dict) and "matrix" in item):
        return [item]
    axes, base = item["matrix"], {k: v for k, v in item.items() if k != "matrix"}
    where = "models (matrix)"
    if not (isinstance(axes, dict) and axes):
        raise DataError(path, where, f"bad value {axes!r}", "give {AXIS: {KEY: {...}, ...}}")
    for axis, parts in axes.items():
        bad = not (isinstance(parts, dict) and parts) or any(
            not isinstance(p, dict | None) for p in parts.values()
        )
        if bad:
            raise DataError(
                path, f"{where} {axis}", f"bad value {parts!r}",
                "give each key a mapping of entry fields ({} for none)",
            )  # fmt: skip
    used = _placeholders(item) - set(axes)
    if used:
        raise DataError(
            path, where, f"{{{sorted(used)[0]}}} names no axis", f"use one of {sorted(axes)}"
        )
    entries = []
    for combination in itertools.product(*(parts.items() for parts in axes.values())):
        keys = {axis: str(key) for axis, (key, _) in zip(axes, combination, strict=True)}
        entry = base
        for _, part in combination:
            entry = _merged(entry, part or {})
        entry = _filled(entry, keys)
        entry.setdefault("label", " ".join(keys.values()))
        entries.append(entry)
    return entries


def _dataset_set(path: Path, spec: Any, datasets: list[str]) -> dict[str, dict[str, Any]]:
    """A benchmark's ``dataset_set: {DATASET: {key: value}}``, its datasets checked (its keys
    are checked with every entry's settings, :func:`check_benchmark`)."""
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise DataError(path, "dataset_set", f"bad value {spec!r}",
                        "give {DATASET: {key: value}}")  # fmt: skip
    for dataset, settings in spec.items():
        if dataset not in datasets:
            raise DataError(path, f"dataset_set.{dataset}", "not one of the benchmark's datasets",
                            f"use one of {datasets}")  # fmt: skip
        if not isinstance(settings, dict):
            raise DataError(path, f"dataset_set.{dataset}", f"bad value {settings!r}",
                            "give {key: value}, e.g. {learning_rate: 0.01}")  # fmt: skip
    return {dataset: dict(settings) for dataset, settings in spec.items()}


def _compression(path: Path, spec: Any, names: list[str]) -> Compression | None:
    """A benchmark's ``compression: {teacher: ENTRY, tolerance: 0.02}``, checked."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise DataError(path, "compression", f"bad value {spec!r}", "give {teacher: ENTRY}")
    _refuse_unknown(path, spec, {f.name for f in fields(Compression)})
    if spec.get("teacher") not in names:
        raise DataError(path, "compression.teacher", f"{spec.get('teacher')!r} is not an entry",
                        f"name one of {names}")  # fmt: skip
    tolerance = spec.get("tolerance", 0.02)
    if not (isinstance(tolerance, int | float) and 0 <= tolerance < 1):
        raise DataError(path, "compression.tolerance", f"bad value {tolerance!r}",
                        "give a share in [0, 1), e.g. 0.02")  # fmt: skip
    return Compression(spec["teacher"], float(tolerance))


def load_sweep(name_or_path: str | Path, *, properties: Any = None) -> Sweep:
    """Read and validate a sweep file; errors name the file, the field and the fix."""
    path, spec, name = _read("sweep", name_or_path, properties)
    for key in ("model", "dataset", "space"):
        if not spec.get(key):
            raise DataError(path, key, "missing", f"add '{key}:' (see recbole_mmkd/specs.py)")
    _refuse_unknown(path, spec, {f.name for f in fields(Sweep)} - {"name", "overrides",
                    "source"} | {"set"})  # fmt: skip
    sweep = Sweep(name=name, overrides=dict(spec.pop("set", None) or {}), source=str(path), **spec)
    _check_search(path, sweep.search, sweep.scheduler)
    for key, value in sweep.space.items():
        _check_dimension(path, sweep.search, key, value)
    return sweep


def _check_search(path: Path, search: str, scheduler: str, *, key: str = "scheduler") -> None:
    if search not in SEARCHES:
        raise DataError(path, "search", f"unknown {search!r}", f"use one of {SEARCHES}")
    if scheduler not in SCHEDULERS:
        raise DataError(path, key, f"unknown {scheduler!r}", f"use one of {SCHEDULERS}")
    if scheduler == "halving" and search != "grid":
        raise DataError(
            path, key, "halving ranks the points of a grid",
            "use search: grid with it, or scheduler: asha / none",
        )  # fmt: skip


def tuning_budget(entry: Entry, tuning: Tuning) -> int:
    """How many trials an entry's search runs (0: not tuned)."""
    if not entry.space:
        return 0
    if tuning.search == "grid":
        return tuning.num_samples * math.prod(len(space_values(v)) for v in entry.space.values())
    return tuning.num_samples


def _parent(
    path: Path, entries: list[Entry], entry: Entry, key: str, name: str, dataset: str
) -> Entry:
    """The other entry that ``entry``'s ``key`` names among ``entries``, those that run on
    ``dataset``, as ``entry`` does."""
    by_name = {e.name: e for e in entries}
    where, parent = f"models ({entry.name}) {key}", by_name.get(name)
    if parent is None or parent is entry:
        raise DataError(path, where, f"no other entry named {name!r} runs on {dataset}",
                        f"name one of {sorted(set(by_name) - {entry.name})}, or give "
                        f"{entry.name} `datasets` that {name} runs on")  # fmt: skip
    return parent


def _check_tuned_on(path: Path, entries: list[Entry], dataset: str) -> None:
    """A ``tuned_on`` names another entry on the dataset (:func:`_parent`) that has a space
    and is not itself tuned on one."""
    for entry in (e for e in entries if e.tuned_on):
        parent = _parent(path, entries, entry, "tuned_on", entry.tuned_on, dataset)
        if not parent.space or parent.tuned_on:
            raise DataError(
                path, f"models ({entry.name}) tuned_on",
                f"{parent.name} has no space of its own on {dataset} to choose a point from",
                "name an entry with a `space` and no `tuned_on`",
            )  # fmt: skip


def _width(path: Path, item: dict[str, Any]) -> tuple[str, float] | None:
    """An entry's ``width: {of: NAME, ratio: R}`` as ``(NAME, R)``."""
    width = item.get("width")
    if width is None:
        return None
    ok = isinstance(width, dict) and set(width) == {"of", "ratio"}
    if not (ok and isinstance(width["of"], str) and isinstance(width["ratio"], int | float)
            and width["ratio"] > 0):  # fmt: skip
        raise DataError(path, f"models ({item.get('label') or item['model']}) width",
                        f"bad value {width!r}",
                        "give {of: ENTRY, ratio: R} with R > 0")  # fmt: skip
    return width["of"], float(width["ratio"])


def _check_built_from(path: Path, entries: list[Entry], dataset: str) -> None:
    """Among ``entries``, those that run on ``dataset``: ``teacher_from`` and ``width`` name
    another of them; a student taking its teacher from an entry sets no teacher of its own,
    one taking its width from an entry neither sets nor searches ``embedding_size``; no entry
    is built from itself through others."""
    by_name = {e.name: e for e in entries}
    for entry in entries:
        if entry.teacher_from:
            _parent(path, entries, entry, "teacher_from", entry.teacher_from, dataset)
        if entry.width:
            _parent(path, entries, entry, "width", entry.width[0], dataset)
        own = {*entry.overrides, *entry.space}
        for key, clash in (("teacher_from", {"teacher", "teacher_config"}),
                           ("width", {"embedding_size"})):  # fmt: skip
            if getattr(entry, key) and own & clash:
                raise DataError(path, f"models ({entry.name}) {key}",
                                f"it also sets {sorted(own & clash)}",
                                f"leave {sorted(clash)} to {key} (or drop {key})")  # fmt: skip
    for entry in entries:  # a cycle: following depends_on comes back to the entry
        seen, todo = set(), list(entry.depends_on)
        while todo:
            name = todo.pop()
            if name == entry.name:
                raise DataError(path, f"models ({entry.name})", "it is built from itself",
                                "break the cycle of tuned_on / teacher_from / width")  # fmt: skip
            if name not in seen and name in by_name:
                seen.add(name)
                todo.extend(by_name[name].depends_on)


def dependency_order(entries: list[Entry]) -> list[Entry]:
    """``entries`` with every entry after those of them it is built from (listed order kept
    otherwise); names outside ``entries`` are left to the caller."""
    by_name = {e.name: e for e in entries}
    ordered: dict[str, Entry] = {}
    visiting: set[str] = set()

    def visit(entry: Entry) -> None:
        if entry.name in ordered:
            return
        if entry.name in visiting:
            raise ConfigError("benchmark", entry.name, "is built from itself",
                              "break the cycle of tuned_on / teacher_from / width")  # fmt: skip
        visiting.add(entry.name)
        for name in entry.depends_on:
            if name in by_name:
                visit(by_name[name])
        ordered[entry.name] = entry

    for entry in entries:
        visit(entry)
    return list(ordered.values())


def resolve_entry(
    entry: Entry,
    settled: dict[str, Entry],
    *,
    width_of: Callable[[Entry], int],
    shared: dict[str, Any] | None = None,
) -> Entry:
    """``entry`` with what it takes from the entries it is built from, each already settled
    on the dataset (its chosen point in its overrides): ``tuned_on``'s chosen point,
    ``teacher_from``'s model and settings as teacher, ``width``'s ratio of the
    ``width_of`` of its entry; under all of them the dataset's ``shared`` settings
    (:meth:`Benchmark.dataset_settings`). Its own ``set`` wins over all of them."""
    taken: dict[str, Any] = {}
    if entry.tuned_on:
        parent = settled[entry.tuned_on]
        taken.update({key: parent.overrides[key] for key in parent.space})
    if entry.teacher_from:
        teacher = settled[entry.teacher_from]
        taken.update(teacher=teacher.model, teacher_config=dict(teacher.overrides))
    if entry.width:
        name, ratio = entry.width
        taken["embedding_size"] = max(1, round(ratio * width_of(settled[name])))
    overrides = {**(shared or {}), **taken, **entry.overrides}
    return replace(entry, overrides=overrides) if overrides != entry.overrides else entry


def entry_width(
    entry: Entry, dataset: str, *, data_path: str | Path | None = None, properties: Any = None
) -> int:
    """The ``embedding_size`` an entry runs with on ``dataset``: its own setting (or chosen
    point), else its model's configured one."""
    if "embedding_size" in entry.overrides:
        return int(entry.overrides["embedding_size"])
    config = config_for(entry.model, dataset, overrides=entry.overrides, data_path=data_path,
                        properties=properties)  # fmt: skip
    return int(config["embedding_size"])


def tuning_sweep(bench: Benchmark, entry: Entry, dataset: str) -> Sweep:
    """The sweep that tunes ``entry`` on ``dataset`` (validation only, the tuning's seed)."""
    t = bench.tuning.on(dataset)
    return Sweep(
        name=re.sub(r"[^A-Za-z0-9._-]+", "_", f"{bench.name}-{dataset}-{entry.name}"),
        model=entry.model,
        dataset=dataset,
        space=entry.space,
        search=t.search,
        num_samples=t.num_samples,
        scheduler=t.scheduler,
        grace_period=t.grace_period,
        reduction_factor=t.reduction_factor,
        overrides=entry.overrides,
        seed=t.seed,
        final_seeds=[],
        cpus_per_trial=t.cpus_per_trial,
        gpus_per_trial=t.gpus_per_trial,
        max_concurrent=t.max_concurrent,
        source=f"{bench.source}: models ({entry.name}) space",
    )


def _check_dimension(path: Path, search: str, key: str, value: Any) -> None:
    if isinstance(value, list) and value:
        return
    if not (isinstance(value, dict) and len(value) == 1 and next(iter(value)) in DISTRIBUTIONS):
        raise DataError(
            path, f"space.{key}", f"bad value {value!r}", f"use a list or one of {DISTRIBUTIONS}"
        )
    ((kind, args),) = value.items()
    if kind != "choice" and search == "grid":
        raise DataError(path, f"space.{key}", f"{kind} in a grid search", "list the grid values")
    if kind != "choice" and not (isinstance(args, list) and len(args) == 2 and args[0] < args[1]):
        raise DataError(path, f"space.{key}", f"bad {kind} bounds {args!r}", "use [low, high]")
    if kind == "loguniform" and args[0] <= 0:
        raise DataError(path, f"space.{key}", "loguniform bound <= 0", "use positive bounds")


def space_values(value: Any) -> list[Any]:
    """The values a space dimension can take that a check can try: a list's or a choice's
    values, a distribution's two bounds."""
    if isinstance(value, list):
        return value
    ((_kind, args),) = value.items()
    return list(args)


def check_benchmark(
    bench: Benchmark, *, data_path: str | Path | None = None, properties: Any = None
) -> None:
    """Build and check every (dataset, entry) configuration, so a bad key or value in any
    entry is refused before the first run trains."""
    common = {"data_path": data_path, "properties": properties}
    for dataset in bench.datasets:
        here = bench.on(dataset)
        for i, entry in enumerate(bench.entries):
            if not entry.runs_on(dataset):
                continue
            # built from the entries it names at their own settings (points not chosen yet)
            parents = {name: here.entry(name) for name in entry.depends_on}
            entry = resolve_entry(
                replace(entry, tuned_on=""), parents,
                width_of=lambda e, d=dataset: entry_width(e, d, **common),
                shared=bench.dataset_settings(entry, dataset),
            )  # fmt: skip
            source = f"{bench.source}: models[{i}] ({entry.name}) set" + (
                f" over dataset_set.{dataset}" if dataset in bench.dataset_set else ""
            )
            config = config_for(
                entry.model,
                dataset,
                overrides={**entry.overrides, "seed": bench.seeds[0]},
                data_path=data_path,
                properties=properties,
                source=source,
            )
            check_run(config, source=source)
            check_kd_settings(config, source=source)
            if entry.space:
                check_sweep(
                    tuning_sweep(bench, entry, dataset), data_path=data_path, properties=properties
                )


def check_sweep(
    sweep: Sweep, *, data_path: str | Path | None = None, properties: Any = None
) -> None:
    """Check the sweep's fixed overrides, then each value (or bound) of each swept key."""
    common = {"data_path": data_path, "properties": properties}
    fixed = {**sweep.overrides, "seed": sweep.seed}
    config = config_for(
        sweep.model, sweep.dataset, overrides=fixed, source=f"{sweep.source}: set", **common
    )
    check_run(config, source=f"{sweep.source}: set")
    check_kd_settings(config, source=f"{sweep.source}: set")
    step = config["eval_step"]
    if sweep.scheduler == "halving" and sweep.grace_period % step:
        raise ConfigError(
            sweep.source, "grace_period",
            f"{sweep.grace_period} is not a multiple of eval_step {step}: a round's cap would "
            "fall between two validations (a first round shorter than eval_step validates at "
            "its cap, where a run of the point does not; a longer one ends its ledger before "
            "the cap, so the point reads as stopped early and is never continued)",
            f"set grace_period to a multiple of {step}",
        )  # fmt: skip
    for key, value in sweep.space.items():
        for point in space_values(value):
            source = f"{sweep.source}: space.{key}"
            point_config = config_for(
                sweep.model, sweep.dataset, overrides={**fixed, key: point}, source=source,
                **common,
            )  # fmt: skip
            check_kd_settings(point_config, source=source)
