"""Publication tables of one dataset: mean ± std per metric, best in bold, second underlined,
and a marker where a model differs from the reference over seeds (Welch t test over the runs'
test means, corrected across the table's comparisons of a metric)."""

from __future__ import annotations

import pandas as pd

from recbole_mmkd.reporting.stats import adjust_seed_p, per_seed_users, seed_p_value
from recbole_mmkd.result import RunResult

MARK = r"$^{\dagger}$"
PM = r"$\pm$"
METRIC_NAMES = {"recall": "Recall", "ndcg": "NDCG", "precision": "Precision", "hit": "Hit",
                "map": "MAP", "mrr": "MRR"}  # fmt: skip


def metric_label(metric: str) -> str:
    """``recall@20`` -> ``Recall@20``."""
    name, _, k = metric.partition("@")
    return f"{METRIC_NAMES.get(name, name)}@{k}" if k else METRIC_NAMES.get(name, name)


def significant_vs(
    runs: list[RunResult],
    reference: str,
    metrics: list[str],
    *,
    correction: str = "holm",
) -> dict[tuple[str, str], float]:
    """Corrected seed-level p-value (Welch over the runs' means, :func:`~.stats.seed_p_value`)
    of every other model against ``reference``, per metric; the correction runs over one
    metric's comparisons (one column of the table). A model with a single seed gets no
    p-value (NaN: never marked)."""
    by_model: dict[str, list[RunResult]] = {}
    for r in runs:
        by_model.setdefault(r.model, []).append(r)
    if reference not in by_model:
        raise KeyError(f"reference {reference!r} is not among the runs ({sorted(by_model)})")
    out = {}
    for metric in metrics:
        models = [m for m in by_model if m != reference]
        means = {m: per_seed_users(by_model[m], metric)[1].mean(axis=1) for m in by_model}
        p = [seed_p_value(means[m], means[reference]) for m in models]
        adjusted = adjust_seed_p(p, correction=correction)
        out.update({(m, metric): q for m, q in zip(models, adjusted, strict=True)})
    return out


def ranks(values: pd.Series) -> pd.Series:
    """1 for the largest value, 2 for the second (ties share the better rank), else 0."""
    order = values.rank(method="min", ascending=False)
    return order.where(order <= 2, 0).astype(int)


def _cell(mean: float, std: float, rank: int, marked: bool, latex: bool) -> str:
    pm = PM if latex else " ± "
    text = f"{mean:.4f}"
    if latex:
        text = {1: rf"\textbf{{{text}}}", 2: rf"\underline{{{text}}}"}.get(rank, text)
    else:
        text = {1: f"**{text}**", 2: f"*{text}*"}.get(rank, text)
    return f"{text}{pm}{std:.4f}" + ((MARK if latex else "†") if marked else "")


def _rows(table, metrics, p_adj, alpha, latex) -> list[list[str]]:
    rank = {m: ranks(table[m]) for m in metrics}
    rows = []
    for i, row in table.reset_index(drop=True).iterrows():
        cells = [_escape(row["model"]) if latex else row["model"]]
        for m in metrics:
            marked = p_adj.get((row["model"], m), 1.0) < alpha
            std = row[f"{m} std"] if pd.notna(row[f"{m} std"]) else 0.0
            cells.append(_cell(row[m], std, int(rank[m].iloc[i]), marked, latex))
        rows.append(cells)
    return rows


def caption(dataset: str, seeds: int, reference: str | None, correction: str) -> str:
    text = (
        f"Test results on {dataset} (mean ± std over {seeds} seeds, validation-selected "
        f"epochs). Best in bold, second underlined."
    )
    if reference:
        text += (
            f" † marks a difference from {reference} that holds over re-training (Welch t "
            f"test over the seeds' test means, {correction}-corrected per column, p < 0.05)."
        )
    return text


def to_latex(
    table: pd.DataFrame,
    metrics: list[str],
    *,
    p_adj: dict[tuple[str, str], float] | None = None,
    caption_text: str = "",
    label: str = "tab:results",
    alpha: float = 0.05,
) -> str:
    """A booktabs ``table`` of one dataset's leaderboard rows (:func:`leaderboard` output)."""
    rows = _rows(table, metrics, p_adj or {}, alpha, latex=True)
    header = " & ".join(["Model", *(metric_label(m) for m in metrics)])
    title = _escape(caption_text).replace("±", PM).replace("†", MARK)
    body = "\n".join(" & ".join(r) + r" \\" for r in rows)
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{title}}}",
            rf"\label{{{label}}}",
            rf"\begin{{tabular}}{{l{'c' * len(metrics)}}}",
            r"\toprule",
            header + r" \\",
            r"\midrule",
            body,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
        ]
    )


def to_markdown(
    table: pd.DataFrame,
    metrics: list[str],
    *,
    p_adj: dict[tuple[str, str], float] | None = None,
    caption_text: str = "",
    alpha: float = 0.05,
) -> str:
    """The same table in Markdown (best bold, second italic), its caption line below."""
    rows = _rows(table, metrics, p_adj or {}, alpha, latex=False)
    frame = pd.DataFrame(rows, columns=["model", *(metric_label(m) for m in metrics)])
    text = frame.to_markdown(index=False)
    return f"{text}\n\n{caption_text.replace('underlined', 'in italics')}" if caption_text else text


def _escape(text: str) -> str:
    """Plain text for LaTeX: special characters escaped (backslash first)."""
    text = text.replace("\\", r"\textbackslash{}")
    for char in ("&", "%", "$", "#", "_", "{", "}"):
        text = text.replace(char, "\\" + char)
    return text
