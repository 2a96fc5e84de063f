"""The whole analysis: runs -> exclusions -> settings -> tables, figures and `report.md`."""

from __future__ import annotations

import datetime
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures, paper, tables
from analysis.runs import Run, Setting, cut_all, dedupe_seeds, discover, empty_job_dirs, get, group_settings, load_wandb
from analysis.stats import (Exclusion, best_settings, harvest_exclusion, influence_reward_pairs, logging_interval,
                            rank_settings, series, spearman)

#: Columns the evaluator writes (see docs/analysis.md).
BOX_TRAPPED_COLUMNS = ("episode", "t", "agent", "action", "open_box", "influence")
SCHELLING_COLUMNS = ("env", "num_cooperators", "role", "payoff")


#: Training diagnostics drawn for the best setting of every model (figures/diag_<column>); the
#: ``--diagnostic COLUMN=LABEL`` flag adds any other metrics column (docs/extending.md).
DIAGNOSTICS: dict[str, str] = {
    "fires": "fires per episode", "hits": "times hit per episode", "cleaned": "waste cleaned per episode",
    "apples": "apples per episode", "gini": "Gini (Eq 9)", "influence_mean": "influence per agent-step (nats, divergence D)",
    "influential_moment_frac": "influential-moment fraction", "ic_symbol_action": "IC symbol/action",
    "ic_action_action": "IC action/action",
}


class NoRunsError(RuntimeError):
    """No job folder was found."""


@dataclass
class Options:
    """Every knob of the analysis (the CLI flags)."""

    final_points: int = 50
    window_points: int = 200
    confidence: float = 0.995
    table_confidence: float = 0.95
    alpha: float = 0.05
    top_k: int = 5
    exclude_harvest_failures: bool = True
    apples_threshold: float = 5.0
    return_threshold: float = 1.0
    include_partial: bool = False
    include_retrained: bool = False
    until: float | None = None
    """Cut every run at this many env steps, to compare runs of different lengths at one step."""
    bootstrap_reps: int = 2000
    seed: int = 0
    diagnostics: dict[str, str] = field(default_factory=lambda: dict(DIAGNOSTICS))
    """Columns drawn as ``figures/diag_<column>`` for the best setting of every model, with their
    axis labels (:data:`DIAGNOSTICS` and the ``--diagnostic`` flags)."""


@dataclass
class Outputs:
    """What was written, for the report."""

    tables: list[Path]
    figures: list[Path]
    notes: list[str]


def _read_eval(runs: list[Run], name: str, columns: tuple[str, ...], notes: list[str]) -> pd.DataFrame:
    """Concatenate `eval/<name>` of the runs (with `run`, `reward`, `setting` columns added)."""
    frames = []
    for run in runs:
        path = run.eval_path(name)
        if not path.exists():
            continue
        df = pd.read_csv(path)
        if name == "schelling.csv" and "env" not in df:
            df["env"] = run.env
        missing = [c for c in columns if c not in df]
        if missing:
            notes.append(f"{path}: missing columns {missing}; ignored")
            continue
        frames.append(df.assign(run=run.path, reward=run.reward, setting=run.setting_id))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _learning_curve_figures(settings: list[Setting], best: dict[tuple[str, str], Setting], opts: Options,
                            fig_dir: Path, notes: list[str]) -> list[Path]:
    """Figs 1, 4, 7 (collective reward), 16 (R·(1−G)), 17 (top-k), 15 (prosocial) and one
    collective-reward figure per other game (e.g. Box trapped)."""
    paths: list[Path] = []
    ranked = rank_settings(settings, opts.final_points)

    def top_runs(env: str, reward: str) -> tuple[list[Run], int]:
        top = [s for s, score in ranked if (s.env, s.reward) == (env, reward) and np.isfinite(score)][: opts.top_k]
        return [r for s in top for r in s.runs], len(top)

    def draw(panels: dict[str, list[figures.Curve]], column: str, ylabel: str, title: str, stem: str,
             rewards: tuple[str, ...] = ()) -> None:
        if any(panels.values()):
            marks = {env: [(paper.MODEL_TITLES[r], paper.TABLE4[r][env], figures.color(r)) for r in rewards
                           if env in paper.TABLE4.get(r, {}) and (env, r) in best] for env in panels}
            files, fig_notes = figures.curve_figure(panels, column, ylabel, title, opts.window_points,
                                                    opts.confidence, fig_dir / stem, marks)
            paths.extend(files)
            notes.extend(fig_notes)

    for name, (title, rewards) in paper.EXPERIMENTS.items():
        envs = [env for env in paper.ENVS if any((env, r) in best for r in rewards[1:])]
        if not envs:
            notes.append(f"{name} figures: no {' or '.join(rewards[1:])} runs; skipped (the baseline alone is "
                         "in the other figures)")
            continue
        best_curves = {env: [figures.Curve(paper.MODEL_TITLES[r], figures.color(r), best[(env, r)].runs)
                             for r in rewards if (env, r) in best] for env in envs}
        draw(best_curves, "collective_reward", "collective reward", f"{title}: best setting",
             f"collective_{name}", rewards)
        draw(best_curves, "equality_weighted", "R·(1−G)", f"{title}: equality-weighted",
             f"equality_weighted_{name}")
        top_curves: dict[str, list[figures.Curve]] = {}
        for env in envs:
            for r in rewards:
                runs, k = top_runs(env, r)
                if runs:
                    top_curves.setdefault(env, []).append(
                        figures.Curve(f"{paper.MODEL_TITLES[r]} (top {k})", figures.color(r), runs))
        draw(top_curves, "collective_reward", "collective reward",
             f"{title}: top {opts.top_k} settings × seeds", f"top{opts.top_k}_{name}")
    for column, label in opts.diagnostics.items():
        every_model = {env: [figures.Curve(_diagnostic_label(column, r, s), figures.color(r), s.runs)
                             for (e, r), s in sorted(best.items()) if e == env] for env in paper.ENVS}
        draw(every_model, column, label, f"{label}, best setting of each model", f"diag_{column}")
    prosocial = {}
    for env in paper.ENVS:
        runs, k = top_runs(env, "collective")
        if runs:
            prosocial[env] = [figures.Curve(f"prosocial, top {k} settings", figures.color("collective"), runs)]
    draw(prosocial, "collective_reward", "collective reward", "Prosocial agents", "prosocial_collective")
    for env in sorted({e for e, _ in best} - set(paper.ENVS)):
        curves = [figures.Curve(paper.MODEL_TITLES.get(r, r), figures.color(r), s.runs)
                  for (e, r), s in sorted(best.items()) if e == env]
        draw({env: curves}, "collective_reward", "collective reward", f"{env}: best setting",
             f"collective_{env}")
    return paths


def _diagnostic_label(column: str, reward: str, setting: Setting) -> str:
    """A model's legend label; for `influence_mean` with the divergence D its value is measured in
    (KL, JSD or PMI: Tables 1–3 choose it per game, so one axis may hold several)."""
    title = paper.MODEL_TITLES.get(reward, reward)
    divergence = get(setting.runs[0].config, "reward.divergence")
    return f"{title} (D = {str(divergence).upper()})" if column == "influence_mean" and divergence else title


def _communication_figures(settings: list[Setting], best: dict[tuple[str, str], Setting], opts: Options,
                           fig_dir: Path, notes: list[str]) -> list[Path]:
    """Fig 5 and the influence/individual-reward correlation (§5.1)."""
    paths: list[Path] = []
    comm_curves = {}
    for env in paper.ENVS:
        curves = [figures.Curve(paper.MODEL_TITLES[r], figures.color(r), best[(env, r)].runs)
                  for r in ("comm", "comm_influence") if (env, r) in best
                  and any(c in best[(env, r)].runs[0].metrics for c in figures.COMM_METRICS)]
        if curves:
            comm_curves[env] = curves
    if comm_curves:
        paths += figures.comm_metrics_figure(comm_curves, opts.final_points, opts.confidence,
                                             fig_dir / "comm_metrics")
    else:
        notes.append("comm_metrics: no comm/comm_influence runs with communication metrics; figure skipped")

    pairs, rho = {}, {}
    for env in paper.ENVS:
        comm_runs = [r for s in settings if s.env == env and s.reward in ("comm", "comm_influence") for r in s.runs]
        df = influence_reward_pairs(comm_runs, opts.final_points)
        if len(df) >= 3:
            pairs[env], rho[env] = df, spearman(df)
    if pairs:
        paths += figures.correlation_figure(pairs, rho, fig_dir / "influence_reward_correlation")
        for env, (r, p, n) in rho.items():
            notes.append(f"influence/reward correlation {env}: Spearman ρ = {r:.3f} (p = {p:.3g}, "
                         f"n = {n} agent-runs); paper ρ = {paper.INFLUENCE_REWARD_RHO[env]}")
    else:
        notes.append("influence_reward_correlation: no comm runs with influence_<k>_<j> and reward_agent_<i> "
                     "columns; figure skipped")
    return paths


def _eval_outputs(runs: list[Run], settings: list[Setting], best: dict[tuple[str, str], Setting], opts: Options,
                  out: Path, notes: list[str]) -> tuple[list[Path], list[Path]]:
    """Box trapped (Figs 12–13, table) and Schelling (Fig 10) from the evaluator's files."""
    table_paths: list[Path] = []
    fig_paths: list[Path] = []
    box = _read_eval(runs, "box_trapped.csv", BOX_TRAPPED_COLUMNS, notes)
    box_by_setting = {sid: d for sid, d in box.groupby("setting")} if len(box) else {}
    box_table = tables.box_trapped_table(settings, box_by_setting, opts.final_points, opts.table_confidence)
    if box_table:
        table_paths += box_table.write(out / "tables", "box_trapped")
    if len(box):
        by_reward = {r: box_by_setting[s.id] for (e, r), s in sorted(best.items()) if s.id in box_by_setting}
        fig_paths += figures.box_trapped_figures(by_reward, out / "figures")
    else:
        notes.append("box trapped: no eval/box_trapped.csv found; Figs 12–13 skipped")
    schelling = _read_eval(runs, "schelling.csv", SCHELLING_COLUMNS, notes)
    if len(schelling):
        fig_paths += figures.schelling_figure(schelling, opts.table_confidence, out / "figures" / "schelling")
    else:
        notes.append("schelling: no eval/schelling.csv found; Fig 10 skipped")
    return table_paths, fig_paths


def _tables(settings: list[Setting], best: dict[tuple[str, str], Setting], opts: Options,
            out: Path, notes: list[str]) -> tuple[list[Path], dict[str, tables.Table]]:
    table_dir = out / "tables"
    written: list[Path] = []
    shown: dict[str, tables.Table] = {}
    ranked = rank_settings(settings, opts.final_points)
    shown["settings"] = tables.settings_table(ranked, settings, opts.final_points, opts.table_confidence)
    written += shown["settings"].write(table_dir, "settings")
    finals = tables.finals_frame(settings, opts.final_points)
    finals.to_csv(table_dir / "finals.csv", index=False)
    written.append(table_dir / "finals.csv")
    for number, (experiment, reference) in paper.HPARAM_TABLES.items():
        if any(col in best for col in reference):
            table = tables.hparam_table(number, best, settings, opts.final_points)
            written += table.write(table_dir, f"table{number}")
    if any((env, r) in best for env in paper.ENVS for r in paper.TABLE4):
        frame = tables.table4_frame(best, opts.final_points, opts.table_confidence)
        frame.to_csv(table_dir / "table4.csv", index=False)
        steps = max(r.agent_steps for (env, reward), s in best.items() if reward in paper.TABLE4 for r in s.runs)
        shown["table4"] = tables.table4(frame, opts.table_confidence, opts.alpha, opts.final_points, steps)
        written += shown["table4"].write(table_dir, "table4") + [table_dir / "table4.csv"]
        rl = tables.rliable_frame(best, opts.final_points, opts.bootstrap_reps, opts.table_confidence, opts.seed)
        if len(rl):
            rl.to_csv(table_dir / "rliable.csv", index=False)
            written += tables.rliable_table(rl, opts.table_confidence).write(table_dir, "rliable")
            written += [table_dir / "rliable.csv"] + figures.rliable_figure(rl, out / "figures" / "rliable")
            if not rl["p_improve_vs_a3c"].notna().any():
                notes.append("rliable: no A3C baseline runs, so no P(model > A3C) panel")
    else:
        notes.append("no Cleanup/Harvest runs of a Table 4 model; Table 4 and rliable aggregates skipped")
    return written, shown


def used(run: Run, opts: Options) -> bool:
    """Whether the tables and figures use ``run``: complete (or unfinished with
    ``--include-partial``), and trained under one config (or any with ``--include-retrained``)."""
    finished = run.status == "complete" or (run.status == "partial" and opts.include_partial)
    return finished and (not run.retrained or opts.include_retrained)


def analyse(sweeps: list[str | Path], out: Path, opts: Options, wandb_project: str | None = None) -> Path:
    """Run the whole analysis and return the path of `report.md`. Raises NoRunsError."""
    runs = discover(sweeps) + (load_wandb(wandb_project) if wandb_project else [])
    if not runs:
        raise NoRunsError(f"no job folders (directories with .hydra/config.yaml) under {', '.join(map(str, sweeps))}"
                          + (f" and no runs in W&B project {wandb_project}" if wandb_project else ""))
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if opts.until is not None:
        runs, notes = cut_all(runs, opts.until)
    usable = [r for r in runs if used(r, opts)]
    usable, duplicates = dedupe_seeds(usable)
    checks = [harvest_exclusion(r, opts.apples_threshold, opts.return_threshold, opts.final_points)
              for r in usable if r.env == "harvest"]
    if opts.exclude_harvest_failures:
        excluded = {id(c.run) for c in checks if c.excluded}
        usable = [r for r in usable if id(r) not in excluded]
    for c in checks:
        if c.excluded:
            verb = "excluded" if opts.exclude_harvest_failures else "would be excluded (kept: --keep-harvest-failures)"
            notes.append(f"Harvest seed {c.run.seed} of {c.run.setting_id} {verb}: {c.reason} ({c.run.path})")
        elif c.rule == "return":
            notes.append(f"Harvest seed {c.run.seed} of {c.run.setting_id}: no apples_agent_<i> columns; "
                         f"checked with the final-return rule instead ({c.run.path})")
    settings = group_settings(usable)
    best = best_settings(settings, opts.final_points)

    table_paths, shown = _tables(settings, best, opts, out, notes) if settings else ([], {})
    fig_paths = []
    if settings:
        fig_paths += _learning_curve_figures(settings, best, opts, out / "figures", notes)
        fig_paths += _communication_figures(settings, best, opts, out / "figures", notes)
        eval_tables, eval_figs = _eval_outputs(usable, settings, best, opts, out, notes)
        table_paths += eval_tables
        fig_paths += eval_figs
    else:
        notes.append("no usable runs (all failed or excluded): no tables or figures")
    for note in dict.fromkeys(notes):
        print(f"note: {note}", file=sys.stderr)
    report = out / "report.md"
    empty = empty_job_dirs(sweeps)
    for d in empty:
        notes.append(f"{d}: skipped, no .hydra/config.yaml (the job never started)")
    for r in runs:
        if r.status != "complete" and not (r.status == "partial" and opts.include_partial):
            notes.append(f"{r.path}: skipped, {r.status} at {r.agent_steps:g} env steps ({'; '.join(r.problems)})")
        elif r.retrained:
            verb = "used (--include-retrained)" if opts.include_retrained else "skipped (--include-retrained uses it)"
            notes.append(f"{r.path}: {verb}, trained under more than one config: {'; '.join(r.retrained)}")
    report.write_text(_report_text(sweeps, runs, empty, duplicates, checks, settings, best, opts, shown,
                                   Outputs(table_paths, fig_paths, notes), out))
    return report


def _units_text(runs: list[Run], opts: Options) -> list[str]:
    """What the final values and the curves' window span, in logged points and in env steps.

    Both count logged points that hold a value: for `collective_reward`, the rows in which an
    episode ended. Where episodes end in only some rows (e.g. 1024 envs whose episodes all end
    together), a point is that many rows, and the spans below say so."""
    rewards = [series(r, "collective_reward") for r in runs]
    spans = sorted({logging_interval([f]) for f in rewards if len(f) > 1})
    lines = ["## Units", "",
             f"Env steps (`agent_steps`, the paper's x-axis) are environment timesteps summed over the batch. "
             f"Final values (Table 4 and the other tables) are the mean of the last {opts.final_points} logged "
             f"points of a run that hold a value (at most the second half of them); the curves' CI is over seeds, "
             f"each seed averaged over a trailing window of {opts.window_points} such points (the paper's \"last "
             f"50\" and \"200 agent steps\", read as logged points, docs/analysis.md), shrunk to a quarter of the "
             f"run where the run is shorter than the window (the figure titles and notes say so)."]
    for iv in spans:
        lines.append(f"- a collective reward every {iv:,.0f} env steps: final values span {opts.final_points * iv:,.0f} "
                     f"env steps, the window {opts.window_points * iv:,.0f} env steps")
    return lines + [""]


def _rel(path: Path | str, out: Path) -> str:
    return os.path.relpath(path, out)


def _report_text(sweeps: list[str | Path], runs: list[Run], empty: list[Path], duplicates: list[tuple[Run, Run]],
                 checks: list[Exclusion], settings: list[Setting], best: dict[tuple[str, str], Setting],
                 opts: Options, shown: dict[str, tables.Table], outputs: Outputs, out: Path) -> str:
    by_status = {s: [r for r in runs if r.status == s] for s in ("complete", "partial", "failed")}
    lines = ["# Analysis report", "",
             f"Generated {datetime.datetime.now().isoformat(timespec='seconds')} from "
             + ", ".join(f"`{s}`" for s in sweeps) + ".", "",
             "Options: " + ", ".join(f"`{k}={v}`" for k, v in asdict(opts).items() if k != "diagnostics")
             + "".join(f", `--diagnostic {k}={v}`" for k, v in opts.diagnostics.items() if k not in DIAGNOSTICS), "",
             "## Runs", "",
             f"{len(runs)} runs found: {len(by_status['complete'])} complete, {len(by_status['partial'])} unfinished "
             f"({'used, at the steps they reached' if opts.include_partial else 'left out; --include-partial uses them'}), "
             f"{len(by_status['failed'])} failed or diverged (not used).", ""]
    if empty:
        lines += ["### Folders without a job config (skipped)", ""]
        lines += [f"- `{d}`: no .hydra/config.yaml (the job never started)" for d in empty] + [""]
    for status in ("failed", "partial"):
        if by_status[status]:
            lines += [f"### {'Failed' if status == 'failed' else 'Unfinished'} runs", "", "| Run | Game | Model | Seed | Agent steps | Problems |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| `{r.path}` | {r.env} | {r.reward} | {r.seed} | {r.agent_steps:g} | "
                      f"{'; '.join(r.problems).replace('|', '/')} |" for r in by_status[status]]
            lines.append("")
    if duplicates:
        lines += ["### Duplicate seeds (the run that got further is kept)", ""]
        lines += [f"- dropped `{d.path}` ({d.agent_steps:g} steps), kept `{k.path}` ({k.agent_steps:g} steps)"
                  for d, k in duplicates]
        lines.append("")
    lines += _units_text(runs, opts)
    lines += ["## Harvest seed exclusion", "",
              f"Rule (§10.5.3, \"one of the agents has failed to learn to collect apples\"): a Harvest seed is "
              f"excluded when some agent's final apples per episode (mean of the last {opts.final_points} logged "
              f"`apples_agent_<i>` values, at most the second half of them) is ≤ {opts.apples_threshold:g}; runs "
              f"logged without `apples_agent_<i>` use the agent's final return `reward_agent_<i>` ≤ "
              f"{opts.return_threshold:g} instead. "
              + ("**Applied** to every table and figure (opt out: `--keep-harvest-failures`)"
                 if opts.exclude_harvest_failures else
                 "**Not applied** (`--keep-harvest-failures`); seeds it would exclude are marked") + ".", ""]
    excluded_runs = [c for c in checks if c.excluded]
    if checks:
        lines += [f"Excluded: {', '.join(f'seed {c.run.seed} of {c.run.reward} ({c.run.setting_id})' for c in excluded_runs)}."
                  if excluded_runs else "Excluded: none.", ""]
        lines += ["| Run | Seed | Setting | Excluded | Reason | Final per-agent values |", "|---|---|---|---|---|---|"]
        lines += [f"| `{c.run.path}` | {c.run.seed} | {c.run.setting_id} | {'yes' if c.excluded else 'no'} | "
                  f"{c.reason} | {', '.join(f'{v:.3g}' for v in c.agent_finals.values())} |" for c in checks]
    else:
        lines.append("No Harvest runs.")
    lines += ["", "## Settings", ""]
    counts: dict[tuple[str, str], int] = {}
    for s in settings:
        counts[(s.env, s.reward)] = counts.get((s.env, s.reward), 0) + 1
    lines += [f"- {env} / {reward}: {n} setting(s); best `{best[(env, reward)].id}` "
              f"(seeds {', '.join(map(str, best[(env, reward)].seeds))})" if (env, reward) in best
              else f"- {env} / {reward}: {n} setting(s); none with a final collective reward"
              for (env, reward), n in sorted(counts.items())]
    lines.append("")
    if "table4" in shown:
        lines += ["## Table 4", "", shown["table4"].markdown()]
    lines += ["## Tables", ""] + [f"- [{_rel(p, out)}]({_rel(p, out)})" for p in outputs.tables]
    lines += ["", "## Figures", ""] + [f"- [{_rel(p, out)}]({_rel(p, out)})" for p in outputs.figures
                                        if p.suffix == ".pdf"]
    lines += [f"\n![{p.stem}]({_rel(p, out)})" for p in outputs.figures if p.suffix == ".png"]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in dict.fromkeys(outputs.notes)]
    return "\n".join(lines) + "\n"
