"""Harvest (Perolat et al. 2017; SSD ``HarvestEnv``): apples regrow only near other apples.

Rules beyond :class:`~si.envs.gridworld.GridWorld` (the original SSD code, docs/envs.md): all ``A`` cells hold an apple at
reset; each step every ``A`` cell without apple and agent counts the apples in its 3x3 neighbourhood
(``j**2 + k**2 <= APPLE_RADIUS`` with radius 2, as the original code does) and regrows with
probability ``SPAWN_PROB[min(n, 3)]``; with no neighbour an apple never returns.
"""

from __future__ import annotations

import torch
from torch import Tensor

from si.envs.gridworld import GridWorld

APPLE_RADIUS = 2
SPAWN_PROB = (0.0, 0.005, 0.02, 0.05)
STREAM_SPAWN = 10


class HarvestEnv(GridWorld):
    """Batched Harvest; 8 actions (moves, STAY, turns, FIRE)."""

    name = "harvest"
    extra_chars = "A"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # j**2 + k**2 <= APPLE_RADIUS with integer j, k is exactly the 3x3 block (the original code's rule)
        self.reach = max(j for j in range(APPLE_RADIUS + 1) if j * j <= APPLE_RADIUS)
        cells = self.apple_cells.tolist() or [self.map_span.start - 1]
        lo, hi = min(cells), max(cells) + 1
        self._span = (lo, hi)
        """Flat ids ``[lo, hi)`` from the first to the last apple cell."""
        self._span_idx = (self.apple_cells - lo).expand(self.num_envs, -1)
        self.spawn_prob = torch.tensor(SPAWN_PROB, device=self.device)

    def _reset_world(self) -> None:
        self.apples = torch.zeros(self.num_envs, self.num_cells, dtype=torch.bool, device=self.device)
        self.apples[:, self.apple_cells] = True

    def neighbour_apples(self) -> Tensor:
        """``(B, K)`` uint8 apples in the (2r+1)x(2r+1) block around each apple cell (own cell
        included; it is empty whenever it can regrow): separable box sums over shifted slices of
        the flat padded map between the first and the last apple cell (padding >= r holds no apple)."""
        apples = self.apples.view(torch.uint8)
        (lo, hi), r, wp = self._span, self.reach, self.padded_width
        rows = sum(apples[:, lo - r * wp + j : hi + r * wp + j] for j in range(-r, r + 1))
        block = sum(rows[:, i * wp : i * wp + hi - lo] for i in range(2 * r + 1))
        return block.gather(1, self._span_idx)

    def _spawn(self, occ: Tensor) -> None:
        """HarvestEnv.spawn_apples: one uniform per apple cell, probability by neighbour count."""
        near = self.neighbour_apples().clamp_(max=len(SPAWN_PROB) - 1)
        prob = self.spawn_prob.index_select(0, near.view(-1).long()).view_as(near)
        have = self.apples.gather(1, self.apple_idx)
        grow = ~have & (self.uniform(STREAM_SPAWN, len(self.apple_cells)) < prob)
        self._put(self.apples, self.apple_idx, have | grow)
        self._put(self.apples, self.pos, False)  # no growth under agents (their cells were just eaten)
