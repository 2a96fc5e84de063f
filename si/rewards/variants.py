"""The reward variants, one registered object each, looked up by ``reward.name``.

A :class:`RewardVariant` holds what the rest of the platform needs to know about a reward:

* ``shape``: the function that turns the extrinsic rewards ``e (B, N)`` (and, for influence
  rewards, the influence matrix ``(B, N_k, N_j)`` and the curriculum weight β) into the rewards
  the env policy and the communication policy are trained on;
* ``needs``: the model features it requires (``model.visible_actions``, ``model.comm``,
  ``model.moa``), checked before launch;
* ``keys``: the ``reward.*`` keys only it reads (a key set for another variant gets a
  "has no effect" warning before launch);
* ``params``: ``reward.*`` keys it adds to the schema, with their defaults;
* ``state``: per-agent quantities the shaping carries across steps (``(B, N)`` tensors, zero at
  every episode start).

Which influence the acting step computes is ``reward.influence`` (action, symbol, moa or none),
set by the variant's YAML file in ``conf/reward/``. A new variant is one module that calls
:func:`register_reward` plus one YAML file (docs/extending.md); an unregistered ``reward.name``
is refused before launch. The module defining a variant is imported by naming it in
``reward.module`` (the built-in ones are registered here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from torch import Tensor

from si.rewards.social import collective_reward, inequity_aversion


@dataclass
class ShapeContext:
    """What a shaping function may read besides the step's rewards: the ``reward`` config as
    attributes, the discount γ, whether the model has a communication policy, and the trainer's
    carried tensors (its variant's ``state`` entries among them, written back by the function)."""

    rc: SimpleNamespace
    gamma: float
    comm: bool
    carry: dict[str, Tensor]


ShapeFn = Callable[[Tensor, "Tensor | None", Tensor, ShapeContext], "tuple[Tensor, Tensor | None]"]
"""``(e (B, N), influence (B, N, N) or None, β, context) → (env-policy reward (B, N), comm-policy
reward (B, N) or None)``."""


@dataclass(frozen=True)
class RewardVariant:
    """One reward of the paper (or an extension), as the trainer and the config checks use it."""

    name: str
    shape: ShapeFn
    needs: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    state: tuple[str, ...] = ()
    doc: str = ""


REWARDS: dict[str, RewardVariant] = {}
"""Every registered variant by name."""


def register_reward(variant: RewardVariant) -> RewardVariant:
    """Add ``variant`` to :data:`REWARDS` (replacing one of the same name) and return it."""
    REWARDS[variant.name] = variant
    return variant


def influence_reward(e: Tensor, influence: Tensor | None, beta: Tensor, ctx: ShapeContext) -> tuple[Tensor, Tensor | None]:
    """Eq 1–2 and the baselines without an intrinsic term, by ``reward.influence``:

    * ``action`` (Eq 1/3): r_k = α·e_k + β·c_k for every agent, c_k = Σ_j influence[k, j] (zero
      for influencees), plus β·(influence received) with ``reward.influencee_reward``;
    * ``symbol`` (Eq 2): the env policy gets e; the comm policy gets α·e + β·c;
    * ``moa`` (§6): r_k = α·e_k + β·c_k;
    * ``none``: e. The comm policy, when there is one and no symbol influence, gets e.
    A baseline that computes influence for its metrics only has β = 0."""
    rc = ctx.rc
    c = influence.sum(-1) if influence is not None else None
    if rc.influence == "symbol":
        return e, rc.alpha * e + beta * c
    comm_r = e if ctx.comm else None
    if rc.influence == "action":
        r = rc.alpha * e + beta * c
        if rc.influencee_reward:
            r = r + beta * influence.sum(-2)
        return r, comm_r
    if rc.influence == "moa":
        return rc.alpha * e + beta * c, comm_r
    return e, comm_r


def prosocial_reward(e: Tensor, influence: Tensor | None, beta: Tensor, ctx: ShapeContext) -> tuple[Tensor, None]:
    """Collective (prosocial) reward r_k = e_k + η·Σ_{i≠k} e_i (appendix 10.5.2)."""
    return collective_reward(e, ctx.rc.eta), None


def inequity_averse_reward(e: Tensor, influence: Tensor | None, beta: Tensor, ctx: ShapeContext) -> tuple[Tensor, None]:
    """Inequity aversion (Hughes et al. 2018) on the smoothed rewards carried in ``ia_smoothed``."""
    rc = ctx.rc
    u, ctx.carry["ia_smoothed"] = inequity_aversion(e, ctx.carry["ia_smoothed"], rc.ia_alpha, rc.ia_beta,
                                                     ctx.gamma, rc.ia_lambda)
    return u, None


for _variant in (
    RewardVariant("extrinsic", influence_reward, doc="A3C baseline: the env reward only"),
    RewardVariant("visible", influence_reward, needs=("visible_actions",),
                  doc="visible-actions baseline (Fig 1): the others' actions as input, env reward only"),
    RewardVariant("influence", influence_reward, needs=("visible_actions",),
                  doc="basic (centralised) social influence, Eq 1/3"),
    RewardVariant("comm", influence_reward, needs=("comm",), doc="communication baseline (Fig 4)"),
    RewardVariant("comm_influence", influence_reward, needs=("comm",), doc="influence via communication, Eq 2"),
    RewardVariant("moa", influence_reward, needs=("moa",), doc="MOA baseline: the MOA loss, no influence reward"),
    RewardVariant("moa_influence", influence_reward, needs=("moa",), doc="influence through a model of other agents, §6"),
    RewardVariant("collective", prosocial_reward, keys=("reward.eta",), doc="prosocial reward (appendix 10.5.2)"),
    RewardVariant("inequity_aversion", inequity_averse_reward, keys=("reward.ia_alpha", "reward.ia_beta", "reward.ia_lambda"),
                  state=("ia_smoothed",), doc="inequity aversion (Hughes et al. 2018), Table 4"),
):
    register_reward(_variant)
