"""Run one training job in a job directory, resuming from its own checkpoint.

``run(cfg, job_dir)`` is what ``launch/main.py`` calls (and what tests call directly).  The job
directory gets ``job_config.yaml`` (the config it was started with), ``metrics.csv``
(append-only), ``checkpoints/last.pt`` (holding its own checksum, previous one kept), ``summary.json``
and ``progress.log`` (its console progress lines, with times, appended); a rerun or a SLURM
requeue of the same job resumes from the checkpoint and continues the table
(si.train.jobdir says what a rerun with another config does). Checkpoints are written every
``budget.checkpoint_every`` agent steps and every ``budget.checkpoint_every_s`` seconds.
SIGTERM/SIGUSR2 (SLURM preemption, submitit timeout) save a checkpoint at the next iteration
boundary and then hand the signal on (submitit requeues the job). Non-finite losses, gradients
or weights stop the run with status ``diverged``, the last good checkpoint kept.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from si.envs.render import save_video
from si.malloc import tune_malloc
from si.train.a3c import A3C, worker_config
from si.train.jobdir import (JobFolderError, JobLock, atomic_write, check_config_change, has_checkpoint, keep_config,
                             load_checkpoint, restore_hydra_config, save_checkpoint, storage_error)
from si.train.logging import MetricsTable, WandbLogger, print_progress, progress_line, progress_log
from si.train.budget import Budget
from si.train.trainer import DivergenceError, Trainer


def code_version() -> dict[str, Any]:
    """Commit and dirty flag of the source tree, so every run records the code it ran; empty when
    not a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def _record_end(job_dir: Path, **fields: Any) -> None:
    """Write how a failed run ended into ``summary.json`` if the storage still allows it (after a
    full disk it may not: the error being raised says so)."""
    try:
        write_summary(job_dir, **fields)
    except OSError:
        pass


def commit_tags(version: dict[str, Any]) -> list[str]:
    """W&B tags naming the code a run ran: ``commit:<12 hex digits>``, and ``dirty`` when the
    tree had uncommitted changes; none outside a git checkout."""
    if not version.get("commit"):
        return []
    return [f"commit:{version['commit'][:12]}", *(["dirty"] if version.get("dirty") else [])]


def read_summary(job_dir: Path) -> dict[str, Any]:
    """``summary.json`` (empty when there is none); JobFolderError naming the file when it is not
    valid JSON."""
    path = job_dir / "summary.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise JobFolderError(f"{path}: not valid JSON ({exc}); delete it and rerun (the job resumes from its "
                             f"checkpoint and writes a new one)") from None


def write_summary(job_dir: Path, **fields: Any) -> None:
    old = read_summary(job_dir)
    old.update(fields)
    atomic_write(job_dir / "summary.json", json.dumps(old, indent=2, default=str).encode())


class _StopRequest:
    """Remembers SIGTERM/SIGUSR2 and chains to the previous handler after checkpointing."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR2)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}
        for sig in self.SIGNALS:
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread: leave signals alone
                pass

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def restore_and_forward(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        prev = self.previous.get(self.signum)
        if callable(prev):  # e.g. submitit's USR2 handler: requeue the job, then exit
            prev(self.signum, None)
        # a handler that only logs (submitit's SIGTERM) must not turn a preemption into success
        raise SystemExit(128 + int(self.signum))

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def run(cfg: DictConfig, job_dir: Path | str, group: str | None = None) -> dict[str, Any]:
    """Train (or resume) the job described by ``cfg`` in ``job_dir``; return the summary dict.

    Holds the job folder's lock for the whole run (a second process stops with JobFolderError)
    and appends its progress lines to ``progress.log`` there. A write that fails because the disk
    is full or the folder is not writable ends the run with a one-line JobFolderError; the folder
    keeps its last checkpoint and the job resumes from it once the storage is fixed."""
    job_dir = Path(job_dir)
    try:
        with JobLock(job_dir), progress_log(job_dir / "progress.log"):
            return _run_locked(cfg, job_dir, group)
    except OSError as exc:  # a full disk or a read-only folder: one line, and the job stays resumable
        if (error := storage_error(exc, job_dir)) is None:
            raise
        raise error from None


def _restart_if_unstarted(job_dir: Path) -> bool:
    """Clear a job killed before its first checkpoint (it restarts from scratch); whether the job
    starts fresh (no checkpoint)."""
    fresh = not has_checkpoint(job_dir)
    if fresh and (job_dir / "metrics.csv").exists():
        print_progress(f"{job_dir}: metrics.csv but no checkpoint (killed before its first checkpoint): "
                       f"restarting from scratch")
        (job_dir / "metrics.csv").unlink()
        (job_dir / "summary.json").unlink(missing_ok=True)
    return fresh


class _Job:
    """The job folder's outputs during a run: metrics rows, W&B, progress lines, checkpoints."""

    def __init__(self, cfg: DictConfig, job_dir: Path, table: MetricsTable, wandb: WandbLogger | None,
                 total: int, wall0: float):
        self.cfg, self.job_dir, self.table, self.wandb, self.total = cfg, job_dir, table, wandb, total
        self.wall0 = wall0
        self.t_start = self.last_ckpt = time.perf_counter()
        self.last_print = 0.0
        self.row: dict[str, float] | None = None

    def elapsed(self, now: float) -> float:
        return self.wall0 + now - self.t_start

    def emit(self, row: dict[str, float], now: float, final: bool) -> None:
        self.row = row
        self.table.append(row)
        if self.wandb:
            self.wandb.log(row)
        if now - self.last_print >= self.cfg.logger.progress_every_s or final:
            eta = (self.total - row["agent_steps"]) / max(row["env_steps_per_s"], 1e-9)
            print_progress(f"[{self.cfg.run_name}] " + progress_line(row, self.total, eta))
            self.last_print = now

    def video(self, trainer: Trainer, row_number: int) -> None:
        """Log the video recorded since the last row; start one every ``logger.video_every`` rows."""
        every = self.cfg.logger.video_every
        if not (self.wandb and every):
            return
        if trainer.video:
            gif = save_video(trainer.video, self.job_dir / "videos" / f"steps_{trainer.agent_steps}.gif")[0]
            self.wandb.log_video(gif, trainer.agent_steps)
            trainer.video = None
        if row_number % every == 0:
            trainer.record_video(self.cfg.logger.video_steps)

    def checkpoint(self, state: dict[str, Any], now: float) -> None:
        save_checkpoint({"trainer": state, "wall_time_s": self.elapsed(now)}, self.job_dir)
        self.last_ckpt = now

    def checkpoint_due(self, now: float) -> bool:
        return now - self.last_ckpt >= self.cfg.budget.checkpoint_every_s


def _train_sync(trainer: Trainer, job: _Job, stop: _StopRequest) -> None:
    """The synchronous A2C/PPO loop: rows every ``log_every_iters`` updates, checkpoints on steps,
    wall-clock time and stop signals."""
    b = trainer.budget
    t_last, steps_last = job.t_start, trainer.agent_steps
    while not trainer.done:
        trainer.train_iteration()
        it = trainer.iteration
        now = time.perf_counter()
        if it % b.log_every_iters == 0 or trainer.done:
            row = trainer.log_row(job.elapsed(now), now - t_last, trainer.agent_steps - steps_last)
            t_last, steps_last = now, trainer.agent_steps
            job.emit(row, now, trainer.done)
            job.video(trainer, it // b.log_every_iters)
            if it % b.checkpoint_every_iters == 0 or trainer.done:
                job.checkpoint(trainer.state_dict(), now)
        if (stop.signum is not None or job.checkpoint_due(now)) and not trainer.done:
            job.checkpoint(trainer.state_dict(), now)
            if stop.signum is not None:
                return


def _train_a3c(learner: A3C, job: _Job, stop: _StopRequest) -> None:
    """The A3C loop: the workers run until the budget is used (or a stop signal); the parent
    writes each interval's row as soon as all its updates arrived and checkpoints at rows."""
    ckpt_every = learner.trainer.budget.checkpoint_every_iters * learner.per_iter
    t_last, steps_last = job.t_start, learner.agent_steps
    for steps, acc, episodes in learner.rows(lambda: stop.signum is not None):
        now = time.perf_counter()
        row = learner.log_row(steps, acc, episodes, job.elapsed(now), now - t_last, steps - steps_last)
        t_last, steps_last = now, steps
        final = steps >= learner.total
        job.emit(row, now, final)
        if steps % ckpt_every == 0 or final or job.checkpoint_due(now):
            job.checkpoint(learner.state_dict(), now)
    if learner.agent_steps < learner.total:  # stopped by a signal: keep the last row's state
        job.checkpoint(learner.state_dict(), time.perf_counter())


def planned_steps(cfg: DictConfig) -> int:
    """The run's length in env steps (the budget rounded up to whole updates)."""
    return Budget.from_config(worker_config(cfg) if cfg.optim.algo == "a3c" else cfg).agent_steps


def _run_locked(cfg: DictConfig, job_dir: Path, group: str | None) -> dict[str, Any]:
    fresh = _restart_if_unstarted(job_dir)
    changes = {} if fresh else check_config_change(cfg, job_dir)
    done = read_summary(job_dir)
    if done.get("status") == "complete" and done.get("agent_steps", 0) >= planned_steps(cfg):
        restore_hydra_config(job_dir)  # a finished job keeps the config it was trained with
        print_progress(f"{job_dir}: already complete, nothing to do")
        return done
    if fresh:
        keep_config(cfg, job_dir, {})
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if cfg.tune_malloc:
        tune_malloc()
    a3c = cfg.optim.algo == "a3c"
    learner = A3C(cfg) if a3c else Trainer(cfg)
    trainer = learner.trainer if a3c else learner
    if trainer.lr_scale != 1.0:
        print_progress(f"{job_dir}: learning rate x{trainer.lr_scale:.3g} = sqrt(budget.num_envs {cfg.budget.num_envs} / "
                       f"budget.lr_ref_envs {cfg.budget.lr_ref_envs}) (square-root batch rule)")
    table = MetricsTable(job_dir / "metrics.csv")
    wall0 = 0.0
    if not fresh:
        state = load_checkpoint(job_dir, trainer.device, warn=print_progress)
        learner.load_state_dict(state["trainer"])
        wall0 = state["wall_time_s"]
        kept = table.resume_at(learner.agent_steps, trainer.budget.steps_per_iter * trainer.budget.log_every_iters)
        keep_config(cfg, job_dir, changes, learner.agent_steps)
        print_progress(f"{job_dir}: resumed at {learner.agent_steps:,} agent steps ({kept} metrics rows kept)")
    version = code_version()
    write_summary(job_dir, status="running", env_version=trainer.env.env_version, run_name=cfg.run_name,
                  device=str(trainer.device), wandb_group=group or cfg.run_name, **version,
                  **({"workers": learner.workers} if a3c else {}))
    lc = cfg.logger
    wandb = None
    if lc.backend == "wandb":
        wandb = WandbLogger(job_dir, OmegaConf.to_container(cfg, resolve=True), cfg.run_name, group or cfg.run_name,
                            lc.project, lc.entity, [*lc.tags, *commit_tags(version)], lc.mode)
        wandb.catch_up(table)
    job = _Job(cfg, job_dir, table, wandb, trainer.budget.agent_steps, wall0)
    stop = _StopRequest()
    try:
        if a3c:
            _train_a3c(learner, job, stop)
        else:
            _train_sync(learner, job, stop)
    except BaseException as exc:
        if isinstance(exc, DivergenceError):
            _record_end(job_dir, status="diverged", agent_steps=learner.agent_steps, error=str(exc))
            kept = (f"the last good checkpoint is kept in {job_dir / 'checkpoints'}" if has_checkpoint(job_dir)
                    else "no checkpoint had been written")
            print_progress(f"{job_dir}: diverged at {learner.agent_steps:,} agent steps ({exc}); {kept}")
        else:
            _record_end(job_dir, status="failed", agent_steps=learner.agent_steps,
                        error=f"{type(exc).__name__}: {exc}")
        if wandb:
            wandb.finish(exit_code=1)
        stop.restore()
        raise
    extra = {"updates_per_worker": learner.updates_per_worker} if a3c else {}
    if learner.agent_steps < trainer.budget.agent_steps:  # preempted: checkpoint saved; hand the signal on
        write_summary(job_dir, status="preempted", agent_steps=learner.agent_steps, **extra)
        print_progress(f"{job_dir}: signal {stop.signum}, checkpoint saved at {learner.agent_steps:,} agent steps")
        if wandb:
            wandb.finish(exit_code=1)
        stop.restore_and_forward()
        return read_summary(job_dir)
    stop.restore()
    final = job.row if job.row is not None else table.last_row()  # resumed after the last iteration
    write_summary(job_dir, status="complete", agent_steps=learner.agent_steps, final=final,
                  wall_time_s=job.elapsed(time.perf_counter()), error=None, **extra)
    if wandb:
        wandb.finish()
    return read_summary(job_dir)
