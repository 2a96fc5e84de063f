"""Divergences (Eq 1, 4, 7), counterfactual influence (Eq 1-3), the MI identity (Eq 5-6) and
the influence curriculum, against hand-computed values."""

import math

import pytest
import torch

from si.rewards.divergence import DIVERGENCES, EPS, divergence, jsd, kl, pmi
from si.rewards.influence import (
    counterfactual_influence,
    curriculum_weight,
    marginal_policy,
    mutual_information_from_policies,
)

ln = math.log


def t(x):
    return torch.tensor(x, dtype=torch.float64)


# ---------------------------------------------------------------- divergences


def test_kl_hand_values():
    p, q = t([0.5, 0.5]), t([0.25, 0.75])
    # KL(p‖q) = .5 ln(.5/.25) + .5 ln(.5/.75) = .5 ln 2 + .5 ln(2/3) = .5 ln(4/3)
    assert kl(p, q).item() == pytest.approx(0.5 * ln(4 / 3), abs=1e-12)
    # KL(q‖p) = .25 ln(.25/.5) + .75 ln(.75/.5) = .25 ln .5 + .75 ln 1.5
    assert kl(q, p).item() == pytest.approx(0.25 * ln(0.5) + 0.75 * ln(1.5), abs=1e-12)
    assert kl(p, p).item() == 0.0


def test_kl_zero_probabilities():
    # 0·log 0 = 0: KL([1,0] ‖ [.5,.5]) = 1·ln(1/.5) = ln 2
    assert kl(t([1.0, 0.0]), t([0.5, 0.5])).item() == pytest.approx(ln(2), abs=1e-12)
    # q = 0 < p is clamped at EPS: KL([.5,.5] ‖ [1,0]) = .5 ln(.5/1) + .5 ln(.5/1e-12)
    expected = 0.5 * ln(0.5) + 0.5 * ln(0.5 / EPS)
    assert kl(t([0.5, 0.5]), t([1.0, 0.0])).item() == pytest.approx(expected, rel=1e-12)


def test_jsd_hand_values():
    # disjoint supports: M = [.5,.5], JSD = ½(ln 2) + ½(ln 2) = ln 2 (the maximum)
    assert jsd(t([1.0, 0.0]), t([0.0, 1.0])).item() == pytest.approx(ln(2), abs=1e-12)
    p, q = t([0.5, 0.5]), t([0.25, 0.75])
    # M = [.375, .625]
    # KL(p‖M) = .5 ln(.5/.375) + .5 ln(.5/.625) = .5 ln(4/3) + .5 ln(.8)
    # KL(q‖M) = .25 ln(.25/.375) + .75 ln(.75/.625) = .25 ln(2/3) + .75 ln(1.2)
    expected = 0.5 * (0.5 * ln(4 / 3) + 0.5 * ln(0.8)) + 0.5 * (0.25 * ln(2 / 3) + 0.75 * ln(1.2))
    assert jsd(p, q).item() == pytest.approx(expected, abs=1e-12)
    assert jsd(q, p).item() == pytest.approx(expected, abs=1e-12)


def test_pmi_hand_values():
    p_cond, p_marg = t([0.8, 0.2]), t([0.5, 0.5])
    assert pmi(p_cond, p_marg, torch.tensor(0)).item() == pytest.approx(ln(1.6), abs=1e-12)
    assert pmi(p_cond, p_marg, torch.tensor(1)).item() == pytest.approx(ln(0.4), abs=1e-12)


def test_divergences_are_batched_and_keep_dtype():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(3, 4, 5, generator=g).softmax(-1)
    q = torch.rand(3, 4, 5, generator=g).softmax(-1)
    taken = torch.randint(0, 5, (3, 4), generator=g)
    for name in DIVERGENCES:
        out = divergence(name, p, q, taken)
        assert out.shape == (3, 4) and out.dtype == torch.float32
    # elementwise equal to the unbatched call
    assert kl(p, q)[1, 2].item() == pytest.approx(kl(p[1, 2], q[1, 2]).item(), abs=1e-6)
    assert pmi(p, q, taken)[2, 3].item() == pytest.approx(
        (p[2, 3, taken[2, 3]].log() - q[2, 3, taken[2, 3]].log()).item(), abs=1e-6
    )


def test_divergence_dispatch_errors():
    p = t([0.5, 0.5])
    with pytest.raises(ValueError, match="kl.*jsd.*pmi"):
        divergence("tv", p, p)
    with pytest.raises(ValueError, match="taken"):
        divergence("pmi", p, p)


# ------------------------------------------------------ influence on a 2×2 table

# rows: influencer's counterfactual action ã; columns: influencee's action a_j
P_CF = t([[0.9, 0.1], [0.3, 0.7]])
P_K = t([0.25, 0.75])
# marginal = .25·[.9,.1] + .75·[.3,.7] = [.225+.225, .025+.525] = [.45, .55]
MARG = [0.45, 0.55]
KL_0 = 0.9 * ln(0.9 / 0.45) + 0.1 * ln(0.1 / 0.55)  # = .9 ln 2 + .1 ln(2/11)
KL_1 = 0.3 * ln(0.3 / 0.45) + 0.7 * ln(0.7 / 0.55)  # = .3 ln(2/3) + .7 ln(14/11)


def test_marginal_policy_hand_value():
    assert marginal_policy(P_CF, P_K).tolist() == pytest.approx(MARG, abs=1e-12)


def test_kl_influence_hand_values():
    for a_k, expected in ((0, KL_0), (1, KL_1)):
        got = counterfactual_influence(P_CF, P_K, torch.tensor(a_k), "kl")
        assert got.item() == pytest.approx(expected, abs=1e-12)


def test_jsd_influence_hand_value():
    # a_k = 0: p = [.9,.1], marginal [.45,.55], M = [.675, .325]
    expected = 0.5 * (0.9 * ln(0.9 / 0.675) + 0.1 * ln(0.1 / 0.325)) + 0.5 * (
        0.45 * ln(0.45 / 0.675) + 0.55 * ln(0.55 / 0.325)
    )
    got = counterfactual_influence(P_CF, P_K, torch.tensor(0), "jsd")
    assert got.item() == pytest.approx(expected, abs=1e-12)


def test_pmi_influence_hand_values():
    cases = {(0, 0): ln(0.9 / 0.45), (0, 1): ln(0.1 / 0.55), (1, 0): ln(0.3 / 0.45), (1, 1): ln(0.7 / 0.55)}
    for (a_k, a_j), expected in cases.items():
        got = counterfactual_influence(P_CF, P_K, torch.tensor(a_k), "pmi", torch.tensor(a_j))
        assert got.item() == pytest.approx(expected, abs=1e-12)


def test_influence_batched_gather_selects_each_row():
    # leading dims [2, 3]: each entry must use its own table and its own taken action
    g = torch.Generator().manual_seed(1)
    p_cf = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64).softmax(-1)
    p_k = torch.rand(2, 3, 4, generator=g, dtype=torch.float64).softmax(-1)
    taken = torch.randint(0, 4, (2, 3), generator=g)
    out = counterfactual_influence(p_cf, p_k, taken, "kl")
    assert out.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            marg = (p_k[i, j, :, None] * p_cf[i, j]).sum(0)
            p = p_cf[i, j, taken[i, j]]
            assert out[i, j].item() == pytest.approx((p * (p / marg).log()).sum().item(), abs=1e-12)


@pytest.mark.parametrize("measure", DIVERGENCES)
def test_influence_zero_when_influencee_ignores_influencer(measure):
    row = t([0.2, 0.5, 0.3])
    p_cf = row.expand(4, 3)  # identical rows: p(a_j | ã) does not depend on ã
    p_k = t([0.1, 0.2, 0.3, 0.4])
    for a_k in range(4):
        got = counterfactual_influence(p_cf, p_k, torch.tensor(a_k), measure, torch.tensor(1))
        assert got.item() == pytest.approx(0.0, abs=1e-12)
    assert mutual_information_from_policies(p_cf, p_k).item() == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------- E_{a_k~p}[KL influence] = MI


def test_mi_identity_exact_hand_table():
    # Eq 5: I = Σ_ã p(ã) KL(p(·|ã) ‖ marginal) = .25·KL_0 + .75·KL_1
    mi = mutual_information_from_policies(P_CF, P_K).item()
    assert mi == pytest.approx(0.25 * KL_0 + 0.75 * KL_1, abs=1e-12)
    # and equals the joint-table definition Σ p(ã,a) ln p(ã,a)/(p(ã)p(a))
    joint = P_K[:, None] * P_CF
    direct = (joint * (joint / (P_K[:, None] * t(MARG)[None, :])).log()).sum().item()
    assert mi == pytest.approx(direct, abs=1e-12)


def test_mi_identity_exact_batched():
    g = torch.Generator().manual_seed(2)
    p_cf = torch.rand(5, 3, 4, 6, generator=g, dtype=torch.float64).mul(3).softmax(-1)
    p_k = torch.rand(5, 3, 4, generator=g, dtype=torch.float64).mul(3).softmax(-1)
    per_action = torch.stack(
        [counterfactual_influence(p_cf, p_k, torch.full((5, 3), a), "kl") for a in range(4)], -1
    )
    expectation = (p_k * per_action).sum(-1)
    torch.testing.assert_close(expectation, mutual_information_from_policies(p_cf, p_k), rtol=0, atol=1e-12)


def test_mi_identity_monte_carlo():
    # Eq 6: the mean KL influence over sampled a_k ~ p(a_k) estimates the MI.
    # Per-sample KL takes KL_0 ≈ .453 (p=.25) or KL_1 ≈ .047 (p=.75): std ≈ .176, so with
    # 200 000 samples the standard error is ≈ 4e-4; tolerance 2e-3 is 5 standard errors.
    g = torch.Generator().manual_seed(3)
    n = 200_000
    a_k = torch.multinomial(P_K, n, replacement=True, generator=g)
    inf = counterfactual_influence(P_CF.expand(n, 2, 2), P_K.expand(n, 2), a_k, "kl")
    mi = 0.25 * KL_0 + 0.75 * KL_1
    assert inf.mean().item() == pytest.approx(mi, abs=2e-3)
    assert abs(inf.mean().item() - KL_0) > 0.1 and abs(inf.mean().item() - KL_1) > 0.1


# ------------------------------------------------------------------ curriculum


def test_curriculum_weight():
    beta, c = 0.1, 1000
    assert curriculum_weight(0, beta, c) == 0.0
    assert curriculum_weight(c / 2, beta, c) == pytest.approx(0.05)
    assert curriculum_weight(c, beta, c) == pytest.approx(beta)
    assert curriculum_weight(2 * c, beta, c) == pytest.approx(beta)
    assert curriculum_weight(123, beta, 0) == beta
    assert curriculum_weight(0, beta, -5) == beta
