"""Cleanup (Hughes et al. 2018; SSD ``CleanupEnv``): apples grow only while the river is clean.

Rules beyond :class:`~si.envs.gridworld.GridWorld` (the original SSD code, docs/envs.md):

* Action 8 CLEAN fires a beam of the FIRE geometry that costs nothing, hits nobody, stops at
  the first agent, and turns the first waste cell it reaches into river (also under an agent)
  and stops there. Cleaners act one after another in a random order, so beams stack.
* After cleaning, waste density ``d = #waste / #(H ∪ R cells)`` (``d = 0`` on a map without H/R
  cells, as in the original; such a map never gets waste). If ``d >= 0.4`` neither apples nor
  waste spawn; otherwise every empty ``B`` cell without an agent grows an apple with
  probability ``0.05 * (1 - d / 0.4)`` and one waste cell spawns with probability
  ``1 - 0.5**(#clean river cells)`` on a uniformly random clean H/R cell (the original's walk over
  a shuffled list with a 0.5 coin per clean cell has exactly this distribution). Waste may
  spawn under an agent; stream ``S`` cells never get waste.
* The map starts with its 56 ``H`` cells as waste (d = 0.47, depleted) and no apples.
"""

from __future__ import annotations

import torch
from torch import Tensor

from si.envs.gridworld import BASE_ACTION_NAMES, BEAM_LEN, GridWorld, rgb

CLEAN = 8
THRESHOLD_DEPLETION = 0.4
THRESHOLD_RESTORATION = 0.0
WASTE_SPAWN_PROB = 0.5
APPLE_RESPAWN_PROB = 0.05
RIVER = rgb(113, 75, 24)
WASTE = rgb(99, 156, 194)
STREAM_ORDER, STREAM_APPLE, STREAM_WASTE, STREAM_WASTE_CELL = 10, 11, 12, 13


def random_order(keys: Tensor) -> tuple[Tensor, Tensor]:
    """``(order, rank)`` of ``keys (B, N)``: ``order[b, r]`` is the agent at rank ``r`` (as
    ``keys.argsort(1)``, ties by index) and ``rank[b, i]`` agent ``i``'s rank. Built from ``N × N``
    comparisons, which ``torch.compile`` fuses with the rest of the step (a sort splits it)."""
    n = keys.shape[1]
    idx = torch.arange(n, device=keys.device)
    ki, kj = keys[:, :, None], keys[:, None, :]
    rank = ((kj < ki) | ((kj == ki) & (idx < idx[:, None]))).sum(2)
    order = ((rank[:, None, :] == idx[:, None]) * idx).sum(2)
    return order, rank


class CleanupEnv(GridWorld):
    """Batched Cleanup; 9 actions (Harvest's 8 plus CLEAN)."""

    name = "cleanup"
    extra_chars = "BHRS"
    apple_char = "B"
    river_chars = "HR"
    """Where waste lies (the area of the density d); stream ``S`` cells never hold waste, so an
    agent there is not at the river for the ``in_river`` stat."""
    action_names = (*BASE_ACTION_NAMES, "CLEAN")
    num_beams = 2
    _state_names = (*GridWorld._state_names, "waste")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.waste_cells = torch.cat([self.cells(ch) for ch in self.river_chars]).sort().values
        self.waste_idx = self.waste_cells.expand(self.num_envs, -1)
        """``(B, K)`` river cell ids, the index of gathers and scatters over waste."""
        river = torch.cat([self.waste_cells, self.cells("S")])
        self.base_colour[river] = RIVER
        self.waste = torch.zeros(self.num_envs, self.num_cells, dtype=torch.bool, device=self.device)

    def _reset_world(self) -> None:
        self.apples = torch.zeros(self.num_envs, self.num_cells, dtype=torch.bool, device=self.device)
        self.waste = torch.zeros_like(self.apples)
        self.waste[:, self.cells("H")] = True

    def _waste_count(self) -> Tensor:
        return self._count(self.waste, self.waste_idx)

    def _terrain_cells(self) -> list[tuple[Tensor, Tensor]]:
        dirty = self.waste.gather(1, self.waste_idx)
        return [*super()._terrain_cells(), (self.waste_idx, torch.where(dirty, WASTE, self.base_colour[self.waste_cells]))]

    def _special_actions(self, actions: Tensor, occ: Tensor) -> tuple[Tensor, Tensor]:
        """CLEAN beams, applied one agent at a time in a random order (MapEnv.update_custom_moves).

        One pass per rank: the agent of that rank in every env fires against the waste left by the
        earlier ones. Returns waste cells cleaned per agent and the beam cells to draw.
        """
        b, n = self.num_envs, self.num_agents
        order, rank = random_order(self.uniform(STREAM_ORDER, n))  # order[:, r] = agent acting at rank r
        cells = self.beam_cells().view(b, n, -1).gather(1, order[..., None].expand(-1, -1, 3 * BEAM_LEN))
        cells = cells.view(b, n, 3, BEAM_LEN)  # by rank from here on
        flat = cells.view(b, -1)
        blocked = self._blocked(flat).view_as(cells)
        agent = (occ.gather(1, flat) > 0).view_as(cells)
        cleaning = (actions == CLEAN).gather(1, order)
        cover = torch.empty_like(blocked)
        cleaned = torch.empty(b, n, device=self.device)
        for r in range(n):
            ray = cells[:, r]
            dirty = self.waste.gather(1, ray.view(b, -1)).view_as(ray)
            cover[:, r] = self.ray_cover(blocked[:, r], agent[:, r] | dirty) & cleaning[:, r, None, None]
            hit = cover[:, r] & dirty
            self._put(self.waste, torch.where(hit, ray, self.dummy).view(b, -1), False)
            cleaned[:, r] = hit.view(b, -1).sum(1, dtype=torch.float32)
        return cleaned.gather(1, rank), torch.where(cover, cells, self.dummy).view(b, -1)  # cleaned by agent

    def _spawn(self, occ: Tensor) -> None:
        """CleanupEnv.compute_probabilities + spawn_apples_and_waste."""
        area = len(self.waste_cells)
        dirty = self.waste.gather(1, self.waste_idx)  # waste lies only on these cells
        density = dirty.sum(1, dtype=torch.int32).to(torch.float32) / max(area, 1)  # 0 without river
        live = density < THRESHOLD_DEPLETION
        span = THRESHOLD_DEPLETION - THRESHOLD_RESTORATION
        p_apple = torch.where(
            density <= THRESHOLD_RESTORATION,
            APPLE_RESPAWN_PROB,
            (1 - (density - THRESHOLD_RESTORATION) / span) * APPLE_RESPAWN_PROB,
        )
        p_apple = torch.where(live, p_apple, 0.0)
        have = self.apples.gather(1, self.apple_idx)
        grow = ~have & (self.uniform(STREAM_APPLE, len(self.apple_cells)) < p_apple[:, None])
        self._put(self.apples, self.apple_idx, have | grow)
        self._put(self.apples, self.pos, False)  # no growth under agents (their cells were just eaten)
        if not area:
            return
        clean = ~dirty
        p_waste = 1 - (1 - WASTE_SPAWN_PROB) ** clean.sum(1, dtype=torch.float32)
        spawn = live & (self.uniform(STREAM_WASTE, 1)[:, 0] < p_waste)
        pick = torch.where(clean, self.uniform(STREAM_WASTE_CELL, area), -1.0).argmax(1, keepdim=True)
        self._put(self.waste, self.waste_idx.gather(1, pick), spawn[:, None] | dirty.gather(1, pick))
