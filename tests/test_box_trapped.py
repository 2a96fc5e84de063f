"""Box trapped rules (docs/box_trapped.md)."""

import pytest
import torch

from si.envs import make_env
from si.envs.box_trapped import APPLE_REGROW_PROB, OPEN_BOX
from si.envs.gridworld import MOVE_RIGHT, MOVE_UP, STAY, TURN_CLOCKWISE


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
    assert out.stats["released"].sum() == 0 and env.pos[0, 1] == env.trap_cell
    out = stepper(env, OPEN_BOX, STAY)  # already open: not counted again
    assert env.door_open.all() and out.stats["box_opened"].sum() == 0


def test_door_opens_before_the_moves_and_the_corridor_turns_right() -> None:
    env = make_env("box_trapped", 1, 2)
    env.reset(seed=0)
    out = stepper(env, STAY, MOVE_UP)  # closed: a wall
    assert env.pos[0, 1] == env.trap_cell and out.reward.sum() == 0
    out = stepper(env, OPEN_BOX, MOVE_UP)  # opened before the moves: out in the same step
    assert env.pos[0, 1] == env.door_cell
    assert out.stats["released"][0].tolist() == [0, 1] and out.stats["box_opened"][0].tolist() == [1, 0]
    stepper(env, STAY, MOVE_UP)  # a wall above the door
    assert env.pos[0, 1] == env.door_cell
    out = stepper(env, STAY, MOVE_RIGHT)  # the corridor, with an apple
    assert env.pos[0, 1] == env.door_cell + 1 and out.reward[0, 1] == 1


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


def test_apples_are_inexhaustible() -> None:
    """Every free apple cell regrows with APPLE_REGROW_PROB, even with no apple around it."""
    env = make_env("box_trapped", 4000, 2)
    env.reset(seed=0)
    env.apples[:, env.apple_cells] = False  # no neighbours at all: Harvest would never regrow
    out = stepper(env, TURN_CLOCKWISE, STAY)  # nobody moves: no agent stands on an apple cell
    assert not torch.isin(env.pos, env.apple_cells).any()
    frac = out.stats["apples_on_map"].mean().item() / len(env.apple_cells)
    assert APPLE_REGROW_PROB == 1.0 and frac == APPLE_REGROW_PROB


def test_box_trapped_needs_two_agents() -> None:
    with pytest.raises(ValueError, match="num_agents >= 2"):
        make_env("box_trapped", 1, 1)


def test_random_agents_release_the_trapped_agent_in_most_episodes() -> None:
    """Exploration meets the release early: a random opener opens within a few steps and a random
    trapped agent then walks out within about eight, in nearly every 100-step episode."""
    env = make_env("box_trapped", 256, 2, horizon=100)
    env.reset(seed=0)
    g = torch.Generator().manual_seed(0)
    opened, released = torch.zeros(256), torch.zeros(256)
    for _ in range(99):
        out = env.step(torch.randint(0, env.num_actions, (256, 2), generator=g))
        opened += out.stats["box_opened"][:, 0]
        released += out.stats["released"][:, 1]
        assert out.stats["box_opened"][:, 1].sum() == 0 and out.stats["released"][:, 0].sum() == 0
    assert opened.max() == 1 and opened.mean() > 0.99
    assert (released > 0).float().mean() > 0.95  # a random walker may go back in and out again
