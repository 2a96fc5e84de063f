"""Sweeps: job names, the local launcher's parallelism, the console view, progress.log, --help."""

from __future__ import annotations

import functools
import json
import os
import pickle
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf

from hydra_plugins.si_launcher.local_pool import LocalPoolLauncher, parallel_jobs, usable_cores
from launch.checks import group_options, hydra_config_of, sweep_job_config, sweep_job_dirs, task_config
from launch.console import SweepConsole, SweepView, last_row
from launch.sweep import MAX_SUFFIX, SweepNames, job_suffix, sweep_jobs, task_overrides, varied_keys
from si.config import register_configs
from si.train.logging import print_progress, progress_log

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
FIXED = ["env.horizon=100", "budget=tiny", "budget.agent_steps=2000", "optim.rollout_len=25", "threads=1"]
register_configs()


@pytest.fixture
def sweep_config():
    """A sweep's config as ``launch/main.py -m`` composes it, after the SweepNames callback."""
    def compose(*overrides: str):
        config = GlobalHydra.instance().hydra.compose_config("config", list(overrides), RunMode.MULTIRUN)
        SweepNames().on_multirun_start(config=config)
        return config

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        yield compose


def test_sweeps_varying_only_env_reward_and_seed_keep_their_job_names(tmp_path, sweep_config):
    """Running and archived jobs are resumed and identified by ``<num>_<env>-<reward>-s<seed>``."""
    config = sweep_config("reward=influence,visible", "env=harvest", "seed=range(2)", *FIXED,
                          f"hydra.sweep.dir={tmp_path}")
    assert [d.name for d in sweep_job_dirs(config)] == [
        "0_harvest-influence-s0", "1_harvest-influence-s1", "2_harvest-visible-s0", "3_harvest-visible-s1"]
    assert not any("run_name" in o for o in task_overrides(config))


def test_swept_keys_other_than_the_seed_join_the_job_name(tmp_path, sweep_config):
    config = sweep_config("reward=influence", "seed=range(0,1)", "reward.beta=0.1,0.2", *FIXED,
                          f"hydra.sweep.dir={tmp_path}")
    names = ["0_harvest-influence-s0_reward.beta=0.1", "1_harvest-influence-s0_reward.beta=0.2"]
    assert [d.name for d in sweep_job_dirs(config)] == names
    loader = GlobalHydra.instance().config_loader()
    job = sweep_job_config(loader, config, sweep_jobs(task_overrides(config))[1], 1)
    with hydra_config_of(job):  # the progress prefix and the W&B run name
        assert OmegaConf.to_container(task_config(job), resolve=True)["run_name"] == names[1][2:]


def test_only_keys_with_several_values_count_as_swept():
    jobs = sweep_jobs(["reward=influence,visible", "seed=range(3)", "optim.lr_init=choice(0.001)", "budget=tiny",
                       "optim=a2c,a3c", "+optim.extra=1,2"])
    assert varied_keys(jobs) == ["optim", "optim.extra"]


def test_job_suffix_is_filesystem_safe_short_and_distinct():
    assert job_suffix("") == ""
    assert job_suffix("reward.beta=0.1") == "_reward.beta=0.1"
    assert job_suffix("env.map_file=/maps/a b.txt") == "_env.map_file=-maps-a-b.txt"
    long_a, long_b = "optim.lr_init=0.001," + "x" * 200, "optim.lr_init=0.001," + "x" * 199 + "y"
    a, b = job_suffix(long_a), job_suffix(long_b)
    assert len(a) == len(b) == MAX_SUFFIX + 1 and a != b
    assert re.fullmatch(r"_[A-Za-z0-9._,=+-]+", a)


def test_local_launcher_runs_one_job_per_usable_core_by_default():
    """README: the local launcher runs as many jobs at once as the machine has cores."""
    assert parallel_jobs(0, 1) == usable_cores() == len(os.sched_getaffinity(0))
    assert parallel_jobs(0, 2) == max(1, usable_cores() // 2)
    assert parallel_jobs(3, 1) == 3
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        config = GlobalHydra.instance().hydra.compose_config("config", ["launcher=local"], RunMode.MULTIRUN)
    launcher = config.hydra.launcher
    assert launcher._target_ == "hydra_plugins.si_launcher.local_pool.LocalPoolLauncher"
    assert launcher.array_parallelism == 0 and launcher.cpus_per_task == 1
    assert "hydra.launcher.array_parallelism" in (ROOT / "README.md").read_text()


class _FakeSubmitit:
    """Stands in for hydra-submitit-launcher's LocalLauncher: each job sleeps; counts overlap."""

    def __init__(self) -> None:
        self.running = self.most = 0
        self.lock = threading.Lock()

    def launch(self, job_overrides, initial_job_idx):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
        return [f"result {initial_job_idx} {job_overrides[0][0]}"]


def test_local_launcher_runs_at_most_array_parallelism_jobs_and_keeps_job_order():
    launcher = LocalPoolLauncher(array_parallelism=2, submitit_folder="unused")
    launcher.submitit = _FakeSubmitit()
    results = launcher.launch([[f"seed={i}"] for i in range(5)], initial_job_idx=10)
    assert results == [f"result {10 + i} seed={i}" for i in range(5)]
    assert launcher.submitit.most == 2


def _job(sweep: Path, name: str, summary: dict | None = None, rows: list[str] = (), started: bool = True) -> Path:
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("[]\n")
    (job / "job_config.yaml").write_text(_job_config())
    if summary is not None:
        (job / "summary.json").write_text(json.dumps(summary))
    if rows:
        (job / "metrics.csv").write_text("agent_steps,episodes,collective_reward,env_steps_per_s\n" + "".join(rows))
    if not started:  # written by an earlier launch
        for path in job.rglob("*"):
            os.utime(path, (time.time() - 100, time.time() - 100))
    return job


@functools.cache
def _job_config() -> str:
    from hydra import compose

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return OmegaConf.to_yaml(compose("config", overrides=FIXED), resolve=True)


def test_console_view_shows_each_job_once_it_changed_and_a_summary(tmp_path):
    sweep = tmp_path / "my_sweep"
    complete = _job(sweep, "0_done", {"status": "complete"}, ["2000,8,3.0,640\n"], started=False)
    running = sweep / "1_running"
    failed = sweep / "2_failed"
    queued = sweep / "3_queued"
    view = SweepView(str(sweep), [complete, running, failed, queued])
    _job(sweep, "1_running", {"status": "running"}, ["400,0,,500\n", "800,2,1.5"])  # last line half-written
    _job(sweep, "2_failed", {"status": "failed", "error": "RuntimeError: boom"})

    lines = view.refresh()
    assert lines[0].startswith(f"Sweep {sweep}: 1 running, 1 complete, 1 failed, 1 queued of 4 jobs")
    assert lines[1:] == [
        "  0_done     complete  steps 2,000/2,000 (100.0%) | env-steps/s 640 | collective 3.0 | ETA 0.0 min",
        "  1_running  running   steps 400/2,000 ( 20.0%) | env-steps/s 500 | no episode finished yet | ETA 0.1 min",
        "  2_failed   failed",
        "  3_queued   queued",
    ]
    assert view.refresh() == [], "nothing changed, nothing printed"
    with (running / "metrics.csv").open("a") as f:
        f.write(",0\n")
    lines = view.refresh()
    assert len(lines) == 2 and lines[1].startswith("  1_running  running   steps 800/2,000 ( 40.0%)")

    summary = view.summary()
    assert summary[:4] == [line for line in view.lines(view.statuses()).values()]
    assert summary[4].startswith(f"Sweep finished: 1 complete, 3 failed of 4 jobs in {sweep} (")
    assert summary[5].startswith(f"  1_running: running; see {running / 'progress.log'}")
    assert summary[6].startswith(f"  2_failed: failed (RuntimeError: boom); see {failed / 'progress.log'}")
    assert summary[7] == "  3_queued: not started"
    assert summary[-1] == f"Next: python -m analysis {sweep} --out results/my_sweep"


def test_last_row_reads_partial_and_missing_tables_as_no_data(tmp_path):
    table = tmp_path / "metrics.csv"
    assert last_row(table) is None
    table.write_text("agent_steps,collective_reward\n")
    assert last_row(table) is None
    table.write_text("agent_steps,collective_reward\n400,1.5\n800")
    assert last_row(table) == {"agent_steps": 400.0, "collective_reward": 1.5}


def test_console_callback_pickles_without_its_thread():
    """Hydra pickles its callbacks into every job."""
    console = pickle.loads(pickle.dumps(SweepConsole(every_s=7)))
    assert console.every_s == 7


def test_progress_lines_go_to_the_progress_log_with_times(tmp_path, capsys):
    log = tmp_path / "progress.log"
    with progress_log(log):
        print_progress("[job] steps 400/2,000")
    print_progress("not logged")
    assert capsys.readouterr().err == "[job] steps 400/2,000\nnot logged\n"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[job\] steps 400/2,000\n", log.read_text())


def test_bench_help_lists_every_command_and_its_options(capsys):
    from si.bench.__main__ import main

    main(["--help"])
    text = capsys.readouterr().out
    for command, options in {"env": ["--envs", "--batch", "--compile", "--baseline-sps"],
                             "train": ["--rewards", "--num-envs", "--compile"],
                             "a3c": ["--workers", "--steps"]}.items():
        assert f"usage: python -m si.bench {command}" in text
        assert all(option in text for option in options), command
    for command in re.findall(r"python -m si\.bench (\w+)( --\w+)?", (ROOT / "README.md").read_text()):
        assert f"usage: python -m si.bench {command[0]}" in text and command[1].strip() in text


def test_launcher_help_lists_every_group_option():
    """``python launch/main.py --help`` names every option of every config group (optim=a3c too)."""
    proc = subprocess.run([sys.executable, "launch/main.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    listed = proc.stdout.split("Groups you set")[1].split("The paper's Tables")[0]
    for group, options in group_options().items():
        if group not in ("paper", "hydra"):  # paper: picked from env × reward; hydra: Hydra's own groups
            assert f"{group}:" in listed and all(re.search(rf"\b{o}\b", listed) for o in options), group
    assert re.search(r"optim:\s+a2c .*a3c", " ".join(listed.split()))
