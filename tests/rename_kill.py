"""Fault injection at the renames that commit checkpoints, for tests.

``python tests/rename_kill.py CONFIG_YAML JOB_DIR N`` trains the job of the resolved config in
``JOB_DIR`` and SIGKILLs itself at the N-th rename into a ``checkpoints`` folder, before the
rename happens (as ``strace -e inject=rename:signal=SIGKILL:when=N`` does, without strace).
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator


@contextmanager
def checkpoint_renames(kill_at: int = 0) -> Iterator[list[int]]:
    """Count the renames (``os.replace``, ``os.rename``) into a folder named ``checkpoints`` in
    ``count[0]``; SIGKILL this process at the ``kill_at``-th (0: never)."""
    count = [0]
    real = os.replace, os.rename

    def counted(rename: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
            if os.path.basename(os.path.dirname(os.fspath(dst))) == "checkpoints":
                count[0] += 1
                if count[0] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return rename(src, dst, *args, **kwargs)
        return wrapper

    os.replace, os.rename = counted(real[0]), counted(real[1])
    try:
        yield count
    finally:
        os.replace, os.rename = real


if __name__ == "__main__":
    from omegaconf import OmegaConf

    from si.train.run import run

    with checkpoint_renames(int(sys.argv[3])):
        run(OmegaConf.load(sys.argv[1]), sys.argv[2])
