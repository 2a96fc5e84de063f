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


def validate_overrides(overrides: list[str]) -> None:
    validate(compose("config", overrides=overrides))


class ValidateSweep(Callback):
    """Run :func:`si.config.validate` on every job of a multirun in ``on_multirun_start``."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        jobs = sweep_jobs(list(config.hydra.overrides.task))
        for overrides in jobs:
            try:
                validate_overrides(overrides)
            except ConfigError as exc:
                print(f"Config error (job {' '.join(overrides)}): {exc}", file=sys.stderr)
                raise SystemExit(2) from None
