"""One setting of a model run through MMRec's own code and through this project, on the same
TikTok split and seed; both test figures in ``results/reference/``.

    python bench/mmrec/prepare_mmrec.py --mmrec /work/.mirror/enoche+MMRec/repo --out /tmp/mmrec
    OMP_NUM_THREADS=1 python bench/mmrec/side_by_side.py MGCN --prepared /tmp/mmrec
    python bench/mmrec/side_by_side.py --table          # rebuild side_by_side.md from the JSONs

This project's side draws training negatives by MMRec's rule (``negative_pool: train``: items
that occur in training only); ``--negative-pool all`` runs it under this project's default
(RecBole's rule, every item) instead, stored beside it, so the table shows what the rule costs.
Each side trains until MMRec's early stop (20 evaluations without a better validation
Recall@20, at most 1000 epochs, both projects' defaults) and reports test Recall@20 and
NDCG@20 at its best validation epoch; with ``--epochs N`` each side trains exactly N epochs
(no early stop) and reports at its best validation epoch among them, which takes where a run
stopped out of the comparison (stored apart, ``...-epochsN.json``). Where a model has several
seeds at one budget, a second table gives each side's mean, the ratio of the means and
Welch's t test of the two sides' per-seed figures. Each
side's record keeps its validation Recall@20 epoch by epoch (``valid_curve``).
Wall seconds are whole runs (data loading, training, evaluation; ours also evaluates the
masked-modality robustness passes every multimodal run records): a rough cost, not the
per-epoch comparison of ``epoch_cost.py``. The setting is
MMRec's YAML for the model with every grid key pinned (:data:`SETTINGS`; the first grid value
where it has several, as ``run_pinned.py`` does for keys not named), translated to this
project's keys. Run one side at a time: two trainings on two cores slow each other
several-fold and the seconds are recorded.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "results" / "reference"
METRICS = ("recall@20", "ndcg@20")

# model: (this project's overrides, MMRec's --set values); MMRec's grid keys take lists.
SETTINGS: dict[str, tuple[dict, dict]] = {
    "MGCN": ({"cl_weight": 0.01}, {"cl_loss": [0.01]}),
    "LGMRec": ({}, {}),
    "SMORE": (
        {"n_ui_layers": 3, "reg_weight": 1.0e-5, "knn_k": 10, "dropout_rate": 0.0},
        {
            "n_ui_layers": [3],
            "reg_weight": [1.0e-5],
            "image_knn_k": [10],
            "text_knn_k": [10],
            "dropout_rate": [0.0],
        },
    ),
    # MMRec's mm_image_weight 0.1: image 0.1, its text slot (TikTok's audio) 0.9
    "DRAGON": (
        {
            "reg_weight": 1.0e-3,
            "learning_rate": 1.0e-3,
            "modality_weights": {"image": 0.1, "audio": 0.9},
        },
        {"reg_weight": [1.0e-3], "learning_rate": [1.0e-3]},
    ),
    "DAMRS": ({}, {}),
    "ItemKNNCBF": ({}, {}),  # trains nothing: a check of the split, features and metrics
    # The rest of the zoo, for the epoch cost (epoch_cost.py): MMRec's first grid point where
    # the two projects' defaults differ, otherwise both pinned to this project's defaults.
    "DualGNN": ({}, {"learning_rate": [1.0e-3], "reg_weight": [1.0e-3]}),
    "SLMRec": (
        {},  # MMRec's `reg` is read by no line of its model (slmrec.py's docstring)
        {"learning_rate": [1.0e-3], "ssl_temp": [0.2], "ssl_alpha": [0.1], "reg": [1.0e-4]},
    ),
    "LayerGCN": ({"reg_weight": 1.0e-2, "dropout": 0.0}, {}),
    "MVGAE": ({}, {"learning_rate": [1.0e-3], "beta": [0.1]}),
    "PGL": ({"modality_weights": {"image": 0.1, "audio": 0.9}}, {}),
    "SELFCFED_LGN": ({"n_layers": 1, "dropout": 0.1, "reg_weight": 0.1}, {}),
    "MMGCF": ({"n_ui_layers": 1, "reg_weight": 0.1}, {}),
    # MMRec trains the feature tables of these three (nn.Embedding.from_pretrained(feat,
    # freeze=False)); FREEDOM's are fixed here (its docstring). MMRec's grid keys pinned to
    # this project's TikTok values (properties/model/tiktok/ where it has one).
    "LATTICE": ({"train_features": True}, {"reg_weight": [1.0e-5], "learning_rate": [1.0e-3]}),
    "BM3": ({}, {"n_layers": [2], "dropout": [0.3], "reg_weight": [0.1]}),
    "FREEDOM": (
        {"modality_weights": {"image": 0.1, "audio": 0.9}},
        {"dropout": [0.8], "reg_weight": [1.0e-4]},
    ),
    # MMRec's grid keys pinned to this project's TikTok values; VBPR without the paper's bias
    # terms and with MMRec's EmbLoss (its variant), GRCN's routing released (this project's
    # default, MMRec's code).
    "MMGCN": ({}, {"reg_weight": [1.0e-5], "learning_rate": [1.0e-4]}),
    "GRCN": ({}, {"reg_weight": [1.0e-3], "learning_rate": [1.0e-2]}),
    "VBPR": ({"item_bias": False, "regularizer": "emb_loss"}, {"reg_weight": [1.0e-3]}),
    "LightGCN": ({}, {"n_layers": [2], "reg_weight": [1.0e-4]}),
    "BPR": ({}, {"reg_weight": [1.0e-4]}),
}
MMREC_NAMES = {"DAMRS": "DAMRS"}


def fixed(epochs: int | None) -> dict:
    """The keys (the same in both projects) that train exactly ``epochs`` epochs."""
    return {} if epochs is None else {"epochs": epochs, "stopping_step": epochs}


def run_mmrec(
    model: str, prepared: Path, seed: int, settings: dict, *, epochs: int | None = None
) -> dict:
    """MMRec's run of ``model``; its final valid and test lines parsed."""
    src = prepared / "MMRec" / "src"
    settings = {**settings, "seed": [seed], **fixed(epochs)}
    args = [f"{k}={json.dumps(v)}" for k, v in settings.items()]
    command = [sys.executable, "run_pinned.py", "-m", MMREC_NAMES.get(model, model),
               "-d", "tiktok", "--set", *args]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, cwd=src, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    log = done.stdout + done.stderr
    if done.returncode:
        raise SystemExit(f"MMRec's {model} failed:\n{log[-3000:]}")
    final = log[log.rindex("BEST") :]
    epochs = len(re.findall(r"epoch \d+ training", log))
    curve = re.findall(r"epoch \d+ evaluating \[time: [0-9.]+s, valid_score: ([0-9.]+)\]", log)
    return {"valid": _metrics(final, "Valid"), "test": _metrics(final, "Test"),
            "seconds": round(seconds, 1), "epochs": epochs,
            "valid_curve": [round(float(v), 4) for v in curve],
            "command": " ".join(["python", *command[1:]])}  # fmt: skip


def _metrics(text: str, label: str) -> dict[str, float]:
    line = re.search(rf"{label}: (.*)", text).group(1)
    return {k: float(v) for k, v in re.findall(r"([a-z]+@\d+): ([0-9.]+)", line) if k in METRICS}


def run_ours(
    model: str, seed: int, overrides: dict, pool: str, *, epochs: int | None = None
) -> dict:
    sys.path.insert(0, str(ROOT))
    from recbole_mmkd.pipeline import run_one

    start = time.perf_counter()
    overrides = {**overrides, "negative_pool": pool, **fixed(epochs)}
    result = run_one(model, "tiktok", seed, OUT / "runs", overrides=overrides, reuse=False)
    return {
        "valid": {k: round(result.best_valid[k], 4) for k in METRICS},
        "test": {k: round(result.test[k], 4) for k in METRICS},
        "seconds": round(time.perf_counter() - start, 1),
        "epochs": result.epochs_run,
        "best_epoch": result.best_epoch,
        "valid_curve": [round(v[result.valid_metric], 4) for v in result.valid_curve],
        "config_hash": result.config_hash,
        "negative_pool": pool,
    }


OURS = {"train": "ours", "all": "ours_all_items"}  # a record's key for each negative pool


def table(folder: Path = OUT) -> str:
    """The side-by-side table of every stored comparison: MMRec, this project under MMRec's
    negative rule (the ratio's numerator) and, where run, under its default rule."""
    rows = [
        "| model | budget | seed | MMRec Recall@20 | ours | ratio | MMRec NDCG@20 | ours | ratio "
        "| ours, all-item negatives: Recall@20 / NDCG@20 | MMRec wall s / epochs "
        "| ours wall s / epochs |",
        "|---" * 12 + "|",
    ]
    records = _records(folder)
    for r in records:
        m, o, a = r["mmrec"], r.get(OURS["train"]), r.get(OURS["all"])
        cells = [r["model"], _budget(r), str(r["seed"])]
        for key in METRICS:
            if o is None:
                cells += [f"{m['test'][key]:.4f}", "not run", ""]
                continue
            cells += [f"{m['test'][key]:.4f}", f"{o['test'][key]:.4f}",
                      f"{o['test'][key] / m['test'][key]:.3f}"]  # fmt: skip
        cells.append(" / ".join(f"{a['test'][k]:.4f}" for k in METRICS) if a else "")
        cells.append(f"{m['seconds']:.0f} / {m['epochs']}")
        cells.append(f"{o['seconds']:.0f} / {o['epochs']}" if o else "")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n" + _means(records)


def _records(folder: Path) -> list[dict]:
    paths = sorted(folder.glob("mmrec-*.json"))
    return [r for r in (json.loads(p.read_text()) for p in paths) if "mmrec" in r]


def _budget(record: dict) -> str:
    return f"{record['epochs']} epochs" if record.get("epochs") else "early stop"


def _means(records: list[dict]) -> str:
    """Per model and budget with two or more seeds run on both sides: each side's mean test
    figure over those seeds, the ratio of the means and Welch's t test of the two sides'
    figures (two-sided p)."""
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from recbole_mmkd.reporting.stats import seed_p_value

    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        if OURS["train"] in r:
            groups.setdefault((r["model"], _budget(r)), []).append(r)
    rows = []
    for (model, budget), group in groups.items():
        if len(group) < 2:
            continue
        cells = [model, budget, ", ".join(str(r["seed"]) for r in group)]
        for key in METRICS:
            theirs = [r["mmrec"]["test"][key] for r in group]
            ours = [r[OURS["train"]]["test"][key] for r in group]
            a, b = sum(theirs) / len(theirs), sum(ours) / len(ours)
            p = seed_p_value(np.array(ours), np.array(theirs))
            cells += [f"{a:.4f}", f"{b:.4f}", f"{b / a:.3f}" if a else "", f"{p:.2g}"]
        rows.append("| " + " | ".join(cells) + " |")
    if not rows:
        return ""
    columns = ["model", "budget", "seeds"]
    columns += [c for m in ("Recall@20", "NDCG@20")
                for c in (f"MMRec {m} (mean)", "ours", "ratio", "p (Welch)")]  # fmt: skip
    head = "\n| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|\n"
    return head + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", choices=sorted(SETTINGS))
    parser.add_argument("--prepared", type=Path, help="OUT of prepare_mmrec.py")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--side", choices=["both", "mmrec", "ours"], default="both")
    parser.add_argument(
        "--negative-pool",
        choices=sorted(OURS),
        default="train",
        help="this project's negatives: MMRec's rule (train) or its default",
    )
    parser.add_argument(
        "--epochs", type=int, help="train exactly this many epochs on both sides (no early stop)"
    )
    parser.add_argument("--table", action="store_true", help="only rebuild side_by_side.md")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.table:
        if args.model is None or (args.side != "ours" and args.prepared is None):
            parser.error("name a model, and --prepared for the MMRec side")
        if args.epochs is not None and args.epochs < 1:
            parser.error("--epochs must be at least 1")
        budget = f"-epochs{args.epochs}" if args.epochs else ""
        path = OUT / f"mmrec-{args.model}-seed{args.seed}{budget}.json"
        record = json.loads(path.read_text()) if path.exists() else {}
        ours, theirs = SETTINGS[args.model]
        record.update(model=args.model, seed=args.seed, dataset="tiktok", epochs=args.epochs,
                      ours_overrides=ours, mmrec_settings=theirs)  # fmt: skip
        if args.side in ("both", "mmrec"):
            record["mmrec"] = run_mmrec(
                args.model, args.prepared, args.seed, theirs, epochs=args.epochs
            )
        if args.side in ("both", "ours"):
            record[OURS[args.negative_pool]] = run_ours(
                args.model, args.seed, ours, args.negative_pool, epochs=args.epochs
            )
        path.write_text(json.dumps(record, indent=1) + "\n")
    if _records(OUT):
        (OUT / "side_by_side.md").write_text(table())
        print(table())


if __name__ == "__main__":
    main()
