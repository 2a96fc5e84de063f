"""Publish an analysis output folder to W&B: one run of job type ``analysis`` holding every table
(``tables/*.md``) as a ``wandb.Table`` and every figure (``figures/*.png``) as a ``wandb.Image``,
so a project's dashboard carries the paper's tables beside the training curves."""

from __future__ import annotations

import os
from pathlib import Path

from analysis.tables import _BOLD


def markdown_grid(text: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the first ``| a | b |`` grid in a markdown table file (bold marks dropped)."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    cells = [[_BOLD.sub(r"\1", c.strip()) for c in line.strip("|").split(" | ")] for line in lines]
    return cells[0], [row for row in cells[2:] if len(row) == len(cells[0])]


def publish(out: Path, project: str, mode: str | None = None) -> str:
    """Log ``out``'s tables and figures as one W&B run; return one line saying where it went
    (online: the project and the run's page; offline: the run's folder and the ``wandb sync``
    command that uploads it). ``project`` is ``ENTITY/PROJECT`` or ``PROJECT``; ``mode``
    defaults to ``WANDB_MODE``, else offline."""
    import wandb  # optional at analysis time: only this command needs it

    entity, _, name = project.rpartition("/")
    mode = mode or os.environ.get("WANDB_MODE", "offline")
    run = wandb.init(project=name, entity=entity or None, job_type="analysis", name=f"analysis-{out.resolve().name}",
                     dir=str(out), mode=mode, settings=wandb.Settings(silent=True, console="off"))
    try:
        row: dict[str, object] = {}
        for md in sorted((out / "tables").glob("*.md")):
            header, rows = markdown_grid(md.read_text())
            row[f"table/{md.stem}"] = wandb.Table(columns=header, data=rows)
        for png in sorted((out / "figures").glob("*.png")):
            row[f"figure/{png.stem}"] = wandb.Image(str(png))
        run.log(row)
        if (out / "report.md").exists():
            run.summary["report"] = (out / "report.md").read_text()
        if mode == "offline":
            folder = Path(run.dir).parent  # <out>/wandb/offline-run-<time>-<id>
            return (f"W&B run {run.id} (job type analysis) written offline to {folder}, not uploaded; "
                    f"upload it to {project} with: wandb sync {folder}")
        return f"W&B run {run.id} (job type analysis) in {project}: {run.url}"
    finally:
        run.finish()
