"""Every config group combination composes and validates; bad values fail with one clear line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf

from launch.checks import PreLaunchChecks, check_command_line, check_job_folder, integral_floats
from si.config import EFFECTIVE_WHEN, REWARD_NAMES, ConfigError, register_configs, unknown_key, validate
from si.envs import ENV_NAMES
from si.train.jobdir import JobFolderError, JobLock

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


# ---------------------------------------------------------------- config traps: refused in one line, nothing created


def _launch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "launch/main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, env={**os.environ, "WANDB_MODE": "offline"})


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _assert_refused(proc: subprocess.CompletedProcess, message: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and message in lines[0], proc.stderr[-3000:]
    assert not proc.stdout.strip(), proc.stdout[-3000:]


@pytest.mark.parametrize("args, message", [
    (["+optim.lr=0.1"], "optim.lr is not a config key; did you mean optim.lr_init?"),
    (["optim.lr=0.1"], "optim.lr is not a config key; did you mean optim.lr_init?"),
    (["-m", "+reward.betta=1,2"], "reward.betta is not a config key; did you mean reward.beta?"),
    (["evn=harvest"], "evn is not a config key; did you mean env?"),
    (["env=harvst"], "env=harvst is not an option of env; did you mean env=harvest?"),
    (["-m", "env=harvst,cleanup"], "env=harvst is not an option of env; did you mean env=harvest?"),
    (["-m", "reward=influence,moa_influense"], "did you mean reward=moa_influence?"),
    (["reward=influence", "reward.num_influencers=7"], "reward.num_influencers=7 is invalid"),
    (["env.num_agents=21"], "env.num_agents=21 is invalid"),
])
def test_refused_launch_prints_one_line_and_creates_nothing(tmp_path, args, message):
    """Unknown keys (Hydra's ``+`` would add them, ignored by the run), misspelt group options
    and configs refused by a check: one line, before Hydra creates a run or sweep folder."""
    proc = _launch(*args, "logger=none", f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep")
    _assert_refused(proc, message)
    assert not any(tmp_path.iterdir()), "no folder, .hydra/, main.log or multirun.yaml"


def test_nearest_key_is_searched_across_the_schema():
    assert unknown_key("optim.lr_init") is None and unknown_key("optim.warmup_agents.0") is None
    assert unknown_key("reward.lr_init").endswith("did you mean optim.lr_init?")
    assert unknown_key("budget.agent_step").endswith("did you mean budget.agent_steps?")
    assert unknown_key("experment", ["experiment"]).endswith("did you mean experiment?")


def test_used_by_command_line_passes_the_command_line_checks():
    check_command_line(["-m", "reward=influence,visible", "env=harvest", "seed=range(5)"])
    check_command_line(["experiment=table4", "paper=none", "~experiment", "hydra/launcher=basic", "launcher=slurm"])
    with pytest.raises(ConfigError, match="did you mean budget=smoke"):
        check_command_line(["budget=smok"])


def test_whole_numbers_in_float_notation_reach_integer_keys_as_integers():
    """``budget.agent_steps=2e7`` is what a researcher types; Hydra reads it as a float, which the
    integer schema field refuses, so the launcher writes it as an integer first."""
    assert integral_floats(["-m", "budget.agent_steps=2e7", "budget.log_every=6.4e4,1.28e5", "+budget.num_envs=16.0"]) \
        == ["-m", "budget.agent_steps=20000000", "budget.log_every=64000,128000", "+budget.num_envs=16"]
    kept = ["budget.agent_steps=2.5e0", "reward.beta=2e-1", "seed=range(5)", "hydra.sweep.dir=/x/1e7", "seed=3"]
    assert integral_floats(kept) == kept, "non-whole numbers, float keys, sweeps and other keys: as given"
    proc = _launch("env=cleanup", "budget.agent_steps=2e7", "logger=none", "--cfg", "job")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert OmegaConf.create(proc.stdout).budget.agent_steps == 20_000_000


def _started_job(job: Path, *overrides: str) -> dict[str, bytes]:
    """A job folder as a started job leaves it (its config, a checkpoint); its parent's files."""
    text = OmegaConf.to_yaml(_compose(*overrides), resolve=True)
    for path in (job / "job_config.yaml", job / ".hydra" / "config.yaml", job / "checkpoints" / "last.pt"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return _files(job.parent)


STARTED = ("reward=influence", "env=harvest", "logger=none")


@pytest.mark.parametrize("sweep", [False, True])
def test_rerun_with_another_config_is_refused_before_launch(tmp_path, sweep):
    """One line per refused job, nothing written: no 30-line traceback per sweep job after launch,
    no config dump before the error, no .hydra/ rewritten with the refused values."""
    if sweep:
        before = _started_job(tmp_path / "0_harvest-influence-s0", *STARTED)
        proc = _launch("-m", *STARTED, "seed=range(2)", "reward.beta=9", f"hydra.sweep.dir={tmp_path}")
    else:
        before = _started_job(tmp_path / "run", *STARTED)
        proc = _launch(*STARTED, "reward.beta=9", f"hydra.run.dir={tmp_path / 'run'}")
    _assert_refused(proc, "was started with another config (reward.beta: 0.224 -> 9.0)")
    assert _files(tmp_path) == before, "every file keeps its content; no new file"


def test_refusal_inside_the_job_restores_hydra_config(tmp_path):
    """Past the pre-launch checks (here turned off), the job's own refusal puts back the
    ``.hydra/config.yaml`` that Hydra rewrote with the refused values."""
    job = tmp_path / "run"
    _started_job(job, *STARTED)
    proc = _launch(*STARTED, "reward.beta=9", "~hydra.callbacks.pre_launch_checks", f"hydra.run.dir={job}")
    assert proc.returncode != 0 and "JobFolderError" in proc.stderr.strip().splitlines()[-1]
    assert (job / ".hydra" / "config.yaml").read_text() == (job / "job_config.yaml").read_text()
    assert "beta: 0.224" in (job / "job_config.yaml").read_text()


def test_folder_check_accepts_what_the_job_accepts(tmp_path):
    job = tmp_path / "job"
    _started_job(job, *STARTED)
    for same in [STARTED, (*STARTED, "threads=3", "budget.agent_steps=9000", "logger.progress_every_s=1"),
                 (*STARTED, "reward.beta=9", "allow_config_change=true")]:
        check_job_folder(_compose(*same), job)
    with pytest.raises(JobFolderError, match=r"\(reward.beta: 0.224 -> 9.0, reward.divergence: 'pmi' -> 'kl'\)"):
        check_job_folder(_compose(*STARTED, "reward.beta=9", "reward.divergence=kl"), job)
    (job / "checkpoints" / "last.pt").unlink()  # killed before its first checkpoint: starts afresh
    check_job_folder(_compose(*STARTED, "reward.beta=9"), job)


def test_folder_in_use_is_refused_before_launch(tmp_path):
    job = tmp_path / "run"
    _started_job(job, *STARTED)
    with JobLock(job):
        before = _files(tmp_path)
        proc = _launch(*STARTED, f"hydra.run.dir={job}")
    _assert_refused(proc, f"{job} is in use by host")
    assert _files(tmp_path) == before


@pytest.fixture
def hydra_config():
    """Compose as ``launch/main.py`` does (with the ``hydra`` node; ``-m`` with RunMode.MULTIRUN)."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        yield lambda mode, *overrides: GlobalHydra.instance().hydra.compose_config("config", list(overrides), mode)


def test_keys_without_effect_warn_before_launch(tmp_path, capsys, hydra_config):
    """One warning line per key set on the command line that the chosen reward/optim ignores,
    derived from si.config.EFFECTIVE_WHEN; once per sweep."""
    run = hydra_config(RunMode.RUN, "reward.num_influencers=9", "optim.ppo_epochs=2", "optim.rmsprop_eps=0.5",
                        "reward.eta=0.5", f"hydra.run.dir={tmp_path}/run")
    PreLaunchChecks().on_run_start(config=run)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "Warning: reward.num_influencers=9 has no effect with reward=extrinsic optim=a2c: it is used only when "
        "reward.influence is action (here none)",
        "Warning: optim.ppo_epochs=2 has no effect with reward=extrinsic optim=a2c: it is used only when "
        "optim.algo is ppo (here a2c)",
        "Warning: optim.rmsprop_eps=0.5 has no effect with reward=extrinsic optim=a2c: it is used only when "
        "optim.optimizer is rmsprop (here adam)",
        "Warning: reward.eta=0.5 has no effect with reward=extrinsic optim=a2c: it is used only when "
        "reward.name is collective (here extrinsic)",
    ]
    sweep = hydra_config(RunMode.MULTIRUN, "reward=extrinsic,influence", "seed=range(2)", "reward.num_influencers=3",
                          "optim=a3c", "optim.workers=2", f"hydra.sweep.dir={tmp_path}/sweep")
    PreLaunchChecks().on_multirun_start(config=sweep)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Warning: reward.num_influencers=3 has no effect with reward=extrinsic")
    assert lines[1].startswith("4 jobs validated")
    assert not any(tmp_path.iterdir())


def test_effective_when_table_names_schema_keys():
    for key, conditions in EFFECTIVE_WHEN.items():
        assert unknown_key(key) is None, key
        assert all(unknown_key(other) is None for other in conditions), key


def test_used_by_sweep_passes_the_pre_launch_checks(tmp_path, capsys, hydra_config):
    sweep = hydra_config(RunMode.MULTIRUN, "reward=influence,visible", "env=harvest", "seed=range(5)",
                          f"hydra.sweep.dir={tmp_path}")
    PreLaunchChecks().on_multirun_start(config=sweep)
    assert capsys.readouterr().err.startswith("10 jobs validated")
