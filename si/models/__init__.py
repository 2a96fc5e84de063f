"""Per-agent actor-critic networks (paper §3, §5, §6)."""

from si.models.actor_critic import OBS_SHAPE, ActorCritic, PolicyOut, State

__all__ = ["OBS_SHAPE", "ActorCritic", "PolicyOut", "State"]
