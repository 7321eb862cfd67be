"""Seconds per training epoch of MMRec's code and of this project's, model by model, on the
same TikTok split, one process at a time on an otherwise idle machine.

    python bench/mmrec/prepare_mmrec.py --mmrec /work/.mirror/enoche+MMRec/repo --out /tmp/mmrec
    OMP_NUM_THREADS=1 python bench/mmrec/epoch_cost.py --prepared /tmp/mmrec --epochs 3 \
        --models MGCN LGMRec SMORE DRAGON DAMRS

MMRec's side is its own log line per epoch (``epoch N training [time: ...]``, the epoch's
training loop including its ``pre_epoch_processing``), ours the RunResult's training seconds
over the epochs run (the same loop and ``on_epoch_start``); evaluation is outside both. The
first epoch is left out of both means (warm-up: graph caches, allocator). Settings are the
side-by-side's (:data:`side_by_side.SETTINGS`). Both sides run with the same glibc allocator
settings (``--allocator``: by default freed memory kept, what this project's CLI and trials
run with, :mod:`recbole_mmkd.allocator`; MMRec's process through glibc's environment
variables). Prints the table and writes ``results/reference/epoch_cost.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from side_by_side import MMREC_NAMES, OUT, ROOT, SETTINGS

COLUMNS = ["model", "MMRec s/epoch", "ours s/epoch", "ours / MMRec", "epochs", "seed", "allocator",
           "measured"]  # fmt: skip


def mmrec_epochs(
    model: str, prepared: Path, epochs: int, seed: int, *, env: dict[str, str]
) -> list[float]:
    """MMRec's seconds per training epoch, its process under the environment ``env`` adds."""
    _, settings = SETTINGS[model]
    args = [f"{k}={json.dumps(v)}" for k, v in {**settings, "seed": [seed]}.items()]
    command = [sys.executable, "run_pinned.py", "-m", MMREC_NAMES.get(model, model),
               "-d", "tiktok", "--set", f"epochs={epochs}", *args]  # fmt: skip
    done = subprocess.run(command, cwd=prepared / "MMRec" / "src", capture_output=True,
                          text=True, check=False, env={**os.environ, **env})  # fmt: skip
    log = done.stdout + done.stderr
    if done.returncode:
        raise SystemExit(f"MMRec's {model} failed:\n{log[-3000:]}")
    return [float(s) for s in re.findall(r"epoch \d+ training \[time: ([0-9.]+)s", log)]


def our_epochs(model: str, epochs: int, seed: int) -> list[float]:
    """Per-epoch training seconds of this project's run (a RunResult records the total; one
    run of 1 epoch and one of ``epochs`` give the warm-up epoch and the rest)."""
    sys.path.insert(0, str(ROOT))
    from recbole_mmkd.pipeline import run_one

    overrides, _ = SETTINGS[model]
    overrides = {**overrides, "robustness_shares": []}  # training cost only
    with tempfile.TemporaryDirectory() as tmp:
        first = run_one(model, "tiktok", seed, Path(tmp) / "a",
                        overrides={**overrides, "epochs": 1}, reuse=False)  # fmt: skip
        full = run_one(model, "tiktok", seed, Path(tmp) / "b",
                       overrides={**overrides, "epochs": epochs}, reuse=False)  # fmt: skip
    rest = (full.train_seconds - first.train_seconds) / (epochs - 1)
    return [first.train_seconds] + [rest] * (epochs - 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--models", nargs="+", default=sorted(SETTINGS), choices=sorted(SETTINGS))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--allocator", choices=["kept", "default"], default="kept",
                        help="glibc's settings for both sides: freed memory kept (what this "
                        "project's CLI and trials run with) or glibc's defaults")  # fmt: skip
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from recbole_mmkd.allocator import KEEP_ENV, keep_freed_memory

    env = KEEP_ENV if args.allocator == "kept" else {}
    if env:
        keep_freed_memory()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first is left out)")
    path = OUT / "epoch_cost.md"
    rows = stored_rows(path)
    for model in args.models:
        theirs = mmrec_epochs(model, args.prepared, args.epochs, args.seed, env=env)[1:]
        ours = our_epochs(model, args.epochs, args.seed)[1:]
        a, b = sum(theirs) / len(theirs), sum(ours) / len(ours)
        cells = [
            model,
            f"{a:.2f}",
            f"{b:.2f}",
            f"{b / a:.2f}",
            args.epochs,
            args.seed,
            args.allocator,
            date.today(),
        ]
        rows[model] = "| " + " | ".join(map(str, cells)) + " |"
        print(rows[model], flush=True)
    header = "| " + " | ".join(COLUMNS) + " |\n" + "|---" * len(COLUMNS) + "|"
    text = ("`OMP_NUM_THREADS=1`, the two projects one after the other, the first epoch left out "
            "of both means; a row is replaced when its model is measured again.\n\n"
            + "\n".join([header, *rows.values()]) + "\n")  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)


def stored_rows(path: Path) -> dict[str, str]:
    """The table rows already in ``path``, by model."""
    lines = path.read_text().splitlines() if path.exists() else []
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    table = [
        (row[0], line) for line, row in zip(lines, cells, strict=True) if line.startswith("| ")
    ]
    return {model: line for model, line in table if model != COLUMNS[0] and model[0] != "-"}


if __name__ == "__main__":
    main()
