"""PettingZoo ``ParallelEnv`` adapter around one environment (B = 1) of :func:`si.envs.make_env`.

Observations are the 15x15x3 uint8 views; ``infos`` carry the per-agent stats of the transition.
The SSD games have no terminal state: ``truncations`` become True at the horizon, after which the
agents are removed (call ``reset`` again), as PettingZoo requires.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

from si.envs import make_env
from si.envs.render import frame


class SSDParallelEnv(ParallelEnv):
    """``ParallelEnv`` over ``make_env(name, 1, num_agents, map_name, horizon)`` on CPU."""

    metadata = {"render_modes": ["rgb_array"], "name": "si_ssd_v1", "is_parallelizable": True}

    def __init__(
        self,
        name: str,
        num_agents: int = 5,
        map_name: str | None = None,
        horizon: int = 1000,
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.env = make_env(name, 1, num_agents, map_name, horizon, "cpu")
        self.render_mode = render_mode
        self.possible_agents = [f"agent_{i}" for i in range(num_agents)]
        self.agents: list[str] = []
        self._obs_space = spaces.Box(0, 255, self.env.obs_shape, np.uint8)
        self._act_space = spaces.Discrete(self.env.num_actions)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_space

    def _obs(self, out: Any) -> dict[str, np.ndarray]:
        obs = out.obs[0].numpy()
        return {a: obs[i] for i, a in enumerate(self.possible_agents)}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        out = self.env.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return self._obs(out), {a: {} for a in self.agents}

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        if set(actions) != set(self.agents):
            raise ValueError(f"step needs one action for each of {self.agents}, got {sorted(actions)}")
        acts = torch.tensor([[int(actions[a]) for a in self.possible_agents]], dtype=torch.long)
        out = self.env.step(acts)
        done = bool(out.done[0])
        rewards = {a: float(out.reward[0, i]) for i, a in enumerate(self.possible_agents)}
        infos = {
            a: {k: float(v[0, i]) for k, v in out.stats.items() if v.dim() == 2}
            for i, a in enumerate(self.possible_agents)
        }
        obs = self._obs(out)
        terminations = {a: False for a in self.agents}
        truncations = {a: done for a in self.agents}
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> np.ndarray | None:
        return frame(self.env) if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        """Nothing to release."""
