"""`python -m analysis.dashboard --entity E --project P [--sweep NAME]`: a saved W&B workspace
and report with the paper's panels, built from the runs' logged metrics (no hand work in the UI).

Every panel plots metrics of the trainer's metrics rows (docs/design.md; under their W&B names,
si.wandb_names) against `agent_steps`
(env steps), with the runs grouped by `env.name`, `reward.name` and the W&B group (one setting:
seeds aggregated into a mean line with a standard-error band). `--sweep` keeps the
runs tagged `sweep:<NAME>` (every training run is tagged with its sweep folder). Building the
specification needs no server; saving needs a W&B login (`wandb login` or `WANDB_API_KEY`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from si.wandb_names import STEP, wandb_key

X_AXIS = STEP
GROUP_KEYS = ("env.name", "reward.name")
"""Config keys the runs are grouped by (flat keys of the training runs' W&B config), then by the
run's W&B group (the setting: ``<env>-<reward>-<setting id>``), so a line is one setting."""


@dataclass(frozen=True)
class Panel:
    section: str
    title: str
    metrics: tuple[str, ...] = ()
    per_agent: str | None = None  # the columns <per_agent><i> of every agent i instead of fixed metrics
    range_y: tuple[float | None, float | None] = (None, None)


PANELS: tuple[Panel, ...] = (
    Panel("Collective outcome", "Collective reward per episode (Figs 1, 4, 7; Table 4)", ("collective_reward",),
          range_y=(-500.0, None)),
    Panel("Collective outcome", "Equality-weighted reward R·(1−G) (Eq 9)", ("equality_weighted_reward",),
          range_y=(-500.0, None)),
    Panel("Collective outcome", "Gini coefficient G (Eq 9)", ("gini",)),
    Panel("Collective outcome", "Per-agent return", per_agent="reward_agent_"),
    Panel("Influence", "Influence per agent-step (Eq 1-3, §6, before β)", ("influence_mean",)),
    Panel("Influence", "Influential moments (fraction of agent-steps, §5.3)", ("influential_moment_frac",)),
    Panel("Influence", "Influence weight β (curriculum)", ("beta",)),
    Panel("Communication", "Instantaneous coordination (Table 5 metrics)", ("ic_symbol_action", "ic_action_action")),
    Panel("Communication", "Speaker consistency", ("speaker_consistency",)),
    Panel("Model of other agents", "MOA prediction accuracy", ("moa_accuracy",)),
    Panel("Behaviour", "Fires and hits per episode", ("fires", "hits")),
    Panel("Behaviour", "Apples collected per episode", ("apples",)),
    Panel("Behaviour", "Waste cleaned per episode (Cleanup)", ("cleaned",)),
    Panel("Throughput", "Env steps per second", ("env_steps_per_s",)),
)


@dataclass(frozen=True)
class Spec:
    """Where the workspace goes and which runs it shows; :func:`build` adds :data:`PANELS`."""

    entity: str
    project: str
    sweep: str | None

    @property
    def name(self) -> str:
        return f"Social influence: {self.sweep}" if self.sweep else "Social influence"


def panel_metrics(panel: Panel) -> tuple[list[str], str | None]:
    """The W&B names of a panel's metrics (si.wandb_names: section/column), and the pattern of
    its per-agent metrics' names."""
    regex = f"^{re.escape(wandb_key(panel.per_agent))}[0-9]+$" if panel.per_agent else None
    return [wandb_key(m) for m in panel.metrics], regex


def build(spec: Spec):
    """The `wandb_workspaces` Workspace and Report of ``spec`` (objects only: nothing is sent)."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    def line(panel: Panel) -> wr.LinePlot:
        metrics, regex = panel_metrics(panel)
        return wr.LinePlot(title=panel.title, x=X_AXIS, y=metrics, metric_regex=regex,
                           range_y=panel.range_y, groupby_aggfunc="mean", groupby_rangefunc="stderr",
                           smoothing_factor=0.0, legend_fields=["reward.name"])

    sections = {}
    for panel in PANELS:
        sections.setdefault(panel.section, []).append(line(panel))
    filters = [ws.Tags().isin([f"sweep:{spec.sweep}"])] if spec.sweep else ""
    workspace = ws.Workspace(
        entity=spec.entity, project=spec.project, name=spec.name,
        sections=[ws.Section(name=name, panels=panels, is_open=True) for name, panels in sections.items()],
        runset_settings=ws.RunsetSettings(filters=filters,
                                          groupby=[*(ws.Config(k) for k in GROUP_KEYS), ws.Metric("group")]),
        settings=ws.WorkspaceSettings(x_axis=X_AXIS),
    )
    runset = wr.Runset(entity=spec.entity, project=spec.project, filters=filters,
                       groupby=[*GROUP_KEYS, "group"])
    report = wr.Report(
        project=spec.project, entity=spec.entity, title=spec.name,
        description="Jaques et al. (ICML 2019) panels: seeds aggregated per setting (mean, standard error).",
        blocks=[wr.H1(text=spec.name)] + [
            block for name, panels in sections.items()
            for block in (wr.H2(text=name), wr.PanelGrid(runsets=[runset], panels=panels))
        ],
    )
    return workspace, report


def logged_in() -> bool:
    """A W&B API key is available (environment or ``~/.netrc``), so saving can work."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.exists() and "api.wandb.ai" in netrc.read_text()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.dashboard", description=__doc__.split("\n\n")[0])
    p.add_argument("--entity", required=True)
    p.add_argument("--project", required=True)
    p.add_argument("--sweep", help="only runs tagged sweep:<NAME> (the sweep folder's name)")
    args = p.parse_args(argv)
    if not logged_in():
        print("error: no W&B login: run `wandb login` (or set WANDB_API_KEY), then rerun; the runs must be "
              "synced first (`wandb sync <job>/wandb/offline-run-*`)", file=sys.stderr)
        return 2
    workspace, report = build(Spec(args.entity, args.project, args.sweep))
    workspace.save()
    report.save()
    print(f"workspace: {workspace.url}\nreport: {report.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
