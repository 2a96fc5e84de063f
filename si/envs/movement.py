"""Simultaneous movement with conflict resolution, as a pure batched function.

Rules (following ``MapEnv.update_moves`` of the original SSD code):

1. Every agent has a *target* cell. Agents that STAY, turn, fire, clean, bump into a wall or
   take any other non-move action target their own cell: they keep it and act as obstacles.
2. Several movers wanting the same cell: a uniformly random one (highest ``priority``) wins the
   claim, the others stay; of movers with exactly equal priorities the lowest agent index wins,
   so exactly one claimant is left. (Original: shuffle, first in order.)
3. A head-on swap (k wants j's cell and j wants k's cell) is blocked: both stay.
4. A mover whose target is held by an agent that does not leave stays; its own cell then becomes
   held, which can block the agent behind it. Chains settle in at most ``N - 1`` passes.
5. What remains are chains into free cells and cycles of three or more agents; they all move at
   once (the original's "no progress, move them all").

Guarantee: no two agents share a cell afterwards. Deviation from the original: there a contest
winner could step onto a cell whose occupant later failed to leave, so two agents ended up on one
cell (the overlap bug SocialJax also fixed); here the winner is blocked instead (rule 4).
"""

from __future__ import annotations

import torch
from torch import Tensor


def resolve_moves(pos: Tensor, target: Tensor, priority: Tensor) -> Tensor:
    """New positions after simultaneous moves.

    Args:
        pos: ``(B, N)`` int64 current cells (distinct within an env).
        target: ``(B, N)`` int64 wanted cells (``pos`` for non-movers).
        priority: ``(B, N)`` per-env values; the highest claimant wins a contested cell, ties go
            to the lowest agent index.

    Returns:
        ``(B, N)`` int64 cells after the move.
    """
    n = pos.shape[1]
    wants = target != pos
    not_self = ~torch.eye(n, dtype=torch.bool, device=pos.device)
    # rule 2: contested targets
    same = (target[:, :, None] == target[:, None, :]) & wants[:, :, None] & wants[:, None, :] & not_self
    pk, pj = priority[:, :, None], priority[:, None, :]
    idx = torch.arange(n, device=pos.device)
    loses = (same & ((pj > pk) | ((pj == pk) & (idx[None, :] < idx[:, None])))).any(2)
    moving = wants & ~loses
    # occ[b, k, j]: k's target is j's current cell
    occ = (target[:, :, None] == pos[:, None, :]) & not_self
    # rule 3: swaps
    swap = (occ & occ.transpose(1, 2) & moving[:, :, None] & moving[:, None, :]).any(2)
    moving = moving & ~swap
    # rule 4: blocked by an agent that stays, propagated along chains
    for _ in range(n - 1):
        moving = moving & ~(occ & ~moving[:, None, :]).any(2)
    return torch.where(moving, target, pos)
