"""Action and symbol sampling from counter-based uniforms (si.envs.rng).

Inverse-CDF sampling needs no generator object and no host sync, so the acting step compiles as
one graph (``torch.compile(fullgraph=True)``) and can be captured as a CUDA graph; the same seed
draws the same samples on CPU and CUDA (given the same probabilities).
"""

from __future__ import annotations

import torch
from torch import Tensor

from si.envs.rng import seed_keys, uniforms

STREAMS = {"actions": 0, "influencee_actions": 1, "symbols": 2}
"""Independent draws of one acting step."""


class CategoricalSampler:
    """Samples ``(B, K)`` indices from ``(B, K, A)`` probabilities; state: ``key (B,)``, ``ctr ()``."""

    def __init__(self, seed: int, num_envs: int, device: torch.device):
        self.key = seed_keys(seed ^ 0x5A3C_96E1, num_envs, device)
        self.ctr = torch.zeros((), dtype=torch.int32, device=device)

    def advance(self) -> None:
        """Next acting step: fresh uniforms for every stream (in place, a persistent buffer)."""
        self.ctr.add_(1)

    def sample(self, probs: Tensor, stream: str) -> Tensor:
        """int64 ``(B, K)``: index ``a`` with probability ``probs[..., a]`` (inverse CDF of a
        24-bit uniform; the last index absorbs rounding of the cumulative sum)."""
        u = uniforms(self.key, self.ctr, STREAMS[stream], probs.shape[1])
        below = probs.cumsum(-1) <= u[..., None]
        return below.sum(-1).clamp_max(probs.shape[-1] - 1)

    def state_dict(self) -> dict[str, Tensor]:
        return {"key": self.key.clone(), "ctr": self.ctr.clone()}

    def load_state_dict(self, sd: dict[str, Tensor]) -> None:
        self.key = sd["key"].to(self.key.device)
        self.ctr.copy_(sd["ctr"])
