"""Find job folders, read what each run wrote, and group runs into settings.

A job folder is any directory holding `.hydra/config.yaml` (the resolved config). Next to it:
`metrics.csv` (or `metrics.parquet`, or `metrics.csv.gz` in an archive), `summary.json` and
optionally `eval/*.csv` (or `eval/*.csv.gz`).
A *setting* (si.setting) is `env.name` × `reward.name` × the values of the config sections
`model`, `reward` and `optim`; seeds (`seed`) are its replicates.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from si.jobfiles import changed_training, describe, metrics_problems, split_metrics
from si.setting import flatten, get, setting_id, setting_params
from si.wandb_names import column


@dataclass
class Run:
    """One job folder (or one W&B run) and what it wrote."""

    path: str
    config: dict[str, Any]
    metrics: pd.DataFrame
    summary: dict[str, Any]
    status: str  # "complete" | "partial" | "failed"
    problems: list[str] = field(default_factory=list)
    retrained: list[str] = field(default_factory=list)
    """Training values a rerun changed part-way (`config_changes.jsonl`, si.jobfiles.changed_training):
    the run was trained under more than one config; its config shows the last one only."""

    @property
    def env(self) -> str:
        return str(get(self.config, "env.name"))

    @property
    def reward(self) -> str:
        return str(get(self.config, "reward.name"))

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    @property
    def agent_steps(self) -> float:
        """Last logged `agent_steps` (0 when nothing was logged)."""
        if self.metrics.empty or "agent_steps" not in self.metrics:
            return 0.0
        return float(self.metrics["agent_steps"].iloc[-1])

    @property
    def setting_id(self) -> str:
        return setting_id(self.config)

    def eval_path(self, name: str) -> Path:
        """Where the separate evaluator writes `name` (e.g. `box_trapped.csv`) for this run, or
        its gzipped copy `name.gz` (as `python -m analysis.archive` stores it) if only that exists."""
        path = Path(self.path) / "eval" / name
        gz = path.with_name(name + ".gz")
        return gz if not path.exists() and gz.exists() else path


@dataclass
class Setting:
    """All seeds of one env × reward × hyperparameter combination."""

    env: str
    reward: str
    id: str
    params: dict[str, Any]
    runs: list[Run]

    @property
    def seeds(self) -> list[Any]:
        return [r.seed for r in self.runs]


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """{"a.b": v} -> {"a": {"b": v}} (W&B configs may be stored either way)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = unflatten(value) if isinstance(value, dict) else value
    return out


def read_metrics(path: Path, text: str | None = None) -> pd.DataFrame:
    """Read `metrics.csv` (or its already-read `text`) without a torn last line (si.jobfiles),
    sorted by `agent_steps`.

    Duplicate `agent_steps` rows (a resumed run re-logging an interval) keep the last one.
    """
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
    else:
        text = read_text(path) if text is None else text
        ends = split_metrics(text).ends
        df = pd.read_csv(io.StringIO(text[: ends[-1]] if ends else text), on_bad_lines="skip")
    df = df.apply(pd.to_numeric, errors="coerce")
    if "agent_steps" not in df:
        return df.iloc[0:0]
    df = df.dropna(subset=["agent_steps"])
    df = df.drop_duplicates("agent_steps", keep="last").sort_values("agent_steps")
    return df.reset_index(drop=True)


def read_text(path: Path) -> str:
    """The text of a `.csv` or gzipped `.csv.gz` file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        return f.read()


def load_run(job_dir: Path) -> Run:
    """Read one job folder and classify it as complete, partial or failed.

    * failed: `summary.json` says `failed`, or there is no metrics row.
    * partial: metrics exist but `summary.json` is missing or says `running`
      (the job was killed, is still running, or was preempted), or says `complete` at more
      agent steps than the metrics reach (a lost last row).
    * complete: `summary.json` says `complete` and the metrics reach its `agent_steps`.

    `metrics.csv` is checked by `si.jobfiles.metrics_problems`, the rules the trainer applies
    when it resumes a job; a torn last line counts as not written.
    """
    problems: list[str] = []
    # the config the job was started with (written once by the trainer); a rerun refused by the
    # job's lock or config check may already have overwritten .hydra/config.yaml
    config_path = job_dir / "job_config.yaml"
    if not config_path.exists():
        config_path = job_dir / ".hydra" / "config.yaml"
    try:
        config = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as e:
        config = {}
        problems.append(f"unreadable {config_path.relative_to(job_dir)}: {e}")

    metrics = pd.DataFrame()
    for name in ("metrics.csv", "metrics.csv.gz", "metrics.parquet"):
        if (job_dir / name).exists():
            try:
                text = None if name.endswith(".parquet") else read_text(job_dir / name)
                invalid = [] if text is None else metrics_problems(split_metrics(text))
                if invalid:
                    problems.append(f"invalid {name}: {describe(invalid)}")
                else:
                    metrics = read_metrics(job_dir / name, text)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as e:
                problems.append(f"unreadable {name}: {e}")
            break
    else:
        problems.append("no metrics.csv")

    summary, problem = read_summary(job_dir)
    if problem:
        problems.append(problem)

    for key in ("env.name", "reward.name"):
        if get(config, key) is None:
            problems.append(f"config lacks {key}")
    declared = summary.get("status")
    if declared in ("failed", "diverged"):
        status = "failed"
        problems.append(f"summary status {declared}: {summary.get('error') or 'no error text'}")
    elif metrics.empty or get(config, "env.name") is None or get(config, "reward.name") is None:
        status = "failed"
        if metrics.empty and not any(p.startswith(("no metrics.csv", "invalid", "unreadable")) for p in problems):
            problems.append("no metrics rows")
    elif declared == "complete":
        status = "complete"
        if (short := metrics_short_of(metrics, summary)) is not None:
            status = "partial"
            problems.append(short)
    else:
        status = "partial"
        if declared is not None:
            problems.append(f"summary status {declared}")
    return Run(str(job_dir), config, metrics, summary, status, problems, changed_training(job_dir))


def metrics_short_of(metrics: pd.DataFrame, summary: dict[str, Any]) -> str | None:
    """Why the metrics end before the `agent_steps` a complete `summary.json` claims (a lost or
    torn last row), or None when they reach it."""
    claimed = summary.get("agent_steps")
    last = float(metrics["agent_steps"].iloc[-1])
    if isinstance(claimed, (int, float)) and last < claimed:
        return f"metrics end at {last:,.0f} agent steps, summary.json says complete at {claimed:,.0f}"
    return None


def read_summary(job_dir: Path) -> tuple[dict[str, Any], str | None]:
    """`job_dir`'s summary.json and None, or ``{}`` and why it cannot be read."""
    if not (job_dir / "summary.json").exists():
        return {}, "no summary.json"
    try:
        return json.loads((job_dir / "summary.json").read_text()), None
    except (OSError, json.JSONDecodeError) as e:
        return {}, f"unreadable summary.json: {e}"


def job_dirs(root: str | Path) -> list[Path]:
    """Job folders (directories holding `.hydra/config.yaml`) at or under `root`, resolved and
    sorted; hidden folders below `root` (e.g. an archive's `.<job>.partial` staging copy) are not
    searched."""
    root = Path(root)
    dirs = {p.parent.parent.resolve() for p in root.rglob(".hydra/config.yaml")
            if not any(part.startswith(".") for part in p.relative_to(root).parts[:-2])}
    if (root / ".hydra" / "config.yaml").exists():
        dirs.add(root.resolve())
    return sorted(dirs)


def empty_job_dirs(roots: list[str | Path]) -> list[Path]:
    """Job folders of a sweep (the non-hidden subfolders of a folder holding `multirun.yaml`) that
    have no `.hydra/config.yaml`: jobs that were created but never started."""
    out = []
    for root in map(Path, roots):
        for sweep in {p.parent for p in root.rglob("multirun.yaml")} | ({root} if (root / "multirun.yaml").exists() else set()):
            out += [d for d in sweep.iterdir() if d.is_dir() and not d.name.startswith(".") and not job_dirs(d)]
    return sorted(out)


def discover(roots: list[str | Path]) -> list[Run]:
    """Every job folder (a directory with `.hydra/config.yaml`) under `roots`, sorted by path."""
    dirs = {d for root in roots for d in job_dirs(root)}
    return [load_run(d) for d in sorted(dirs)]


def load_wandb(project: str) -> list[Run]:
    """Runs of the W&B project `ENTITY/PROJECT` (online runs only; offline runs are files)."""
    import wandb  # optional dependency, imported only here

    state_to_status = {"finished": "complete", "failed": "failed", "crashed": "failed"}
    runs = []
    for wb in wandb.Api().runs(project):
        config = unflatten({k: v for k, v in wb.config.items() if not k.startswith("_")})
        metrics = pd.DataFrame(list(wb.scan_history()))
        metrics = metrics.drop(columns=[c for c in metrics if c.startswith("_")]).rename(columns=column)
        metrics = metrics.apply(pd.to_numeric, errors="coerce")
        if "agent_steps" in metrics:
            metrics = metrics.dropna(subset=["agent_steps"]).sort_values("agent_steps")
        else:
            metrics = metrics.iloc[0:0]
        status = state_to_status.get(wb.state, "partial")
        if status != "failed" and metrics.empty:
            status = "failed"
        runs.append(Run(f"wandb:{project}/{wb.id}", config, metrics.reset_index(drop=True),
                        dict(wb.summary), status, [f"W&B state {wb.state}"] if status != "complete" else []))
    return runs


def cut(run: Run, until: float) -> Run:
    """``run`` with only the metrics rows logged at or before ``until`` env steps (``--until``)."""
    if "agent_steps" not in run.metrics:
        return run
    return replace(run, metrics=run.metrics[run.metrics["agent_steps"] <= until].reset_index(drop=True))


def cut_all(runs: list[Run], until: float) -> tuple[list[Run], list[str]]:
    """Every run cut at ``until`` env steps, and notes naming the runs that went further (their
    schedules were stretched to their own length, so at the cut they are not a run of that length)
    or that ended before it."""
    notes = []
    for run in runs:
        if run.agent_steps > until:
            notes.append(f"{run.path}: cut at {until:.3g} env steps (--until) of the {run.agent_steps:.3g} it ran; "
                         "its schedules (learning rate, entropy, curriculum) were scaled to its own length")
        elif run.agent_steps < until:
            notes.append(f"{run.path}: ends at {run.agent_steps:.3g} env steps, before --until {until:.3g}")
    return [cut(r, until) for r in runs], notes


def dedupe_seeds(runs: list[Run]) -> tuple[list[Run], list[tuple[Run, Run]]]:
    """Keep one run per (setting, seed): the one that got furthest.

    Returns the kept runs and (dropped, kept) pairs for the report.
    """
    best: dict[tuple[str, str, str, str], Run] = {}
    dropped: list[tuple[Run, Run]] = []
    for run in runs:
        key = (run.env, run.reward, run.setting_id, str(run.seed))
        other = best.get(key)
        if other is None:
            best[key] = run
        elif run.agent_steps > other.agent_steps:
            best[key] = run
            dropped.append((other, run))
        else:
            dropped.append((run, other))
    kept = set(map(id, best.values()))
    return [r for r in runs if id(r) in kept], dropped


def group_settings(runs: list[Run]) -> list[Setting]:
    """Group runs into settings, sorted by env, reward and id; seeds sorted within."""
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.env, run.reward, run.setting_id), []).append(run)
    return [
        Setting(env, reward, sid, setting_params(rs[0].config), sorted(rs, key=_seed_order))
        for (env, reward, sid), rs in sorted(groups.items())
    ]


def _seed_order(run: Run) -> tuple[int, Any]:
    return (0, run.seed) if isinstance(run.seed, (int, float)) else (1, str(run.seed))


def differing_keys(settings: list[Setting]) -> list[str]:
    """Hyperparameter keys whose value is not the same in all `settings`."""
    keys = sorted({k for s in settings for k in s.params})
    return [k for k in keys
            if len({json.dumps(s.params.get(k, "-"), sort_keys=True, default=str) for s in settings}) > 1]


def format_value(value: Any) -> str:
    """Compact text of a config value; missing -> "-"."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}"
    if isinstance(value, (np.floating, np.integer)):
        return format_value(value.item())
    return str(value)
