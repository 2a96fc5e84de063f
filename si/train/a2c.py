"""Advantage actor-critic losses (synchronous A2C, the batched form of the paper's A3C, §3) and
the MOA's supervised loss (§6).

Everything is per agent: losses are averaged over time and environments and summed over
agents, and gradients are clipped per agent, so agents stay independent learners.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from si.models.stacked import log_softmax


def gae(rewards: Tensor, values: Tensor, dones: Tensor, last_value: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over a rollout.

    ``rewards, values (T, B, N)``, ``dones (T, B)`` (the transition at ``t`` ended the episode),
    ``last_value (B, N)`` = V(s_T).  With ``lam = 1`` this is the n-step return of A3C.
    Returns ``(advantages, returns)``.
    """
    adv = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(last_value)
    next_value = last_value
    for t in range(rewards.shape[0] - 1, -1, -1):
        live = (~dones[t]).to(rewards.dtype)[:, None]
        delta = rewards[t] + gamma * live * next_value - values[t]
        next_adv = delta + gamma * lam * live * next_adv
        adv[t] = next_adv
        next_value = values[t]
    return adv, adv + values


def _taken(values: Tensor, actions: Tensor) -> Tensor:
    """``values (…, A)`` at the taken ``actions (…)``."""
    return values.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def log_prob(logits: Tensor, actions: Tensor) -> Tensor:
    """Log-probability of the taken ``actions`` under ``softmax(logits)`` (last dim)."""
    return _taken(log_softmax(logits), actions)


def policy_terms(logits: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
    """Log-probability of the taken ``actions`` and the policy entropy, both ``(…, N)``."""
    logp_all = log_softmax(logits)
    logp = _taken(logp_all, actions)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def actor_critic_loss(
    logits: Tensor,
    values: Tensor,
    actions: Tensor,
    advantages: Tensor,
    returns: Tensor,
    *,
    entropy_coef: float,
    value_coef: float,
    old_logp: Tensor | None = None,
    clip: float = 0.2,
    agent_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """A2C loss ``-log π(a|s)·Â + c_v·½(V−R)² − c_H·H(π)`` (PPO's clipped surrogate when
    ``old_logp`` is given), averaged over ``(T, B)``, summed over agents.  ``agent_weights (N,)``
    scales each agent's policy and entropy terms (0 = its policy is not trained)."""
    logp, entropy = policy_terms(logits, actions)
    adv = advantages.detach()
    if old_logp is None:
        pg = -(logp * adv)
    else:
        ratio = (logp - old_logp).exp()
        pg = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    v_loss = 0.5 * (values - returns.detach()).pow(2)
    pg_entropy = pg - entropy_coef * entropy
    if agent_weights is not None:
        pg_entropy = pg_entropy * agent_weights
    per_agent = (pg_entropy + value_coef * v_loss).flatten(0, -2).mean(0)
    stats = {
        "loss_policy": pg.mean().item(),
        "loss_value": v_loss.mean().item(),
        "entropy": entropy.mean().item(),
    }
    return per_agent.sum(), stats


def moa_loss(moa_logits: Tensor, actions: Tensor, dones: Tensor, visible: Tensor | None = None) -> tuple[Tensor, float]:
    """Cross-entropy of each agent's MOA against the others' actual next actions (§6), summed over
    agents, and the accuracy of its most likely prediction.

    ``moa_logits (T, B, N_k, N_j, A)``: agent k's prediction at ``t`` (from ``s_t`` and ``a_t``)
    of agent j's action ``a_{t+1}``; ``actions (T, B, N)``; ``dones (T, B)``. Pairs that cross an
    episode end or the rollout end are dropped, as is ``j = k``; with ``visible (T, B, N_k, N_j)``
    (``optim.moa_only_when_visible``, Table 3) only agents in view at ``t`` count.
    """
    n = actions.shape[-1]
    pred = moa_logits[:-1]  # (T-1, B, N_k, N_j, A)
    target = actions[1:, :, None, :].expand(-1, -1, n, -1)  # (T-1, B, N_k, N_j)
    mask = (~dones[:-1])[:, :, None, None] & ~torch.eye(n, dtype=torch.bool, device=pred.device)
    if visible is not None:
        mask = mask & visible[:-1]
    ce = -log_prob(pred, target)
    maskf = mask.float()
    per_agent = (ce * maskf).sum((0, 1, 3)) / maskf.sum((0, 1, 3)).clamp(min=1)
    correct = ((pred.argmax(-1) == target).float() * maskf).sum() / maskf.sum().clamp(min=1)
    return per_agent.sum(), correct.item()


def clip_grad_per_agent(params: list[nn.Parameter], num_agents: int, max_norm: float) -> Tensor:
    """Clip each agent's gradient norm separately (parameters are stacked on dim 0 by agent).

    A grouped-conv weight stacks agents as ``N·C_out`` rows, which ``view(N, -1)`` splits
    correctly.  Returns the per-agent norms before clipping.
    """
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.zeros(num_agents, device=grads[0].device)
    for g in grads:
        norms += g.reshape(num_agents, -1).pow(2).sum(1)
    norms = norms.sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.view(num_agents, -1).mul_(scale[:, None])
    return norms


def linear_schedule(start: float, end: float, progress: float) -> float:
    """Linear anneal from ``start`` to ``end`` as ``progress`` goes from 0 to 1 (lr_init → lr_end)."""
    return start + (end - start) * min(max(progress, 0.0), 1.0)
