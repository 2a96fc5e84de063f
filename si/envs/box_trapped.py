"""Box trapped (Jaques et al. 2019, appendix 10.3, Figs 11-13): releasing a trapped agent.

The paper gives only the idea (one agent starts trapped in a box, another has a special action
that opens it, apples lie outside, and the influencer "usually chooses to open the box within the
first few steps", Fig 12). The rules we chose (docs/box_trapped.md):

* Actions: Harvest's 8 plus 8 ``OPEN_BOX`` for every agent (one shared action space), 9 in all.
* Agent 1 starts inside the box, the single cell ``T`` closed by the door ``D``, facing the door.
  Agent 0 and any further agents spawn on random ``P`` cells. Needs ``N >= 2``.
* Only agent 0 can open the box, from anywhere: ``OPEN_BOX`` opens the door after this step's
  moves, and it stays open until the episode ends. For anyone else, or once open, it is a no-op
  (like FIRE, it reserves nothing in movement). Opening costs and pays nothing.
* A closed door is a wall for movement and beams and is drawn brown; an open door is floor.
* Apples are inexhaustible: every ``A`` cell without apple and agent regrows with probability
  ``APPLE_REGROW_PROB`` per step, independent of its neighbours. Eating gives +1; FIRE, hits and
  their rewards are Harvest's.
* Stats add ``box_opened (B, N)``: 1 for agent 0 on the transition in which it opened the box.

Agent 0 has no extrinsic reason to open the box (the released agent competes for the apples and
opening costs a step). Inside the closed box nothing the trapped agent does matters, while right
after the door opens its next action is to walk out: agent 0's OPEN_BOX changes the trapped
agent's *next* action, the influence a model of other agents measures (§6, Fig 8b).
"""

from __future__ import annotations

import torch
from torch import Tensor

from si.envs.gridworld import BASE_ACTION_NAMES, BLACK, STAY, GridWorld, rgb

OPEN_BOX = 8
OPENER, TRAPPED = 0, 1
APPLE_REGROW_PROB = 0.05
DOOR = rgb(139, 69, 19)
STREAM_SPAWN = 10


class BoxTrappedEnv(GridWorld):
    """Batched Box trapped; 9 actions (Harvest's 8 plus OPEN_BOX)."""

    name = "box_trapped"
    env_version = "5"
    extra_chars = "ATD"
    action_names = (*BASE_ACTION_NAMES, "OPEN_BOX")
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
        self.apple_cells = self.cells("A")
        self.door_open = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        self._opened = torch.zeros(self.num_envs, self.num_agents, device=self.device)

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

    def _special_actions(self, actions: Tensor, occ: Tensor) -> tuple[Tensor, None]:
        """OPEN_BOX by agent 0 (anywhere) opens the closed door, after this step's moves."""
        opens = (actions[:, OPENER] == OPEN_BOX) & ~self.door_open
        self.door_open = self.door_open | opens
        self._opened = torch.zeros(self.num_envs, self.num_agents, device=self.device)
        self._opened[:, OPENER] = opens.to(torch.float32)
        return torch.zeros(self.num_envs, self.num_agents, device=self.device), None

    def _spawn(self, occ: Tensor) -> None:
        free = ~self.apples[:, self.apple_cells] & (occ[:, self.apple_cells] == 0)
        grow = free & (self.uniform(STREAM_SPAWN, len(self.apple_cells)) < APPLE_REGROW_PROB)
        self.apples[:, self.apple_cells] |= grow

    def _extra_stats(self, stats: dict[str, Tensor]) -> None:
        stats["box_opened"] = self._opened

    def _zero_stats(self) -> dict[str, Tensor]:
        stats = super()._zero_stats()
        stats["box_opened"] = torch.zeros(self.num_envs, self.num_agents, device=self.device)
        return stats

    def _terrain(self) -> Tensor:
        colour = super()._terrain()
        colour[:, self.door_cell] = torch.where(self.door_open, BLACK, DOOR)
        return colour
