"""End to end: launch/main.py single runs and sweeps, W&B offline files, resume after a kill."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from si.train.logging import run_id
from wandb_records import history, records, run_files

ROOT = Path(__file__).resolve().parents[1]
# Small but real: the full Harvest map, 100-step episodes, 4 envs, 2,000 agent steps.
FAST = ["env.horizon=100", "budget=tiny", "budget.agent_steps=2000", "budget.log_every=400",
        "budget.checkpoint_every=400", "optim.rollout_len=25", "model.lstm_size=32", "threads=1"]
TIMING = ["env_steps_per_s", "agent_actions_per_s", "wall_time_s"]


def launch(*args: str, timeout: int = 300, env: dict | None = None, wait: bool = True):
    cmd = [sys.executable, "launch/main.py", *args]
    full_env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def metrics(job: Path) -> pd.DataFrame:
    return pd.read_csv(job / "metrics.csv")


def test_single_run_writes_job_folder_contract_and_wandb_offline(tmp_path):
    job = tmp_path / "run"
    proc = launch("reward=influence", "env=harvest", *FAST, "logger.video_every=2", "logger.video_steps=5",
                  f"hydra.run.dir={job}")
    cfg = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
    assert cfg["env"]["name"] == "harvest" and cfg["reward"]["name"] == "influence"
    assert cfg["run_name"] == "harvest-influence-s0", "config.yaml must be resolved"
    df = metrics(job)
    assert list(df["agent_steps"]) == [400, 800, 1200, 1600, 2000]
    for col in ("collective_reward", "gini", "equality_weighted_reward", "influence_mean", "influence_0_3",
                "reward_agent_4", "apples_agent_4", "fires", "hits", "env_steps_per_s", "agent_actions_per_s",
                "beta", "lr"):
        assert col in df.columns, col
    assert df["collective_reward"].notna().all()
    assert (df["beta"].diff().dropna() >= 0).all(), "β ramps up over the curriculum"
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["agent_steps"] == 2000
    assert (job / "checkpoints" / "last.pt").exists()
    offline = list((job / "wandb").glob("offline-run-*"))
    assert offline and any(offline[0].glob("*.wandb")), "W&B offline run files must be written"
    assert offline[0].name.endswith(run_id(job)), "the W&B id is derived from the job so requeues resume it"
    rows = history(run_files(job)[0])
    run = next(r.run for r in records(run_files(job)[0]) if r.WhichOneof("record_type") == "run")
    assert f"commit:{summary['commit'][:12]}" in run.tags, "the W&B run names the code it ran"
    videos = [r["_step"] for r in rows if "media/video" in r]
    assert videos == [1200, 2000], "a video recorded after rows 2 and 4 is logged with the next row"
    assert all(r["media/video"]["_type"] == "video-file" for r in rows if "media/video" in r)
    assert {"charts/collective_reward", "losses/loss_value", "perf/env_steps_per_s"} <= set(rows[-1]), "W&B sections"
    assert len(list(offline[0].rglob("files/media/videos/**/*.gif"))) == 2
    assert sorted(p.name for p in (job / "videos").glob("*.gif")) == ["steps_1200.gif", "steps_2000.gif"]
    from analysis.runs import load_run

    assert summary["wandb_group"] == f"harvest-influence-{load_run(job).setting_id}", "one setting id in W&B and reports"
    assert "env-steps/s" in proc.stderr and "ETA" in proc.stderr
    lines = proc.stderr.splitlines()
    folder = [i for i, line in enumerate(lines) if line.startswith(f"Job folder: {job}")]
    progress = [i for i, line in enumerate(lines) if "ETA" in line]
    assert len(folder) == 2 and folder[0] < progress[0] and progress[-1] < folder[1], "the job folder at start and end"
    assert lines[folder[1]] == f"Job folder: {job} (complete, 2,000 agent steps)"


def test_used_by_sweep_runs_every_job_through_submitit_local(tmp_path):
    sweep = tmp_path / "sweep"
    launch("-m", "reward=influence,visible", "env=harvest", "seed=range(2)", *FAST, "logger=none",
           f"hydra.sweep.dir={sweep}", timeout=600)
    jobs = sorted(p.parent for p in sweep.glob("*/summary.json"))
    assert [j.name for j in jobs] == ["0_harvest-influence-s0", "1_harvest-influence-s1", "2_harvest-visible-s0", "3_harvest-visible-s1"]
    for job in jobs:
        assert json.loads((job / "summary.json").read_text())["status"] == "complete"
        assert len(metrics(job)) == 5
    assert not (sweep / ".submitit" / "%j").exists(), "no empty submitit template folder"
    a, b = metrics(jobs[0]), metrics(jobs[1])
    assert not a["collective_reward"].equals(b["collective_reward"]), "seeds must differ"
    # analysis reads the real sweep folders
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "analysis", str(sweep), "--out", str(out),
                           "--keep-harvest-failures"], cwd=ROOT,  # 2,000-step agents may collect ≤ 5 apples
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (out / "report.md").read_text()
    assert "4" in report and "harvest" in report
    figures = list((out / "figures").glob("*.png"))
    assert figures and all(f.stat().st_size > 1000 for f in figures)


def test_sweep_console_shows_each_job_and_a_closing_summary(tmp_path):
    """README, "Watching a sweep" and "Job names": a 2-job sweep over reward.beta prints the view
    while it runs, a line per job and the summary at its end; each job's name carries its β, and
    its progress lines are in its progress.log."""
    sweep = tmp_path / "sweep"
    proc = launch("-m", "reward=influence", "env=harvest", "seed=range(1)", "reward.beta=0.1,0.2", *FAST, "logger=none",
                  "hydra.callbacks.sweep_console.every_s=1", f"hydra.sweep.dir={sweep}", timeout=600)
    names = ["0_harvest-influence-s0_reward.beta=0.1", "1_harvest-influence-s0_reward.beta=0.2"]
    assert sorted(p.name for p in sweep.glob("*_harvest-*")) == names
    lines = proc.stderr.splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("Sweep finished"))
    assert any(line.startswith(f"Sweep {sweep}: ") for line in lines[:end]), "the view while the jobs run"
    for name, line in zip(names, lines[end - 2:end]):
        assert re.fullmatch(rf"  {re.escape(name)}  complete  steps 2,000/2,000 \(100\.0%\) \| env-steps/s [\d,]+ \| "
                            rf"collective .* \| ETA 0\.0 min", line), line
    assert lines[end].startswith(f"Sweep finished: 2 complete, 0 failed of 2 jobs in {sweep} (")
    assert lines[end + 1:] == [f"Next: python -m analysis {sweep} --out results/sweep"]
    for name in names:
        run_name = name.split("_", 1)[1]
        assert json.loads((sweep / name / "summary.json").read_text())["run_name"] == run_name
        progress = (sweep / name / "progress.log").read_text().splitlines()
        assert f" [{run_name}] steps 2,000/2,000 (100.0%)" in progress[-1]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, f"run ended before {path.name} appeared: {proc.stdout.read()[-3000:]}"
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


RESUME_ARGS = ["reward=moa_influence", "env=harvest", *FAST, "logger=none"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> pd.DataFrame:
    ref = tmp_path_factory.mktemp("ref") / "job"
    launch(*RESUME_ARGS, f"hydra.run.dir={ref}")
    return metrics(ref)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGUSR2])
def test_resume_after_kill_equals_uninterrupted_run(tmp_path, sig, uninterrupted):
    job = tmp_path / "job"
    proc = launch(*RESUME_ARGS, f"hydra.run.dir={job}", wait=False)
    _wait_for(job / "checkpoints" / "last.pt", proc)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    status = json.loads((job / "summary.json").read_text())["status"]
    if sig != signal.SIGKILL:  # preemption signals: checkpoint at the next iteration, then exit
        assert proc.returncode != 0 and status == "preempted"
    assert status != "complete", "the run must have been interrupted"
    launch(*RESUME_ARGS, f"hydra.run.dir={job}")
    got = metrics(job)
    assert list(got["agent_steps"]) == list(uninterrupted["agent_steps"]), "no duplicated or missing rows"
    pd.testing.assert_frame_equal(got.drop(columns=TIMING), uninterrupted.drop(columns=TIMING))
    assert json.loads((job / "summary.json").read_text())["status"] == "complete"


def test_wandb_history_after_sigkill_holds_every_metrics_row(tmp_path):
    """Rows W&B had not flushed when the job was killed are logged again from metrics.csv."""
    job = tmp_path / "job"
    args = ["reward=extrinsic", "env=harvest", *FAST, f"hydra.run.dir={job}"]
    proc = launch(*args, wait=False)
    _wait_for(job / "checkpoints" / "last.pt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=120)
    launch(*args)
    files = run_files(job)  # the killed process's file may be missing or cut short
    rows = {r["_step"]: r for r in history(files[-1])}
    df = metrics(job)
    assert sorted(rows) == list(df["agent_steps"]), "the newest offline run file holds the whole history"
    for _, row in df.iterrows():
        assert rows[int(row["agent_steps"])]["charts/collective_reward"] == pytest.approx(row["collective_reward"])


def test_console_commands_run_from_any_folder_and_training_never_imports_analysis(tmp_path):
    """`si-train`, `si-analysis`, `si-bench` (pyproject.toml) are the documented commands, and
    launching imports nothing from `analysis` (layers point one way)."""
    from importlib.metadata import entry_points

    commands = {ep.name: ep.value for ep in entry_points(group="console_scripts") if ep.name.startswith("si-")}
    assert commands == {"si-train": "launch.main:cli", "si-analysis": "analysis.__main__:cli",
                        "si-bench": "si.bench.__main__:cli"}
    code = ("import sys; from launch.main import cli; sys.argv = ['si-train', '--help']\n"
            "try:\n    cli()\nexcept SystemExit:\n    pass\n"
            "assert not [m for m in sys.modules if m.split('.')[0] == 'analysis'], 'launch imported analysis'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "python launch/main.py -m reward=influence,visible" in proc.stdout, proc.stderr
