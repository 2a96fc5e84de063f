"""Cleanup (Hughes et al. 2018; SSD ``CleanupEnv``): apples grow only while the river is clean.

Rules beyond :class:`~si.envs.gridworld.GridWorld` (fact sheet §3, §5):

* Action 8 CLEAN fires a beam of the FIRE geometry that costs nothing, hits nobody, stops at
  the first agent, and turns the first waste cell it reaches into river (also under an agent)
  and stops there. Cleaners act one after another in a random order, so beams stack.
* After cleaning, waste density ``d = #waste / #(H ∪ R cells)``. If ``d >= 0.4`` neither apples
  nor waste spawn; otherwise every empty ``B`` cell without an agent grows an apple with
  probability ``0.05 * (1 - d / 0.4)`` and one waste cell spawns with probability
  ``1 - 0.5**(#clean river cells)`` on a uniformly random clean H/R cell (the original's walk over
  a shuffled list with a 0.5 coin per clean cell has exactly this distribution). Waste may
  spawn under an agent; stream ``S`` cells never get waste.
* The map starts with its 56 ``H`` cells as waste (d = 0.47, depleted) and no apples.
"""

from __future__ import annotations

import torch
from torch import Tensor

from si.envs.gridworld import BASE_ACTION_NAMES, GridWorld, rgb

CLEAN = 8
THRESHOLD_DEPLETION = 0.4
THRESHOLD_RESTORATION = 0.0
WASTE_SPAWN_PROB = 0.5
APPLE_RESPAWN_PROB = 0.05
RIVER = rgb(113, 75, 24)
WASTE = rgb(99, 156, 194)
STREAM_ORDER, STREAM_APPLE, STREAM_WASTE, STREAM_WASTE_CELL = 10, 11, 12, 13


class CleanupEnv(GridWorld):
    """Batched Cleanup; 9 actions (Harvest's 8 plus CLEAN)."""

    name = "cleanup"
    extra_chars = "BHRS"
    action_names = (*BASE_ACTION_NAMES, "CLEAN")
    _state_names = (*GridWorld._state_names, "waste")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.apple_cells = self.cells("B")
        self.waste_cells = torch.cat([self.cells("H"), self.cells("R")]).sort().values
        river = torch.cat([self.waste_cells, self.cells("S")])
        self.base_colour[river] = RIVER
        self.waste = torch.zeros(self.num_envs, self.num_cells, dtype=torch.bool, device=self.device)

    def _reset_world(self) -> None:
        self.apples = torch.zeros(self.num_envs, self.num_cells, dtype=torch.bool, device=self.device)
        self.waste = torch.zeros_like(self.apples)
        self.waste[:, self.cells("H")] = True

    def _waste_count(self) -> Tensor:
        return self.waste.sum(1, dtype=torch.float32)

    def _terrain(self) -> Tensor:
        return torch.where(self.waste, WASTE, super()._terrain())

    def _special_actions(self, actions: Tensor, occ: Tensor) -> tuple[Tensor, Tensor]:
        """CLEAN beams, applied one agent at a time in a random order (MapEnv.update_custom_moves).

        One pass per rank: the agent of that rank in every env fires against the waste left by the
        earlier ones. Returns waste cells cleaned per agent and the beam cells to draw.
        """
        b, n = self.num_envs, self.num_agents
        order = self.uniform(STREAM_ORDER, n).argsort(1)
        cells_all = self.beam_cells().view(b, n, -1)
        blocked_all = self._blocked(cells_all.view(b, -1)).view_as(cells_all)
        agent_all = occ.gather(1, cells_all.view(b, -1)).view_as(cells_all) > 0
        cleaning = actions == CLEAN
        cleaned = torch.zeros(b, n, device=self.device)
        draw = torch.full_like(cells_all, self.dummy)
        for rank in range(n):
            k = order[:, rank : rank + 1]
            cells = cells_all.gather(1, k[..., None].expand(-1, -1, cells_all.shape[2])).view(b, 3, -1)
            blocked = blocked_all.gather(1, k[..., None].expand(-1, -1, cells_all.shape[2])).view_as(cells)
            agent = agent_all.gather(1, k[..., None].expand(-1, -1, cells_all.shape[2])).view_as(cells)
            dirty = self.waste.gather(1, cells.view(b, -1)).view_as(cells)
            cover = self.ray_cover(blocked, agent | dirty) & cleaning.gather(1, k)[..., None]
            hit = cover & dirty
            self.waste.scatter_(1, torch.where(hit, cells, self.dummy).view(b, -1), False)
            cleaned.scatter_add_(1, k, hit.view(b, -1).sum(1, keepdim=True, dtype=torch.float32))
            drawn = torch.where(cover, cells, self.dummy).view(b, 1, -1)
            draw.scatter_(1, k[..., None].expand(-1, -1, cells_all.shape[2]), drawn)
        return cleaned, draw.view(b, -1)

    def _spawn(self, occ: Tensor) -> None:
        """CleanupEnv.compute_probabilities + spawn_apples_and_waste."""
        area = len(self.waste_cells)
        density = self.waste.sum(1, dtype=torch.float32) / area
        live = density < THRESHOLD_DEPLETION
        span = THRESHOLD_DEPLETION - THRESHOLD_RESTORATION
        p_apple = torch.where(
            density <= THRESHOLD_RESTORATION,
            APPLE_RESPAWN_PROB,
            (1 - (density - THRESHOLD_RESTORATION) / span) * APPLE_RESPAWN_PROB,
        )
        p_apple = torch.where(live, p_apple, 0.0)
        free = ~self.apples[:, self.apple_cells] & (occ[:, self.apple_cells] == 0)
        grow = free & (self.uniform(STREAM_APPLE, len(self.apple_cells)) < p_apple[:, None])
        self.apples[:, self.apple_cells] |= grow
        clean = ~self.waste[:, self.waste_cells]
        p_waste = 1 - (1 - WASTE_SPAWN_PROB) ** clean.sum(1, dtype=torch.float32)
        spawn = live & (self.uniform(STREAM_WASTE, 1)[:, 0] < p_waste)
        pick = torch.where(clean, self.uniform(STREAM_WASTE_CELL, area), -1.0).argmax(1)
        cell = torch.where(spawn, self.waste_cells[pick], self.dummy)
        self.waste.scatter_(1, cell[:, None], True)
        self.waste[:, self.dummy] = False
