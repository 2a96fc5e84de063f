"""Trainer behaviour: learning lowers losses, gradient routing of the comm reward, MOA masking."""

import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from si.config import register_configs
from si.envs.cleanup import CleanupEnv
from si.envs.gridworld import PLACE_STATS, STAY
from si.models import ActorCritic
from si.train.a2c import moa_loss
from si.train.budget import Budget, batch_lr_scale
from si.train.interval_metrics import EPISODE_STATS
from si.train.trainer import Trainer

CONF = Path(__file__).resolve().parents[1] / "conf"
register_configs()
TINY = ["budget=tiny", "env.horizon=50", "budget.num_envs=8", "optim.rollout_len=25", "model.lstm_size=32",
        "budget.agent_steps=100000", "logger=none"]


def make(*overrides: str) -> Trainer:
    torch.set_num_threads(1)
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=[*TINY, *overrides])
    OmegaConf.resolve(cfg)
    return Trainer(cfg)


def _grads(trainer: Trainer, roll: dict) -> dict[str, torch.Tensor]:
    trainer.update(roll)  # one optimiser step; read the gradients it used
    return {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


def test_a_few_hundred_steps_of_training_lower_the_losses_on_cpu():
    t = make("env=harvest", "reward=moa", "optim.lr_init=0.003", "optim.lr_end=0.003")
    moa, value = [], []
    for _ in range(24):  # 24 × 8 envs × 25 steps = 4,800 agent steps
        roll = t.collect()
        stats = t.update(roll)
        t.iteration += 1
        moa.append(stats["loss_moa"])
        value.append(stats["loss_value"])
    # the MOA starts at ln(8) (uniform over Harvest's 8 actions) and learns the others' policies
    assert sum(moa[-4:]) / 4 < sum(moa[:4]) / 4 - 0.05, moa
    assert sum(value[-4:]) / 4 < sum(value[:4]) / 4, value


def test_update_reports_each_agents_gradient_norm_before_clipping():
    t = make("env=harvest", "reward=moa", "optim.max_grad_norm=0.01")
    stats = t.update(t.collect())
    norms = torch.tensor([stats[f"grad_norm_agent_{i}"] for i in range(t.n)])
    clipped = torch.zeros(t.n)
    for p in t.model.parameters():
        clipped += p.grad.reshape(t.n, -1).pow(2).sum(1)
    assert (norms > 0.01).all()  # reported before clipping ...
    torch.testing.assert_close(clipped.sqrt(), torch.full((t.n,), 0.01), rtol=1e-3, atol=0)  # ... applied per agent


def test_environment_policy_gets_no_gradient_from_the_communication_influence():
    t = make("env=harvest", "reward=comm_influence", "reward.beta=1.0")
    roll = t.collect()
    assert roll["influence"].abs().sum() > 0
    state = {k: v.clone() for k, v in t.model.state_dict().items()}
    base = _grads(t, roll)
    t.model.load_state_dict(state)
    shifted = dict(roll, comm_rewards=roll["comm_rewards"] + 100.0 * roll["influence"].sum(-1))
    other = _grads(t, shifted)
    torch.testing.assert_close(base["policy.weight"], other["policy.weight"])
    torch.testing.assert_close(base["value.weight"], other["value.weight"])
    assert not torch.allclose(base["comm_policy.weight"], other["comm_policy.weight"])


def test_moa_loss_masks_agents_out_of_view_when_only_when_visible():
    t = make("env=harvest", "reward=moa")
    roll = t.collect()
    out = t.model.unroll(roll["obs"], roll["act_in"], roll["actions"], roll["first"], roll["init_state"])
    args = out["moa_logits"], roll["actions"], roll["dones"]
    loss_all, _ = moa_loss(*args)
    assert loss_all > 0
    assert moa_loss(*args, torch.ones_like(roll["visible"]))[0] == loss_all
    assert moa_loss(*args, torch.zeros_like(roll["visible"]))[0] == 0, "nobody in view: nothing to train on"
    # The trainer passes the visibility mask exactly when optim.moa_only_when_visible is set.
    for only_visible in (True, False):
        t = make("env=harvest", "reward=moa", f"optim.moa_only_when_visible={only_visible}")
        roll = t.collect()
        roll["visible"] = torch.zeros_like(roll["visible"])
        assert (t.update(roll)["loss_moa"] == 0) == only_visible


def test_moa_learns_to_use_the_joint_action_when_it_predicts_the_next_one():
    """The gradient path from the MOA loss (§6) to the MOA's action inputs: with uninformative
    observations and a^j_{t+1} = a^j_t + 1 (mod A), the MOA must learn the rule from its action
    input a_t alone (the Cleanup MOA that ignores actions does so because they carry no information)."""
    torch.manual_seed(0)
    n, a, steps, envs = 2, 5, 10, 16
    model = ActorCritic(n, a, lstm_size=32, moa=True)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    obs = torch.randint(0, 256, (steps, envs, n, 15, 15, 3), dtype=torch.uint8)
    first = torch.zeros(steps, envs, dtype=torch.bool)
    first[0] = True
    no_dones = torch.zeros(steps, envs, dtype=torch.bool)
    accuracy = []
    for _ in range(45):
        actions = (torch.randint(0, a, (1, envs, n)) + torch.arange(steps)[:, None, None]) % a
        out = model.unroll(obs, None, actions, first, model.initial_state(envs))
        loss, acc = moa_loss(out["moa_logits"], actions, no_dones)
        opt.zero_grad()
        loss.backward()
        opt.step()
        accuracy.append(acc)
    assert accuracy[0] < 0.5 and min(accuracy[-5:]) > 0.95


def _comm_roll(t: Trainer, syms: torch.Tensor, acts: torch.Tensor, infl: torch.Tensor) -> dict:
    return {"symbols": syms, "actions": acts, "influence": infl, "dones": torch.zeros(acts.shape[:2], dtype=torch.bool)}


def test_influential_ic_uses_the_influence_row_of_the_symbol():
    """Row t of the influence holds m_{t-1}'s effect on a_t, so m_t's moment is row t + 1 (§5.1)."""
    t = make("env=harvest", "env.num_agents=2", "reward=comm_influence")
    T = 6
    syms = torch.arange(T * 2).reshape(T, 1, 2) % t.cfg.model.vocab
    acts = (torch.arange(T * 2).reshape(T, 1, 2) * 3) % t.a
    infl = torch.zeros(T, 1, 2, 2)
    infl[3, 0, 0, 1] = 1.0  # m^0_2 changed a^1_3: the only influential symbol of agent 0
    t.add_rollout_metrics(_comm_roll(t, syms, acts, infl))
    counts = t.acc.tables["ic_symbol_action_influential"][0, 1]  # pair k=0 → j=1
    assert counts.sum() == 1
    assert counts[syms[2, 0, 0], acts[3, 0, 1]] == 1
    counts = t.acc.tables["ic_action_action_influential"][0, 1]
    assert counts.sum() == 1 and counts[acts[2, 0, 0], acts[3, 0, 1]] == 1


def test_ic_pools_the_interval_before_taking_the_max_over_pairs():
    """'First average over all trajectory steps, then take the maximum between any two agents'."""
    from si.metrics import mutual_information

    t = make("env=harvest", "env.num_agents=2", "reward=comm")
    g = torch.Generator().manual_seed(0)
    T, B = 40, 8
    rolls = []
    for k, j in ((0, 1), (1, 0)):  # the first rollout: 0 → 1 coordinate; the second: 1 → 0
        syms = torch.randint(0, 4, (T, B, 2), generator=g)
        acts = torch.randint(0, 4, (T, B, 2), generator=g)
        acts[1:, :, j] = syms[:-1, :, k]
        rolls.append(_comm_roll(t, syms, acts, None))
        t.add_rollout_metrics({k: v for k, v in rolls[-1].items() if v is not None})
    row = t.log_row(1.0, 1.0, 1)
    pooled = [mutual_information(torch.cat([r["symbols"][:-1, :, k] for r in rolls]),
                                 torch.cat([r["actions"][1:, :, j] for r in rolls]), 4, 4) for k, j in ((0, 1), (1, 0))]
    assert row["ic_symbol_action"] == pytest.approx(max(pooled), abs=1e-12)
    assert row["ic_symbol_action"] < 0.6 * math.log(4)  # the per-rollout maxima are ≈ ln 4 each
    # Each ordered pair's pooled IC is logged too, for analysis to average over rows before the max.
    assert [row["ic_symbol_action_0_1"], row["ic_symbol_action_1_0"]] == pytest.approx(pooled, abs=1e-12)


def test_square_root_batch_rule_scales_the_learning_rate_of_the_synchronous_learners():
    """budget.lr_ref_envs=2 with 8 envs: lr × sqrt(8 / 2) = 2 along the whole linear anneal."""
    plain = make("optim.lr_init=0.001", "optim.lr_end=0.0002")
    scaled = make("optim.lr_init=0.001", "optim.lr_end=0.0002", "budget.lr_ref_envs=2")
    assert plain.lr_scale == 1.0 and scaled.lr_scale == 2.0
    for iteration in (0, plain.budget.iterations // 2, plain.budget.iterations):
        plain.iteration = scaled.iteration = iteration
        assert scaled.lr() == pytest.approx(2 * plain.lr())
    scaled.update(scaled.collect())
    assert all(g["lr"] == pytest.approx(2 * plain.lr()) for g in scaled.optimizer.param_groups)
    cfg = OmegaConf.create({"optim": {"algo": "a3c"}, "budget": {"num_envs": 1024, "lr_ref_envs": 64}})
    assert batch_lr_scale(cfg) == 1.0  # the paper's values are per A3C worker: never scaled
    cfg.optim.algo = "ppo"
    assert batch_lr_scale(cfg) == 4.0
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        paper = compose("config", overrides=["budget=paper"])
    assert batch_lr_scale(paper) == 4.0  # the paper preset's 1024 envs: 4x the Table rates


@pytest.mark.parametrize("reward", ["comm", "moa"])
def test_baselines_measure_influence_without_rewarding_it(reward: str) -> None:
    """Fig 5 and §6 compare baseline and influence agents on influence and influential moments:
    the comm and MOA baselines compute their influence at β = 0, so it is logged, not rewarded."""
    t = make("env=harvest", f"reward={reward}")
    roll = t.collect()
    assert roll["influence"].abs().sum() > 0
    assert torch.equal(roll["rewards"], roll["extrinsic"])
    if reward == "comm":
        assert torch.equal(roll["comm_rewards"], roll["extrinsic"])
    t.add_rollout_metrics(roll)
    row = t.log_row(1.0, 1.0, 1)
    assert math.isfinite(row["influence_mean"]) and math.isfinite(row["influential_moment_frac"])
    if reward == "comm":
        assert math.isfinite(row["ic_symbol_action_influential"])


PLACES = ("@@@@@@@@@@@@@@", "@HRSB       P@", "@PPPP        @", "@@@@@@@@@@@@@@")
"""Cleanup row 1: waste H, river R, stream S, apple-spawn B, then floor up to column 12."""


def test_place_fractions_of_an_episode_of_stay_actions() -> None:
    """Agents on H, R, S, B (in view of each other) and one on floor at column 12 (8 columns from
    the nearest, out of view) stay for a whole 50-step episode: four agents see 3 of their 4
    others, the fifth none; 2 of 5 are on the river (H, R; the stream S is not), 1 on the orchard."""
    t = make("env=cleanup", "reward=extrinsic")
    t.env = CleanupEnv(PLACES, t.cfg.budget.num_envs, 5, horizon=t.env.horizon)
    t._reset_carry(t.env.reset(seed=0))
    t.env.pos[:] = torch.tensor([t.env.cell_id(1, c) for c in (1, 2, 3, 4, 12)])
    transition = t.env.transition
    t.env.transition = lambda actions: transition(torch.full_like(actions, STAY))  # type: ignore[method-assign]
    t.collect()
    t.collect()  # 2 × 25 steps: the episode ends
    row = t.log_row(1.0, 1.0, 1)
    assert t.episodes == 8
    assert row["in_view_frac"] == pytest.approx((4 * 3 / 4 + 0) / 5)
    assert row["river_frac"] == pytest.approx(2 / 5) and row["orchard_frac"] == pytest.approx(1 / 5)
    assert not set(PLACE_STATS) & set(row), "logged as fractions only"


def test_harvest_logs_place_fractions_without_river() -> None:
    t = make("env=harvest", "reward=extrinsic")
    t.collect()
    row = t.log_row(1.0, 1.0, 1)  # no episode finished yet: the columns are there, NaN
    assert all(math.isnan(row[k]) for k in ("in_view_frac", "river_frac", "orchard_frac"))
    t.collect()
    row = t.log_row(1.0, 1.0, 1)
    assert row["river_frac"] == 0
    assert 0 < row["orchard_frac"] < 1 and 0 < row["in_view_frac"] <= 1


def test_resume_from_a_checkpoint_older_than_the_place_stats() -> None:
    """The episode in progress and the interval's finished episodes of a checkpoint without the
    place stats get NaN sums: left out of the place columns, the other columns as before."""
    t = make("env=harvest", "reward=extrinsic")
    t.collect()  # halfway through the first episode
    sd = t.state_dict()
    for s in PLACE_STATS:
        del sd["carry"][f"ep_{s}"]
    old_width = 1 + len(EPISODE_STATS) - len(PLACE_STATS)
    sd["acc"]["episodes"] = [torch.ones(t.cfg.budget.num_envs, old_width, t.n)]
    t.load_state_dict(sd)
    t.collect()
    row = t.log_row(1.0, 1.0, 1)
    assert math.isnan(row["in_view_frac"]) and math.isnan(row["river_frac"]) and math.isnan(row["orchard_frac"])
    assert math.isfinite(row["collective_reward"]) and math.isfinite(row["fires"])
    t.collect()
    t.collect()
    row = t.log_row(1.0, 1.0, 1)
    assert row["river_frac"] == 0 and 0 < row["orchard_frac"] < 1
