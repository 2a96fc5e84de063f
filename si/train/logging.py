"""Where metrics rows go: the job's append-only ``metrics.csv``, W&B, and the console (and the
job's ``progress.log``)."""

from __future__ import annotations

import csv
import hashlib
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from si.jobfiles import IMPLAUSIBLE, MetricsLines, describe, metrics_problems, split_metrics
from si.setting import flatten
from si.wandb_names import STEP, wandb_key
from si.train.jobdir import JobFolderError


class MetricsTable:
    """Append-only CSV with one row per logging interval (docs/design.md).

    The header is fixed by the first row; later rows are written with the same columns
    (missing → empty). :meth:`resume_at` checks the rows up to a checkpoint with the rules
    analysis uses (si.jobfiles) and drops the rows logged after it, so a resumed run continues
    the table with no duplicated or missing rows.
    """

    def __init__(self, path: Path):
        self.path = path
        self.columns: list[str] | None = None
        if path.exists() and path.stat().st_size:
            with path.open(newline="") as f:
                self.columns = next(csv.reader(f))

    def append(self, row: dict[str, float]) -> None:
        new = self.columns is None
        if new:
            self.columns = list(row)
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, self.columns, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
            f.flush()

    def last_row(self) -> dict[str, float]:
        """The last metrics row as numbers (empty when the table has no rows)."""
        rows = self.rows()
        return rows[-1] if rows else {}

    def _bad(self, what: str) -> JobFolderError:
        return JobFolderError(f"{self.path}: {what}; repair the file, or delete the job folder to start the job again")

    def _lines(self) -> MetricsLines:
        """The file split into lines (a torn last line left out); read as Latin-1, one character
        per byte, so that character offsets are file offsets."""
        return split_metrics(self.path.read_bytes().decode("latin-1"))

    def rows(self) -> list[dict[str, float]]:
        """Every completely written data row as numbers (empty cells → NaN)."""
        if self.columns is None:
            return []
        table = self._lines()
        try:
            return [{k: float(v) if v else math.nan for k, v in zip(table.header, table.cells(i))}
                    for i in range(len(table.lines))]
        except ValueError as exc:
            raise self._bad(str(exc)) from None

    def resume_at(self, agent_steps: int, interval: int) -> int:
        """Continue the table from a checkpoint at ``agent_steps``; return the number of rows kept.

        Rows logged after the checkpoint (from the first row with a plausible ``agent_steps``
        beyond it on) and a torn last line are dropped unchecked, as a kill leaves them. The rows
        kept must pass :func:`si.jobfiles.metrics_problems` with the logging ``interval``;
        otherwise JobFolderError says what is wrong and the file is left as it is."""
        if self.columns is None:
            return 0
        table = self._lines()
        keep = next((i for i in range(len(table.lines)) if agent_steps < table.steps(i) <= IMPLAUSIBLE),
                    len(table.lines))
        kept = table.head(keep)
        if problems := metrics_problems(kept, interval):
            raise self._bad(describe(problems))
        if keep < len(table.lines) or table.torn:
            os.truncate(self.path, kept.ends[-1])
        return keep


SUMMARIES: dict[str, str] = {
    "collective_reward": "last,max", "equality_weighted_reward": "last,max", "gini": "last",
    "influence_mean": "last,max", "influential_moment_frac": "last", "fires": "last", "hits": "last",
}
"""W&B summaries of the metrics a reader compares runs by (final and best; Table 4 is computed
by ``analysis`` from the last 50 logged points, not from these)."""


def sweep_name(job_dir: Path) -> str | None:
    """The sweep folder's name when ``job_dir`` is a job of a Hydra sweep (its ``multirun.yaml``)."""
    return job_dir.parent.name if (job_dir.parent / "multirun.yaml").exists() else None


def run_id(job_dir: Path) -> str:
    """Deterministic W&B run id of a job: a requeued or re-run job resumes the same W&B run."""
    return hashlib.sha1(str(job_dir.resolve()).encode()).hexdigest()[:16]


class WandbLogger:
    """Thin W&B wrapper that never kills training: any failure warns once and disables it.

    Each ``metrics.csv`` row is logged at its ``agent_steps`` under sectioned names
    (si.wandb_names: ``charts/collective_reward``, ``losses/loss_value``, …)."""

    def __init__(self, job_dir: Path, cfg_dict: dict[str, Any], name: str, group: str, project: str,
                 entity: str | None, tags: list[str], mode: str):
        self.run = None
        sweep = sweep_name(job_dir)
        try:
            import wandb

            self.run = wandb.init(
                project=project, entity=entity, name=name, group=group, job_type=cfg_dict["env"]["name"],
                tags=[*tags, *([f"sweep:{sweep}"] if sweep else [])], mode=mode, id=run_id(job_dir),
                resume="allow", dir=str(job_dir), config={**flatten(cfg_dict), "sweep": sweep},
                settings=wandb.Settings(silent=True, console="off"),
            )
            self.run.define_metric(STEP, hidden=True)
            self.run.define_metric("*", step_metric=STEP)  # x-axis: env steps (docs/design.md, Units)
            for metric, ops in SUMMARIES.items():
                self.run.define_metric(wandb_key(metric), step_metric=STEP, summary=ops)
        except Exception as exc:  # noqa: BLE001 — logging must never stop training
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        warnings.warn(f"W&B logging disabled: {type(exc).__name__}: {exc}", stacklevel=2)
        self.run = None

    def log(self, row: dict[str, float]) -> None:
        if self.run is None:
            return
        try:
            clean = {wandb_key(k): v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
            self.run.log(clean, step=int(row["agent_steps"]))
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    def log_video(self, gif: Path, agent_steps: int) -> None:
        """A trajectory video (a GIF file) at ``agent_steps``."""
        if self.run is None:
            return
        try:
            import wandb

            self.run.log({wandb_key("video"): wandb.Video(str(gif), format="gif")}, step=agent_steps)
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    def catch_up(self, table: MetricsTable) -> int:
        """Log the ``metrics.csv`` rows W&B may lack; return how many were logged.

        Rows logged between W&B's last flush and a SIGKILL never reach W&B. An online run
        resumed by id starts at the server's next step, so the rows from that step on are
        sent again; a new offline run file starts at step 0 and so receives the whole history
        (the newest offline file of a job is complete: sync it).
        """
        if self.run is None:
            return 0
        rows = [r for r in table.rows() if r["agent_steps"] >= self.run.step]
        for row in rows:
            self.log(row)
        return len(rows)

    def finish(self, exit_code: int = 0) -> None:
        if self.run is None:
            return
        try:
            self.run.finish(exit_code=exit_code)
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)


def episode_text(row: dict[str, float]) -> str:
    """The collective reward of the interval's episodes, or why there is none: before the first
    episode ends, or (when all envs end together, e.g. 1024 envs at `budget=paper`) between ends."""
    if not math.isnan(row["collective_reward"]):
        return f"collective {row['collective_reward']:.1f}"
    return "no episode ended in this interval" if row.get("episodes", 0) > 0 else "no episode finished yet"


def progress_line(row: dict[str, float], total_steps: int, eta_s: float) -> str:
    """One console line: env steps, env-steps/s, collective reward, influence, ETA."""
    pct = 100.0 * row["agent_steps"] / total_steps
    parts = [
        f"steps {int(row['agent_steps']):,}/{total_steps:,} ({pct:5.1f}%)",
        f"env-steps/s {row['env_steps_per_s']:,.0f}",
        episode_text(row),
    ]
    if not math.isnan(row.get("influence_mean", math.nan)):
        parts.append(f"influence {row['influence_mean']:.3g}")
    parts.append(f"ETA {eta_s / 60:.1f} min")
    return " | ".join(parts)


_progress_log: IO[str] | None = None


@contextmanager
def progress_log(path: Path) -> Iterator[None]:
    """While the block runs, :func:`print_progress` also appends each line, with the time, to
    ``path`` (the job folder's ``progress.log``)."""
    global _progress_log
    with path.open("a") as f:
        previous, _progress_log = _progress_log, f
        try:
            yield
        finally:
            _progress_log = previous


def print_progress(line: str) -> None:
    """A progress line to stderr, and to the job's ``progress.log`` inside :func:`progress_log`."""
    print(line, file=sys.stderr, flush=True)
    if _progress_log is not None:
        try:
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}", file=_progress_log, flush=True)
        except OSError:  # a full disk: the console still has the line, and training says why it stops
            pass
