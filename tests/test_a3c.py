"""The asynchronous A3C learner (optim=a3c): shared updates from every worker, a learning signal,
kill and resume with a continuous metrics table, config checks."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from si.config import ConfigError, register_configs, validate
from si.train.run import run

ROOT = Path(__file__).resolve().parents[1]
register_configs()
TINY = ["optim=a3c", "optim.workers=2", "env=harvest", "env.map=harvest_mini", "env.num_agents=2",
        "env.horizon=100", "budget=tiny", "model.lstm_size=32", "logger=none", "paper=none", "tune_malloc=false"]
FAST_LR = ["optim.lr_init=0.003", "optim.lr_end=0.003", "optim.entropy=0.01"]


def cfg(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        c = compose("config", overrides=[*TINY, *overrides])
    OmegaConf.resolve(c)
    return c


def test_every_workers_updates_reach_the_shared_model_and_optimiser(tmp_path):
    c = cfg("budget.agent_steps=3200", "budget.log_every=800", "budget.checkpoint_every=3200")
    summary = run(c, tmp_path / "job")
    per_worker = summary["updates_per_worker"]
    per_iter = c.optim.envs_per_worker * c.optim.rollout_len
    assert len(per_worker) == 2 and min(per_worker) > 0 and sum(per_worker) == 3200 // per_iter
    state = torch.load(tmp_path / "job" / "checkpoints" / "last.pt", weights_only=False)["trainer"]
    steps = {float(s["step"]) for s in state["optimizer"]["state"].values()}
    assert steps == {float(sum(per_worker))}, "the shared RMSProp statistics count every worker's update"
    torch.manual_seed(c.seed)
    from si.train.trainer import Trainer

    initial = Trainer(c).model.state_dict()
    assert any(not torch.equal(initial[k], v) for k, v in state["model"].items())
    rows = pd.read_csv(tmp_path / "job" / "metrics.csv")
    assert rows["agent_steps"].tolist() == [800, 1600, 2400, 3200]
    # every worker's episodes are counted: each env of worker w ran updates_w × t_max steps
    ends = sum(n * c.optim.rollout_len // c.env.horizon * c.optim.envs_per_worker for n in per_worker)
    assert rows["episodes"].iloc[-1] == ends


def test_a3c_learns_to_stop_hitting_on_a_small_map(tmp_path):
    run(cfg("budget.agent_steps=12800", "budget.log_every=3200", "budget.checkpoint_every=12800", *FAST_LR),
        tmp_path / "job")
    reward = pd.read_csv(tmp_path / "job" / "metrics.csv")["collective_reward"].tolist()
    assert reward[-1] > reward[0] + 100, reward  # random beams cost −50 per hit; A3C stops firing


def test_a3c_resumes_after_a_kill_with_a_continuous_metrics_table(tmp_path):
    job = tmp_path / "job"
    args = [sys.executable, "launch/main.py", *TINY, "budget.agent_steps=6400", "budget.log_every=640",
            "budget.checkpoint_every=1280", f"hydra.run.dir={job}"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not (job / "checkpoints" / "last.pt").exists():
        assert proc.poll() is None and time.time() - t0 < 300, "no checkpoint before the run ended"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert json.loads((job / "summary.json").read_text())["status"] == "running"
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed at" in done.stderr
    rows = pd.read_csv(job / "metrics.csv")["agent_steps"].tolist()
    assert rows == list(range(640, 6401, 640)), "no duplicated or missing rows"
    assert json.loads((job / "summary.json").read_text())["status"] == "complete"


@pytest.mark.parametrize("overrides, key", [
    (["optim.workers=-1"], "optim.workers"), (["optim.envs_per_worker=0"], "optim.envs_per_worker"),
    (["optim.rollout_len=0"], "optim.rollout_len"), (["device=cuda"], "device")])
def test_bad_a3c_settings_fail_with_one_line(overrides, key):
    with pytest.raises(ConfigError) as err:
        validate(cfg(*overrides))
    assert str(err.value).startswith(key) and "\n" not in str(err.value)
