"""Env throughput: ``python -m si.bench env [--envs harvest cleanup] [--batch 1 16 256 1024 4096]``.

Prints env-steps/s (one env step = all N agents act once, observations built) with uniformly
random actions, per env, device and batch size, and the ratio to ``--baseline-sps`` (e.g. the
original SSD numpy env measured on the same machine). ``--compile`` runs the transition through
``torch.compile`` (``env.compile()``, any device; the first step then takes 20–40 s on CPU).
"""

from __future__ import annotations

import argparse
import time

import torch

from si.envs import ENV_NAMES, make_env
from si.malloc import tune_malloc


def measure(name: str, batch: int, agents: int, device: str, steps: int, compile_: bool) -> float:
    """Env steps per second over ``steps`` batched steps after a short warm-up."""
    env = make_env(name, batch, agents, device=device)
    env.reset(seed=0)
    if compile_:
        env.compile()
        env.validate_actions = False  # the actions below are valid; the check is a host sync on CUDA
    step = env.step
    gen = torch.Generator(device=device).manual_seed(0)
    actions = [torch.randint(0, env.num_actions, (batch, agents), generator=gen, device=device) for _ in range(8)]
    for i in range(3):
        step(actions[i % 8])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(steps):
        step(actions[i % 8])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m si.bench env``."""
    p = argparse.ArgumentParser(prog="python -m si.bench env", description=__doc__)
    p.add_argument("--envs", nargs="+", default=["harvest", "cleanup"], choices=ENV_NAMES,
                   help="games (default: %(default)s)")
    p.add_argument("--batch", nargs="+", type=int, default=[1, 16, 256, 1024, 4096],
                   help="batch sizes B (default: %(default)s)")
    p.add_argument("--agents", type=int, default=5, help="agents per env (default: %(default)s)")
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda if available")
    p.add_argument("--seconds", type=float, default=2.0, help="rough time budget per measurement")
    p.add_argument("--compile", action="store_true", help="torch.compile the env transition (env.compile())")
    p.add_argument("--baseline-sps", type=float, default=None, help="env-steps/s of a reference")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-tune-malloc", action="store_true", help="leave glibc malloc settings alone")
    return p


def main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tuned = not args.no_tune_malloc and tune_malloc()
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(f"torch {torch.__version__}, cpu threads {torch.get_num_threads()}, malloc tuned {tuned}")
    print(f"{'env':<12}{'device':<8}{'B':>7}{'env-steps/s':>14}{'agent-actions/s':>16}{'vs baseline':>13}")
    for name in args.envs:
        for device in devices:
            for batch in args.batch:
                probe = measure(name, batch, args.agents, device, 3, args.compile)
                steps = max(5, min(2000, int(args.seconds * probe / batch)))
                sps = measure(name, batch, args.agents, device, steps, args.compile)
                ratio = f"{sps / args.baseline_sps:.1f}x" if args.baseline_sps else "-"
                print(f"{name:<12}{device:<8}{batch:>7}{sps:>14,.0f}{sps * args.agents:>16,.0f}{ratio:>13}")
