"""Tables 1–4 (and supporting tables) as markdown and LaTeX, our numbers next to the paper's."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import paper
from analysis.runs import Setting, differing_keys, format_value
from analysis.stats import final_value, interval_estimates, one_sample_p, setting_finals, t_interval

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\^{}", "\\": r"\textbackslash{}"}


@dataclass
class Table:
    """A titled grid of strings; `**x**` marks bold cells."""

    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    banner: str = ""
    """A warning printed between the title and the grid (e.g. the runs' length against the paper's)."""

    def markdown(self) -> str:
        lines = [f"**{self.title}**", ""] + ([f"> {self.banner}", ""] if self.banner else [])
        lines += ["| " + " | ".join(self.header) + " |", "|" + "|".join("---" for _ in self.header) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in self.rows]
        return "\n".join(lines + [""] + [f"{n}  " for n in self.notes]) + "\n"

    def latex(self) -> str:
        def cell(text: str) -> str:
            parts = _BOLD.split(text)  # odd indices were bold
            return "".join(r"\textbf{" + _escape(p) + "}" if i % 2 else _escape(p) for i, p in enumerate(parts))

        lines = [r"\begin{table}[t]", r"\centering", r"\small",
                 r"\begin{tabular}{l" + "r" * (len(self.header) - 1) + "}", r"\toprule",
                 " & ".join(cell(h) for h in self.header) + r" \\", r"\midrule"]
        lines += [" & ".join(cell(c) for c in row) + r" \\" for row in self.rows]
        lines += [r"\bottomrule", r"\end{tabular}", r"\caption{" + _escape(" ".join([self.title, self.banner, *self.notes])) + "}",
                  r"\end{table}"]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path, name: str) -> list[Path]:
        """Write `<name>.md` and `<name>.tex`; return both paths."""
        directory.mkdir(parents=True, exist_ok=True)
        md, tex = directory / f"{name}.md", directory / f"{name}.tex"
        md.write_text(self.markdown())
        tex.write_text(self.latex())
        return [md, tex]


def _escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _num(x: float, digits: int = 1) -> str:
    return "-" if not np.isfinite(x) else f"{x:.{digits}f}"


def _p(p: float) -> str:
    return "-" if not np.isfinite(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def used_value(params: dict[str, Any], key: str) -> str:
    """A setting's value of `key` as its runs used it: `optim.lr_init`/`lr_end` under the
    square-root batch rule (`budget.lr_ref_envs` set, synchronous learner) are the config value
    × √(num_envs / lr_ref_envs), with the rule named; everything else as configured."""
    value, ref, envs = params.get(key), params.get("budget.lr_ref_envs"), params.get("budget.num_envs")
    if key in ("optim.lr_init", "optim.lr_end") and value is not None and ref and envs:
        factor = math.sqrt(envs / ref)
        return f"{format_value(value * factor)} ({format_value(value)} × √({envs}/{ref}), square-root batch rule)"
    return format_value(value)


def hparam_table(number: int, best: dict[tuple[str, str], Setting], all_settings: list[Setting],
                 last_n: int) -> Table:
    """Table `number` (1–3): the best setting's hyperparameters per game × model, each cell
    `ours / paper`. Extra rows show keys our sweep varied that the paper's table lacks."""
    experiment, reference = paper.HPARAM_TABLES[number]
    title, rewards = paper.EXPERIMENTS[experiment]
    columns = [(env, reward) for env in paper.ENVS for reward in rewards]
    labels = [lab for lab in paper.HPARAM_KEYS if any(lab in reference[c] for c in columns)]
    rows_by_key = [(lab, paper.HPARAM_KEYS[lab]) for lab in labels]
    swept = set()
    for env, reward in columns:
        swept.update(differing_keys([s for s in all_settings if (s.env, s.reward) == (env, reward)]))
    mapped = set(paper.HPARAM_KEYS.values())
    rows_by_key += [(key, key) for key in sorted(swept - mapped)]

    header = ["Hyperparameter"] + [f"{paper.ENV_TITLES[e]} {paper.MODEL_TITLES[r]}" for e, r in columns]
    rows = []
    for label, key in rows_by_key:
        row = [label]
        for col in columns:
            ours = used_value(best[col].params, key) if col in best else "no runs"
            row.append(f"{ours} / {reference[col].get(label, '-') if label in paper.HPARAM_KEYS else 'n/a'}")
        rows.append(row)
    score_row, count_row = ["Final collective reward (ours)"], ["Settings tried × seeds of best"]
    for col in columns:
        tried = [s for s in all_settings if (s.env, s.reward) == col]
        if col in best:
            finals = setting_finals(best[col], "collective_reward", last_n)
            score_row.append(_num(float(np.mean(finals))))
            count_row.append(f"{len(tried)} × {len(finals)}")
        else:
            score_row.append("-")
            count_row.append(f"{len(tried)} × 0")
    rows += [score_row, count_row]
    return Table(f"Table {number}: best hyperparameters, {title} experiment (ours / paper)", header, rows,
                 [f"Best = highest final collective reward (mean of the last {last_n} logged points, at most the second half of them) "
                  "averaged over seeds. '-' = not in the config (ours) or not used (paper); "
                  "'n/a' = not a row of the paper's table."])


def table4_frame(best: dict[tuple[str, str], Setting], last_n: int, confidence: float) -> pd.DataFrame:
    """Numbers of Table 4: one row per model × game with our mean, CI, n, the paper's value and
    the two-sided one-sample t-test p-value against the paper's inequity-aversion number."""
    rows = []
    for reward, paper_by_env in paper.TABLE4.items():
        for env in paper.ENVS:
            setting = best.get((env, reward))
            finals = setting_finals(setting, "collective_reward", last_n) if setting else np.array([])
            mean, lo, hi = t_interval(finals, confidence)
            reference = paper.TABLE4[paper.TABLE4_REFERENCE][env]
            rows.append({"model": reward, "env": env, "paper": paper_by_env[env], "mean": mean, "lo": lo,
                         "hi": hi, "n": len(finals), "setting": setting.id if setting else "",
                         "paper_ia": reference, "p_vs_paper_ia": one_sample_p(finals, reference),
                         "partial": partial_mark(setting) if setting else ""})
    return pd.DataFrame(rows)


def partial_mark(setting: Setting) -> str:
    """"" when every run of the setting completed; else " †" and the steps each unfinished seed
    reached (`--include-partial`), e.g. " † seed 1 at 1.2e+04"."""
    parts = [f"seed {r.seed} at {r.agent_steps:.3g}" for r in setting.runs if r.status == "partial"]
    return f" † {', '.join(parts)}" if parts else ""


def length_banner(steps: float) -> str:
    """The warning above every comparison with the paper: how long the runs are against the
    paper's 3e8 env steps, and that a final value before convergence is not the paper's quantity."""
    frac = steps / paper.PAPER_ENV_STEPS
    return (f"Runs of up to {steps:.3g} env steps: {frac:.2%} of the paper's {paper.PAPER_ENV_STEPS:.0e}. "
            + ("Their final values are taken before the paper's runs converge, so they are not the paper's "
               "quantity, and a test against a paper number says how far from it these runs are, not whether "
               "the paper holds." if frac < 1 else "The paper's length."))


def table4(frame: pd.DataFrame, confidence: float, alpha: float, last_n: int, steps: float) -> Table:
    """Table 4 in the paper's layout: models × (paper, ours) per game. Ours is bold when it is
    significantly above the paper's inequity-aversion number; `length_banner(steps)` above it."""
    header = ["Model"]
    for env in paper.ENVS:
        title = paper.ENV_TITLES[env]
        header += [f"{title} paper", f"{title} ours [{confidence:.0%} CI]", f"{title} n",
                   f"{title} p vs IA {paper.TABLE4[paper.TABLE4_REFERENCE][env]:g}"]
    rows = []
    for reward in paper.TABLE4:
        row = [paper.TABLE4_TITLES[reward]]
        for env in paper.ENVS:
            r = frame[(frame.model == reward) & (frame.env == env)].iloc[0]
            ours = "-" if r.n == 0 else _num(r["mean"]) + (f" [{_num(r.lo)}, {_num(r.hi)}]" if r.n > 1 else "")
            if reward != paper.TABLE4_REFERENCE and r.p_vs_paper_ia < alpha and r["mean"] > r.paper_ia:
                ours = f"**{ours}**"
            ours += r.partial
            row += [f"{r.paper:g}", ours, str(r.n), _p(r.p_vs_paper_ia)]
        rows.append(row)
    return Table("Table 4: final collective reward", header, rows, [
        f"Ours: per seed, the mean collective_reward of the last {last_n} logged points (at most the "
        "second half of them); then mean over "
        f"seeds of the best setting with a {confidence:.0%} Student-t CI.",
        f"p: two-sided one-sample t-test of the seeds against the paper's inequity-aversion number; "
        f"bold = significantly above it at alpha = {alpha:g}.",
        "†: uses unfinished runs (--include-partial), at the env steps given."], banner=length_banner(steps))


def settings_table(ranked: list[tuple[Setting, float]], all_settings: list[Setting], last_n: int,
                   confidence: float) -> Table:
    """Every setting, grouped by game × model and ranked: final collective reward, seeds and the
    values of the keys that differ between the settings of that game × model."""
    rows = []
    for setting, _ in ranked:
        peers = [s for s in all_settings if (s.env, s.reward) == (setting.env, setting.reward)]
        finals = setting_finals(setting, "collective_reward", last_n)
        mean, lo, hi = t_interval(finals, confidence)
        diff = ", ".join(f"{k}={format_value(setting.params.get(k))}" for k in differing_keys(peers))
        rows.append([setting.env, setting.reward, setting.id, _num(mean) + partial_mark(setting),
                     f"[{_num(lo)}, {_num(hi)}]", str(len(finals)),
                     " ".join(map(str, setting.seeds)), diff or "(only setting)"])
    rows.sort(key=lambda r: (r[0], r[1]))  # stable: rank order within each game × model
    return Table("All settings, best first within each game × model",
                 ["Game", "Model", "Setting", "Final collective reward", f"{confidence:.0%} CI", "n",
                  "Seeds", "Differing hyperparameters"], rows,
                 ["†: uses unfinished runs (--include-partial), at the env steps given."])


def finals_frame(settings: list[Setting], last_n: int) -> pd.DataFrame:
    """One row per run: final collective reward, R·(1−G) and per-agent returns (CSV output)."""
    rows = []
    for s in settings:
        for run in s.runs:
            row = {"env": s.env, "reward": s.reward, "setting": s.id, "seed": run.seed, "status": run.status,
                   "agent_steps": run.agent_steps, "collective_reward": final_value(run, "collective_reward", last_n),
                   "equality_weighted": final_value(run, "equality_weighted", last_n), "path": run.path}
            row.update({c: final_value(run, c, last_n) for c in run.metrics.columns if c.startswith("reward_agent_")})
            rows.append(row)
    return pd.DataFrame(rows)


def rliable_frame(best: dict[tuple[str, str], Setting], last_n: int, reps: int, confidence: float,
                  seed: int) -> pd.DataFrame:
    """IQM with stratified-bootstrap CIs per model, P(model > A3C) and, for an influence model,
    P(model > its own baseline) (``paper.OWN_BASELINE``: visible, comm or MOA baseline), per game
    and over both games. Scores are each seed's final collective reward; the cross-game aggregate divides them
    by the paper's inequity-aversion number of the game and keeps, per model, the first n seeds
    of every game (n = the smallest seed count over games), since rliable needs a runs × tasks
    matrix."""
    models = [r for r in paper.MODEL_TITLES if any((e, r) in best for e in paper.ENVS)]
    scores: dict[str, dict[str, np.ndarray]] = {"all": {}}
    for env in paper.ENVS:
        scores[env] = {m: setting_finals(best[(env, m)], "collective_reward", last_n)[:, None]
                       for m in models if (env, m) in best}
    for m in models:
        per_env = [scores[e][m][:, 0] for e in paper.ENVS if m in scores[e]]
        if len(per_env) == len(paper.ENVS) and (n := min(map(len, per_env))) > 0:
            scores["all"][m] = np.stack(
                [v[:n] / paper.TABLE4[paper.TABLE4_REFERENCE][e] for v, e in zip(per_env, paper.ENVS)], axis=1)
    rows = []
    for scope, by_model in scores.items():
        by_model = {m: s for m, s in by_model.items() if len(s)}
        if not by_model:
            continue
        iqms = interval_estimates(by_model, "iqm", reps, confidence, seed)
        base = by_model.get("extrinsic")
        pairs = {m: (s, base) for m, s in by_model.items() if base is not None and m != "extrinsic"}
        pois = interval_estimates(pairs, "probability_of_improvement", reps, confidence, seed) if pairs else {}
        own = {m: (s, by_model[paper.OWN_BASELINE[m]]) for m, s in by_model.items()
               if paper.OWN_BASELINE.get(m) in by_model}
        own_pois = interval_estimates(own, "probability_of_improvement", reps, confidence, seed) if own else {}
        nan3 = (np.nan, np.nan, np.nan)
        for m, (point, lo, hi) in iqms.items():
            poi, own_poi = pois.get(m, nan3), own_pois.get(m, nan3)
            rows.append({"scope": scope, "model": m, "n": len(by_model[m]), "iqm": point, "iqm_lo": lo, "iqm_hi": hi,
                         "p_improve_vs_a3c": poi[0], "p_improve_lo": poi[1], "p_improve_hi": poi[2],
                         "p_improve_vs_baseline": own_poi[0], "p_improve_baseline_lo": own_poi[1],
                         "p_improve_baseline_hi": own_poi[2]})
    return pd.DataFrame(rows)


def rliable_table(frame: pd.DataFrame, confidence: float) -> Table:
    """The rliable aggregates as a table."""
    rows = []
    for r in frame.itertuples():
        scope = "Both games (÷ paper IA)" if r.scope == "all" else paper.ENV_TITLES.get(r.scope, r.scope)
        digits = 2 if r.scope == "all" else 1
        poi = "-" if not np.isfinite(r.p_improve_vs_a3c) else \
            f"{r.p_improve_vs_a3c:.2f} [{r.p_improve_lo:.2f}, {r.p_improve_hi:.2f}]"
        own = "-" if not np.isfinite(r.p_improve_vs_baseline) else \
            f"{r.p_improve_vs_baseline:.2f} [{r.p_improve_baseline_lo:.2f}, {r.p_improve_baseline_hi:.2f}] " \
            f"vs {paper.MODEL_TITLES[paper.OWN_BASELINE[r.model]]}"
        rows.append([scope, paper.MODEL_TITLES.get(r.model, r.model), str(r.n),
                     f"{_num(r.iqm, digits)} [{_num(r.iqm_lo, digits)}, {_num(r.iqm_hi, digits)}]", poi, own])
    return Table("rliable aggregates of the final collective reward (best setting per model)",
                 ["Scope", "Model", "Seeds", f"IQM [{confidence:.0%} CI]", "P(model > A3C)",
                  "P(model > its baseline)"], rows,
                 ["Stratified bootstrap percentile CIs (rliable). 'Both games' divides each seed's score by "
                  "the paper's inequity-aversion number for that game."])


def box_trapped_table(settings: list[Setting], eval_frames: dict[str, pd.DataFrame], last_n: int,
                      confidence: float) -> Table | None:
    """Fraction of trajectories in which the box is opened, per model: from the evaluator's
    `eval/box_trapped.csv` (episodes with any `open_box` = 1) when present, and from the training
    metric `box_opened` (final value per seed). None when there is neither."""
    rows = []
    for s in settings:
        if s.env != "box_trapped":
            continue
        mean, lo, hi = t_interval(setting_finals(s, "box_opened", last_n), confidence)
        training = "-" if not np.isfinite(mean) else f"{mean:.0%}"
        if np.isfinite(lo):  # a fraction: the t-interval is clipped to [0, 1]
            training += f" [{max(lo, 0.0):.0%}, {min(hi, 1.0):.0%}]"
        ev = eval_frames.get(s.id)
        evaluation, per_seed, influence = "-", "-", "-"
        if ev is not None and len(ev):
            per_episode = ev.groupby(["run", "episode"])["open_box"].max() > 0
            evaluation = f"{per_episode.mean():.0%} of {len(per_episode)}"
            by_run = per_episode.groupby(level="run").mean()
            per_seed = ", ".join(f"{r.seed}: {by_run[r.path]:.0%}" for r in s.runs if r.path in by_run.index)
            influence = _opening_influence(ev)
        if training != "-" or evaluation != "-":
            ref = paper.BOX_OPENED.get(s.reward)
            rows.append([paper.MODEL_TITLES.get(s.reward, s.reward), s.id, str(len(s.runs)), training,
                         evaluation, per_seed, influence, "-" if ref is None else f"{ref:.0%}"])
    if not rows:
        return None
    return Table("Box trapped: fraction of trajectories in which the box is opened",
                 ["Model", "Setting", "Seeds", f"Training (box_opened) [{confidence:.0%} CI]",
                  "Evaluation (eval/box_trapped.csv)", "Evaluation per seed", "Influence: opening / other steps",
                  "Paper"], rows,
                 [f"Training: per seed, the mean of the last {last_n} logged box_opened values "
                  "(at most the second half of them); t-interval over seeds, clipped to [0, 1].",
                  "Influence (Fig 13): mean influence reward c_t^k (nats, before β) of the agents that opened the "
                  "box at least once, at their opening steps / at their other steps."])


def _opening_influence(ev: pd.DataFrame) -> str:
    """Mean influence at the opening steps and at the openers' other steps, or "-" without influence."""
    openers = ev.groupby(["run", "agent"])["open_box"].transform("max") > 0
    rows = ev[openers & ev["influence"].notna()]
    if rows.empty:
        return "-"
    opening = rows["open_box"] > 0
    return f"{rows.loc[opening, 'influence'].mean():.3g} / {rows.loc[~opening, 'influence'].mean():.3g}"
