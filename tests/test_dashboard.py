"""The W&B dashboard builder: the panel specification needs no server; every panel names a metric
the trainer logs, and the runs are grouped by keys present in the logged config."""

import re

import pytest
from omegaconf import OmegaConf
from test_trainer import make

from analysis.dashboard import GROUP_KEYS, PANELS, Spec, build, main, panel_metrics
from si.setting import flatten
from si.wandb_names import column, wandb_key


@pytest.fixture(scope="module")
def logged() -> tuple[set[str], dict]:
    """Columns of real metrics rows of every model family (after one iteration each)."""
    columns: set[str] = set()
    for env, reward in (("harvest", "influence"), ("harvest", "comm_influence"), ("harvest", "moa_influence"),
                        ("cleanup", "extrinsic")):
        t = make(f"env={env}", f"reward={reward}", "optim.rollout_len=50")  # one 50-step episode ends
        t.train_iteration()
        columns |= set(t.log_row(1.0, 1.0, 1))
    return columns, flatten(OmegaConf.to_container(t.cfg, resolve=True))


def test_every_panel_plots_logged_metrics_and_groups_by_logged_config_keys(logged) -> None:
    columns, config = logged
    for panel in PANELS:
        for metric in panel.metrics:
            assert metric in columns, (panel.title, metric)
        metrics, regex = panel_metrics(panel)
        if panel.per_agent:
            assert any(re.fullmatch(f"{panel.per_agent}[0-9]+", c) for c in columns), panel.title
            assert all(re.match(regex, wandb_key(c)) for c in columns if c.startswith(panel.per_agent)), regex
        assert metrics == [wandb_key(m) for m in panel.metrics] and (metrics or regex), panel.title
    for key in GROUP_KEYS:
        assert key in config, key
    assert "agent_steps" in columns


def test_every_logged_column_has_a_sectioned_wandb_name_that_maps_back(logged) -> None:
    columns, _ = logged
    for c in columns:
        key = wandb_key(c)
        assert column(key) == c and (c == "agent_steps" or "/" in key), (c, key)
    assert wandb_key("collective_reward") == "charts/collective_reward"
    assert wandb_key("loss_value") == "losses/loss_value" and wandb_key("env_steps_per_s") == "perf/env_steps_per_s"
    assert wandb_key("influence_0_1") == "influence/influence_0_1" and wandb_key("reward_agent_0") == "agent/reward_agent_0"
    assert column("collective_reward") == "collective_reward"  # runs logged before the sections existed


def test_workspace_and_report_are_built_without_a_server() -> None:
    workspace, report = build(Spec("me", "proj", "harvest_sweep"))
    assert sum(len(s.panels) for s in workspace.sections) == len(PANELS)
    assert {s.name for s in workspace.sections} == {p.section for p in PANELS}
    assert workspace.settings.x_axis == "agent_steps"
    assert "sweep:harvest_sweep" in str(workspace.runset_settings.filters)
    assert report.title == workspace.name == "Social influence: harvest_sweep"


def test_saving_without_a_login_fails_with_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert main(["--entity", "me", "--project", "proj"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no W&B login") and err.count("\n") == 1
