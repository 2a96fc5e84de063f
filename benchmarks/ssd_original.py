"""Env-steps/s of the ORIGINAL Sequential Social Dilemma numpy envs, for comparison with ``si.bench env``.

Usage::

    fetch github:eugenevinitsky/sequential_social_dilemma_games and export its tree to /tmp/ssd
    python benchmarks/ssd_original.py --ssd-path /tmp/ssd [--envs harvest cleanup] [--steps 3000]
    python -m si.bench env --baseline-sps <env-steps/s printed here>

``--ssd-path`` is the folder holding ``social_dilemmas/`` and ``utility_funcs.py``; nothing of that
code is copied here. Its heavy imports (gym, ray/rllib, cv2, matplotlib), none of which
construction, ``reset`` or ``step`` use, are replaced by small stand-ins in ``sys.modules``;
the original files are not modified.

Each env is built with the default map and ``--agents`` agents (5) and stepped with uniformly random
actions (8 for Harvest, 9 for Cleanup, as in the original's HARVEST_ACTIONS / CLEANUP_ACTIONS).
The original never reports done (``get_done`` is always False); rllib ends episodes via
``"horizon": 1000`` in run_scripts/train.py, so we reset every ``--horizon`` steps. Only the
``step`` calls are timed. One env step = all agents act once and observations are built.

Also printed: apples eaten per complete episode (all agents), for comparing random-policy
statistics. An agent's reward in a step is ``apples - fired - 50 * times_hit`` (apples in {0, 1},
``fired`` = 1 for the FIRE action, the cleaning beam is free), so ``apples = (r + fired) % 50``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

HORIZON = 1000
FIRE = 7  # action index of the penalty beam in both HARVEST_ACTIONS and CLEANUP_ACTIONS


def _module(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


def install_stubs() -> None:
    """Stand-ins for what the original imports but does not need to build, reset and step."""

    class Space:
        def __init__(self, shape: Any = None, dtype: Any = None, *args: Any, **kwargs: Any) -> None:
            self.shape, self.dtype = shape, dtype

    class Box(Space):
        def __init__(self, low: Any = None, high: Any = None, shape: Any = None, dtype: Any = None, **kw: Any) -> None:
            super().__init__(shape, dtype)
            self.low, self.high = low, high

    class Discrete(Space):
        def __init__(self, n: int, *args: Any, **kwargs: Any) -> None:
            super().__init__((), np.int64)
            self.n = n

    class Dict(Space):
        def __init__(self, spaces: dict[str, Space] | None = None, **kwargs: Any) -> None:
            super().__init__()
            self.spaces = spaces or kwargs

    class MultiAgentEnv:
        pass

    class DefaultCallbacks:
        pass

    gym = _module("gym")
    gym.spaces = _module("gym.spaces", Space=Space, Box=Box, Discrete=Discrete, Dict=Dict)
    for name in ("ray", "ray.rllib", "ray.rllib.agents"):
        _module(name)
    _module("ray.rllib.env", MultiAgentEnv=MultiAgentEnv)
    _module("ray.rllib.agents.callbacks", DefaultCallbacks=DefaultCallbacks)
    _module("cv2")  # utility_funcs: only video helpers use it
    _module("matplotlib").pyplot = _module("matplotlib.pyplot", close=lambda *a, **k: None)
    # No NumPy-compat patch needed: the env code uses no removed aliases (np.bool, np.int, ...), checked with NumPy 2.4.


def load_envs(ssd_path: Path) -> dict[str, type]:
    if not (ssd_path / "social_dilemmas").is_dir():
        raise SystemExit(f"{ssd_path} has no social_dilemmas/ folder")
    install_stubs()
    sys.path.insert(0, str(ssd_path))
    from social_dilemmas.envs.cleanup import CleanupEnv
    from social_dilemmas.envs.harvest import HarvestEnv

    return {"harvest": HarvestEnv, "cleanup": CleanupEnv}


def measure(env_cls: type, agents: int, steps: int, horizon: int, rng: np.random.Generator) -> tuple[float, list[int]]:
    """Returns (env-steps/s over the timed step calls, apples eaten in each complete episode)."""
    env = env_cls(num_agents=agents)
    num_actions = env.action_space.n
    ids = [f"agent-{i}" for i in range(agents)]
    elapsed, apples, episodes = 0.0, 0, []
    env.reset()
    for t in range(1, steps + 1):
        actions = dict(zip(ids, rng.integers(0, num_actions, agents).tolist()))
        t0 = time.perf_counter()
        _, rewards, dones, _ = env.step(actions)
        elapsed += time.perf_counter() - t0
        assert not dones["__all__"]
        apples += sum(int(rewards[a] + (actions[a] == FIRE)) % 50 for a in ids)
        if t % horizon == 0:
            episodes.append(apples)
            apples = 0
            env.reset()
    return steps / elapsed, episodes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ssd-path", type=Path, required=True, help="folder containing social_dilemmas/")
    p.add_argument("--envs", nargs="+", default=["harvest", "cleanup"], choices=["harvest", "cleanup"])
    p.add_argument("--agents", type=int, default=5)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--horizon", type=int, default=HORIZON)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    envs = load_envs(args.ssd_path.resolve())
    print(f"{'env':<10}{'env-steps/s':>12}{'agent-actions/s':>16}{'episodes':>10}{'apples/episode':>16}")
    for name in args.envs:
        random.seed(args.seed)
        np.random.seed(args.seed)  # the original draws spawns, shuffles and move order from np.random
        sps, episodes = measure(envs[name], args.agents, args.steps, args.horizon, np.random.default_rng(args.seed))
        mean = f"{np.mean(episodes):.1f}" if episodes else "-"
        print(f"{name:<10}{sps:>12,.0f}{sps * args.agents:>16,.0f}{len(episodes):>10}{mean:>16}")


if __name__ == "__main__":
    main()
