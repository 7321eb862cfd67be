"""The ``recbole-mmkd`` command line: a thin shell over :mod:`recbole_mmkd.api`.

recbole-mmkd run default                # the default benchmark on the shipped TikTok
recbole-mmkd run kd [--dataset tiktok] [--models LightGCN] [--seeds 2020]
recbole-mmkd run --dataset ml-100k-mm --models BPR LightGCN VBPR --seeds 1 2 3
recbole-mmkd sweep sgfd-bm3 [--resume] [--address auto]
recbole-mmkd report results/kd --reference LightGCN
recbole-mmkd leaderboard results/default
recbole-mmkd carry results/kd --benchmark kd  # move stored runs (and sweeps) to the current code
recbole-mmkd import --format mmrec SRC NAME
recbole-mmkd extract-text-features NAME --items FILE --text-columns title
recbole-mmkd build-ml100k-mm

Errors a user can cause (an unknown key, a bad value, a bad file) print one line and exit 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
import warnings
from pathlib import Path

import yaml

import recbole_mmkd  # noqa: F401  (compat shims before recbole)
from recbole_mmkd.allocator import keep_freed_memory
from recbole_mmkd.config import DATASETS, dataset_root
from recbole_mmkd.errors import ConfigError, MMKDError

DEFAULT_MODELS = ["BPR", "LightGCN", "VBPR"]  # ad hoc runs (no benchmark name)


def parse_overrides(pairs: list[str]) -> dict:
    """``key=value`` pairs, values parsed as YAML (numbers, lists, booleans; ``1e-3`` too)."""
    out = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError("--set", pair, "is not key=value", "write --set key=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError("--set", key, f"{text!r} is not a value", "quote it") from None
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        out[key] = value
    return out


def cmd_run(args: argparse.Namespace) -> None:
    from recbole_mmkd import api
    from recbole_mmkd.benchmark import is_part
    from recbole_mmkd.reporting.leaderboard import leaderboard, to_markdown
    from recbole_mmkd.specs import load_benchmark

    overrides = parse_overrides(args.set)
    common = {"data_path": args.data_path, "properties": args.properties}
    start = time.perf_counter()
    if args.benchmark and (args.plan or args.tune_only):
        part = {"datasets": [args.dataset] if args.dataset else None, "models": args.models,
                "out": args.out, **common}  # fmt: skip
        if args.plan:
            tables = api.plan_benchmark(args.benchmark, seeds=args.seeds, **part)
            what = "what a run has left to do; nothing trained"
        else:
            tables = api.tune_benchmark(args.benchmark, address=args.address, **part)
            what = "validation; no final seed trained"
        for dataset, table in tables.items():
            print(f"## {dataset} ({what})\n\n{table.to_markdown(index=False)}\n")
        return
    if args.benchmark:
        report = api.run_benchmark(
            args.benchmark,
            datasets=[args.dataset] if args.dataset else None,
            models=args.models,
            seeds=args.seeds,
            overrides=overrides,
            out=args.out,
            force=args.force,
            address=args.address,
            **common,
        )
        bench = report.bench
        if is_part(bench, load_benchmark(args.benchmark, properties=args.properties)):
            for dataset, part in report.datasets.items():
                print(f"## {dataset}\n\n{to_markdown(part.leaderboard, metrics=bench.metrics)}\n")
            print(f"(part of {bench.name}: its tables are written by a run of all its models "
                  "and seeds)")  # fmt: skip
        else:
            print(report.to_markdown())
        n_runs = sum(len(d.results) for d in report.datasets.values())
    else:
        runs = api.run_models(
            args.models or DEFAULT_MODELS,
            args.dataset or "tiktok",
            seeds=args.seeds or api.DEFAULT_SEEDS,
            overrides=overrides,
            out=args.out,
            reuse=not args.force,
            address=args.address,
            **common,
        )
        for dataset, results in runs.items():
            print(f"## {dataset}\n\n{to_markdown(leaderboard(results))}\n")
        n_runs = sum(len(r) for r in runs.values())
    print(f"\n{n_runs} runs; {time.perf_counter() - start:.0f} s")


def cmd_sweep(args: argparse.Namespace) -> None:
    from recbole_mmkd import api

    result = api.sweep(
        args.name,
        resume=args.resume,
        overrides=parse_overrides(args.set),
        out=args.out,
        address=args.address,
        final=not args.no_final,
        data_path=args.data_path,
        properties=args.properties,
    )
    print(result.trials.to_markdown(index=False))
    best = result.best
    print(f"\nbest on validation: trial {best['trial_id']} ({best['best_valid']:.5f})")
    if result.report is not None:
        print(result.report.to_markdown())


def cmd_report(args: argparse.Namespace) -> None:
    from recbole_mmkd import api

    report = api.report(
        args.results,
        reference=args.reference,
        metrics=args.metrics,
        test=args.test,
        correction=args.correction,
        data_path=args.data_path,
        properties=args.properties,
    )
    report.save(Path(args.results))
    print(report.to_markdown())


def cmd_leaderboard(args: argparse.Namespace) -> None:
    from recbole_mmkd import api
    from recbole_mmkd.reporting.leaderboard import leaderboard, to_markdown

    results = api.load_results(Path(args.results))
    if not results:
        raise ConfigError("leaderboard", args.results, "holds no RunResults", "run models first")
    print(to_markdown(leaderboard(results)))


def cmd_carry(args: argparse.Namespace) -> None:
    from recbole_mmkd.benchmark import restrict
    from recbole_mmkd.carry import carry_folder, carry_sweeps
    from recbole_mmkd.specs import load_benchmark

    common = {"data_path": args.data_path, "properties": args.properties}
    bench = load_benchmark(args.benchmark, properties=args.properties) if args.benchmark else None
    datasets = [args.dataset] if args.dataset else None
    if bench is not None and datasets is not None:
        bench = restrict(bench, datasets=datasets)
    lines = carry_folder(
        Path(args.results), datasets=datasets, epochs=args.epochs, dry_run=args.dry_run, **common
    )
    for line in lines:
        print(line, flush=True)
    if bench is not None:
        sweeps = carry_sweeps(
            bench, Path(args.results), epochs=args.epochs, dry_run=args.dry_run, **common
        )
        for line in sweeps:
            print(line, flush=True)


def cmd_export(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from recbole_mmkd.serving import export_tables, full_sort_ms, table_bytes

    path = export_tables(
        args.model,
        args.dataset,
        args.to,
        seed=args.seed,
        overrides=parse_overrides(args.set),
        out=args.out,
        data_path=args.data_path,
        properties=args.properties,
        overwrite=args.overwrite,
    )
    with np.load(path) as z:
        user, item = torch.from_numpy(z["user"]), torch.from_numpy(z["item"])
    print(f"{path}: {user.shape[0] - 1} users x {item.shape[0] - 1} items, width "
          f"{user.shape[1]}; tables {table_bytes(user, item) / 2**20:.1f} MiB, full sort "
          f"{full_sort_ms(user, item):.1f} ms per 1,000 users on "
          f"{torch.get_num_threads()} threads")  # fmt: skip


def cmd_import(args: argparse.Namespace) -> None:
    from recbole_mmkd.data.importers import import_dataset

    dest = import_dataset(
        args.format,
        Path(args.src),
        args.name,
        Path(args.dest),
        overwrite=args.overwrite,
        valid_ratio=args.valid_ratio,
        seed=args.seed,
    )
    print(f"imported into {dest}")


def cmd_extract_text(args: argparse.Namespace) -> None:
    from recbole_mmkd.data.text import extract_text_features

    data_dir = dataset_root(args.name, args.data_path) / args.name
    path = extract_text_features(
        data_dir, args.name, Path(args.items), args.text_columns, modality=args.modality
    )
    print(f"wrote {path}")


def cmd_build_ml100k(args: argparse.Namespace) -> None:
    from recbole_mmkd.data.movielens import build

    print(f"built {build(Path(args.dest), overwrite=args.overwrite)}")


def _where(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-path", help="folder of your datasets (before $RECBOLE_MMKD_DATA and the shipped)"
    )
    parser.add_argument("--properties", help="properties folder of your own, over the shipped one")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recbole-mmkd",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    run.add_argument("--seeds", nargs="+", type=int, help="default 2020 2021 2022, or a subset")
    run.add_argument("--out", help="results folder (default: results/<benchmark or adhoc>)")
    run.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    run.add_argument("--force", action="store_true", help="re-train runs already on disk")
    run.add_argument(
        "--address",
        help="a benchmark's runs as tasks on a Ray cluster (auto, HOST:PORT); the datasets "
        "and --out on a file system every node shares",
    )
    run.add_argument(
        "--tune-only",
        action="store_true",
        help="a benchmark's validation searches alone: its tuning table, no final seed",
    )
    run.add_argument(
        "--plan",
        action="store_true",
        help="print what a benchmark's run has left to do (searches, seeds stored), train nothing",
    )
    _where(run)
    run.set_defaults(func=cmd_run)

    sweep = sub.add_parser("sweep", help="Ray Tune sweep of properties/sweep/NAME.yaml")
    sweep.add_argument("name")
    sweep.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
    sweep.add_argument(
        "--address", help="join an existing Ray cluster (e.g. auto, ray://host:10001)"
    )
    sweep.add_argument("--out", help="folder (default: results/sweeps/NAME)")
    sweep.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="fixed overrides")
    sweep.add_argument("--no-final", action="store_true", help="skip the re-run on final_seeds")
    _where(sweep)
    sweep.set_defaults(func=cmd_sweep)

    rep = sub.add_parser(
        "report", help="tables, tests and figures of every RunResult in a folder (no training)"
    )
    rep.add_argument("results")
    rep.add_argument("--reference", help="compare every other model with this one")
    rep.add_argument("--metrics", nargs="+", default=["recall@20", "ndcg@20"])
    rep.add_argument("--test", default="t", choices=["t", "randomisation", "wilcoxon"])
    rep.add_argument("--correction", default="holm", choices=["holm", "bh", "none"])
    _where(rep)
    rep.set_defaults(func=cmd_report)

    board = sub.add_parser("leaderboard", help="print the leaderboard of a results folder")
    board.add_argument("results")
    board.set_defaults(func=cmd_leaderboard)

    carry = sub.add_parser(
        "carry", help="move stored runs to the current code where a fingerprint replay matches"
    )
    carry.add_argument("results")
    carry.add_argument("--epochs", type=int, default=3, help="epochs replayed per run")
    carry.add_argument("--dry-run", action="store_true", help="compare, move nothing")
    carry.add_argument("--dataset", help="the runs (and sweeps) of this dataset only")
    carry.add_argument(
        "--benchmark",
        help="the benchmark whose results these are: also carries its tuning sweeps, each "
        "vouched for by the carried run at its chosen point",
    )
    _where(carry)
    carry.set_defaults(func=cmd_carry)

    export = sub.add_parser(
        "export", help="write a trained model's user and item tables (.npz) to serve elsewhere"
    )
    export.add_argument("model")
    export.add_argument("--dataset", default="tiktok")
    export.add_argument("--seed", type=int, default=2020)
    export.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides"
    )
    export.add_argument("--out", default="results/adhoc", help="where its run is (or is trained)")
    export.add_argument("--to", required=True, help="the .npz file to write")
    export.add_argument("--overwrite", action="store_true", help="replace an existing --to file")
    _where(export)
    export.set_defaults(func=cmd_export)

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
    text.add_argument("--data-path", help="folder holding dataset NAME (default: shipped)")
    text.set_defaults(func=cmd_extract_text)

    ml = sub.add_parser(
        "build-ml100k-mm", help="rebuild dataset/ml-100k-mm (needs the 'text' extra)"
    )
    ml.add_argument("--dest", default=str(DATASETS))
    ml.add_argument("--overwrite", action="store_true")
    ml.set_defaults(func=cmd_build_ml100k)
    return parser


def _logging(verbose: bool) -> None:
    from recbole.utils.logger import RemoveColorFilter

    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    console.addFilter(RemoveColorFilter())
    if not verbose:  # progress lines of this package and warnings; not RecBole's chatter
        console.addFilter(
            lambda r: r.levelno >= logging.WARNING or r.name.startswith("recbole_mmkd")
        )
    logging.basicConfig(level=logging.INFO, handlers=[console], force=True)
    # RecBole 1.2.1 deprecation noise (pandas inplace fillna, torch.cuda.amp); see compat.py
    warnings.filterwarnings("ignore", category=FutureWarning, module="recbole")


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["run", *(argv if argv is not None else sys.argv[1:])])
    _logging(args.verbose)
    keep_freed_memory()
    try:
        args.func(args)
    except MMKDError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
