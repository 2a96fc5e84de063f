"""Box trapped (Jaques et al. 2019, appendix 10.3, Figs 11-13): releasing a trapped agent.

The paper gives only the idea (one agent starts trapped in a box, another has a special action
that opens it, apples lie outside and are inexhaustible, the influencer "usually chooses to open
the box within the first few steps" (Fig 12) and its influence reward spikes at the step it opens
(Fig 13)). The rules we chose (docs/box_trapped.md, env_version 6):

* Actions: Harvest's moves, turns and STAY (0-6) plus 7 ``OPEN_BOX`` for every agent (one shared
  action space), 8 in all. There is no FIRE beam: the game is about releasing, not fighting.
* Agent 1 starts inside the box, the single cell ``T`` closed by the door ``D``, facing the door.
  Agent 0 and any further agents spawn on random ``P`` cells. Needs ``N >= 2``.
* Only agent 0 can open the box, from anywhere: ``OPEN_BOX`` opens the door before that step's
  moves (the trapped agent can walk out in the same step) and it stays open until the episode
  ends. For anyone else, or once open, it is a no-op (like FIRE elsewhere, it reserves nothing).
* A closed door is a wall for movement and is drawn brown; an open door is floor. Beyond the door
  a short corridor turns right (``D`` → two apple cells → the room), so a released agent's next
  move differs from the one that took it through the door.
* Apples are inexhaustible: every ``A`` cell without apple and agent regrows with probability
  ``APPLE_REGROW_PROB`` per step. Eating gives +1.
* Stats add ``box_opened (B, N)``: 1 for agent 0 on the step it opened the box, and
  ``released (B, N)``: 1 for agent 1 on the step it left the box.

Agent 0 has no extrinsic reason to open the box (pressing costs a step of eating and releases a
competitor). Walking into the closed door costs nothing, so we expect the trapped agent to keep
doing it (in our diagnostic runs it did, docs/results.md); the opening then changes what it does
next: at ``t + 1`` it turns into the corridor instead of pressing against the door. That is the influence a model of other agents measures (§6, Fig 8b:
``p(a^j_{t+1} | a^k_t, s^k_t)``), which pays agent 0 for opening.
"""

from __future__ import annotations

import torch
from torch import Tensor

from si.envs.gridworld import BASE_ACTION_NAMES, FIRE, STAY, GridWorld, rgb

OPEN_BOX = 7
OPENER, TRAPPED = 0, 1
APPLE_REGROW_PROB = 1.0
DOOR = rgb(139, 69, 19)
STREAM_SPAWN = 10


class BoxTrappedEnv(GridWorld):
    """Batched Box trapped; 8 actions (moves, turns, STAY, OPEN_BOX)."""

    name = "box_trapped"
    env_version = "6"
    extra_chars = "ATD"
    action_names = (*BASE_ACTION_NAMES[:FIRE], "OPEN_BOX")
    has_fire = False
    num_beams = 0
    agents_off_spawn = 1
    _state_names = (*GridWorld._state_names, "door_open")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if self.num_agents < 2:
            raise ValueError(
                f"box_trapped needs num_agents >= 2 (an opener and a trapped agent), got {self.num_agents}"
            )
        if len(self.cells("T")) != 1 or len(self.cells("D")) != 1:
            raise ValueError(f"map {self.map_name!r} needs exactly one 'T' and one 'D' cell")
        self.trap_cell = int(self.cells("T")[0])
        self.door_cell = int(self.cells("D")[0])
        self.wall[self.door_cell] = False
        self.door_open = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        self._opened = torch.zeros(self.num_envs, self.num_agents, device=self.device)
        self._released = torch.zeros_like(self._opened)

    def _check_spawn_count(self) -> None:
        if self.num_agents - 1 > len(self.spawn_cells):
            raise ValueError(
                f"num_agents={self.num_agents} exceeds the {len(self.spawn_cells)} spawn points "
                f"(+1 trapped agent) of map {self.map_name!r}"
            )

    def _reset_state(self) -> None:
        """Spawn as in :class:`GridWorld`, then move agent 1 into the box."""
        self._ctr.add_(1)
        keys = self.uniform(0, len(self.spawn_cells))
        free = self.spawn_cells[keys.argsort(1)[:, : self.num_agents - 1]]
        trap = torch.full_like(free[:, :1], self.trap_cell)
        self.pos = torch.cat([free[:, :TRAPPED], trap, free[:, TRAPPED:]], 1)
        self.orient = (self.uniform(1, self.num_agents) * 4).long()
        self.orient[:, TRAPPED] = 0  # the trapped agent faces the door (UP): MOVE_UP leaves the box
        self.prev_actions = torch.full_like(self.pos, STAY)
        self.t = 0
        self._reset_world()

    def _reset_world(self) -> None:
        self.apples = torch.zeros(self.num_envs, self.num_cells, dtype=torch.bool, device=self.device)
        self.apples[:, self.apple_cells] = True
        self.door_open = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)

    def _blocked(self, cells: Tensor) -> Tensor:
        closed = (cells == self.door_cell) & ~self.door_open.view(-1, *([1] * (cells.dim() - 1)))
        return self.wall[cells] | closed

    def _before_moves(self, actions: Tensor) -> None:
        """Agent 0's OPEN_BOX opens the closed door for good, before this step's moves."""
        opens = (actions[:, OPENER] == OPEN_BOX) & ~self.door_open
        self.door_open = self.door_open | opens
        self._opened = torch.zeros(self.num_envs, self.num_agents, device=self.device)
        self._opened[:, OPENER] = opens.to(torch.float32)
        self._was_trapped = self.pos[:, TRAPPED] == self.trap_cell

    def _special_actions(self, actions: Tensor, occ: Tensor) -> tuple[Tensor, None]:
        """Record whether the trapped agent left the box in this step's moves."""
        self._released = torch.zeros(self.num_envs, self.num_agents, device=self.device)
        left = self._was_trapped & (self.pos[:, TRAPPED] != self.trap_cell)
        self._released[:, TRAPPED] = left.to(torch.float32)
        return torch.zeros(self.num_envs, self.num_agents, device=self.device), None

    def _spawn(self, occ: Tensor) -> None:
        free = ~self.apples[:, self.apple_cells] & (occ[:, self.apple_cells] == 0)
        grow = free & (self.uniform(STREAM_SPAWN, len(self.apple_cells)) < APPLE_REGROW_PROB)
        self.apples[:, self.apple_cells] |= grow

    def _extra_stats(self, stats: dict[str, Tensor]) -> None:
        stats["box_opened"] = self._opened
        stats["released"] = self._released

    def _zero_stats(self) -> dict[str, Tensor]:
        stats = super()._zero_stats()
        for key in ("box_opened", "released"):
            stats[key] = torch.zeros(self.num_envs, self.num_agents, device=self.device)
        return stats

    def _terrain_cells(self) -> list[tuple[Tensor, Tensor]]:
        door = torch.full((self.num_envs, 1), self.door_cell, device=self.device)
        return [*super()._terrain_cells(), (door, torch.where(self.door_open[:, None], self.base_colour[door], DOOR))]
