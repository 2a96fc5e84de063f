"""Causal influence rewards computed from a model's counterfactuals (paper Eq 1–3, §6).

Each function returns an influence matrix ``(B, N_k, N_j)``: the divergence between agent
``j``'s (predicted) action distribution given agent ``k``'s actual action/symbol and the
marginal over ``k``'s counterfactuals.  Entries that do not count (``j = k``, non-influencees,
agents out of view) are zero, so ``c_k = Σ_j m[k, j]``.  All run without gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor

from si.models import ActorCritic
from si.rewards.influence import counterfactual_influence


def pairwise_influence(p_cf: Tensor, p_influencer: Tensor, taken_k: Tensor, measure: str, taken_j: Tensor | None) -> Tensor:
    """``p_cf (B, K, V, N, A)``, ``p_influencer (B, K, V)``, ``taken_k (B, K)``, ``taken_j`` the
    influencees' actions, broadcastable to ``(B, K, N)`` → ``(B, K, N)``."""
    b, k, v, n, a = p_cf.shape
    p = p_cf.permute(0, 1, 3, 2, 4)  # (B, K, N, V, A)
    pk = p_influencer[:, :, None].expand(b, k, n, v)
    ak = taken_k[:, :, None].expand(b, k, n)
    aj = taken_j.expand(b, k, n) if taken_j is not None else None
    return counterfactual_influence(p, pk, ak, measure, aj)


@torch.no_grad()
def action_influence(
    model: ActorCritic, gates: Tensor, c: Tensor, actions: Tensor, influencer_probs: Tensor,
    num_influencers: int, measure: str,
) -> Tensor:
    """Basic (centralised) influence, Eq 1/3: influencers ``0..K-1`` act first; the influencees'
    ``gates`` already include the influencers' current actions. ``influencer_probs (B, K, A)``."""
    k = num_influencers
    slots = torch.arange(k, device=gates.device)
    influencees = torch.arange(k, model.num_agents, device=gates.device)
    p_cf = model.counterfactual_policy(gates, c, "action_in", slots, actions[:, :k], influencees)
    m = pairwise_influence(p_cf, influencer_probs, actions[:, :k], measure, actions[:, None, k:])
    out = torch.zeros(actions.shape[0], model.num_agents, model.num_agents, device=gates.device)
    out[:, :k, k:] = m
    return out


@torch.no_grad()
def symbol_influence(
    model: ActorCritic, gates: Tensor, c: Tensor, prev_symbols: Tensor, prev_symbol_probs: Tensor,
    actions: Tensor, measure: str,
) -> Tensor:
    """Influence via communication, Eq 2: effect of ``m_{t-1}^k`` on ``a_t^j`` for every ``j ≠ k``.

    ``prev_symbol_probs (B, N, V)`` is each speaker's π_m at ``t-1``, the counterfactual prior.
    A speaker's effect on itself does not count, so it is not computed.
    """
    n = model.num_agents
    everyone = torch.arange(n, device=gates.device)
    slot = torch.arange(n - 1, device=gates.device)
    others = slot + (slot >= everyone[:, None]).long()  # (N, N-1): every listener j ≠ k, in order
    p_cf = model.counterfactual_policy(gates, c, "message_in", everyone, prev_symbols, others)
    m = pairwise_influence(p_cf, prev_symbol_probs, prev_symbols, measure, actions[:, others])  # (B, N, N-1)
    out = m.new_zeros(m.shape[0], n * n)
    out[:, (everyone[:, None] * n + others).flatten()] = m.flatten(1)  # integer indices: no nonzero
    return out.view(-1, n, n)


@torch.no_grad()
def moa_influence(
    model: ActorCritic, moa_gates: Tensor, moa_c: Tensor, actions: Tensor, policy_probs: Tensor,
    visible: Tensor | None, measure: str,
) -> Tensor:
    """MOA influence (§6): agent ``k`` imagines its counterfactual actions ã_t and asks its own
    MOA how each other agent's next action would change; ``policy_probs (B, N, A)`` = π_k(ã|s_t^k).
    With ``visible (B, N, N)`` only agents inside ``k``'s view count (paper §6)."""
    n = model.num_agents
    p_cf = model.moa_counterfactual(moa_gates, moa_c, actions)  # (B, N, A, N, A)
    m = pairwise_influence(p_cf, policy_probs, actions, measure, None)
    m = m * (~torch.eye(n, dtype=torch.bool, device=m.device))
    return m * visible if visible is not None else m
