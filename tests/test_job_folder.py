"""A job folder is never silently wrong: config drift, kills before the first checkpoint or while
one is committed, corrupt checkpoints, metrics and summaries, torn rows, divergence, two writers,
checks before launch (docs/design.md)."""

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import si.train.jobdir as jobdir
import si.train.run as run_module
from analysis.runs import load_run
from si.config import ConfigError, register_configs, validate
from si.train.jobdir import JobFolderError, JobLock
from si.train.logging import MetricsTable
from si.train.run import run
from si.train.interval_metrics import Accumulator
from si.train.trainer import DivergenceError
from rename_kill import checkpoint_renames
from test_analysis import make_fake_job, make_metrics

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
TIMING = ["env_steps_per_s", "agent_actions_per_s", "wall_time_s"]
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
    records = [json.loads(line) for line in (job / "config_changes.jsonl").read_text().splitlines()]
    changes = records[-1]["changes"]
    assert changes["optim.lr_init"][1] == 0.01 and changes["budget.agent_steps"] == [400, 1000]
    assert records[-1]["agent_steps"] == 400  # the step from which the new values were used
    assert yaml.safe_load((job / "job_config.yaml").read_text())["optim"]["lr_init"] == 0.01
    assert load_run(job).retrained == [f"optim.lr_init {cfg().optim.lr_init!r} -> 0.01 from agent step 400"]


def test_a_finished_job_keeps_the_config_it_was_trained_with(tmp_path, capsys):
    """allow_config_change=true on a finished job: nothing to do, nothing relabelled."""
    job = tmp_path / "job"
    run(cfg("reward=influence"), job)
    trained = (job / "job_config.yaml").read_text()
    (job / ".hydra" / "config.yaml").write_text("reward: {beta: 9.0}\n")  # as Hydra writes the rerun's values
    summary = run(cfg("reward=influence", "reward.beta=9", "allow_config_change=true"), job)
    assert summary["status"] == "complete" and "already complete, nothing to do" in capsys.readouterr().err
    assert (job / "job_config.yaml").read_text() == trained == (job / ".hydra" / "config.yaml").read_text()
    assert not (job / "config_changes.jsonl").exists() and load_run(job).retrained == []


def test_analysis_keeps_a_retrained_run_out_of_its_tables_unless_asked(tmp_path):
    from analysis.report import Options, used

    job = make_fake_job(tmp_path / "job", "cleanup", "influence", 0, make_metrics(steps=6))
    (job / "config_changes.jsonl").write_text(json.dumps(
        {"time": "t", "agent_steps": 30, "changes": {"reward.beta": [0.224, 9.0], "threads": [1, 2]}}) + "\n")
    retrained = load_run(job)
    assert retrained.status == "complete" and retrained.retrained == ["reward.beta 0.224 -> 9.0 from agent step 30"]
    assert not used(retrained, Options()) and used(retrained, Options(include_retrained=True))
    (job / "config_changes.jsonl").write_text(json.dumps(
        {"time": "t", "agent_steps": 30, "changes": {"budget.agent_steps": [30, 60]}}) + "\n")
    assert used(load_run(job), Options())  # a longer run is the same training


def test_extending_the_budget_just_works_and_continues_the_table(tmp_path):
    job = tmp_path / "job"
    run(cfg("budget.agent_steps=400"), job)
    summary = run(cfg(), job)
    assert summary["status"] == "complete" and summary["agent_steps"] == 1000
    assert steps(job) == [200, 400, 600, 800, 1000]
    assert "budget.agent_steps" in (job / "config_changes.jsonl").read_text()


def untimed(job: Path) -> pd.DataFrame:
    """The job's metrics without the timing columns (the only ones a resume may change)."""
    return pd.read_csv(job / "metrics.csv").drop(columns=TIMING)


def test_kill_before_the_first_checkpoint_restarts_from_scratch(tmp_path):
    job = tmp_path / "job"
    run(cfg(), job)
    reference = untimed(job)
    for f in (job / "checkpoints").iterdir():  # as if killed after logging rows, before checkpointing
        f.unlink()
    (job / "summary.json").write_text(json.dumps({"status": "running"}))
    assert run(cfg(), job)["status"] == "complete"
    pd.testing.assert_frame_equal(untimed(job), reference)


THREE_CHECKPOINTS = ["budget.agent_steps=600", "budget.checkpoint_every=200"]  # at 200, 400 and 600


def test_a_kill_at_any_rename_of_a_checkpoint_resumes_to_the_uninterrupted_metrics(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(OmegaConf.to_yaml(cfg(*THREE_CHECKPOINTS)))
    with checkpoint_renames() as count:
        run(cfg(*THREE_CHECKPOINTS), tmp_path / "reference")
    assert count[0] >= 5, "three checkpoint cycles"
    fallbacks = 0
    for kill_at in range(1, count[0] + 1):
        job = tmp_path / f"killed_at_{kill_at}"
        killed = subprocess.run([sys.executable, "rename_kill.py", str(config), str(job), str(kill_at)],
                                cwd=Path(__file__).parent, env={**os.environ, "PYTHONPATH": str(REPO)},
                                capture_output=True, text=True)
        assert killed.returncode == -9, killed.stderr
        capsys.readouterr()
        assert run(cfg(*THREE_CHECKPOINTS), job)["status"] == "complete", kill_at
        pd.testing.assert_frame_equal(untimed(job), untimed(tmp_path / "reference"), obj=f"killed at rename {kill_at}")
        err = capsys.readouterr().err
        assert err.count("checkpoints/") <= 1, err  # at most one line about a checkpoint it could not use
        fallbacks += "last.pt: missing" in err
    assert fallbacks, "a kill between moving last.pt to prev.pt and committing the new checkpoint"


def test_checkpoints_hold_plain_tensors_and_numbers(tmp_path):
    job = tmp_path / "job"
    run(cfg("budget.agent_steps=400", "budget.checkpoint_every=200"), job)
    for name in ("last.pt", "prev.pt"):
        state = torch.load(job / "checkpoints" / name, weights_only=True)
        assert state["trainer"]["iteration"] == (4 if name == "last.pt" else 2)


def test_a_checkpoint_written_while_its_tensors_change_still_verifies(tmp_path, monkeypatch):
    """A3C workers go on updating the shared parameters while the learner checkpoints them: an
    update between computing the digest and writing the bytes must not make the file fail its
    own checksum (the checkpoint holds the values the digest was computed from)."""
    params = torch.zeros(4)
    digest = jobdir.state_digest

    def digest_then_update(state):
        value = digest(state)
        params.add_(1.0)  # a worker's update lands here
        return value

    monkeypatch.setattr(jobdir, "state_digest", digest_then_update)
    jobdir.save_checkpoint({"trainer": {"params": params, "iteration": 3}}, tmp_path)
    state = jobdir.load_checkpoint(tmp_path, torch.device("cpu"))
    assert state["trainer"]["iteration"] == 3 and torch.equal(state["trainer"]["params"], torch.zeros(4))


def test_a_checkpoint_from_before_checksums_were_stored_inside_still_resumes(tmp_path):
    job = tmp_path / "job"
    run(cfg("budget.agent_steps=800"), job)
    for name in ("last.pt", "prev.pt"):  # as written before: Accumulator objects, a .sha256 file beside
        path = job / "checkpoints" / name
        state = torch.load(path, weights_only=True)
        del state["sha256"]
        state["trainer"]["acc"] = Accumulator(**state["trainer"]["acc"])
        torch.save(state, path)
        path.with_name(name + ".sha256").write_text(hashlib.sha256(path.read_bytes()).hexdigest())
    summary = run(cfg(), job)
    assert summary["status"] == "complete" and steps(job) == [200, 400, 600, 800, 1000]
    assert sorted(p.name for p in (job / "checkpoints").iterdir()) == ["last.pt", "last.pt.sha256", "prev.pt"]
    torch.load(job / "checkpoints" / "last.pt", weights_only=True)


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
    reason = "checksum mismatch" if damage == "zero_weights" else "unreadable"
    assert f"{last}: {reason}" in capsys.readouterr().err
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


@pytest.mark.parametrize("column, line", [("loss_value", 3), ("agent_steps", 3), ("agent_steps", 5)])
def test_values_analysis_rejects_stop_the_resume_and_the_file_is_kept(tmp_path, column, line):
    job = tmp_path / "job"
    run(cfg("budget.agent_steps=800"), job)  # rows 200…800 on lines 2–5, checkpoint at 800
    lines = (job / "metrics.csv").read_bytes().split(b"\r\n")
    cells = lines[line - 1].split(b",")
    cells[lines[0].split(b",").index(column.encode())] = b"1e30"
    lines[line - 1] = b",".join(cells)
    damaged = b"\r\n".join(lines)
    (job / "metrics.csv").write_bytes(damaged)
    (job / "summary.json").write_text(json.dumps({"status": "running"}))
    problem = f"line {line}, {column}: 1e30 is not a plausible value"
    with pytest.raises(JobFolderError, match=f"metrics.csv: {problem}"):
        run(cfg(), job)
    assert (job / "metrics.csv").read_bytes() == damaged
    assert any(problem in p for p in load_run(job).problems), "analysis rejects it for the same reason"


def test_a_row_shifted_by_one_column_stops_the_resume_and_analysis_rejects_it(tmp_path):
    """Same cell count, every value one column to the left: agent_steps then holds the episode
    count, which does not increase."""
    job = tmp_path / "job"
    run(cfg("budget.agent_steps=800"), job)
    lines = (job / "metrics.csv").read_bytes().split(b"\r\n")
    cells = lines[2].split(b",")
    lines[2] = b",".join([*cells[1:], b""])  # line 3, agent_steps 400
    damaged = b"\r\n".join(lines)
    (job / "metrics.csv").write_bytes(damaged)
    (job / "summary.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(JobFolderError, match=r"metrics.csv: line 3: agent_steps \S+ does not increase \(previous 200\)"):
        run(cfg(), job)
    assert (job / "metrics.csv").read_bytes() == damaged
    assert any("line 3: agent_steps" in p and "does not increase" in p for p in load_run(job).problems)


def test_a_torn_row_after_the_last_checkpoint_is_dropped_on_resume(tmp_path):
    job = tmp_path / "job"
    run(cfg("budget.agent_steps=800"), job)
    last = (job / "metrics.csv").read_text().splitlines()[-1].split(",")
    with (job / "metrics.csv").open("a", newline="") as f:  # a row logged after the checkpoint, then a
        f.write(",".join(["1000", *last[1:]]) + "\r\n" + ",".join(["1200", *last[1:4]]))  # full disk
    (job / "summary.json").write_text(json.dumps({"status": "failed"}))
    assert run(cfg(), job)["status"] == "complete"
    assert steps(job) == [200, 400, 600, 800, 1000] and (job / "metrics.csv").read_text().endswith("\n")


def _full_disk(path: object) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


@pytest.mark.parametrize("where", ["metrics row", "checkpoint"])
def test_a_full_disk_ends_in_one_line_and_the_job_resumes_once_space_is_freed(tmp_path, monkeypatch, where):
    """The disk fills up during the third metrics append (half a row written) or the second
    checkpoint write (half a file written): one line, no temporary file left, and the rerun
    reproduces an uninterrupted run."""
    reference, job = tmp_path / "reference", tmp_path / "job"
    run(cfg(), reference)
    calls = [0]
    if where == "metrics row":
        real_append = MetricsTable.append

        def append(self, row):
            calls[0] += 1
            if calls[0] == 3:
                with self.path.open("a") as f:
                    f.write("600,3,-1")
                raise _full_disk(self.path)
            real_append(self, row)
        monkeypatch.setattr(MetricsTable, "append", append)
    else:
        real_save = jobdir.torch.save

        def save(obj, f):
            calls[0] += 1
            if calls[0] == 2:
                f.write(b"half a checkpoint")
                raise _full_disk(f.name)
            real_save(obj, f)
        monkeypatch.setattr(jobdir.torch, "save", save)
    with pytest.raises(JobFolderError) as refused:
        run(cfg(), job)
    line = str(refused.value)
    assert "\n" not in line and "(the disk is full); free space" in line and "resumes from its last checkpoint" in line
    assert not list(job.rglob("*.tmp"))
    monkeypatch.undo()
    assert run(cfg(), job)["status"] == "complete"
    pd.testing.assert_frame_equal(untimed(job), untimed(reference))


def test_an_unwritable_job_folder_is_refused_before_launch_in_one_line(tmp_path):
    from launch.checks import check_job_folder

    (tmp_path / "runs").write_text("a file where a folder should be")
    with pytest.raises(JobFolderError, match=r"runs/job: cannot write .*a path component is a file, not a folder"):
        check_job_folder(cfg(), tmp_path / "runs" / "job")
    check_job_folder(cfg(), tmp_path / "new" / "job")  # not there yet, but its parent is writable


def test_a_corrupt_summary_stops_the_resume_naming_the_file(tmp_path):
    job = tmp_path / "job"
    run(cfg("budget.agent_steps=400"), job)
    (job / "summary.json").write_text('{"status": "runn')
    with pytest.raises(JobFolderError, match=r"summary.json: not valid JSON .*; delete it and rerun"):
        run(cfg(), job)
    (job / "summary.json").unlink()
    assert run(cfg(), job)["status"] == "complete" and steps(job) == [200, 400, 600, 800, 1000]


def test_analysis_counts_a_torn_last_row_as_not_written(tmp_path):
    """A complete summary at 60 steps, the row at 60 cut by a kill: all its cells there but the
    last one cut short, or fewer cells; the run is listed, and no table uses the fragment."""
    for cut in (4, 25):  # the last line becomes "60.0,5,10.0,…,10.0,5" or "60.0,5,10.0,"
        job = make_fake_job(tmp_path / f"cut{cut}", "cleanup", "extrinsic", 0, make_metrics(steps=6))
        text = (job / "metrics.csv").read_text()
        (job / "metrics.csv").write_text(text[:-cut])
        run_ = load_run(job)
        assert run_.metrics["agent_steps"].tolist() == [10.0, 20.0, 30.0, 40.0, 50.0]
        assert run_.status == "partial"
        assert "metrics end at 50 agent steps, summary.json says complete at 60" in run_.problems


def test_divergence_stops_the_run_and_marks_it(tmp_path, capsys):
    job = tmp_path / "job"
    with pytest.raises(DivergenceError):
        run(cfg("optim.lr_init=1e30", "optim.lr_end=1e30"), job)
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "diverged" and "non-finite" in summary["error"]
    err = capsys.readouterr().err
    assert "no checkpoint had been written" in err and "last good checkpoint" not in err


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
