"""A reward variant defined outside ``si/`` (docs/extending.md's worked example): every agent
gets a constant ``bonus`` per step on top of its extrinsic reward, and the variant registers
itself when this module is imported (``reward.module=toy_reward``)."""

from __future__ import annotations

from torch import Tensor

from si.rewards.variants import RewardVariant, ShapeContext, register_reward


def bonus_reward(e: Tensor, influence: Tensor | None, beta: Tensor, ctx: ShapeContext) -> tuple[Tensor, None]:
    """r_k = e_k + bonus (``reward.params.bonus``)."""
    return e + ctx.rc.params["bonus"], None


register_reward(RewardVariant("toy_bonus", bonus_reward, params={"bonus": 0.5}, doc="extrinsic reward plus a constant"))
