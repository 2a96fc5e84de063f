"""Pure statistics for logging: Gini (Eq 9), mutual information, speaker consistency (Eq 8),
instantaneous coordination and influential moments (§5.1). Imports only ``torch`` and ``math``.

Discrete-sample statistics are plug-in estimates from joint histograms, computed in float64,
in nats, and returned as Python floats; an empty sample gives ``nan``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _pair_spread(x: Tensor) -> Tensor:
    """D = Σ_i Σ_j |x_i − x_j| over the last dim (ordered pairs, the numerator of Eq 9)."""
    return (x.unsqueeze(-1) - x.unsqueeze(-2)).abs().sum((-2, -1))


def gini(x: Tensor) -> Tensor:
    """Gini coefficient over the last dim, G = Σ_i Σ_j |x_i − x_j| / (2N Σ_i x_i) (Eq 9).

    Eq 9 as written whenever Σ_i x_i > 0, negative entries included (returns with fines or
    hits). All-equal vectors give 0. Otherwise (Σ x ≤ 0 and the entries differ) Eq 9 has no
    meaning (its denominator is not positive) and G is NaN; averages over episodes skip those.
    ``analysis.stats.gini`` applies the same rule to logged returns.
    """
    x = x if x.is_floating_point() else x.double()
    num = _pair_spread(x)
    den = 2 * x.shape[-1] * x.sum(-1)
    g = torch.where(den > 0, num / den.masked_fill(den <= 0, 1), torch.full_like(num, math.nan))
    return torch.where(num == 0, torch.zeros_like(num), g)


def equality_weighted_reward(x: Tensor) -> Tensor:
    """Collective reward weighted by equality, R·(1 − G) with R = Σ_i x_i (Eq 9, Fig 16).

    Computed as R − Σ_i Σ_j |x_i − x_j| / (2N), which is R·(1 − G) exactly whenever Eq 9 is
    defined (R > 0) and its continuous extension when R ≤ 0 (where G is NaN): a negative
    collective return stays negative, lowered further by inequality.
    """
    x = x if x.is_floating_point() else x.double()
    return x.sum(-1) - _pair_spread(x) / (2 * x.shape[-1])


def _mi_from_counts(counts: Tensor) -> Tensor:
    """Plug-in MI (nats) of joint count tables ``[..., nx, ny]``; nan where a table is empty."""
    counts = counts.double()
    total = counts.sum((-2, -1), keepdim=True)
    p = counts / total
    px = p.sum(-1, keepdim=True)
    py = p.sum(-2, keepdim=True)
    terms = torch.xlogy(p, p) - torch.xlogy(p, px * py)
    mi = terms.sum((-2, -1)).clamp_min(0.0)
    return torch.where(total.squeeze(-1).squeeze(-1) > 0, mi, torch.full_like(mi, math.nan))


def _check_range(name: str, v: Tensor, n: int) -> None:
    if v.numel() and (int(v.min()) < 0 or int(v.max()) >= n):
        raise ValueError(f"{name} values must lie in [0, {n}), got [{int(v.min())}, {int(v.max())}]")


def mutual_information(x: Tensor, y: Tensor, nx: int, ny: int) -> float:
    """Plug-in MI I(x; y) in nats of paired samples x ∈ [0, nx), y ∈ [0, ny) (Eq 5 on data).

    Estimated from the joint histogram ``bincount(x·ny + y)``; nan for an empty sample.
    """
    if x.shape != y.shape:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must have the same shape")
    _check_range("x", x, nx)
    _check_range("y", y, ny)
    counts = torch.bincount((x.reshape(-1) * ny + y.reshape(-1)).long(), minlength=nx * ny)
    return float(_mi_from_counts(counts.reshape(nx, ny)))


def _normalised_entropy(counts: Tensor, h_max: float) -> Tensor:
    """Entropy of each row of ``counts[..., K]`` divided by ``h_max`` (0 when h_max is 0)."""
    p = counts / counts.sum(-1, keepdim=True).clamp_min(1)
    h = -torch.xlogy(p, p).sum(-1)
    return h / h_max if h_max > 0 else torch.zeros_like(h)


def speaker_consistency(actions: Tensor, symbols: Tensor, num_actions: int, vocab: int) -> float:
    """Speaker consistency in [0, 1] (Eq 8) of each agent's own action and emitted symbol.

    ``actions[M, N]`` and ``symbols[M, N]`` pair agent k's action with the symbol it emitted at
    the same step. Normalisation of Eq 8: for each agent k,
    SC_k = ½ [ mean_c (1 − H(p(a^k | m^k = c)) / log A) + mean_a (1 − H(p(m^k | a^k = a)) / log V) ],
    i.e. the sums over c and a become unweighted means over the conditionals that were observed
    at least once (never-emitted symbols / never-taken actions are skipped), H_max is the log of
    the number of possible outcomes of each conditional (A = ``num_actions`` for p(a | m),
    V = ``vocab`` for p(m | a); a term with a single possible outcome counts as fully
    consistent), and the sum over agents becomes the mean over agents. 1 means a 1:1
    action↔symbol map; 0 means every observed conditional is uniform. Empirical conditionals
    are plug-in estimates (biased towards consistency for few samples).
    """
    if actions.shape != symbols.shape or actions.dim() != 2:
        raise ValueError("actions and symbols must both have shape [M, N]")
    if actions.shape[0] == 0:
        return math.nan
    _check_range("actions", actions, num_actions)
    _check_range("symbols", symbols, vocab)
    n = actions.shape[1]
    agent = torch.arange(n, device=actions.device).expand_as(actions)
    idx = (agent * vocab + symbols) * num_actions + actions
    counts = torch.bincount(idx.reshape(-1).long(), minlength=n * vocab * num_actions)
    counts = counts.reshape(n, vocab, num_actions).double()  # [k, c, a]
    score_c = 1 - _normalised_entropy(counts, math.log(num_actions))  # [k, c]
    score_a = 1 - _normalised_entropy(counts.transpose(1, 2), math.log(vocab))  # [k, a]
    seen_c = counts.sum(2) > 0
    seen_a = counts.sum(1) > 0
    mean_c = (score_c * seen_c).sum(1) / seen_c.sum(1)
    mean_a = (score_a * seen_a).sum(1) / seen_a.sum(1)
    return float((0.5 * (mean_c + mean_a)).mean())


def coordination_counts(
    src: Tensor,
    dst_next: Tensor,
    n_src: int,
    n_dst: int,
    mask: Tensor | None = None,
) -> Tensor:
    """Joint count tables ``[N_k, N_j, n_src, n_dst]`` of (src^k_t, dst^j_{t+1}) pairs (§5.1).

    Time alignment is the caller's: ``dst_next[t, b, j]`` must hold agent j's value at step
    t+1 of the same trajectory as ``src[t, b, k]`` (e.g. ``src = symbols[:-1]``,
    ``dst_next = actions[1:]`` for symbol/action IC, I(m^k_t; a^j_{t+1})). Both are
    ``[T, B, N]`` longs; ``mask[t, b, k]`` (bool, optional) keeps only the samples where it is
    True for the influencer k (influential moments; pairs crossing an episode end should be
    masked too). Counts of several rollouts add up: IC is computed once from their sum.
    """
    if src.shape != dst_next.shape or src.dim() != 3:
        raise ValueError("src and dst_next must both have shape [T, B, N]")
    if mask is not None and mask.shape != src.shape:
        raise ValueError(f"mask {tuple(mask.shape)} must have the shape of src {tuple(src.shape)}")
    n = src.shape[-1]
    _check_range("src", src, n_src)
    _check_range("dst_next", dst_next, n_dst)
    s = src.reshape(-1, n, 1).long()
    d = dst_next.reshape(-1, 1, n).long()
    pair = torch.arange(n * n, device=src.device).reshape(1, n, n)  # pair id k·N + j
    idx = (pair * n_src + s) * n_dst + d  # [M, k, j]
    if mask is not None:
        idx = idx[mask.reshape(-1, n, 1).expand_as(idx)]
    counts = torch.bincount(idx.reshape(-1), minlength=n * n * n_src * n_dst)
    return counts.reshape(n, n, n_src, n_dst)


def coordination_from_counts(counts: Tensor) -> float:
    """Instantaneous coordination (§5.1) from pooled count tables ``[N_k, N_j, n_src, n_dst]``.

    The paper: "first average over all trajectory steps, then take the maximum value between
    any two agents": per ordered pair k ≠ j, the plug-in MI of all its pooled samples; then the
    maximum over pairs. Pairs with no samples are ignored; nan if no pair has samples (or N < 2).
    """
    if counts.shape[0] < 2:
        return math.nan
    mi = pair_coordination(counts)
    mi = mi[~mi.isnan()]
    return float(mi.max()) if mi.numel() else math.nan


def pair_coordination(counts: Tensor) -> Tensor:
    """Plug-in MI of every ordered pair k ≠ j from pooled count tables ``[N_k, N_j, n_src, n_dst]``
    (§5.1), as ``[N_k, N_j]``; nan on the diagonal and for pairs without samples. Logged per pair
    so that analysis can average each pair over many intervals before taking the max."""
    mi = _mi_from_counts(counts).clone()
    mi.fill_diagonal_(math.nan)
    return mi


def instantaneous_coordination(
    src: Tensor,
    dst_next: Tensor,
    n_src: int,
    n_dst: int,
    mask: Tensor | None = None,
) -> float:
    """Max over ordered pairs k ≠ j of I(src^k_t; dst^j_{t+1}) on one sample (§5.1):
    :func:`coordination_from_counts` of :func:`coordination_counts`."""
    return coordination_from_counts(coordination_counts(src, dst_next, n_src, n_dst, mask))


def influential_moments(influence: Tensor) -> Tensor:
    """Bool mask of the influential moments (§5.1): ``influence[..., k]`` ≥ influencer k's own
    mean over all the given steps (all leading dims), as in "an agent's influence is only
    greater than its mean influence in less than 10% of timesteps"."""
    mean = influence.reshape(-1, influence.shape[-1]).mean(0)
    return influence >= mean
