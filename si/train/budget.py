"""The run's sizes, derived once from ``budget`` and ``optim`` (CleanRL habit: nothing is
recomputed in the loop), and the synchronous learners' batch rule for the learning rate."""

from __future__ import annotations

import math
from dataclasses import dataclass

from omegaconf import DictConfig

from si.config import PAPER_AGENT_STEPS


@dataclass
class Budget:
    """Iterations, logging and checkpoint cadence (in iterations) and the curriculum length (in
    agent steps, scaled with the run when ``budget.scale_schedules``)."""

    agent_steps: int
    steps_per_iter: int
    iterations: int
    log_every_iters: int
    checkpoint_every_iters: int
    curriculum_steps: float

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "Budget":
        per_iter = cfg.budget.num_envs * cfg.optim.rollout_len
        iters = max(1, -(-cfg.budget.agent_steps // per_iter))
        log_iters = max(1, cfg.budget.log_every // per_iter)
        ckpt_iters = max(log_iters, (cfg.budget.checkpoint_every // per_iter) // log_iters * log_iters)
        scale = iters * per_iter / PAPER_AGENT_STEPS if cfg.budget.scale_schedules else 1.0
        return cls(iters * per_iter, per_iter, iters, log_iters, ckpt_iters, cfg.reward.curriculum * 1e6 * scale)


def batch_lr_scale(cfg: DictConfig) -> float:
    """Square-root batch rule for the synchronous learners' learning rate (docs/results.md,
    "Learner defaults"): ``sqrt(budget.num_envs / budget.lr_ref_envs)``, the factor that takes
    ``optim.lr_init``/``lr_end``, given for ``lr_ref_envs`` envs, to this run's batch. 1 when
    ``lr_ref_envs`` is null, and with ``optim=a3c`` (the paper's values are per A3C worker)."""
    ref = cfg.budget.get("lr_ref_envs")
    if ref is None or cfg.optim.algo == "a3c":
        return 1.0
    return math.sqrt(cfg.budget.num_envs / ref)
