"""A hyperparameter *setting*: the identity that W&B groups, job names and analysis tables share.

A setting is the game (``env.name``, and its map, number of agents and horizon where they are not
the game's defaults) × the values of the config sections ``model``, ``reward`` and ``optim``
(and, for the synchronous learners, ``budget.num_envs`` and ``budget.lr_ref_envs``); seeds are
its replicates. :func:`setting_id` hashes it to 8 hex digits: the launcher names a job's W&B
group ``<env>-<reward>-<id>`` and the analysis report lists settings by the same id, so a
dashboard group and a report row match. Standard library only: analysis imports it and never
imports torch or the training code (docs/design.md).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: Config sections whose values define a hyperparameter setting.
SETTING_SECTIONS: tuple[str, ...] = ("model", "reward", "optim")

#: Keys added to the config after runs were archived, with the value that reproduces the older
#: behaviour. A key at this value is left out of a setting, so runs from before and after it
#: existed group together (and keep their setting ids).
DEFAULTED_KEYS: dict[str, Any] = {
    "optim.optimizer": "adam", "optim.rmsprop_alpha": 0.99, "optim.rmsprop_eps": 0.1, "optim.workers": 0,
    "optim.envs_per_worker": 8, "model.cudagraphs": False, "reward.module": None,
    "env.map_file": None, "env.num_agents": 5, "env.horizon": 1000,
}

#: Keys of the ``env`` section that change the game a setting is played on (``env.map`` counts
#: only when it is not the game's own map, which has the game's name).
GAME_KEYS: tuple[str, ...] = ("env.map", "env.map_file", "env.num_agents", "env.horizon")


def get(config: dict[str, Any], dotted: str, default: Any = None) -> Any:
    """``config["a"]["b"]`` for ``"a.b"``; ``default`` when any part is missing."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"reward": {"name": x}}`` → ``{"reward.name": x}``; lists are kept as values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def setting_params(config: dict[str, Any]) -> dict[str, Any]:
    """The flattened hyperparameters that define a setting (sections ``model``, ``reward``,
    ``optim``, ``budget.num_envs`` and ``budget.lr_ref_envs``: the synchronous learner's batch is
    num_envs × rollout_len and its learning rate may scale with it, so both change what is learnt
    per env step), and the :data:`GAME_KEYS` that differ from the game's defaults; without
    :data:`DEFAULTED_KEYS` at their default."""
    params = {"env.name": get(config, "env.name")}
    for key in GAME_KEYS:
        if (value := get(config, key)) is not None:
            params[key] = value
    if params.get("env.map") == params["env.name"]:
        params.pop("env.map")
    for section in SETTING_SECTIONS:
        params.update(flatten(config.get(section) or {}, section + "."))
    if params.get("optim.algo") != "a3c":  # A3C's batch: optim.envs_per_worker, lr unscaled
        for key in ("budget.num_envs", "budget.lr_ref_envs"):
            if (value := get(config, key)) is not None:
                params[key] = value
    for key, default in DEFAULTED_KEYS.items():
        if params.get(key, default) == default:
            params.pop(key, None)
    return params


def setting_id(config: dict[str, Any]) -> str:
    """Stable 8-hex-digit hash of :func:`setting_params` (independent of key order)."""
    blob = json.dumps(setting_params(config), sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:8]
