"""`python -m analysis.learning <folder>... --out <dir>`: how fast each learner setting learns.

Each folder given is one setting, labelled by its name (e.g. `archive/learner_study/ppo`): the
job folders under it are its seeds. A setting can also be `LABEL=GLOB[,GLOB...]`: the folders
the globs match, labelled LABEL (e.g. `'paper=archive/cleanup_1e7/*_cleanup-influence-s*'`), for
settings that share an archive folder with others. For every setting the table gives the
collective reward at fixed env-step marks (mean of the logged points in the `--mark-window` env
steps up to each mark, then mean over seeds), the peak of the `--peak-points`-point running mean and where it
happens, when that running mean first reaches `--reach` (env steps and wall-clock hours: how fast
the first learning phase is learnt; mean over the seeds that reach it, and how many do), the
wall time and the env-steps/s of the runs, and Table 4's final value (the mean of the last
`--final-points` logged points). `learning_seeds` gives the same columns per seed, with the mean of
the last `--last-points` logged points of each `--columns` metric (waste cleaned, apples, Gini, …),
whose curves `learning_columns.png` draws (one panel each). Two figures: collective reward against
env steps and against wall-clock hours (mean over seeds, running mean over `--smooth-points`
logging intervals).
Used for the learner sample-efficiency study (docs/results.md, "Learner sample efficiency").
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.report import Options, used  # noqa: E402
from analysis.runs import Run, cut_all, discover  # noqa: E402
from analysis.stats import final_value  # noqa: E402
from analysis.tables import Table  # noqa: E402


def at_mark(metrics: pd.DataFrame, mark: float, window: float) -> float:
    """Mean collective reward of the points logged in ``(mark - window, mark]`` (NaN if none)."""
    steps = metrics["agent_steps"]
    return float(metrics.loc[(steps <= mark) & (steps > mark - window), "collective_reward"].mean())


def run_row(run: Run, marks: list[float], window: float, peak_points: int, reach: float,
            final_points: int = 50, columns: tuple[str, ...] = (), last_points: int = 10) -> dict[str, float]:
    """One seed's marks, peak, first step and hour at which the running mean reaches ``reach``,
    wall time, throughput, final collective reward (Table 4's: the mean of the last ``final_points``
    logged points) and the mean of the last ``last_points`` logged values of each of ``columns``
    (NaN where the run did not log one)."""
    m = run.metrics.dropna(subset=["collective_reward"])
    running = m["collective_reward"].rolling(peak_points).mean()
    last = run.metrics.iloc[-1]
    row = {f"at {mark / 1e6:g}M": at_mark(m, mark, window) for mark in marks}
    row["peak"] = row["peak at (M)"] = float("nan")  # fewer points with episodes than the running mean
    if running.notna().any():
        peak_at = running.idxmax()
        row.update({"peak": float(running[peak_at]), "peak at (M)": float(m.loc[peak_at, "agent_steps"]) / 1e6})
    reached = running.index[(running >= reach).to_numpy()]
    row[f"{reach:g} at (M)"] = row[f"{reach:g} at (h)"] = float("nan")  # never reached
    if len(reached):
        row.update({f"{reach:g} at (M)": float(m.loc[reached[0], "agent_steps"]) / 1e6,
                    f"{reach:g} at (h)": float(m.loc[reached[0], "wall_time_s"]) / 3600})
    row.update({"env steps (M)": float(last["agent_steps"]) / 1e6, "wall h": float(last["wall_time_s"]) / 3600})
    row["env-steps/s"] = row["env steps (M)"] * 1e6 / (row["wall h"] * 3600)
    row["final"] = final_value(run, "collective_reward", final_points)
    row.update({f"{c}, last {last_points}": final_value(run, c, last_points) for c in columns})
    return row


def seed_table(settings: dict[str, list[Run]], marks: list[float], window: float, peak_points: int, reach: float,
               final_points: int, columns: tuple[str, ...], last_points: int) -> pd.DataFrame:
    """One :func:`run_row` per seed of every setting, labelled by setting and seed."""
    return pd.DataFrame([{"setting": label, "seed": r.seed,
                          **run_row(r, marks, window, peak_points, reach, final_points, columns, last_points)}
                         for label, runs in settings.items() for r in runs])


def setting_table(seeds: pd.DataFrame, reach: float) -> pd.DataFrame:
    """Per setting of a :func:`seed_table`: seeds, how many reach ``reach``, and the mean over seeds
    of every other column (of the seeds that reach it, for the two ``reach`` columns)."""
    rows = []
    for label, per_run in seeds.groupby("setting", sort=False):
        per_run = per_run.drop(columns=["setting", "seed"])
        rows.append({"setting": label, "seeds": len(per_run), f"reach {reach:g}": int(per_run[f"{reach:g} at (M)"].notna().sum()),
                     **per_run.mean().to_dict()})
    return pd.DataFrame(rows)


def _cell(v: object) -> str:
    if not isinstance(v, float):
        return str(v)
    return "-" if v != v else f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"


def mean_curve(runs: list[Run], x: str, smooth: int, column: str = "collective_reward") -> pd.DataFrame:
    """Seed-mean ``column`` against ``x`` (``agent_steps`` or ``wall_h``), after a running mean over
    ``smooth`` logging intervals per seed (rows without a value, e.g. without a finished episode, are
    skipped, so a run whose episodes end less often than it logs is not smeared)."""
    frames = []
    for run in runs:
        if column not in run.metrics:
            continue
        interval = float(np.median(np.diff(run.metrics["agent_steps"]))) if len(run.metrics) > 1 else 1.0
        m = run.metrics.dropna(subset=[column])
        steps, values = m["agent_steps"].to_numpy(), m[column].to_numpy()
        sums = np.concatenate([[0.0], np.cumsum(values)])
        first = np.searchsorted(steps, steps - smooth * interval, side="right")
        last = np.arange(1, len(steps) + 1)
        frames.append(pd.DataFrame({column: (sums[last] - sums[first]) / (last - first),
                                    "wall_h": m["wall_time_s"].to_numpy() / 3600}, index=steps))
    if not frames:
        return pd.DataFrame({"agent_steps": [], column: [], "wall_h": []})
    joined = pd.concat(frames, keys=range(len(frames))).groupby(level=1).mean()
    return joined.reset_index().rename(columns={"index": "agent_steps"}).sort_values(x)


def setting_folders(arg: str) -> tuple[str, list[Path]]:
    """A setting argument: an existing folder (labelled by its name) or `LABEL=GLOB[,GLOB...]`."""
    if Path(arg).exists() or "=" not in arg:
        return Path(arg).name, [Path(arg)]
    label, patterns = arg.split("=", 1)
    return label, [Path(p) for pattern in patterns.split(",") for p in sorted(glob.glob(pattern))]


def _save(fig: plt.Figure, stem: Path) -> Path:
    fig.tight_layout()
    path = stem.with_suffix(".png")
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def figure(settings: dict[str, list[Run]], x: str, xlabel: str, smooth: int, stem: Path,
           ymin: float = -500.0, ymax: float | None = None) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, runs in settings.items():
        curve = mean_curve(runs, x, smooth)
        ax.plot(curve[x], curve["collective_reward"], marker="o" if len(curve) < 20 else None,
                label=f"{label} (n={len(runs)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("collective reward per episode")
    ax.set_ylim(bottom=max(ymin, ax.get_ylim()[0]), top=ymax)  # the first steps' fines would flatten the rest
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, stem)


def columns_figure(settings: dict[str, list[Run]], columns: tuple[str, ...], smooth: int, stem: Path) -> Path:
    """One panel per metrics column: its seed mean per setting against env steps (running mean over
    ``smooth`` logging intervals). A column whose values are all positive and span more than two
    orders of magnitude (influence, for instance) gets a log axis."""
    cols = min(len(columns), 2)
    rows = -(-len(columns) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.4 * rows), squeeze=False)
    for ax, column in zip(axes.flat, columns):
        values = []
        for i, (label, runs) in enumerate(settings.items()):  # a setting keeps its colour in every panel
            curve = mean_curve(runs, "agent_steps", smooth, column)
            if len(curve):
                ax.plot(curve["agent_steps"], curve[column], color=f"C{i}", label=f"{label} (n={len(runs)})")
                values.append(curve[column].to_numpy())
        shown = np.concatenate(values) if values else np.array([])
        shown = shown[np.isfinite(shown)]
        if shown.size and shown.min() > 0 and shown.max() / shown.min() > 100:
            ax.set_yscale("log")
        ax.set_title(column, fontsize=9)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    return _save(fig, stem)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.learning", description=__doc__.split("\n\n")[0])
    p.add_argument("settings", nargs="+",
                   help="one folder per setting (its name is the label), or LABEL=GLOB[,GLOB...]")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--marks", default="1e6,2e6,5e6", help="env-step marks of the table, comma-separated")
    p.add_argument("--mark-window", type=float, default=320_000, help="env steps averaged up to each mark")
    p.add_argument("--peak-points", type=int, default=10, help="running mean (logged points) for the peak")
    p.add_argument("--reach", type=float, default=600.0,
                   help="collective reward whose first crossing (peak running mean) is timed")
    p.add_argument("--smooth-points", type=int, default=5, help="running mean (logging intervals) of the curves")
    p.add_argument("--ymin", type=float, default=-500.0,
                   help="lowest collective reward the figures show (the first steps' fines would flatten the rest)")
    p.add_argument("--ymax", type=float, default=None, help="highest collective reward the figures show (default: all)")
    p.add_argument("--final-points", type=int, default=Options.final_points,
                   help="logged points averaged for the final value (Table 4's; %(default)s)")
    p.add_argument("--columns", default="",
                   help="metrics columns of the per-seed table, comma-separated (e.g. cleaned,apples,fires,gini)")
    p.add_argument("--last-points", type=int, default=10,
                   help="logged points averaged for each --columns value (%(default)s)")
    p.add_argument("--include-partial", action="store_true", help="also use unfinished runs")
    p.add_argument("--until", type=float, metavar="ENV_STEPS",
                   help="cut every run at this many env steps (as `python -m analysis --until`)")
    args = p.parse_args(argv)
    settings: dict[str, list[Run]] = {}
    for arg in args.settings:
        label, folders = setting_folders(arg)
        found = discover(folders)
        for r in (r for r in found if r.retrained):
            print(f"{r.path}: left out, trained under more than one config ({'; '.join(r.retrained)})", file=sys.stderr)
        runs = [r for r in found if used(r, Options(include_partial=args.include_partial))]
        if args.until is not None:
            runs, notes = cut_all(runs, args.until)
            for note in notes:
                print(note, file=sys.stderr)
        if runs:
            settings[label] = runs
        else:
            print(f"{arg}: no finished run; left out", file=sys.stderr)
    if not settings:
        print("error: no finished runs in the folders given", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    marks = [float(m) for m in args.marks.split(",")]
    columns = tuple(c for c in args.columns.split(",") if c)
    seeds = seed_table(settings, marks, args.mark_window, args.peak_points, args.reach, args.final_points,
                       columns, args.last_points)
    table = setting_table(seeds, args.reach)
    note = (f"at X: mean of the points logged in the {args.mark_window:,.0f} env steps up to X; peak: "
            f"{args.peak_points}-point running mean; {args.reach:g} at: where that running mean first reaches "
            f"{args.reach:g} (env steps, wall-clock hours); final: mean of the last {args.final_points} logged "
            f"points (Table 4's)")
    for frame, stem, title, how in (
            (table, "learning", "Learning speed: collective reward at env-step marks, peak, wall time",
             "; mean over seeds (over the `reach` seeds that reach it, for the two reach columns)."),
            (seeds, "learning_seeds", "Learning speed per seed",
             f"; `<column>, last {args.last_points}`: mean of the last {args.last_points} logged values.")):
        frame.to_csv(args.out / f"{stem}.csv", index=False)
        Table(title, list(frame.columns), [[_cell(v) for v in row] for row in frame.itertuples(index=False)],
              [note + how]).write(args.out, stem)
    figure(settings, "agent_steps", "env steps", args.smooth_points, args.out / "learning_env_steps", args.ymin, args.ymax)
    figure(settings, "wall_h", "wall-clock hours", args.smooth_points, args.out / "learning_wall_clock", args.ymin, args.ymax)
    if columns:
        columns_figure(settings, columns, args.smooth_points, args.out / "learning_columns")
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
