"""Asynchronous advantage actor-critic (A3C, Mnih et al. 2016), the paper's learner (§3).

``W`` worker processes (``torch.multiprocessing``, spawn) share one model θ and one optimiser
whose statistics live in shared memory (shared RMSProp as in the A3C paper, or Adam). Each worker
keeps its own copy θ' of the model (Mnih et al.'s "thread-specific parameters"), steps its own
``optim.envs_per_worker`` envs with it, collects a ``t_max = optim.rollout_len`` rollout,
computes the same losses as the synchronous learner (n-step returns, every reward variant),
hands the gradients of θ' to θ and steps the shared optimiser without locks (Hogwild), then
sets θ' = θ. (Running the forward and backward passes directly on the shared θ while other
workers update it produced non-finite weights in most 2-worker runs of the full Harvest model;
with a private θ' per rollout it never did.) Before each rollout a worker reserves its env steps on a shared
counter, so the run ends exactly at ``budget.agent_steps`` and the lr and curriculum schedules
follow the global step count.

The parent process owns the job folder: it merges the workers' metrics into one
``metrics.csv`` row per logging interval (row ``k`` holds the updates whose reserved steps end
in ``((k−1)·L, k·L]``), prints the progress line and checkpoints the shared model and optimiser.

Resume guarantee (asynchronous updates make bit-exact resume impossible): the metrics table
continues with no duplicated or missing rows (rows after the checkpoint are dropped and logged
again); model and optimiser continue from the checkpoint, whose weights may already include a
few updates from rollouts beyond its step count (workers keep updating while it is written);
envs, LSTM states and sampling streams restart fresh (new episodes) in every worker.
"""

from __future__ import annotations

import copy
import os
import queue
import traceback
from dataclasses import dataclass
from typing import Any

import torch
import torch.multiprocessing as mp
from omegaconf import DictConfig, OmegaConf

from si.train.interval_metrics import Accumulator
from si.train.trainer import DivergenceError, Trainer


def worker_count(cfg: DictConfig) -> int:
    """``optim.workers``, or one per CPU of the job: SLURM_CPUS_PER_TASK, ``threads``, the cores."""
    if cfg.optim.workers > 0:
        return int(cfg.optim.workers)
    slurm = os.environ.get("SLURM_CPUS_PER_TASK")
    if slurm:
        return int(slurm)
    return cfg.threads if cfg.threads > 0 else len(os.sched_getaffinity(0))


def worker_config(cfg: DictConfig) -> DictConfig:
    """The config one worker's Trainer is built from: its own small batch of envs, on CPU."""
    wcfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    wcfg.budget.num_envs = cfg.optim.envs_per_worker
    wcfg.device = "cpu"
    return wcfg


def share_optimizer(optimizer: torch.optim.Optimizer) -> None:
    """Create the optimiser's per-parameter statistics now and move them to shared memory."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state[p]
            if not state:
                state["step"] = torch.zeros(())
                if isinstance(optimizer, torch.optim.Adam):
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                else:
                    state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            for value in state.values():
                value.share_memory_()


def _to_numpy(acc: Accumulator) -> dict[str, Any]:
    """A picklable copy of an accumulator without shared-memory tensors."""
    return {"sums": acc.sums, "counts": acc.counts, "episodes": [e.numpy() for e in acc.episodes],
            "tables": {k: v.numpy() for k, v in acc.tables.items()}}


def _from_numpy(d: dict[str, Any]) -> Accumulator:
    return Accumulator(d["sums"], d["counts"], [torch.from_numpy(e) for e in d["episodes"]],
                       {k: torch.from_numpy(v) for k, v in d["tables"].items()})


class LocalCopy:
    """The optimiser a worker's Trainer sees: gradients of the local copy θ' are applied to the
    shared θ by the shared optimiser, then θ' = θ (A3C's per-rollout synchronisation)."""

    def __init__(self, local: torch.nn.Module, shared: torch.nn.Module, optimizer: torch.optim.Optimizer):
        self.local, self.shared = list(local.parameters()), list(shared.parameters())
        self.optimizer = optimizer
        self.param_groups = optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.local:
            p.grad = None

    def step(self) -> None:
        for lp, sp in zip(self.local, self.shared):
            sp.grad = lp.grad
        self.optimizer.step()
        with torch.no_grad():
            for lp, sp in zip(self.local, self.shared):
                lp.copy_(sp)


@dataclass
class Update:
    """What a worker reports after each update: the end of its reserved steps and its metrics."""

    rank: int
    end_steps: int
    episodes: int
    acc: dict[str, Any]


def _worker(rank: int, cfg: DictConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            counter: Any, total: int, stream: int, out: Any, stop: Any, parent: int) -> None:
    """One A3C worker: reserve steps, roll out, update the shared model, report; until the budget
    is used, a stop is requested, or the parent process is gone (killed)."""
    torch.set_num_threads(1)
    try:
        local = copy.deepcopy(model)  # θ': private storage, synchronised after every update
        trainer = Trainer(cfg, model=local, optimizer=LocalCopy(local, model, optimizer), stream=stream)
        per_iter = trainer.budget.steps_per_iter
        while not stop.is_set() and os.getppid() == parent:
            with counter.get_lock():
                if counter.value >= total:
                    break
                counter.value += per_iter
                end = counter.value
            trainer.iteration = end // per_iter - 1  # schedules follow the global step count
            trainer.train_iteration()
            out.put(Update(rank, end, trainer.episodes, _to_numpy(trainer.acc)))
            trainer.acc, trainer.episodes = Accumulator(), 0
    except DivergenceError as exc:
        out.put(("diverged", rank, str(exc)))
    except BaseException:  # noqa: BLE001 — reported to the parent, which stops the run
        out.put(("error", rank, traceback.format_exc()))
    out.put(("done", rank, None))


class A3C:
    """The parent side: shared model and optimiser, worker processes, merged metrics rows."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.workers = worker_count(cfg)
        self.wcfg = worker_config(cfg)
        self.trainer = Trainer(self.wcfg, stream=0)
        """Holds the shared model and optimiser and turns merged metrics into rows (log_row)."""
        self.trainer.model.share_memory()
        share_optimizer(self.trainer.optimizer)
        b = self.trainer.budget
        self.per_iter = b.steps_per_iter
        self.interval = b.log_every_iters * b.steps_per_iter
        self.total = b.agent_steps
        self.updates_per_worker = [0] * self.workers
        self.resumes = 0

    @property
    def agent_steps(self) -> int:
        return self.trainer.agent_steps

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.trainer.model.state_dict(), "optimizer": self.trainer.optimizer.state_dict(),
                "iteration": self.trainer.iteration, "episodes": self.trainer.episodes, "resumes": self.resumes,
                "updates_per_worker": self.updates_per_worker}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.trainer.model.load_state_dict(sd["model"])  # copies into the shared parameters
        self.trainer.optimizer.load_state_dict(sd["optimizer"])
        share_optimizer(self.trainer.optimizer)
        self.trainer.iteration, self.trainer.episodes = sd["iteration"], sd["episodes"]
        self.resumes = sd["resumes"] + 1
        self.updates_per_worker = (sd["updates_per_worker"] + [0] * self.workers)[: self.workers]

    def rows(self, stop_requested: Any) -> Any:
        """Run the workers; yield ``(row_steps, Accumulator, episodes)`` for every finished logging
        interval, in order. Stops the workers when ``stop_requested()`` is true; raises
        DivergenceError / RuntimeError when a worker reports one."""
        ctx = mp.get_context("spawn")
        counter = ctx.Value("q", self.agent_steps)
        out, stop = ctx.Queue(), ctx.Event()
        procs = [ctx.Process(target=_worker, daemon=True, args=(
            r, self.wcfg, self.trainer.model, self.trainer.optimizer, counter, self.total,
            1 + r + self.workers * self.resumes, out, stop, os.getpid())) for r in range(self.workers)]
        for p in procs:
            p.start()
        pending: dict[int, tuple[Accumulator, int, int]] = {}  # interval end -> (acc, episodes, updates)
        start = self.agent_steps
        next_end = min(start + self.interval, self.total)
        done, failure = 0, None
        try:
            while done < self.workers:
                if stop_requested():
                    stop.set()
                try:
                    msg = out.get(timeout=1.0)
                except queue.Empty:
                    continue
                if isinstance(msg, tuple):
                    kind, rank, text = msg
                    if kind == "done":
                        done += 1
                    elif failure is None:
                        failure = (kind, rank, text)
                        stop.set()
                    continue
                self.updates_per_worker[msg.rank] += 1
                end = min(-(-msg.end_steps // self.interval) * self.interval, self.total)
                acc, episodes, updates = pending.get(end, (Accumulator(), 0, 0))
                acc.merge(_from_numpy(msg.acc))
                pending[end] = (acc, episodes + msg.episodes, updates + 1)
                while next_end in pending and pending[next_end][2] * self.per_iter == next_end - max(
                        start, interval_start(next_end, self.interval)):
                    acc, episodes, _ = pending.pop(next_end)
                    yield next_end, acc, episodes
                    next_end = min(next_end + self.interval, self.total)
        finally:
            stop.set()
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.terminate()
        if failure is not None:
            kind, rank, text = failure
            if kind == "diverged":
                raise DivergenceError(f"worker {rank}: {text}")
            raise RuntimeError(f"A3C worker {rank} failed:\n{text}")

    def log_row(self, steps: int, acc: Accumulator, episodes: int, elapsed_s: float, interval_s: float,
                interval_steps: int) -> dict[str, float]:
        """The metrics row of the interval ending at ``steps`` (the synchronous learner's columns)."""
        t = self.trainer
        t.iteration = steps // self.per_iter
        t.episodes += episodes
        t.acc = acc
        return t.log_row(elapsed_s, interval_s, interval_steps)


def interval_start(end: int, interval: int) -> int:
    """Start of the logging interval that ends at ``end`` (the last one may be shorter)."""
    return end - interval if end % interval == 0 else end - end % interval

