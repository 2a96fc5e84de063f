"""A3C learner benchmark: env-steps/s of ``optim=a3c`` with 1, 2, … workers and the scaling
efficiency (rate with W workers ÷ (W × rate with one)).

``python -m si.bench a3c [--workers 1,2] [--env harvest] [--reward extrinsic] [--steps 64000]``
runs a real job per worker count (a temporary job folder, W&B off), skips its first logging
interval (process start, compiling, warm-up) and reports the median rate of the others.
On a machine with C cores, W ≤ C workers should scale close to W× (the target on 2 cores:
2 workers ≥ 1.7× one).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from si.config import register_configs
from si.train.run import run

CONF = Path(__file__).resolve().parents[2] / "conf"


def measure(workers: int, env: str, reward: str, steps: int, extra: list[str]) -> float:
    """Median env-steps/s of the logging intervals after the first of an A3C job."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=[
            "optim=a3c", f"optim.workers={workers}", f"env={env}", f"reward={reward}", "logger=none",
            f"budget.agent_steps={steps}", f"budget.log_every={steps // 8}", f"budget.checkpoint_every={steps}",
            *extra])
    OmegaConf.resolve(cfg)
    with tempfile.TemporaryDirectory() as d:
        run(cfg, Path(d) / "job")
        rates = pd.read_csv(Path(d) / "job" / "metrics.csv")["env_steps_per_s"].tolist()[1:]
    return statistics.median(rates)


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m si.bench a3c``."""
    p = argparse.ArgumentParser(prog="python -m si.bench a3c", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    p.add_argument("--env", default="harvest", help="game (default: %(default)s)")
    p.add_argument("--reward", default="extrinsic", help="reward variant (default: %(default)s)")
    p.add_argument("--steps", type=int, default=64000, help="env steps per measured job (8 logging intervals)")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. optim.envs_per_worker=16")
    return p


def main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    register_configs()
    print(f"env={args.env} reward={args.reward} steps={args.steps:,} per job")
    print(f"{'workers':>8}{'env-steps/s':>14}{'vs 1 worker':>13}{'efficiency':>12}")
    base = None
    for w in map(int, args.workers.split(",")):
        rate = measure(w, args.env, args.reward, args.steps, args.overrides)
        base = base or (rate if w == 1 else None)
        speedup = f"{rate / base:.2f}x" if base else "-"
        eff = f"{rate / (w * base):.0%}" if base else "-"
        print(f"{w:>8}{rate:>14,.0f}{speedup:>13}{eff:>12}", flush=True)
