"""Every model of ``step_check.py`` beside MMRec, one process each, into one table.

    OMP_NUM_THREADS=1 python bench/mmrec/step_check_all.py --prepared /tmp/mmrec \\
        [--models MGCN ...] [--out results/reference/step_check.md]

Each model runs ``step_check.py MODEL --their-graphs`` (both sides on MMRec's graphs, random
draws inside the loss shared, so that only the model differs) in a fresh process (the checks
replace torch functions for their random draws). The table gives, per model, the two losses
and their relative difference, the parameter whose gradient differs most against its largest
entry, and the largest full-sort score difference of 8 users against the largest score;
``step_check.py MODEL`` prints the rest (features, graphs, parameters on one side only, the
repeated steps with loss terms switched off or on). Run one at a time beside other work: it
trains nothing, but each model's build takes a core for up to a minute or two.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from side_by_side import ROOT
from step_check import SPECS

HERE = Path(__file__).resolve().parent


def check(model: str, prepared: Path, summary: Path) -> int:
    """Run the step check of ``model`` in its own process; its return code (on failure its
    error output's last lines are printed)."""
    command = [sys.executable, str(HERE / "step_check.py"), model, "--prepared", str(prepared),
               "--their-graphs", "--summary", str(summary)]  # fmt: skip
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        print("\n".join(done.stderr.splitlines()[-5:]), file=sys.stderr)
    return done.returncode


def table(rows: list[dict], failed: list[str]) -> str:
    """The Markdown table of the models' figures, and the models whose check failed."""
    lines = ["| model | loss, MMRec | loss, here | relative | gradients: the parameter that "
             "differs most against its largest entry | relative | scores: largest difference "
             "/ largest score |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        relative = abs(r["loss_here"] - r["loss_mmrec"]) / abs(r["loss_mmrec"])
        gradient = r["gradient_difference"] / max(r["gradient_largest"], 1e-30)
        lines.append(f"| {r['model']} | {r['loss_mmrec']:.8g} | {r['loss_here']:.8g} | "
                     f"{relative:.1e} | {r['gradient']}: {r['gradient_difference']:.1e} "
                     f"against {r['gradient_largest']:.1e} | {gradient:.1e} | "
                     f"{r['score_difference']:.1e} / {r['score_largest']:.2g} |")  # fmt: skip
    lines += [f"| {m} | check failed: run `step_check.py {m}` | | | | | |" for m in failed]
    return "\n".join(lines) + "\n"


def commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepared", type=Path, required=True, help="OUT of prepare_mmrec.py")
    parser.add_argument("--models", nargs="+", choices=sorted(SPECS), default=sorted(SPECS))
    parser.add_argument("--out", type=Path, default=ROOT / "results/reference/step_check.md")
    args = parser.parse_args(argv)
    rows, failed = [], []
    with tempfile.TemporaryDirectory() as scratch:
        summary = Path(scratch) / "summary.jsonl"
        for model in args.models:
            start = time.perf_counter()
            code = check(model, args.prepared.resolve(), summary)
            print(f"{model}: {'done' if code == 0 else f'failed ({code})'} in "
                  f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip
            if code:
                failed.append(model)
        if summary.exists():
            rows = [json.loads(line) for line in summary.read_text().splitlines()]
    header = (f"One training step from the same state, MMRec (e775373) and this project (commit "
              f"{commit()}), on the same TikTok batch with MMRec's graphs: `OMP_NUM_THREADS=1 "
              f"python bench/mmrec/step_check_all.py --prepared /tmp/mmrec` "
              f"({time.strftime('%Y-%m-%d')}). What each row means and the departures the "
              "check found: README.md here.\n\n")  # fmt: skip
    args.out.write_text(header + table(rows, failed))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
