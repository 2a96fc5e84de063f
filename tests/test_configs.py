"""Every config group combination composes and validates; bad values fail with one clear line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from si.config import ENV_NAMES, REWARD_NAMES, ConfigError, register_configs, validate

CONF = Path(__file__).resolve().parents[1] / "conf"
ROOT = CONF.parent
register_configs()


def _compose(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("config", overrides=list(overrides), return_hydra_config=False)


def _names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("env", ENV_NAMES)
@pytest.mark.parametrize("reward", REWARD_NAMES)
def test_every_env_reward_pair_composes_and_validates(env, reward):
    cfg = _compose(f"env={env}", f"reward={reward}", "budget=smoke")
    validate(cfg)
    assert cfg.env.name == env and cfg.reward.name == reward
    assert OmegaConf.missing_keys(cfg) == set()
    if env != "box_trapped":
        assert cfg.paper_table != "none", "paper values must be picked for every game × reward"


def test_group_files_match_schema_names():
    assert _names("env") == sorted(ENV_NAMES)
    assert _names("reward") == sorted(REWARD_NAMES)
    for group in ("budget", "launcher", "logger", "optim", "model", "experiment"):
        for name in _names(group):
            validate(_compose(f"{group}={name}"))


def test_paper_values_are_picked_from_env_and_reward_and_can_be_turned_off():
    cfg = _compose("env=harvest", "reward=influence")
    assert (cfg.reward.beta, cfg.reward.divergence, cfg.reward.num_influencers) == (0.224, "pmi", 3)
    assert (cfg.optim.entropy, cfg.optim.lr_init) == (0.00025, 0.00107)
    cfg = _compose("env=cleanup", "reward=comm_influence")
    assert (cfg.reward.alpha, cfg.model.vocab, cfg.optim.comm_loss_weight) == (0.0, 9, 0.0758)
    cfg = _compose("env=harvest", "reward=influence", "paper=none")
    assert cfg.reward.divergence == "kl" and cfg.paper_table == "none"
    cfg = _compose("env=harvest", "reward=influence", "reward.beta=0.5")
    assert cfg.reward.beta == 0.5, "command line must win over paper values"


def test_each_reward_brings_the_model_features_it_needs():
    assert _compose("reward=influence").model.visible_actions
    assert _compose("reward=comm").model.comm
    m = _compose("reward=moa_influence").model
    assert m.moa and m.visible_actions


def test_box_trapped_warmup_experiment_sets_the_five_seed_protocol_over_the_paper_defaults():
    cfg = _compose("experiment=box_trapped_warmup", "reward=moa_influence")
    validate(cfg)
    assert (cfg.env.name, cfg.reward.beta, cfg.optim.moa_loss_weight) == ("box_trapped", 20.0, 10.0)
    assert cfg.optim.lr_init == 0.0005
    assert list(cfg.optim.warmup_agents) == [0] and cfg.optim.warmup_steps == 15_000_000


def test_experiment_then_budget_override_keeps_the_command_line_budget():
    cfg = _compose("experiment=box_trapped", "budget=tiny")
    assert cfg.env.name == "box_trapped" and cfg.budget.agent_steps == 4000


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["reward=influence", "reward.num_influencers=5"], "reward.num_influencers"),
        (["optim.lr_init=-0.1"], "optim.lr_init"),
        (["optim.entropy_end=-0.001"], "optim.entropy_end"),
        (["optim.warmup_agents=[5]"], "optim.warmup_agents"),
        (["reward=comm", "model.vocab=1"], "model.vocab"),
        (["reward=influence", "reward.divergence=cosine"], "reward.divergence"),
        (["device=tpu"], "device"),
        (["device=cpu", "model.cudagraphs=true"], "model.cudagraphs"),
        (["optim=a3c", "model.cudagraphs=true"], "model.cudagraphs"),
        (["budget.lr_ref_envs=0"], "budget.lr_ref_envs"),
    ],
)
def test_bad_values_raise_one_line_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as err:
        validate(_compose(*overrides))
    msg = str(err.value)
    assert msg.startswith(key) and "\n" not in msg


def test_bad_sweep_value_fails_before_any_job_is_launched(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "launch/main.py", "-m", "reward=influence", "env=harvest", "seed=range(2)",
         "reward.num_influencers=1,7", "launcher=inprocess", "logger=none", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert "reward.num_influencers=7 is invalid" in proc.stderr
    assert not any(sweep.glob("*/metrics.csv")), "no job may start when one job's config is invalid"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
@pytest.mark.parametrize("bad, message", [("device=cuda", "device='cuda' is invalid here"),
                                          ("env.num_agents=21", "env.num_agents=21 is invalid")])
def test_sweep_checks_device_and_spawn_points_before_any_job_folder_exists(tmp_path, bad, message):
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "launch/main.py", "-m", "env=harvest", "seed=range(2)", bad, "logger=none",
         f"hydra.sweep.dir={sweep}"], cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not any(sweep.glob("*_harvest-*")), "no job folder may be created"


def test_local_jobs_are_spread_over_the_gpus_round_robin(monkeypatch):
    import torch

    from launch.main import pin_local_gpu

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # what submitit-local sets for gpus_per_node=0
    pin_local_gpu(6)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2"
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")  # a scheduler's choice is kept
    pin_local_gpu(1)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"


def test_help_is_the_projects_own():
    proc = subprocess.run([sys.executable, "launch/main.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0
    assert "'seed=range(5)'" in proc.stdout and "Groups you set" in proc.stdout and "python -m analysis" in proc.stdout
