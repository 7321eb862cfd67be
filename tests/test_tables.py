"""Publication tables: bold/underline follow the numbers, markers follow the tests, LaTeX
is well formed (and compiles where a LaTeX engine is installed)."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from test_stats import _result

from recbole_mmkd.reporting.leaderboard import leaderboard
from recbole_mmkd.reporting.tables import caption, ranks, significant_vs, to_latex, to_markdown


def _runs():
    rng = np.random.default_rng(0)
    users = np.arange(3000)
    base = rng.random(3000) * 0.2
    shifts = {"Ref": 0.0, "Big_gain": 0.03, "Null": 0.0}  # Big_gain clearly better than Ref
    runs = []
    for name, shift in shifts.items():
        for seed in (1, 2, 3):  # each training run draws its own noise
            r = _result(name, seed, users, base + shift + rng.normal(0, 0.05, 3000))
            r.test = {"recall@20": float(r.test_per_user["recall@20"].mean())}
            runs.append(r)
    return runs


def test_latex_marks_best_second_and_significance():
    runs = _runs()
    table = leaderboard(runs, metrics=["recall@20"])
    p_adj = significant_vs(runs, "Ref", ["recall@20"])
    assert p_adj[("Big_gain", "recall@20")] < 0.05 < p_adj[("Null", "recall@20")]
    text = to_latex(
        table, ["recall@20"], p_adj=p_adj, caption_text=caption("tiktok", 2, "Ref", "holm")
    )
    rows = {line.split(" & ")[0]: line for line in text.splitlines() if " & " in line}
    assert r"\textbf{" in rows[r"Big\_gain"] and r"$^{\dagger}$" in rows[r"Big\_gain"]
    second = max(("Ref", "Null"), key=lambda m: table.set_index("model").loc[m, "recall@20"])
    assert r"\underline{" in rows[second]
    assert "dagger" not in rows["Null"] and "dagger" not in rows["Ref"]
    assert text.count(r"\begin{") == text.count(r"\end{") == 2
    assert all(line.count("&") == 1 for line in rows.values())
    assert re.search(r"\\caption\{.*Ref.*holm", text)
    md = to_markdown(table, ["recall@20"], p_adj=p_adj, caption_text="caption")
    assert "**" in md and "†" in md


def test_ranks_share_ties():
    import pandas as pd

    assert ranks(pd.Series([0.3, 0.5, 0.5, 0.1])).tolist() == [0, 1, 1, 0]
    assert ranks(pd.Series([0.3, 0.5, 0.4])).tolist() == [0, 1, 2]


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no LaTeX engine installed")
def test_latex_compiles(tmp_path):
    runs = _runs()
    table = leaderboard(runs, metrics=["recall@20"])
    body = to_latex(
        table, ["recall@20"], p_adj=significant_vs(runs, "Ref", ["recall@20"]), caption_text="x"
    )
    doc = "\\documentclass{article}\\usepackage{booktabs}\\begin{document}%s\\end{document}"
    (tmp_path / "t.tex").write_text(doc % body)
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "t.tex"], cwd=tmp_path, capture_output=True
    )
    assert done.returncode == 0, done.stdout[-2000:]
