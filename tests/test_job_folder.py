"""A job folder is never silently wrong: config drift, kills before the first checkpoint, corrupt
checkpoints and metrics, divergence, two writers, checks before launch (docs/design.md)."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import si.train.run as run_module
from si.config import ConfigError, register_configs, validate
from si.train.jobdir import JobFolderError, JobLock
from si.train.run import run
from si.train.trainer import DivergenceError

CONF = Path(__file__).resolve().parents[1] / "conf"
register_configs()
FAST = ["env=harvest", "env.horizon=100", "budget=tiny", "budget.agent_steps=1000", "budget.num_envs=4",
        "budget.log_every=200", "budget.checkpoint_every=400", "optim.rollout_len=25", "model.lstm_size=16",
        "threads=1", "logger=none", "tune_malloc=false"]


def cfg(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        c = compose("config", overrides=[*FAST, *overrides])
    OmegaConf.resolve(c)
    return c


def steps(job: Path) -> list[int]:
    return pd.read_csv(job / "metrics.csv")["agent_steps"].tolist()


def test_rerun_with_a_changed_setting_is_refused_and_history_kept(tmp_path):
    job = tmp_path / "job"
    run(cfg("reward=influence"), job)
    with pytest.raises(JobFolderError, match=r"reward\.beta: 0\.224 -> 9\.0"):
        run(cfg("reward=influence", "reward.beta=9"), job)
    for path in (job / "job_config.yaml", job / ".hydra" / "config.yaml"):
        assert yaml.safe_load(path.read_text())["reward"]["beta"] == 0.224, path


def test_allowed_config_change_is_recorded(tmp_path):
    job = tmp_path / "job"
    run(cfg("budget.agent_steps=400"), job)
    run(cfg("budget.agent_steps=1000", "optim.lr_init=0.01", "allow_config_change=true"), job)
    changes = [json.loads(line)["changes"] for line in (job / "config_changes.jsonl").read_text().splitlines()]
    assert changes[-1]["optim.lr_init"][1] == 0.01 and changes[-1]["budget.agent_steps"] == [400, 1000]
    assert yaml.safe_load((job / "job_config.yaml").read_text())["optim"]["lr_init"] == 0.01


def test_extending_the_budget_just_works_and_continues_the_table(tmp_path):
    job = tmp_path / "job"
    run(cfg("budget.agent_steps=400"), job)
    summary = run(cfg(), job)
    assert summary["status"] == "complete" and summary["agent_steps"] == 1000
    assert steps(job) == [200, 400, 600, 800, 1000]
    assert "budget.agent_steps" in (job / "config_changes.jsonl").read_text()


def test_kill_before_the_first_checkpoint_restarts_from_scratch(tmp_path):
    job = tmp_path / "job"
    run(cfg(), job)
    reference = pd.read_csv(job / "metrics.csv").drop(columns=["env_steps_per_s", "agent_actions_per_s", "wall_time_s"])
    for f in (job / "checkpoints").iterdir():  # as if killed after logging rows, before checkpointing
        f.unlink()
    (job / "summary.json").write_text(json.dumps({"status": "running"}))
    assert run(cfg(), job)["status"] == "complete"
    got = pd.read_csv(job / "metrics.csv").drop(columns=["env_steps_per_s", "agent_actions_per_s", "wall_time_s"])
    pd.testing.assert_frame_equal(got, reference)


def test_checkpoints_are_also_written_on_wall_clock_time(tmp_path, monkeypatch):
    saved = []
    original = run_module.save_checkpoint
    monkeypatch.setattr(run_module, "save_checkpoint", lambda state, d: (saved.append(state["trainer"]["iteration"]), original(state, d)))
    run(cfg("budget.checkpoint_every=100000", "budget.checkpoint_every_s=1e-9"), tmp_path / "job")
    assert saved == list(range(1, 11)), "every update is more than 1e-9 s after the last checkpoint"


@pytest.mark.parametrize("damage", ["truncate", "empty", "random", "zero_weights"])
def test_a_corrupt_checkpoint_is_named_and_the_previous_one_used(tmp_path, capsys, damage):
    job = tmp_path / "job"
    run(cfg("budget.agent_steps=800"), job)  # checkpoints at 400 (prev.pt) and 800 (last.pt)
    last = job / "checkpoints" / "last.pt"
    if damage == "truncate":
        last.write_bytes(last.read_bytes()[:1000])
    elif damage == "empty":
        last.write_bytes(b"")
    elif damage == "random":
        last.write_bytes(torch.randint(0, 256, (5000,), dtype=torch.uint8).numpy().tobytes())
    else:
        state = torch.load(last, weights_only=False)
        state["trainer"]["model"] = {k: torch.zeros_like(v) for k, v in state["trainer"]["model"].items()}
        torch.save(state, last)
    summary = run(cfg(), job)  # extend to 1000: resumes from prev.pt (400)
    assert f"{last}: checksum mismatch" in capsys.readouterr().err
    assert summary["status"] == "complete" and steps(job) == [200, 400, 600, 800, 1000]


def test_no_good_checkpoint_stops_with_one_line(tmp_path):
    job = tmp_path / "job"
    run(cfg("budget.agent_steps=800"), job)
    for name in ("last.pt", "prev.pt"):
        (job / "checkpoints" / name).write_bytes(b"junk")
    with pytest.raises(JobFolderError, match="no usable checkpoint"):
        run(cfg(), job)


@pytest.mark.parametrize("damage, message", [("junk", "'oops' is not a number"), ("gap", "rows missing between")])
def test_corrupt_metrics_stop_the_resume_naming_the_file(tmp_path, damage, message):
    job = tmp_path / "job"
    run(cfg("budget.agent_steps=800"), job)
    lines = (job / "metrics.csv").read_text().splitlines()
    if damage == "junk":
        lines[2] = lines[2].replace(lines[2].split(",")[2], "oops", 1)
    else:
        del lines[2]
    (job / "metrics.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(JobFolderError, match=f"metrics.csv: .*{message}"):
        run(cfg(), job)


def test_divergence_stops_the_run_and_marks_it(tmp_path):
    job = tmp_path / "job"
    with pytest.raises(DivergenceError):
        run(cfg("optim.lr_init=1e30", "optim.lr_end=1e30"), job)
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "diverged" and "non-finite" in summary["error"]


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    job = tmp_path / "job"
    with JobLock(job):
        with pytest.raises(JobFolderError, match=r"in use by host .* pid \d+"):
            run(cfg(), job)
    assert not (job / "metrics.csv").exists() and not (job / "job_config.yaml").exists()


def test_num_agents_above_the_maps_spawn_points_fails_validation():
    with pytest.raises(ConfigError, match=r"env.num_agents=21 is invalid: must be <= 20"):
        validate(cfg("env.num_agents=21"))
    with pytest.raises(ConfigError, match=r"env.num_agents=7 is invalid: must be <= 6"):
        validate(cfg("env=box_trapped", "env.num_agents=7"))
