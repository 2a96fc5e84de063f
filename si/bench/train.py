"""Learner benchmark: env-steps/s of full training iterations for each reward variant.

``python -m si.bench train [--env harvest] [--num-envs 64] [--iters 5] [--device auto] [--compile]``
prints, per variant, env-steps/s, agent-actions/s (N × env-steps/s), the step-time ratio to
the A3C baseline (``extrinsic``) and, for variants with an influence reward, the *influence
overhead*: the step-time ratio to the same config with ``reward.influence=none`` (same network,
no counterfactuals), measured right after it.  The two ratios differ most for MOA influence,
whose network alone (a second FC + LSTM branch, paper Fig 6) costs about 1.5× the A3C step.
Configs come from ``conf/`` with the paper's values; ``--compile`` sets
``env.compile=true model.compile=true`` (compiling is not timed).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from si.config import REWARD_NAMES, register_configs
from si.malloc import tune_malloc
from si.train.trainer import Trainer

CONF = Path(__file__).resolve().parents[2] / "conf"


def measure(reward: str, env: str, num_envs: int, iters: int, device: str, extra: list[str]) -> tuple[float, int, str]:
    """(env-steps/s, number of agents, influence source) of ``iters`` training iterations after
    two warm-up iterations."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=[f"env={env}", f"reward={reward}", f"budget.num_envs={num_envs}",
                                           f"device={device}", "budget.agent_steps=1000000000", *extra])
    OmegaConf.resolve(cfg)
    trainer = Trainer(cfg)
    for _ in range(2):  # warm-up: allocator, kernels, caches
        trainer.train_iteration()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        trainer.train_iteration()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return iters * trainer.budget.steps_per_iter / (time.perf_counter() - t0), trainer.n, cfg.reward.influence


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m si.bench train``."""
    p = argparse.ArgumentParser(prog="python -m si.bench train", description=__doc__)
    p.add_argument("--env", default="harvest", help="game (default: %(default)s)")
    p.add_argument("--num-envs", type=int, default=64, help="envs per batch (default: %(default)s)")
    p.add_argument("--iters", type=int, default=5, help="timed training iterations per variant (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads; 0 = torch default")
    p.add_argument("--rewards", default=",".join(REWARD_NAMES), help="comma-separated reward variants")
    p.add_argument("--compile", action="store_true", help="torch.compile the env step and the influence")
    p.add_argument("--no-tune-malloc", action="store_true", help="leave glibc malloc settings alone (runs tune them)")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. optim.rollout_len=100")
    return p


def main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    register_configs()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    tuned = not args.no_tune_malloc and tune_malloc()
    if args.compile:
        args.overrides += ["env.compile=true", "model.compile=true"]
    rewards = args.rewards.split(",")
    if "extrinsic" not in rewards:
        rewards.insert(0, "extrinsic")
    print(f"env={args.env} num_envs={args.num_envs} device={args.device} threads={torch.get_num_threads()} malloc tuned {tuned}")
    print(f"{'reward':<18}{'env-steps/s':>14}{'agent-actions/s':>17}{'time vs A3C':>13}{'influence overhead':>20}")
    base = None
    for reward in rewards:
        sps, n, source = measure(reward, args.env, args.num_envs, args.iters, args.device, args.overrides)
        base = sps if reward == "extrinsic" else base
        overhead = "-"
        if source != "none":
            plain, _, _ = measure(reward, args.env, args.num_envs, args.iters, args.device, [*args.overrides, "reward.influence=none"])
            overhead = f"{plain / sps:.2f}x"
        print(f"{reward:<18}{sps:>14,.0f}{n * sps:>17,.0f}{base / sps:>12.2f}x{overhead:>20}", flush=True)
