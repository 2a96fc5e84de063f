"""Social-reward baselines: prosocial collective reward and inequity aversion."""

from __future__ import annotations

import torch
from torch import Tensor


def collective_reward(extrinsic: Tensor, eta: float) -> Tensor:
    """Prosocial reward r_k = e_k + η Σ_{i≠k} e_i over the last (agent) dim (appendix 10.5.2)."""
    return extrinsic + eta * (extrinsic.sum(-1, keepdim=True) - extrinsic)


def inequity_aversion(
    reward: Tensor,
    smoothed: Tensor,
    alpha: float,
    beta: float,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Inequity-averse reward of Hughes et al. (2018); returns ``(u, new_smoothed)``.

    The smoothed rewards are updated first with the current reward,
    ẽ_i(t) = γλ·ẽ_i(t−1) + r_i(t), and the shaped reward then uses the updated ẽ:
    u_i = r_i − α/(N−1)·Σ_{j≠i} max(ẽ_j − ẽ_i, 0) − β/(N−1)·Σ_{j≠i} max(ẽ_i − ẽ_j, 0).
    α weighs disadvantageous inequity ("envy"), β advantageous inequity ("guilt"); both
    lower u. Agents are the last dim of ``reward`` and ``smoothed`` (same shape). The caller
    resets ``smoothed`` to 0 at episode starts. With N = 1, u = r.
    """
    if reward.shape != smoothed.shape:
        raise ValueError(f"reward {tuple(reward.shape)} and smoothed {tuple(smoothed.shape)} differ")
    new_smoothed = gamma * lam * smoothed + reward
    n = reward.shape[-1]
    if n == 1:
        return reward, new_smoothed
    diff = new_smoothed.unsqueeze(-2) - new_smoothed.unsqueeze(-1)  # [..., i, j] = ẽ_j − ẽ_i
    disadvantage = torch.relu(diff).sum(-1)
    advantage = torch.relu(-diff).sum(-1)
    u = reward - (alpha * disadvantage + beta * advantage) / (n - 1)
    return u, new_smoothed
