"""Read W&B offline run files (``run-<id>.wandb``) back, for tests: the records are protobuf
``wandb_internal_pb2.Record`` messages in W&B's LevelDB-style log (a 7-byte header, 32 KiB blocks,
each record chunk with a 7-byte header: CRC32, little-endian length, type FULL/FIRST/MIDDLE/LAST)."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any, Iterator

from google.protobuf.message import DecodeError
from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    """Every record of one offline run file, in the order written."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, chunks = HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # block trailer: zero padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0 and length == 0:
            break
        chunks += data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(chunks)
            chunks = b""
            yield rec


def history(path: Path) -> list[dict[str, Any]]:
    """The logged history rows: ``{"_step": step, key: value, ...}``."""
    rows = []
    for rec in records(path):
        if rec.WhichOneof("record_type") == "history":
            row: dict[str, Any] = {"_step": rec.history.step.num}
            for item in rec.history.item:
                path = [item.key] if item.key else list(item.nested_key)
                node = row
                for part in path[:-1]:  # media values arrive as one item per field
                    node = node.setdefault(part, {})
                node[path[-1]] = json.loads(item.value_json)
            rows.append(row)
    return rows


def ended(path: Path) -> bool:
    """Whether the run file's last record is W&B's ``exit`` record (False while a record is still
    being written and cannot be parsed yet)."""
    last = None
    try:
        for rec in records(path):
            last = rec.WhichOneof("record_type")
    except DecodeError:
        return False
    return last == "exit"


def run_files(job_dir: Path, timeout: float = 60.0) -> list[Path]:
    """A job's offline run files, oldest first (one per process that ran the job).

    ``run.finish()`` can return before W&B's service has written the whole file (seen on a loaded
    machine), so this waits up to ``timeout`` s for the newest file's ``exit`` record; older files
    (from killed processes) may stay cut short."""
    files = sorted(job_dir.glob("wandb/offline-run-*/run-*.wandb"))
    deadline = time.monotonic() + timeout
    while files and not ended(files[-1]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return files


def summary(path: Path) -> dict[str, Any]:
    """The run summary after the last record (later updates win)."""
    out: dict[str, Any] = {}
    for rec in records(path):
        if rec.WhichOneof("record_type") == "summary":
            for item in rec.summary.update:
                out[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return out
