"""Batched PyTorch SSD gridworlds: Harvest, Cleanup and Box trapped (docs/envs.md), and the
registry that ``env.name`` is looked up in.

A game is a :class:`~si.envs.gridworld.GridWorld` subclass registered with :func:`register_env`
together with its named maps (the first is its default). The built-in games are registered here;
a game defined elsewhere registers itself when its module is imported, which ``env.module``
does before the run (docs/extending.md).
"""

from __future__ import annotations

import torch

from si.envs.box_trapped import BoxTrappedEnv
from si.envs.cleanup import CleanupEnv
from si.envs.gridworld import ENV_VERSION, GridWorld, StepOut
from si.envs.harvest import HarvestEnv
from si.envs.maps import BUILT_IN_MAPS, MAPS, map_rows

ENVS: dict[str, type[GridWorld]] = {}
"""Every registered game by name (its class's ``name``)."""


def register_env(env_class: type[GridWorld], maps: dict[str, tuple[str, ...]]) -> type[GridWorld]:
    """Register ``env_class`` under its ``name`` with its named ``maps`` (ASCII rows; the first is
    the default), replacing a game of the same name; returns the class."""
    if not maps:
        raise ValueError(f"register_env({env_class.__name__}): give at least one map")
    ENVS[env_class.name] = env_class
    MAPS[env_class.name] = dict(maps)
    return env_class


for _cls in (HarvestEnv, CleanupEnv, BoxTrappedEnv):
    register_env(_cls, BUILT_IN_MAPS[_cls.name])

ENV_NAMES = tuple(ENVS)
"""The built-in games; ``env.module`` registers more."""


def max_agents(name: str, map_name: str | None, map_file: str | None = None) -> int:
    """How many agents a map of game ``name`` can hold: its spawn points ``P``, plus the agents the
    game places elsewhere (``GridWorld.agents_off_spawn``: Box trapped's trapped agent)."""
    spawns = sum(row.count("P") for row in map_rows(name, map_name, map_file))
    return spawns + ENVS[name].agents_off_spawn


def make_env(
    name: str,
    num_envs: int,
    num_agents: int = 5,
    map_name: str | None = None,
    horizon: int = 1000,
    device: str | torch.device = "cpu",
    map_file: str | None = None,
) -> GridWorld:
    """Build ``num_envs`` batched copies of the registered game ``name`` on ``device``, on the named
    map or on the ASCII map in ``map_file`` (si.envs.maps.read_map_file); ValueError on bad input."""
    if name not in ENVS:
        raise ValueError(f"unknown env name {name!r}; expected one of {tuple(ENVS)}")
    rows = map_rows(name, map_name, map_file)
    label = map_file if map_file else map_name if map_name is not None else name
    return ENVS[name](rows, num_envs, num_agents, horizon, device, map_name=label)


__all__ = ["ENVS", "ENV_NAMES", "ENV_VERSION", "GridWorld", "StepOut", "make_env", "max_agents", "register_env"]
