"""Metrics of one logging interval: what the trainer sums while it trains and the columns of the
metrics row it writes at the end of the interval (docs/design.md, "Metrics columns").

The trainer adds each update's loss statistics, each rollout's influence and communication
statistics and each finished episode's sums to an :class:`Accumulator`; :func:`interval_columns`
turns the accumulator into the row's reward, episode, influence and coordination columns.
:func:`register_metric` adds a column computed from every rollout (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from si import metrics as M
from si.envs.gridworld import PLACE_STATS

EPISODE_STATS = ("fires", "hits", "cleaned", "apples", "box_opened", "released", *PLACE_STATS)
"""Env stats summed per episode and agent (``ep_<stat>`` in the carry); stats added later go last."""
EPISODE_FRACTIONS = ("box_opened", "released")
"""Episode stats logged as the fraction of episodes in which they happened (the rest: mean sum)."""
PLACE_COLUMNS = {"in_view": "in_view_frac", "in_river": "river_frac", "in_orchard": "orchard_frac"}
"""Metrics columns of the place stats, logged as fractions of each episode's agent-steps (``in_view``:
of its agent-steps × (N − 1) other agents), mean over episodes and agents."""
BUILT_IN_COLUMNS = frozenset((
    "agent_steps", "episodes", "collective_reward", "gini", "equality_weighted_reward", *EPISODE_STATS,
    *PLACE_COLUMNS.values(), "beta", "lr", "env_steps_per_s", "agent_actions_per_s", "wall_time_s", "entropy",
    "loss_policy", "loss_value", "loss_comm", "loss_moa", "moa_accuracy", "influential_moment_frac",
    "speaker_consistency", "ic_symbol_action", "ic_action_action", "ic_symbol_action_influential",
    "ic_action_action_influential",
))
"""Names a registered metric may not take (with the per-agent and per-pair prefixes)."""


RolloutMetric = Callable[[dict[str, Tensor]], "tuple[float, int]"]
"""``rollout → (sum, count)``: the rollout's contribution to a metric's interval mean. The rollout
holds ``(T, B, …)`` tensors: ``actions``, ``rewards``, ``extrinsic``, ``dones``, ``visible``, ``obs``
(and ``influence``, ``symbols`` where the model computes them)."""

ROLLOUT_METRICS: dict[str, RolloutMetric] = {}
"""Registered metrics by column name; each is logged in every run as Σ sums / Σ counts over the
rollouts of the logging interval."""


def register_metric(name: str, metric: RolloutMetric) -> RolloutMetric:
    """Log ``metric`` as the metrics column ``name`` in every run (a module that calls this is
    imported through the ``extensions`` config key); ValueError for a built-in column's name."""
    if name in BUILT_IN_COLUMNS or name.startswith(("reward_agent_", "apples_agent_", "influence_")):
        raise ValueError(f"register_metric: {name!r} is a built-in metrics column")
    ROLLOUT_METRICS[name] = metric
    return metric


@dataclass
class Accumulator:
    """Sums over one logging interval; emptied after every metrics row."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    episodes: list[Tensor] = field(default_factory=list)
    """Finished episodes' sums, ``(B, 1 + len(EPISODE_STATS), N)`` per batch of episodes: the
    return, then every stat of :data:`EPISODE_STATS`."""
    tables: dict[str, Tensor] = field(default_factory=dict)
    """Joint count tables summed over the interval (instantaneous coordination, §5.1)."""

    def add(self, key: str, value: float, count: int = 1) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + value
        self.counts[key] = self.counts.get(key, 0) + count

    def mean(self, key: str) -> float:
        return self.sums[key] / self.counts[key] if self.counts.get(key) else float("nan")

    def add_table(self, key: str, counts: Tensor) -> None:
        self.tables[key] = self.tables[key] + counts if key in self.tables else counts

    def state_dict(self) -> dict[str, Any]:
        """The sums, counts, episodes and tables as plain dicts and lists (checkpoints hold no
        objects of this project's classes); ``Accumulator(**d)`` restores it."""
        return {"sums": dict(self.sums), "counts": dict(self.counts), "episodes": list(self.episodes),
                "tables": dict(self.tables)}

    def merge(self, other: Accumulator) -> None:
        """Add another accumulator's sums, counts, episodes and tables (A3C workers' metrics)."""
        for key, value in other.sums.items():
            self.add(key, value, other.counts[key])
        self.episodes.extend(other.episodes)
        for key, counts in other.tables.items():
            self.add_table(key, counts)


def add_influence(acc: Accumulator, influence: Tensor, senders: slice) -> None:
    """Influence of one rollout, ``influence (T, B, N_k, N_j)`` (Eq 1–3, §6): the mean reward
    c^k_t of the influencing agents ``senders``, the fraction of their influential moments, and
    every ordered pair's mean influence ``influence_<k>_<j>``."""
    c = influence.sum(-1)[..., senders]  # (T, B, K)
    acc.add("influence_mean", c.sum().item(), c.numel())
    acc.add("influential_moment_frac", M.influential_moments(c).float().sum().item(), c.numel())
    pair = influence.sum((0, 1)).cpu()
    n, steps = pair.shape[0], influence.shape[0] * influence.shape[1]
    for k in range(n):
        for j in range(n):
            if k != j:
                acc.add(f"influence_{k}_{j}", pair[k, j].item(), steps)


def add_coordination(acc: Accumulator, roll: dict[str, Tensor], num_actions: int, vocab: int,
                     symbol_influence: bool) -> None:
    """Speaker consistency (Eq 8) per rollout; IC count tables summed over the interval (§5.1).

    IC pairs (x^k_t, a^j_{t+1}) within one episode. On influential moments the mask is the
    row of the influence that x^k_t exerted: with symbol influence (``symbol_influence``), row t
    holds the effect of the previous step's symbols on a_t, so m^k_t's row is t+1; with action or
    MOA influence, a^k_t's effect is in row t.
    """
    acts, syms = roll["actions"].cpu(), roll["symbols"].cpu()
    a, v, n = num_actions, vocab, acts.shape[-1]
    same_ep = (~roll["dones"][:-1].cpu())[..., None].expand(-1, -1, n)
    acc.add("speaker_consistency", M.speaker_consistency(acts.flatten(0, 1), syms.flatten(0, 1), a, v))
    acc.add_table("ic_symbol_action", M.coordination_counts(syms[:-1], acts[1:], v, a, same_ep))
    acc.add_table("ic_action_action", M.coordination_counts(acts[:-1], acts[1:], a, a, same_ep))
    if "influence" in roll:
        moments = M.influential_moments(roll["influence"].sum(-1)).cpu()
        moments = (moments[1:] if symbol_influence else moments[:-1]) & same_ep
        acc.add_table("ic_symbol_action_influential", M.coordination_counts(syms[:-1], acts[1:], v, a, moments))
        acc.add_table("ic_action_action_influential", M.coordination_counts(acts[:-1], acts[1:], a, a, moments))


def place_steps(stat: str, horizon: int, num_agents: int) -> int:
    """The most a place stat can sum to per agent and episode: one count per step of the fixed
    horizon (every episode has ``horizon`` steps), times the N − 1 other agents for ``in_view``."""
    return horizon * (max(num_agents - 1, 1) if stat == "in_view" else 1)


def episode_columns(episodes: list[Tensor], num_agents: int, horizon: int) -> dict[str, float]:
    """Columns of the episodes that ended in the interval: collective reward, per-agent rewards,
    Gini (Eq 9's G), equality-weighted reward, the episode stats and per-agent apples; NaN when
    no episode ended."""
    n, nan = num_agents, float("nan")
    if not episodes:
        return {"collective_reward": nan, "gini": nan, "equality_weighted_reward": nan,
                **{f"reward_agent_{i}": nan for i in range(n)},
                **{PLACE_COLUMNS.get(s, s): nan for s in EPISODE_STATS},
                **{f"apples_agent_{i}": nan for i in range(n)}}
    ep = torch.cat(episodes)  # (E, 1 + stats, N)
    ret = ep[:, 0]
    row = {"collective_reward": ret.sum(-1).mean().item()}
    row.update({f"reward_agent_{i}": ret[:, i].mean().item() for i in range(n)})
    row["gini"] = M.gini(ret).nanmean().item()  # episodes with Σ returns ≤ 0 have no G
    row["equality_weighted_reward"] = M.equality_weighted_reward(ret).mean().item()
    for s_i, s in enumerate(EPISODE_STATS, start=1):
        total = ep[:, s_i].sum(-1)
        if s in PLACE_COLUMNS:  # NaN: episodes in progress at a resume from an older checkpoint
            row[PLACE_COLUMNS[s]] = (ep[:, s_i] / place_steps(s, horizon, n)).nanmean().item()
        else:
            row[s] = (total > 0).float().mean().item() if s in EPISODE_FRACTIONS else total.mean().item()
    apples = ep[:, 1 + EPISODE_STATS.index("apples")]
    row.update({f"apples_agent_{i}": apples[:, i].mean().item() for i in range(n)})
    return row


def interval_columns(acc: Accumulator, num_agents: int, horizon: int) -> dict[str, float]:
    """Every accumulated column of the interval: :func:`episode_columns`, the means of the added
    statistics (losses, influence, speaker consistency), and each count table's coordination
    (IC, max over pairs) with its per-pair values ``<table>_<k>_<j>``."""
    n = num_agents
    row = episode_columns(acc.episodes, n, horizon)
    for key in sorted(acc.sums):
        row[key] = acc.mean(key)
    for key in sorted(acc.tables):
        row[key] = M.coordination_from_counts(acc.tables[key])
        pairs = M.pair_coordination(acc.tables[key]).tolist()
        row.update({f"{key}_{k}_{j}": pairs[k][j] for k in range(n) for j in range(n) if k != j})
    return row
