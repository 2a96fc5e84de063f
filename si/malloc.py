"""glibc allocator settings for CPU runs (process-wide)."""

from __future__ import annotations

import ctypes


def tune_malloc() -> bool:
    """Keep freed large blocks in glibc's heap (no mmap/munmap per allocation): envs and learners
    allocate tensors of tens of MB every step, and the page faults of re-mapping them cost up to
    6× (env at B = 4096) and about 20 % of an A3C training iteration on CPU (measured, docs/results.md).
    The process's resident memory then stays near its peak.  Returns False where glibc is absent."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 34)
    return bool(ok and libc.mallopt(m_top_pad, 1 << 28))
