"""The files of a job folder that the trainer writes and analysis reads, with one set of rules each.

* ``metrics.csv``: the trainer checks the rows it keeps when it resumes a job
  (si.train.logging.MetricsTable) and analysis checks every table it reads (analysis.runs), both
  with :func:`metrics_problems`, so a table the trainer resumes is one analysis accepts.
* ``config_changes.jsonl``: one record per rerun that changed the config
  (si.train.jobdir): ``{"time", "agent_steps", "changes": {key: [before, after]}}``, where
  ``agent_steps`` is the step from which the new values were used. :func:`training_changes`
  says which changes alter what is learnt (not the keys in :data:`FREE_KEYS`); the trainer
  refuses those without ``allow_config_change=true``, and analysis keeps a run trained under
  more than one config out of its tables unless asked (:func:`changed_training`).

This module imports the standard library only: analysis imports it and never imports torch or
the training code (docs/design.md).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_CHANGES = "config_changes.jsonl"

#: Keys that may differ between the start and a rerun of a job without changing what it learns:
#: the run's length (schedules stretch to the new length, recorded), where and how fast it runs,
#: and logging. Prefixes end with a dot.
FREE_KEYS: tuple[str, ...] = (
    "budget.agent_steps", "budget.checkpoint_every", "budget.checkpoint_every_s", "logger.", "threads",
    "tune_malloc", "device", "env.compile", "model.compile", "model.cudagraphs",
    "allow_config_change",
)

#: A logged value beyond this magnitude is not a plausible metric (a corrupt cell, a diverged run).
IMPLAUSIBLE = 1e12


@dataclass
class MetricsLines:
    """The text of a ``metrics.csv`` split into its header and its completely written data lines."""

    header: list[str]
    lines: list[str]
    """The data lines in file order, without their line ends."""
    ends: list[int]
    """``ends[n]``: characters from the start of the text to the end of the header (n = 0) or of
    data line n, line end included; the length to cut the text to so that n data lines remain."""
    torn: bool
    """The text ended in a line that was not completely written (left out of ``lines``)."""

    def cells(self, i: int) -> list[str]:
        return self.lines[i].split(",")

    def head(self, n: int) -> MetricsLines:
        """The header and the first ``n`` data lines."""
        return MetricsLines(self.header, self.lines[:n], self.ends[: n + 1], False)

    def steps(self, i: int) -> float:
        """Data line ``i``'s ``agent_steps`` as a number; NaN when it is not one."""
        try:
            return float(self.cells(i)[self.header.index("agent_steps")])
        except (ValueError, IndexError):
            return math.nan


def split_metrics(text: str) -> MetricsLines:
    """Split the text of a ``metrics.csv``. A last line that was not completely written (a kill
    or a full disk during an append) counts as not written: one without its newline, or one with
    fewer cells than the header."""
    parts = text.split("\n")
    complete, rest = parts[:-1], parts[-1]
    ends, offset = [], 0
    for line in complete:
        offset += len(line) + 1
        ends.append(offset)
    header = complete[0].rstrip("\r").split(",") if complete else []
    lines = [line.rstrip("\r") for line in complete[1:]]
    torn = rest != ""
    if not torn and lines and len(lines[-1].split(",")) < len(header):
        lines.pop()
        torn = True
    return MetricsLines(header, lines, ends[: len(lines) + 1], torn)


def metrics_problems(table: MetricsLines, interval: int | None = None) -> list[str]:
    """Why ``table`` cannot be trusted; empty when it is valid.

    Valid: a header with one ``agent_steps`` column; every data line as many cells as the
    header; every cell a number or empty, of magnitude at most :data:`IMPLAUSIBLE`; every
    ``agent_steps`` present and strictly increasing; no gap wider than the logging
    ``interval`` (agent steps, counted from 0), or, when it is not known, than 1.5 times the
    median spacing."""
    if table.header.count("agent_steps") != 1:
        return ["no header with one agent_steps column"]
    problems: list[str] = []
    steps: list[tuple[int, float]] = []
    for i in range(len(table.lines)):
        line, cells = i + 2, table.cells(i)
        if len(cells) != len(table.header):
            problems.append(f"line {line}: {len(cells)} cells, the header has {len(table.header)}")
            continue
        problems += _cell_problems(line, table.header, cells)
        if math.isfinite(value := table.steps(i)) and abs(value) <= IMPLAUSIBLE:
            steps.append((line, value))
    return problems + _step_problems(steps, interval)


def _cell_problems(line: int, header: list[str], cells: list[str]) -> list[str]:
    problems = []
    for name, cell in zip(header, cells):
        try:
            value = float(cell) if cell else math.nan
        except ValueError:
            problems.append(f"line {line}, {name}: {cell!r} is not a number")
            continue
        if abs(value) > IMPLAUSIBLE and math.isfinite(value):
            problems.append(f"line {line}, {name}: {cell} is not a plausible value")
        elif name == "agent_steps" and not math.isfinite(value):
            problems.append(f"line {line}, agent_steps: {cell!r} is not a step count")
    return problems


def _step_problems(steps: list[tuple[int, float]], interval: int | None) -> list[str]:
    """``agent_steps`` as (line, value) pairs: strictly increasing, with no gap wider than the
    logging ``interval`` (counted from 0) or, without one, than 1.5 times the median spacing."""
    if interval is not None:
        steps = [(1, 0.0), *steps]
    pairs = list(zip(steps, steps[1:]))
    for (_, previous), (line, value) in pairs:
        if value <= previous:
            return [f"line {line}: agent_steps {value:g} does not increase (previous {previous:g})"]
    if not pairs:
        return []
    widest = interval if interval is not None else 1.5 * statistics.median(b - a for (_, a), (_, b) in pairs)
    for (_, previous), (_, value) in pairs:
        if value - previous > widest:
            return [f"rows missing between agent_steps {previous:g} and {value:g}"]
    return []


def describe(problems: list[str], shown: int = 3) -> str:
    """The first ``shown`` problems, and how many more there are."""
    more = len(problems) - shown
    return "; ".join(problems[:shown]) + (f" (+{more} more)" if more > 0 else "")


def free_key(key: str) -> bool:
    """Whether a change of the dotted ``key`` leaves what the job learns unchanged (:data:`FREE_KEYS`)."""
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in FREE_KEYS)


def training_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``changes`` (dotted key → values) whose key changes what the job learns."""
    return {k: v for k, v in changes.items() if not free_key(k)}


def changed_training(job_dir: Path) -> list[str]:
    """Each rerun of the job in ``job_dir`` that continued it with other training values, as
    ``"reward.beta 0.224 -> 9 from agent step 1,200"`` (``config_changes.jsonl``); empty when
    the job was trained under one config. A line that is not a record is reported as such."""
    path = job_dir / CONFIG_CHANGES
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            record = json.loads(line)
            changed = training_changes(record["changes"])
        except (ValueError, KeyError, TypeError, AttributeError):
            out.append(f"{CONFIG_CHANGES} line {n} is not a change record")
            continue
        step = record.get("agent_steps")
        when = f" from agent step {step:,}" if isinstance(step, int) else " (step not recorded)"
        out += [f"{k} {a!r} -> {b!r}{when}" for k, (a, b) in changed.items()]
    return out
