"""The reward registry (si.rewards.variants): a variant defined in a test module is looked up by
name, validated and trained without any change to ``si/``; unregistered names and parameters are
refused before launch; the built-in variants declare what they need."""

from __future__ import annotations

import pytest
import torch
from test_trainer import make

from si.config import ConfigError, effective_when, reward_variant, validate
from si.rewards.variants import REWARDS


def toy(*overrides: str):
    return make("env=harvest", "reward=extrinsic", "reward.name=toy_bonus", "reward.module=toy_reward",
                *overrides)


def test_a_variant_registered_from_a_test_module_trains_with_its_own_shaping():
    t = toy("+reward.params.bonus=0.25")
    validate(t.cfg)
    assert t.variant is REWARDS["toy_bonus"]
    roll = t.collect()
    assert torch.allclose(roll["rewards"] - roll["extrinsic"], torch.full_like(roll["rewards"], 0.25))
    for _ in range(2):
        t.train_iteration()
    assert t.agent_steps > 0 and all(map(torch.isfinite, (p.sum() for p in t.model.parameters())))


def test_unregistered_names_and_parameters_are_refused_with_the_nearest_name():
    t = toy("+reward.params.bonus=0.25")
    t.cfg.reward.name = "toy_bonsu"
    with pytest.raises(ConfigError, match=r"reward.name='toy_bonsu' is not a registered reward variant; did you mean toy_bonus\?"):
        validate(t.cfg)
    t.cfg.reward.name = "toy_bonus"
    t.cfg.reward.params = {"bonnus": 1.0}
    with pytest.raises(ConfigError, match=r"reward.params.bonnus is not a parameter of reward=toy_bonus \(its parameters: bonus\)"):
        validate(t.cfg)
    t.cfg.reward.module = "no_such_module"
    with pytest.raises(ConfigError, match=r"reward.module='no_such_module' cannot be imported"):
        reward_variant(t.cfg.reward)


def test_built_in_variants_declare_the_model_features_and_keys_they_use():
    t = make("env=cleanup", "reward=moa_influence")
    t.cfg.model.moa = False
    with pytest.raises(ConfigError, match=r"model.moa=False is invalid: must be true for reward.influence=moa"):
        validate(t.cfg)
    t = make("env=cleanup", "reward=moa")
    t.cfg.model.moa, t.cfg.reward.influence = False, "none"  # the MOA loss alone still needs the MOA
    with pytest.raises(ConfigError, match=r"model.moa=False is invalid: must be true for reward=moa"):
        validate(t.cfg)
    assert effective_when()["reward.eta"] == {"reward.name": ("collective",)}
    assert effective_when()["reward.ia_lambda"] == {"reward.name": ("inequity_aversion",)}
