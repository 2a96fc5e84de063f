"""Box trapped evaluator (paper §10.3, Figs 12–13): trajectories of a trained policy.

``evaluate(job_dir, episodes)`` runs ``episodes`` full episodes of the job's checkpoint, one env
per episode in one batched rollout, with actions sampled from the policy as in training, and
writes ``<job_dir>/eval/box_trapped.csv``: one row per episode × step × agent with the action,
``open_box`` (1 where that agent opened the box on that step: the env stat ``box_opened``, so an
``OPEN_BOX`` that is a no-op does not count) and ``influence`` (that agent's influence reward
c_t^k = Σ_j influence[k, j] before β and clipping; NaN when the run has no influence source).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from si.eval import EVAL_SEED, eval_trainer, load_job, rollout_episode

COLUMNS = ("episode", "t", "agent", "action", "open_box", "influence")


def evaluate(job_dir: Path | str, episodes: int = 100, device: str = "cpu", seed: int = EVAL_SEED) -> pd.DataFrame:
    """Evaluate a Box trapped job; write and return ``eval/box_trapped.csv``."""
    job = load_job(job_dir)
    if job.cfg.env.name != "box_trapped":
        raise ValueError(f"{job.path} is a {job.cfg.env.name!r} run, not box_trapped")
    roll = rollout_episode(eval_trainer(job.cfg, job.model_state, episodes, device, seed))
    t, b, n = roll["actions"].shape
    influence = roll["influence"].sum(-1).numpy() if "influence" in roll else np.full((t, b, n), np.nan)
    ep, step, agent = np.meshgrid(np.arange(b), np.arange(t), np.arange(n), indexing="ij")
    frame = pd.DataFrame({
        "episode": ep.ravel(), "t": step.ravel(), "agent": agent.ravel(),
        "action": roll["actions"].permute(1, 0, 2).numpy().ravel(),
        "open_box": roll["box_opened"].permute(1, 0, 2).numpy().ravel().astype(np.int64),
        "influence": influence.transpose(1, 0, 2).ravel(),
    })
    out = job.path / "eval" / "box_trapped.csv"
    out.parent.mkdir(exist_ok=True)
    frame.to_csv(out, index=False, na_rep="nan", float_format="%.6g")
    return frame


def opened_fraction(frame: pd.DataFrame) -> float:
    """Fraction of episodes in which the box was opened."""
    return float((frame.groupby("episode")["open_box"].max() > 0).mean())
