"""W&B names of the ``metrics.csv`` columns, in sections the way CleanRL and Stable-Baselines3
name theirs, so W&B's default workspace groups the panels: ``charts/collective_reward``,
``agent/reward_agent_0``, ``influence/influence_0_1``, ``losses/loss_value``,
``perf/env_steps_per_s``.

The name after the section is the column name unchanged (``metrics.csv`` keeps its names), so
:func:`column` inverts :func:`wandb_key`. ``agent_steps``, the x-axis, keeps its name. The trainer's
W&B logger and analysis' W&B reader and dashboard use these two functions only. Standard library
only (analysis imports it; docs/design.md).
"""

from __future__ import annotations

#: Section → the columns in it: a name ending in ``_`` is a prefix, any other an exact name.
#: A column in no section goes to :data:`DEFAULT_SECTION`.
SECTIONS: dict[str, tuple[str, ...]] = {
    "agent": ("reward_agent_", "apples_agent_"),
    "influence": ("influence_", "influential_moment_frac", "moa_accuracy"),
    "communication": ("speaker_consistency", "ic_"),
    "losses": ("loss_", "entropy", "grad_norm_"),
    "perf": ("env_steps_per_s", "agent_actions_per_s", "wall_time_s"),
    "media": ("video",),
}
#: Collective outcomes, behaviour, places, the schedules (β, lr).
DEFAULT_SECTION = "charts"
#: The x-axis of every metric, logged under its own name.
STEP = "agent_steps"


def _matches(column: str, pattern: str) -> bool:
    return column.startswith(pattern) if pattern.endswith("_") else column == pattern


def section(column: str) -> str:
    """The W&B section of a ``metrics.csv`` column (or of ``video``)."""
    return next((name for name, patterns in SECTIONS.items() if any(_matches(column, p) for p in patterns)),
                DEFAULT_SECTION)


def wandb_key(column: str) -> str:
    """``collective_reward`` → ``charts/collective_reward``; ``agent_steps`` stays as it is."""
    return column if column == STEP else f"{section(column)}/{column}"


def column(key: str) -> str:
    """The ``metrics.csv`` column of a W&B key (a key without a known section is returned as it is:
    runs logged before the sections existed)."""
    head, _, rest = key.partition("/")
    return rest if rest and (head in SECTIONS or head == DEFAULT_SECTION) else key
