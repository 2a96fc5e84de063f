"""A2C pieces: GAE/n-step returns by hand, per-agent clipping, LR schedule."""

import torch

from si.train.a2c import clip_grad_per_agent, gae, linear_schedule


def test_gae_lambda_one_is_discounted_return_with_bootstrap_and_episode_cut():
    r = torch.tensor([[1.0], [2.0], [3.0]])[:, :, None]  # (T=3, B=1, N=1)
    v = torch.tensor([[0.5], [0.25], [0.125]])[:, :, None]
    dones = torch.tensor([[False], [True], [False]])
    last = torch.tensor([[4.0]])
    adv, ret = gae(r, v, dones, last, gamma=0.5, lam=1.0)
    # t=2: 3 + .5*4 = 5; t=1 ends the episode: 2; t=0: 1 + .5*2 = 2
    torch.testing.assert_close(ret.flatten(), torch.tensor([2.0, 2.0, 5.0]))
    torch.testing.assert_close(adv.flatten(), torch.tensor([1.5, 1.75, 4.875]))


def test_gae_lambda_zero_is_one_step_td():
    r = torch.tensor([1.0, 1.0])[:, None, None]
    v = torch.tensor([2.0, 3.0])[:, None, None]
    adv, _ = gae(r, v, torch.zeros(2, 1, dtype=torch.bool), torch.tensor([[5.0]]), 0.9, 0.0)
    torch.testing.assert_close(adv.flatten(), torch.tensor([1 + 0.9 * 3 - 2, 1 + 0.9 * 5 - 3]))


def test_clip_grad_per_agent_scales_each_agent_separately():
    p = torch.nn.Parameter(torch.zeros(2, 2))
    p.grad = torch.tensor([[3.0, 4.0], [0.3, 0.4]])  # norms 5 and 0.5
    norms = clip_grad_per_agent([p], 2, max_norm=1.0)
    torch.testing.assert_close(norms, torch.tensor([5.0, 0.5]))
    torch.testing.assert_close(p.grad, torch.tensor([[0.6, 0.8], [0.3, 0.4]]), atol=1e-5, rtol=1e-5)


def test_linear_schedule():
    assert linear_schedule(1.0, 0.0, 0.25) == 0.75
    assert linear_schedule(1.0, 0.0, 2.0) == 0.0
