"""Gini (Eq 9), mutual information, speaker consistency (Eq 8), instantaneous coordination and
influential moments (§5.1)."""

import math

import pytest
import torch

from si.metrics import (
    equality_weighted_reward,
    gini,
    influential_moments,
    instantaneous_coordination,
    mutual_information,
    speaker_consistency,
)

ln = math.log


def t(x):
    return torch.tensor(x, dtype=torch.float64)


# ------------------------------------------------------------------------ Gini


def test_gini_known_vectors():
    assert gini(t([1.0, 1.0, 1.0, 1.0])).item() == 0.0
    # Σ|x_i−x_j| = 3 pairs·2 orders·4 = 24, 2N·Σx = 2·4·4 = 32
    assert gini(t([0.0, 0.0, 0.0, 4.0])).item() == pytest.approx(0.75)
    # |1−2|+|1−3|+|2−3| = 4, both orders 8, 2·3·6 = 36
    assert gini(t([1.0, 2.0, 3.0])).item() == pytest.approx(8 / 36)
    assert gini(t([0.0, 0.0, 0.0])).item() == 0.0


def test_gini_is_eq9_as_written_with_negative_returns():
    # the example: D = Σ_i Σ_j |e_i − e_j| = 2·4·150 = 1200, 2N·Σe = 10·350
    e = t([-50.0, 100.0, 100.0, 100.0, 100.0])
    assert gini(e).item() == pytest.approx(1200 / 3500)  # 0.343, not 0.200 (shifted by the min)
    assert equality_weighted_reward(e).item() == pytest.approx(350 * (1 - 1200 / 3500))  # 230
    assert gini(t([-1.0, 3.0])).item() == pytest.approx(8 / (2 * 2 * 2))  # Σ = 2 > 0: Eq 9 = 1.0


def test_gini_undefined_when_the_collective_return_is_not_positive():
    assert math.isnan(gini(t([-1.0, 1.0])).item())  # Σ = 0, returns differ
    assert math.isnan(gini(t([-3.0, 0.0, 1.0])).item())
    assert gini(t([-2.0, -2.0])).item() == 0.0  # all equal: no inequality
    # R·(1−G) = R − D/(2N) extends Eq 9 continuously: [−3, 0, 1]: R = −2, D = 2·(3+4+1) = 16
    assert equality_weighted_reward(t([-3.0, 0.0, 1.0])).item() == pytest.approx(-2 - 16 / 6)
    assert equality_weighted_reward(t([-2.0, -2.0])).item() == -4.0


def test_gini_batched_and_integer_input():
    g = gini(torch.tensor([[1, 1, 1, 1], [0, 0, 0, 4]]))
    assert g.tolist() == pytest.approx([0.0, 0.75])
    assert gini(torch.zeros(2, 3, 5)).shape == (2, 3)


def test_equality_weighted_reward():
    # R = 4, G = .75 → 1;  R = 6, G = 2/9 → 6·7/9
    got = equality_weighted_reward(t([[0.0, 0.0, 0.0, 4.0], [1.0, 2.0, 3.0, 0.0]]))
    # second row: Σ|x_i−x_j| over ordered pairs of [1,2,3,0] = 2·(1+2+1+1+2+3) = 20, 2·4·6 = 48
    assert got.tolist() == pytest.approx([1.0, 6 * (1 - 20 / 48)])
    assert equality_weighted_reward(t([2.0, 2.0])).item() == 4.0


# ------------------------------------------------------------------------- MI


def test_mi_hand_value():
    x, y = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 0, 1])
    # p(0,0)=.5, p(1,0)=.25, p(1,1)=.25; p_x=[.5,.5], p_y=[.75,.25]
    expected = 0.5 * ln(0.5 / (0.5 * 0.75)) + 0.25 * ln(0.25 / (0.5 * 0.75)) + 0.25 * ln(0.25 / (0.5 * 0.25))
    assert mutual_information(x, y, 2, 2) == pytest.approx(expected, abs=1e-12)


def test_mi_identical_vs_independent():
    v = torch.arange(16)
    # identical, uniform over 4 → MI = H = ln 4
    assert mutual_information(v % 4, v % 4, 4, 4) == pytest.approx(ln(4), abs=1e-12)
    # exact product grid: joint uniform over 16 = p_x·p_y → 0
    assert mutual_information(v % 4, v // 4, 4, 4) == pytest.approx(0.0, abs=1e-12)
    # sampled independent: plug-in bias ≈ (4−1)(5−1)/(2·M) = 6e-5
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 4, (100_000,), generator=g)
    y = torch.randint(0, 5, (100_000,), generator=g)
    assert mutual_information(x, y, 4, 5) < 1e-3
    assert mutual_information(x, (x + 1) % 4, 4, 5) == pytest.approx(ln(4), abs=1e-3)


def test_mi_empty_and_range_errors():
    assert math.isnan(mutual_information(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), 2, 2))
    with pytest.raises(ValueError):
        mutual_information(torch.tensor([0, 2]), torch.tensor([0, 1]), 2, 2)


# ------------------------------------------------------------ speaker consistency


def test_speaker_consistency_one_to_one_map_is_one():
    g = torch.Generator().manual_seed(1)
    actions = torch.randint(0, 5, (1000, 3), generator=g)
    symbols = (2 * actions + 1) % 5  # a bijection of {0..4}
    assert speaker_consistency(actions, symbols, 5, 5) == pytest.approx(1.0, abs=1e-12)


def test_speaker_consistency_independent_is_near_zero():
    g = torch.Generator().manual_seed(2)
    actions = torch.randint(0, 4, (100_000, 2), generator=g)
    symbols = torch.randint(0, 4, (100_000, 2), generator=g)
    assert speaker_consistency(actions, symbols, 4, 4) < 0.01


def test_speaker_consistency_hand_value():
    # one agent, pairs (a, m): (0,0), (0,0), (1,0), (1,1)
    actions = torch.tensor([[0], [0], [1], [1]])
    symbols = torch.tensor([[0], [0], [0], [1]])
    h_23 = -(2 / 3 * ln(2 / 3) + 1 / 3 * ln(1 / 3))
    # p(a|m=0) = [2/3, 1/3], p(a|m=1) = [0, 1]; p(m|a=0) = [1, 0], p(m|a=1) = [.5, .5]
    mean_c = ((1 - h_23 / ln(2)) + 1) / 2
    mean_a = (1 + (1 - ln(2) / ln(2))) / 2
    assert speaker_consistency(actions, symbols, 2, 2) == pytest.approx(0.5 * (mean_c + mean_a), abs=1e-12)
    # vocab 3: symbol 2 is never emitted and skipped; H_max of p(m|a) becomes ln 3
    mean_a3 = (1 + (1 - ln(2) / ln(3))) / 2
    assert speaker_consistency(actions, symbols, 2, 3) == pytest.approx(0.5 * (mean_c + mean_a3), abs=1e-12)


# -------------------------------------------------- instantaneous coordination


def _random(shape, n, seed):
    return torch.randint(0, n, shape, generator=torch.Generator().manual_seed(seed))


def test_ic_picks_the_coordinating_pair():
    src = _random((50, 40, 3), 4, 3)
    dst = _random((50, 40, 3), 4, 4)
    dst[:, :, 2] = src[:, :, 0]  # agent 2's next action copies agent 0's symbol
    ic = instantaneous_coordination(src, dst, 4, 4)
    assert ic == pytest.approx(mutual_information(src[:, :, 0].flatten(), src[:, :, 0].flatten(), 4, 4))
    assert ic > 1.3  # ≈ ln 4 = 1.386
    dst[:, :, 2] = _random((50, 40), 4, 5)
    assert instantaneous_coordination(src, dst, 4, 4) < 0.05


def test_ic_ignores_self_pairs():
    src = _random((50, 40, 3), 4, 6)
    dst = _random((50, 40, 3), 4, 7)
    dst[:, :, 1] = src[:, :, 1]  # k = j is not a pair
    assert instantaneous_coordination(src, dst, 4, 4) < 0.05


def test_ic_mask_restricts_to_influential_moments():
    src = _random((50, 40, 2), 4, 8)
    dst = _random((50, 40, 2), 4, 9)
    mask = _random((50, 40, 2), 2, 10).bool()
    dst[:, :, 1] = torch.where(mask[:, :, 0], src[:, :, 0], dst[:, :, 1])  # copy only when k=0 is masked in
    masked = instantaneous_coordination(src, dst, 4, 4, mask)
    unmasked = instantaneous_coordination(src, dst, 4, 4)
    keep = mask[:, :, 0]
    assert masked == pytest.approx(mutual_information(src[:, :, 0][keep], dst[:, :, 1][keep], 4, 4))
    assert masked > 1.3 and unmasked < masked - 0.3
    assert math.isnan(instantaneous_coordination(src, dst, 4, 4, torch.zeros_like(mask)))


def test_ic_single_agent_is_nan():
    x = _random((5, 2, 1), 3, 11)
    assert math.isnan(instantaneous_coordination(x, x, 3, 3))


# ---------------------------------------------------------- influential moments


def test_influential_moments_compare_each_influencer_with_its_own_mean():
    # steps × influencers; column 0 mean 0.5, column 1 mean 2.5 (a pooled mean, 1.5, would
    # mark the whole of column 1 and none of column 0)
    assert influential_moments(t([[0.0, 2.0], [1.0, 3.0]])).tolist() == [[False, False], [True, True]]
    # ≥: entries equal to the mean count
    assert influential_moments(t([[1.0, 1.0], [1.0, 1.0]])).all()
    # leading dims (T, B) are all steps: mean over 4 entries of influencer 0 is 1
    infl = t([[[0.0], [0.0]], [[0.0], [4.0]]])
    assert influential_moments(infl).flatten().tolist() == [False, False, False, True]
