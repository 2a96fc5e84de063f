"""submitit's local launcher with a bound on the jobs that run at once (``launcher=local``).

submitit's local executor starts every job of a sweep at once: the used-by command's 10 jobs on
2 cores each get a fifth of a core. :class:`LocalPoolLauncher` runs at most
``hydra.launcher.array_parallelism`` jobs at a time (0, the default: one per CPU core this
process may use, divided by ``cpus_per_task``) and starts the next one as soon as one ends.
Each job is submitted by hydra-submitit-launcher's own local launcher, one job per call, so job
folders, logs, requeue and results stay what that plugin makes of them, and job processes
unpickle only that plugin's class. (Hydra accepts launchers from the ``hydra_plugins`` package
only, hence this module's place.)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under ``taskset`` or a cgroup)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity API (macOS)
        return os.cpu_count() or 1


def parallel_jobs(array_parallelism: int, cpus_per_task: int | None) -> int:
    """Jobs to run at once: ``array_parallelism``, or for 0 the usable cores ÷ ``cpus_per_task``."""
    if array_parallelism > 0:
        return array_parallelism
    return max(1, usable_cores() // max(1, cpus_per_task or 1))


class LocalPoolLauncher(Launcher):
    """hydra-submitit-launcher's local launcher, running at most ``array_parallelism`` jobs at once."""

    def __init__(self, array_parallelism: int = 0, **params: Any) -> None:
        self.submitit = LocalLauncher(**params)
        self.parallel = parallel_jobs(array_parallelism, self.submitit.params.get("cpus_per_task"))

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.submitit.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Submit each job when a slot is free; return every job's result in job order. A failed
        job raises once all jobs have ended, as with the plugin; after Ctrl-C no further job starts."""
        n = len(job_overrides)
        log.info(f"Running all {n} jobs at once" if n <= self.parallel else
                 f"Running at most {self.parallel} of {n} jobs at once (hydra.launcher.array_parallelism)")
        with ThreadPoolExecutor(self.parallel) as pool:
            futures = [pool.submit(self.submitit.launch, [list(overrides)], initial_job_idx + i)
                       for i, overrides in enumerate(job_overrides)]
            try:
                wait(futures)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return [future.result()[0] for future in futures]
