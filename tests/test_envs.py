"""Harvest and Cleanup: invariants, beams, regrowth, observations, determinism, checkpoints, errors."""

import numpy as np
import pytest
import torch

from si.envs import ENV_NAMES, make_env
from si.envs.cleanup import CLEAN, CleanupEnv
from si.envs.gridworld import (
    AGENT_COLOURS,
    FIRE,
    FIRE_BEAM,
    MOVE_UP,
    STAY,
    TURN_CLOCKWISE,
    VIEW,
    GridWorld,
    rgb,
)
from si.envs.harvest import SPAWN_PROB, HarvestEnv

ROOM = ("@" * 13,) + ("@" + "P" * 11 + "@",) * 11 + ("@" * 13,)  # FIRE_RANGE_MAP of the original tests


def random_rollout(env: GridWorld, steps: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    env.reset(seed=seed)
    for _ in range(steps):
        a = torch.randint(0, env.num_actions, (env.num_envs, env.num_agents), generator=g)
        yield a, env.step(a)


def place(env: GridWorld, cells: list[tuple[int, int]], orient: list[int]) -> None:
    env.pos = torch.tensor([[env.cell_id(r, c) for r, c in cells]]).expand(env.num_envs, -1).clone()
    env.orient = torch.tensor([orient]).expand(env.num_envs, -1).clone()


def beams(env: GridWorld) -> torch.Tensor:
    """(H, W) True where env 0's last frame shows the FIRE beam."""
    grid = env.last_frame[0, : env.dummy].view(env.padded_height, env.padded_width) == FIRE_BEAM
    return grid[VIEW:-VIEW, VIEW:-VIEW]


def act(env: GridWorld, actions: list[int]):
    return env.step(torch.tensor([actions]).expand(env.num_envs, -1).clone())


@pytest.mark.parametrize("name", ENV_NAMES)
def test_invariants_and_reward_accounting(name: str) -> None:
    env = make_env(name, num_envs=8, num_agents=5, horizon=150)
    free = ~env.wall
    for a, out in random_rollout(env, 300):
        pos = env.pos
        assert (pos.sort(1).values.diff(1) != 0).all(), "two agents on one cell"
        assert free[pos].all() or name == "box_trapped", "agent inside a wall"
        assert not env.apples.gather(1, pos).any(), "apple under an agent"
        expected = out.stats["apples"] - out.stats["fires"] - 50 * out.stats["hits"]
        torch.testing.assert_close(out.reward, expected)
        assert (out.stats["fires"] == ((a == FIRE) & env.has_fire).float()).all()
        allowed = torch.zeros(env.num_cells, dtype=torch.bool)
        allowed[env.apple_cells] = True
        assert not (env.apples & ~allowed).any(), "apple outside an apple cell"
        if name == "cleanup":
            allowed = torch.zeros(env.num_cells, dtype=torch.bool)
            allowed[env.waste_cells] = True
            assert not (env.waste & ~allowed).any(), "waste outside the river"
        assert out.done.all() == out.first.all() == (env.t == 0)


def test_equal_move_priorities_let_one_agent_in(monkeypatch: pytest.MonkeyPatch) -> None:
    env = HarvestEnv(ROOM, 4, 2)
    env.reset(seed=0)
    place(env, [(6, 5), (6, 7)], [1, 3])  # facing each other across the free cell (6, 6)
    draw = env.uniform
    # stream 2 holds the movement priorities: all equal
    monkeypatch.setattr(env, "uniform", lambda s, k: torch.zeros(env.num_envs, k) if s == 2 else draw(s, k))
    act(env, [MOVE_UP, MOVE_UP])  # forward
    assert env.pos.tolist() == [[env.cell_id(6, 6), env.cell_id(6, 7)]] * 4


def test_fire_shape_and_walls() -> None:
    env = HarvestEnv(ROOM, 1, 1)
    env.reset(seed=0)
    place(env, [(6, 6)], [0])
    out = act(env, [FIRE])
    beam = beams(env)
    expect = torch.zeros(13, 13, dtype=torch.bool)
    expect[1:6, 6] = True  # centre ray 1..5 ahead
    expect[2:7, 5] = expect[2:7, 7] = True  # side rays 0..4 ahead
    assert torch.equal(beam, expect) and beam.sum() == 15
    assert out.reward[0, 0] == -1 and out.stats["fires"][0, 0] == 1
    # next to the top wall facing up: only the two cells beside the agent
    place(env, [(1, 6)], [0])
    act(env, [FIRE])
    assert beams(env).nonzero().tolist() == [[1, 5], [1, 7]]
    # facing right from (6, 9): rays end at the wall, side rays start beside the agent
    place(env, [(6, 9)], [1])
    act(env, [FIRE])
    beam = beams(env)
    assert beam.sum() == 2 + 3 + 3 and beam[6, 10:12].all() and beam[5, 9:12].all() and beam[7, 9:12].all()


def test_hits_block_and_stack() -> None:
    env = HarvestEnv(ROOM, 1, 4)
    env.reset(seed=0)
    # 0 and 3 fire at 1 (3 cells ahead of 0, beside 3); 2 stands behind 1 and is shielded
    place(env, [(8, 6), (5, 6), (3, 6), (5, 8)], [0, 0, 0, 3])
    out = act(env, [FIRE, STAY, STAY, FIRE])
    assert out.stats["hits"][0].tolist() == [0, 2, 0, 0]
    assert out.reward[0].tolist() == [-1, -100, 0, -1]
    beam = env.last_frame[0, env.cell_id(5, 6)] == FIRE_BEAM
    assert beam, "the beam is drawn over the agent it hits"


def test_harvest_respawn_probabilities() -> None:
    rows = ("@@@@@@@", "@AAA P@", "@AAA  @", "@AAA  @", "@@@@@@@")
    b = 20000
    for n in range(5):
        env = HarvestEnv(rows, b, 1)
        env.reset(seed=n)
        place(env, [(1, 5)], [0])
        env.apples[:, env.apple_cells] = False
        ring = [env.cell_id(r, c) for r, c in [(1, 1), (1, 2), (1, 3), (2, 1)]][:n]
        env.apples[:, ring] = True
        act(env, [STAY])
        p = env.apples[:, env.cell_id(2, 2)].float().mean().item()
        expect = SPAWN_PROB[min(n, 3)]
        assert abs(p - expect) <= 4 * (expect * (1 - expect) / b) ** 0.5 + 1e-9, (n, p, expect)


def test_clean_beam() -> None:
    rows = ("@@@@@@@@", "@HHH  P@", "@HHH  P@", "@HHH  P@", "@@@@@@@@")
    env = CleanupEnv(rows, 1, 2)
    env.reset(seed=0)
    place(env, [(1, 4), (3, 6)], [3, 0])  # agent 0 faces left: centre ray row 1, side ray row 2
    out = act(env, [CLEAN, CLEAN])
    assert out.stats["cleaned"][0].tolist() == [2, 0] and out.reward[0].tolist() == [0, 0]
    left = env.waste[0, [env.cell_id(r, c) for r in (1, 2, 3) for c in (1, 2, 3)]].view(3, 3)
    assert left.tolist() == [[True, True, False], [True, True, False], [True, True, True]]
    assert out.stats["waste_on_map"][0] == 7 and out.stats["fires"].sum() == 0


def test_clean_beams_stack_in_random_order() -> None:
    # Both agents face left with a side ray along row 3: whoever cleans second passes the cell
    # the first one cleaned and cleans the next one, so two cells go in every env.
    rows = ("@@@@@@@@@", "@       @", "@      P@", "@HHHH   @", "@      P@", "@@@@@@@@@")
    env = CleanupEnv(rows, 64, 2)
    env.reset(seed=0)
    place(env, [(2, 7), (4, 7)], [3, 3])
    out = act(env, [CLEAN, CLEAN])
    assert out.stats["cleaned"].sum(1).eq(2).all()
    assert out.stats["cleaned"].eq(1).all()
    assert env.waste[:, [env.cell_id(3, c) for c in range(1, 5)]].tolist() == [[True, True, False, False]] * 64


def test_cleanup_growth_stops_when_dirty_and_resumes_after_cleaning() -> None:
    env = make_env("cleanup", 64, 5)
    env.reset(seed=0)
    assert env.waste.sum(1).eq(56).all() and env.apples.sum() == 0
    stay = torch.full((64, 5), STAY)
    for _ in range(30):
        out = env.step(stay)
    assert out.stats["apples_on_map"].sum() == 0 and out.stats["waste_on_map"].eq(56).all()
    env.waste[:, env.waste_cells] = False  # river cleaned: d = 0, p_apple = 0.05
    out = env.step(stay)
    assert out.stats["waste_on_map"].le(1).all() and out.stats["waste_on_map"].mean() > 0.9
    grown = out.stats["apples_on_map"].mean().item() / (len(env.apple_cells) - 0)
    assert 0.03 < grown < 0.07
    for _ in range(300):
        out = env.step(stay)
    assert (out.stats["waste_on_map"] >= 47).all() and (out.stats["waste_on_map"] <= 48).all()


def test_cleanup_map_without_river_grows_apples_at_full_rate() -> None:
    rows = ("@@@@@@", "@ P  @", "@  BB@", "@  BB@", "@  BP@", "@@@@@@")  # no H/R cells
    b = 20000
    env = CleanupEnv(rows, b, 2)
    env.reset(seed=0)
    out = act(env, [STAY, STAY])
    assert out.stats["waste_on_map"].eq(0).all() and not env.waste.any()
    p = out.stats["apples_on_map"].mean().item() / len(env.apple_cells)
    assert abs(p - 0.05) <= 4 * (0.05 * 0.95 / (b * len(env.apple_cells))) ** 0.5, p
    for _, out in random_rollout(CleanupEnv(rows, 16, 2), 50):  # CLEAN beams find nothing to clean
        assert out.stats["cleaned"].eq(0).all() and out.stats["waste_on_map"].eq(0).all()


def test_observation_rotation() -> None:
    rows = ("@" * 17,) + ("@" + " " * 15 + "@",) * 15 + ("@" * 17,)
    rows = tuple(r[:8] + "P" + r[9:] if i == 8 else r for i, r in enumerate(rows))
    rows = tuple(r[:8] + "A" + r[9:] if i == 6 else r for i, r in enumerate(rows))  # 2 north
    rows = tuple(r[:11] + "A" + r[12:] if i == 8 else r for i, r in enumerate(rows))  # 3 east
    env = HarvestEnv(rows, 1, 1)
    for d in range(4):
        env.reset(seed=0)
        env.orient[:] = d
        out = act(env, [STAY])
        obs = out.obs[0, 0]
        green = (obs == torch.tensor([0, 255, 0], dtype=torch.uint8)).all(-1).nonzero().tolist()
        # north apple is 2 ahead when facing UP, 2 to the left facing RIGHT, 2 behind facing DOWN...
        north = {0: [5, 7], 1: [7, 5], 2: [9, 7], 3: [7, 9]}[d]
        east = {0: [7, 10], 1: [4, 7], 2: [7, 4], 3: [10, 7]}[d]
        assert sorted(green) == sorted([north, east]), (d, green)
        assert obs[7, 7].tolist() == list(np.frombuffer(np.int32(AGENT_COLOURS[0]).tobytes(), np.uint8)[:3])


def test_agents_in_first_observation_and_visibility() -> None:
    env = make_env("harvest", 16, 5)
    out = env.reset(seed=3)
    centre = out.obs[:, :, VIEW, VIEW].to(torch.int64)
    packed = centre[..., 0] | centre[..., 1] << 8 | centre[..., 2] << 16
    assert (packed == torch.tensor(AGENT_COLOURS[:5])).all()
    r, c = env.rows_cols(env.pos)
    for b in range(2):
        for k in range(5):
            for j in range(5):
                vis = abs(int(r[b, k] - r[b, j])) <= 7 and abs(int(c[b, k] - c[b, j])) <= 7
                assert bool(out.visible[b, k, j]) == vis
    assert out.actions.eq(STAY).all() and out.reward.eq(0).all() and out.first.all()


PLACES = ("@@@@@@@@@@@@@@", "@HRSB       P@", "@PPPP        @", "@@@@@@@@@@@@@@")
"""Cleanup row 1: waste H, river R, stream S, apple-spawn B, then floor up to column 12."""


def test_place_stats_count_agents_in_view_and_on_river_and_orchard_cells() -> None:
    env = CleanupEnv(PLACES, 2, 5)
    out = env.reset(seed=0)
    assert all(out.stats[k].eq(0).all() for k in ("in_view", "in_river", "in_orchard"))
    # Agents on H, R, S, B see each other; agent 4 at column 12 is 8 columns from the nearest.
    place(env, [(1, 1), (1, 2), (1, 3), (1, 4), (1, 12)], [0, 0, 0, 0, 3])
    for _ in range(3):
        out = act(env, [STAY] * 5)
        assert out.stats["in_view"].tolist() == [[3, 3, 3, 3, 0]] * 2
        assert out.stats["in_river"].tolist() == [[1, 1, 0, 0, 0]] * 2  # the stream S is not river
        assert out.stats["in_orchard"].tolist() == [[0, 0, 0, 1, 0]] * 2
    out = act(env, [STAY] * 4 + [MOVE_UP])  # agent 4 faces left: forward to column 11, 7 from B
    assert out.stats["in_view"].tolist() == [[3, 3, 3, 4, 1]] * 2, "counted after the moves"
    assert torch.equal(out.stats["in_view"] + 1, out.visible.sum(-1).float())


def test_harvest_has_no_river_and_its_orchard_is_the_apple_cells() -> None:
    env = make_env("harvest", 1, 2, map_name="harvest_mini")
    env.reset(seed=0)
    place(env, [(2, 3), (1, 1)], [0, 0])
    out = act(env, [STAY, STAY])
    assert out.stats["in_river"].tolist() == [[0, 0]] and out.stats["in_orchard"].tolist() == [[1, 0]]
    assert out.stats["in_view"].tolist() == [[1, 1]]
    assert not env.on_river.any() and env.on_orchard.sum() == len(env.apple_cells)


def test_auto_reset_at_horizon() -> None:
    env = make_env("harvest", 3, 2, horizon=4)
    env.reset(seed=0)
    a = torch.full((3, 2), TURN_CLOCKWISE)
    for t in range(4):
        out = env.step(a)
        assert out.done.all() == (t == 3) and out.first.all() == (t == 3)
    assert out.actions.eq(STAY).all() and env.t == 0 and env.apples.sum(1).eq(155).all()
    out = env.step(a)
    assert not out.done.any() and out.actions.eq(TURN_CLOCKWISE).all()


@pytest.mark.parametrize("name", ENV_NAMES)
def test_determinism_and_state_dict(name: str) -> None:
    def traj(env: GridWorld, seed: int) -> list[torch.Tensor]:
        return [torch.cat([o.obs.flatten(), o.reward.flatten()]) for _, o in random_rollout(env, 40, seed)]

    a, b = (make_env(name, 4, 3, horizon=25) for _ in range(2))
    ta, tb = traj(a, 7), traj(b, 7)
    assert all(torch.equal(x, y) for x, y in zip(ta, tb))
    assert not all(torch.equal(x, y) for x, y in zip(ta, traj(b, 8)))
    sd = a.state_dict()
    g = torch.Generator().manual_seed(5)
    acts = [torch.randint(0, a.num_actions, (4, 3), generator=g) for _ in range(30)]
    first = [a.step(x) for x in acts]
    b.load_state_dict(sd)
    second = [b.step(x) for x in acts]
    for x, y in zip(first, second):
        assert torch.equal(x.obs, y.obs) and torch.equal(x.reward, y.reward) and torch.equal(x.done, y.done)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="unknown env"):
        make_env("harvestt", 1)
    with pytest.raises(ValueError, match="unknown map"):
        make_env("harvest", 1, map_name="nope")
    with pytest.raises(ValueError, match="spawn points"):
        make_env("cleanup", 1, num_agents=11)
    env = make_env("harvest", 2, 2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="out of range"):
        env.step(torch.tensor([[0, 8], [0, 0]]))
    with pytest.raises(ValueError, match="out of range"):
        env.step(torch.tensor([[0, -1], [0, 0]]))
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="int64"):
        env.step(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="num_agents"):
        env.load_state_dict(make_env("harvest", 2, 3).state_dict())


def test_api_attributes() -> None:
    h, c = make_env("harvest", 2), make_env("cleanup", 2)
    assert (h.num_actions, c.num_actions) == (8, 9) and c.action_names[CLEAN] == "CLEAN"
    assert h.obs_shape == (15, 15, 3) and h.env_version == "1" and h.horizon == 1000
    assert make_env("harvest", 1, 2, map_name="harvest_mini").height == 6
    assert rgb(1, 2, 3) == 0x030201


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ENV_NAMES)
def test_cpu_cuda_equal(name: str) -> None:
    cpu, gpu = make_env(name, 8, 3, horizon=30), make_env(name, 8, 3, horizon=30, device="cuda")
    a, b = cpu.reset(seed=2), gpu.reset(seed=2)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        assert torch.equal(a.obs, b.obs.cpu()) and torch.equal(a.reward, b.reward.cpu())
        acts = torch.randint(0, cpu.num_actions, (8, 3), generator=g)
        a, b = cpu.step(acts), gpu.step(acts.cuda())


@pytest.mark.parametrize("name", ENV_NAMES)
def test_compiled_step_equals_eager(name: str) -> None:
    """``env.compile()`` (torch.compile of the transition) gives the same trajectory bit for bit,
    across an auto-reset and a state_dict round trip."""
    eager, comp = make_env(name, 3, 2, horizon=12), make_env(name, 3, 2, horizon=12)
    comp.compile()
    a, b = eager.reset(seed=4), comp.reset(seed=4)
    g = torch.Generator().manual_seed(1)
    for t in range(30):
        assert torch.equal(a.obs, b.obs) and torch.equal(a.reward, b.reward) and torch.equal(a.done, b.done)
        assert all(torch.equal(a.stats[k], b.stats[k]) for k in a.stats)
        assert torch.equal(eager.render_frame(), comp.render_frame())
        if t == 15:
            comp.load_state_dict(eager.state_dict())
        acts = torch.randint(0, eager.num_actions, (3, 2), generator=g)
        a, b = eager.step(acts), comp.step(acts)


def test_a_map_read_from_a_text_file_plays_as_the_same_named_map(tmp_path):
    """``env.map_file``: the rows of a file (here the built-in mini Cleanup map) give the same
    env as the named map, step for step; a file that is not a rectangle is refused in one line."""
    from si.config import ConfigError, validate
    from si.envs import make_env
    from si.envs.maps import CLEANUP_MINI

    path = tmp_path / "mini.txt"
    path.write_text("\n".join(CLEANUP_MINI) + "\n")
    named = make_env("cleanup", 3, 2, map_name="cleanup_mini", horizon=20)
    filed = make_env("cleanup", 3, 2, horizon=20, map_file=str(path))
    a, b = named.reset(seed=1), filed.reset(seed=1)
    assert torch.equal(a.obs, b.obs)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        actions = torch.randint(0, named.num_actions, (3, 2), generator=gen)
        a, b = named.step(actions), filed.step(actions)
        assert torch.equal(a.obs, b.obs) and torch.equal(a.reward, b.reward)
    path.write_text("@@@@\n@P @@\n")
    with pytest.raises(ValueError, match=r"map file .*mini.txt: an ASCII map must be a non-empty list of equally long strings"):
        make_env("cleanup", 1, 1, map_file=str(path))
    from test_configs import _compose

    cfg = _compose("env=cleanup", "reward=extrinsic", f"env.map_file={path}")
    with pytest.raises(ConfigError, match=r"env.map_file='.*mini.txt' is invalid: map file"):
        validate(cfg)
