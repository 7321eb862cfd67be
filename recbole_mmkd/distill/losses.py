"""Distillation losses as pure functions of tensors.

Nothing here detaches: gradients flow into every argument that requires them, and the caller
decides what the teacher side is (a frozen teacher's scores, or an online teacher that learns
with the student, as in SGFD). Row-wise losses average over the batch's rows. Each function
names the paper whose equation it implements.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def softened(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(logits / T)`` over the last dimension."""
    return F.softmax(logits / temperature, dim=-1)


def kl_rows(target_logits: torch.Tensor, logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``KL(softmax(target/T) || softmax(logits/T))`` per row (summed over the last dimension)."""
    target_log = F.log_softmax(target_logits / temperature, dim=-1)
    log = F.log_softmax(logits / temperature, dim=-1)
    return (target_log.exp() * (target_log - log)).sum(-1)


def logit_kd(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    r"""Hinton et al., "Distilling the Knowledge in a Neural Network" (2015):
    :math:`T^2\, \mathrm{KL}(\mathrm{softmax}(z_t/T) \,\|\, \mathrm{softmax}(z_s/T))`, mean over
    rows. Rows are e.g. a user's scores on sampled items; the :math:`T^2` factor keeps gradient
    magnitudes comparable across temperatures."""
    return temperature**2 * kl_rows(teacher, student, temperature).mean()


def sgfd_response_kd(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    r"""SGFD's response distillation (Liu et al., ACM MM 2023): the L1 distance between the
    temperature-softened class distributions of teacher and student,
    :math:`\mathrm{mean}\, |\mathrm{softmax}(z_t/T) - \mathrm{softmax}(z_s/T)|` over all
    entries (rows x classes), no :math:`T^2` factor, as in the released code."""
    gap = softened(teacher_logits, temperature) - softened(student_logits, temperature)
    return gap.abs().mean()


def feature_kd(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """SGFD's feature distillation: mean squared error over all entries."""
    return F.mse_loss(student, teacher)


def rd_position_weights(k: int, lam: float) -> torch.Tensor:
    r"""Ranking Distillation's position importance (Tang and Wang, KDD 2018):
    :math:`w_r \propto e^{-r/\lambda}` for ranks :math:`r = 1..k`, normalised to sum 1."""
    if lam <= 0:
        raise ValueError(f"rd_lambda must be positive, got {lam}")
    weights = torch.exp(-torch.arange(1, k + 1, dtype=torch.float32) / lam)
    return weights / weights.sum()


def ranking_distillation(student_scores: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    r"""Ranking Distillation (Tang and Wang, KDD 2018): the teacher's top-K items of a user are
    weighted pseudo-positives, :math:`-\sum_r w_r \log \sigma(\hat{y}_{u,\pi_r})`, mean over users.

    ``student_scores`` ``(B, K)``: the student's scores of each user's teacher top-K items, in
    the teacher's rank order; ``weights`` ``(K,)`` from :func:`rd_position_weights`.
    """
    return -(F.logsigmoid(student_scores) * weights.to(student_scores)).sum(1).mean()


def rrd_sampling_weights(n: int, temperature: float) -> torch.Tensor:
    r"""DE-RRD's sampling distribution over the teacher's top-``n`` ranks (Kang et al., CIKM
    2020): :math:`p_r \propto e^{-r/T}`, :math:`r = 1..n`."""
    if temperature <= 0:
        raise ValueError(f"rrd temperature must be positive, got {temperature}")
    weights = torch.exp(-torch.arange(1, n + 1, dtype=torch.float32) / temperature)
    return weights / weights.sum()


def relaxed_ranking_distillation(
    interesting: torch.Tensor, uninteresting: torch.Tensor
) -> torch.Tensor:
    r"""RRD (Kang et al., "DE-RRD", CIKM 2020): negative log-likelihood of the permutation that
    ranks the sampled interesting items in the teacher's order above all uninteresting ones,
    which stay unordered:

    .. math:: -\sum_{k=1}^{K} \Big(s_k - \log\big(\textstyle\sum_{j=k}^{K} e^{s_j}
              + \sum_{l} e^{s_l}\big)\Big)

    ``interesting`` ``(B, K)``: student scores of the interesting items sorted by teacher rank;
    ``uninteresting`` ``(B, L)``. Mean over rows (:func:`relaxed_ranking_rows` gives them).
    """
    return relaxed_ranking_rows(interesting, uninteresting).mean()


def relaxed_ranking_rows(interesting: torch.Tensor, uninteresting: torch.Tensor) -> torch.Tensor:
    """:func:`relaxed_ranking_distillation` of each row, ``(B,)``: DCD's release sums them."""
    tail = interesting.flip(1).logcumsumexp(1).flip(1)  # log sum_{j >= k} e^{s_j}
    below = uninteresting.logsumexp(1, keepdim=True)
    return -(interesting - torch.logaddexp(tail, below)).sum(1)


def scaled_cosine_error(
    student: torch.Tensor, teacher: torch.Tensor, *, alpha: float = 2.0
) -> torch.Tensor:
    r"""Scaled cosine error (GraphMAE, Hou et al., KDD 2022), PromptMM's embedding KD, per row:
    :math:`(1 - \cos(s_i, t_i))^\alpha`; :math:`\alpha \ge 1` down-weights rows that already
    agree. Rows, not their mean: PromptMM's release averages a trimmed share of them."""
    return (1 - F.cosine_similarity(student, teacher, dim=-1)).pow(alpha)


def bidirectional_info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    r"""Pull the rows of ``a`` and ``b`` with the same index together against the batch's other
    rows, in both directions: :math:`\frac12(\mathrm{CE}(S/\tau, I) + \mathrm{CE}(S^\top/\tau,
    I))` with :math:`S_{ij} = \cos(a_i, b_j)`. CFDTBD's common-part distillation: each
    modality's common representation teaches the other's. The value of
    :func:`~recbole_mmkd.model.contrastive.info_nce` both ways, averaged, but from one ``S``:
    its gradient adds the two directions before the product, so training differs in the last
    bits from two ``info_nce`` calls."""
    sim = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    labels = torch.arange(sim.shape[0], device=sim.device)
    return 0.5 * (F.cross_entropy(sim, labels) + F.cross_entropy(sim.T, labels))


def orthogonality(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{mean}_i \cos(a_i, b_i)^2`: zero when each pair of rows is orthogonal.
    CFDTBD's push-apart term between modality-specific (differential) parts, and between a
    modality's common and differential parts."""
    return F.cosine_similarity(a, b, dim=-1).pow(2).mean()


def pairwise_kd(
    student_margin: torch.Tensor, teacher_margin: torch.Tensor, *, temperature: float = 1.0
) -> torch.Tensor:
    r"""PromptMM's pairwise ranking KD (Wei et al., WWW 2024), as the paper states it: for each
    triple (u, i+, i-) the KL divergence between the teacher's and the student's probability
    that i+ ranks above i-, :math:`p = \sigma((s_{ui^+} - s_{ui^-})/T)`, mean over triples.
    ``*_margin``: :math:`s_{ui^+} - s_{ui^-}` per triple."""
    log_p_t, log_q_t = (
        F.logsigmoid(teacher_margin / temperature),
        F.logsigmoid(-teacher_margin / temperature),
    )
    log_p_s, log_q_s = (
        F.logsigmoid(student_margin / temperature),
        F.logsigmoid(-student_margin / temperature),
    )
    return (log_p_t.exp() * (log_p_t - log_p_s) + log_q_t.exp() * (log_q_t - log_q_s)).mean()


def raw_kl_div(student_values: torch.Tensor, teacher_values: torch.Tensor) -> torch.Tensor:
    r"""PromptMM's released-code KD: ``nn.KLDivLoss()`` applied to unnormalised values,
    :math:`\mathrm{mean}\, t\,(\log t - y)` over all entries, with the student's values ``y``
    used as if they were log-probabilities and the teacher's ``t`` as probabilities (the
    released code passes per-sample BPR losses, and negative log list probabilities)."""
    return (
        torch.special.xlogy(teacher_values, teacher_values) - teacher_values * student_values
    ).mean()
