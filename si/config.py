"""Typed config schema (registered in Hydra's ConfigStore) and cross-field validation.

Values live in ``conf/``; these dataclasses only fix names and types, so a wrong type fails
when Hydra composes the config, and :func:`unknown_key` names the nearest valid key for one the
schema lacks (the launcher checks every command-line key with it, since Hydra's ``+key=value``
adds keys the run would ignore).  :func:`validate` runs the checks that involve several fields
(e.g. influencers < agents) and raises :class:`ConfigError` with one line naming the key and the
allowed values, before any job is launched.  :data:`EFFECTIVE_WHEN` says which keys only some
variants read (:func:`no_effect`).
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cache
from typing import Any, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from si.envs import ENVS, GridWorld, max_agents
from si.rewards.variants import REWARDS, RewardVariant

REWARD_NAMES = tuple(REWARDS)
"""The built-in reward variants (si.rewards.variants); ``reward.module`` registers more."""
INFLUENCE_SOURCES = ("none", "action", "symbol", "moa")
INFLUENCING = INFLUENCE_SOURCES[1:]
DIVERGENCES = ("kl", "jsd", "pmi")
ALGOS = ("a2c", "ppo", "a3c")
OPTIMIZERS = ("adam", "rmsprop")
DEVICES = ("auto", "cpu", "cuda")
LOGGER_BACKENDS = ("wandb", "none")
WANDB_MODES = ("offline", "online", "disabled")
PAPER_AGENT_STEPS = 3e8  # length of the paper's training curves (Figs 1, 4, 7)


class ConfigError(ValueError):
    """A config value is invalid; the message names the key and the allowed values."""


@dataclass
class EnvConfig:
    name: str = MISSING
    map: str = MISSING
    map_file: str | None = None
    # A module to import before the run that registers env.name (si.envs.register_env).
    module: str | None = None
    num_agents: int = 5
    horizon: int = 1000
    compile: bool = False


@dataclass
class ModelConfig:
    conv_channels: int = 6
    conv_kernel: int = 3
    fc_sizes: list[int] = field(default_factory=lambda: [32, 32])
    lstm_size: int = 128
    visible_actions: bool = False
    comm: bool = False
    vocab: int = 9
    comm_embedding: int = 32
    moa: bool = False
    compile: bool = False
    cudagraphs: bool = False


@dataclass
class RewardConfig:
    name: str = MISSING
    influence: str = "none"
    alpha: float = 1.0
    beta: float = 0.0
    curriculum: float = 0.0
    divergence: str = "kl"
    num_influencers: int = 1
    influencee_reward: bool = False
    only_visible: bool = False
    clip: float = 0.0
    eta: float = 0.0
    ia_alpha: float = 0.0
    ia_beta: float = 0.0
    ia_lambda: float = 0.95
    # A module to import before the run that registers reward.name (si.rewards.variants).
    module: str | None = None
    # The parameters of a registered variant that declares its own (RewardVariant.params).
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    algo: str = "a2c"
    lr_init: float = MISSING
    lr_end: float = MISSING
    entropy: float = MISSING
    entropy_end: float | None = None
    gamma: float = 0.99
    gae_lambda: float = 1.0
    value_coef: float = 0.5
    max_grad_norm: float = 40.0
    rollout_len: int = 50
    adam_eps: float = 1e-5
    optimizer: str = "adam"
    rmsprop_alpha: float = 0.99
    rmsprop_eps: float = 0.1
    workers: int = 0
    envs_per_worker: int = 8
    comm_entropy: float = 0.0
    comm_loss_weight: float = 1.0
    moa_loss_weight: float = 0.0
    moa_only_when_visible: bool = False
    ppo_epochs: int = 4
    ppo_clip: float = 0.2
    warmup_agents: list[int] = field(default_factory=list)
    warmup_steps: int = 0


@dataclass
class BudgetConfig:
    agent_steps: int = MISSING
    num_envs: int = MISSING
    log_every: int = MISSING
    checkpoint_every: int = MISSING
    checkpoint_every_s: float = 600.0
    scale_schedules: bool = True
    lr_ref_envs: int | None = None


@dataclass
class LoggerConfig:
    backend: str = "wandb"
    mode: str = "offline"
    project: str = "social-influence"
    entity: str | None = None
    tags: list[str] = field(default_factory=list)
    progress_every_s: float = 10.0
    video_every: int = 0
    video_steps: int = 100


@dataclass
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    tune_malloc: bool = True
    allow_config_change: bool = False
    paper_table: str = "none"
    run_name: str = MISSING
    extensions: list[str] = field(default_factory=list)


#: When a key has an effect on the run: key → {key it depends on: the values with which it has
#: one}; every condition must hold. Keys not listed always have an effect. The launcher warns,
#: before launch, about a command-line key whose conditions fail (:func:`no_effect`).
_EFFECT_GROUPS: tuple[tuple[str, tuple[Any, ...], tuple[str, ...]], ...] = (
    ("reward.influence", INFLUENCING, ("reward.alpha", "reward.beta", "reward.curriculum", "reward.divergence",
                                       "reward.clip")),
    ("reward.influence", ("action",), ("reward.num_influencers", "reward.influencee_reward")),
    ("reward.influence", ("moa",), ("reward.only_visible",)),
    ("model.comm", (True,), ("model.vocab", "model.comm_embedding", "optim.comm_entropy", "optim.comm_loss_weight")),
    ("model.moa", (True,), ("optim.moa_loss_weight", "optim.moa_only_when_visible")),
    ("optim.algo", ("a3c",), ("optim.workers", "optim.envs_per_worker")),
    ("optim.algo", ("ppo",), ("optim.ppo_epochs", "optim.ppo_clip")),
    # A3C batches per worker (optim.envs_per_worker) and never scales its learning rate.
    ("optim.algo", ("a2c", "ppo"), ("budget.num_envs", "budget.lr_ref_envs")),
    ("optim.optimizer", ("adam",), ("optim.adam_eps",)),
    ("optim.optimizer", ("rmsprop",), ("optim.rmsprop_alpha", "optim.rmsprop_eps")),
    ("logger.backend", ("wandb",), tuple(f"logger.{k}" for k in ("mode", "project", "entity", "tags", "video_every",
                                                                  "video_steps"))),
)
"""(key it depends on, the values with which they have an effect, the keys) of :data:`EFFECTIVE_WHEN`;
the ``reward.*`` keys that only some reward variants read come from the registry
(``RewardVariant.keys``)."""


def effective_when() -> dict[str, dict[str, tuple[Any, ...]]]:
    """:data:`EFFECTIVE_WHEN` with every reward variant registered now."""
    table = {key: {depends_on: values} for depends_on, values, keys in _EFFECT_GROUPS for key in keys}
    for name, variant in REWARDS.items():
        for key in variant.keys:
            readers = table.setdefault(key, {}).get("reward.name", ())
            table[key]["reward.name"] = (*readers, name)
    return table


EFFECTIVE_WHEN: dict[str, dict[str, tuple[Any, ...]]] = effective_when()


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def no_effect(cfg: DictConfig, key: str) -> str | None:
    """Why ``key`` has no effect on a run of ``cfg`` (from :data:`EFFECTIVE_WHEN`), or None."""
    for other, values in effective_when().get(key, {}).items():
        actual = OmegaConf.select(cfg, other)
        if actual not in values:
            return f"it is used only when {other} is {' or '.join(map(_show, values))} (here {_show(actual)})"
    return None


def nearest(word: str, options: Iterable[str]) -> str | None:
    """The option a misspelt ``word`` most likely meant: the first that starts with it, else the
    closest by :func:`difflib.get_close_matches`; None when nothing is close."""
    options = list(options)
    starts = [o for o in options if o.startswith(word)]
    close = starts or difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return close[0] if close else None


@cache
def _schema() -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(Config))


@cache
def integer_keys(schema: type = Config, prefix: str = "") -> frozenset[str]:
    """The dotted keys the schema types ``int`` (or ``int | None``), e.g. ``budget.agent_steps``."""
    keys: set[str] = set()
    hints = get_type_hints(schema)
    for f in fields(schema):
        hint = hints[f.name]
        if is_dataclass(hint):
            keys |= integer_keys(hint, f"{prefix}{f.name}.")
        elif hint in (int, int | None):
            keys.add(f"{prefix}{f.name}")
    return frozenset(keys)


def _dotted(tree: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        out += _dotted(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return out


def _first_unknown(key: str) -> tuple[int, list[str]] | None:
    """Index of the first part of the dotted ``key`` the schema lacks and the valid names there;
    None when the schema defines the key (or it points inside a list value or inside
    ``reward.params``, whose keys :func:`validate` checks against the reward variant)."""
    node: Any = _schema()
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or parts[:i] == ["reward", "params"]:
            return None
        if part not in node:
            return i, list(node)
        node = node[part]
    return None


def _suggest(key: str, top_level: Sequence[str]) -> str | None:
    """The valid key nearest to ``key``: each unknown part replaced by its nearest sibling, else
    the key elsewhere in the schema with the nearest last part (``reward.lr_init`` → ``optim.lr_init``)."""
    missing = _first_unknown(key)
    if missing is None or key in top_level:
        return key
    i, names = missing
    parts = key.split(".")
    fix = nearest(parts[i], names + (list(top_level) if len(parts) == 1 else []))
    if fix is not None:  # this part fixed; the parts after it are checked next
        return _suggest(".".join([*parts[:i], fix, *parts[i + 1:]]), top_level)
    keys = _dotted(_schema())
    leaves = [k.rsplit(".", 1)[-1] for k in keys]
    leaf = nearest(parts[-1], leaves)
    return keys[leaves.index(leaf)] if leaf else None


def unknown_key(key: str, top_level: Sequence[str] = ()) -> str | None:
    """None when the schema defines the dotted ``key``; else one line naming the nearest valid
    key. ``top_level`` adds names that are valid at the top (config groups)."""
    if _first_unknown(key) is None or key in top_level:
        return None
    guess = _suggest(key, top_level)
    return f"{key} is not a config key" + (f"; did you mean {guess}?" if guess else "")


def register_configs() -> None:
    """Register the root schema as ``config_schema`` (used by ``conf/config.yaml``)."""
    ConfigStore.instance().store(name="config_schema", node=Config)


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of {', '.join(allowed)}")


def _check(cond: bool, key: str, value: Any, rule: str) -> None:
    if not cond:
        raise ConfigError(f"{key}={value!r} is invalid: must be {rule}")


def _import_registering_module(key: str, module: str | None) -> None:
    """Import ``module`` (the value of ``key``: ``env.module`` or ``reward.module``) so that it
    registers what it defines; ConfigError when it cannot be imported. The folder the command is
    run from is searched after the Python path (``python launch/main.py`` puts only ``launch/``
    there)."""
    if module:
        if os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"{key}={module!r} cannot be imported ({exc})") from None


def _unregistered(key: str, name: str, registered: Iterable[str], what: str, how: str) -> ConfigError:
    guess = difflib.get_close_matches(str(name), list(registered), n=1)
    hint = f"; did you mean {guess[0]}?" if guess else ""
    return ConfigError(f"{key}={name!r} is not a registered {what}{hint} (registered: {', '.join(registered)}; "
                       f"a new one registers with {how}, imported through {key.split('.')[0]}.module or extensions)")


def load_extensions(cfg: DictConfig) -> None:
    """Import the modules of ``extensions`` (they register metrics, games or reward variants);
    ConfigError naming the first that cannot be imported."""
    for module in cfg.get("extensions") or ():
        _import_registering_module("extensions", module)


def reward_variant(rc: DictConfig) -> RewardVariant:
    """The registered variant of ``rc`` (the ``reward`` config), after importing ``rc.module``
    when set; ConfigError naming the nearest registered name otherwise."""
    _import_registering_module("reward.module", rc.get("module"))
    if rc.name not in REWARDS:
        raise _unregistered("reward.name", rc.name, REWARDS, "reward variant", "si.rewards.variants.register_reward")
    return REWARDS[rc.name]


def env_class(ec: DictConfig) -> type[GridWorld]:
    """The registered game of ``ec`` (the ``env`` config), after importing ``ec.module`` when set;
    ConfigError naming the nearest registered name otherwise."""
    _import_registering_module("env.module", ec.get("module"))
    if ec.name not in ENVS:
        raise _unregistered("env.name", ec.name, ENVS, "game", "si.envs.register_env")
    return ENVS[ec.name]


def validate(cfg: DictConfig | Config) -> None:
    """Cross-field checks run before any job starts; raise :class:`ConfigError` on the first problem."""
    c = cfg if isinstance(cfg, DictConfig) else OmegaConf.structured(cfg)
    load_extensions(c)
    env_class(c.env)
    variant = reward_variant(c.reward)
    _choice("reward.influence", c.reward.influence, INFLUENCE_SOURCES)
    _choice("reward.divergence", c.reward.divergence, DIVERGENCES)
    _choice("optim.algo", c.optim.algo, ALGOS)
    _choice("optim.optimizer", c.optim.optimizer, OPTIMIZERS)
    if c.optim.algo == "a3c":
        _check(c.optim.workers >= 0, "optim.workers", c.optim.workers, ">= 1 (or 0: one per CPU of the job)")
        _check(c.optim.envs_per_worker >= 1, "optim.envs_per_worker", c.optim.envs_per_worker, ">= 1")
        _check(c.device != "cuda", "device", c.device, "cpu or auto with optim=a3c (A3C workers run on CPU)")
    _choice("device", c.device, DEVICES)
    if c.model.cudagraphs:
        _check(c.device != "cpu", "model.cudagraphs", True, "false with device=cpu (CUDA graphs need a GPU)")
        _check(c.optim.algo != "a3c", "model.cudagraphs", True, "false with optim=a3c (A3C workers run on CPU)")
    _choice("logger.backend", c.logger.backend, LOGGER_BACKENDS)
    _choice("logger.mode", c.logger.mode, WANDB_MODES)
    _check(c.logger.video_every >= 0, "logger.video_every", c.logger.video_every, ">= 0 (0 = no videos)")
    _check(c.logger.video_steps >= 1, "logger.video_steps", c.logger.video_steps, ">= 1")
    _check(not (c.logger.video_every and c.optim.algo == "a3c"), "logger.video_every", c.logger.video_every,
           "0 with optim=a3c (videos come from the synchronous learner's env)")
    n = c.env.num_agents
    _check(n >= 1, "env.num_agents", n, ">= 1")
    try:
        most = max_agents(c.env.name, c.env.map, c.env.map_file)
    except ValueError as exc:
        key, value = ("env.map_file", c.env.map_file) if c.env.map_file else ("env.map", c.env.map)
        raise ConfigError(f"{key}={value!r} is invalid: {exc}") from None
    _check(n <= most, "env.num_agents", n, f"<= {most}, the spawn points of map {c.env.map_file or c.env.map!r}")
    _check(c.env.horizon >= 1, "env.horizon", c.env.horizon, ">= 1")
    for key in ("lr_init", "lr_end"):
        _check(c.optim[key] > 0, f"optim.{key}", c.optim[key], "> 0")
    for key in ("entropy", "comm_entropy", "moa_loss_weight", "comm_loss_weight", "value_coef"):
        _check(c.optim[key] >= 0, f"optim.{key}", c.optim[key], ">= 0")
    if c.optim.entropy_end is not None:
        _check(c.optim.entropy_end >= 0, "optim.entropy_end", c.optim.entropy_end, ">= 0 or null")
    for i in c.optim.warmup_agents:
        _check(0 <= i < n, "optim.warmup_agents", list(c.optim.warmup_agents), f"agent indices in [0, {n - 1}]")
    _check(c.optim.warmup_steps >= 0, "optim.warmup_steps", c.optim.warmup_steps, ">= 0")
    _check(0 < c.optim.gamma <= 1, "optim.gamma", c.optim.gamma, "in (0, 1]")
    _check(0 <= c.optim.gae_lambda <= 1, "optim.gae_lambda", c.optim.gae_lambda, "in [0, 1]")
    _check(c.optim.rollout_len >= 1, "optim.rollout_len", c.optim.rollout_len, ">= 1")
    _check(c.model.vocab >= 2, "model.vocab", c.model.vocab, ">= 2")
    _check(c.model.lstm_size >= 1, "model.lstm_size", c.model.lstm_size, ">= 1")
    _check(c.reward.beta >= 0, "reward.beta", c.reward.beta, ">= 0")
    _check(c.reward.curriculum >= 0, "reward.curriculum", c.reward.curriculum, ">= 0")
    for key in ("agent_steps", "num_envs", "log_every", "checkpoint_every"):
        _check(c.budget[key] >= 1, f"budget.{key}", c.budget[key], ">= 1")
    ref = c.budget.lr_ref_envs
    _check(ref is None or ref >= 1, "budget.lr_ref_envs", ref, ">= 1 or null (no batch scaling)")
    _check(c.budget.checkpoint_every_s > 0, "budget.checkpoint_every_s", c.budget.checkpoint_every_s, "> 0 seconds")
    src = c.reward.influence
    if src == "action":
        k = c.reward.num_influencers
        _check(1 <= k < n, "reward.num_influencers", k, f"in [1, env.num_agents-1] = [1, {n - 1}]")
        _check(c.model.visible_actions, "model.visible_actions", False, "true for reward.influence=action")
    if src == "moa" and c.reward.divergence == "pmi":
        raise ConfigError("reward.divergence='pmi' is not allowed with reward.influence=moa; choose one of kl, jsd")
    if src in ("action", "moa", "symbol"):
        _check(n >= 2, "env.num_agents", n, ">= 2 for an influence reward")
    if src == "symbol":
        _check(c.model.comm, "model.comm", c.model.comm, "true for reward.influence=symbol")
    if src == "moa":
        _check(c.model.moa, "model.moa", c.model.moa, "true for reward.influence=moa")
    for feature in variant.needs:
        _check(c.model[feature], f"model.{feature}", c.model[feature], f"true for reward={variant.name}")
    extra = sorted(set(c.reward.params) - set(variant.params))
    if extra:
        raise ConfigError(f"reward.params.{extra[0]} is not a parameter of reward={variant.name}"
                          + (f" (its parameters: {', '.join(variant.params)})" if variant.params else " (it has none)"))
