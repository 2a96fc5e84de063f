"""Pre-launch checks: a refused launch prints one line per refused job and creates nothing.

Both stages run before Hydra creates a run or sweep folder:

* :func:`check_command_line` reads the overrides before Hydra composes anything: a config-group
  option must exist (``env=harvst`` → ``did you mean env=harvest?``) and a key must be one the
  schema defines (``+optim.lr=0.1`` → ``did you mean optim.lr_init?``; Hydra's ``+`` would add it
  and the run would ignore it).
* :class:`PreLaunchChecks`, a Hydra callback, composes every job's config the way the launcher
  will (``on_run_start`` for a single run; ``on_multirun_start`` for each job of a sweep,
  expanded as the basic sweeper does) and refuses the launch when a config fails
  :func:`si.config.validate`, asks for CUDA the machine lacks (local jobs), or names a job folder
  that was started with another config or is in use by another process. Command-line keys that
  have no effect with the job's reward/optim (:data:`si.config.EFFECTIVE_WHEN`) get one warning
  line each. The job folders it composed serve the console view (:func:`sweep_job_dirs`).
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra._internal.utils import get_args_parser
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Override
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from launch.sweep import sweep_jobs, task_overrides, user_overrides
from si.config import ConfigError, integer_keys, nearest, no_effect, unknown_key, validate
from si.train.jobdir import JobFolderError, JobLock, check_config_change, check_writable, has_checkpoint

CONF = Path(__file__).resolve().parents[1] / "conf"


def group_options(conf: Path = CONF) -> dict[str, list[str]]:
    """The config groups of ``conf/`` and their options (the YAML files in each)."""
    return {d.name: sorted(p.stem for p in d.glob("*.yaml")) for d in sorted(conf.iterdir()) if d.is_dir()}


def command_line_overrides(argv: Sequence[str]) -> list[Override]:
    """The overrides of a ``launch/main.py`` command line, parsed as Hydra parses them; none when
    Hydra would reject the line (it says why itself)."""
    parser = get_args_parser()
    parser.exit_on_error = False
    try:
        args, _ = parser.parse_known_args(list(argv))
        return OverridesParser.create().parse_overrides(args.overrides)
    except (argparse.ArgumentError, HydraException):
        return []


def integral_floats(argv: Sequence[str]) -> list[str]:
    """``argv`` with each whole number written as a float (``2e7``, ``1e7,2e7``) for an integer key
    of the schema written as an integer: Hydra reads ``budget.agent_steps=2e7`` as the float
    20000000.0, which the typed schema would refuse. Other values are left for Hydra to judge."""
    parser = OverridesParser.create()
    out = list(argv)
    for i, arg in enumerate(argv):
        if arg.startswith("-") or "=" not in arg:
            continue
        try:
            override = parser.parse_override(arg)
        except HydraException:
            continue
        value = override.value()
        simple_sweep = isinstance(value, ChoiceSweep) and value.simple_form
        values = value.list if simple_sweep else [value]
        if (override.key_or_group in integer_keys() and override.package is None
                and any(isinstance(v, float) for v in values)
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer()
                        for v in values)):
            out[i] = f"{override.get_key_element()}={','.join(str(int(v)) for v in values)}"
    return out


def _options_asked(override: Override) -> list[str]:
    """The options a config-group override names (every choice of a sweep)."""
    value = override.value()
    if override.is_delete() or value is None or isinstance(value, dict):
        return []
    if isinstance(value, ChoiceSweep):
        return list(override.sweep_string_iterator())
    if override.is_sweep_override():  # glob(), range(): expanded by Hydra against the options
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def searched_confs(overrides: Sequence[Override]) -> list[Path]:
    """The existing folders that ``hydra.searchpath=[file://...]`` adds (relative to the folder
    the command is run from, as Hydra reads them)."""
    paths = []
    for override in overrides:
        if override.key_or_group == "hydra.searchpath" and isinstance(override.value(), list):
            paths += [Path(str(v)[len("file://"):]) for v in override.value() if str(v).startswith("file://")]
    return [p for p in paths if p.is_dir()]


def check_command_line(argv: Sequence[str], conf: Path = CONF) -> None:
    """Raise :class:`ConfigError` for the first override that names a config-group option that
    does not exist or a key the schema does not define, with the nearest valid one."""
    overrides = command_line_overrides(argv)
    groups = group_options(conf)
    for extra in searched_confs(overrides):  # config groups of the user's own folders
        for group, options in group_options(extra).items():
            groups[group] = sorted({*groups.get(group, []), *options})
    for override in overrides:
        key = override.key_or_group
        if key.split(".")[0].split("/")[0] == "hydra" or override.package is not None:
            continue
        if key not in groups:
            problem = unknown_key(key, list(groups))
            if problem:
                raise ConfigError(problem)
            continue
        for option in _options_asked(override):
            if option not in groups[key]:
                guess = nearest(option, groups[key])
                hint = f"did you mean {key}={guess}? " if guess else ""
                raise ConfigError(f"{key}={option} is not an option of {key}; {hint}"
                                  f"(options: {', '.join(groups[key])})")


def check_device(cfg: DictConfig) -> None:
    """``device=cuda`` needs CUDA on the machine that runs the job (checked where jobs run locally)."""
    import torch

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' is invalid here: torch.cuda.is_available() is False on this machine; "
                          "use device=auto or device=cpu, or launcher=slurm with a GPU partition")
    if cfg.model.cudagraphs and not torch.cuda.is_available():
        raise ConfigError("model.cudagraphs=true is invalid here: torch.cuda.is_available() is False on this "
                          "machine; CUDA graphs need a GPU (model.cudagraphs=false on CPU)")


def check_job_folder(cfg: DictConfig, job_dir: Path) -> None:
    """Refuse, as the job itself would (:func:`si.train.jobdir.check_config_change`,
    :class:`JobLock`), a folder that was started with another config or that another process
    trains in, and one that cannot be written (a read-only or unwritable folder)."""
    check_writable(job_dir)
    if has_checkpoint(job_dir):
        check_config_change(cfg, job_dir)
    if (job_dir / ".lock").exists():
        with JobLock(job_dir):  # JobFolderError naming the holder while another process trains here
            pass


def task_config(cfg: DictConfig) -> DictConfig:
    """``cfg`` without its ``hydra`` node: the config the job receives."""
    task = copy.deepcopy(cfg)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return task


@contextmanager
def hydra_config_of(cfg: DictConfig) -> Iterator[None]:
    """``HydraConfig`` set to ``cfg`` while the block runs, as in the job itself: for ``${hydra:...}``
    in folder and job names (launch.sweep)."""
    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg
    hydra_config.set_config(cfg)
    try:
        yield
    finally:
        hydra_config.cfg = previous


def output_dir(cfg: DictConfig, dir_key: str, subdir_key: str | None = None) -> Path:
    """The folder Hydra will create for the job of ``cfg`` (as ``hydra.core.utils.run_job`` does)."""
    with hydra_config_of(cfg):
        path = Path(str(OmegaConf.select(cfg, dir_key)))
        return (path / str(OmegaConf.select(cfg, subdir_key)) if subdir_key else path).absolute()


def job_folder(cfg: DictConfig) -> Path:
    """The folder of the sweep job ``cfg``."""
    return output_dir(cfg, "hydra.sweep.dir", "hydra.sweep.subdir")


#: The job folders of each sweep composed in this process, by sweep folder.
_SWEEP_JOB_DIRS: dict[str, list[Path]] = {}


def sweep_job_dirs(config: DictConfig) -> list[Path]:
    """The job folders of the sweep ``config`` in job order: those :class:`PreLaunchChecks`
    composed, or (without that callback) composed here."""
    key = str(config.hydra.sweep.dir)
    if key not in _SWEEP_JOB_DIRS:
        loader = GlobalHydra.instance().config_loader()
        jobs = sweep_jobs(task_overrides(config))
        _SWEEP_JOB_DIRS[key] = [job_folder(sweep_job_config(loader, config, o, n)) for n, o in enumerate(jobs)]
    return _SWEEP_JOB_DIRS[key]


def sweep_job_config(loader: ConfigLoader, sweep: DictConfig, overrides: list[str], num: int) -> DictConfig:
    """Job ``num`` of a sweep, composed as the launchers compose it."""
    try:
        job = loader.load_sweep_config(sweep, overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(str(exc).strip().splitlines()[0]) from None
    with read_write(job), open_dict(job):
        job.hydra.job.num = num
    return job


def check_job(cfg: DictConfig, job_dir: Path, local: bool) -> None:
    """Every check of one job (``cfg`` with its ``hydra`` node) that can refuse it before launch."""
    task = task_config(cfg)
    with hydra_config_of(cfg):
        validate(task)
        if local:
            check_device(task)
        check_job_folder(task, job_dir)


def no_effect_warnings(cfg: DictConfig, overrides: Sequence[str]) -> list[str]:
    """One line per command-line key that has no effect with the job's reward/optim."""
    choices = cfg.hydra.runtime.choices
    lines = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        reason = no_effect(cfg, override.key_or_group)
        if reason:
            lines.append(f"Warning: {override.input_line} has no effect with reward={choices.reward} "
                         f"optim={choices.optim}: {reason}")
    return lines


def refusal(exc: Exception, overrides: Sequence[str] = ()) -> str:
    """The one line that reports a refused job: a config error names the sweep job by its
    ``overrides``, a job-folder error names the folder."""
    if isinstance(exc, ConfigError):
        shown = " ".join(user_overrides(list(overrides)))
        return f"Config error{f' (job {shown})' if shown else ''}: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _print(lines: Sequence[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr)


class PreLaunchChecks(Callback):
    """Refuse a single run (``on_run_start``) or every bad job of a sweep (``on_multirun_start``)
    with one line each before Hydra creates any folder; then warn about keys without effect."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_job(config, output_dir(config, "hydra.run.dir"), local=True)
        except (ConfigError, JobFolderError) as exc:
            _print([refusal(exc)])
            raise SystemExit(2) from None
        _print(no_effect_warnings(config, task_overrides(config)))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        loader = GlobalHydra.instance().config_loader()
        jobs = sweep_jobs(task_overrides(config))
        local = "slurm" not in str(config.hydra.launcher.get("_target_", "")).lower()
        refused: list[str] = []
        warnings: dict[str, None] = {}  # ordered, each line once
        job_dirs: list[Path] = []
        for num, overrides in enumerate(jobs):
            try:
                job = sweep_job_config(loader, config, overrides, num)
                job_dirs.append(job_folder(job))
                check_job(job, job_dirs[-1], local)
            except (ConfigError, JobFolderError) as exc:
                refused.append(refusal(exc, overrides))
                continue
            warnings.update(dict.fromkeys(no_effect_warnings(job, user_overrides(overrides))))
        if refused:
            _print(refused)
            raise SystemExit(2)
        _print(list(warnings))
        _SWEEP_JOB_DIRS[str(config.hydra.sweep.dir)] = job_dirs
        print(f"{len(jobs)} jobs validated. Each job folder gets progress.log (its progress lines), "
              f"metrics.csv and summary.json.", file=sys.stderr)
