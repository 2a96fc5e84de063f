"""Checkpoint evaluators: Box trapped (Figs 12–13), Schelling diagrams (Fig 10), videos.

Both read a job folder (``.hydra/config.yaml`` + ``checkpoints/last.pt``, docs/design.md),
rebuild a :class:`~si.train.trainer.Trainer` from the resolved config with one environment per
evaluated episode, load the trained weights, and step the policy with the trainer's own
``collect`` (so actions are *sampled* from the policy exactly as in training, influence is
computed exactly as in training, and the evaluator cannot drift from training behaviour).
They write ``<job>/eval/*.csv`` (formats in docs/analysis.md). CLI: ``python -m si.eval``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from si.envs import GridWorld, StepOut
from si.train.jobdir import JOB_CONFIG, has_checkpoint, load_checkpoint
from si.train.trainer import Trainer

#: default evaluation seed (env layouts and action sampling), independent of the training seed.
EVAL_SEED = 1000


@dataclass
class Job:
    """A trained job folder: its resolved config and its checkpointed model weights."""

    path: Path
    cfg: DictConfig
    model_state: dict[str, Tensor]


def load_job(job_dir: Path | str) -> Job:
    """Read the job's config (``job_config.yaml``, else ``.hydra/config.yaml``) and the model
    weights of its newest good checkpoint (``checkpoints/last.pt``, else ``prev.pt``; on CPU)."""
    path = Path(job_dir)
    cfg_path = path / JOB_CONFIG if (path / JOB_CONFIG).exists() else path / ".hydra" / "config.yaml"
    if not cfg_path.exists() or not has_checkpoint(path):
        missing = cfg_path if not cfg_path.exists() else path / "checkpoints" / "last.pt"
        raise FileNotFoundError(f"{path} is not a trained job folder: {missing} is missing")
    state = load_checkpoint(path, torch.device("cpu"))
    return Job(path, OmegaConf.load(cfg_path), state["trainer"]["model"])


def eval_trainer(cfg: DictConfig, model_state: dict[str, Tensor], episodes: int, device: str, seed: int) -> Trainer:
    """A trainer of ``cfg`` with ``episodes`` envs on ``device``, the given weights, env layouts
    and action sampling seeded by ``seed``, all envs at the start of an episode.  A run's policy
    warm-up (``optim.warmup_agents``) is switched off: every agent acts with its trained policy."""
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    cfg.budget.num_envs, cfg.device, cfg.seed = episodes, device, seed
    cfg.optim.warmup_agents = []
    trainer = Trainer(cfg)
    trainer.model.load_state_dict(model_state)
    return trainer


class StepHook:
    """Delegates to an env and calls ``callback(out)`` after every step (``collect`` itself keeps
    only episode totals; it steps with ``transition`` then ``end_step``, which returns the StepOut)."""

    def __init__(self, env: GridWorld, callback: Callable[[StepOut], None]):
        self._env = env
        self._callback = callback

    def end_step(self, *transition: Any) -> StepOut:
        out = self._env.end_step(*transition)
        self._callback(out)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)


def run_steps(trainer: Trainer, steps: int, callback: Callable[[StepOut], None]) -> list[dict[str, Tensor]]:
    """Step the trained policy with ``trainer.collect`` until at least ``steps`` env steps ran,
    calling ``callback`` after each; returns the rollouts' CPU tensors (``actions``,
    ``extrinsic``, ``dones`` and ``influence`` when present)."""
    hook = StepHook(trainer.env, callback)
    trainer.env = hook  # type: ignore[assignment]
    try:
        parts: list[dict[str, Tensor]] = []
        while sum(len(p["actions"]) for p in parts) < steps:
            roll = trainer.collect()
            parts.append({k: roll[k].cpu() for k in ("actions", "extrinsic", "dones", "influence") if k in roll})
    finally:
        trainer.env = hook._env
    return parts


def rollout_episode(trainer: Trainer) -> dict[str, Tensor]:
    """Run one full episode (``env.horizon`` steps) of every env with ``trainer.collect``.

    Returns CPU tensors with time first: ``actions``, ``extrinsic`` ``(T, B, N)``, ``influence``
    ``(T, B, N, N)`` when the reward has an influence source, and every env stat (e.g.
    ``box_opened``) of shape ``(T, B, N)``.
    """
    horizon = trainer.env.horizon
    stats: list[dict[str, Tensor]] = []
    parts = run_steps(trainer, horizon, lambda out: stats.append(out.stats))
    out = {k: torch.cat([p[k] for p in parts])[:horizon] for k in parts[0]}
    for key in stats[0]:
        if stats[0][key].dim() == 2:  # per-agent stats (B, N)
            out[key] = torch.stack([s[key].cpu() for s in stats[:horizon]])
    dones = out.pop("dones")
    if dones[:-1].any() or not dones[-1].all():
        raise RuntimeError("evaluation rollout did not start at an episode start")
    return out
