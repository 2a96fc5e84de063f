"""The console view of a sweep (``-m``): one line per job while the launcher waits, then a summary.

:class:`SweepConsole`, a Hydra callback, starts a daemon thread when the sweep starts. Every
``every_s`` seconds (``hydra.callbacks.sweep_console.every_s``, default 30) it reads each job
folder's ``summary.json`` and the last complete row of its ``metrics.csv`` — read-only, a
missing or half-written file reads as no data — and prints a header with the counts and the
line of every job whose line changed (all of them the first time)::

    Sweep multirun/x: 1 running, 1 complete, 0 failed, 2 queued of 4 jobs (1 min 5 s)
      0_harvest-influence-s0  complete  steps 2,000/2,000 (100.0%) | env-steps/s 640 | collective 3.0 | ETA 0.0 min
      1_harvest-influence-s1  running   steps 800/2,000 ( 40.0%) | env-steps/s 612 | collective 1.0 | ETA 0.0 min

Plain lines without terminal control, so the view reads the same in a log file. When the sweep
ends (``on_multirun_end``; at exit when a job failed, since Hydra then skips that hook) it prints
every job's line, the count of complete and failed jobs, the sweep folder and the analysis
command to run next.

A job's status is ``queued`` until it starts in this launch (its ``.hydra/overrides.yaml`` is
written then), ``starting`` until its ``summary.json`` is rewritten, then that file's status
(``running``, ``complete``, ``failed``, ``diverged``, ``preempted``); a job complete in an earlier
launch shows ``complete`` at once.
"""

from __future__ import annotations

import atexit
import functools
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from launch.checks import sweep_job_dirs
from si.jobfiles import split_metrics
from si.train.logging import progress_line

#: Statuses of a job that ended without completing (summary.json).
ENDED_BADLY = ("failed", "diverged", "preempted")
#: Bytes read from the end of a metrics.csv to find its last row.
TAIL_BYTES = 65536


def last_row(path: Path) -> dict[str, float] | None:
    """The last completely written row of a ``metrics.csv`` as numbers (si.jobfiles.split_metrics
    on the header and the file's last :data:`TAIL_BYTES`); None when there is none."""
    try:
        with path.open("rb") as f:
            head = f.readline()
            start = max(f.tell(), f.seek(0, 2) - TAIL_BYTES)
            f.seek(start)
            tail = f.read()
    except OSError:
        return None
    if start > len(head):  # the tail starts inside a line: drop that part
        tail = tail.split(b"\n", 1)[1] if b"\n" in tail else b""
    table = split_metrics((head + tail).decode("latin-1"))
    for i in reversed(range(len(table.lines))):
        cells = table.cells(i)
        if len(cells) == len(table.header):
            try:
                return {k: float(v) if v else float("nan") for k, v in zip(table.header, cells)}
            except ValueError:
                return None
    return None


def load_summary(path: Path) -> dict[str, Any]:
    """``summary.json``; empty when it is missing or not (yet) valid JSON."""
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def written_since(path: Path, since: float) -> bool:
    """Whether ``path`` exists and was last written at or after the time ``since``."""
    try:
        return path.stat().st_mtime >= since
    except OSError:
        return False


def job_status(job_dir: Path, since: float) -> str:
    """The status of a job in the launch that started at ``since`` (see the module docstring)."""
    summary_path = job_dir / "summary.json"
    status = load_summary(summary_path).get("status")
    if status == "complete":
        return "complete"
    if not written_since(job_dir / ".hydra" / "overrides.yaml", since):
        return "queued"
    return str(status) if status and written_since(summary_path, since) else "starting"


@functools.lru_cache(maxsize=4096)
def _planned_steps(path: Path, mtime: float) -> int | None:
    """The run length of the config file ``path`` as written at ``mtime`` (the cache key)."""
    from si.train.run import planned_steps

    try:
        return planned_steps(OmegaConf.load(path))
    except Exception:  # noqa: BLE001 — a config this code cannot size: the line shows no progress
        return None


def planned_total(job_dir: Path) -> int | None:
    """The job's run length in env steps, from the ``job_config.yaml`` it (re)started with."""
    path = job_dir / "job_config.yaml"
    try:
        return _planned_steps(path, path.stat().st_mtime)
    except OSError:
        return None


def job_line(job_dir: Path, status: str, total: int | None, width: int) -> str:
    """One job's line: name, status, and its progress line once it has a metrics row."""
    row = last_row(job_dir / "metrics.csv")
    text = f"  {job_dir.name:<{width}}  {status:<9}"
    if row is None or total is None:
        return text.rstrip()
    eta = 0.0 if status == "complete" else (total - row["agent_steps"]) / max(row["env_steps_per_s"], 1e-9)
    return f"{text} {progress_line(row, total, eta)}"


def duration(seconds: float) -> str:
    """``75`` → ``1 min 15 s``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s" if minutes else f"{secs} s"


class SweepView:
    """The state of a sweep's jobs, rendered as lines."""

    def __init__(self, sweep_dir: str, job_dirs: list[Path]):
        self.sweep_dir, self.job_dirs = sweep_dir, job_dirs
        self.since = time.time()
        self.width = max(len(d.name) for d in job_dirs)
        self.shown: dict[Path, str] = {}

    def statuses(self) -> dict[Path, str]:
        return {d: job_status(d, self.since) for d in self.job_dirs}

    def header(self, statuses: dict[Path, str]) -> str:
        values = list(statuses.values())
        failed = sum(s in ENDED_BADLY for s in values)
        return (f"Sweep {self.sweep_dir}: {values.count('running')} running, {values.count('complete')} complete, "
                f"{failed} failed, {values.count('queued')} queued of {len(values)} jobs "
                f"({duration(time.time() - self.since)})")

    def lines(self, statuses: dict[Path, str]) -> dict[Path, str]:
        return {d: job_line(d, s, planned_total(d), self.width) for d, s in statuses.items()}

    def refresh(self) -> list[str]:
        """The header and the lines that changed since the last refresh; nothing when none did."""
        statuses = self.statuses()
        lines = self.lines(statuses)
        changed = [line for d, line in lines.items() if self.shown.get(d) != line]
        self.shown = lines
        return [self.header(statuses), *changed] if changed else []

    def why(self, job_dir: Path, status: str) -> str:
        """What became of a job that did not complete, and where its logs are."""
        logs = f"{Path(self.sweep_dir) / '.submitit'}/*/*_log.err"
        if status == "queued":
            return "not started"
        if status == "starting":
            return f"stopped before training started; see {logs}"
        error = load_summary(job_dir / "summary.json").get("error")
        return f"{status}{f' ({error})' if error else ''}; see {job_dir / 'progress.log'} and {logs}"

    def summary(self) -> list[str]:
        """Every job's line, the counts, the sweep folder and the analysis command."""
        statuses = self.statuses()
        complete = sum(s == "complete" for s in statuses.values())
        out = [*self.lines(statuses).values(),
               f"Sweep finished: {complete} complete, {len(statuses) - complete} failed of {len(statuses)} jobs "
               f"in {self.sweep_dir} ({duration(time.time() - self.since)})"]
        out += [f"  {d.name}: {self.why(d, s)}" for d, s in statuses.items() if s != "complete"]
        name = Path(self.sweep_dir).name
        out.append(f"Next: python -m analysis {self.sweep_dir} --out results/{name}")
        return out


def _print(lines: list[str]) -> None:
    if lines:
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()


class SweepConsole(Callback):
    """Show a sweep's jobs while it runs (every ``every_s`` seconds, when a line changed) and a
    summary at its end."""

    def __init__(self, every_s: float = 30.0) -> None:
        self.every_s = every_s
        self._view: SweepView | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Hydra pickles its callbacks into every job: only the setting travels, not the thread."""
        return {"every_s": self.every_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._view = SweepView(str(config.hydra.sweep.dir), sweep_job_dirs(config))
        self._thread = threading.Thread(target=self._watch, name="sweep-console", daemon=True)
        self._thread.start()
        atexit.register(self._finish)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._finish()

    def _watch(self) -> None:
        while not self._stop.wait(self.every_s):
            _print(self._view.refresh())

    def _finish(self) -> None:
        """Stop the thread and print the summary (once)."""
        if self._view is None or self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=30)
        atexit.unregister(self._finish)
        _print(self._view.summary())
