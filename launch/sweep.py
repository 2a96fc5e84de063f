"""A sweep's jobs and their names.

A sweep job is named ``<num>_<env>-<reward>-s<seed>`` (``hydra.sweep.subdir`` and ``run_name``
in conf/config.yaml); a sweep that varies only env, reward and seed keeps exactly that name, so
its jobs are resumed and identified by it. When a sweep varies other keys
(``reward.beta=0.1,0.2``), :class:`SweepNames` appends those keys and values, as Hydra's
``override_dirname`` writes them, to ``run_name`` of every job, and so to the job folder
(``0_harvest-influence-s0_reward.beta=0.1``), the progress-line prefix and the W&B run name.
Characters that are not filesystem-safe become ``-``, and a suffix longer than
:data:`MAX_SUFFIX` characters is cut and ends in a hash of the whole, so names stay short and
distinct.

How: before the sweeper expands the jobs, :class:`SweepNames` adds two overrides to the sweep,
which every job is composed with: ``hydra.job.config.override_dirname.exclude_keys`` lists every
key set on the command line except the varied ones, so each job's ``hydra.job.override_dirname``
holds just those; and ``run_name`` becomes the configured name followed by
``${si.job_suffix:${hydra:job.override_dirname}}``. The resolver is registered when this module
is imported, which happens in every job process too: Hydra pickles its callbacks, this one
among them, into each job.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

#: Keys the job name always shows (``<env>-<reward>-s<seed>``).
NAMED_KEYS = ("env", "reward", "seed")
#: Longest name suffix (without its leading ``_``).
MAX_SUFFIX = 60
RESOLVER = "si.job_suffix"


def task_overrides(config: DictConfig) -> list[str]:
    """The command line's task overrides, as typed (an interpolation in one stays unresolved)."""
    return OmegaConf.to_container(config.hydra.overrides.task, resolve=False)


def sweep_jobs(task_overrides: list[str]) -> list[list[str]]:
    """All override lists of a sweep (``reward=a,b seed=range(2)`` → 4 lists), in job order."""
    parsed = OverridesParser.create().parse_overrides(task_overrides)
    (batch,) = BasicSweeper.split_arguments(parsed, None)
    return batch


def varied_keys(jobs: list[list[str]]) -> list[str]:
    """The keys that take more than one value over the ``jobs``, except :data:`NAMED_KEYS`."""
    parser = OverridesParser.create()
    values: dict[str, set[str]] = {}
    for overrides in jobs:
        for override in parser.parse_overrides(overrides):
            values.setdefault(override.key_or_group, set()).add(override.input_line)
    return [key for key, seen in values.items() if len(seen) > 1 and key not in NAMED_KEYS]


def job_suffix(override_dirname: str) -> str:
    """``_<override_dirname>`` made filesystem-safe and at most ``MAX_SUFFIX`` + 1 characters
    long (a longer one is cut and ends in 8 hex digits of its hash); empty for none."""
    if not override_dirname:
        return ""
    safe = re.sub(r"[^A-Za-z0-9._,=+-]+", "-", override_dirname)
    if len(safe) > MAX_SUFFIX:
        digest = hashlib.sha1(override_dirname.encode()).hexdigest()[:8]
        safe = f"{safe[:MAX_SUFFIX - 9]}-{digest}"
    return f"_{safe}"


OmegaConf.register_new_resolver(RESOLVER, job_suffix, replace=True)


def user_overrides(overrides: list[str]) -> list[str]:
    """``overrides`` without the ``run_name`` override that :class:`SweepNames` adds."""
    return [o for o in overrides if RESOLVER not in o]


def name_overrides(config: DictConfig, varied: list[str]) -> tuple[str, str]:
    """The Hydra override and the task override that name each job by its ``varied`` keys."""
    keys = {o.key_or_group for o in OverridesParser.create().parse_overrides(task_overrides(config))}
    excluded = sorted((keys - set(varied)) | {"run_name"})
    base = OmegaConf.to_container(OmegaConf.masked_copy(config, ["run_name"]))["run_name"]
    name = f"{base}${{{RESOLVER}:${{hydra:job.override_dirname}}}}".replace("'", "\\'")
    return f"hydra.job.config.override_dirname.exclude_keys=[{','.join(excluded)}]", f"run_name='{name}'"


class SweepNames(Callback):
    """Name the jobs of a sweep that varies keys other than env, reward and seed by those keys."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        varied = varied_keys(sweep_jobs(task_overrides(config)))
        if not varied:
            return
        hydra_override, task_override = name_overrides(config, varied)
        with read_write(config.hydra.overrides):
            config.hydra.overrides.hydra.append(hydra_override)
            config.hydra.overrides.task.append(task_override)
