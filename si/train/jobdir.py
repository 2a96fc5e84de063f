"""What keeps a job folder honest: one writer, the config it was started with, checksummed
checkpoints with a fallback (docs/design.md, "Job-folder guarantees").

* :class:`JobLock` — an exclusive ``flock`` on ``<job>/.lock``; a second process on the same
  folder stops with one line naming the holder (host, pid).
* :func:`check_config_change` / :func:`keep_config` — ``job_config.yaml`` is the resolved config
  the job trains with. A rerun whose config differs in a key that changes the training is
  refused with one line listing the keys, unless ``allow_config_change=true``; then the change
  and the agent step from which it applies are appended to ``config_changes.jsonl``
  (si.jobfiles) and ``job_config.yaml`` is updated. Extending ``budget.agent_steps`` (and the
  keys in ``si.jobfiles.FREE_KEYS``) is always allowed. A finished job is left as it is unless
  the rerun extends ``budget.agent_steps`` (si.train.run).
* :func:`save_checkpoint` / :func:`load_checkpoint` — ``checkpoints/last.pt`` holding the SHA-256
  of its own content and committed by one rename, the previous checkpoint kept as ``prev.pt``;
  plain tensors and numbers only (they load with ``torch.load(..., weights_only=True)``). A file
  that is missing, does not load or does not match its checksum is named, and ``prev.pt`` used.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import hashlib
import json
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch
from omegaconf import DictConfig, OmegaConf

from si.jobfiles import CONFIG_CHANGES, training_changes
from si.setting import flatten

JOB_CONFIG = "job_config.yaml"
CHECKPOINTS = Path("checkpoints")
#: The key under which a checkpoint file holds the SHA-256 of the rest of its content.
DIGEST_KEY = "sha256"


class JobFolderError(RuntimeError):
    """The job folder cannot be used as it is; the message names the file and what to do."""


#: What a write error means for the job folder, by errno.
STORAGE_ERRORS: dict[int, str] = {
    errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted", errno.ENOTDIR: "a path component is a file, not a folder",
}


def storage_error(exc: OSError, job_dir: Path) -> JobFolderError | None:
    """A one-line JobFolderError for a write that failed because of the storage (full disk,
    read-only or unwritable folder); None for any other OSError."""
    what = STORAGE_ERRORS.get(exc.errno or 0)
    if what is None:
        return None
    where = f" {exc.filename}" if exc.filename else ""
    return JobFolderError(f"{job_dir}: cannot write{where} ({what}); free space or make the folder writable, then "
                          f"rerun the same command: the job resumes from its last checkpoint")


def check_writable(job_dir: Path) -> None:
    """JobFolderError (one line) unless a file can be created in ``job_dir`` or, before it
    exists, in its nearest existing parent (launch.checks runs this before Hydra writes there)."""
    folder = job_dir
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise storage_error(exc, job_dir) or JobFolderError(f"{job_dir}: cannot write in {folder} ({exc})") from None


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


def config_changes(started: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Every dotted key whose value differs, with its (started, now) values."""
    a, b = flatten(started), flatten(now)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def check_config_change(cfg: DictConfig, job_dir: Path) -> dict[str, tuple[Any, Any]]:
    """The changes of ``cfg`` against the config ``job_dir`` trains with (none when it keeps no
    ``job_config.yaml``); JobFolderError when they change the training and ``allow_config_change``
    is not set. Reads the folder only (launch.checks runs it before launch)."""
    path = job_dir / JOB_CONFIG
    if not path.exists():
        return {}
    changes = config_changes(OmegaConf.to_container(OmegaConf.load(path), resolve=True),
                             OmegaConf.to_container(cfg, resolve=True))
    diff = training_changes(changes)
    if diff and not cfg.get("allow_config_change", False):
        listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
        raise JobFolderError(f"{job_dir} was started with another config ({listed}); rerun with the "
                             f"original values, use a new hydra.sweep.dir/hydra.run.dir, or add "
                             f"allow_config_change=true to continue with the new values (recorded in {CONFIG_CHANGES})")
    return changes


def keep_config(cfg: DictConfig, job_dir: Path, changes: dict[str, tuple[Any, Any]], agent_steps: int = 0) -> None:
    """Write ``cfg`` to ``job_config.yaml`` and ``.hydra/config.yaml``, first appending
    ``changes`` (from :func:`check_config_change`) to ``config_changes.jsonl`` with the
    ``agent_steps`` from which they apply, when they change the training or the run's length."""
    if training_changes(changes) or "budget.agent_steps" in changes:
        with (job_dir / CONFIG_CHANGES).open("a") as f:
            f.write(json.dumps({"time": datetime.datetime.now().isoformat(timespec="seconds"),
                                "agent_steps": int(agent_steps),
                                "changes": {k: list(v) for k, v in changes.items()}}, default=str) + "\n")
    text = OmegaConf.to_yaml(cfg, resolve=True).encode()
    job_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(job_dir / JOB_CONFIG, text)
    (job_dir / ".hydra").mkdir(exist_ok=True)
    atomic_write(job_dir / ".hydra" / "config.yaml", text)


def restore_hydra_config(job_dir: Path) -> None:
    """Put the config the job keeps (``job_config.yaml``) back into ``.hydra/config.yaml``, which
    Hydra rewrote with a rerun's values before the job started, when the rerun was refused or
    found nothing to do."""
    kept = job_dir / JOB_CONFIG
    if kept.exists() and (job_dir / ".hydra").is_dir():
        atomic_write(job_dir / ".hydra" / "config.yaml", kept.read_bytes())


def _write_synced(tmp: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create ``tmp`` with ``write(file)`` and sync it to disk; on any failure (a full disk)
    remove it, so no half-written file is left behind."""
    try:
        with tmp.open("wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary file and a rename: a kill leaves the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    _write_synced(tmp, lambda f: f.write(data))
    tmp.replace(path)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def state_digest(state: Any) -> str:
    """SHA-256 of a checkpoint's content: every key, number and string, and every tensor's dtype,
    shape and bytes, in order. The same before saving and after loading, on any device."""
    h = hashlib.sha256()
    _digest_into(h, state)
    return h.hexdigest()


def _digest_into(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous().reshape(-1)
        h.update(f"tensor {t.dtype} {tuple(value.shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy())
    elif isinstance(value, dict):
        h.update(f"dict {len(value)}\n".encode())
        for key, item in value.items():
            _digest_into(h, key)
            _digest_into(h, item)
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__} {len(value)}\n".encode())
        for item in value:
            _digest_into(h, item)
    elif value is None or isinstance(value, (bool, int, float, str)):
        h.update(f"{type(value).__name__} {value!r}\n".encode())
    else:
        raise TypeError(f"a checkpoint holds plain data (tensors, numbers, strings), not {type(value).__name__}")


def _snapshot(value: Any) -> Any:
    """``value`` with every tensor copied: the A3C workers go on updating the shared parameters and
    optimiser statistics while a checkpoint is written, and the digest must describe the bytes saved."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _snapshot(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_snapshot(v) for v in value)
    return value


def save_checkpoint(state: dict[str, Any], job_dir: Path) -> None:
    """Commit ``state`` as ``checkpoints/last.pt``, keeping the previous checkpoint as ``prev.pt``.

    Each file holds the SHA-256 of its content under :data:`DIGEST_KEY` and is verified on its
    own. The new checkpoint is written and synced to ``last.pt.tmp``, ``last.pt`` is moved to
    ``prev.pt``, and one rename of ``last.pt.tmp`` to ``last.pt`` commits it: a kill before that
    rename leaves the checkpoints as they were, or (between the two renames) the previous one as
    ``prev.pt`` only, which :func:`load_checkpoint` then uses."""
    d = job_dir / CHECKPOINTS
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / "last.pt.tmp"
    body = _snapshot({k: v for k, v in state.items() if k != DIGEST_KEY})
    _write_synced(tmp, lambda f: torch.save({**body, DIGEST_KEY: state_digest(body)}, f))
    if (d / "last.pt").exists():
        (d / "last.pt").replace(d / "prev.pt")
    tmp.replace(d / "last.pt")
    _fsync_dir(d)
    _drop_stale_sidecars(d)


def _fsync_dir(d: Path) -> None:
    """Make the renames in ``d`` durable (a node that loses power keeps them)."""
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sidecar_sums(d: Path) -> set[str]:
    """Checksums in ``*.pt.sha256`` files, written next to checkpoints that did not hold their own."""
    return {p.read_text().strip() for p in d.glob("*.pt.sha256")}


def _drop_stale_sidecars(d: Path) -> None:
    """Remove the ``*.pt.sha256`` files that describe no checkpoint in ``d`` any more."""
    sidecars = list(d.glob("*.pt.sha256"))
    if sidecars:
        live = {_sha256(d / name) for name in ("last.pt", "prev.pt") if (d / name).exists()}
        for path in sidecars:
            if path.read_text().strip() not in live:
                path.unlink()


def has_checkpoint(job_dir: Path) -> bool:
    d = job_dir / CHECKPOINTS
    return (d / "last.pt").exists() or (d / "prev.pt").exists()


def _verified(path: Path, device: torch.device) -> dict[str, Any]:
    """The state in checkpoint ``path`` if it loads (``weights_only``) and matches its digest;
    ValueError saying why not. A file that matches a ``*.pt.sha256`` file (a checkpoint from
    before checksums were stored inside, which holds pickled objects) is loaded as it is."""
    if not path.exists():
        raise ValueError("missing (the job was killed while committing a checkpoint)"
                         if path.name == "last.pt" else "missing")
    sidecars = _sidecar_sums(path.parent)
    if sidecars and _sha256(path) in sidecars:
        return torch.load(path, map_location=device, weights_only=False)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 — any unreadable file falls through to the previous one
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise ValueError(f"unreadable ({type(exc).__name__}: {first_line})") from None
    digest = state.pop(DIGEST_KEY, None) if isinstance(state, dict) else None
    if digest is None or digest != state_digest(state):
        raise ValueError("checksum mismatch (corrupt or modified)")
    return state


def load_checkpoint(job_dir: Path, device: torch.device, warn: Any = print) -> dict[str, Any]:
    """The newest committed checkpoint that loads and matches its checksum: ``last.pt``, else
    ``prev.pt``.

    Falling back to ``prev.pt`` is reported through ``warn`` in one line; JobFolderError when
    neither file is good."""
    d = job_dir / CHECKPOINTS
    problems = []
    for name in ("last.pt", "prev.pt"):
        try:
            return _verified(d / name, device)
        except ValueError as exc:
            problems.append(f"{d / name}: {exc}")
            if name == "last.pt" and (d / "prev.pt").exists():
                warn(f"{problems[-1]}; using prev.pt")
    raise JobFolderError(f"no usable checkpoint in {job_dir / CHECKPOINTS} ({'; '.join(problems)}); "
                         f"delete the job folder to start it again")
