"""Statistics: Gini (Eq 9), final values, sliding-window CIs, tests, seed exclusion, rliable."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.runs import Run, Setting

_AGENT_REWARD = re.compile(r"^reward_agent_(\d+)$")
_INFLUENCE = re.compile(r"^influence_(\d+)_(\d+)$")


def gini(values: np.ndarray | list[float]) -> float:
    """Gini coefficient of the agents' returns, Eq 9: Σ_i Σ_j |e_i − e_j| / (2 N Σ_i e_i).

    The rule of the trainer's logged `gini` (`si.metrics.gini`): Eq 9 as written whenever
    Σ e > 0, negative returns included; all-equal returns give 0; otherwise (Σ e ≤ 0 and the
    returns differ) Eq 9 is undefined and NaN is returned.
    """
    e = np.asarray(values, dtype=float)
    diff = np.abs(e[:, None] - e[None, :]).sum()
    if diff == 0:
        return 0.0
    total = e.sum()
    return float(diff / (2 * len(e) * total)) if total > 0 else float("nan")


def equality_weighted_value(values: np.ndarray | list[float]) -> float:
    """R·(1−G) of one return vector as R − Σ_i Σ_j |e_i − e_j| / (2N): Eq 9 exactly when R > 0,
    its continuous extension when R ≤ 0 (the trainer's `equality_weighted_reward` rule)."""
    e = np.asarray(values, dtype=float)
    return float(e.sum() - np.abs(e[:, None] - e[None, :]).sum() / (2 * len(e)))


def _agent_columns(df: pd.DataFrame, pattern: re.Pattern[str]) -> list[str]:
    """Columns matching `pattern` (one group: the agent index), ordered by agent."""
    cols = [c for c in df.columns if pattern.match(c)]
    return sorted(cols, key=lambda c: int(pattern.match(c).group(1)))


def agent_reward_columns(df: pd.DataFrame) -> list[str]:
    """`reward_agent_<i>` columns ordered by i."""
    return _agent_columns(df, _AGENT_REWARD)


def equality_weighted(df: pd.DataFrame) -> pd.Series:
    """R·(1−G) per metrics row: the logged `equality_weighted_reward` column (the mean over
    episodes), else `equality_weighted_value` of the row's mean per-agent returns `reward_agent_<i>`."""
    if "equality_weighted_reward" in df and df["equality_weighted_reward"].notna().any():
        return df["equality_weighted_reward"]
    cols = agent_reward_columns(df)
    if not cols:
        return pd.Series(np.nan, index=df.index)
    rewards = df[cols].to_numpy(float)
    out = [equality_weighted_value(r) if np.isfinite(r).all() else np.nan for r in rewards]
    return pd.Series(out, index=df.index)


def series(run: Run, column: str) -> pd.DataFrame:
    """(agent_steps, value) of one run for `column` (a metrics column or "equality_weighted"),
    rows where the value is NaN dropped."""
    df = run.metrics
    if column == "equality_weighted":
        values = equality_weighted(df)
    elif column in df:
        values = df[column]
    else:
        return pd.DataFrame({"agent_steps": [], "value": []})
    out = pd.DataFrame({"agent_steps": df["agent_steps"].to_numpy(float), "value": values.to_numpy(float)})
    return out.dropna().reset_index(drop=True)


def final_value(run: Run, column: str, last_n: int) -> float:
    """Mean of the last `last_n` logged non-NaN values of `column`, but of no more than the
    second half of them (a short run's first, untrained episodes never count as "final"); NaN
    when the run never logged it. Table 4 reads `collective_reward` this way."""
    values = series(run, column)["value"].to_numpy()
    return float(values[-min(last_n, max(1, len(values) // 2)):].mean()) if len(values) else float("nan")


def pair_columns(df: pd.DataFrame, metric: str) -> list[str]:
    """The per-pair columns `<metric>_<k>_<j>` of a metric logged for every ordered pair."""
    pattern = re.compile(rf"^{re.escape(metric)}_(\d+)_(\d+)$")
    return [c for c in df.columns if pattern.match(c)]


def final_pair_max(run: Run, metric: str, last_n: int) -> float:
    """Instantaneous coordination as §5.1 aggregates it: "first average over all trajectory steps,
    then take the maximum value between any two agents": each pair's `final_value` of
    `<metric>_<k>_<j>`, then the max over pairs. Runs logged without pair columns give the final
    value of the per-row maximum `<metric>` (an upper bound: the max is taken before averaging)."""
    cols = pair_columns(run.metrics, metric)
    if not cols:
        return final_value(run, metric, last_n)
    values = np.array([final_value(run, c, last_n) for c in cols])
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else float("nan")


def setting_finals(setting: Setting, column: str, last_n: int) -> np.ndarray:
    """`final_value` of every seed of a setting (NaNs dropped)."""
    v = np.array([final_value(r, column, last_n) for r in setting.runs])
    return v[np.isfinite(v)]


def t_interval(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """Mean and two-sided Student-t interval over the values; (mean, NaN, NaN) for n < 2."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if len(v) < 2:
        return mean, float("nan"), float("nan")
    half = sps.t.ppf((1 + confidence) / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return mean, mean - half, mean + half


def one_sample_p(values: np.ndarray, reference: float) -> float:
    """Two-sided one-sample t-test of the seeds' finals against a paper number; NaN for n < 2
    or zero variance."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2 or np.std(v) == 0:
        return float("nan")
    return float(sps.ttest_1samp(v, reference).pvalue)


def logging_interval(frames: list[pd.DataFrame]) -> float:
    """Largest median spacing of `agent_steps` between logged points over the given series."""
    gaps = [np.median(np.diff(f["agent_steps"])) for f in frames if len(f) > 1]
    return float(max(gaps)) if gaps else 0.0


def window_span(frames: list[pd.DataFrame], points: int) -> float:
    """The sliding window of `points` logged points in agent steps: `points` × the logging
    interval (`logging_interval` of the frames). Windows and final values are both counted in
    logged points (docs/analysis.md, "Window units"); this converts for the curves' x-axis."""
    return points * logging_interval(frames)


def _window_means(frame: pd.DataFrame, grid: np.ndarray, window: float) -> np.ndarray:
    """Mean of one seed's values with t − window < agent_steps ≤ t, for every t of `grid`
    (NaN where the seed has no point in the window)."""
    f = frame.sort_values("agent_steps", kind="stable")
    x = f["agent_steps"].to_numpy(float)
    y = f["value"].to_numpy(float)
    c = np.concatenate([[0.0], np.cumsum(y - y.mean())])  # centred for numerical stability
    hi = np.searchsorted(x, grid, side="right")
    lo = np.searchsorted(x, grid - window, side="right")
    n = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (c[hi] - c[lo]) / n + y.mean(), np.nan)


def sliding_window_ci(frames: list[pd.DataFrame], window: float, confidence: float) -> pd.DataFrame:
    """The paper's curve error bars (§4.1: "a 99.5 % confidence interval (CI) over the random
    seeds, computed within a sliding window"): at every distinct logged `agent_steps` value t,
    each seed's (one frame per seed) mean over its points with t − window < agent_steps ≤ t,
    then the mean and two-sided `confidence` Student-t interval over those seed means
    (mean ± t·sd/√n, n − 1 degrees of freedom, n = seeds with a point in the window).

    Points are never pooled across seeds, so the band is the spread between seeds, not the
    number of logged points. Columns: agent_steps, mean, lo, hi, n (lo/hi NaN where n < 2: one
    seed has no band).
    """
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=["agent_steps", "mean", "lo", "hi", "n"])
    grid = np.unique(np.concatenate([f["agent_steps"].to_numpy(float) for f in frames]))
    means = np.stack([_window_means(f, grid, window) for f in frames])  # (seeds, grid)
    n = np.isfinite(means).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns cannot occur; ddof with n = 1 can
        mean = np.nanmean(means, axis=0)
        sd = np.nanstd(means, axis=0, ddof=1)
        half = sps.t.ppf((1 + confidence) / 2, n - 1) * sd / np.sqrt(n)
    half = np.where(n >= 2, half, np.nan)
    return pd.DataFrame({"agent_steps": grid, "mean": mean, "lo": mean - half, "hi": mean + half, "n": n})


@dataclass
class Exclusion:
    """The Harvest check of one run: the final per-agent values it used and whether it is excluded."""

    run: Run
    agent_finals: dict[str, float]
    excluded: bool
    reason: str
    rule: str
    """"apples" (§10.5.3 as read here), "return" (the fallback for runs without apples columns) or "none"."""


_AGENT_APPLES = re.compile(r"^apples_agent_(\d+)$")


def harvest_exclusion(run: Run, apples_threshold: float, return_threshold: float, last_n: int) -> Exclusion:
    """§10.5.3: "we eliminate any random seed in Harvest for which one of the agents has failed
    to learn to collect apples". Read as: some agent's final apples per episode (`final_value` of
    `apples_agent_<i>`, the same last logged points as Table 4) is ≤ `apples_threshold`.

    Runs logged before `apples_agent_<i>` existed fall back to the agent's final return
    (`reward_agent_<i>`) ≤ `return_threshold`, and the reason says so."""
    cols = _agent_columns(run.metrics, _AGENT_APPLES)
    rule, threshold, unit = "apples", apples_threshold, "apples per episode"
    if not cols:
        cols, rule, threshold, unit = agent_reward_columns(run.metrics), "return", return_threshold, "return"
    finals = {c: final_value(run, c, last_n) for c in cols}
    fallback = "" if rule == "apples" else " (no apples_agent_<i> columns: fell back to the final-return rule)"
    if not finals:
        return Exclusion(run, finals, False, "not checked: no apples_agent_<i> or reward_agent_<i> columns", "none")
    worst = min(finals, key=lambda c: finals[c])
    if finals[worst] <= threshold:
        return Exclusion(run, finals, True, f"{worst} final {unit} {finals[worst]:.3g} ≤ {threshold:g}{fallback}", rule)
    return Exclusion(run, finals, False, f"every agent's final {unit} > {threshold:g}{fallback}", rule)


def influence_received(run: Run, last_n: int) -> dict[int, float]:
    """Agent j -> mean over influencers k ≠ j of the final `influence_<k>_<j>`."""
    pairs: dict[int, list[float]] = {}
    for col in run.metrics.columns:
        m = _INFLUENCE.match(col)
        if m and m.group(1) != m.group(2):
            v = final_value(run, col, last_n)
            if np.isfinite(v):
                pairs.setdefault(int(m.group(2)), []).append(v)
    return {j: float(np.mean(v)) for j, v in pairs.items()}


def influence_reward_pairs(runs: list[Run], last_n: int) -> pd.DataFrame:
    """One row per (run, agent): influence received and individual final return, both z-scored
    across the agents of the run (runs whose agents all have equal values are skipped).
    Columns: run, agent, influence, reward, influence_z, reward_z."""
    rows = []
    for run in runs:
        received = influence_received(run, last_n)
        rewards = {j: final_value(run, f"reward_agent_{j}", last_n) for j in received}
        agents = [j for j in sorted(received) if np.isfinite(rewards[j])]
        if len(agents) < 2:
            continue
        inf = np.array([received[j] for j in agents])
        rew = np.array([rewards[j] for j in agents])
        if inf.std() == 0 or rew.std() == 0:
            continue
        for j, a, b, za, zb in zip(agents, inf, rew, (inf - inf.mean()) / inf.std(), (rew - rew.mean()) / rew.std()):
            rows.append({"run": run.path, "agent": j, "influence": a, "reward": b,
                         "influence_z": za, "reward_z": zb})
    return pd.DataFrame(rows, columns=["run", "agent", "influence", "reward", "influence_z", "reward_z"])


def spearman(pairs: pd.DataFrame) -> tuple[float, float, int]:
    """Spearman ρ, its p-value and n between `influence_z` and `reward_z`."""
    n = len(pairs)
    if n < 3:
        return float("nan"), float("nan"), n
    res = sps.spearmanr(pairs["influence_z"], pairs["reward_z"])
    return float(res.statistic), float(res.pvalue), n


# ----------------------------------------------------------------------------- rliable
def iqm(scores: np.ndarray) -> float:
    """Interquartile mean over all runs × tasks (rliable's `aggregate_iqm`)."""
    from rliable import metrics

    return float(metrics.aggregate_iqm(scores))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + ½ P(X = Y) averaged over tasks (rliable's `probability_of_improvement`)."""
    from rliable import metrics

    return float(metrics.probability_of_improvement(x, y))


#: metric name -> point estimate over (runs, tasks) score arrays.
METRICS: dict[str, Callable[..., float]] = {"iqm": iqm, "probability_of_improvement": probability_of_improvement}


def interval_estimates(score_dict: dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]], metric: str,
                       reps: int, confidence: float, seed: int) -> dict[str, tuple[float, float, float]]:
    """name -> (point, lo, hi) of `metric` ("iqm" or "probability_of_improvement") with
    stratified-bootstrap percentile CIs from `rliable.library.get_interval_estimates`.
    Scores are (runs, tasks) arrays; (x, y) pairs for the probability of improvement.

    rliable 1.2's `StratifiedBootstrap` draws from NumPy's global RNG and ignores its
    `random_state`, so the global RNG is seeded with `seed` for the call and restored after.
    """
    from rliable import library as rly

    point_fn = METRICS[metric]
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():  # arch deprecates the random_state rliable passes
            warnings.filterwarnings("ignore", "random_state is deprecated", FutureWarning)
            points, cis = rly.get_interval_estimates(
                dict(score_dict), lambda *s: np.array([point_fn(*s)]), reps=reps,
                confidence_interval_size=confidence, random_state=np.random.RandomState(seed))
    finally:
        np.random.set_state(saved)
    return {k: (float(points[k][0]), float(cis[k][0, 0]), float(cis[k][1, 0])) for k in points}


def rank_settings(settings: list[Setting], last_n: int) -> list[tuple[Setting, float]]:
    """Settings with their mean-over-seeds final collective reward, best first (NaN last;
    ties keep the id order)."""
    scored = [(s, float(np.mean(f)) if len(f := setting_finals(s, "collective_reward", last_n)) else float("nan"))
              for s in settings]
    return sorted(scored, key=lambda p: -p[1] if np.isfinite(p[1]) else np.inf)


def best_settings(settings: list[Setting], last_n: int) -> dict[tuple[str, str], Setting]:
    """(env, reward) -> the setting with the highest mean final collective reward over seeds."""
    best: dict[tuple[str, str], Setting] = {}
    for setting, score in rank_settings(settings, last_n):
        if np.isfinite(score):
            best.setdefault((setting.env, setting.reward), setting)
    return best
