"""Batched PyTorch SSD gridworlds: Harvest, Cleanup and Box trapped (docs/envs.md)."""

from __future__ import annotations

import torch

from si.envs.gridworld import ENV_VERSION, GridWorld, StepOut
from si.envs.harvest import HarvestEnv
from si.envs.maps import map_rows

ENV_NAMES = ("harvest", "cleanup", "box_trapped")


def _classes() -> dict[str, type[GridWorld]]:
    from si.envs.box_trapped import BoxTrappedEnv
    from si.envs.cleanup import CleanupEnv

    return {"harvest": HarvestEnv, "cleanup": CleanupEnv, "box_trapped": BoxTrappedEnv}


def make_env(
    name: str,
    num_envs: int,
    num_agents: int = 5,
    map_name: str | None = None,
    horizon: int = 1000,
    device: str | torch.device = "cpu",
    map_file: str | None = None,
) -> GridWorld:
    """Build ``num_envs`` batched copies of env ``name`` on ``device``, on the named map or on the
    ASCII map in ``map_file`` (si.envs.maps.read_map_file); ValueError on bad input."""
    if name not in ENV_NAMES:
        raise ValueError(f"unknown env name {name!r}; expected one of {ENV_NAMES}")
    rows = map_rows(name, map_name, map_file)
    label = map_file if map_file else map_name if map_name is not None else name
    return _classes()[name](rows, num_envs, num_agents, horizon, device, map_name=label)


__all__ = ["ENV_NAMES", "ENV_VERSION", "GridWorld", "StepOut", "make_env"]
