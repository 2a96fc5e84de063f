"""Validate every job of a sweep before any job is launched.

Hydra composes each job lazily, inside the launcher; schema errors surface there, but
cross-field errors (``influencers ≥ agents``, ``vocab < 2`` …) would only appear inside the
jobs.  :class:`ValidateSweep` is a Hydra callback that expands the sweep overrides the way the
basic sweeper does, composes every job's config and runs :func:`si.config.validate` on it, so a
bad value fails with one line before anything is submitted.
"""

from __future__ import annotations

import sys
from typing import Any

from hydra import compose
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from si.config import ConfigError, validate


def sweep_jobs(task_overrides: list[str]) -> list[list[str]]:
    """All override lists of a sweep (``reward=a,b seed=range(2)`` → 4 lists)."""
    parsed = OverridesParser.create().parse_overrides(task_overrides)
    (batch,) = BasicSweeper.split_arguments(parsed, None)
    return batch


def check_device(cfg: DictConfig) -> None:
    """``device=cuda`` needs CUDA on the machine that runs the job (checked where jobs run locally)."""
    import torch

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' is invalid here: torch.cuda.is_available() is False on this machine; "
                          "use device=auto or device=cpu, or launcher=slurm with a GPU partition")
    if cfg.model.cudagraphs and not torch.cuda.is_available():
        raise ConfigError("model.cudagraphs=true is invalid here: torch.cuda.is_available() is False on this "
                          "machine; CUDA graphs need a GPU (model.cudagraphs=false on CPU)")


def validate_overrides(overrides: list[str], local: bool) -> None:
    cfg = compose("config", overrides=overrides)
    validate(cfg)
    if local:
        check_device(cfg)


class ValidateSweep(Callback):
    """Run :func:`si.config.validate` on every job of a multirun in ``on_multirun_start``
    (and the CUDA check unless the jobs go to SLURM, whose nodes have their own GPUs)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        jobs = sweep_jobs(list(config.hydra.overrides.task))
        local = "slurm" not in str(config.hydra.launcher.get("_target_", "")).lower()
        for overrides in jobs:
            try:
                validate_overrides(overrides, local)
            except ConfigError as exc:
                print(f"Config error (job {' '.join(overrides)}): {exc}", file=sys.stderr)
                raise SystemExit(2) from None
        print(f"{len(jobs)} jobs validated. Their progress lines go to "
              f"{config.hydra.sweep.dir}/.submitit/*/*_log.err (tail -f them); each job folder gets "
              f"metrics.csv and summary.json.", file=sys.stderr)
