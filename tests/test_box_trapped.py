"""Box trapped rules (docs/box_trapped.md)."""

import pytest
import torch

from si.envs import make_env
from si.envs.box_trapped import APPLE_REGROW_PROB, OPEN_BOX
from si.envs.gridworld import MOVE_DOWN, MOVE_UP, STAY, TURN_CLOCKWISE


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


def test_only_agent_0_opens_and_only_for_that_step() -> None:
    env = make_env("box_trapped", 1, 2)
    env.reset(seed=0)
    env.orient[0] = torch.tensor([0, 0])  # facing up: MOVE_UP is towards the door
    out = stepper(env, STAY, OPEN_BOX)  # the trapped agent cannot open it
    assert not env.door_open.any() and out.stats["box_opened"].sum() == 0
    out = stepper(env, OPEN_BOX, STAY)  # opened from anywhere, but nobody walks through
    assert env.door_open.all() and out.stats["box_opened"][0].tolist() == [1, 0] and out.reward.sum() == 0
    out = stepper(env, STAY, MOVE_UP)  # the door closed again: the move is blocked
    assert not env.door_open.any() and env.pos[0, 1] == env.trap_cell


def test_trapped_agent_leaves_only_by_moving_in_the_step_the_door_opens() -> None:
    env = make_env("box_trapped", 1, 2)
    env.reset(seed=0)
    env.orient[0] = torch.tensor([0, 0])
    out = stepper(env, OPEN_BOX, MOVE_UP)  # opens before moves: the trapped agent takes the doorway
    assert env.pos[0, 1] == env.door_cell and out.stats["box_opened"][0, 0] == 1
    stepper(env, STAY, MOVE_UP)  # the door is closed again but the agent in the doorway walks on
    assert env.pos[0, 1] == env.door_cell - env.padded_width
    stepper(env, STAY, MOVE_DOWN)  # and nobody walks back through a closed door
    assert env.pos[0, 1] == env.door_cell - env.padded_width


def test_door_drawn_open_only_in_the_step_it_opens() -> None:
    env = make_env("box_trapped", 2, 2, horizon=3)
    env.reset(seed=1)
    r, c = env.rows_cols(torch.tensor(env.door_cell))
    stepper(env, OPEN_BOX, STAY)
    assert env.render_frame()[0, r, c].tolist() == [0, 0, 0]
    stepper(env, STAY, STAY)
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


def test_random_opener_opens_often_and_the_trapped_agent_rarely_escapes() -> None:
    """Exploration finds OPEN_BOX (1/9 per step), but escaping needs the trapped agent's
    simultaneous move, so random agents seldom get out."""
    env = make_env("box_trapped", 64, 2, horizon=100)
    env.reset(seed=0)
    g = torch.Generator().manual_seed(0)
    opened = torch.zeros(64)
    for _ in range(99):
        out = env.step(torch.randint(0, env.num_actions, (64, 2), generator=g))
        opened += out.stats["box_opened"][:, 0]
        assert out.stats["box_opened"][:, 1].sum() == 0
    assert 5 < opened.mean() < 17
    escaped = (env.pos[:, 1] != env.trap_cell).float().mean()
    assert 0 < escaped < 0.9
