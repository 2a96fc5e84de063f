"""CPU/CUDA agreement of the model forward and the influence rewards (run by benchmarks/gpu_check.py
with ``pytest -m cuda``; skipped without CUDA). The envs' bit-identity is in test_envs.py.

Tolerance: float32 kernels differ between devices, so logits, values and influence (nats) must
agree to atol 1e-4 + rtol 1e-3; sampling is replaced by argmax so both devices take the same actions."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from si.config import register_configs
from si.train.trainer import Trainer

CONF = Path(__file__).resolve().parents[1] / "conf"
register_configs()
OTHER = "cuda"
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def trainer(reward: str, device: str) -> Trainer:
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=[f"reward={reward}", "env=harvest", f"device={device}", "budget=tiny",
                                           "budget.num_envs=8", "logger=none"])
    OmegaConf.resolve(cfg)
    t = Trainer(cfg)
    t._sample = lambda logits, stream: logits.argmax(-1)  # the same actions on both devices
    return t


@pytest.mark.parametrize("reward", ["extrinsic", "influence", "comm_influence", "moa_influence"])
def test_forward_and_influence_agree_between_cpu_and_cuda(reward: str) -> None:
    cpu, gpu = trainer(reward, "cpu"), trainer(reward, OTHER)
    gpu.model.load_state_dict(cpu.model.state_dict())
    a, b = cpu.collect(), gpu.collect()
    assert torch.equal(a["actions"], b["actions"].cpu())
    for key in ("logits", "values", "influence"):
        if key in a:
            torch.testing.assert_close(b[key].cpu(), a[key], atol=1e-4, rtol=1e-3, msg=key)


@pytest.mark.parametrize("reward", ["extrinsic", "influence", "moa_influence"])
def test_cudagraph_rollouts_equal_eager_rollouts(reward: str) -> None:
    """``model.cudagraphs``: the acting step replayed as a CUDA graph gives the eager rollout
    (inductor's fused kernels: same tolerance as across devices; argmax actions)."""
    eager, graphed = trainer(reward, OTHER), trainer(reward, OTHER)
    graphed.step_fn = graphed._graphed_step()
    for _ in range(3):  # the first call records; later ones replay
        a, b = eager.collect(), graphed.collect()
        eager.update(a)
        graphed.update(b)
        assert torch.equal(a["actions"], b["actions"])
        for key in ("logits", "values", "rewards", "influence"):
            if key in a:
                torch.testing.assert_close(a[key], b[key], atol=1e-4, rtol=1e-3)
