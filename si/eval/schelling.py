"""Schelling diagram evaluator (paper §10.2, Fig 10) from two trained checkpoints.

The *cooperating* policies are the agents of a run trained to cooperate (the prosocial
``collective`` run, or an influence run), the *defecting* policies the agents of a selfish run
(A3C = ``extrinsic``, or ``visible`` to pair with an influence run: the model sections must
match). Agents never share weights, so each policy is one agent's slice of the stacked
parameters, and a policy keeps the agent slot it was trained in.

For every number ``c`` of cooperating other agents (0..N−1) and each role of the focal agent
(slot ``focal``, default 0): the focal slot takes the cooperative run's (role ``cooperator``) or
the defecting run's (role ``defector``) agent; of the other slots, in index order, the first
``c`` take the cooperative run's agents and the rest the defecting run's. The mixed team plays
``episodes`` full episodes (one batched rollout, actions sampled as in training, with the
cooperative run's acting protocol, e.g. influencers acting first); the payoff of an episode is
the focal agent's extrinsic return. Every configuration uses the same evaluation seed, so all
configurations see the same start layouts.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from omegaconf import OmegaConf
from torch import Tensor

from si.eval import EVAL_SEED, eval_trainer, load_job, rollout_episode

COLUMNS = ("env", "num_cooperators", "role", "episode", "payoff")


def mix_agents(coop: dict[str, Tensor], defect: dict[str, Tensor], from_coop: list[bool]) -> dict[str, Tensor]:
    """Model state whose agent ``i`` is the cooperative model's agent ``i`` where ``from_coop[i]``,
    else the defecting model's. Every tensor is agent-major on dim 0 (``N`` rows, or ``N·C_out``
    for the grouped convolution), so ``view(N, -1)[i]`` is agent ``i``'s slice."""
    n = len(from_coop)
    pick = torch.tensor(from_coop)[:, None]
    mixed = {}
    for key, c in coop.items():
        d = defect[key]
        if c.shape != d.shape or c.shape[0] % n:
            raise ValueError(f"parameter {key}: shapes {tuple(c.shape)}, {tuple(d.shape)} do not split into {n} agents")
        mixed[key] = torch.where(pick, c.reshape(n, -1), d.reshape(n, -1)).view(c.shape)
    return mixed


def evaluate(coop_dir: Path | str, defect_dir: Path | str, episodes: int = 16, device: str = "cpu",
             seed: int = EVAL_SEED, focal: int = 0) -> pd.DataFrame:
    """Payoffs of a cooperating and a defecting focal agent vs the number of other cooperators;
    write and return ``<coop_dir>/eval/schelling.csv`` (one row per configuration × episode)."""
    coop, defect = load_job(coop_dir), load_job(defect_dir)
    for section in ("env", "model"):
        a, b = (OmegaConf.to_container(j.cfg[section], resolve=True) for j in (coop, defect))
        if a != b:
            raise ValueError(f"{coop.path} and {defect.path} differ in their {section} config: {a} vs {b}")
    n = coop.cfg.env.num_agents
    if not 0 <= focal < n:
        raise ValueError(f"focal agent {focal} out of range 0..{n - 1}")
    others = [i for i in range(n) if i != focal]
    rows = []
    for c in range(n):
        for role in ("cooperator", "defector"):
            from_coop = [i in others[:c] or (i == focal and role == "cooperator") for i in range(n)]
            state = mix_agents(coop.model_state, defect.model_state, from_coop)
            roll = rollout_episode(eval_trainer(coop.cfg, state, episodes, device, seed))
            payoff = roll["extrinsic"].sum(0)[:, focal]
            rows += [{"env": coop.cfg.env.name, "num_cooperators": c, "role": role, "episode": e, "payoff": float(p)}
                     for e, p in enumerate(payoff)]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    out = coop.path / "eval" / "schelling.csv"
    out.parent.mkdir(exist_ok=True)
    frame.to_csv(out, index=False)
    return frame
