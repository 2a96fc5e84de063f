"""Full-map RGB frames and trajectory videos (agents in their SSD colours, beams shown)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch

from si.envs.gridworld import GridWorld


def frame(env: GridWorld, index: int = 0, scale: int = 1) -> np.ndarray:
    """``(H*scale, W*scale, 3)`` uint8 RGB of env ``index`` as of its last observation."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    img = env.render_frame()[index].cpu().numpy()
    return img.repeat(scale, 0).repeat(scale, 1)


def save_video(frames: Sequence[np.ndarray | torch.Tensor], path: str | Path, fps: int = 8) -> list[Path]:
    """Write ``frames`` (each ``(H, W, 3)`` uint8) as a GIF at ``path`` (suffix replaced by .gif),
    and as an MP4 beside it when ``imageio-ffmpeg`` is installed. Returns the files written."""
    if len(frames) == 0:
        raise ValueError("save_video needs at least one frame")
    arrays = [np.asarray(f.cpu() if isinstance(f, torch.Tensor) else f, dtype=np.uint8) for f in frames]
    if any(a.ndim != 3 or a.shape[2] != 3 or a.shape != arrays[0].shape for a in arrays):
        raise ValueError("frames must all have the same (H, W, 3) shape")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    gif = path.with_suffix(".gif")
    imageio.mimsave(gif, arrays, duration=1000 / fps, loop=0)
    written = [gif]
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return written
    mp4 = path.with_suffix(".mp4")
    imageio.mimsave(mp4, arrays, fps=fps, macro_block_size=1)
    written.append(mp4)
    return written
