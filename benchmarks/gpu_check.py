"""The first GPU hour, as one command: versions, CUDA tests, env and learner throughput on CUDA,
and an end-to-end ``device=cuda`` job with a checkpoint and a resume.

    python benchmarks/gpu_check.py --out results/gpu_check            # on the GPU machine (< 8 min on one H100/H200)
    python benchmarks/gpu_check.py --out /tmp/gpu_check --quick       # CPU smoke (CI): CUDA parts skipped, said so
    python benchmarks/gpu_check.py --out /tmp/dry --quick --device cpu   # every step on CPU (checks the script itself)

Writes ``gpu_check.json`` and ``gpu_check.md`` under ``--out`` and exits non-zero when any step
failed. Each step is recorded as ok / skipped (with the reason) / failed (with the error), so a
short GPU loan always leaves a readable result, even when a step breaks. Targets (recorded, not
enforced): env ≥ 20M env-steps/s (5 agents, observations built) at some B ≤ 65,536; A3C-model
training ≥ 200k env-steps/s; influence ≤ 1.5× the A3C step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from si.bench import env as env_bench  # noqa: E402
from si.bench import train as train_bench  # noqa: E402
from si.config import register_configs  # noqa: E402

TARGETS = {"env_steps_per_s": 20e6, "train_env_steps_per_s": 2e5, "influence_vs_a3c": 1.5}


class Skip(Exception):
    """A step that cannot run here (e.g. no CUDA); the reason is recorded."""


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "cuda_build": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
        out["gpu_count"] = torch.cuda.device_count()
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30)
            out["driver, memory"] = smi.stdout.strip()
        except OSError as exc:
            out["driver, memory"] = f"nvidia-smi unavailable: {exc}"
    return out


DEVICE = "cuda"
"""Where the measured steps run; ``--device cpu`` runs them on CPU to check the script itself."""


def need_cuda() -> None:
    if DEVICE == "cuda" and not torch.cuda.is_available():
        raise Skip("CUDA is not available on this machine: CUDA step skipped")


def _peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if DEVICE == "cuda" else float("nan")


def cuda_tests() -> dict[str, Any]:
    need_cuda()
    if DEVICE != "cuda":
        raise Skip("--device cpu: the CUDA tests need CUDA")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"pytest -m cuda failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}")
    return {"summary": proc.stdout.strip().splitlines()[-1]}


def env_throughput(batches: list[int], seconds: float) -> dict[str, Any]:
    need_cuda()
    rows = []
    for compiled in (False, True):
        for b in batches:
            if DEVICE == "cuda":
                torch.cuda.reset_peak_memory_stats()
            steps = max(10, int(seconds * (2e7 if DEVICE == "cuda" else 2e5) / b))
            rate = env_bench.measure("harvest", b, 5, DEVICE, steps, compiled)
            rows.append({"env": "harvest", "B": b, "compiled": compiled, "env_steps_per_s": rate,
                         "peak_mem_gib": _peak_gib()})
    best = max(r["env_steps_per_s"] for r in rows)
    return {"rows": rows, "best_env_steps_per_s": best, "target_met": best >= TARGETS["env_steps_per_s"]}


def train_throughput(num_envs: int, iters: int, rewards: list[str]) -> dict[str, Any]:
    need_cuda()
    register_configs()
    rows = []
    compiled = ["env.compile=true", "model.compile=true"]
    modes = [("eager", []), ("compiled", compiled)]
    if DEVICE == "cuda":
        modes.append(("cudagraphs", [*compiled, "model.cudagraphs=true"]))
    for mode, extra in modes:
        base = None
        for reward in rewards:
            rate, _, _ = train_bench.measure(reward, "harvest", num_envs, iters, DEVICE, extra)
            base = rate if reward == "extrinsic" else base
            rows.append({"reward": reward, "mode": mode, "env_steps_per_s": rate,
                         "vs_a3c": base / rate if base else None})
    a3c = max(r["env_steps_per_s"] for r in rows if r["reward"] == "extrinsic")
    worst = max((r["vs_a3c"] for r in rows if r["reward"] != "extrinsic" and r["vs_a3c"]), default=None)
    return {"rows": rows, "a3c_env_steps_per_s": a3c, "target_met": a3c >= TARGETS["train_env_steps_per_s"],
            "worst_influence_vs_a3c": worst}


def end_to_end(out: Path, seconds: float) -> dict[str, Any]:
    """A ``device=cuda`` job: SIGTERM after its first checkpoint, rerun, and it must complete
    with one metrics row per logging interval."""
    need_cuda()
    job = out / "job"
    steps = max(int(seconds * 20000), 8 * 12800)  # at least 8 updates of 256 envs × 50 steps
    args = [sys.executable, "launch/main.py", "reward=influence", "env=harvest", f"device={DEVICE}", "budget=small",
            f"budget.agent_steps={steps}", "budget.num_envs=256", f"budget.log_every={steps // 8}",
            f"budget.checkpoint_every={steps // 4}", "logger=none", f"hydra.run.dir={job}"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (job / "checkpoints" / "last.pt").exists():
        if proc.poll() is not None:
            raise RuntimeError(f"job ended before its first checkpoint:\n{proc.stderr.read()[-3000:]}")
        if time.time() - t0 > 300:
            proc.kill()
            raise RuntimeError("no checkpoint within 300 s")
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if again.returncode != 0:
        raise RuntimeError(f"resume failed:\n{again.stderr[-3000:]}")
    summary = json.loads((job / "summary.json").read_text())
    lines = (job / "metrics.csv").read_text().splitlines()[1:]
    rows = [int(float(line.split(",")[0])) for line in lines]
    if summary["status"] != "complete" or rows != sorted(set(rows)) or len(rows) != 8:
        raise RuntimeError(f"status {summary['status']}, agent_steps {rows}")
    if "resumed at" not in again.stderr:
        raise RuntimeError("the job finished before the SIGTERM reached it: nothing was resumed")
    return {"job_status": summary["status"], "device": summary.get("device"), "rows": len(rows),
            "final_env_steps_per_s": summary["final"]["env_steps_per_s"]}


def run_step(name: str, fn: Callable[[], dict[str, Any]], results: dict[str, Any]) -> None:
    t0 = time.perf_counter()
    try:
        results[name] = {"status": "ok", **fn()}
    except Skip as exc:
        results[name] = {"status": "skipped", "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 — recorded, the other steps still run
        results[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc()[-3000:]}
    results[name]["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"[gpu_check] {name}: {results[name]['status']}"
          + (f" ({results[name].get('reason') or results[name].get('error')})" if results[name]["status"] != "ok" else "")
          + f" in {results[name]['seconds']} s", flush=True)


def markdown(results: dict[str, Any]) -> str:
    lines = ["# GPU check", "", f"Run {results['date']} on {results['versions']['value'].get('gpu', 'no GPU')}.", ""]
    lines += ["| step | status | seconds | detail |", "|---|---|---|---|"]
    for name, r in results.items():
        if isinstance(r, dict) and "status" in r:
            detail = (r.get("reason") or r.get("error") or "").split("\n")[0]
            lines.append(f"| {name} | {r['status']} | {r['seconds']} | {detail} |")
    for name in ("env_throughput", "train_throughput"):
        r = results.get(name, {})
        if r.get("status") == "ok":
            lines += ["", f"## {name}", "", "| " + " | ".join(r["rows"][0]) + " |",
                      "|" + "---|" * len(r["rows"][0])]
            lines += ["| " + " | ".join(f"{v:,.0f}" if isinstance(v, float) and v > 100 else
                                        f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.values()) + " |"
                      for row in r["rows"]]
    lines += ["", f"Targets: {TARGETS}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--quick", action="store_true", help="small sizes (a CPU smoke run or a quick first look)")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                   help="where the measured steps run (cpu: check the script itself)")
    args = p.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_MODE", "offline")
    batches = [1024, 4096] if args.quick else [1024, 4096, 16384, 65536]
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S")}
    run_step("versions", lambda: {"value": versions()}, results)
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("[gpu_check] CUDA is not available: versions only; the CUDA steps are skipped", flush=True)
    run_step("cuda_tests", cuda_tests, results)
    run_step("env_throughput", lambda: env_throughput(batches, 0.5 if args.quick else 2.0), results)
    run_step("train_throughput", lambda: train_throughput(256 if args.quick else 1024, 2 if args.quick else 5,
                                                          ["extrinsic", "influence", "comm_influence", "moa_influence"]),
             results)
    run_step("end_to_end", lambda: end_to_end(args.out, 6.0 if args.quick else 60.0), results)
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str))
    (args.out / "gpu_check.md").write_text(markdown(results))
    failed = [k for k, v in results.items() if isinstance(v, dict) and v.get("status") == "failed"]
    print(f"[gpu_check] wrote {args.out / 'gpu_check.json'} and gpu_check.md; "
          + (f"FAILED: {', '.join(failed)}" if failed else "no step failed"), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
