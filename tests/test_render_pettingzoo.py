"""Full-map frames, video writing and the PettingZoo adapter."""

import numpy as np
import torch
from pettingzoo.test import parallel_api_test

from si.envs import make_env
from si.envs.gridworld import AGENT_COLOURS, FIRE
from si.envs.pettingzoo import SSDParallelEnv
from si.envs.render import frame, save_video


def test_frames_show_map_agents_and_beams(tmp_path) -> None:
    env = make_env("harvest", 2, 3)
    env.reset(seed=0)
    img = frame(env, 1)
    assert img.shape == (16, 38, 3) and img.dtype == np.uint8
    assert img[0, 0].tolist() == [180, 180, 180]
    r, c = env.rows_cols(env.pos[1])
    for i in range(3):
        packed = AGENT_COLOURS[i]
        assert img[r[i], c[i]].tolist() == [packed & 255, packed >> 8 & 255, packed >> 16 & 255]
    out = env.step(torch.full((2, 3), FIRE))
    assert (frame(env, 0) == np.array([255, 255, 0], np.uint8)).all(-1).any()
    frames = [frame(env, 0, scale=4)]
    for _ in range(3):
        env.step(torch.randint(0, 8, (2, 3)))
        frames.append(frame(env, 0, scale=4))
    written = save_video(frames, tmp_path / "traj.gif")
    assert written[0].exists() and written[0].stat().st_size > 0
    assert out.obs.shape == (2, 3, 15, 15, 3)


def test_pettingzoo_parallel_api() -> None:
    for name in ("harvest", "cleanup", "box_trapped"):
        parallel_api_test(SSDParallelEnv(name, num_agents=2, horizon=30), num_cycles=40)


def test_pettingzoo_rollout_matches_batched_env() -> None:
    pz = SSDParallelEnv("cleanup", num_agents=3, horizon=20, render_mode="rgb_array")
    obs, _ = pz.reset(seed=4)
    env = make_env("cleanup", 1, 3, horizon=20)
    ref = env.reset(seed=4)
    assert all(np.array_equal(obs[f"agent_{i}"], ref.obs[0, i].numpy()) for i in range(3))
    for t in range(20):
        acts = {a: (t + i) % 9 for i, a in enumerate(pz.agents)}
        obs, rew, term, trunc, info = pz.step(acts)
        ref = env.step(torch.tensor([[acts[f"agent_{i}"] for i in range(3)]]))
        assert all(rew[f"agent_{i}"] == float(ref.reward[0, i]) for i in range(3))
    assert all(trunc.values()) and pz.agents == [] and pz.render().shape == (25, 18, 3)
