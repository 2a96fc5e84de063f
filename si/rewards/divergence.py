"""Divergences between an influencee's conditional and marginal policies (Eq 1, 4, 7).

All functions take probability tensors whose last dimension is the action distribution and
are batched over any leading dimensions. Results are in nats.

Zero probabilities: ``0·log 0`` is taken as 0 (``torch.xlogy``), and every probability that
sits inside a logarithm as a *reference* (``q`` in KL, both arguments of PMI) is clamped
below at ``EPS = 1e-12``. So KL(p‖q) stays finite (≈ p_a·log(p_a/1e-12) per term) when
``q_a = 0 < p_a``, and PMI of an impossible action is finite. With influence, the marginal is
a mixture that contains the conditional (Eq 1), so ``q_a = 0 < p_a`` only arises when the
influencer took an action of probability 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-12
DIVERGENCES = ("kl", "jsd", "pmi")


def kl(p: Tensor, q: Tensor) -> Tensor:
    """KL(p‖q) = Σ_a p_a (log p_a − log q_a) over the last dim (Eq 1, 4); q clamped at EPS."""
    return (torch.xlogy(p, p) - torch.xlogy(p, q.clamp_min(EPS))).sum(-1)


def jsd(p: Tensor, q: Tensor) -> Tensor:
    """Jensen–Shannon divergence ½KL(p‖M) + ½KL(q‖M), M = ½(p+q); in [0, log 2]."""
    m = 0.5 * (p + q)
    return 0.5 * (kl(p, m) + kl(q, m))


def pmi(p_cond: Tensor, p_marg: Tensor, taken: Tensor) -> Tensor:
    """Pointwise mutual information log p(a_j|a_k) − log p(a_j) at the taken a_j (Eq 7).

    ``taken`` (long) has the leading shape of ``p_cond``; both probabilities are clamped at EPS.
    """
    idx = taken.unsqueeze(-1)
    num = p_cond.gather(-1, idx).squeeze(-1).clamp_min(EPS)
    den = p_marg.gather(-1, idx).squeeze(-1).clamp_min(EPS)
    return num.log() - den.log()


def divergence(name: str, p_cond: Tensor, p_marg: Tensor, taken: Tensor | None = None) -> Tensor:
    """D[p_cond ‖ p_marg] for ``name`` in DIVERGENCES; ``taken`` is required for ``"pmi"``."""
    if name == "kl":
        return kl(p_cond, p_marg)
    if name == "jsd":
        return jsd(p_cond, p_marg)
    if name == "pmi":
        if taken is None:
            raise ValueError("divergence 'pmi' needs the influencee's taken action (taken=...)")
        return pmi(p_cond, p_marg, taken)
    raise ValueError(f"unknown divergence {name!r}; expected one of {DIVERGENCES}")
