"""The synchronous A2C trainer: rollouts over ``B`` envs × ``N`` agents, every reward variant,
metrics, and an exact ``state_dict``.

The run's sizes are in ``si.train.budget``, the losses in ``si.train.a2c``, the model's forward
passes in ``si.models.actor_critic``, the reward variants' shaping in ``si.rewards.variants`` and
the metrics of a logging interval in ``si.train.interval_metrics``; this module acts, shapes,
learns and checkpoints. One iteration collects ``T = optim.rollout_len`` batched env steps (no gradients), shapes the
rewards of the chosen variant, recomputes the policy over the rollout with gradients from the
rollout's initial LSTM state (truncated BPTT), and takes one optimiser step (``optim.ppo_epochs``
clipped steps for PPO).  The LSTM state is carried across rollouts and reset where
``first[t]`` marks an episode start: ``ActorCritic.reset_state`` multiplies it by ``1 − first[t]``
before step t, the one place where recurrent state meets episode ends.
"""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from si.config import env_class, load_extensions, reward_variant
from si.envs import make_env
from si.envs.render import frame
from si.models import ActorCritic
from si.models.actor_critic import PolicyOut, State
from si.models.stacked import softmax
from si.rewards.influence import curriculum_weight
from si.rewards.intrinsic import action_influence, moa_influence, symbol_influence
from si.rewards.variants import ShapeContext
from si.train.a2c import actor_critic_loss, clip_grad_per_agent, gae, linear_schedule, log_prob, moa_loss
from si.train.budget import Budget, batch_lr_scale
from si.train.interval_metrics import (
    EPISODE_STATS, ROLLOUT_METRICS, Accumulator, add_coordination, add_influence, interval_columns,
)
from si.train.sampling import CategoricalSampler


class DivergenceError(FloatingPointError):
    """A loss, gradient or weight became non-finite; the update was not applied."""


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda requested but torch.cuda.is_available() is False")
    return torch.device(name)


def make_optimizer(params: list[torch.nn.Parameter], oc: DictConfig) -> torch.optim.Optimizer:
    """``optim.optimizer``: Adam (ε = ``adam_eps``; our choice for A2C) or RMSProp (A3C's shared
    RMSProp, Mnih et al. 2016: decay ``rmsprop_alpha``, ε = ``rmsprop_eps``)."""
    if oc.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=oc.lr_init, alpha=oc.rmsprop_alpha, eps=oc.rmsprop_eps)
    return torch.optim.Adam(params, lr=oc.lr_init, eps=oc.adam_eps)


class Trainer:
    """Builds env, model and optimiser from a resolved config and trains them.

    An A3C worker passes its copy of the shared ``model``, an ``optimizer`` that applies the
    copy's gradients to the shared model (``si.train.a3c.LocalCopy``: ``zero_grad``, ``step``,
    ``param_groups``) and its ``stream`` (its own env and sampling seeds); everything else is the
    same learner."""

    def __init__(self, cfg: DictConfig, model: ActorCritic | None = None,
                 optimizer: Any = None, stream: int = 0):
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.budget = Budget.from_config(cfg)
        rc, oc = cfg.reward, cfg.optim
        load_extensions(cfg)
        env_class(cfg.env)  # imports env.module, which registers env.name
        self.env = make_env(
            cfg.env.name, num_envs=cfg.budget.num_envs, num_agents=cfg.env.num_agents,
            map_name=cfg.env.map, horizon=cfg.env.horizon, device=self.device, map_file=cfg.env.get("map_file"),
        )
        if cfg.env.compile:
            self.env.compile()
        self.n, self.a = self.env.num_agents, self.env.num_actions
        mc = cfg.model
        if model is None:
            torch.manual_seed(cfg.seed)  # weights depend on the seed only
            model = ActorCritic(
                self.n, self.a, conv_channels=mc.conv_channels, conv_kernel=mc.conv_kernel,
                fc_sizes=list(mc.fc_sizes), lstm_size=mc.lstm_size, visible_actions=mc.visible_actions,
                comm=mc.comm, vocab=mc.vocab, comm_embedding=mc.comm_embedding, moa=mc.moa,
            ).to(self.device)
        self.model = model
        self.lr_scale = batch_lr_scale(cfg)
        self.optimizer = optimizer if optimizer is not None else make_optimizer(list(model.parameters()), oc)
        seed = cfg.seed + 100_003 * stream
        self.sampler = CategoricalSampler(seed, cfg.budget.num_envs, self.device)
        """Action and symbol sampling (counter-based: no host sync, same draws on CPU and CUDA)."""
        self.rcfg = SimpleNamespace(**OmegaConf.to_container(rc, resolve=True))
        """``cfg.reward`` as plain attributes (read in the compiled acting step)."""
        self.gamma = float(oc.gamma)
        self.variant = reward_variant(rc)
        """The registered reward variant of ``reward.name`` (si.rewards.variants): its shaping."""
        self.source = rc.influence
        self.k = rc.num_influencers if self.source == "action" else 0
        influence = {"action": action_influence, "symbol": symbol_influence, "moa": moa_influence}.get(self.source)
        self.influence = torch.compile(influence, dynamic=False) if influence and mc.compile else influence
        """The influence function of the reward's source (Eq 1–3, §6), compiled with ``model.compile``."""
        self.step_fn = self._graphed_step() if mc.cudagraphs else self.act_and_step
        """:meth:`act_and_step`, eager or captured as a CUDA graph (``model.cudagraphs``)."""
        self.warmup_agents = torch.zeros(self.n, dtype=torch.bool, device=self.device)
        self.warmup_agents[list(oc.warmup_agents)] = True
        """Agents that act uniformly at random, with an untrained policy, during the warm-up."""
        self._warmup_until = oc.warmup_steps if oc.warmup_agents else 0
        self.iteration = 0
        self.episodes = 0
        self.video: list[np.ndarray] | None = None
        """Frames of env 0 while a video is being recorded (:meth:`record_video`), else None."""
        self._video_steps = 0
        self.acc = Accumulator()
        self._reset_carry(self.env.reset(seed=seed))

    # ------------------------------------------------------------------ carry
    def _reset_carry(self, out) -> None:
        b = self.cfg.budget.num_envs
        dev = self.device
        self.carry: dict[str, Tensor] = {
            "obs": out.obs, "prev_actions": out.actions, "first": out.first, "visible": out.visible,
            "ep_return": torch.zeros(b, self.n, device=dev),
            **{s: torch.zeros(b, self.n, device=dev) for s in self.variant.state},
            **{f"ep_{s}": torch.zeros(b, self.n, device=dev) for s in EPISODE_STATS},
            **{f"state_{k}": v for k, v in self.model.initial_state(b, dev).items()},
        }
        if self.model.comm:
            self.carry["prev_symbols"] = torch.zeros(b, self.n, dtype=torch.long, device=dev)
            self.carry["prev_symbol_probs"] = torch.full((b, self.n, self.cfg.model.vocab), 1.0 / self.cfg.model.vocab, device=dev)
        self.shape_ctx = ShapeContext(self.rcfg, self.gamma, self.model.comm, self.carry)

    def _state(self) -> dict[str, Tensor]:
        return {k[6:]: v for k, v in self.carry.items() if k.startswith("state_")}

    # ------------------------------------------------------------------ properties
    @property
    def agent_steps(self) -> int:
        return self.iteration * self.budget.steps_per_iter

    @property
    def done(self) -> bool:
        return self.iteration >= self.budget.iterations

    def beta(self) -> float:
        """Influence weight β after the linear curriculum (Table 1–3 ``C``)."""
        return curriculum_weight(self.agent_steps, self.cfg.reward.beta, self.budget.curriculum_steps)

    @property
    def progress(self) -> float:
        """Fraction of the run's iterations done: the position on the linear schedules."""
        return self.iteration / self.budget.iterations

    def lr(self) -> float:
        """Learning rate now: ``lr_init`` → ``lr_end`` linearly, times :func:`batch_lr_scale`."""
        return linear_schedule(self.cfg.optim.lr_init, self.cfg.optim.lr_end, self.progress) * self.lr_scale

    def entropy_coef(self) -> float:
        """Entropy weight: constant ``optim.entropy``, or annealed linearly to ``optim.entropy_end``."""
        oc = self.cfg.optim
        if oc.entropy_end is None:
            return oc.entropy
        return linear_schedule(oc.entropy, oc.entropy_end, self.progress)

    def _sample(self, logits: Tensor, stream: str) -> Tensor:
        return self.sampler.sample(softmax(logits), stream)

    # ------------------------------------------------------------------ rollout
    @property
    def warming_up(self) -> bool:
        """True while ``optim.warmup_agents`` still act uniformly at random (``optim.warmup_steps``)."""
        return self.agent_steps < self._warmup_until

    def _policy_step(self, gates: Tensor, state: State) -> tuple[PolicyOut, State]:
        """:meth:`ActorCritic.policy_step`, with uniform logits for the warm-up agents."""
        pol, new_state = self.model.policy_step(gates, state)
        if self.warming_up:
            pol.logits = pol.logits.masked_fill(self.warmup_agents[:, None], 0.0)
        return pol, new_state

    @torch.no_grad()
    def _act(self, c: dict[str, Tensor], state: dict, influence: bool = True) -> tuple[dict, dict]:
        """One batched step of every agent from the carried inputs ``c``: sample actions (and
        symbols) and, when ``influence``, compute the influence matrix.  Pure: returns the
        step record and the new recurrent state, never writes ``self.carry``."""
        m, n, k = self.model, self.n, self.k
        first = c["first"]
        state = m.reset_state(state, first)
        feat, moa_feat = m.encode(c["obs"])
        act_in = c["prev_actions"][:, None, :].expand(-1, n, n).clone()
        prev_symbols = c["prev_symbols"] * (~first)[:, None] if m.comm else None
        base = m.base_gates(feat, state["h"], prev_symbols)
        gates = base + m.action_term(act_in)
        pol, new_state = self._policy_step(gates, state)
        self.sampler.advance()
        actions = self._sample(pol.logits, "actions")
        rec: dict[str, Tensor] = {}
        if self.source == "action":
            # influencers (0..K-1) act first; influencees see their current actions (Fig 8a)
            act_in[:, k:, :k] = actions[:, None, :k]
            gates = base + m.action_term(act_in)
            pol_j, new_state = self._policy_step(gates, state)
            actions[:, k:] = self._sample(pol_j.logits[:, k:], "influencee_actions")
            if influence:
                probs_k = softmax(pol.logits[:, :k])
                rec["influence"] = self.influence(m, gates, state["c"], actions, probs_k, k, self.rcfg.divergence)
            pol.logits = torch.cat([pol.logits[:, :k], pol_j.logits[:, k:]], 1)
            pol.value = torch.cat([pol.value[:, :k], pol_j.value[:, k:]], 1)
        rec.update(act_in=act_in, actions=actions, logits=pol.logits, values=pol.value)
        if m.comm:
            symbols = self._sample(pol.comm_logits, "symbols")
            rec.update(symbols=symbols, prev_symbols=prev_symbols, comm_values=pol.comm_value, comm_logits=pol.comm_logits)
            if self.source == "symbol" and influence:
                infl = self.influence(m, gates, state["c"], prev_symbols, c["prev_symbol_probs"], actions, self.rcfg.divergence)
                rec["influence"] = infl * (~first)[:, None, None]
        if m.moa:
            mg = m.moa_gates(moa_feat, state["moa_h"], actions)
            if self.source == "moa" and influence:
                vis = c["visible"] if self.rcfg.only_visible else None
                probs = softmax(pol.logits)
                rec["influence"] = self.influence(m, mg, state["moa_c"], actions, probs, vis, self.rcfg.divergence)
            new_state = m.moa_step(mg, new_state)
        return rec, new_state

    def _shape_rewards(self, e: Tensor, influence: Tensor | None, beta: Tensor) -> tuple[Tensor, Tensor | None]:
        """Rewards of the env policy and of the comm policy: the influence terms clipped to
        ±``reward.clip``, then the variant's shaping (r = α·e + β·c, Eq 1–2, and the others;
        si.rewards.variants)."""
        rc = self.rcfg
        if influence is not None and rc.clip > 0:
            influence = influence.clamp(-rc.clip, rc.clip)
        return self.variant.shape(e, influence, beta, self.shape_ctx)

    @torch.no_grad()
    def act_and_step(self, c: dict[str, Tensor], state: dict, beta: Tensor) -> tuple[dict, dict, tuple]:
        """One env step of every agent in every env: policy forward, sampling, influence
        (Eq 1–3, §6), the env transition, reward shaping (Eq 1–2 and variants) and the episode
        sums in ``c``. Pure tensor work with no host sync and no branch on tensor values, so it
        compiles as one graph (``fullgraph=True``; ``model.cudagraphs`` captures it on CUDA).
        Returns the step record, the new recurrent state and the env transition (reward, stats,
        obs, visible) for :meth:`GridWorld.end_step`."""
        rec, state = self._act(c, state)
        state = {k: v.contiguous() for k, v in state.items()}  # one layout: the graph's inputs next step
        rec.update(obs=c["obs"], first=c["first"], visible=c["visible"])
        for s in self.variant.state:  # the shaping's carried quantities restart with each episode
            c[s] = c[s] * (~c["first"])[:, None]
        reward, stats, obs, visible = self.env.transition(rec["actions"])
        e = reward.float()
        rec["rewards"], rec["comm_rewards"] = self._shape_rewards(e, rec.get("influence"), beta)
        rec["extrinsic"] = e
        c["ep_return"] = c["ep_return"] + e
        for s in EPISODE_STATS:
            if s in stats:
                c[f"ep_{s}"] = c[f"ep_{s}"] + stats[s].float()
        return rec, state, (reward, stats, obs, visible)

    def _graphed_step(self):
        """:meth:`act_and_step` compiled as one graph and replayed as a CUDA graph. A replay
        overwrites the previous replay's outputs, so the step record (kept for the update) is
        copied out; the carry and env state are only read by the next replay."""
        graphed = torch.compile(self.act_and_step, fullgraph=True, dynamic=False, mode="reduce-overhead")

        def step(c: dict[str, Tensor], state: dict, beta: Tensor) -> tuple[dict, dict, tuple]:
            torch.compiler.cudagraph_mark_step_begin()
            rec, state, transition = graphed(c, state, beta)
            return {k: v.clone() if isinstance(v, Tensor) else v for k, v in rec.items()}, state, transition

        return step

    @torch.no_grad()
    def collect(self) -> dict[str, Tensor]:
        """Run ``T`` batched env steps; return the rollout as stacked tensors ``(T, B, …)``."""
        T = self.cfg.optim.rollout_len
        beta = self.beta()
        beta_t = torch.tensor(beta, device=self.device)  # a tensor: one compiled graph for every β
        c = self.carry
        # copied: the update reads it after the rollout, when CUDA-graph replays have reused the memory
        init_state = {k: v.clone() for k, v in self._state().items()}
        state = init_state
        steps: list[dict[str, Tensor]] = []
        for _ in range(T):
            rec, state, transition = self.step_fn(c, state, beta_t)
            out = self.env.end_step(*transition)
            rec["dones"] = out.done
            if self.video is not None and len(self.video) < self._video_steps:
                self.video.append(frame(self.env, 0))
            if out.all_done:
                self._end_episodes()
            c.update(obs=out.obs, prev_actions=out.actions, first=out.first, visible=out.visible)
            if self.model.comm:
                c.update(prev_symbols=rec["symbols"], prev_symbol_probs=softmax(rec["comm_logits"]).contiguous())
            steps.append({k: v for k, v in rec.items() if v is not None})
        for k, v in state.items():
            c[f"state_{k}"] = v
        roll = {k: torch.stack([s[k] for s in steps]) for k in steps[0]}
        roll["init_state"] = init_state
        roll["beta"] = torch.tensor(beta)
        # bootstrap V(s_T) (and V_m) from the carried state; its samples are discarded
        rec, _ = self._act(c, dict(state), influence=False)
        roll["last_value"] = rec["values"]
        if self.model.comm:
            roll["last_comm_value"] = rec["comm_values"]
        return roll

    def record_video(self, steps: int) -> None:
        """Keep a full-map frame of env 0 after each of the next ``steps`` env steps in ``video``."""
        self.video, self._video_steps = [], steps

    def _end_episodes(self) -> None:
        """Every env finished its episode (shared horizon): keep the episode sums, zero them."""
        c = self.carry
        keys = ["ep_return"] + [f"ep_{s}" for s in EPISODE_STATS]
        self.acc.episodes.append(torch.stack([c[k] for k in keys], 1).cpu())  # (B, 1+len(stats), N)
        self.episodes += self.cfg.budget.num_envs
        for key in keys:
            c[key] = torch.zeros_like(c[key])

    # ------------------------------------------------------------------ learning
    def update(self, roll: dict) -> dict[str, float]:
        """A2C (or PPO) step(s) on one rollout; returns loss statistics."""
        oc = self.cfg.optim
        adv, ret = gae(roll["rewards"], roll["values"], roll["dones"], roll["last_value"], oc.gamma, oc.gae_lambda)
        if self.model.comm:
            comm_adv, comm_ret = gae(roll["comm_rewards"], roll["comm_values"], roll["dones"], roll["last_comm_value"], oc.gamma, oc.gae_lambda)
        ppo = oc.algo == "ppo"
        old_logp = log_prob(roll["logits"], roll["actions"]) if ppo else None
        old_comm_logp = log_prob(roll["comm_logits"], roll["symbols"]) if ppo and self.model.comm else None
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr()
        stats: dict[str, float] = {}
        for _ in range(oc.ppo_epochs if ppo else 1):
            out = self.model.unroll(roll["obs"], roll["act_in"], roll["actions"], roll["first"], roll["init_state"],
                                    roll.get("prev_symbols"))
            loss, stats = actor_critic_loss(
                out["logits"], out["values"], roll["actions"], adv, ret, entropy_coef=self.entropy_coef(),
                value_coef=oc.value_coef, old_logp=old_logp, clip=oc.ppo_clip,
                agent_weights=(~self.warmup_agents).float() if self.warming_up else None,
            )
            if self.model.comm:
                comm_loss, comm_stats = actor_critic_loss(
                    out["comm_logits"], out["comm_values"], roll["symbols"], comm_adv, comm_ret,
                    entropy_coef=oc.comm_entropy, value_coef=oc.value_coef, old_logp=old_comm_logp, clip=oc.ppo_clip,
                )
                loss = loss + oc.comm_loss_weight * comm_loss
                stats["loss_comm"] = comm_stats["loss_policy"]
            if self.model.moa:
                visible = roll["visible"] if oc.moa_only_when_visible else None
                moa, stats["moa_accuracy"] = moa_loss(out["moa_logits"], roll["actions"], roll["dones"], visible)
                loss = loss + oc.moa_loss_weight * moa
                stats["loss_moa"] = moa.item() / self.n
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norms = clip_grad_per_agent(list(self.model.parameters()), self.n, oc.max_grad_norm)
            if not bool(torch.isfinite(loss) & torch.isfinite(norms).all()):
                raise DivergenceError(f"non-finite loss {loss.item():.3g} or gradient norms {norms.tolist()}")
            self.optimizer.step()
            params = dict(self.model.named_parameters())
            finite = torch.stack([torch.isfinite(p).all() for p in params.values()])
            if not bool(finite.all()):  # one host sync per update; the names only when it fails
                bad = [name for name, ok in zip(params, finite.tolist()) if not ok]
                raise DivergenceError(f"non-finite weights after the update: {', '.join(bad)}")
        stats.update({f"grad_norm_agent_{i}": v for i, v in enumerate(norms.tolist())})
        return stats

    def train_iteration(self) -> None:
        """Collect one rollout, learn from it, and accumulate its metrics."""
        try:
            roll = self.collect()
        except RuntimeError as exc:  # sampling from a policy whose outputs overflowed
            if "probability tensor contains" in str(exc):
                raise DivergenceError(f"non-finite policy probabilities ({exc})") from exc
            raise
        stats = self.update(roll)
        self.iteration += 1
        for key, value in stats.items():
            self.acc.add(key, value)
        self.add_rollout_metrics(roll)

    # ------------------------------------------------------------------ metrics
    def add_rollout_metrics(self, roll: dict) -> None:
        """Add a rollout's influence and communication statistics, and every registered rollout
        metric (si.train.interval_metrics.register_metric), to the interval's accumulator."""
        if "influence" in roll:
            senders = slice(0, self.k) if self.source == "action" else slice(None)
            add_influence(self.acc, roll["influence"], senders)
        if self.model.comm:
            add_coordination(self.acc, roll, self.a, self.cfg.model.vocab, self.source == "symbol")
        for name, metric in ROLLOUT_METRICS.items():
            self.acc.add(name, *metric(roll))

    def log_row(self, elapsed_s: float, interval_s: float, interval_steps: int) -> dict[str, float]:
        """Metrics row for the finished interval (columns of docs/design.md); empties the accumulator."""
        row: dict[str, float] = {"agent_steps": self.agent_steps, "episodes": self.episodes}
        row.update(interval_columns(self.acc, self.n, self.env.horizon))
        row["beta"] = self.beta()
        row["lr"] = self.lr()
        row["env_steps_per_s"] = interval_steps / max(interval_s, 1e-9)
        row["agent_actions_per_s"] = row["env_steps_per_s"] * self.n
        row["wall_time_s"] = elapsed_s
        self.acc = Accumulator()
        return row

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        """Everything needed to continue bit-exactly: model, optimiser, env, RNGs, carry, counters."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "env": self.env.state_dict(),
            "sampler": self.sampler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "carry": dict(self.carry),
            "iteration": self.iteration,
            "episodes": self.episodes,
            "acc": self.acc.state_dict(),
        }

    def load_state_dict(self, sd: dict) -> None:
        self.model.load_state_dict(sd["model"])
        self.optimizer.load_state_dict(sd["optimizer"])
        self.env.load_state_dict(sd["env"])
        if "sampler" in sd:
            self.sampler.load_state_dict(sd["sampler"])
        else:  # written before counter-based sampling (torch.Generator state)
            warnings.warn("checkpoint without sampler state: action sampling continues from a fresh "
                          "stream (the resume is not bit-exact)", stacklevel=2)
        torch.set_rng_state(sd["torch_rng"])
        self.carry = {k: v.to(self.device) for k, v in sd["carry"].items()}
        self.shape_ctx.carry = self.carry
        self.iteration, self.episodes = sd["iteration"], sd["episodes"]
        acc = sd["acc"]  # an Accumulator in checkpoints written before they held plain data only
        self.acc = acc if isinstance(acc, Accumulator) else Accumulator(**acc)
        self._nan_missing_episode_sums()

    def _nan_missing_episode_sums(self) -> None:
        """Give the stats a checkpoint predates (the last ones of ``EPISODE_STATS``) NaN episode sums,
        in the carry and in the interval's finished episodes, so that the episodes they missed are
        left out of their metrics columns instead of counted as zeros."""
        c, width = self.carry, 1 + len(EPISODE_STATS)
        for s in EPISODE_STATS:
            c.setdefault(f"ep_{s}", torch.full_like(c["ep_return"], math.nan))
        pad = torch.nn.functional.pad
        self.acc.episodes = [pad(e, (0, 0, 0, width - e.shape[1]), value=math.nan) for e in self.acc.episodes]
