"""Batched gridworld base of the SSD games: state tensors, movement, beams, observations.

One object steps ``B`` environments x ``N`` agents as tensors on one device; ``reset``/``step``
contain no Python loop over environments or agents (only fixed passes of size ``N``: movement
chains and the sequential cleaning beams). Rules follow the original SSD ``MapEnv``
unless ``docs/envs.md`` lists a deviation.

Coordinates: every cell tensor is indexed by a flat cell id of the map padded by ``VIEW`` cells on
each side (padding counts as wall for movement and beams and is drawn black), plus one trailing
dummy cell (``num_cells - 1``) that masked scatters write to and no view ever reads.
Orientations are 0 UP, 1 RIGHT, 2 DOWN, 3 LEFT (clockwise), so TURN_CLOCKWISE adds 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from si.envs.maps import check_rows
from si.envs.movement import resolve_moves
from si.envs.rng import seed_keys, uniforms

ENV_VERSION = "1"
VIEW = 7
"""view_len of the original (HARVEST_VIEW_SIZE = CLEANUP_VIEW_SIZE = 7): 15x15 observations."""
SIDE = 2 * VIEW + 1
BEAM_LEN = 5
"""Length of the FIRE and CLEAN beams (``_HARVEST_ACTIONS``/``_CLEANUP_ACTIONS``)."""
FIRE_COST = 1.0
HIT_PENALTY = 50.0
APPLE_REWARD = 1.0
PLACE_STATS = ("in_view", "in_river", "in_orchard")
"""Per-agent stats of where the agents are after each transition's moves (see ``_place_stats``)."""

MOVE_LEFT, MOVE_RIGHT, MOVE_UP, MOVE_DOWN, STAY, TURN_CLOCKWISE, TURN_COUNTERCLOCKWISE, FIRE = range(8)
BASE_ACTION_NAMES = (
    "MOVE_LEFT",
    "MOVE_RIGHT",
    "MOVE_UP",
    "MOVE_DOWN",
    "STAY",
    "TURN_CLOCKWISE",
    "TURN_COUNTERCLOCKWISE",
    "FIRE",
)
FORWARD = ((-1, 0), (0, 1), (1, 0), (0, -1))
"""(drow, dcol) of facing UP, RIGHT, DOWN, LEFT."""


def rgb(r: int, g: int, b: int) -> int:
    """Pack a colour into an int32 whose little-endian bytes are r, g, b, 0."""
    return r | (g << 8) | (b << 16)


BLACK = rgb(0, 0, 0)
WALL = rgb(180, 180, 180)
APPLE = rgb(0, 255, 0)
FIRE_BEAM = rgb(255, 255, 0)
CLEAN_BEAM = rgb(100, 255, 255)
AGENT_COLOURS = (
    rgb(0, 0, 255),
    rgb(2, 81, 154),
    rgb(204, 0, 204),
    rgb(216, 30, 54),
    rgb(254, 151, 0),
    rgb(100, 255, 255),
    rgb(99, 99, 255),
    rgb(250, 204, 255),
    rgb(238, 223, 16),
)
"""``DEFAULT_COLOURS`` '1'..'9' of the original; agent i uses colour ``i % 9``."""


@dataclass
class StepOut:
    """One batched transition (docs/design.md, Environment API)."""

    obs: Tensor  # uint8 (B, N, 15, 15, 3), channels last (4-byte pixel stride), facing direction up
    reward: Tensor  # float32 (B, N)
    done: Tensor  # bool (B,)
    first: Tensor  # bool (B,)
    actions: Tensor  # int64 (B, N), the actions just executed (STAY after a reset)
    visible: Tensor  # bool (B, N, N), visible[b, k, j]: j inside k's view
    stats: dict[str, Tensor] = field(default_factory=dict)  # float32 counters, see docs/envs.md
    all_done: bool = False  # every env's episode ended at this step (one shared horizon): done.all()


def _take(src: Tensor, idx: Tensor) -> Tensor:
    """``src[idx]`` for a 1-d ``src``, shaped like ``idx``.

    Eagerly ``index_select`` (the fastest CPU gather kernel); under ``torch.compile`` advanced
    indexing, which inductor lowers to nested loops (its ``index_select`` loop divides the flat
    output index, several times slower).
    """
    if torch.compiler.is_compiling():
        return src[idx]
    return src.index_select(0, idx.view(-1)).view(idx.shape)


class GridWorld:
    """Shared machinery of Harvest, Cleanup and Box trapped (subclasses add the game rules)."""

    name = "gridworld"
    env_version = ENV_VERSION
    """Rule version, recorded in summary.json; bumped on every rule change (docs/envs.md changelog)."""
    action_names: tuple[str, ...] = BASE_ACTION_NAMES
    has_fire: bool = True
    """Whether action 7 is the penalty beam FIRE (Harvest, Cleanup) or a game's own action."""
    extra_chars = ""
    """Map characters the subclass understands besides '@', 'P', ' '."""
    apple_char = "A"
    """Map character of the cells where apples grow."""
    river_chars = ""
    """Map characters of river cells (the ``in_river`` stat; none outside Cleanup)."""
    num_beams = 1
    """Kinds of beams drawn per step (FIRE; Cleanup adds CLEAN): fixes the shape of ``_drawn``."""
    agents_off_spawn = 0
    """Agents the game places off the map's spawn points ``P`` (Box trapped: the trapped agent)."""

    def __init__(
        self,
        rows: tuple[str, ...] | list[str],
        num_envs: int,
        num_agents: int = 5,
        horizon: int = 1000,
        device: str | torch.device = "cpu",
        map_name: str = "custom",
    ) -> None:
        check_rows(rows)
        bad = {ch for row in rows for ch in row} - set("@P " + self.extra_chars)
        if bad:
            raise ValueError(f"map {map_name!r} has characters {sorted(bad)} unknown to {self.name}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if num_agents < 1:
            raise ValueError(f"num_agents must be >= 1, got {num_agents}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.num_envs, self.num_agents, self.horizon = num_envs, num_agents, horizon
        self.device = torch.device(device)
        self.map_name = map_name
        self.rows = tuple(rows)
        self.num_actions = len(self.action_names)
        self.obs_shape = (SIDE, SIDE, 3)
        self.validate_actions = True
        """Check actions in ``step`` (one host sync; switch off inside CUDA graphs)."""

        h, w = len(rows), len(rows[0])
        self.height, self.width = h, w
        self.padded_width = wp = w + 2 * VIEW
        self.padded_height = hp = h + 2 * VIEW
        self.num_cells = hp * wp + 1
        self.dummy = hp * wp
        self.map_span = slice(VIEW * wp, (VIEW + h) * wp)
        """Flat ids of the map's rows: every cell that can hold an apple, waste or an agent."""
        dev = self.device

        self._cells_of: dict[str, Tensor] = {}
        for ch in set("@P " + self.extra_chars):
            ids = [(r + VIEW) * wp + c + VIEW for r, row in enumerate(rows) for c, x in enumerate(row) if x == ch]
            self._cells_of[ch] = torch.tensor(ids, dtype=torch.long, device=dev)
        wall = torch.ones(self.num_cells, dtype=torch.bool, device=dev)
        inside = torch.tensor([(r + VIEW) * wp + c + VIEW for r in range(h) for c in range(w)], device=dev)
        wall[inside] = False
        wall[self.cells("@")] = True
        self.wall = wall
        self.spawn_cells = self.cells("P")
        self.apple_cells = self.cells(self.apple_char)
        self.apple_idx = self.apple_cells.expand(num_envs, -1)
        """``(B, K)`` apple cell ids, the index of gathers and scatters over apple cells."""
        self.on_river, self.on_orchard = self._cell_mask(self.river_chars), self._cell_mask(self.apple_char)
        """``(num_cells,)`` float32 1.0 on river / apple-spawn cells: lookup tables of ``_place_stats``."""
        self._check_spawn_count()

        base = torch.full((self.num_cells,), BLACK, dtype=torch.int32, device=dev)
        base[self.cells("@")] = WALL
        self.base_colour = base
        self._frame: Tensor | None = None
        """``(B, num_cells)`` int32 colours of the last drawn frame, updated in place (see ``_draw``)."""
        self._drawn = torch.full((num_envs, num_agents * (1 + 3 * BEAM_LEN * self.num_beams)), self.dummy, device=dev)
        """Cells where ``_frame`` shows agents or beams instead of terrain, padded with the dummy
        cell to one fixed width (one shape: one compiled graph)."""
        self.agent_colour = torch.tensor(
            [AGENT_COLOURS[i % len(AGENT_COLOURS)] for i in range(num_agents)], dtype=torch.int32, device=dev
        )

        # Lookup tables indexed by [action, orientation] / [action].
        fwd = torch.tensor(FORWARD, dtype=torch.long)
        right = fwd.roll(-1, 0)
        step2d = torch.zeros(self.num_actions, 4, 2, dtype=torch.long)
        step2d[MOVE_LEFT], step2d[MOVE_RIGHT] = -right, right
        step2d[MOVE_UP], step2d[MOVE_DOWN] = fwd, -fwd
        self.move_delta = (step2d[..., 0] * wp + step2d[..., 1]).to(dev)
        turn = torch.zeros(self.num_actions, dtype=torch.long)
        turn[TURN_CLOCKWISE], turn[TURN_COUNTERCLOCKWISE] = 1, -1
        self.turn = turn.to(dev)
        # Beam cells per orientation: 3 rays x BEAM_LEN steps. Centre ray 1..5 ahead, side rays
        # start beside the agent and cover 0..4 ahead (MapEnv.update_map_fire, width 3).
        beam = torch.zeros(4, 3, BEAM_LEN, 2, dtype=torch.long)
        s = torch.arange(BEAM_LEN)
        for d in range(4):
            beam[d, 0] = fwd[d] * (s[:, None] + 1)
            beam[d, 1] = right[d] + fwd[d] * s[:, None]
            beam[d, 2] = -right[d] + fwd[d] * s[:, None]
        self.beam_delta = (beam[..., 0] * wp + beam[..., 1]).reshape(4, 3 * BEAM_LEN).to(dev)
        # View offsets per orientation, the facing direction drawn up: facing k (clockwise from UP)
        # is the unrotated window turned k quarter turns counter-clockwise.
        dr = torch.arange(-VIEW, VIEW + 1)
        flat = dr[:, None] * wp + dr[None, :]
        # int32 (B * num_cells < 2**31): index_select takes int32 indexes, half the bytes of int64
        self.view_offset = torch.stack([torch.rot90(flat, k).reshape(-1) for k in range(4)]).to(dev, torch.int32)

        cell_ids = torch.arange(self.num_cells, device=dev)
        self._row_of, self._col_of = cell_ids // wp, cell_ids % wp
        """Padded row and column of every cell (lookup tables: no integer division per step)."""
        self._env_ids = torch.arange(num_envs, device=dev)
        self._env_offset = self._env_ids[:, None] * self.num_cells
        """``(B, 1)`` flat offset of env b's row in a ``(B, num_cells)`` tensor."""
        self._agent_ids = torch.arange(1, num_agents + 1, dtype=torch.int16, device=dev)
        self._key = torch.zeros(num_envs, dtype=torch.int32, device=dev)
        self._ctr = torch.zeros((), dtype=torch.int32, device=dev)
        self._seed_keys(0)
        self.t = 0
        self.pos = torch.zeros(num_envs, num_agents, dtype=torch.long, device=dev)
        self.orient = torch.zeros_like(self.pos)
        self.prev_actions = torch.full_like(self.pos, STAY)
        self.apples = torch.zeros(num_envs, self.num_cells, dtype=torch.bool, device=dev)

    # ----------------------------------------------------------------- helpers
    def cells(self, ch: str) -> Tensor:
        """Flat padded ids of the map cells holding ``ch`` (row-major)."""
        return self._cells_of[ch]

    def _cell_mask(self, chars: str) -> Tensor:
        """``(num_cells,)`` float32: 1.0 on the map cells holding one of ``chars``, else 0."""
        mask = torch.zeros(self.num_cells, device=self.device)
        for ch in chars:
            mask[self.cells(ch)] = 1.0
        return mask

    def _check_spawn_count(self) -> None:
        if self.num_agents > len(self.spawn_cells):
            raise ValueError(
                f"num_agents={self.num_agents} exceeds the {len(self.spawn_cells)} spawn points "
                f"of map {self.map_name!r}"
            )

    def _seed_keys(self, seed: int) -> None:
        self._key = seed_keys(seed, self.num_envs, self.device)
        self._ctr.zero_()

    def uniform(self, stream: int, k: int) -> Tensor:
        """``(B, k)`` float32 uniforms in [0, 1) for draw ``stream`` of the current step counter
        (si.envs.rng: the whole generator state is ``(_key, _ctr)``, identical on CPU and CUDA)."""
        return uniforms(self._key, self._ctr, stream, k)

    def cell_id(self, row: int, col: int) -> int:
        """Flat padded id of map cell (row, col); the inverse of :meth:`rows_cols`."""
        return (row + VIEW) * self.padded_width + col + VIEW

    def rows_cols(self, pos: Tensor) -> tuple[Tensor, Tensor]:
        """Map (unpadded) row and column of padded flat cell ids."""
        return self._row_of[pos] - VIEW, self._col_of[pos] - VIEW

    @staticmethod
    def _count(mask: Tensor, idx: Tensor) -> Tensor:
        """``(B,)`` float32 number of True cells of a ``(B, num_cells)`` mask among the cells ``idx``
        (``(B, K)``, the only cells where the mask can be True)."""
        return mask.gather(1, idx).sum(1, dtype=torch.int32).to(torch.float32)

    def _put(self, buf: Tensor, cells: Tensor, values: Tensor | bool | int) -> None:
        """``buf[b, cells[b, i]] = values[b, i]`` in place for a ``(B, num_cells)`` state tensor.

        Eagerly ``scatter_`` (5x faster than ``index_put_`` on CPU); under ``torch.compile`` an
        ``index_put_``, which inductor updates in place, where it copies the whole buffer for
        every ``scatter_``.
        """
        if torch.compiler.is_compiling():
            buf[self._env_ids[:, None], cells] = values
        else:
            buf.scatter_(1, cells, values)

    def _blocked(self, cells: Tensor) -> Tensor:
        """``(B, …)`` True where ``cells`` (``(B, …)``) cannot be entered or crossed by beams."""
        return self.wall[cells]

    # ------------------------------------------------------------ reset / step
    def reset(self, seed: int | None = None) -> StepOut:
        """Start new episodes in all envs; ``seed`` re-seeds env b with key(seed, b) (None: continue)."""
        if seed is not None:
            self._seed_keys(int(seed))
        self._reset_state()
        return self._out_after_reset(torch.zeros(self.num_envs, self.num_agents, device=self.device), done=False)

    def _reset_state(self) -> None:
        """Spawn agents at random distinct spawn points with random orientations (ME.spawn_point)."""
        self._ctr.add_(1)
        keys = self.uniform(0, len(self.spawn_cells))
        self.pos = self.spawn_cells[keys.argsort(1)[:, : self.num_agents]]
        self.orient = (self.uniform(1, self.num_agents) * 4).long()
        self.prev_actions = torch.full_like(self.pos, STAY)
        self.t = 0
        self._reset_world()

    def _reset_world(self) -> None:
        """Game-specific reset of map contents (apples, waste, door)."""
        raise NotImplementedError

    def _out_after_reset(self, reward: Tensor, done: bool, stats: dict[str, Tensor] | None = None) -> StepOut:
        b = self.num_envs
        flag = torch.full((b,), True, device=self.device)
        return StepOut(
            obs=self._observe(None, None),
            reward=reward,
            done=flag if done else ~flag,
            first=flag,
            all_done=done,
            actions=self.prev_actions.clone(),
            visible=self._visible(),
            stats=stats if stats is not None else self._zero_stats(),
        )

    def _zero_stats(self) -> dict[str, Tensor]:
        z = torch.zeros(self.num_envs, self.num_agents, device=self.device)
        return {**self._stats(z, z, z, z), **dict.fromkeys(PLACE_STATS, z)}

    def _stats(self, apples: Tensor, fires: Tensor, hits: Tensor, cleaned: Tensor) -> dict[str, Tensor]:
        return {
            "apples": apples,
            "fires": fires,
            "hits": hits,
            "cleaned": cleaned,
            "apples_on_map": self._count(self.apples, self.apple_idx),
            "waste_on_map": self._waste_count(),
        }

    def _place_stats(self, visible: Tensor) -> dict[str, Tensor]:
        """``(B, N)`` float32 where each agent is after the moves: ``in_view`` the other agents
        inside its view (``visible``, which gates the MOA influence reward, §6), ``in_river`` /
        ``in_orchard`` 1.0 on a river / apple-spawn cell."""
        return {
            "in_view": visible.sum(-1, dtype=torch.float32) - 1.0,
            "in_river": self.on_river[self.pos],
            "in_orchard": self.on_orchard[self.pos],
        }

    def _waste_count(self) -> Tensor:
        return torch.zeros(self.num_envs, device=self.device)

    def check_actions(self, actions: Tensor) -> None:
        """ValueError unless ``actions`` is an int64 ``(B, N)`` tensor on the env device in range."""
        if not isinstance(actions, Tensor):
            raise ValueError(f"actions must be a torch.Tensor, got {type(actions).__name__}")
        if actions.dtype != torch.long:
            raise ValueError(f"actions must be int64 (LongTensor), got {actions.dtype}")
        if tuple(actions.shape) != (self.num_envs, self.num_agents):
            raise ValueError(f"actions must have shape {(self.num_envs, self.num_agents)}, got {tuple(actions.shape)}")
        if actions.device != self.device:
            raise ValueError(f"actions are on {actions.device}, the env is on {self.device}")
        if self.validate_actions and bool(((actions < 0) | (actions >= self.num_actions)).any()):
            raise ValueError(f"actions out of range [0, {self.num_actions}) for {self.name}")

    def step(self, actions: Tensor) -> StepOut:
        """One transition of every env (order of ME.step): turns and moves, eating, beams and
        special actions in random agent order, spawning, then observations. Auto-resets at the horizon."""
        self.check_actions(actions)
        return self.end_step(*self.transition(actions))

    def transition(self, actions: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor]:
        """The state update of :meth:`step` without its checks and episode bookkeeping: pure
        tensor work (compiled by :meth:`compile`) returning reward, stats, observations and
        visibility; follow it with :meth:`end_step`."""
        return self._advance(actions)

    def end_step(self, reward: Tensor, stats: dict[str, Tensor], obs: Tensor, visible: Tensor) -> StepOut:
        """Count the step and auto-reset at the horizon (a Python decision: no host sync)."""
        self.t += 1
        if self.t >= self.horizon:
            self._reset_state()
            return self._out_after_reset(reward, done=True, stats=stats)
        flag = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        return StepOut(
            obs=obs,
            reward=reward,
            done=flag,
            first=flag.clone(),
            actions=self.prev_actions.clone(),
            visible=visible,
            stats=stats,
        )

    def compile(self) -> None:
        """Run :meth:`_advance` through ``torch.compile`` from the next step on (same results bit
        for bit). On CPU the kernels are generated scalar and without index checks: inductor's
        vectorised code for gathers and bool tensors is several times slower than its scalar code."""
        options = {"cpp.simdlen": 1, "assert_indirect_indexing": False} if self.device.type == "cpu" else {}
        self._advance = torch.compile(self._advance, dynamic=False, options=options)  # type: ignore[method-assign]

    def _advance(self, actions: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor]:
        """The transition as pure tensor work (no host sync, no Python state but tensors), so
        ``torch.compile`` can fuse it: returns reward, stats, observations and visibility."""
        self._ctr.add_(1)
        n = self.num_agents
        # turns and moves (ME.update_moves)
        self.orient = (self.orient + self.turn[actions]) % 4
        target = self.pos + self.move_delta[actions, self.orient]
        self._before_moves(actions)
        target = torch.where(self._blocked(target), self.pos, target)
        self.pos = resolve_moves(self.pos, target, self.uniform(2, n))
        # eating (Agent.consume)
        ate = self.apples.gather(1, self.pos)
        self._put(self.apples, self.pos, False)
        occ = self._occupancy()
        # FIRE (Harvest/CleanupEnv.custom_action, MapEnv.update_map_fire)
        fires = actions == FIRE if self.has_fire else torch.zeros_like(actions, dtype=torch.bool)
        fire_cells, hits = self._fire(fires, occ)
        cleaned, clean_cells = self._special_actions(actions, occ)
        self._spawn(occ)
        apples = ate.to(torch.float32)
        fires_f = fires.to(torch.float32)
        reward = APPLE_REWARD * apples - FIRE_COST * fires_f - HIT_PENALTY * hits
        visible = self._visible()
        stats = {**self._stats(apples, fires_f, hits, cleaned), **self._place_stats(visible)}
        self._extra_stats(stats)
        self.prev_actions = actions.clone()
        return reward, stats, self._observe(fire_cells, clean_cells), visible

    def _before_moves(self, actions: Tensor) -> None:
        """Game rules that act before the moves (Box trapped's door)."""

    def _special_actions(self, actions: Tensor, occ: Tensor) -> tuple[Tensor, Tensor | None]:
        """Game actions beyond FIRE (CLEAN, OPEN_BOX): returns (cleaned (B,N), clean beam cells or None)."""
        return torch.zeros(self.num_envs, self.num_agents, device=self.device), None

    def _spawn(self, occ: Tensor) -> None:
        """Game-specific regrowth (custom_map_update)."""
        raise NotImplementedError

    def _extra_stats(self, stats: dict[str, Tensor]) -> None:
        """Add game-specific counters to ``stats`` in place."""

    # ------------------------------------------------------------------ beams
    def _occupancy(self) -> Tensor:
        """``(B, num_cells)`` int16: agent index + 1 on each occupied cell, else 0."""
        occ = torch.zeros(self.num_envs, self.num_cells, dtype=torch.int16, device=self.device)
        return occ.scatter_(1, self.pos, self._agent_ids.expand(self.num_envs, -1))

    def beam_cells(self) -> Tensor:
        """``(B, N, 3, BEAM_LEN)`` cells under each agent's three beam rays."""
        cells = self.pos[..., None] + self.beam_delta[self.orient]
        return cells.view(self.num_envs, self.num_agents, 3, BEAM_LEN)

    @staticmethod
    def ray_cover(blocked: Tensor, stop: Tensor) -> Tensor:
        """Cells a ray covers: it ends before the first ``blocked`` cell (wall, closed door, map edge)
        and on the first ``stop`` cell (an agent, or waste for CLEAN). Last dim = steps along the ray."""
        clear = ~blocked & ~stop
        reach = [torch.ones_like(clear[..., 0])]  # reach[k]: all cells before step k are clear
        for k in range(1, clear.shape[-1]):  # a prefix AND of BEAM_LEN steps (cumprod stops torch.compile fusion)
            reach.append(reach[-1] & clear[..., k - 1])
        return torch.stack(reach, -1) & ~blocked

    def _fire(self, fires: Tensor, occ: Tensor) -> tuple[Tensor, Tensor]:
        """Penalty beams of all firers at once (FIRE changes no cell, so their order is irrelevant).

        Returns the beam cells to draw (dummy where not covered) and ``hits (B, N)``: each ray that
        reaches an agent hits it once (``agent.hit``), several firers can hit the same agent.
        """
        b, n = self.num_envs, self.num_agents
        cells = self.beam_cells()
        flat = cells.view(b, -1)
        who = occ.gather(1, flat).view_as(cells)
        cover = self.ray_cover(self._blocked(flat).view_as(cells), who > 0) & fires[..., None, None]
        hit_id = (who * cover).sum(-1, dtype=torch.long).view(b, -1)  # 0 = none; a ray stops at its first agent
        ones = torch.ones_like(hit_id, dtype=torch.float32)
        hits = torch.zeros(b, n + 1, device=self.device).scatter_add_(1, hit_id, ones)
        return torch.where(cover, cells, self.dummy).view(b, -1), hits[:, 1:]

    # ----------------------------------------------------------- observations
    def _terrain_cells(self) -> list[tuple[Tensor, Tensor]]:
        """``(cells (B, K), colours (B, K))`` of every cell whose terrain can change (apples here;
        games add waste or the door). All other cells keep their ``base_colour``."""
        have = self.apples.gather(1, self.apple_idx)
        return [(self.apple_idx, torch.where(have, APPLE, self.base_colour[self.apple_cells]))]

    def _draw(self, fire_cells: Tensor | None, clean_cells: Tensor | None) -> Tensor:
        """The full frame (get_map_with_agents): terrain, then agents, then beams over them.

        Updated in place: the cells under last frame's agents and beams get their base colour back,
        the changeable terrain cells are rewritten, then agents and beams are drawn again. This
        touches a few hundred cells per env instead of copying the whole padded map every step.
        """
        b = self.num_envs
        if self._frame is None:
            self._frame = self.base_colour.expand(b, -1).clone()
        frame = self._frame
        self._put(frame, self._drawn, self.base_colour[self._drawn])
        for cells, colour in self._terrain_cells():
            self._put(frame, cells, colour)
        self._put(frame, self.pos, self.agent_colour.expand(b, -1))
        beams = [(cells, value) for cells, value in ((clean_cells, CLEAN_BEAM), (fire_cells, FIRE_BEAM)) if cells is not None]
        for cells, value in beams:
            self._put(frame, cells, value)
        drawn = torch.cat([self.pos, *(cells for cells, _ in beams)], 1)
        self._drawn = torch.nn.functional.pad(drawn, (0, self._drawn.shape[1] - drawn.shape[1]), value=self.dummy)
        return frame

    @property
    def last_frame(self) -> Tensor:
        """``(B, num_cells)`` int32 packed colours of the last observation's full frame."""
        if self._frame is None:
            raise ValueError("no frame yet: call reset() or step() first")
        return self._frame

    def _observe(self, fire_cells: Tensor | None, clean_cells: Tensor | None) -> Tensor:
        """Egocentric views: gather every ``(B, N)`` 15x15 window of the frame, rotated by the
        precomputed per-orientation offsets, and read the packed colours as RGB bytes.

        The result is a channels-last view with a 4-byte pixel stride (r, g, b and an unused byte):
        repacking to 3 bytes would cost more than the gather, and every consumer (``.float()``,
        ``torch.stack`` into a rollout, ``.numpy()``) reads strided tensors as they are.
        """
        b, n = self.num_envs, self.num_agents
        frame = self._draw(fire_cells, clean_cells)
        idx = self.view_offset.index_select(0, self.orient.view(-1)).view(b, n, SIDE, SIDE)
        idx += (self.pos + self._env_offset).to(torch.int32)[..., None, None]  # flat cells of each view
        return _take(frame.view(-1), idx).view(torch.uint8).view(b, n, SIDE, SIDE, 4)[..., :3]

    def _visible(self) -> Tensor:
        """``(B, N, N)``: j inside k's 15x15 window (find_visible_agents, after the move)."""
        r, c = self.rows_cols(self.pos)
        dr = (r[:, :, None] - r[:, None, :]).abs()
        dc = (c[:, :, None] - c[:, None, :]).abs()
        return (dr <= VIEW) & (dc <= VIEW)

    # ----------------------------------------------------------- checkpoints
    _state_names: tuple[str, ...] = ("pos", "orient", "prev_actions", "apples", "_key", "_ctr")

    def state_dict(self) -> dict[str, object]:
        """Complete state (tensors cloned to CPU) including the random generator's key and counter."""
        sd: dict[str, object] = {k: getattr(self, k).detach().cpu().clone() for k in self._state_names}
        sd.update(
            t=self.t,
            env_version=self.env_version,
            name=self.name,
            map_name=self.map_name,
            num_envs=self.num_envs,
            num_agents=self.num_agents,
            horizon=self.horizon,
        )
        return sd

    def load_state_dict(self, sd: dict[str, object]) -> None:
        """Restore a :meth:`state_dict`; ValueError if it belongs to a different env configuration."""
        for key in ("env_version", "name", "map_name", "num_envs", "num_agents", "horizon"):
            if sd.get(key) != getattr(self, key):
                raise ValueError(f"state_dict has {key}={sd.get(key)!r}, this env has {getattr(self, key)!r}")
        for k in self._state_names:
            setattr(self, k, sd[k].to(self.device).clone())  # type: ignore[union-attr]
        self.t = int(sd["t"])  # type: ignore[arg-type]

    def render_frame(self) -> Tensor:
        """``(B, H, W, 3)`` uint8 full-map RGB of the last observation (agents and beams drawn)."""
        grid = self.last_frame[:, : self.dummy].view(self.num_envs, self.padded_height, self.padded_width)
        grid = grid[:, VIEW : VIEW + self.height, VIEW : VIEW + self.width].contiguous()
        return grid.view(torch.uint8).view(self.num_envs, self.height, self.width, 4)[..., :3].contiguous()
