"""Counterfactual social influence (Eq 1-3) and its link to mutual information (Eq 5-6).

Shapes: ``p_cf[..., K, A]`` holds the influencee j's policy p(a_j | ã, s_j) for every
counterfactual influencer action (or symbol, Eq 2) ã ∈ {0..K-1} along dim −2, and
``p_influencer[..., K]`` the influencer k's policy p(ã | s_k). Leading dims are arbitrary
(e.g. batch × influencer × influencee); the sum over influencees j ≠ k in Eq 1 is left to
the caller.
"""

from __future__ import annotations

from torch import Tensor

from si.rewards.divergence import divergence, kl


def marginal_policy(p_cf: Tensor, p_influencer: Tensor) -> Tensor:
    """Marginal p(a_j | s_j) = Σ_ã p(a_j | ã, s_j) p(ã | s_k) (Eq 1): ``[..., K, A] → [..., A]``."""
    return (p_cf * p_influencer.unsqueeze(-1)).sum(-2)


def counterfactual_influence(
    p_cf: Tensor,
    p_influencer: Tensor,
    taken_influencer: Tensor,
    measure: str = "kl",
    taken_influencee: Tensor | None = None,
) -> Tensor:
    """Influence D[p(a_j | a_k, s_j) ‖ Σ_ã p(a_j | ã, s_j) p(ã | s_k)] (Eq 1, 3; Eq 2 for symbols).

    ``taken_influencer`` (long, leading shape) selects the row a_k of ``p_cf``; ``measure`` is
    one of ``DIVERGENCES``; ``taken_influencee`` (the influencee's actual action) is needed for
    ``"pmi"`` (Eq 7). Returns a tensor of the leading shape.
    """
    num_actions = p_cf.shape[-1]
    idx = taken_influencer[..., None, None].expand(*p_cf.shape[:-2], 1, num_actions)
    p_cond = p_cf.gather(-2, idx).squeeze(-2)
    return divergence(measure, p_cond, marginal_policy(p_cf, p_influencer), taken_influencee)


def curriculum_weight(agent_steps: int | float, beta: float, curriculum_steps: float) -> float:
    """Influence weight β ramped linearly from 0 at step 0 to β at ``curriculum_steps`` (§10.4.1).

    Constant β afterwards; ``curriculum_steps <= 0`` disables the ramp (returns β).
    """
    if curriculum_steps <= 0:
        return float(beta)
    return float(beta) * min(1.0, max(0.0, float(agent_steps) / float(curriculum_steps)))


def mutual_information_from_policies(p_cf: Tensor, p_influencer: Tensor) -> Tensor:
    """I(a_k; a_j | s) = Σ_ã p(ã | s_k) KL[p(a_j | ã, s_j) ‖ p(a_j | s_j)] (Eq 5), in nats.

    Eq 6: this is the expectation of the KL influence over a_k ~ p(a_k | s_k).
    """
    marg = marginal_policy(p_cf, p_influencer).unsqueeze(-2)
    return (p_influencer * kl(p_cf, marg)).sum(-1)
