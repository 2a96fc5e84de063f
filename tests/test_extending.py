"""docs/extending.md's worked examples, run as written: every block marked ``<!-- file: X -->`` is
written to a temporary folder and every ``<!-- command -->`` runs (the launcher's overrides with a
tiny budget instead of ``budget=smoke``; the analysis command on fake job folders)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_analysis import make_fake_job, make_metrics
from test_trainer import make

from analysis.__main__ import main as analysis_main
from launch.checks import check_command_line
from si.config import ConfigError, validate
from si.envs import ENVS, make_env
from si.envs.maps import MAPS
from si.rewards.variants import REWARDS
from si.train.interval_metrics import ROLLOUT_METRICS

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
BLOCK = re.compile(r"<!-- (file: (?P<file>\S+)|command) -->\n```\w*\n(?P<body>.*?)```", re.S)


def guide_blocks() -> tuple[dict[str, str], list[list[str]]]:
    """The guide's files (name → text) and commands (as argument lists), in order."""
    files, commands = {}, []
    for m in BLOCK.finditer(GUIDE.read_text()):
        if m["file"]:
            files[m["file"]] = m["body"]
        else:
            commands.append(shlex.split(m["body"]))
    return files, commands


@pytest.fixture
def guide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The guide's files in ``tmp_path`` (the folder commands run from); the registries and
    imported modules are restored afterwards, so the examples leave no trace in other tests."""
    files, commands = guide_blocks()
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    saved = [(registry, dict(registry)) for registry in (REWARDS, ENVS, MAPS, ROLLOUT_METRICS)]
    yield files, commands
    for registry, content in saved:
        registry.clear()
        registry.update(content)
    for name in files:
        if name.endswith(".py"):
            sys.modules.pop(Path(name).stem, None)


def launch_overrides(command: list[str], tmp_path: Path) -> list[str]:
    """A guide command's overrides, checked as the launcher checks them, with the tiny budget of
    the trainer tests instead of ``budget=smoke`` and absolute search paths."""
    assert command[:2] == ["python", "launch/main.py"], command
    args = command[2:]
    check_command_line(args)
    args = [a.replace("file://", f"file://{tmp_path}/") for a in args if a != "budget=smoke"]
    return args


def trained(overrides: list[str], iterations: int = 2):
    t = make(*overrides)
    validate(t.cfg)
    for _ in range(iterations):
        t.train_iteration()
    return t


def test_the_equation_table_names_functions_that_exist() -> None:
    """docs/design.md, "The paper in the code": every function it names can be imported."""
    import importlib

    text = (GUIDE.parent / "design.md").read_text().split("## The paper in the code")[1].split("\n## ")[0]
    names = re.findall(r"`((?:si|analysis)\.[\w.]+)`", text)
    assert len(names) >= 25
    for name in names:
        parts = name.split(".")
        for cut in range(len(parts) - 1, 0, -1):  # the longest importable module prefix
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
                break
            except ModuleNotFoundError:
                continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        assert callable(obj), name


def test_the_guide_has_an_example_of_every_extension_point() -> None:
    files, commands = guide_blocks()
    assert set(files) == {"my_rewards.py", "my_conf/reward/step_cost.yaml", "orchard.txt", "uniform_harvest.py",
                          "beam_metrics.py"}
    assert [c[1] for c in commands] == ["launch/main.py"] * 4 + ["-m"]


def test_reward_variant_example(guide, tmp_path: Path) -> None:
    _, commands = guide
    t = trained(launch_overrides(commands[0], tmp_path))
    assert t.variant is REWARDS["step_cost"] and t.cfg.reward.params.cost == 0.02
    roll = t.collect()
    assert torch.allclose(roll["rewards"] - roll["extrinsic"], torch.full_like(roll["rewards"], -0.02), atol=1e-5)
    with pytest.raises(ConfigError, match="reward=step_cost is not an option of reward"):
        check_command_line(["reward=step_cost"])  # without the user's config folder


def test_map_file_example(guide, tmp_path: Path) -> None:
    files, commands = guide
    overrides = launch_overrides(commands[1], tmp_path)
    t = trained(overrides)
    assert t.env.rows == tuple(files["orchard.txt"].rstrip("\n").split("\n")) and t.n == 4
    t.cfg.env.num_agents = 5
    with pytest.raises(ConfigError, match=r"env.num_agents=5 is invalid: must be <= 4"):
        validate(t.cfg)


def test_game_example(guide, tmp_path: Path) -> None:
    _, commands = guide
    t = trained(launch_overrides(commands[2], tmp_path))
    assert type(t.env).__name__ == "UniformHarvestEnv"

    def regrown(name: str) -> int:
        """Apples back 300 steps after every apple was taken, with every agent standing still."""
        env = make_env(name, num_envs=4, horizon=1000)
        env.reset(seed=0)
        env.apples[:] = False
        stay = torch.full((4, env.num_agents), 4, dtype=torch.long)  # STAY
        for _ in range(300):
            env.step(stay)
        return int(env.apples.sum())

    assert regrown("harvest") == 0  # Harvest: no apple without a neighbour
    assert regrown("harvest_uniform") > 0


def test_metric_and_figure_examples(guide, tmp_path: Path) -> None:
    _, commands = guide
    t = make(*launch_overrides(commands[3], tmp_path))
    validate(t.cfg)
    actions = []
    for _ in range(2):
        roll = t.collect()
        t.update(roll)
        t.iteration += 1
        t.add_rollout_metrics(roll)
        actions.append(roll["actions"])
    fired = torch.cat(actions) == 7
    assert t.log_row(1.0, 1.0, 1)["fire_rate"] == pytest.approx(fired.float().mean().item())

    analysis = commands[4]
    assert analysis[:3] == ["python", "-m", "analysis"]
    sweep = Path(analysis[3])
    for seed in range(2):
        make_fake_job(sweep / f"{seed}_job", "harvest", "extrinsic", seed,
                      make_metrics(extra={"fire_rate": np.linspace(0.2, 0.01, 60)}))
    assert analysis_main([*analysis[3:], "--bootstrap-reps", "20"]) == 0
    out = Path(analysis[analysis.index("--out") + 1])
    assert (out / "figures" / "diag_fire_rate.png").exists()
    assert "--diagnostic fire_rate=FIRE actions per agent-step" in (out / "report.md").read_text()
