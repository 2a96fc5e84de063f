"""What keeps a job folder honest: one writer, the config it was started with, checksummed
checkpoints with a fallback (docs/design.md, "Job-folder guarantees").

* :class:`JobLock` — an exclusive ``flock`` on ``<job>/.lock``; a second process on the same
  folder stops with one line naming the holder (host, pid).
* :func:`settle_config` — ``job_config.yaml`` is the resolved config the job was started with,
  written once. A rerun whose config differs in a key that changes the training is refused
  with one line listing the keys, unless ``allow_config_change=true``; then the change is
  appended to ``config_changes.jsonl`` and ``job_config.yaml`` is updated. Extending
  ``budget.agent_steps`` (and the keys in :data:`FREE_KEYS`) is always allowed.
* :func:`save_checkpoint` / :func:`load_checkpoint` — ``checkpoints/last.pt`` with a SHA-256
  sidecar, the previous checkpoint kept as ``prev.pt``; a file that does not match its checksum
  or does not load is named, and the previous one is used instead.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import json
import os
import socket
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

JOB_CONFIG = "job_config.yaml"
CONFIG_CHANGES = "config_changes.jsonl"
CHECKPOINTS = Path("checkpoints")

#: Keys that may differ between the start and a rerun of a job without changing what it learns:
#: the run's length (schedules stretch to the new length, recorded), where and how fast it runs,
#: and logging. Prefixes end with a dot.
FREE_KEYS: tuple[str, ...] = (
    "budget.agent_steps", "budget.checkpoint_every", "budget.checkpoint_every_s", "logger.", "threads",
    "tune_malloc", "device", "env.compile", "model.compile", "model.cudagraphs",
    "allow_config_change",
)


class JobFolderError(RuntimeError):
    """The job folder cannot be used as it is; the message names the file and what to do."""


class JobLock:
    """Exclusive lock on a job folder for the life of the process that trains in it."""

    def __init__(self, job_dir: Path):
        self.path = job_dir / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> JobLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown process"
            os.close(fd)
            raise JobFolderError(f"{self.path.parent} is in use by {holder}; wait for it or stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"host {socket.gethostname()} pid {os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None


def flat_config(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"reward": {"name": x}}`` → ``{"reward.name": x}`` (config diffs; W&B configs the UI groups by)."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _free(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in FREE_KEYS)


def config_changes(started: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Every dotted key whose value differs, with its (started, now) values."""
    a, b = flat_config(started), flat_config(now)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def settle_config(cfg: DictConfig, job_dir: Path, fresh: bool) -> DictConfig:
    """Return the config to train with and write it to ``job_config.yaml`` and ``.hydra/config.yaml``.

    ``fresh``: the folder holds no earlier run (its config is simply written). Otherwise the
    started config is compared with ``cfg`` (see the module docstring); a folder from before
    ``job_config.yaml`` existed adopts ``cfg``.
    """
    now = OmegaConf.to_container(cfg, resolve=True)
    path = job_dir / JOB_CONFIG
    if path.exists() and not fresh:
        started = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        changes = config_changes(started, now)
        diff = {k: v for k, v in changes.items() if not _free(k)}
        if diff and not cfg.get("allow_config_change", False):
            listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise JobFolderError(f"{job_dir} was started with another config ({listed}); rerun with the "
                                 f"original values, use a new hydra.sweep.dir/hydra.run.dir, or add "
                                 f"allow_config_change=true to continue with the new values (recorded in {CONFIG_CHANGES})")
        if diff or "budget.agent_steps" in changes:
            with (job_dir / CONFIG_CHANGES).open("a") as f:
                f.write(json.dumps({"time": datetime.datetime.now().isoformat(timespec="seconds"),
                                    "changes": {k: list(v) for k, v in changes.items()}}, default=str) + "\n")
    text = OmegaConf.to_yaml(cfg, resolve=True).encode()
    job_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text)
    (job_dir / ".hydra").mkdir(exist_ok=True)
    atomic_write(job_dir / ".hydra" / "config.yaml", text)
    return cfg


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary file and a rename: a kill leaves the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(state: dict[str, Any], job_dir: Path) -> None:
    """Write ``last.pt`` + ``last.pt.sha256`` atomically, keeping the previous pair as ``prev.*``.

    A kill at any point leaves at least one checkpoint whose checksum matches."""
    d = job_dir / CHECKPOINTS
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / "last.pt.tmp"
    torch.save(state, tmp)
    digest = _sha256(tmp)
    if (d / "last.pt").exists():
        (d / "last.pt").replace(d / "prev.pt")
        if (d / "last.pt.sha256").exists():
            (d / "last.pt.sha256").replace(d / "prev.pt.sha256")
    tmp.replace(d / "last.pt")
    atomic_write(d / "last.pt.sha256", digest.encode())


def has_checkpoint(job_dir: Path) -> bool:
    d = job_dir / CHECKPOINTS
    return (d / "last.pt").exists() or (d / "prev.pt").exists()


def load_checkpoint(job_dir: Path, device: torch.device, warn: Any = print) -> dict[str, Any]:
    """The newest checkpoint that matches its checksum and loads: ``last.pt``, else ``prev.pt``.

    Each bad file is reported through ``warn`` with the reason; JobFolderError when none is good.
    A checkpoint without a checksum file (written before checksums existed) is loaded as is."""
    problems = []
    for name in ("last.pt", "prev.pt"):
        path = job_dir / CHECKPOINTS / name
        if not path.exists():
            continue
        sums = path.with_name(name + ".sha256")
        if sums.exists() and sums.read_text().strip() != _sha256(path):
            problems.append(f"{path}: checksum mismatch (corrupt or modified)")
            warn(problems[-1])
            continue
        try:
            return torch.load(path, map_location=device, weights_only=False)
        except Exception as exc:  # noqa: BLE001 — any unreadable file falls through to the previous one
            problems.append(f"{path}: unreadable ({type(exc).__name__}: {exc})")
            warn(problems[-1])
    raise JobFolderError(f"no usable checkpoint in {job_dir / CHECKPOINTS} ({'; '.join(problems)}); "
                         f"delete the job folder to start it again")
