"""Counter-based random numbers: bits depend only on (key, counter, stream, index).

The same key and counter give the same bits on CPU and CUDA, the whole generator state is two
int32 tensors (``key (B,)``, ``ctr ()``), and drawing is pure tensor work with no generator
object, so it runs inside ``torch.compile(fullgraph=True)`` graphs and CUDA graphs.
"""

from __future__ import annotations

import torch
from torch import Tensor


def mix32(x: Tensor) -> Tensor:
    """lowbias32 integer hash (C. Wellons) on int32 tensors read as uint32.

    int32 products wrap modulo 2**32 and shifts are made logical by masking, identically on CPU
    and CUDA, so the same counter gives the same bits on every device.
    """
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * 0x7FEB352D
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * -0x7B935975  # 0x846CA68B as int32
    return x ^ ((x >> 16) & 0xFFFF)


def i32(v: int) -> int:
    """``v`` modulo 2**32 as a signed int32 value."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def seed_keys(seed: int, count: int, device: torch.device | str) -> Tensor:
    """``(count,)`` int32 keys, one per env, from a 64-bit ``seed``."""
    ids = torch.arange(count, dtype=torch.int32, device=device) * i32(0x9E3779B9)
    lo = mix32(torch.tensor(i32(seed), dtype=torch.int32, device=device))
    hi = mix32(torch.tensor(i32((seed >> 32) ^ 0x5BD1E995), dtype=torch.int32, device=device))
    return mix32(mix32(ids + lo) ^ hi)


def uniforms(key: Tensor, ctr: Tensor, stream: int, k: int) -> Tensor:
    """``(B, k)`` float32 uniforms in [0, 1) (24-bit) for draw ``stream`` of counter ``ctr``."""
    head = mix32(key ^ mix32(ctr * i32(0x27D4EB2F) + i32(stream * 0x165667B1)))
    idx = torch.arange(k, dtype=torch.int32, device=key.device) * i32(0x9E3779B9)
    bits = mix32(head[:, None] + idx)
    return ((bits >> 8) & 0xFFFFFF).to(torch.float32) * (1.0 / (1 << 24))
