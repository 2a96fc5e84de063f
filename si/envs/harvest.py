"""Harvest (Perolat et al. 2017; SSD ``HarvestEnv``): apples regrow only near other apples.

Rules beyond :class:`~si.envs.gridworld.GridWorld` (fact sheet §4): all ``A`` cells hold an apple at
reset; each step every ``A`` cell without apple and agent counts the apples in its 3x3 neighbourhood
(``j**2 + k**2 <= APPLE_RADIUS`` with radius 2, as the original code does) and regrows with
probability ``SPAWN_PROB[min(n, 3)]``; with no neighbour an apple never returns.
"""

from __future__ import annotations

import torch
from torch import Tensor

from si.envs.gridworld import VIEW, GridWorld

APPLE_RADIUS = 2
SPAWN_PROB = (0.0, 0.005, 0.02, 0.05)
STREAM_SPAWN = 10


class HarvestEnv(GridWorld):
    """Batched Harvest; 8 actions (moves, STAY, turns, FIRE)."""

    name = "harvest"
    extra_chars = "A"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.apple_cells = self.cells("A")
        # j**2 + k**2 <= APPLE_RADIUS with integer j, k is exactly the 3x3 block (fact sheet §9.1)
        self.reach = max(j for j in range(APPLE_RADIUS + 1) if j * j <= APPLE_RADIUS)
        r, c = self.rows_cols(self.apple_cells)
        self.apple_cells_unpadded = r * self.width + c
        self.spawn_prob = torch.tensor(SPAWN_PROB, device=self.device)

    def _reset_world(self) -> None:
        self.apples = torch.zeros(self.num_envs, self.num_cells, dtype=torch.bool, device=self.device)
        self.apples[:, self.apple_cells] = True

    def neighbour_apples(self) -> Tensor:
        """``(B, K)`` uint8 apples in the (2r+1)x(2r+1) block around each apple cell (own cell
        included; it is empty whenever it can regrow), by separable box sums over the map."""
        b, h, w, r = self.num_envs, self.height, self.width, self.reach
        grid = self.apples[:, : self.dummy].view(b, self.padded_height, self.padded_width)
        grid = grid[:, VIEW - r : VIEW + h + r, VIEW - r : VIEW + w + r].to(torch.uint8)
        rows = sum(grid[:, :, i : i + w] for i in range(2 * r + 1))
        block = sum(rows[:, i : i + h] for i in range(2 * r + 1))
        return block.reshape(b, h * w).index_select(1, self.apple_cells_unpadded)

    def _spawn(self, occ: Tensor) -> None:
        """HarvestEnv.spawn_apples: one uniform per apple cell, probability by neighbour count."""
        near = self.neighbour_apples().clamp_(max=len(SPAWN_PROB) - 1).long()
        have = self.apples.index_select(1, self.apple_cells)
        free = ~have & (occ.index_select(1, self.apple_cells) == 0)
        grow = free & (self.uniform(STREAM_SPAWN, len(self.apple_cells)) < self.spawn_prob[near])
        self.apples.index_copy_(1, self.apple_cells, have | grow)
