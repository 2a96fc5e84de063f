"""Checkpoint evaluators (`si.eval`) on real tiny Box trapped job folders trained in-process."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from si.config import register_configs
from si.envs.box_trapped import OPEN_BOX
from si.eval import box_trapped, eval_trainer, load_job, moa_probe, schelling
from si.eval.__main__ import main
from si.train.run import run

CONF = Path(__file__).resolve().parents[1] / "conf"
TINY = ("env=box_trapped", "budget=tiny", "budget.agent_steps=400", "budget.log_every=200",
        "budget.checkpoint_every=200", "optim.rollout_len=25", "model.lstm_size=16", "logger=none", "device=cpu",
        "threads=1")


def _train(job_dir: Path, reward: str) -> Path:
    """Train a tiny job in-process and save its resolved config as launch/main.py does."""
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=[f"reward={reward}", *TINY])
    OmegaConf.resolve(cfg)
    (job_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, job_dir / ".hydra" / "config.yaml", resolve=True)
    run(cfg, job_dir)
    return job_dir


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """An influence run, a `visible` run (A3C with the same model, so Schelling can mix them) and a
    MOA influence run.
    One torch thread (tiny batches on shared cores), restored afterwards."""
    threads = torch.get_num_threads()
    root = tmp_path_factory.mktemp("jobs")
    yield {r: _train(root / r, r) for r in ("influence", "visible", "moa_influence")}
    torch.set_num_threads(threads)


def test_box_trapped_csv(jobs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["box-trapped", str(jobs["influence"]), "--episodes", "6", "--threads", "1"]) == 0
    assert "box opened in" in capsys.readouterr().out
    df = pd.read_csv(jobs["influence"] / "eval" / "box_trapped.csv")
    assert tuple(df.columns) == box_trapped.COLUMNS
    horizon, n = 100, 2
    assert len(df) == 6 * horizon * n
    assert set(df.episode) == set(range(6)) and set(df.t) == set(range(horizon)) and set(df.agent) == {0, 1}
    assert df.action.between(0, OPEN_BOX).all() and set(df.open_box) <= {0, 1}
    assert (df[df.open_box == 1].agent == 0).all()  # only agent 0 can open
    assert (df[df.open_box == 1].action == OPEN_BOX).all()
    assert (df.groupby("episode").open_box.sum() <= 1).all()  # the door opens at most once
    assert np.isfinite(df.influence).all()
    assert (df[df.agent == 1].influence == 0).all()  # agent 1 is an influencee (K = 1)


def test_box_trapped_reproducible_and_nan_without_influence(jobs: dict[str, Path]) -> None:
    a = box_trapped.evaluate(jobs["influence"], episodes=3, seed=5)
    b = box_trapped.evaluate(jobs["influence"], episodes=3, seed=5)
    pd.testing.assert_frame_equal(a, b)
    df = box_trapped.evaluate(jobs["visible"], episodes=2)
    assert df.influence.isna().all() and len(df) == 2 * 100 * 2


def test_evaluation_uses_trained_policies_even_for_runs_with_a_warmup(jobs: dict[str, Path]) -> None:
    job = load_job(jobs["influence"])
    cfg = OmegaConf.merge(job.cfg, {"optim": {"warmup_agents": [0], "warmup_steps": 10**9}})
    trainer = eval_trainer(cfg, job.model_state, 2, "cpu", 0)
    assert not trainer.warming_up
    assert trainer.collect()["logits"][:, :, 0].abs().sum() > 0  # agent 0 acts with its own policy


def test_mix_agents_takes_agent_slices(jobs: dict[str, Path]) -> None:
    coop, defect = load_job(jobs["influence"]).model_state, load_job(jobs["visible"]).model_state
    mixed = schelling.mix_agents(coop, defect, [False, True])
    conv = mixed["conv.weight"]  # grouped conv: N·C_out rows, agent-major
    c_out = conv.shape[0] // 2
    assert torch.equal(conv[:c_out], defect["conv.weight"][:c_out])
    assert torch.equal(conv[c_out:], coop["conv.weight"][c_out:])
    for key, t in mixed.items():
        assert torch.equal(t.view(2, -1)[0], defect[key].view(2, -1)[0]), key
        assert torch.equal(t.view(2, -1)[1], coop[key].view(2, -1)[1]), key


def test_schelling_csv(jobs: dict[str, Path]) -> None:
    assert main(["schelling", str(jobs["influence"]), str(jobs["visible"]), "--episodes", "3", "--threads", "1"]) == 0
    df = pd.read_csv(jobs["influence"] / "eval" / "schelling.csv")
    assert tuple(df.columns) == schelling.COLUMNS
    n = 2
    assert len(df) == n * 2 * 3  # N cooperator counts × 2 roles × episodes
    assert set(df.env) == {"box_trapped"} and set(df.num_cooperators) == set(range(n))
    assert df.groupby(["num_cooperators", "role"]).size().eq(3).all()
    assert df.payoff.map(math.isfinite).all()


def test_schelling_rejects_different_model(jobs: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    (other / ".hydra").mkdir(parents=True)
    (other / "checkpoints").mkdir()
    (other / "checkpoints" / "last.pt").symlink_to(jobs["visible"] / "checkpoints" / "last.pt")
    cfg = yaml.safe_load((jobs["visible"] / ".hydra" / "config.yaml").read_text())
    cfg["model"]["lstm_size"] = 32
    (other / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match="model config"):
        schelling.evaluate(jobs["influence"], other, episodes=1)
    assert main(["schelling", str(jobs["influence"]), str(tmp_path / "missing")]) == 2
    assert "not a trained job folder" in capsys.readouterr().err


def test_video_of_trained_agents(jobs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "box.gif"
    assert main(["video", str(jobs["influence"]), "--out", str(out), "--steps", "30", "--scale", "4",
                 "--threads", "1"]) == 0
    import imageio.v2 as imageio

    frames = imageio.mimread(out)  # GIF writers merge identical consecutive frames: at most 31
    assert 1 < len(frames) <= 31 and frames[0].shape[:2] == (12 * 4, 13 * 4)
    assert any((a != b).any() for a, b in zip(frames, frames[1:])), "agents must move"


def test_moa_probe_measures_the_influence_training_rewards() -> None:
    """The probe's influence of k's own action, gated by view, is the influence training computes
    (Eq 3); varying slot k itself is the MOA's own counterfactual; the persistence guess is exact
    for agents that repeat their action."""
    from test_trainer import make

    t = make("env=cleanup", "reward=moa_influence", "reward.only_visible=true")
    roll = t.collect()
    r = moa_probe.probe_rollout(t.model, roll, t.rcfg.divergence)
    torch.testing.assert_close(r["influence"] * roll["visible"], roll["influence"])
    assert r["sensitivity"].diagonal(dim1=-2, dim2=-1).abs().sum() == 0 and r["sensitivity"].sum() > 0
    _, moa_feat = t.model.encode(roll["obs"][0])
    state = t.model.reset_state(roll["init_state"], roll["first"][0])
    gates = t.model.moa_gates(moa_feat, state["moa_h"], roll["actions"][0])
    own = torch.arange(t.n)
    torch.testing.assert_close(
        t.model.moa_counterfactual(gates, state["moa_c"], roll["actions"][0], own),
        t.model.moa_counterfactual(gates, state["moa_c"], roll["actions"][0]))


def test_successive_action_statistics_against_hand_values() -> None:
    """Agent 0 repeats a fair coin's outcome: I = log 2, Σ p² = ½, persistence 1; agent 1 moves on
    0 → 1 → 2 → 0 deterministically: I = log 3, Σ p² = ⅓, persistence 0."""
    a0 = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1])
    a1 = torch.tensor([0, 1, 2, 0, 1, 2, 1, 2, 0, 2, 0, 1])
    pairs = torch.stack([torch.stack([a0, a0]), torch.stack([a1, (a1 + 1) % 3])]).permute(2, 1, 0)
    out = moa_probe._successive_actions(pairs, 3)
    assert out["next_action_mi"] == pytest.approx((math.log(2) + math.log(3)) / 2)
    assert out["chance_agreement"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert out["persistence_accuracy"] == pytest.approx(1 / 2)


def test_moa_probe_cli(jobs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["moa-probe", str(jobs["moa_influence"]), "--episodes", "2", "--steps", "50"]) == 0
    result = yaml.safe_load((jobs["moa_influence"] / "eval" / "moa_probe.json").read_text())
    assert result["env_steps"] == 2 * 50 and 0 <= result["moa_accuracy"] <= 1
    assert result["sensitivity_to_j_per_pair"] > 0 and result["influence_per_pair"] >= 0
    assert result["cell_abs_mean"] > 0
    assert 0 < result["chance_agreement"] <= 1 and result["next_action_mi"] >= 0
    assert "wrote" in capsys.readouterr().out
    assert main(["moa-probe", str(jobs["influence"])]) == 2  # no MOA
