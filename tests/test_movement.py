"""Rules of si.envs.movement.resolve_moves (docstring rules 1-5 and the no-overlap guarantee)."""

import torch

from si.envs.movement import resolve_moves


def run(pos: list[int], target: list[int], prio: list[float] | None = None) -> list[int]:
    n = len(pos)
    p = torch.tensor([prio if prio is not None else list(range(n))], dtype=torch.float32)
    return resolve_moves(torch.tensor([pos]), torch.tensor([target]), p)[0].tolist()


def test_free_move_and_stay() -> None:
    assert run([0, 5], [1, 5]) == [1, 5]


def test_mover_into_stayer_is_blocked() -> None:
    assert run([0, 1], [1, 1]) == [0, 1]


def test_contest_highest_priority_wins() -> None:
    assert run([0, 2], [1, 1], [0.9, 0.1]) == [1, 2]
    assert run([0, 2], [1, 1], [0.1, 0.9]) == [0, 1]


def test_contest_is_fair() -> None:
    b = 4000
    pos = torch.tensor([[0, 2]]).expand(b, 2)
    target = torch.tensor([[1, 1]]).expand(b, 2)
    prio = torch.rand(b, 2, generator=torch.Generator().manual_seed(0))
    won_first = (resolve_moves(pos, target, prio)[:, 0] == 1).float().mean().item()
    assert abs(won_first - 0.5) < 0.04


def test_contest_tie_goes_to_lowest_index() -> None:
    assert run([0, 2], [1, 1], [0.5, 0.5]) == [1, 2]
    assert run([9, 0, 2], [9, 1, 1], [0.5, 0.5, 0.5]) == [9, 1, 2]  # agent 0 stays, 1 beats 2
    assert run([0, 2, 5], [1, 1, 1], [0.5, 0.5, 0.9]) == [0, 2, 1]  # a higher priority still wins
    pos, target = torch.tensor([[0, 2, 4]]).expand(8, 3), torch.tensor([[3, 3, 3]]).expand(8, 3)
    assert resolve_moves(pos, target, torch.zeros(8, 3)).tolist() == [[3, 2, 4]] * 8


def test_swap_is_blocked() -> None:
    assert run([0, 1], [1, 0]) == [0, 1]


def test_following_is_allowed() -> None:
    # 0 -> 1 -> 2 -> 3 (free): the whole chain moves
    assert run([0, 1, 2], [1, 2, 3]) == [1, 2, 3]


def test_chain_into_stayer_is_blocked() -> None:
    assert run([0, 1, 2, 3], [1, 2, 3, 3]) == [0, 1, 2, 3]


def test_cycle_of_three_moves() -> None:
    assert run([0, 1, 2], [1, 2, 0]) == [1, 2, 0]


def test_contest_winner_blocked_when_occupant_stays() -> None:
    # cell 1 is held by agent 2 which wants cell 9, held by stayer 3: nobody moves
    assert run([0, 5, 1, 9], [1, 1, 9, 9], [0.9, 0.5, 0.1, 0.2]) == [0, 5, 1, 9]


def test_random_moves_never_overlap() -> None:
    g = torch.Generator().manual_seed(1)
    b, n, cells = 2000, 6, 12
    pos = torch.rand(b, cells, generator=g).argsort(1)[:, :n]
    step = torch.randint(-1, 2, (b, n), generator=g)
    target = (pos + step).clamp(0, cells - 1)
    new = resolve_moves(pos, target, torch.rand(b, n, generator=g))
    assert ((new == pos) | (new == target)).all()
    assert (new.sort(1).values.diff(1) != 0).all()
