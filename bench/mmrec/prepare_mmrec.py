"""Prepare a fetched MMRec checkout to run on CPU beside this project, on this project's split.

    python bench/mmrec/prepare_mmrec.py --mmrec /work/.mirror/enoche+MMRec/repo --out /tmp/mmrec

``--mmrec`` is MMRec's git directory (a clone or a bare mirror; pinned at e775373, the commit
the issue-21 comparison names) or a work tree. The script

1. writes MMRec's tree at that commit to ``OUT/MMRec`` (``git archive``);
2. applies the CPU patches below, each checked to apply exactly as often as expected, so an
   MMRec that changed fails here instead of running something else;
3. exports ``dataset/<name>`` of this project to MMRec's layout in ``OUT/data/<name>``:
   ``<name>.inter`` (userID, itemID, x_label), one ``*_feat.npy`` per modality (TikTok's audio
   goes to MMRec's text slot, ``text_feat.npy``, MMRec reading only image and text), and the
   two graph files MMRec reads and does not build itself:
   ``user_graph_dict.npy`` (DualGNN, DRAGON; the format of MMRec's
   ``preprocessing/dualgnn-gen-u-u-matrix.py``: each user's co-occurring users, most shared
   first, at most 200, with their counts) and ``item_graph_dict_2.npy`` (DA-MRS; the authors'
   ``build_iib_graph.py`` format: each item's 2 items sharing the most training users, at
   least 2). Both are built by this project's :func:`recbole_mmkd.model.cooccurrence.
   top_cooccurring`, which ``tests/test_dragon.py`` checks against a written-down answer; MMRec's
   own script is a pure-Python O(users^2) loop;
4. writes ``configs/dataset/<name>.yaml`` and ``src/run_pinned.py`` (MMRec's ``quick_start``
   with a config dict from the command line, so one setting runs without editing MMRec's YAMLs).

The patches change no arithmetic: device placement (``.cuda()`` -> the model's device), APIs
that the pinned NumPy/SciPy/PyTorch removed (``dok_matrix._update``, ``np.float``,
``torch.load``'s default ``weights_only``), LayerGCN's imports of ``models.common`` (a path
MMRec does not have; its package is ``common``), imports nothing here reads (``torch_scatter`` in
SLMRec, ``sparsesvd`` in PGL, read only by its ``global`` mode, and the raw-image pipeline's
``torchvision``/``lmdb`` in ``utils/dataset.py``, which runs from feature files never reach),
``torch_scatter.scatter_add`` in ``utils/utils.py`` (a compiled package with no wheel for the
pinned PyTorch) replaced by the same sum through ``Tensor.index_add_``, DRAGON's and DualGNN's
``result_embed`` made the plain tensor it is on a GPU (there ``nn.Parameter(...).to(cuda)`` is a
copy that ``forward`` overwrites; on the CPU ``.to`` returns the Parameter itself and the
overwrite fails), and ``use_gpu: False``.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "e775373"

# (file glob under src/, pattern, replacement, how many matches each matching file must have
# at least); a regex over the file's text.
PATCHES: list[tuple[str, str, str, int]] = [
    ("models/*.py", r"\.cuda\(\)", ".to(self.device)", 0),
    ("common/encoders.py", r"A\._update\(data_dict\)", "A._dict.update(data_dict)", 1),
    ("models/*.py", r"A\._update\(data_dict\)", "A._dict.update(data_dict)", 0),
    ("utils/metrics.py", r"np\.float(?!\w)", "float", 3),
    ("models/*.py", r"torch\.load\((\w+)\)", r"torch.load(\1, weights_only=False)", 0),
    ("models/slmrec.py", r"\nfrom torch_scatter import scatter\n", "\n", 1),
    ("models/pgl.py", r"\nfrom sparsesvd import sparsesvd\n", "\n", 1),
    ("configs/overall.yaml", r"use_gpu: True", "use_gpu: False", 1),
    # LayerGCN imports MMRec's package as `models.common`, a path that exists nowhere in it
    ("models/layergcn.py", r"from models\.common\.", "from common.", 2),
    (
        "models/dragon.py",
        r"self\.result_embed = nn\.Parameter\(",
        "self.result_embed = torch.Tensor.detach(",
        1,
    ),
    (
        "models/dualgnn.py",
        r"self\.result_embed = nn\.Parameter\(",
        "self.result_embed = torch.Tensor.detach(",
        1,
    ),
    ("utils/dataset.py", r"from utils\.data_utils import \([^)]*\)\nimport lmdb\n", "", 1),
    (
        "utils/utils.py",
        r"    from torch_scatter import scatter_add\n(.*)\n"
        r"    deg = scatter_add\(edge_weight, row, dim=0, dim_size=num_nodes\)",
        r"\1\n    deg = torch.zeros(num_nodes, dtype=edge_weight.dtype, "
        r"device=edge_weight.device).index_add_(0, row, edge_weight)",
        1,
    ),
]
# the files each all-files patch must have touched (so a silently missing site is caught)
EXPECTED = {
    r"\.cuda\(\)": {"damrs.py", "grcn.py", "lattice.py", "mgcn.py", "smore.py"},
    r"A\._update\(data_dict\)": {
        "bm3.py",
        "damrs.py",
        "freedom.py",
        "layergcn.py",
        "lgmrec.py",
        "lightgcn.py",
        "pgl.py",
    },
}

RUNNER = '''"""One MMRec run with a config dict from the command line (written by recbole-mmkd's
bench/mmrec/prepare_mmrec.py): python run_pinned.py -m MGCN -d tiktok --set cl_loss=[0.01].
Every grid key of the model's YAML not named is pinned to its first value, so one setting runs."""
import argparse
import json
import os

import yaml

from utils.quick_start import quick_start

parser = argparse.ArgumentParser()
parser.add_argument("-m", "--model", required=True)
parser.add_argument("-d", "--dataset", required=True)
parser.add_argument("--set", nargs="*", default=[], help="key=JSON value")
args = parser.parse_args()
config = {"gpu_id": 0}
for item in args.set:
    key, value = item.split("=", 1)
    config[key] = json.loads(value)
with open(os.path.join("configs", "model", args.model + ".yaml")) as handle:
    model_yaml = yaml.safe_load(handle)
for key in model_yaml.get("hyper_parameters", []):
    value = model_yaml.get(key)
    if key not in config and isinstance(value, list) and len(value) > 1:
        first = value[0]
        try:  # PyYAML reads 1e-5 as text; MMRec's own loader reads it as a number
            first = float(first) if isinstance(first, str) else first
        except ValueError:
            pass
        config[key] = [first]
print("pinned setting:", json.dumps(config))
quick_start(model=args.model, dataset=args.dataset, config_dict=config, save_model=False)
'''


def extract(mmrec: Path, out: Path) -> Path:
    """MMRec's tree at ``COMMIT`` under ``out/MMRec``."""
    archive = subprocess.run(
        ["git", f"--git-dir={_git_dir(mmrec)}", "archive", "--format=tar", COMMIT],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    target = out / "MMRec"
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def _git_dir(path: Path) -> Path:
    return path / ".git" if (path / ".git").exists() else path


def patch(src: Path) -> list[str]:
    """Apply :data:`PATCHES` under ``src``; the files each touched."""
    report = []
    for pattern_glob, pattern, replacement, at_least in PATCHES:
        touched = set()
        for path in sorted(src.glob(pattern_glob)):
            text = path.read_text()
            new, count = re.subn(pattern, replacement, text)
            if count < at_least:
                raise SystemExit(f"{path}: patch {pattern!r} applies {count} times, expected "
                                 f">= {at_least}; is this MMRec at {COMMIT}?")  # fmt: skip
            if count:
                path.write_text(new)
                touched.add(path.name)
                report.append(f"{path.relative_to(src)}: {pattern} x{count}")
        missing = EXPECTED.get(pattern, set()) - touched
        if missing and "models" in pattern_glob:
            raise SystemExit(f"patch {pattern!r} did not apply to {sorted(missing)}")
    return report


def export_dataset(name: str, data_out: Path, *, dataset_root: Path) -> dict[str, int]:
    """This project's ``dataset/<name>`` in MMRec's layout under ``data_out/<name>``."""
    source = dataset_root / name
    folder = data_out / name
    folder.mkdir(parents=True, exist_ok=True)
    inter = pd.read_csv(source / f"{name}.inter", sep="\t")
    columns = {c: c.split(":")[0] for c in inter.columns}
    inter = inter.rename(columns=columns)[["userID", "itemID", "x_label"]]
    inter.to_csv(folder / f"{name}.inter", sep="\t", index=False)
    modalities = sorted(p.name[len(name) + 1 : -4] for p in source.glob(f"{name}.*.npy")
                        if p.name.count(".") == 2 and "labels" not in p.name)  # fmt: skip
    slots = {"image": "image_feat.npy"}
    for modality in modalities:
        target = slots.get(modality, "text_feat.npy")
        np.save(folder / target, np.load(source / f"{name}.{modality}.npy").astype(np.float32))

    from recbole_mmkd.model.cooccurrence import top_cooccurring

    train = inter[inter["x_label"] == 0]
    n_users, n_items = int(inter["userID"].max()) + 1, int(inter["itemID"].max()) + 1
    matrix = sp.coo_matrix(
        (np.ones(len(train)), (train["userID"], train["itemID"])), shape=(n_users, n_items)
    )
    np.save(folder / "user_graph_dict.npy", _graph_dict(*top_cooccurring(matrix, 200)),
            allow_pickle=True)  # fmt: skip
    items = _graph_dict(*top_cooccurring(matrix.T, 2, min_shared=2))
    np.save(folder / "item_graph_dict_2.npy", {i: v for i, v in items.items() if v[0]},
            allow_pickle=True)  # fmt: skip
    return {"users": n_users, "items": n_items, "train": len(train)}


def _graph_dict(neighbours, counts, n) -> dict[int, list[list]]:
    return {i: [neighbours[i, : n[i]].tolist(), counts[i, : n[i]].tolist()]
            for i in range(len(n))}  # fmt: skip


def dataset_config(name: str, modalities_text: bool) -> str:
    return (
        "USER_ID_FIELD: userID\nITEM_ID_FIELD: itemID\nTIME_FIELD: timestamp\n"
        "filter_out_cod_start_users: True\n"
        f"inter_file_name: '{name}.inter'\n"
        "vision_feature_file: 'image_feat.npy'\n"
        + ("text_feature_file: 'text_feat.npy'\n" if modalities_text else "")
        + "user_graph_dict_file: 'user_graph_dict.npy'\n"
        'field_separator: "\\t"\n'
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mmrec", type=Path, required=True, help="MMRec's git dir or clone")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dataset", default="tiktok")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    tree = extract(args.mmrec, args.out)
    for line in patch(tree / "src"):
        print("patched", line)
    stats = export_dataset(args.dataset, args.out / "data", dataset_root=ROOT / "dataset")
    text = (args.out / "data" / args.dataset / "text_feat.npy").exists()
    (tree / "src" / "configs" / "dataset" / f"{args.dataset}.yaml").write_text(
        dataset_config(args.dataset, text)
    )
    overall = tree / "src" / "configs" / "overall.yaml"
    data_path = f"data_path: '{(args.out / 'data').resolve()}/'"
    overall.write_text(re.sub(r"data_path: .*", data_path, overall.read_text(), count=1))
    (tree / "src" / "run_pinned.py").write_text(RUNNER)
    print(f"MMRec {COMMIT} ready in {tree}; data {stats} in {args.out / 'data' / args.dataset}")


if __name__ == "__main__":
    main()
