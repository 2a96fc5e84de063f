"""Figures (PNG and PDF) in one style: learning curves with sliding-window CIs, communication
metrics, influence/reward correlation, Box trapped, Schelling diagrams and rliable aggregates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis import paper  # noqa: E402
from analysis.runs import Run  # noqa: E402
from analysis.stats import (final_pair_max, final_value, series, sliding_window_ci, t_interval,  # noqa: E402
                            window_span)

STYLE = {"figure.dpi": 100, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 10,
         "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
         "legend.fontsize": 8, "legend.frameon": False}
#: One colour per model in every figure; influence models in red shades as in the paper.
COLORS = {"extrinsic": "#4d4d4d", "visible": "#1f77b4", "influence": "#d62728", "comm": "#2ca02c",
          "comm_influence": "#fb6a4a", "moa": "#9467bd", "moa_influence": "#67000d",
          "collective": "#ff7f0e", "inequity_aversion": "#8c564b"}
#: Fig 5 metrics (metrics.csv columns) and their axis labels.
COMM_METRICS = {"speaker_consistency": "speaker\nconsistency", "ic_symbol_action": "IC\nsymbol→action",
                "ic_symbol_action_influential": "IC symbol→action\ninfluential",
                "ic_action_action": "IC\naction→action",
                "ic_action_action_influential": "IC action→action\ninfluential",
                "influential_moment_frac": "influential\nmoments"}


@dataclass
class Curve:
    """One line of a learning-curve panel: its runs are pooled as replicates."""

    label: str
    color: str
    runs: list[Run]


def color(reward: str) -> str:
    return COLORS.get(reward, "#17becf")


def save(fig: plt.Figure, stem: Path) -> list[Path]:
    """Save `stem`.png and `stem`.pdf, close the figure and return both paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p, bbox_inches="tight")
    plt.close(fig)
    return paths


def _panels(n: int, width: float = 4.2, height: float = 3.0,
            layout: str | None = None) -> tuple[plt.Figure, list[plt.Axes]]:
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, layout=layout)
    return fig, list(axes[0])


#: The curves' y-range is fitted to the part of training after this fraction of the x-range, so
#: the first, untrained episodes (e.g. −4000 in Harvest at 0.1M steps) do not flatten the rest.
Y_RANGE_FROM = 0.1
#: Values a metric can take (lower, upper; None = unbounded): CI bands are clipped to them.
VALID_RANGE: dict[str, tuple[float | None, float | None]] = {
    "fires": (0.0, None), "hits": (0.0, None), "cleaned": (0.0, None), "apples": (0.0, None),
    "gini": (0.0, None), "influential_moment_frac": (0.0, 1.0), "speaker_consistency": (0.0, 1.0),
    "ic_symbol_action": (0.0, None), "ic_action_action": (0.0, None),
}
#: Columns that mean nothing in some games: drawn only for these envs.
ENVS_OF: dict[str, tuple[str, ...]] = {"cleaned": ("cleanup",)}
#: A curve needs this many logged points to be drawn.
MIN_POINTS = 2
#: When the requested window is longer than the run, the window is this fraction of the run.
SHRUNK_WINDOW_FRACTION = 0.25


def window_points_for(n_points: int, requested: int) -> int:
    """The sliding window in logged points: `requested`, or a quarter of the run (at least one
    point) when `requested` exceeds the run's `n_points`, so a point is never the running mean
    of everything before it."""
    return requested if requested <= n_points else max(1, int(n_points * SHRUNK_WINDOW_FRACTION))


def _fit_y_range(ax: plt.Axes, cis: list[pd.DataFrame], marks: list[float]) -> list[float]:
    """Fit the y-range to the trained part of the curves; the marks widen it only when they lie
    within the curves' own span (a distant paper number is listed instead). Returns the marks left
    outside the range."""
    xmax = max(float(ci["agent_steps"].max()) for ci in cis)
    late = pd.concat([ci[ci["agent_steps"] >= Y_RANGE_FROM * xmax] for ci in cis])
    vals = late[["mean", "lo", "hi"]].to_numpy(float).ravel()
    vals = vals[np.isfinite(vals)]
    if not vals.size:
        return []
    lo, hi = float(vals.min()), float(vals.max())
    span = max(hi - lo, abs(hi) * 0.05, 1e-12)
    near = [m for m in marks if lo - span <= m <= hi + span]
    lo, hi = min([lo, *near]), max([hi, *near])
    pad = 0.05 * (hi - lo) if hi > lo else max(1e-12, abs(hi) * 0.05)
    ax.set_ylim(lo - pad, hi + pad)
    return [m for m in marks if m not in near]


def _curve_data(panels: dict[str, list[Curve]], column: str) -> dict[str, list[tuple[Curve, list[pd.DataFrame]]]]:
    """Per game, the curves with at least `MIN_POINTS` logged points of `column` (games where the
    column means nothing, `ENVS_OF`, left out)."""
    data: dict[str, list[tuple[Curve, list[pd.DataFrame]]]] = {}
    for env, curves in panels.items():
        if env not in ENVS_OF.get(column, (env,)):
            continue
        for curve in curves:
            frames = [series(r, column) for r in curve.runs]
            if max(len(f) for f in frames) >= MIN_POINTS:
                data.setdefault(env, []).append((curve, frames))
    return data


def curve_figure(panels: dict[str, list[Curve]], column: str, ylabel: str, title: str, window_points: int,
                 confidence: float, stem: Path,
                 marks: dict[str, list[tuple[str, float, str]]] | None = None) -> tuple[list[Path], list[str]]:
    """Mean over seeds and the sliding-window `confidence` CI over seeds (`sliding_window_ci`) of
    `column` vs env steps, one panel per game; the plotted points go to `stem`.csv (columns env,
    label, agent_steps, mean, ci_low, ci_high, n_seeds).

    The window is `window_points` logged points of the column (`window_points_for`: shrunk when
    the run is shorter), in env steps that many logging intervals, stated in the title; bands are
    clipped to the metric's `VALID_RANGE`; the y-range shows training after its first
    `Y_RANGE_FROM` of the x-range and the `marks` near it (per game: label, value, colour; e.g.
    the paper's final numbers, dashed; marks far outside are named in the legend only). Curves
    with fewer than `MIN_POINTS` points, and games in which the column means nothing, are left
    out; returns the files (none when nothing is left) and notes."""
    data = _curve_data(panels, column)
    if not data:
        return [], [f"{stem.name}: no run logged {column} at {MIN_POINTS}+ points in a game where it applies; "
                    "figure skipped"]
    notes: list[str] = []
    n_points = max(len(f) for curves in data.values() for _, frames in curves for f in frames)
    points = window_points_for(n_points, window_points)
    if points != window_points:
        notes.append(f"{stem.name}: the runs log {n_points} points of {column}, fewer than the {window_points}-point "
                     f"window; the window is {points} points instead")
    low, high = VALID_RANGE.get(column, (None, None))
    used: list[float] = []
    rows: list[pd.DataFrame] = []
    with plt.rc_context(STYLE):
        fig, axes = _panels(len(data), height=4.0, layout="constrained")  # room for the legends below
        for ax, (env, curves) in zip(axes, data.items()):
            cis = []
            for curve, frames in curves:
                w = window_span(frames, points)
                used.append(w)
                ci = sliding_window_ci(frames, w, confidence)
                ci[["lo", "hi"]] = ci[["lo", "hi"]].clip(lower=low, upper=high)
                cis.append(ci)
                label = f"{curve.label} (n={len(curve.runs)})"
                ax.plot(ci["agent_steps"], ci["mean"], color=curve.color, lw=1.5, label=label)
                ax.fill_between(ci["agent_steps"], ci["lo"], ci["hi"], color=curve.color, alpha=0.2, lw=0)
                rows.append(pd.DataFrame({"env": env, "label": curve.label, "agent_steps": ci["agent_steps"],
                                          "mean": ci["mean"], "ci_low": ci["lo"], "ci_high": ci["hi"],
                                          "n_seeds": ci["n"]}))
            env_marks = (marks or {}).get(env, [])
            outside = _fit_y_range(ax, cis, [v for _, v, _ in env_marks])
            for label, value, mark_color in env_marks:
                if value in outside:  # a legend entry only, so the data keep the axis
                    ax.plot([], [], color=mark_color, ls="--", lw=0.9, label=f"paper: {label} {value:g} (off scale)")
                else:
                    ax.axhline(value, color=mark_color, ls="--", lw=0.9, label=f"paper: {label} {value:g}")
            ax.set_title(paper.ENV_TITLES.get(env, env))
            ax.set_xlabel("env steps (agent_steps)")
            ax.set_ylabel(ylabel)
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22))
        lo, hi = min(used), max(used)
        span = f"{lo:.3g}" if lo == hi else f"{lo:.3g}–{hi:.3g}"
        shrunk = "" if points == window_points else f" ({window_points} asked: longer than the runs)"
        fig.suptitle(f"{title}\n{confidence:.1%} CI over seeds (none with one seed), sliding window of {points} "
                     f"logged points = {span} env steps{shrunk}", fontsize="medium")
        files = save(fig, stem)  # creates the folder
        pd.concat(rows, ignore_index=True).to_csv(stem.with_suffix(".csv"), index=False)
        return files + [stem.with_suffix(".csv")], notes


def comm_final(run: Run, metric: str, last_n: int) -> float:
    """A run's final value of a Fig 5 metric: IC metrics as §5.1 aggregates them
    (`final_pair_max`: each pair averaged first, then the max over pairs); the others by
    `final_value`."""
    return final_pair_max(run, metric, last_n) if metric.startswith("ic_") else final_value(run, metric, last_n)


def comm_metrics_figure(curves: dict[str, list[Curve]], last_n: int, confidence: float,
                        stem: Path) -> list[Path]:
    """Fig 5: final communication metrics per model (bars: mean over seeds, t-interval; IC as
    `comm_final`); the bars' values go to `stem`.csv (env, label, metric, mean, ci_low, ci_high,
    n_seeds)."""
    rows = []
    with plt.rc_context(STYLE):
        fig, axes = _panels(len(curves), width=5.5)
        for ax, (env, env_curves) in zip(axes, curves.items()):
            width = 0.8 / max(len(env_curves), 1)
            for i, curve in enumerate(env_curves):
                finals = [np.array([v for r in curve.runs if np.isfinite(v := comm_final(r, m, last_n))])
                          for m in COMM_METRICS]
                stats = [t_interval(f, confidence) for f in finals]
                rows += [{"env": env, "label": curve.label, "metric": m, "mean": st[0], "ci_low": st[1],
                          "ci_high": st[2], "n_seeds": len(f)} for m, st, f in zip(COMM_METRICS, stats, finals)]
                mean = np.array([s[0] for s in stats])
                err = np.array([[s[0] - s[1], s[2] - s[0]] for s in stats]).T
                ax.bar(np.arange(len(COMM_METRICS)) + i * width, mean, width, yerr=np.nan_to_num(err),
                       color=curve.color, label=curve.label, capsize=2)
            ax.set_xticks(np.arange(len(COMM_METRICS)) + 0.4 - width / 2)
            ax.set_xticklabels(COMM_METRICS.values(), fontsize=7)
            ax.set_title(paper.ENV_TITLES.get(env, env))
            ax.legend()
        fig.suptitle(f"Communication metrics (final, {confidence:.1%} CI over seeds)")
        fig.tight_layout()
        files = save(fig, stem)  # creates the folder
        pd.DataFrame(rows).to_csv(stem.with_suffix(".csv"), index=False)
        return files + [stem.with_suffix(".csv")]


def correlation_figure(pairs: dict[str, pd.DataFrame], rho: dict[str, tuple[float, float, int]],
                       stem: Path) -> list[Path]:
    """Influence received vs individual reward (both z-scored within each run), one panel per game."""
    with plt.rc_context(STYLE):
        fig, axes = _panels(len(pairs), width=3.6, height=3.2)
        for ax, (env, df) in zip(axes, pairs.items()):
            ax.scatter(df["influence_z"], df["reward_z"], s=10, alpha=0.6, color=COLORS["comm_influence"])
            r, p, n = rho[env]
            ref = paper.INFLUENCE_REWARD_RHO.get(env)
            ax.set_title(f"{paper.ENV_TITLES.get(env, env)}: ρ={r:.2f} (p={p:.2g}, n={n})"
                         + (f"; paper {ref:.2f}" if ref is not None else ""), fontsize=8)
            ax.set_xlabel("influence received (z within run)")
            ax.set_ylabel("individual reward (z within run)")
        fig.tight_layout()
        return save(fig, stem)


def box_trapped_figures(frames: dict[str, pd.DataFrame], out: Path) -> list[Path]:
    """Fig 12 (open-box actions per trajectory step, summed over the evaluated trajectories) and
    Fig 13 (influence of each agent along the first evaluated trajectory of an influence run)."""
    paths = []
    with plt.rc_context(STYLE):
        fig, (ax,) = _panels(1, width=5)
        for reward, df in frames.items():
            counts = df[df["open_box"] > 0].groupby("t").size().reindex(range(int(df["t"].max()) + 1), fill_value=0)
            n_traj = df.groupby(["run", "episode"]).ngroups
            ax.plot(counts.index, counts.to_numpy(), color=color(reward),
                    label=f"{paper.MODEL_TITLES.get(reward, reward)} ({n_traj} trajectories)")
        ax.set_xlabel("trajectory step")
        ax.set_ylabel("open box actions")
        ax.legend()
        paths += save(fig, out / "box_trapped_open_box")
        influenced = [r for r in frames if "influence" in r and frames[r]["influence"].notna().any()]
        if influenced:
            df = frames[influenced[0]]
            first = df[(df["run"] == df["run"].iloc[0]) & (df["episode"] == df["episode"].iloc[0])]
            fig, (ax,) = _panels(1, width=5)
            for agent, d in first.groupby("agent"):
                ax.plot(d["t"], d["influence"], label=f"agent {agent}")
                opened = d[d["open_box"] > 0]
                ax.scatter(opened["t"], opened["influence"], marker="v", color="k", zorder=3)
            ax.set_xlabel("trajectory step")
            ax.set_ylabel("influence reward")
            ax.set_title(f"{paper.MODEL_TITLES.get(influenced[0], influenced[0])}: one trajectory (▼ open box)")
            ax.legend()
            paths += save(fig, out / "box_trapped_influence")
    return paths


def schelling_figure(df: pd.DataFrame, confidence: float, stem: Path) -> list[Path]:
    """Fig 10: mean payoff of a cooperator and a defector vs the number of other cooperators,
    one panel per game (t-interval over the evaluated episodes)."""
    envs = sorted(df["env"].unique())
    with plt.rc_context(STYLE):
        fig, axes = _panels(len(envs), width=3.8)
        for ax, env in zip(axes, envs):
            for role, c in (("cooperator", "#2ca02c"), ("defector", "#d62728")):
                d = df[(df["env"] == env) & (df["role"] == role)]
                if d.empty:
                    continue
                stats = d.groupby("num_cooperators")["payoff"].apply(lambda v: t_interval(v.to_numpy(), confidence))
                x = stats.index.to_numpy()
                ax.plot(x, [s[0] for s in stats], "o-", color=c, label=role)
                ax.fill_between(x, [s[1] for s in stats], [s[2] for s in stats], color=c, alpha=0.2, lw=0)
            ax.set_title(paper.ENV_TITLES.get(env, env))
            ax.set_xlabel("number of other cooperators")
            ax.set_ylabel("payoff")
            ax.legend()
        fig.tight_layout()
        return save(fig, stem)


def rliable_figure(frame: pd.DataFrame, stem: Path) -> list[Path]:
    """IQM with bootstrap CIs per model (one panel per scope) and, below it, P(model > A3C) when
    some scope has an A3C baseline and P(model > its own baseline) when some has one."""
    scopes = list(dict.fromkeys(frame["scope"]))
    rows = [("iqm", "iqm_lo", "iqm_hi", "IQM final collective reward")]
    if frame["p_improve_vs_a3c"].notna().any():
        rows.append(("p_improve_vs_a3c", "p_improve_lo", "p_improve_hi", "P(model > A3C)"))
    if "p_improve_vs_baseline" in frame and frame["p_improve_vs_baseline"].notna().any():
        rows.append(("p_improve_vs_baseline", "p_improve_baseline_lo", "p_improve_baseline_hi",
                     "P(model > its baseline)"))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(rows), len(scopes), figsize=(3.6 * len(scopes), 2.3 * len(rows)), squeeze=False)
        for col, scope in enumerate(scopes):
            d = frame[frame["scope"] == scope].reset_index(drop=True)
            y = np.arange(len(d))
            for row, (mid, lo, hi, xlabel) in enumerate(rows):
                ax = axes[row][col]
                for i, r in d.iterrows():
                    if np.isfinite(r[mid]):
                        ax.plot([r[lo], r[hi]], [i, i], color=color(r["model"]), lw=5, alpha=0.5)
                        ax.plot([r[mid]], [i], "|", color="k", ms=10)
                ax.set_yticks(y)
                ax.set_yticklabels([paper.MODEL_TITLES.get(m, m) for m in d["model"]])
                ax.set_xlabel(xlabel + (" ÷ paper IA" if mid == "iqm" and scope == "all" else ""))
                if mid.startswith("p_improve"):
                    ax.set_xlim(0, 1)
                    ax.axvline(0.5, color="k", lw=0.5, ls="--")
                if row == 0:
                    ax.set_title("Both games" if scope == "all" else paper.ENV_TITLES.get(scope, scope))
        fig.tight_layout()
        return save(fig, stem)
