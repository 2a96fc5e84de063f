"""Tests of `analysis` on synthetic job folders with known answers.

`make_fake_job` and `make_metrics` build job folders that follow the contract of
docs/design.md; other tests may import them (`from test_analysis import make_fake_job`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps

from analysis.__main__ import main
from analysis.archive import main as archive_main
from analysis.report import Options, analyse
from analysis.runs import discover, group_settings, setting_id
from analysis.stats import (best_settings, equality_weighted, final_value, gini, harvest_exclusion,
                            influence_reward_pairs, interval_estimates, sliding_window_ci, spearman, t_interval,
                            window_span)
from analysis.tables import Table, hparam_table, rliable_frame, rliable_table, table4_frame

REPO = Path(__file__).resolve().parents[1]


def make_metrics(steps: int = 60, interval: float = 10.0, agent_rewards: list[float] | None = None,
                 extra: dict[str, Any] | None = None) -> pd.DataFrame:
    """A metrics table with constant per-agent returns (`collective_reward` = their sum)."""
    agent_rewards = [10.0] * 5 if agent_rewards is None else agent_rewards
    df = pd.DataFrame({"agent_steps": np.arange(1, steps + 1) * interval, "episodes": np.arange(steps)})
    for i, r in enumerate(agent_rewards):
        df[f"reward_agent_{i}"] = float(r)
    df["collective_reward"] = float(sum(agent_rewards))
    for key, value in (extra or {}).items():
        df[key] = value
    return df


def _set(config: dict[str, Any], dotted: str, value: Any) -> None:
    node = config
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def make_fake_job(directory: Path, env: str, reward: str, seed: int, metrics_df: pd.DataFrame | None,
                  config_overrides: dict[str, Any] | None = None,
                  summary: dict[str, Any] | None = None) -> Path:
    """Write a job folder: `.hydra/config.yaml` (+ `hydra.yaml`), `metrics.csv`, `summary.json`.

    `config_overrides` maps dotted keys to values (e.g. {"reward.beta": 0.1}); `metrics_df=None`
    writes no metrics; `summary=None` writes a complete summary, `summary={}` none at all.
    """
    directory.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "env": {"name": env, "num_agents": 5},
        "model": {"lstm_size": 128},
        "reward": {"name": reward},
        "optim": {"entropy": 0.00176, "lr_init": 0.00126, "lr_end": 0.000012},
        "seed": seed,
    }
    for key, value in (config_overrides or {}).items():
        _set(config, key, value)
    (directory / ".hydra").mkdir(exist_ok=True)
    (directory / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (directory / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": {"env": env, "reward": reward}}}}))
    if metrics_df is not None:
        metrics_df.to_csv(directory / "metrics.csv", index=False)
    if summary is None:
        steps = float(metrics_df["agent_steps"].iloc[-1]) if metrics_df is not None and len(metrics_df) else 0.0
        summary = {"status": "complete", "agent_steps": steps, "final": {}, "commit": "abc", "dirty": False,
                   "env_version": "1", "wall_time_s": 1.0, "error": None}
    if summary:
        (directory / "summary.json").write_text(json.dumps(summary))
    return directory


# ------------------------------------------------------------------------------------ stats
@pytest.mark.parametrize("values, expected", [
    ([1, 1, 1, 1], 0.0), ([0, 0, 0, 4], 0.75), ([1, 2, 3], 8 / 36), ([0, 0], 0.0), ([5], 0.0)])
def test_gini_known_vectors(values: list[float], expected: float) -> None:
    assert gini(values) == pytest.approx(expected)


def test_gini_undefined_for_nonpositive_total() -> None:
    assert np.isnan(gini([-1, 1]))


@pytest.mark.parametrize("values", [[-50, 100, 100, 100, 100], [-1, 3], [-1, 1], [-3, 0, 1], [-2, -2], [0, 0, 0, 4],
                                    [1.5, 2, 7, 0, 0], [-50, -1, 0, 0, 0]])
def test_gini_and_equality_weighting_match_the_trainers_rule(values: list[float]) -> None:
    """analysis never imports training code, so it carries its own copy of the rule: same numbers."""
    import torch

    from analysis.stats import equality_weighted_value
    from si import metrics

    e = torch.tensor(values, dtype=torch.float64)
    np.testing.assert_equal(gini(values), metrics.gini(e).item())
    assert equality_weighted_value(values) == pytest.approx(metrics.equality_weighted_reward(e).item())


def test_equality_weighting_of_logged_mean_returns_is_eq9_with_a_negative_agent(tmp_path: Path) -> None:
    (run,) = discover([make_fake_job(tmp_path / "j", "harvest", "extrinsic", 0,
                                     make_metrics(agent_rewards=[-50, 100, 100, 100, 100]))])
    assert np.allclose(equality_weighted(run.metrics), 230.0)  # R = 350, G = 1200 / 3500


def test_sliding_window_ci_known_mean_and_width() -> None:
    frames = [pd.DataFrame({"agent_steps": np.arange(10.0), "value": np.full(10, y)}) for y in (1.0, 3.0)]
    ci = sliding_window_ci(frames, window=2, confidence=0.995)
    assert list(ci["agent_steps"]) == list(np.arange(10.0))
    assert np.allclose(ci["mean"], 2.0)
    # Seed means 1 and 3 in every window: sd √2 over n = 2 seeds, however many points the window holds.
    half = sps.t.ppf(0.9975, 1) * np.sqrt(2) / np.sqrt(2)
    assert ci["n"].tolist() == [2] * 10
    assert np.allclose(ci["hi"] - 2, half)
    assert np.allclose(ci["mean"] - ci["lo"], ci["hi"] - ci["mean"])


def test_sliding_window_ci_is_over_seeds_not_points() -> None:
    """§4.1: the CI is over the random seeds. Five flat seeds at 100…500 with a 200-point window
    give the t-interval of the five seed means (half-width ≈ 396), not of 1,000 pooled points (≈ 13)."""
    frames = [pd.DataFrame({"agent_steps": np.arange(1, 301) * 10.0, "value": np.full(300, y)})
              for y in (100.0, 200.0, 300.0, 400.0, 500.0)]
    ci = sliding_window_ci(frames, window=2000, confidence=0.995)
    last = ci.iloc[-1]
    expected = sps.t.ppf(0.9975, 4) * np.std([100, 200, 300, 400, 500], ddof=1) / np.sqrt(5)
    assert last["n"] == 5 and last["mean"] == pytest.approx(300.0)
    assert last["hi"] - last["mean"] == pytest.approx(expected) and expected > 390


def test_sliding_window_ci_averages_each_seed_before_the_seeds() -> None:
    """A seed with more points in the window weighs as much as one with fewer."""
    dense = pd.DataFrame({"agent_steps": np.arange(1, 11) * 1.0, "value": np.full(10, 0.0)})
    sparse = pd.DataFrame({"agent_steps": [10.0], "value": [10.0]})
    ci = sliding_window_ci([dense, sparse], window=100, confidence=0.95)
    assert ci.iloc[-1]["mean"] == pytest.approx(5.0) and ci.iloc[-1]["n"] == 2


def test_sliding_window_single_point_has_no_interval() -> None:
    ci = sliding_window_ci([pd.DataFrame({"agent_steps": [0.0, 100.0], "value": [1.0, 2.0]})], 10, 0.995)
    assert ci["mean"].tolist() == [1.0, 2.0]
    assert ci["lo"].isna().all()


def test_window_is_counted_in_logged_points_like_the_final_values() -> None:
    """'Sliding window of 200 agent steps' and 'last 50 agent steps' share one unit: logged points."""
    frames = [pd.DataFrame({"agent_steps": np.arange(1, 41) * 1000.0, "value": np.arange(40.0)})]
    assert window_span(frames, 200) == 200_000
    ci = sliding_window_ci(frames, window_span(frames, 4), 0.995)
    assert ci["mean"].iloc[-1] == pytest.approx(np.arange(36.0, 40.0).mean())  # the last 4 points, not 1


def test_final_value_is_mean_of_last_points(tmp_path: Path) -> None:
    df = make_metrics(steps=100)
    df["collective_reward"] = np.arange(100.0)
    df.loc[99, "collective_reward"] = np.nan  # NaN rows (no episode finished) are skipped
    (run,) = discover([make_fake_job(tmp_path / "j", "cleanup", "extrinsic", 0, df)])
    assert final_value(run, "collective_reward", 40) == pytest.approx(np.arange(59.0, 99.0).mean())
    # never more than the second half of the 99 logged values
    assert final_value(run, "collective_reward", 50) == pytest.approx(np.arange(50.0, 99.0).mean())
    assert final_value(run, "collective_reward", 500) == pytest.approx(np.arange(50.0, 99.0).mean())
    assert np.isnan(final_value(run, "no_such_column", 50))


def test_equality_weighted_from_agent_rewards(tmp_path: Path) -> None:
    (run,) = discover([make_fake_job(tmp_path / "j", "harvest", "extrinsic", 0,
                                     make_metrics(agent_rewards=[0, 0, 0, 4]))])
    assert np.allclose(equality_weighted(run.metrics), 4 * (1 - 0.75))
    logged = make_metrics(extra={"equality_weighted_reward": 7.0})
    assert np.allclose(equality_weighted(logged), 7.0)


# ----------------------------------------------------------------------- discovery, grouping
def test_discovery_reports_partial_and_failed(tmp_path: Path) -> None:
    make_fake_job(tmp_path / "sweep" / "0", "cleanup", "extrinsic", 0, make_metrics())
    make_fake_job(tmp_path / "sweep" / "1", "cleanup", "extrinsic", 1, make_metrics(), summary={})
    make_fake_job(tmp_path / "sweep" / "2", "cleanup", "extrinsic", 2, make_metrics(steps=3),
                  summary={"status": "failed", "error": "CUDA OOM"})
    make_fake_job(tmp_path / "sweep" / "3", "cleanup", "extrinsic", 3, None)
    broken = make_fake_job(tmp_path / "sweep" / "5", "cleanup", "extrinsic", 5, make_metrics())
    (broken / ".hydra" / "config.yaml").write_text("env: [unclosed\n")
    with open(tmp_path / "sweep" / "4.csv", "w") as f:  # unrelated files are ignored
        f.write("x\n")
    runs = discover([tmp_path / "sweep"])
    assert [r.status for r in runs] == ["complete", "partial", "failed", "failed", "failed"]
    assert "config lacks env.name" in runs[4].problems
    assert "no summary.json" in runs[1].problems
    assert any("CUDA OOM" in p for p in runs[2].problems)
    assert "no metrics.csv" in runs[3].problems


def test_torn_last_metrics_line_is_skipped(tmp_path: Path) -> None:
    job = make_fake_job(tmp_path / "j", "cleanup", "extrinsic", 0, make_metrics(steps=5))
    with open(job / "metrics.csv", "a") as f:
        f.write("60.0,5,10")  # a crash mid-write
    (run,) = discover([job])
    assert run.metrics["agent_steps"].tolist()[:5] == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert final_value(run, "collective_reward", 50) == 50.0


def test_grouping_by_hyperparameters_with_seeds_as_replicates(tmp_path: Path) -> None:
    for seed in range(3):
        for beta in (0.1, 0.2):
            make_fake_job(tmp_path / f"b{beta}_s{seed}", "cleanup", "influence", seed, make_metrics(),
                          {"reward.beta": beta})
    settings = group_settings(discover([tmp_path]))
    assert len(settings) == 2
    assert all(s.seeds == [0, 1, 2] for s in settings)
    assert {s.params["reward.beta"] for s in settings} == {0.1, 0.2}
    a = {"env": {"name": "x"}, "reward": {"name": "r", "beta": 1}, "model": {"a": 1, "b": 2}, "seed": 0}
    b = {"seed": 7, "model": {"b": 2, "a": 1}, "reward": {"beta": 1, "name": "r"}, "env": {"name": "x"}}
    assert setting_id(a) == setting_id(b)


def test_best_setting_selection(tmp_path: Path) -> None:
    for seed in range(3):
        for beta, level in ((0.1, 10.0), (0.2, 30.0), (0.3, 20.0)):
            make_fake_job(tmp_path / f"b{beta}_s{seed}", "cleanup", "influence", seed,
                          make_metrics(agent_rewards=[level + seed] * 5), {"reward.beta": beta})
    make_fake_job(tmp_path / "a3c", "cleanup", "extrinsic", 0, make_metrics(agent_rewards=[1] * 5))
    best = best_settings(group_settings(discover([tmp_path])), 50)
    assert best[("cleanup", "influence")].params["reward.beta"] == 0.2
    assert best[("cleanup", "extrinsic")].reward == "extrinsic"


def _apples(*per_agent: float) -> dict[str, float]:
    return {f"apples_agent_{i}": a for i, a in enumerate(per_agent)}


def test_harvest_seed_exclusion_tests_apples_collected(tmp_path: Path) -> None:
    """§10.5.3 'failed to learn to collect apples': a fined agent that collects apples stays in,
    an agent with a positive return that collects none is out."""
    fined = make_fake_job(tmp_path / "fined", "harvest", "extrinsic", 0,
                          make_metrics(agent_rewards=[50, 60, 70, 80, -20], extra=_apples(50, 60, 70, 80, 30)))
    idle = make_fake_job(tmp_path / "idle", "harvest", "extrinsic", 1,
                         make_metrics(agent_rewards=[50, 60, 70, 80, 2], extra=_apples(50, 60, 70, 80, 0.5)))
    run_fined, run_idle = discover([fined, idle])  # sorted by path
    assert not harvest_exclusion(run_fined, 5.0, 1.0, 50).excluded
    check = harvest_exclusion(run_idle, 5.0, 1.0, 50)
    assert check.excluded and "apples_agent_4" in check.reason and "apples per episode 0.5 ≤ 5" in check.reason
    assert not harvest_exclusion(run_idle, 0.1, 1.0, 50).excluded


def test_harvest_seed_exclusion_falls_back_to_returns_without_apples_columns(tmp_path: Path) -> None:
    lazy = make_fake_job(tmp_path / "lazy", "harvest", "extrinsic", 1, make_metrics(agent_rewards=[50, 60, 70, 80, 0.5]))
    (run,) = discover([lazy])
    check = harvest_exclusion(run, 5.0, 1.0, 50)
    assert check.excluded and "reward_agent_4" in check.reason and "fell back" in check.reason


# ---------------------------------------------------------------------------------- tables
def _table4_sweep(root: Path) -> None:
    """Cleanup: A3C finals 80/90/100, influence 300/310/320; Harvest: influence only."""
    for seed, level in enumerate((80.0, 90.0, 100.0)):
        make_fake_job(root / f"a3c_{seed}", "cleanup", "extrinsic", seed, make_metrics(agent_rewards=[level / 5] * 5))
    for seed, level in enumerate((300.0, 310.0, 320.0)):
        make_fake_job(root / f"inf_{seed}", "cleanup", "influence", seed, make_metrics(agent_rewards=[level / 5] * 5),
                      {"reward.beta": 0.146, "reward.divergence": "jsd"})
        make_fake_job(root / f"hinf_{seed}", "harvest", "influence", seed, make_metrics(agent_rewards=[level / 5] * 5))


def test_table4_numbers(tmp_path: Path) -> None:
    _table4_sweep(tmp_path)
    best = best_settings(group_settings(discover([tmp_path])), 50)
    frame = table4_frame(best, 50, 0.95).set_index(["model", "env"])
    a3c = frame.loc[("extrinsic", "cleanup")]
    assert a3c["mean"] == pytest.approx(90.0) and a3c["n"] == 3 and a3c["paper"] == 89
    half = sps.t.ppf(0.975, 2) * 10 / np.sqrt(3)
    assert (a3c["lo"], a3c["hi"]) == pytest.approx((90 - half, 90 + half))
    assert a3c["p_vs_paper_ia"] == pytest.approx(sps.ttest_1samp([80, 90, 100], 275).pvalue)
    assert frame.loc[("influence", "cleanup")]["mean"] == pytest.approx(310.0)
    assert frame.loc[("moa_influence", "harvest")]["n"] == 0


def test_table_markdown_and_latex() -> None:
    t = Table("T_1 & co", ["a", "b_c"], [["**1.0**", "50%"]], ["note"])
    assert "| **1.0** | 50% |" in t.markdown()
    latex = t.latex()
    assert r"\textbf{1.0} & 50\% \\" in latex and r"b\_c" in latex and r"T\_1 \& co" in latex


def test_hparam_table_shows_ours_next_to_paper(tmp_path: Path) -> None:
    _table4_sweep(tmp_path)
    settings = group_settings(discover([tmp_path]))
    table = hparam_table(1, best_settings(settings, 50), settings, 50)
    text = table.markdown()
    assert "| Influence weight β |" in text
    row = next(r for r in table.rows if r[0] == "Influence weight β")
    col = table.header.index("Cleanup Influence")
    assert row[col] == "0.146 / .146"
    assert next(r for r in table.rows if r[0] == "Policy comparison")[col] == "jsd / JSD"
    assert "no runs / 3" in next(r for r in table.rows if r[0] == "Number of influencers")


def test_rliable_aggregates(tmp_path: Path) -> None:
    _table4_sweep(tmp_path)
    best = best_settings(group_settings(discover([tmp_path])), 50)
    frame = rliable_frame(best, 50, reps=200, confidence=0.95, seed=0)
    cleanup = frame[frame.scope == "cleanup"].set_index("model")
    assert cleanup.loc["extrinsic", "iqm"] == pytest.approx(90.0)
    assert cleanup.loc["influence", "p_improve_vs_a3c"] == pytest.approx(1.0)
    assert cleanup.loc["influence", "iqm_lo"] <= 310 <= cleanup.loc["influence", "iqm_hi"]
    assert set(frame[frame.scope == "all"].model) == {"influence"}  # the only model on both games
    assert np.isnan(cleanup.loc["influence", "p_improve_vs_baseline"])  # no visible-actions runs


def test_rliable_compares_each_influence_model_with_its_own_baseline(tmp_path: Path) -> None:
    """P(MOA influence > MOA baseline) beside P(MOA influence > A3C) (the paper's Fig 7 comparison)."""
    for reward, level in (("extrinsic", 10.0), ("moa", 30.0), ("moa_influence", 20.0)):
        for seed in range(3):
            make_fake_job(tmp_path / f"{reward}{seed}", "cleanup", reward, seed,
                          make_metrics(agent_rewards=[level + seed] * 5))
    best = best_settings(group_settings(discover([tmp_path])), 50)
    frame = rliable_frame(best, 50, reps=200, confidence=0.95, seed=0).set_index("model")
    assert frame.loc["moa_influence", "p_improve_vs_a3c"] == pytest.approx(1.0)
    assert frame.loc["moa_influence", "p_improve_vs_baseline"] == pytest.approx(0.0)
    assert np.isnan(frame.loc["moa", "p_improve_vs_baseline"]) and frame.loc["moa", "n"] == 3
    text = rliable_table(frame.reset_index(), 0.95).markdown()
    assert "| 0.00 [0.00, 0.00] vs MOA baseline |" in text


def test_influence_reward_correlation(tmp_path: Path) -> None:
    jobs = []
    for seed in range(4):
        rewards = [10.0 + seed, 20.0, 30.0, 40.0 + seed, 50.0]
        infl = {f"influence_{k}_{j}": 0.01 * rewards[j] for k in range(5) for j in range(5) if k != j}
        jobs.append(make_fake_job(tmp_path / str(seed), "cleanup", "comm_influence", seed,
                                  make_metrics(agent_rewards=rewards, extra=infl)))
    pairs = influence_reward_pairs(discover(jobs), 50)
    assert len(pairs) == 20
    rho, p, n = spearman(pairs)
    assert rho == pytest.approx(1.0) and n == 20


# ---------------------------------------------------------------------------- end to end
def _full_sweep(root: Path) -> None:
    """Both games, every Table 4 model plus the ablations, 3 seeds, comm metrics and eval files."""
    rng = np.random.default_rng(0)
    models = ["extrinsic", "visible", "influence", "comm", "comm_influence", "moa", "moa_influence",
              "inequity_aversion", "collective"]
    for env in ("cleanup", "harvest"):
        for m_i, reward in enumerate(models):
            for seed in range(3):
                rewards = list(10.0 + m_i + rng.normal(0, 1, 5))
                extra = {"influence_mean": 0.1}
                if reward.startswith("comm"):
                    extra.update({"speaker_consistency": 0.5, "ic_symbol_action": 0.1, "ic_action_action": 0.2,
                                  "ic_symbol_action_influential": 0.3, "ic_action_action_influential": 0.4,
                                  "influential_moment_frac": 0.08})
                    extra.update({f"influence_{k}_{j}": 0.01 * rewards[j] for k in range(5) for j in range(5) if k != j})
                df = make_metrics(steps=40, interval=50.0, agent_rewards=rewards, extra=extra)
                df["collective_reward"] += rng.normal(0, 1, len(df))
                make_fake_job(root / env / reward / str(seed), env, reward, seed, df)
    make_fake_job(root / "harvest" / "extrinsic" / "9", "harvest", "extrinsic", 9,
                  make_metrics(agent_rewards=[30, 30, 30, 30, 0], extra=_apples(30, 30, 30, 30, 0)))
    make_fake_job(root / "cleanup" / "extrinsic" / "8", "cleanup", "extrinsic", 8, make_metrics(),
                  summary={"status": "failed", "error": "boom"})
    for reward, opened in (("extrinsic", 0), ("influence", 1)):
        job = make_fake_job(root / "box" / reward, "box_trapped", reward, 0,
                            make_metrics(agent_rewards=[1, 1], extra={"box_opened": float(opened)}))
        (job / "eval").mkdir()
        pd.DataFrame([{"episode": e, "t": t, "agent": a, "action": 7 if (opened and t == 1 and a == 0) else 0,
                       "open_box": int(opened and t == 1 and a == 0), "influence": 0.5 if t == 1 else 0.01}
                      for e in range(3) for t in range(5) for a in range(2)]).to_csv(job / "eval" / "box_trapped.csv",
                                                                                     index=False)
        pd.DataFrame([{"env": "cleanup", "num_cooperators": n, "role": role, "payoff": n + (2 if role == "defector" else 0)}
                      for n in range(5) for role in ("cooperator", "defector")]).to_csv(job / "eval" / "schelling.csv",
                                                                                       index=False)


def test_cli_end_to_end(tmp_path: Path) -> None:
    _full_sweep(tmp_path / "sweep")
    out = tmp_path / "out"
    code = main([str(tmp_path / "sweep"), "--out", str(out), "--bootstrap-reps", "100", "--window-points", "20"])
    assert code == 0
    report = (out / "report.md").read_text()
    assert "1 failed" in report and "boom" in report
    assert "**Applied**" in report and "| yes | apples_agent_4 final apples per episode 0 ≤ 5 |" in report
    assert "Excluded: seed 9 of extrinsic" in report
    for name in ("table1", "table2", "table3", "table4", "settings", "rliable", "box_trapped"):
        assert (out / "tables" / f"{name}.md").stat().st_size > 0
        assert (out / "tables" / f"{name}.tex").stat().st_size > 0
    for name in ("collective_basic", "collective_comm", "collective_moa", "equality_weighted_basic",
                 "top5_basic", "prosocial_collective", "comm_metrics", "influence_reward_correlation",
                 "box_trapped_open_box", "box_trapped_influence", "schelling", "rliable", "collective_box_trapped"):
        for ext in ("png", "pdf"):
            path = out / "figures" / f"{name}.{ext}"
            assert path.stat().st_size > 1000, path
            assert f"figures/{name}.{ext}" in report or ext == "png"
    assert "a collective reward every 50 env steps: final values span 2,500 env steps, the window 1,000 env steps" in report
    # Table 4 says how short the runs are before any comparison with the paper.
    assert "> Runs of up to 2e+03 env steps: 0.00% of the paper's 3e+08. Their final values are taken before" in report
    finals = pd.read_csv(out / "tables" / "finals.csv")
    assert 9 not in finals[finals.env == "harvest"].seed.tolist()  # excluded
    box = (out / "tables" / "box_trapped.md").read_text()
    assert "100%" in box and "0: 100%" in box and "0: 0%" in box  # pooled and per seed
    assert "| 0.5 / 0.01 |" in box  # the influence column: opening steps / the opener's other steps


def test_archive_keeps_what_analysis_reads(tmp_path: Path) -> None:
    """A gzipped archive of a sweep gives the same Box-trapped table; checkpoints stay behind."""
    _full_sweep(tmp_path / "sweep")
    (tmp_path / "sweep" / "box" / "influence" / "checkpoint.pt").write_bytes(b"x" * 100)
    (tmp_path / "sweep" / "box" / "influence" / "eval" / "moa_probe.json").write_text('{"influence": 1e-6}')
    assert archive_main([str(tmp_path / "sweep" / "box"), "--to", str(tmp_path / "arch")]) == 0
    job = tmp_path / "arch" / "box" / "influence"
    assert sorted(str(p.relative_to(job)) for p in job.rglob("*") if p.is_file()) == [
        ".hydra/config.yaml", "eval/box_trapped.csv.gz", "eval/moa_probe.json", "eval/schelling.csv.gz",
        "metrics.csv.gz", "summary.json"]
    assert json.loads((job / "eval" / "moa_probe.json").read_text()) == {"influence": 1e-6}  # kept as it is
    first = (job / "metrics.csv.gz").read_bytes()
    assert archive_main([str(tmp_path / "sweep" / "box" / "influence"), "--to", str(tmp_path / "arch2")]) == 0
    assert (tmp_path / "arch2" / "influence" / "metrics.csv.gz").read_bytes() == first  # a job folder as source; same bytes
    runs = discover([tmp_path / "arch"])
    original = discover([tmp_path / "sweep" / "box"])
    assert [r.status for r in runs] == ["complete", "complete"]
    pd.testing.assert_frame_equal(runs[1].metrics, original[1].metrics)
    for out, src in (("out_arch", tmp_path / "arch"), ("out_src", tmp_path / "sweep" / "box")):
        assert main([str(src), "--out", str(tmp_path / out), "--bootstrap-reps", "50"]) == 0
    tables = [(tmp_path / out / "tables" / "box_trapped.md").read_text() for out in ("out_arch", "out_src")]
    assert tables[0] == tables[1] and "0: 100%" in tables[0]
    assert archive_main([str(tmp_path / "missing"), "--to", str(tmp_path / "arch")]) == 2


def test_archive_skips_unfinished_jobs_unless_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A job still running (or killed) is not archived as if finished; `--include-partial` keeps it."""
    make_fake_job(tmp_path / "sweep" / "0_done", "harvest", "extrinsic", 0, make_metrics())
    make_fake_job(tmp_path / "sweep" / "1_running", "harvest", "extrinsic", 1, make_metrics(), summary={"status": "running"})
    make_fake_job(tmp_path / "sweep" / "2_none", "harvest", "extrinsic", 2, make_metrics(), summary={})
    assert archive_main([str(tmp_path / "sweep"), "--to", str(tmp_path / "arch")]) == 0
    assert sorted(p.name for p in (tmp_path / "arch" / "sweep").iterdir()) == ["0_done"]
    out = capsys.readouterr().out
    assert "1_running: status running" in out and "2_none: status no summary" in out
    assert "archived 1 job folder(s)" in out
    assert archive_main([str(tmp_path / "sweep"), "--to", str(tmp_path / "all"), "--include-partial"]) == 0
    assert sorted(p.name for p in (tmp_path / "all" / "sweep").iterdir()) == ["0_done", "1_running", "2_none"]


def test_an_interrupted_archive_leaves_the_previous_copy_or_none(tmp_path: Path, monkeypatch) -> None:
    """A kill or full disk mid-copy never leaves a half-copied job folder that analysis would read."""
    import analysis.archive as archive_module

    make_fake_job(tmp_path / "sweep" / "0_done", "harvest", "extrinsic", 0, make_metrics())
    args = [str(tmp_path / "sweep"), "--to", str(tmp_path / "arch")]

    def full_disk(src: Path, dst: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(archive_module, "_gzip", full_disk)  # fails after summary.json is copied
    with pytest.raises(OSError):
        archive_main(args)
    assert discover([tmp_path / "arch"]) == [] and not (tmp_path / "arch" / "sweep" / "0_done").exists()
    monkeypatch.undo()
    assert archive_main(args) == 0
    first = discover([tmp_path / "arch"])
    assert [r.status for r in first] == ["complete"]
    assert [p.name for p in (tmp_path / "arch" / "sweep").iterdir()] == ["0_done"], "no staging copy left"
    monkeypatch.setattr(archive_module, "_gzip", full_disk)
    with pytest.raises(OSError):
        archive_main(args)
    again = discover([tmp_path / "arch"])
    assert [r.status for r in again] == ["complete"]
    pd.testing.assert_frame_equal(again[0].metrics, first[0].metrics)


def test_harvest_exclusion_applies_by_default_and_can_be_kept(tmp_path: Path) -> None:
    for seed, last in ((0, 0.0), (1, 30.0)):
        make_fake_job(tmp_path / "s" / str(seed), "harvest", "extrinsic", seed,
                      make_metrics(agent_rewards=[30, 30, last], extra=_apples(30, 30, last)))
    report = analyse([tmp_path / "s"], tmp_path / "out", Options(bootstrap_reps=50)).read_text()
    assert "**Applied**" in report and "Excluded: seed 0 of extrinsic" in report
    assert pd.read_csv(tmp_path / "out" / "tables" / "finals.csv").seed.tolist() == [1]
    assert main([str(tmp_path / "s"), "--out", str(tmp_path / "kept"), "--keep-harvest-failures",
                 "--bootstrap-reps", "50"]) == 0
    assert "**Not applied**" in (tmp_path / "kept" / "report.md").read_text()
    assert pd.read_csv(tmp_path / "kept" / "tables" / "finals.csv").seed.tolist() == [0, 1]


def test_cli_without_runs_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no job folders" in capsys.readouterr().err


def test_analysis_never_imports_training_code() -> None:
    """Only `si.jobfiles`, `si.setting` and `si.wandb_names` (the job-folder rules, the setting id
    and the W&B metric names it shares with the trainer and the launcher, standard library only)."""
    code = ("import sys, analysis.__main__, analysis.figures, analysis.report; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('si', 'torch') "
            "and m not in ('si', 'si.jobfiles', 'si.setting', 'si.wandb_names')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_wandb_runs_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeRun:
        id, state, summary = "abc", "finished", {"status": "complete"}
        config = {"env.name": "cleanup", "reward": {"name": "extrinsic"}, "seed": 3, "_wandb": {}}

        def scan_history(self) -> list[dict[str, float]]:
            return [{"_step": i, "agent_steps": 10.0 * (i + 1), "charts/collective_reward": 5.0} for i in range(4)]

    class FakeApi:
        def runs(self, project: str) -> list[FakeRun]:
            assert project == "me/proj"
            return [FakeRun()]

    monkeypatch.setitem(sys.modules, "wandb", type(sys)("wandb"))
    monkeypatch.setattr(sys.modules["wandb"], "Api", FakeApi, raising=False)
    assert main(["--wandb", "me/proj", "--out", str(tmp_path / "out"), "--bootstrap-reps", "20"]) == 0
    finals = pd.read_csv(tmp_path / "out" / "tables" / "finals.csv")
    assert finals[["env", "reward", "seed", "collective_reward"]].values.tolist() == [["cleanup", "extrinsic", 3, 5.0]]


def test_rliable_interval_estimates() -> None:
    """The real `rliable.library.get_interval_estimates` call: IQM and probability of improvement
    with percentile stratified-bootstrap CIs, reproducible for a fixed seed."""
    x = np.arange(1.0, 9.0)[:, None]  # 8 runs × 1 task
    out = interval_estimates({"a": x}, "iqm", reps=200, confidence=0.9, seed=0)
    point, lo, hi = out["a"]
    assert point == pytest.approx(4.5)  # mean of the middle half 3..6
    assert 1.0 <= lo < point < hi <= 8.0
    assert interval_estimates({"a": x}, "iqm", reps=200, confidence=0.9, seed=0) == out
    out = interval_estimates({"a>b": (x, x - 10), "b>a": (x - 10, x)}, "probability_of_improvement",
                             reps=50, confidence=0.9, seed=0)
    assert out["a>b"] == pytest.approx((1.0, 1.0, 1.0))
    assert out["b>a"] == pytest.approx((0.0, 0.0, 0.0))


def test_archived_box_trapped_runs_reproduce_documented_table(tmp_path: Path) -> None:
    """`archive/box_trapped` (the β = 20, lr 5e-4 warm-up protocol) still gives the numbers docs/results.md quotes."""
    assert main([str(REPO / "archive" / "box_trapped"), "--out", str(tmp_path),
                 "--bootstrap-reps", "50"]) == 0
    box = (tmp_path / "tables" / "box_trapped.md").read_text()
    assert "| 2% of 500 | 0: 1%, 1: 1%, 2: 1%, 3: 2%, 4: 4% |" in box
    assert "| 77% of 500 | 0: 95%, 1: 96%, 2: 18%, 3: 90%, 4: 85% | 0.266 / 0.000226 |" in box


def test_keys_added_later_at_their_default_keep_the_setting_id() -> None:
    from analysis.runs import setting_id

    old = {"env": {"name": "harvest"}, "reward": {"name": "extrinsic"}, "optim": {"lr_init": 0.001}}
    new = {**old, "optim": {"lr_init": 0.001, "optimizer": "adam", "rmsprop_alpha": 0.99, "rmsprop_eps": 0.1,
                            "workers": 0, "envs_per_worker": 8}}
    assert setting_id(new) == setting_id(old)
    assert setting_id({**new, "optim": {**new["optim"], "optimizer": "rmsprop"}}) != setting_id(old)


def test_the_map_agents_and_horizon_are_part_of_the_setting_when_not_the_games_defaults() -> None:
    from analysis.runs import setting_id

    base = {"env": {"name": "harvest", "map": "harvest", "map_file": None, "num_agents": 5, "horizon": 1000},
            "reward": {"name": "extrinsic"}}
    assert setting_id(base) == setting_id({**base, "env": {"name": "harvest"}})  # runs from before these keys
    for key, value in (("map", "harvest_mini"), ("map_file", "maps/big.txt"), ("num_agents", 3), ("horizon", 500)):
        assert setting_id({**base, "env": {**base["env"], key: value}}) != setting_id(base), key


def test_the_synchronous_learners_batch_is_part_of_the_setting() -> None:
    """64 and 1024 envs per update are two settings; A3C's `budget.num_envs` is unused, so not."""
    a2c = {"env": {"name": "harvest"}, "reward": {"name": "extrinsic"}, "optim": {"algo": "a2c"},
           "budget": {"num_envs": 64, "agent_steps": 5_000_000}, "seed": 0}
    assert setting_id(a2c) != setting_id({**a2c, "budget": {"num_envs": 1024, "agent_steps": 5_000_000}})
    assert setting_id(a2c) == setting_id({**a2c, "budget": {"num_envs": 64, "agent_steps": 10_000_000}})
    a3c = {**a2c, "optim": {"algo": "a3c"}}
    assert setting_id(a3c) == setting_id({**a3c, "budget": {"num_envs": 1024, "agent_steps": 5_000_000}})
    scaled = {**a2c, "budget": {**a2c["budget"], "lr_ref_envs": 16}}
    assert setting_id(scaled) != setting_id(a2c)  # the batch rule changes the learning rate
    assert setting_id({**a2c, "budget": {**a2c["budget"], "lr_ref_envs": None}}) == setting_id(a2c)


def test_until_cuts_longer_runs_so_runs_of_different_lengths_compare_at_one_step(tmp_path: Path) -> None:
    """`--until`: a run to 2× the steps is read up to the cut, beside a run that ends there."""
    for seed, steps in ((0, 100), (1, 200)):
        df = make_metrics(steps=steps, interval=10.0)
        df["collective_reward"] = np.arange(steps, dtype=float)  # point i holds i
        make_fake_job(tmp_path / "sweep" / f"{seed}_job", "cleanup", "moa", seed, df)
    out = tmp_path / "out"
    assert main([str(tmp_path / "sweep"), "--out", str(out), "--until", "1000", "--final-points", "10",
                 "--bootstrap-reps", "50"]) == 0
    finals = pd.read_csv(out / "tables" / "finals.csv").set_index("seed")["collective_reward"]
    assert finals.tolist() == [pytest.approx(94.5), pytest.approx(94.5)]  # both: points 90-99 (steps 910-1000)
    report = (out / "report.md").read_text()
    assert "1_job: cut at 1e+03 env steps (--until) of the 2e+03 it ran" in report and "0_job: cut" not in report
    assert main([str(tmp_path / "sweep"), "--out", str(out), "--final-points", "10", "--bootstrap-reps", "50"]) == 0
    finals = pd.read_csv(out / "tables" / "finals.csv").set_index("seed")["collective_reward"]
    assert finals.tolist() == [pytest.approx(94.5), pytest.approx(194.5)]  # without it, each run to its end
    assert main([str(tmp_path / "sweep"), "--out", str(out), "--until", "1500", "--bootstrap-reps", "50"]) == 0
    assert "0_job: ends at 1e+03 env steps, before --until 1.5e+03" in (out / "report.md").read_text()


def archived_table4(folders: list[str], env: str, out: Path) -> pd.DataFrame:
    """Table 4 of `archive/<folder>...` as the docs command writes it, the rows of ``env`` by model."""
    roots = [str(REPO / "archive" / folder) for folder in folders]
    assert main([*roots, "--out", str(out), "--window-points", "10", "--bootstrap-reps", "50"]) == 0
    return pd.read_csv(out / "tables" / "table4.csv").set_index(["model", "env"]).xs(env, level="env")


def test_archived_harvest_runs_reproduce_documented_table(tmp_path: Path) -> None:
    """`archive/harvest_1e7` still gives the Table 4 finals docs/results.md quotes for Harvest."""
    t4 = archived_table4(["harvest_1e7"], "harvest", tmp_path)
    finals = {m: round(float(t4.loc[m, "mean"]), 1) for m in ("extrinsic", "influence", "moa_influence")}
    assert finals == {"extrinsic": 324.8, "influence": 441.1, "moa_influence": 391.4}
    assert t4.loc[["extrinsic", "influence", "moa_influence"], "n"].tolist() == [3, 5, 3]
    assert round(float(t4.loc["inequity_aversion", "mean"]), 1) == 556.2 and t4.loc["inequity_aversion", "n"] == 3
    assert "| Inequity aversion (Hughes et al.) | 275 | - | 0 | - | 750 | 556.2 [541.8, 570.5] | 3 |" in (tmp_path / "tables" / "table4.md").read_text()
    assert "| Harvest | Inequity aversion | 3 | 556.2 [552.6, 560.1] | 1.00 [1.00, 1.00] |" in (tmp_path / "tables" / "rliable.md").read_text()
    # §10.5.3: the MOA baseline's seed 0 has an agent that stopped collecting apples after 2M
    assert "Excluded: seed 0 of moa (" in (tmp_path / "report.md").read_text()


def test_archived_cleanup_runs_reproduce_documented_table(tmp_path: Path) -> None:
    """`archive/cleanup_1e7` still gives the Table 4 finals docs/results.md quotes for Cleanup."""
    t4 = archived_table4(["cleanup_1e7"], "cleanup", tmp_path)
    models = ["extrinsic", "influence", "moa_influence"]
    assert t4.loc[models, "mean"].round(1).tolist() == [14.6, 2.9, 12.6]
    assert t4.loc[models, "n"].tolist() == [3, 3, 3]
    assert round(float(t4.loc["inequity_aversion", "mean"]), 1) == 21.1 and t4.loc["inequity_aversion", "n"] == 3
    assert "| Inequity aversion (Hughes et al.) | 275 | 21.1 [16.3, 25.9] | 3 |" in (tmp_path / "tables" / "table4.md").read_text()
    finals = pd.read_csv(tmp_path / "tables" / "finals.csv").set_index("reward").sort_values("seed")
    assert finals.loc["visible", "collective_reward"].round(1).tolist() == [13.5, 15.2, 14.9]
    rliable = (tmp_path / "tables" / "rliable.md").read_text()
    assert "| Cleanup | Visible actions baseline | 3 | 14.5 [" in rliable
    assert "| 0.00 [0.00, 0.00] | 0.00 [0.00, 0.00] vs Visible actions baseline |" in rliable  # basic influence


def test_archived_cleanup_2e7_runs_reproduce_documented_table(tmp_path: Path) -> None:
    """`archive/cleanup_2e7` still gives the Table 4 final docs/results.md quotes ("Cleanup to 2e7")."""
    t4 = archived_table4(["cleanup_2e7"], "cleanup", tmp_path)
    finals = {m: round(float(t4.loc[m, "mean"]), 1) for m in ("extrinsic", "moa_influence")}
    assert finals == {"extrinsic": 13.8, "moa_influence": 12.8}
    assert t4.loc[["extrinsic", "moa_influence"], "n"].tolist() == [3, 3]
    table4 = (tmp_path / "tables" / "table4.md").read_text()
    assert "| A3C baseline | 89 | 13.8 [11.0, 16.6] | 3 |" in table4
    assert "| Influence - Model of other agents | 392 | 12.8 [9.3, 16.3] | 3 |" in table4
    finals = pd.read_csv(tmp_path / "tables" / "finals.csv").set_index(["reward", "seed"])
    assert finals.loc["moa", "collective_reward"].round(1).tolist() == [12.5, 17.9, 13.7]
    mean, lo, hi = t_interval(finals.loc["moa", "collective_reward"].to_numpy(), 0.95)  # not a Table 4 row
    assert [round(mean, 1), round(lo, 1), round(hi, 1)] == [14.7, 7.7, 21.7]
    rliable = (tmp_path / "tables" / "rliable.md").read_text()
    assert "| Cleanup | Influence MOA | 3 | 12.8 [11.9, 14.4] | 0.22 [" in rliable  # P vs A3C, then vs the MOA baseline
    assert "| 0.22 [0.00, 0.67] vs MOA baseline |" in rliable
    assert "| Cleanup | MOA baseline | 3 | 14.7 [12.5, 17.9] | 0.44 [0.00, 1.00] |" in rliable


def test_archived_cleanup_moa_baseline_read_at_1e7_gives_the_documented_finals(tmp_path: Path) -> None:
    """The Cleanup MOA baseline's 1e7 row comes from its runs to 2e7, cut with `--until 1e7`."""
    jobs = [str(REPO / "archive" / "cleanup_2e7" / f"0_cleanup-moa-s{seed}") for seed in range(3)]
    assert main([*jobs, "--until", "1e7", "--out", str(tmp_path), "--window-points", "10", "--bootstrap-reps", "50"]) == 0
    finals = pd.read_csv(tmp_path / "tables" / "finals.csv").set_index("seed")
    assert finals["collective_reward"].round(1).tolist() == [15.9, 16.0, 10.9] and (finals["agent_steps"] <= 1e7).all()
    mean, lo, hi = t_interval(finals["collective_reward"].to_numpy(), 0.95)
    assert [round(mean, 1), round(lo, 1), round(hi, 1)] == [14.3, 6.9, 21.6]


def test_archived_cleanup_entropy_ablation_is_the_best_basic_influence_setting(tmp_path: Path) -> None:
    """With `archive/cleanup_1e7_entropy` beside it, basic influence's best setting is A3C's entropy cost."""
    t4 = archived_table4(["cleanup_1e7", "cleanup_1e7_entropy"], "cleanup", tmp_path)
    assert round(float(t4.loc["influence", "mean"]), 1) == 12.2 and t4.loc["influence", "n"] == 3
    settings = (tmp_path / "tables" / "settings.md").read_text()
    assert "| 12.2 | [9.8, 14.6] | 3 | 0 1 2 | optim.entropy=0.00176 |" in settings
    assert "| 2.9 | [-1.1, 7.0] | 3 | 0 1 2 | optim.entropy=0.000248 |" in settings


def test_unfinished_runs_are_left_out_by_default_and_every_skipped_folder_listed(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for seed, level in enumerate((100.0, 110.0)):
        make_fake_job(sweep / f"{seed}_job", "cleanup", "extrinsic", seed, make_metrics(agent_rewards=[level] * 5))
    make_fake_job(sweep / "2_job", "cleanup", "extrinsic", 2, make_metrics(steps=8, agent_rewards=[-500] * 5),
                  summary={"status": "preempted"})
    (sweep / "3_job").mkdir()  # created by the launcher, never started
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    report = analyse([sweep], tmp_path / "out", Options(bootstrap_reps=50)).read_text()
    assert pd.read_csv(tmp_path / "out" / "tables" / "finals.csv").seed.tolist() == [0, 1]
    assert "1 unfinished (left out" in report and "| 80 |" in report  # listed with the steps reached
    assert "3_job`: no .hydra/config.yaml" in report
    analyse([sweep], tmp_path / "all", Options(bootstrap_reps=50, include_partial=True))
    assert pd.read_csv(tmp_path / "all" / "tables" / "finals.csv").seed.tolist() == [0, 1, 2]
    # Every table cell that averages an unfinished run says so, with the steps it reached.
    for table in ("table4", "settings"):
        assert "† seed 2 at 80" in (tmp_path / "all" / "tables" / f"{table}.md").read_text(), table
    assert "† seed" not in (tmp_path / "out" / "tables" / "table4.md").read_text()


def test_the_config_a_job_was_started_with_wins_over_a_rewritten_hydra_config(tmp_path: Path) -> None:
    job = make_fake_job(tmp_path / "j", "cleanup", "influence", 0, make_metrics(), {"reward.beta": 0.1})
    started = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
    (job / "job_config.yaml").write_text(yaml.safe_dump(started))
    started["reward"]["beta"] = 9.0  # a refused rerun rewrote Hydra's copy
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(started))
    (run,) = discover([job])
    assert run.config["reward"]["beta"] == 0.1


@pytest.mark.parametrize("damage, reason", [
    ("junk", "'oops' is not a number"), ("huge", "1e+30 is not a plausible value"),
    ("shifted", "cells, the header has"), ("gap", "rows missing between agent_steps 20 and 40")])
def test_invalid_metrics_are_listed_and_left_out(tmp_path: Path, damage: str, reason: str) -> None:
    make_fake_job(tmp_path / "ok", "cleanup", "extrinsic", 0, make_metrics())
    bad = make_fake_job(tmp_path / "bad", "cleanup", "extrinsic", 1, make_metrics())
    lines = (bad / "metrics.csv").read_text().splitlines()
    cells = lines[2].split(",")
    if damage == "junk":
        cells[-1] = "oops"
    elif damage == "huge":
        cells[-1] = "1e+30"
    elif damage == "shifted":
        cells.insert(1, "7")
    lines[2] = ",".join(cells)
    if damage == "gap":
        del lines[3]
    (bad / "metrics.csv").write_text("\n".join(lines) + "\n")
    report = analyse([tmp_path], tmp_path / "out", Options(bootstrap_reps=50)).read_text()
    assert pd.read_csv(tmp_path / "out" / "tables" / "finals.csv").seed.tolist() == [0]
    assert "invalid metrics.csv" in report and reason in report


def test_learning_speed_table_reads_marks_peak_and_wall_time_per_setting_folder(tmp_path: Path) -> None:
    from analysis.learning import main as learning_main

    steps = np.arange(1, 101) * 100_000.0  # 100 points to 1e7
    for label, slope in (("fast", 2.0), ("slow", 1.0)):
        for seed in range(2):
            reward = np.minimum(steps * slope / 1e4, 1000.0) + seed  # rises, then flat at 1000 (+ seed)
            df = make_metrics(steps=100, interval=100_000.0, extra={"wall_time_s": steps / (1000.0 * slope)})
            df["collective_reward"] = reward
            make_fake_job(tmp_path / label / f"{seed}_job", "harvest", "extrinsic", seed, df)
    out = tmp_path / "out"
    assert learning_main([str(tmp_path / "fast"), str(tmp_path / "slow"), "--out", str(out),
                          "--marks", "1e6,5e6", "--mark-window", "300000"]) == 0
    t = pd.read_csv(out / "learning.csv").set_index("setting")
    # at 1M: points 800k, 900k, 1M → slope·(80, 90, 100) + 0.5 (seed mean)
    assert t.loc["fast", "at 1M"] == pytest.approx(180.5) and t.loc["slow", "at 1M"] == pytest.approx(90.5)
    assert t.loc["fast", "at 5M"] == pytest.approx(980.5) and t.loc["slow", "at 5M"] == pytest.approx(490.5)
    # peak: the first 10-point mean at the plateau (5.0M-5.9M); the slow one still rises at 1e7
    assert t.loc["fast", "peak"] == pytest.approx(1000.5) and t.loc["fast", "peak at (M)"] == pytest.approx(5.9)
    assert t.loc["slow", "peak"] == pytest.approx(955.5) and t.loc["slow", "peak at (M)"] == pytest.approx(10.0)
    assert t.loc["fast", "env-steps/s"] == pytest.approx(2000.0) and t.loc["fast", "seeds"] == 2
    assert (out / "learning_wall_clock.png").stat().st_size > 1000 and "fast" in (out / "learning.md").read_text()
    # reaching 500: the 10-point mean slope·10·(i − 4.5) + seed first ≥ 500 at point 30 (fast) and 55 (slow)
    assert learning_main([str(tmp_path / "fast"), str(tmp_path / "slow"), "--out", str(out), "--reach", "500"]) == 0
    t = pd.read_csv(out / "learning.csv").set_index("setting")
    assert t.loc["fast", "500 at (M)"] == pytest.approx(3.0) and t.loc["fast", "500 at (h)"] == pytest.approx(1500 / 3600)
    assert t.loc["slow", "500 at (M)"] == pytest.approx(5.5) and t.loc["slow", "500 at (h)"] == pytest.approx(5500 / 3600)
    assert learning_main([str(tmp_path / "fast"), str(tmp_path / "slow"), "--out", str(out), "--reach", "960"]) == 0
    t = pd.read_csv(out / "learning.csv").set_index("setting")
    assert t["reach 960"].tolist() == [2, 0] and np.isnan(t.loc["slow", "960 at (M)"])
    # LABEL=GLOB[,GLOB]: settings picked from folders that hold others; a glob matching nothing is left out
    assert learning_main([f"quick={tmp_path}/fast/*_job", f"mixed={tmp_path}/fast/0_job,{tmp_path}/slow/1_job",
                          f"none={tmp_path}/nothing*", "--out", str(out), "--marks", "1e6", "--mark-window", "300000"]) == 0
    t = pd.read_csv(out / "learning.csv").set_index("setting")
    assert t.index.tolist() == ["quick", "mixed"] and t["seeds"].tolist() == [2, 2]
    assert t.loc["quick", "at 1M"] == pytest.approx(180.5) and t.loc["mixed", "at 1M"] == pytest.approx((180 + 91) / 2)


def test_learning_per_seed_table_gives_final_values_and_last_points_of_chosen_columns(tmp_path: Path, capsys) -> None:
    from analysis.learning import main as learning_main

    for seed in range(2):
        df = make_metrics(steps=100, interval=100_000.0, extra={"wall_time_s": np.arange(1, 101) * 10.0})
        df["collective_reward"] = np.arange(100.0) + 10 * seed  # point i (0-based) holds i + 10·seed
        df["cleaned"] = np.where(np.arange(100) < 95, 0.0, 100.0 + seed)  # only the last 5 points clean
        df.loc[99, "cleaned"] = np.nan  # a point without the metric is skipped, not counted as 0
        make_fake_job(tmp_path / "a3c" / f"{seed}_job", "cleanup", "extrinsic", seed, df)
    out = tmp_path / "out"
    assert learning_main([str(tmp_path / "a3c"), "--out", str(out), "--marks", "5e6", "--columns", "cleaned,fires",
                          "--last-points", "4", "--final-points", "20"]) == 0
    seeds = pd.read_csv(out / "learning_seeds.csv").set_index("seed")
    assert seeds["setting"].tolist() == ["a3c", "a3c"]
    # final: the last 20 points, 80..99 (+10 for seed 1); at 5M: 4.7M-5.0M = points 46-49 (window 320k)
    assert seeds.loc[0, "final"] == pytest.approx(89.5) and seeds.loc[1, "final"] == pytest.approx(99.5)
    assert seeds.loc[1, "at 5M"] == pytest.approx(57.5)
    # cleaned: the last 4 logged values are points 95-98 (99 is NaN); fires was never logged
    assert seeds.loc[0, "cleaned, last 4"] == pytest.approx(100.0) and seeds.loc[1, "cleaned, last 4"] == pytest.approx(101.0)
    assert seeds["fires, last 4"].isna().all()
    setting = pd.read_csv(out / "learning.csv").set_index("setting")
    assert setting.loc["a3c", "final"] == pytest.approx(94.5) and setting.loc["a3c", "cleaned, last 4"] == pytest.approx(100.5)
    assert "Learning speed per seed" in (out / "learning_seeds.md").read_text()
    capsys.readouterr()
    assert learning_main([str(tmp_path / "a3c"), "--out", str(out), "--final-points", "20", "--until", "5e6"]) == 0
    assert capsys.readouterr().err.count("cut at 5e+06 env steps (--until) of the 1e+07 it ran") == 2
    seeds = pd.read_csv(out / "learning_seeds.csv").set_index("seed")
    assert seeds.loc[0, "final"] == pytest.approx(39.5) and seeds.loc[0, "env steps (M)"] == 5.0  # points 30-49
    assert (out / "learning_columns.png").stat().st_size > 1000  # one panel per --columns metric


def test_wandb_log_publishes_every_table_and_figure_as_one_analysis_run(tmp_path: Path, monkeypatch, capsys) -> None:
    from wandb_records import history, records, run_files

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    sweep = tmp_path / "sweep"
    for seed in range(2):
        make_fake_job(sweep / f"{seed}_job", "cleanup", "extrinsic", seed, make_metrics(agent_rewards=[10.0 + seed] * 5))
    out = tmp_path / "out"
    assert main([str(sweep), "--out", str(out), "--bootstrap-reps", "20", "--wandb-log", "me/proj"]) == 0
    (path,) = run_files(out)
    said = capsys.readouterr().out
    assert f"written offline to {path.parent}, not uploaded" in said and f"wandb sync {path.parent}" in said
    run = next(r.run for r in records(path) if r.WhichOneof("record_type") == "run")
    assert run.job_type == "analysis" and run.project == "proj" and run.entity == "me"
    (logged,) = history(path)
    tables = {p.stem for p in (out / "tables").glob("*.md")}
    figures = {p.stem for p in (out / "figures").glob("*.png")}
    assert "table4" in tables and figures
    assert {k for k in logged if k.startswith("table/")} == {f"table/{t}" for t in tables}
    assert {k for k in logged if k.startswith("figure/")} == {f"figure/{f}" for f in figures}
    assert logged["table/table4"]["_type"] == "table-file" and logged["figure/" + min(figures)]["_type"] == "image-file"
    table_file = next((path.parent / "files").rglob("table4_*.table.json"))
    data = json.loads(table_file.read_text())
    assert data["columns"][0] == "Model" and any("A3C" in row[0] for row in data["data"])


def test_archived_learner_study_reproduces_documented_table(tmp_path: Path) -> None:
    """`archive/learner_study` still gives the numbers docs/results.md quotes ("Sample efficiency")."""
    from analysis.learning import main as learning_main

    study = REPO / "archive" / "learner_study"
    folders = ["small", "ppo", "a3c_cadence", "a3c", "a3c_cadence-influence"]
    assert learning_main([str(study / f) for f in folders] + ["--out", str(tmp_path)]) == 0
    t = pd.read_csv(tmp_path / "learning.csv").set_index("setting")
    assert t.loc[["small", "ppo", "a3c_cadence", "a3c", "a3c_cadence-influence"], "seeds"].tolist() == [3] * 5
    assert t.loc[["small", "ppo", "a3c_cadence", "a3c"], "reach 600"].tolist() == [3, 3, 0, 3]
    assert t.round(0).loc["small", ["at 1M", "at 2M", "at 5M", "peak"]].tolist() == [518, 581, 738, 736]
    assert t.round(0).loc["ppo", ["at 1M", "at 2M", "at 5M", "peak"]].tolist() == [656, 743, 411, 742]
    assert t.round(0).loc["a3c_cadence", ["at 1M", "at 2M", "at 5M", "peak"]].tolist() == [372, 291, 262, 520]
    assert t.round(0).loc["a3c", ["at 1M", "at 2M", "at 5M", "peak"]].tolist() == [704, 400, 313, 662]
    assert t.round(0).loc["a3c_cadence-influence", ["at 1M", "at 2M", "at 5M", "peak"]].tolist() == [353, 291, 269, 515]
    assert t.round(2).loc["small", ["600 at (M)", "600 at (h)"]].tolist() == [2.33, 0.2]
    assert t.round(2).loc["a3c", ["600 at (M)", "600 at (h)"]].tolist() == [0.92, 0.07]
    # the paper batch logs a collective reward only every 1.024M env steps: its rows come from the
    # documented command with marks at those points
    marks = ["--marks", "1.024e6,2.048e6,3.072e6,4.096e6", "--mark-window", "1.024e6", "--peak-points", "1"]
    out = tmp_path / "paper_batch"
    assert learning_main([str(study / "paper_batch"), str(study / "paper_batch_lr4x"), *marks, "--out", str(out)]) == 0
    t = pd.read_csv(out / "learning.csv").set_index("setting")
    columns = ["at 1.024M", "at 2.048M", "at 3.072M", "at 4.096M", "peak"]
    assert t.round(0).loc["paper_batch", columns].tolist() == [-2117, 274, 339, 296, 339]
    assert t.round(0).loc["paper_batch_lr4x", columns].tolist() == [-393, 463, 536, 548, 548]


def test_ic_bars_average_each_pair_before_the_max(tmp_path: Path) -> None:
    """§5.1 "first average over all trajectory steps, then take the maximum value between any two
    agents": pair 0→1 coordinates in even rows, 1→0 in odd rows. The per-row maximum is ln 2 in
    every row; each pair's average is ln 2 / 2, and so is their max."""
    even = np.tile([np.log(2), 0.0], 40)
    df = make_metrics(steps=80, extra={"ic_symbol_action": np.log(2), "ic_symbol_action_0_1": even,
                                       "ic_symbol_action_1_0": even[::-1]})
    (run,) = discover([make_fake_job(tmp_path / "j", "harvest", "comm", 0, df)])
    from analysis.figures import comm_final

    assert final_value(run, "ic_symbol_action", 40) == pytest.approx(np.log(2))
    assert comm_final(run, "ic_symbol_action", 40) == pytest.approx(np.log(2) / 2)
    assert comm_final(run, "speaker_consistency", 40) != comm_final(run, "speaker_consistency", 40)  # NaN: not logged


def _sweep_report(root: Path, window: int, steps: int = 40, extra: dict[int, dict[str, Any]] | None = None,
                  models: tuple[str, ...] = ("extrinsic", "influence")) -> tuple[Path, str]:
    """Five Harvest seeds per model, seed s flat at a collective reward of 100·(s + 1); analysed."""
    for reward in models:
        for seed in range(5):
            df = make_metrics(steps=steps, agent_rewards=[20.0 * (seed + 1)] * 5, extra=(extra or {}).get(seed))
            make_fake_job(root / "sweep" / reward / str(seed), "harvest", reward, seed, df)
    out = root / "out"
    assert main([str(root / "sweep"), "--out", str(out), "--window-points", str(window),
                 "--bootstrap-reps", "10"]) == 0
    return out / "figures", (out / "report.md").read_text()


def test_curve_csv_has_the_band_over_seeds(tmp_path: Path) -> None:
    """Every curve's points go to figures/<name>.csv; the band is the spread of the seeds' means."""
    figs, _ = _sweep_report(tmp_path, window=10)
    csv = pd.read_csv(figs / "collective_basic.csv")
    assert list(csv.columns) == ["env", "label", "agent_steps", "mean", "ci_low", "ci_high", "n_seeds"]
    last = csv[csv["label"] == "Influence"].iloc[-1]
    half = sps.t.ppf(0.9975, 4) * np.std([100, 200, 300, 400, 500], ddof=1) / np.sqrt(5)
    assert last["n_seeds"] == 5 and last["mean"] == pytest.approx(300.0)
    assert last["ci_high"] - last["mean"] == pytest.approx(half)


def test_bands_are_clipped_to_the_metric_range_and_inapplicable_figures_skipped(tmp_path: Path) -> None:
    """Fires cannot be negative; `cleaned` means nothing in Harvest; one point draws no curve."""
    fires = {s: {"fires": 100.0 if s == 4 else 0.0, "cleaned": 0.0} for s in range(5)}
    figs, report = _sweep_report(tmp_path, window=10, extra=fires)
    csv = pd.read_csv(figs / "diag_fires.csv")
    assert csv["ci_low"].min() == 0.0 and csv["ci_high"].max() > 100
    assert not (figs / "diag_cleaned.png").exists() and "diag_cleaned: no run logged cleaned" in report
    assert not (figs / "collective_moa.png").exists() and "moa figures: no moa or moa_influence runs" in report


def test_a_window_longer_than_the_run_is_shrunk_and_said(tmp_path: Path) -> None:
    figs, report = _sweep_report(tmp_path, window=200, steps=9)
    assert "the runs log 9 points of collective_reward, fewer than the 200-point window; the window is 2 points" \
        in report
    csv = pd.read_csv(figs / "collective_basic.csv")
    seed_means = csv[csv["label"] == "Influence"]["mean"]
    assert np.allclose(seed_means, 300.0)


def test_one_point_draws_no_curve(tmp_path: Path) -> None:
    figs, report = _sweep_report(tmp_path, window=10, steps=1, models=("extrinsic",))
    assert not (figs / "diag_gini.png").exists() and "diag_gini: no run logged gini at 2+ points" in report


def test_hparam_table_prints_the_learning_rate_the_runs_used(tmp_path: Path) -> None:
    """Under the square-root batch rule (budget=paper: 1024 envs, lr_ref_envs 64) the runs train
    with 4 × the configured lr_init; Table 1 prints that value and names the rule."""
    for seed in range(2):
        make_fake_job(tmp_path / f"j{seed}", "cleanup", "extrinsic", seed, make_metrics(),
                      {"optim.lr_init": 0.00126, "budget.num_envs": 1024, "budget.lr_ref_envs": 64})
    settings = group_settings(discover([tmp_path]))
    table = hparam_table(1, best_settings(settings, 50), settings, 50)
    row = next(r for r in table.rows if r[0] == "lr_init")
    assert row[table.header.index("Cleanup A3C baseline")] == \
        "0.00504 (0.00126 × √(1024/64), square-root batch rule) / .00126"


def test_report_states_the_span_of_points_that_hold_a_collective_reward(tmp_path: Path) -> None:
    """At budget=paper every episode ends in the same row, 1 row in 10: the final 50 points span
    500 rows, and the report says so instead of 50 rows' worth."""
    for seed in range(2):
        df = make_metrics(steps=200, interval=100.0)
        df.loc[df.index % 10 != 9, "collective_reward"] = np.nan
        make_fake_job(tmp_path / "sweep" / str(seed), "cleanup", "extrinsic", seed, df)
    out = tmp_path / "out"
    assert main([str(tmp_path / "sweep"), "--out", str(out), "--window-points", "5", "--bootstrap-reps", "10"]) == 0
    report = (out / "report.md").read_text()
    assert "a collective reward every 1,000 env steps: final values span 50,000 env steps, the window 5,000" in report
