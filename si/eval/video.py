"""A GIF (and MP4 when imageio-ffmpeg is installed) of a trained job's agents playing one env."""

from __future__ import annotations

from pathlib import Path

from si.envs.render import frame, save_video
from si.eval import eval_trainer, load_job, run_steps


def record(job_dir: Path | str, out: Path | str, steps: int, scale: int, device: str, seed: int) -> list[Path]:
    """Sample ``steps`` env steps of the job's policy in one env and write the full-map frames
    (agents in their colours, beams shown) to ``out``; returns the files written."""
    job = load_job(job_dir)
    trainer = eval_trainer(job.cfg, job.model_state, 1, device, seed)
    frames = [frame(trainer.env, 0, scale)]
    run_steps(trainer, steps, lambda _: frames.append(frame(trainer.env, 0, scale)))
    return save_video(frames[: steps + 1], out)
