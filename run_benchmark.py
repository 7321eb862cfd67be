#!/usr/bin/env python
"""recbole-mmkd command line.

python run_benchmark.py run default                # the default benchmark on the shipped TikTok
python run_benchmark.py run kd                     # properties/benchmark/kd.yaml
python run_benchmark.py run --dataset ml-100k-mm --models BPR LightGCN VBPR --seeds 1 2 3
python run_benchmark.py sweep sgfd-bm3 [--resume] [--address auto]
python run_benchmark.py leaderboard results/default
python run_benchmark.py import --format mmrec SRC NAME
python run_benchmark.py extract-text-features NAME --items FILE --text-columns title
python run_benchmark.py build-ml100k-mm
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from recbole.utils.logger import RemoveColorFilter

import recbole_mmkd  # noqa: F401  (compat shims before recbole)
from recbole_mmkd.config import DATASETS, ROOT
from recbole_mmkd.data.files import DataError
from recbole_mmkd.report.stats import CORRECTIONS, TESTS

if TYPE_CHECKING:
    from recbole_mmkd.benchmark import Benchmark

DEFAULT_MODELS = ["BPR", "LightGCN", "VBPR"]  # ad hoc runs (no benchmark name)
DEFAULT_SEEDS = [2020, 2021, 2022]


def _parse_overrides(pairs: list[str]) -> dict:
    """``key=value`` pairs, values parsed as YAML (numbers, lists, booleans)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        out[key] = yaml.safe_load(value)
    return out


def cmd_run(args: argparse.Namespace) -> None:
    from recbole_mmkd.benchmark import Benchmark, Entry, load_benchmark, report, run_benchmark
    from recbole_mmkd.report.leaderboard import leaderboard, to_markdown

    overrides = _parse_overrides(args.set)
    if args.benchmark:
        bench = load_benchmark(args.benchmark)
        if overrides:
            entries = [replace(e, overrides={**e.overrides, **overrides}) for e in bench.entries]
            bench = replace(bench, entries=entries)
        whole = bench
        bench = _restrict(bench, args.dataset, args.seeds, args.models)
    else:
        entries = [Entry(model, overrides) for model in args.models or DEFAULT_MODELS]
        bench = Benchmark(
            "adhoc",
            [args.dataset or "tiktok"],
            args.seeds or DEFAULT_SEEDS,
            ["recall@20", "ndcg@20"],
            entries,
            [],
        )
    out = Path(args.out or ROOT / "results" / (args.benchmark or "default"))
    start = time.perf_counter()
    runs = run_benchmark(bench, out, args.data_path, args.force)
    if args.benchmark and (bench.entries, bench.seeds) != (whole.entries, whole.seeds):
        # some of a benchmark's models or seeds: its tables and figures describe them all, so
        # they stay until a run with all of them (which reuses every finished run) rewrites
        # them; a run of one whole dataset writes that dataset's tables
        for dataset, results in runs.items():
            table = leaderboard(results, bench.metrics)
            print(f"## {dataset}\n\n{to_markdown(table, bench.metrics)}\n")
        print(
            f"(part of {bench.name}: its tables in {out} are written by a run of all its models "
            "and seeds)"
        )
    else:
        print(report(bench, runs, out))  # this configuration only, not older runs in the folder
    n_runs = sum(len(r) for r in runs.values())
    print(f"\n{n_runs} runs in {out}; {time.perf_counter() - start:.0f} s")


def _restrict(
    bench: Benchmark,
    dataset: str | None,
    seeds: list[int] | None,
    models: list[str] | None = None,
) -> Benchmark:
    """The part of a benchmark that ``--dataset`` / ``--seeds`` / ``--models`` name (models by
    their table names), so that one benchmark can be split across processes or machines sharing
    its results folder (a later run of the whole benchmark reuses every finished run and reports
    them together)."""
    if dataset is not None and dataset not in bench.datasets:
        raise SystemExit(f"--dataset {dataset!r}: benchmark {bench.name} runs {bench.datasets}")
    if seeds is not None and not set(seeds) <= set(bench.seeds):
        raise SystemExit(f"--seeds {seeds}: benchmark {bench.name} runs seeds {bench.seeds}")
    names = [e.name for e in bench.entries]
    if models is not None and not set(models) <= set(names):
        raise SystemExit(f"--models {models}: benchmark {bench.name} runs {names}")
    return replace(
        bench,
        entries=[e for e in bench.entries if models is None or e.name in models],
        datasets=[dataset] if dataset else bench.datasets,
        seeds=[s for s in bench.seeds if seeds is None or s in seeds],
    )


def cmd_sweep(args: argparse.Namespace) -> None:
    from recbole_mmkd.benchmark import Benchmark, Entry, report
    from recbole_mmkd.tune import Sweep, final_runs, load_sweep, run_sweep, select_best

    sweep = load_sweep(args.name)
    if args.set:
        fields = {**sweep.__dict__, "overrides": {**sweep.overrides, **_parse_overrides(args.set)}}
        sweep = Sweep(**fields)
    out = Path(args.out or ROOT / "results" / "sweeps" / args.name)
    table = run_sweep(sweep, out, args.data_path, args.resume, args.address)
    best = select_best(table)
    print(table.to_markdown(index=False))
    print(f"\nbest on validation: trial {best['trial_id']} ({best['best_valid']:.5f})")
    if args.no_final:
        return
    runs = final_runs(sweep, best, out, args.data_path)
    bench = Benchmark(sweep.name, [sweep.dataset], sweep.final_seeds, ["recall@20", "ndcg@20"],
                      [Entry(sweep.model)], [])  # fmt: skip
    print(report(bench, {sweep.dataset: runs}, out))


def cmd_report(args: argparse.Namespace) -> None:
    from recbole_mmkd.benchmark import Benchmark, report
    from recbole_mmkd.report.leaderboard import label_runs, load_results

    folder = Path(args.results)
    results = label_runs(load_results(folder))
    if not results:
        raise SystemExit(f"{folder}: no RunResults (result.json) under it; run models first")
    runs: dict[str, list] = {}
    for r in results:
        runs.setdefault(r.dataset, []).append(r)
    names = sorted({r.model for r in results})
    if args.reference and args.reference not in names:
        raise SystemExit(f"--reference {args.reference!r} is not among {names}")
    pairs = [(n, args.reference) for n in names if args.reference and n != args.reference]
    seeds = sorted({r.seed for r in results})
    bench = Benchmark(folder.name, list(runs), seeds, args.metrics, [], pairs, args.test,
                      args.correction, args.reference)  # fmt: skip
    print(report(bench, runs, folder, link_comparisons=False))


def cmd_leaderboard(args: argparse.Namespace) -> None:
    from recbole_mmkd.report.leaderboard import leaderboard, load_results, to_markdown

    print(to_markdown(leaderboard(load_results(Path(args.results)))))


def cmd_import(args: argparse.Namespace) -> None:
    from recbole_mmkd.data.importers import import_dataset

    dest = import_dataset(
        args.format,
        Path(args.src),
        args.name,
        Path(args.dest),
        args.overwrite,
        args.valid_ratio,
        args.seed,
    )
    print(f"imported into {dest}")


def cmd_extract_text(args: argparse.Namespace) -> None:
    from recbole_mmkd.data.text import extract_text_features

    data_dir = Path(args.data_path) / args.name
    path = extract_text_features(
        data_dir, args.name, Path(args.items), args.text_columns, args.modality
    )
    print(f"wrote {path}")


def cmd_build_ml100k(args: argparse.Namespace) -> None:
    from recbole_mmkd.data.movielens import build

    print(f"built {build(Path(args.dest), args.overwrite)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every epoch")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run a benchmark (or ad hoc models), then report")
    run.add_argument(
        "benchmark", nargs="?", help="properties/benchmark/NAME.yaml (else --dataset/--models)"
    )
    run.add_argument(
        "--dataset", help="dataset of an ad hoc run (default tiktok), or one of a benchmark's"
    )
    run.add_argument(
        "--models",
        nargs="+",
        help=f"models of an ad hoc run (default {DEFAULT_MODELS}), or a "
        "benchmark's subset by table name",
    )
    run.add_argument(
        "--seeds", nargs="+", type=int, help=f"default {DEFAULT_SEEDS}, or a benchmark's subset"
    )
    run.add_argument("--out", help="results folder (default: results/<benchmark or default>)")
    run.add_argument("--data-path", default=str(DATASETS))
    run.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    run.add_argument("--force", action="store_true", help="re-train runs already on disk")
    run.set_defaults(func=cmd_run)

    sweep = sub.add_parser("sweep", help="Ray Tune sweep of properties/sweep/NAME.yaml")
    sweep.add_argument("name")
    sweep.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
    sweep.add_argument(
        "--address", help="join an existing Ray cluster (e.g. auto, ray://host:10001)"
    )
    sweep.add_argument("--out", help="folder (default: results/sweeps/NAME)")
    sweep.add_argument("--data-path", default=str(DATASETS))
    sweep.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="fixed overrides")
    sweep.add_argument("--no-final", action="store_true", help="skip the re-run on final_seeds")
    sweep.set_defaults(func=cmd_sweep)

    rep = sub.add_parser(
        "report", help="tables, tests and figures of every RunResult in a folder (no training)"
    )
    rep.add_argument("results")
    rep.add_argument("--reference", help="compare every other model with this one")
    rep.add_argument("--metrics", nargs="+", default=["recall@20", "ndcg@20"])
    rep.add_argument("--test", default="t", choices=TESTS)
    rep.add_argument("--correction", default="holm", choices=list(CORRECTIONS))
    rep.set_defaults(func=cmd_report)

    board = sub.add_parser("leaderboard", help="print the leaderboard of a results folder")
    board.add_argument("results")
    board.set_defaults(func=cmd_leaderboard)

    imp = sub.add_parser("import", help="convert a public layout into dataset/NAME")
    imp.add_argument("--format", required=True, choices=["mmrec", "sgfd", "mmssl"])
    imp.add_argument("src")
    imp.add_argument("name")
    imp.add_argument("--dest", default=str(DATASETS))
    imp.add_argument("--overwrite", action="store_true")
    imp.add_argument("--valid-ratio", type=float, default=0.1, help="sgfd: share of train -> valid")
    imp.add_argument("--seed", type=int, default=0, help="sgfd: seed of the validation draw")
    imp.set_defaults(func=cmd_import)

    text = sub.add_parser("extract-text-features", help="embed item texts (needs the 'text' extra)")
    text.add_argument("name")
    text.add_argument("--items", required=True, help="TSV with itemID and text columns")
    text.add_argument("--text-columns", nargs="+", required=True)
    text.add_argument("--modality", default="text")
    text.add_argument("--data-path", default=str(DATASETS))
    text.set_defaults(func=cmd_extract_text)

    ml = sub.add_parser(
        "build-ml100k-mm", help="rebuild dataset/ml-100k-mm (needs the 'text' extra)"
    )
    ml.add_argument("--dest", default=str(DATASETS))
    ml.add_argument("--overwrite", action="store_true")
    ml.set_defaults(func=cmd_build_ml100k)

    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["run", *(argv or [])])
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    console.addFilter(RemoveColorFilter())
    if not args.verbose:  # progress lines of this package and warnings; not RecBole's chatter
        console.addFilter(
            lambda r: r.levelno >= logging.WARNING or r.name.startswith("recbole_mmkd")
        )
    logging.basicConfig(level=logging.INFO, handlers=[console])
    # RecBole 1.2.1 deprecation noise (pandas inplace fillna, torch.cuda.amp); see compat.py
    warnings.filterwarnings("ignore", category=FutureWarning, module="recbole")
    try:
        args.func(args)
    except (DataError, FileExistsError, ImportError, KeyError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
