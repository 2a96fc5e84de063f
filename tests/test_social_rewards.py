"""Prosocial collective reward (appendix 10.5.2) and inequity aversion (Hughes et al. 2018)."""

import pytest
import torch

from si.rewards.social import collective_reward, inequity_aversion


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_collective_reward_hand_values():
    e = t([1.0, 2.0, 3.0])
    # total 6: r = [1 + .5·5, 2 + .5·4, 3 + .5·3]
    assert collective_reward(e, 0.5).tolist() == pytest.approx([3.5, 4.0, 4.5])
    assert collective_reward(e, 0.0).tolist() == [1.0, 2.0, 3.0]
    # η = 1: everyone gets the total
    assert collective_reward(e, 1.0).tolist() == [6.0, 6.0, 6.0]


def test_collective_reward_batched():
    e = t([[1.0, 2.0, 3.0], [0.0, -1.0, 5.0]])
    # row 2, total 4: [0 + .5·4, -1 + .5·5, 5 + .5·(-1)]
    assert collective_reward(e, 0.5).tolist() == [[3.5, 4.0, 4.5], [2.0, 1.5, 4.5]]


# α = 1 (envy), β = .5 (guilt), γλ = 1·.5 = .5, N = 3 so α/(N−1) = .5 and β/(N−1) = .25
ALPHA, BETA, GAMMA, LAM = 1.0, 0.5, 1.0, 0.5


def test_inequity_aversion_two_steps_hand_values():
    r1, r2 = t([1.0, 0.0, 3.0]), t([2.0, 2.0, 0.0])
    # step 1: ẽ = .5·0 + r1 = [1, 0, 3]
    #   agent 0: envy Σmax(ẽ_j−1,0) = 0 + 2 = 2, guilt Σmax(1−ẽ_j,0) = 1 + 0 = 1 → 1 − .5·2 − .25·1 = −.25
    #   agent 1: envy 1 + 3 = 4, guilt 0                                   → 0 − .5·4 = −2
    #   agent 2: envy 0, guilt 2 + 3 = 5                                   → 3 − .25·5 = 1.75
    u1, e1 = inequity_aversion(r1, torch.zeros(3, dtype=torch.float64), ALPHA, BETA, GAMMA, LAM)
    assert e1.tolist() == [1.0, 0.0, 3.0]
    assert u1.tolist() == pytest.approx([-0.25, -2.0, 1.75], abs=1e-12)
    # step 2: ẽ = .5·[1,0,3] + [2,2,0] = [2.5, 2, 1.5]
    #   agent 0: envy 0, guilt .5 + 1 = 1.5            → 2 − .25·1.5 = 1.625
    #   agent 1: envy .5, guilt .5                      → 2 − .5·.5 − .25·.5 = 1.625
    #   agent 2: envy 1 + .5 = 1.5, guilt 0             → 0 − .5·1.5 = −.75
    u2, e2 = inequity_aversion(r2, e1, ALPHA, BETA, GAMMA, LAM)
    assert e2.tolist() == pytest.approx([2.5, 2.0, 1.5], abs=1e-12)
    assert u2.tolist() == pytest.approx([1.625, 1.625, -0.75], abs=1e-12)
    # with the raw step-2 rewards instead (no smoothing) agent 2 would get 0 − .5·(2+2) = −2
    assert u2[2].item() != pytest.approx(-2.0)


def test_inequity_aversion_guilt_lowers_advantaged_reward():
    r = t([1.0, 0.0, 3.0])
    zero = torch.zeros(3, dtype=torch.float64)
    u_no_guilt, _ = inequity_aversion(r, zero, ALPHA, 0.0, GAMMA, LAM)
    u_guilt, _ = inequity_aversion(r, zero, ALPHA, BETA, GAMMA, LAM)
    # agent 2 is ahead of both: guilt 5·.25 is subtracted (3 → 1.75), never added
    assert u_no_guilt[2].item() == 3.0
    assert u_guilt[2].item() == pytest.approx(1.75)
    # agent 1 is behind everyone: its reward does not depend on β
    assert u_guilt[1].item() == u_no_guilt[1].item() == -2.0


def test_inequity_aversion_batched_and_single_agent():
    r = t([[1.0, 0.0, 3.0], [2.0, 2.0, 2.0]])
    u, e = inequity_aversion(r, torch.zeros_like(r), ALPHA, BETA, GAMMA, LAM)
    assert u[0].tolist() == pytest.approx([-0.25, -2.0, 1.75], abs=1e-12)
    assert u[1].tolist() == [2.0, 2.0, 2.0]  # equal smoothed rewards: no inequity
    r1 = t([[4.0]])
    u1, e1 = inequity_aversion(r1, t([[2.0]]), ALPHA, BETA, GAMMA, LAM)
    assert u1.tolist() == [[4.0]] and e1.tolist() == [[5.0]]  # ẽ = .5·2 + 4


def test_inequity_aversion_shape_mismatch():
    with pytest.raises(ValueError):
        inequity_aversion(torch.zeros(2, 3), torch.zeros(3), ALPHA, BETA, GAMMA, LAM)
