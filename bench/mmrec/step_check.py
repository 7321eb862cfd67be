"""One training step of MMRec's model and of this project's, from the same parameters on the
same batch: the loss, every parameter's gradient and the full-sort scores, side by side.

    python bench/mmrec/prepare_mmrec.py --mmrec /work/.mirror/enoche+MMRec/repo --out /tmp/mmrec
    OMP_NUM_THREADS=1 python bench/mmrec/step_check.py DAMRS --prepared /tmp/mmrec

Each side builds its model with its own code (MMRec's ``Config``/``RecDataset`` from the
prepared checkout, this project's ``prepare``) at the side-by-side setting
(:data:`side_by_side.SETTINGS`) on the same TikTok split; MMRec's initial tables are copied
into this project's (through each side's id mapping: RecBole's internal ids here, the file's
ids in MMRec; this project's padding row 0 stays zero); then both compute the loss of one
batch of training triples drawn with ``--seed``, and the gradients. Training curves differ
between two codebases by their random streams (initialisation, batch order, negatives) even
where the model is the same; a step from the same state on the same batch has none of that,
so what differs here is the model (with ``--their-graphs``, only the model: the item-item
graphs are compared first, row by row, then MMRec's are used on both sides). Prints the loss
of each side, the largest gradient difference against the largest gradient, and the largest
score difference.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from side_by_side import ROOT, SETTINGS

# model: (MMRec's user and item tables, this project's), the parameters the model trains
TABLES = {"DAMRS": (("user_embedding", "item_id_embedding"), ("user_embedding", "item_embedding"))}
# model: {this project's modality: (its item-item graph buffer, MMRec's)}; TikTok's audio is
# MMRec's text slot
GRAPHS = {"DAMRS": {"image": ("_graph_image", "image_adj"), "audio": ("_graph_audio", "text_adj")}}


def compare_graphs(ours, theirs, model: str, item_of: np.ndarray, *, adopt: bool) -> None:
    """Per modality, how many items' rows of the item-item graph differ (MMRec's mapped to
    this project's ids); with ``adopt``, this side then uses MMRec's graphs."""
    for modality, (mine, other) in GRAPHS[model].items():
        graph = getattr(theirs, other).coalesce()
        rows, cols = (torch.as_tensor(item_of)[i] for i in graph.indices())
        n = getattr(ours, mine).shape[0]
        mapped = torch.sparse_coo_tensor(torch.stack([rows, cols]), graph.values().float(),
                                         (n, n)).coalesce()  # fmt: skip
        differ = (getattr(ours, mine).to_dense() - mapped.to_dense()).abs().amax(1) > 1e-6
        print(f"  {modality} graph: {int(differ.sum())} of {n - 1} items' rows differ")
        if adopt:
            setattr(ours, mine, mapped.to_sparse_csr())


def mmrec_model(name: str, prepared: Path):
    """MMRec's model as ``quick_start`` builds it, every grid key at its first value (or the
    side-by-side's), and its training split's (users, items) pairs."""
    src = prepared / "MMRec" / "src"
    sys.path.insert(0, str(src))
    os.chdir(src)
    from utils.configurator import Config
    from utils.dataloader import TrainDataLoader
    from utils.dataset import RecDataset
    from utils.utils import get_model, init_seed

    config = Config(name, "tiktok", {"gpu_id": 0, **SETTINGS[name][1]}, False)
    for key in config["hyper_parameters"]:
        value = config[key]
        config[key] = value[0] if isinstance(value, list) else value
    init_seed(config["seed"] if not isinstance(config["seed"], list) else config["seed"][0])
    train, _, _ = RecDataset(config).split()
    str(train)  # sets inter_num, which MMRec's loader reads (quick_start logs it first)
    model = get_model(name)(config, TrainDataLoader(config, train, batch_size=2048))
    pairs = train.df[[config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]]].to_numpy()
    return model, pairs


def our_model(name: str):
    sys.path.insert(0, str(ROOT))
    from recbole_mmkd.prepare import prepare

    run = prepare(name, "tiktok", overrides={**SETTINGS[name][0], "epochs": 1})
    dataset = run.train.dataset
    ids = {f: np.array([int(t) if t != "[PAD]" else -1 for t in dataset.field2id_token[f]])
           for f in (dataset.uid_field, dataset.iid_field)}  # fmt: skip
    return run.model, ids[dataset.uid_field], ids[dataset.iid_field]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=sorted(TABLES))
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--their-graphs", action="store_true",
                        help="this side uses MMRec's item-item graphs, so that only the model "
                        "differs")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    ours, user_token, item_token = our_model(args.model)  # before the chdir into MMRec
    theirs, pairs = mmrec_model(args.model, args.prepared.resolve())
    (their_users, their_items), (our_users, our_items) = TABLES[args.model]
    # our internal id -> MMRec id is the token; MMRec id -> ours inverts it
    user_of = np.full(user_token.max() + 1, -1)
    user_of[user_token[1:]] = np.arange(1, len(user_token))
    item_of = np.full(item_token.max() + 1, -1)
    item_of[item_token[1:]] = np.arange(1, len(item_token))
    compare_graphs(ours, theirs, args.model, item_of, adopt=args.their_graphs)
    with torch.no_grad():
        for mine, other, index in ((our_users, their_users, user_token),
                                   (our_items, their_items, item_token)):  # fmt: skip
            table = getattr(ours, mine).weight
            table.zero_()
            table[1:] = getattr(theirs, other).weight[torch.as_tensor(index[1:])]
    generator = np.random.default_rng(args.seed)
    rows = pairs[generator.choice(len(pairs), args.batch, replace=False)]
    negatives = generator.integers(0, len(item_token) - 1, args.batch)
    their_batch = torch.as_tensor(np.stack([rows[:, 0], rows[:, 1], negatives])).long()
    their_loss = theirs.calculate_loss(their_batch)
    their_loss.backward()

    from recbole.data.interaction import Interaction

    our_batch = Interaction({
        ours.USER_ID: torch.as_tensor(user_of[rows[:, 0]]),
        ours.ITEM_ID: torch.as_tensor(item_of[rows[:, 1]]),
        ours.NEG_ITEM_ID: torch.as_tensor(item_of[negatives]),
    })  # fmt: skip
    our_loss = ours.calculate_loss(our_batch)
    our_loss.backward()
    print(f"{args.model}: loss MMRec {their_loss.item():.8f}, here {our_loss.item():.8f}")
    for mine, other, index in ((our_users, their_users, user_token),
                               (our_items, their_items, item_token)):  # fmt: skip
        want = getattr(theirs, other).weight.grad[torch.as_tensor(index[1:])]
        got = getattr(ours, mine).weight.grad[1:]
        print(f"  gradient of {mine}: largest difference {(got - want).abs().max().item():.2e}"
              f" against largest entry {want.abs().max().item():.2e}")  # fmt: skip
    with torch.no_grad():
        users = torch.as_tensor(rows[:8, 0])
        their_scores = theirs.full_sort_predict([users])
        user_table, item_table = ours.forward()
        our_scores = user_table[torch.as_tensor(user_of[rows[:8, 0]])] @ item_table.T
        our_scores = our_scores[:, torch.as_tensor(item_of[np.arange(len(item_token) - 1)])]
    print(f"  full-sort scores of 8 users: largest difference "
          f"{(our_scores - their_scores).abs().max().item():.2e}"
          f" against largest score {their_scores.abs().max().item():.2e}")  # fmt: skip


if __name__ == "__main__":
    pd.options.mode.chained_assignment = None
    main()
