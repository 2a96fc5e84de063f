"""Hydra entry point: ``python launch/main.py [-m] key=value …``.

A plain run trains in-process in ``outputs/runs/…``; ``-m`` sweeps go through the launcher
preset (submitit on this machine by default, one job per CPU core at once; ``launcher=slurm``
for SLURM), one job per run in ``multirun/<time>/<num>_<env>-<reward>-s<seed>`` (plus the other
keys the sweep varies, launch.sweep), shown while they run (launch.console).  Rerunning a
sweep with the same ``hydra.sweep.dir`` resumes every unfinished job from its own checkpoint.
A launch that launch.checks refuses prints one line per refused job and creates no folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from launch.checks import CONF, check_command_line, integral_floats
from si.config import ConfigError, register_configs, validate
from si.setting import setting_id

register_configs()


def setting_group(cfg: DictConfig) -> str:
    """W&B group: the run without its seed, so seeds aggregate on dashboards. Its id is the
    setting id the analysis report lists (``si.setting.setting_id``), so a dashboard group and a
    report row match."""
    return f"{cfg.env.name}-{cfg.reward.name}-{setting_id(OmegaConf.to_container(cfg, resolve=True))}"


def pin_local_gpu(job_num: int) -> None:
    """Give each submitit-local job one GPU of the machine, round-robin by job number.

    submitit's local executor overwrites ``CUDA_VISIBLE_DEVICES`` with ``0..gpus_per_node-1``
    (empty for 0 GPUs, i.e. no GPU at all), so every job would share GPU 0 or see none.  Before
    CUDA is initialised we drop that value, count the machine's GPUs and pin this job to one.
    SLURM jobs and in-process runs keep what their scheduler gave them.
    """
    if os.environ.get("SUBMITIT_EXECUTOR") != "local":
        return
    import torch

    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    count = torch.cuda.device_count()
    if count:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(job_num % count)


def remove_submitit_template_folder(submitit_folder: str | None) -> None:
    """Remove the empty ``.submitit/%j`` folder: submitit's executors create their folder
    template literally before any job id exists, and each job writes to its own id's folder."""
    if submitit_folder and "%j" in submitit_folder:
        try:
            Path(submitit_folder).rmdir()
        except OSError:  # already removed by another job, or not empty
            pass


@hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")  # absolute: also as si-train
def main(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    multirun = hc.mode.name == "MULTIRUN"
    try:  # checked before launch (launch.checks.PreLaunchChecks); kept for jobs started without it
        validate(cfg)
    except ConfigError as exc:
        raise SystemExit(f"Config error: {exc}") from None
    job_dir = Path(hc.runtime.output_dir)
    if multirun:
        pin_local_gpu(hc.job.num)
        remove_submitit_template_folder(hc.launcher.get("submitit_folder"))
        if cfg.threads == 0 and hc.launcher.get("cpus_per_task"):
            cfg.threads = int(hc.launcher.cpus_per_task)
    else:
        print(OmegaConf.to_yaml(cfg, resolve=True), file=sys.stderr)
        print(f"Job folder: {job_dir}", file=sys.stderr)

    from si.train.jobdir import JobFolderError, restore_hydra_config
    from si.train.run import run
    from si.train.trainer import DivergenceError

    try:  # run() writes the resolved config the job keeps (job_config.yaml, .hydra/config.yaml)
        summary = run(cfg, job_dir, group=setting_group(cfg))
    except (JobFolderError, DivergenceError) as exc:
        if isinstance(exc, JobFolderError):
            try:
                restore_hydra_config(job_dir)
            except OSError:  # the storage that refused the job may refuse this too
                pass
        raise SystemExit(f"{type(exc).__name__}: {exc}") from None
    if not multirun:
        print(f"Job folder: {job_dir} ({summary['status']}, {summary['agent_steps']:,} agent steps)",
              file=sys.stderr)


def cli() -> None:
    """``python launch/main.py …``: whole numbers such as ``2e7`` written as integers for integer
    keys, the command-line checks of launch.checks, then Hydra."""
    sys.argv[1:] = integral_floats(sys.argv[1:])
    try:
        check_command_line(sys.argv[1:])
    except ConfigError as exc:
        raise SystemExit(f"Config error: {exc}") from None
    main()


if __name__ == "__main__":
    cli()
