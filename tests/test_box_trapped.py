"""Box trapped rules (docs/box_trapped.md)."""

import pytest
import torch

from si.envs import make_env
from si.envs.box_trapped import APPLE_REGROW_PROB, OPEN_BOX
from si.envs.gridworld import MOVE_UP, STAY, TURN_CLOCKWISE


def stepper(env, a0: int, a1: int):
    return env.step(torch.tensor([[a0, a1]]).expand(env.num_envs, 2).clone())


def test_trapped_agent_stays_in_box_until_opened() -> None:
    env = make_env("box_trapped", 32, 2)
    out = env.reset(seed=0)
    assert env.pos[:, 1].eq(env.trap_cell).all() and out.stats["box_opened"].sum() == 0
    assert env.orient[:, 1].eq(0).all(), "the trapped agent faces the door"
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        a = torch.randint(0, env.num_actions, (32, 2), generator=g)
        a[:, 0] = torch.where(a[:, 0] == OPEN_BOX, STAY, a[:, 0])
        out = env.step(a)
        assert env.pos[:, 1].eq(env.trap_cell).all() and not env.door_open.any()
        assert out.stats["box_opened"].sum() == 0


def test_only_agent_0_opens_from_anywhere_and_the_door_stays_open() -> None:
    env = make_env("box_trapped", 1, 2)
    env.reset(seed=0)
    out = stepper(env, STAY, OPEN_BOX)  # the trapped agent cannot open it
    assert not env.door_open.any() and out.stats["box_opened"].sum() == 0
    out = stepper(env, OPEN_BOX, STAY)
    assert env.door_open.all() and out.stats["box_opened"][0].tolist() == [1, 0] and out.reward.sum() == 0
    out = stepper(env, OPEN_BOX, STAY)  # already open: not counted again
    assert env.door_open.all() and out.stats["box_opened"].sum() == 0


def test_door_opens_after_the_moves_of_its_step() -> None:
    env = make_env("box_trapped", 1, 2)
    env.reset(seed=0)
    stepper(env, OPEN_BOX, MOVE_UP)  # the move is resolved while the door is still closed
    assert env.pos[0, 1] == env.trap_cell
    stepper(env, STAY, MOVE_UP)  # the trapped agent faces the door: MOVE_UP walks out
    assert env.pos[0, 1] == env.door_cell
    stepper(env, STAY, MOVE_UP)
    assert env.pos[0, 1] == env.door_cell - env.padded_width


def test_door_drawn_and_reset_closes_it() -> None:
    env = make_env("box_trapped", 2, 2, horizon=3)
    env.reset(seed=1)
    r, c = env.rows_cols(torch.tensor(env.door_cell))
    assert env.render_frame()[0, r, c].tolist() == [139, 69, 19]
    stepper(env, OPEN_BOX, STAY)
    assert env.render_frame()[0, r, c].tolist() == [0, 0, 0]
    stepper(env, STAY, STAY)
    out = stepper(env, STAY, STAY)
    assert out.done.all() and not env.door_open.any()
    assert env.render_frame()[0, r, c].tolist() == [139, 69, 19]


def test_apples_regrow_at_constant_rate() -> None:
    env = make_env("box_trapped", 4000, 2)
    env.reset(seed=0)
    env.apples[:, env.apple_cells] = False  # no neighbours at all: Harvest would never regrow
    out = stepper(env, TURN_CLOCKWISE, STAY)
    frac = out.stats["apples_on_map"].mean().item() / len(env.apple_cells)
    assert abs(frac - APPLE_REGROW_PROB) < 0.004


def test_box_trapped_needs_two_agents() -> None:
    with pytest.raises(ValueError, match="num_agents >= 2"):
        make_env("box_trapped", 1, 1)


def test_random_opener_releases_the_trapped_agent_early() -> None:
    """Exploration meets OPEN_BOX early (1/9 per step): a random opener opens the box in almost
    every 100-step episode, once."""
    env = make_env("box_trapped", 64, 2, horizon=100)
    env.reset(seed=0)
    g = torch.Generator().manual_seed(0)
    opened = torch.zeros(64)
    for _ in range(99):
        out = env.step(torch.randint(0, env.num_actions, (64, 2), generator=g))
        opened += out.stats["box_opened"][:, 0]
        assert out.stats["box_opened"][:, 1].sum() == 0
    assert opened.max() == 1 and opened.mean() > 0.95
