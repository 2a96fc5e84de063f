"""Real SLURM: start a single-node cluster and run the used-by sweep through submitit_slurm.

The module-scoped fixture runs ``scripts/slurm/setup_single_node.sh`` (installs slurm-wlm and
munge with apt-get when missing, writes slurm.conf, starts munged/slurmctld/slurmd and waits for
the node to be idle).  If the cluster cannot be installed or started, every test here is
*skipped* with the script's error message -- never silently passed.

Run just these tests with ``pytest -m slurm``; see docs/slurm.md.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[1]
SETUP = REPO / "scripts" / "slurm" / "setup_single_node.sh"
MAIN = REPO / "launch" / "main.py"

# Cold install (apt-get download + unpack) takes ~15 s on the CI machine; allow for slow mirrors.
SETUP_TIMEOUT_S = 600
SWEEP_TIMEOUT_S = 300


def _run(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _node_ready() -> bool:
    """True when an already-running cluster has a usable node (for non-root developers)."""
    if shutil.which("sinfo") is None:
        return False
    try:
        out = _run(["sinfo", "-h", "-o", "%T"]).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return False
    return any(s.rstrip("*~#") in {"idle", "mixed", "allocated", "completing"} for s in out)


def _default_partition() -> str | None:
    out = _run(["sinfo", "-h", "-o", "%P"]).stdout.split()
    for p in out:
        if p.endswith("*"):
            return p[:-1]
    return out[0] if out else None


@pytest.fixture(scope="module")
def slurm_cluster() -> dict:
    """Install/start the single-node cluster (idempotent) or skip the module with the reason."""
    if os.geteuid() != 0:
        if _node_ready():
            return {"partition": _default_partition(), "setup_s": 0.0}
        pytest.skip(
            "SLURM tests need root to install and start a single-node cluster "
            f"({SETUP.relative_to(REPO)}), and no running cluster was found"
        )
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            ["bash", str(SETUP)], capture_output=True, text=True, timeout=SETUP_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as e:
        pytest.skip(f"SLURM setup timed out after {SETUP_TIMEOUT_S}s:\n{e.stdout or ''}{e.stderr or ''}")
    elapsed = time.monotonic() - t0
    sys.stderr.write(proc.stdout)
    if proc.returncode != 0:
        pytest.skip(
            f"could not install/start a single-node SLURM cluster (exit {proc.returncode}):\n"
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )
    partition = _default_partition()
    assert partition, "setup succeeded but sinfo shows no partition"
    return {"partition": partition, "setup_s": elapsed}


def _cancel_jobs_under(folder: Path) -> None:
    """Cancel jobs whose batch script lives under ``folder`` (left over after a timeout)."""
    try:
        out = _run(["squeue", "-h", "-o", "%i|%o"]).stdout
    except (OSError, subprocess.SubprocessError):
        return
    ids = [ln.split("|", 1)[0] for ln in out.splitlines() if str(folder) in ln]
    if ids:
        _run(["scancel", *ids])


def _submitit_logs(folder: Path, limit: int = 4000) -> str:
    parts = []
    for f in sorted(folder.rglob("*_log.err"))[:4]:
        parts.append(f"---- {f} ----\n{f.read_text(errors='replace')[-limit:]}")
    return "\n".join(parts)


def test_submitit_runs_python_function_on_slurm(slurm_cluster, tmp_path):
    submitit = pytest.importorskip("submitit")

    # A nested function is pickled by value (cloudpickle), so the job does not need to import
    # this test module.
    def where_am_i(x: int) -> dict:
        import os
        import socket

        return {"value": x * 2, "job_id": os.environ.get("SLURM_JOB_ID"), "host": socket.gethostname()}

    folder = tmp_path / "submitit"
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    assert executor.cluster == "slurm"
    executor.update_parameters(timeout_min=2, cpus_per_task=1, mem_gb=1, name="submitit-smoke")
    job = executor.submit(where_am_i, 21)
    # Without accounting (no sacct) submitit only notices a finished job by its result file, so a
    # job killed hard would make job.result() wait forever: bound the wait ourselves.
    deadline = time.monotonic() + 120
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.5)
    if not job.done():
        queue = _run(["squeue", "-o", "%i %j %T %R"]).stdout
        _cancel_jobs_under(folder)
        pytest.fail(f"submitit job {job.job_id} did not finish in 120s\nsqueue:\n{queue}\n{_submitit_logs(folder)}")
    try:
        result = job.result()
    except Exception as e:  # diagnostics only
        pytest.fail(f"submitit job failed: {e}\n{_submitit_logs(folder)}")
    assert result["value"] == 42
    assert result["job_id"] == str(job.job_id)
    assert result["host"]


@pytest.mark.skipif(not MAIN.exists(), reason="launch/main.py not written yet")
def test_used_by_sweep_through_submitit_slurm(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "launch/main.py",
        "-m",
        "reward=influence,visible",
        "env=harvest",
        "seed=range(2)",
        "launcher=slurm",
        "budget=tiny",
        "logger=none",
        f"hydra.sweep.dir={sweep}",
        # keep CI quick on the 2-CPU node: 100-step episodes, 1 CPU per job so jobs run side by side
        "env.horizon=100",
        "budget.agent_steps=2000",
        "hydra.launcher.cpus_per_task=1",
    ]
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        queue = _run(["squeue", "-o", "%i %j %T %R"]).stdout
        _cancel_jobs_under(sweep)
        pytest.fail(
            f"sweep did not finish in {SWEEP_TIMEOUT_S}s\nsqueue:\n{queue}\n"
            f"stdout:\n{e.stdout}\nstderr:\n{e.stderr}\n{_submitit_logs(sweep)}"
        )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}\n"
        f"{_submitit_logs(sweep)}"
    )

    # Every job's own Hydra output dir (skip submitit's bookkeeping under .submitit/).
    summaries = sorted(
        p for p in sweep.rglob("summary.json") if not any(part.startswith(".") for part in p.relative_to(sweep).parts)
    )
    job_dirs = {p.parent for p in summaries}
    assert len(job_dirs) == 4, (
        f"expected 4 job directories with summary.json under {sweep}, found {sorted(map(str, job_dirs))}\n"
        f"{_submitit_logs(sweep)}"
    )
    for job_dir in sorted(job_dirs):
        summary = json.loads((job_dir / "summary.json").read_text())
        assert summary.get("status") == "complete", f"{job_dir}: summary status {summary.get('status')!r}"
        metrics = job_dir / "metrics.csv"
        assert metrics.is_file(), f"{job_dir}: no metrics.csv"
        with metrics.open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert rows, f"{metrics} has no rows"
        assert "agent_steps" in rows[0], f"{metrics} has no agent_steps column: {list(rows[0])}"


# Preemption/requeue test: one job, long enough (about 20 s of training on the busy 2-CPU CI node)
# that the signal lands well before the end, with a metrics row and a checkpoint every 400 steps.
REQUEUE_STEPS = 8000
REQUEUE_EVERY = 400
REQUEUE_TIMEOUT_S = 240


def _job_info(job_id: str) -> dict[str, str]:
    """``scontrol show job -o`` as a dict (JobState, Reason, Restarts, ...); {} when unknown."""
    out = _run(["scontrol", "show", "job", "-o", job_id]).stdout.strip().splitlines()
    return dict(kv.split("=", 1) for kv in out[0].split() if "=" in kv) if out else {}


@pytest.mark.skipif(not MAIN.exists(), reason="launch/main.py not written yet")
def test_preempted_job_is_requeued_and_resumes_from_its_checkpoint(slurm_cluster, tmp_path):
    """USR2 (what SLURM sends before a time limit or on preemption) -> checkpoint -> submitit
    ``scontrol requeue`` -> the same Hydra job starts again in the same job dir and resumes."""
    sweep = tmp_path / "sweep"
    job_dir = sweep / "0_harvest-moa_influence-s0"
    cmd = [
        sys.executable, "launch/main.py", "-m",
        "reward=moa_influence", "env=harvest", "seed=0",
        "launcher=slurm", "budget=tiny", "logger=none",
        "env.horizon=100", f"budget.agent_steps={REQUEUE_STEPS}",
        f"budget.log_every={REQUEUE_EVERY}", f"budget.checkpoint_every={REQUEUE_EVERY}",
        "optim.rollout_len=25", "threads=1",
        "hydra.launcher.cpus_per_task=1", "hydra.launcher.max_num_timeout=3",
        f"hydra.sweep.dir={sweep}",
    ]
    out_path, err_path = tmp_path / "launcher.out", tmp_path / "launcher.err"
    t0 = time.monotonic()
    deadline = t0 + REQUEUE_TIMEOUT_S
    timings: dict[str, float] = {}
    with out_path.open("w") as out_f, err_path.open("w") as err_f:
        launcher = subprocess.Popen(cmd, cwd=REPO, stdout=out_f, stderr=err_f, text=True)

    def diagnostics() -> str:
        queue = _run(["squeue", "-o", "%i %j %T %r"]).stdout
        return (
            f"timings {timings}\nsqueue:\n{queue}\nlauncher stdout:\n{out_path.read_text()[-3000:]}\n"
            f"launcher stderr:\n{err_path.read_text()[-3000:]}\n{_submitit_logs(sweep)}"
        )

    def wait_for(what: str, cond, poll: float = 0.2):
        while time.monotonic() < deadline:
            value = cond()
            if value:
                timings[what] = round(time.monotonic() - t0, 1)
                return value
            if launcher.poll() is not None and what != "launcher exit":
                pytest.fail(f"launcher exited ({launcher.returncode}) while waiting for {what}\n{diagnostics()}")
            time.sleep(poll)
        pytest.fail(f"timed out after {REQUEUE_TIMEOUT_S}s waiting for {what}\n{diagnostics()}")

    def summary_status() -> str | None:
        try:
            return json.loads((job_dir / "summary.json").read_text()).get("status")
        except (OSError, ValueError):
            return None

    try:
        # 1. the job is running and has written its first checkpoint
        wait_for("first checkpoint", lambda: (job_dir / "checkpoints" / "last.pt").exists())
        subdirs = [p.name for p in (sweep / ".submitit").iterdir() if p.is_dir() and p.name[0].isdigit()]
        assert len(subdirs) == 1, f"expected one submitit job folder, found {subdirs}"
        job_id = subdirs[0]  # "123" for a single job, "123_0" for an array task; squeue/scancel take both
        info = _job_info(job_id)
        assert info.get("JobState") == "RUNNING" and info.get("Restarts") == "0", (
            f"job {job_id} after its first checkpoint: {info}\n{diagnostics()}"
        )
        assert summary_status() == "running"

        # 2. preempt it the way SLURM does: USR2 to the job's steps (the srun-launched python task).
        # Not --batch/--full: the batch shell would die of USR2 and end the job without a requeue.
        res = _run(["scancel", "--signal=USR2", job_id])
        assert res.returncode == 0, f"scancel --signal=USR2 {job_id} failed: {res.stderr}"

        # 3. trainer checkpoints + marks "preempted", submitit runs `scontrol requeue`: job PENDING again
        wait_for("summary preempted", lambda: summary_status() in {"preempted", "complete"})
        assert summary_status() == "preempted", f"job finished before the signal took effect\n{diagnostics()}"
        def requeued() -> dict | None:
            # Restarts counts requeues; the state passes RUNNING/COMPLETING before PENDING.
            i = _job_info(job_id)
            if i.get("Restarts", "0") == "0":
                return None
            if i.get("JobState") not in {"RUNNING", "COMPLETING"}:
                return i
            restarted = sum(
                f.read_text(errors="replace").count("Starting with JobEnvironment")
                for f in (sweep / ".submitit").rglob("*_log.err")
            )
            return i if restarted >= 2 else None  # already running again (short cred_expire)

        info = wait_for("requeued", requeued)
        # A requeued job may not start before cred_expire (AuthInfo, default 120 s) has passed
        # (PENDING, Reason=BeginTime).  Move that begin time closer so the test stays short, but
        # not to `now`: slurmd revokes the old credential with a whole-second timestamp and kills
        # a restart whose new credential carries the same second ("Job credential revoked").
        if info.get("JobState") == "PENDING" and info.get("Reason") == "BeginTime":
            res = _run(["scontrol", "update", f"JobId={job_id}", "StartTime=now+3"])
            assert res.returncode == 0, f"could not release requeued job {job_id}: {res.stderr}"

        # 4. the requeued job resumes and finishes; the launcher gets the result and exits 0
        wait_for("launcher exit", lambda: launcher.poll() is not None, poll=0.5)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        _cancel_jobs_under(sweep)
    sys.stderr.write(f"requeue test timings (s since launch): {timings}\n")

    assert launcher.returncode == 0, f"launcher exit {launcher.returncode}\n{diagnostics()}"
    summary = json.loads((job_dir / "summary.json").read_text())
    assert summary.get("status") == "complete", f"summary {summary}"
    assert summary.get("agent_steps") == REQUEUE_STEPS

    logs = "\n".join(p.read_text(errors="replace") for p in sorted((sweep / ".submitit").rglob("*_log.*")))
    assert f"Requeued job {job_id}" in logs, f"submitit did not requeue\n{diagnostics()}"
    assert logs.count("Starting with JobEnvironment") == 2, f"expected 2 starts of job {job_id}\n{diagnostics()}"
    saved = re.findall(r"checkpoint saved at ([\d,]+) agent steps", logs)
    resumed = re.findall(r"resumed at ([\d,]+) agent steps", logs)
    assert len(saved) == 1 and resumed == saved, f"saved at {saved}, resumed at {resumed}\n{diagnostics()}"
    assert 0 < int(saved[0].replace(",", "")) < REQUEUE_STEPS

    with (job_dir / "metrics.csv").open(newline="") as f:
        steps = [int(float(r["agent_steps"])) for r in csv.DictReader(f)]
    assert steps == list(range(REQUEUE_EVERY, REQUEUE_STEPS + 1, REQUEUE_EVERY)), (
        f"metrics.csv agent_steps after requeue differ from an uninterrupted run: {steps}"
    )
