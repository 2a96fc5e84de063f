"""Per-agent layers whose parameters are stacked along a leading agent dimension ``N``.

Agents never share weights (paper §3, §6), but every layer runs all agents in one batched
call: linear layers use ``einsum`` over ``(…, N, in) × (N, in, out)``, the convolution is a
grouped convolution with one group per agent.  Initialisation matches ``torch.nn`` defaults
per agent, so agent ``n``'s slice is distributed exactly like an unstacked layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def tanh(x: Tensor) -> Tensor:
    """``tanh``; on CPU as ``2·sigmoid(2x) − 1``, which ATen computes about 4.5× faster (its
    vectorised CPU tanh is ~10× slower than its sigmoid, measured); absolute error < 2e-7."""
    if x.is_cuda:
        return torch.tanh(x)
    return torch.sigmoid(2 * x) * 2 - 1


def softmax(x: Tensor) -> Tensor:
    """Softmax over the last dim; on CPU composed from ``exp`` and ``sum``, which for the small
    action/vocabulary dims here is 3-5x faster than ATen's CPU softmax (measured: 0.28 vs 1.40 ms
    on a ``(64, 8, 5, 5, 8)`` counterfactual tensor); error < 2e-7."""
    if x.is_cuda:
        return torch.softmax(x, -1)
    e = (x - x.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def log_softmax(x: Tensor) -> Tensor:
    """Log-softmax over the last dim; on CPU ``x − logsumexp(x)`` (3.7x faster than ATen's for
    ``(50, 64, 5, 8)`` policy logits, measured)."""
    if x.is_cuda:
        return torch.log_softmax(x, -1)
    return x - x.logsumexp(-1, keepdim=True)


def _uniform_(t: Tensor, fan_in: int) -> Tensor:
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return nn.init.uniform_(t, -bound, bound)


class StackedLinear(nn.Module):
    """``y[..., n, :] = x[..., n, :] @ W[n] + b[n]`` for every agent ``n`` (one batched matmul)."""

    def __init__(self, num_agents: int, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(_uniform_(torch.empty(num_agents, in_features, out_features), in_features))
        self.bias = nn.Parameter(_uniform_(torch.empty(num_agents, out_features), in_features)) if bias else None

    def forward(self, x: Tensor, agents: Tensor | None = None) -> Tensor:
        """``x (…, N, in)``; with ``agents (J,)`` the agent dim holds only those agents' inputs."""
        weight = self.weight if agents is None else self.weight[agents]
        bias = self.bias if agents is None or self.bias is None else self.bias[agents]
        return stacked_linear(x, weight, bias)


def stacked_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x (…, N, in) @ weight (N, in, out) + bias (N, out)`` per agent, as one batched matmul."""
    lead, n = x.shape[:-2], x.shape[-2]
    xs = x.reshape(-1, n, x.shape[-1]).transpose(0, 1)  # (N, M, in)
    y = torch.bmm(xs, weight) if bias is None else torch.baddbmm(bias[:, None], xs, weight)
    return y.transpose(0, 1).reshape(*lead, n, -1)


class StackedConv(nn.Module):
    """One ``Conv2d`` per agent (valid padding), run as a grouped convolution.

    Input ``(M, N, H, W, C)`` (the observation layout, any dtype and strides) → float output
    ``(M, N, C_out, H', W')``.  The input is converted and laid out as a channels-last
    ``(M, N·C, H, W)`` batch in one copy, the faster layout for the CPU convolution.
    """

    def __init__(self, num_agents: int, in_channels: int, out_channels: int, kernel: int, stride: int = 1):
        super().__init__()
        fan_in = in_channels * kernel * kernel
        self.num_agents, self.stride = num_agents, stride
        self.weight = nn.Parameter(_uniform_(torch.empty(num_agents * out_channels, in_channels, kernel, kernel), fan_in))
        self.bias = nn.Parameter(_uniform_(torch.empty(num_agents * out_channels), fan_in))

    def forward(self, x: Tensor, scale: float = 1.0) -> Tensor:
        """``scale`` multiplies the input (e.g. 1/255 for uint8 pixels)."""
        m, n, h, w, c = x.shape
        xf = torch.empty(m, h, w, n, c, dtype=self.weight.dtype, device=x.device).copy_(x.permute(0, 2, 3, 1, 4))
        if scale != 1.0:
            xf.mul_(scale)
        x = xf.view(m, h, w, n * c).permute(0, 3, 1, 2)
        y = F.conv2d(x, self.weight, self.bias, self.stride, groups=self.num_agents)
        return y.view(m, n, -1, y.shape[-2], y.shape[-1])


class StackedLSTMCell(nn.Module):
    """Per-agent LSTM cell split into its parts so counterfactual inputs stay cheap.

    Gate pre-activations are ``input(x) + recurrent(h)`` = ``x W_x + b + h W_h`` (gate order
    i, f, g, o as in ``nn.LSTMCell``); the input part can be computed for a whole sequence at
    once, and extra additive terms (one-hot actions or symbols, see :class:`StackedEmbedding`)
    are added before :meth:`cell` applies the nonlinearities.
    """

    def __init__(self, num_agents: int, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.input = StackedLinear(num_agents, input_size, 4 * hidden_size)
        self.recurrent = StackedLinear(num_agents, hidden_size, 4 * hidden_size, bias=False)
        _uniform_(self.input.weight.data, hidden_size)
        _uniform_(self.input.bias.data, hidden_size)

    @staticmethod
    def cell(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        i, f, g, o = gates.chunk(4, dim=-1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * tanh(g)
        return torch.sigmoid(o) * tanh(c_new), c_new


class StackedEmbedding(nn.Module):
    """Per-agent linear map of a one-hot vector over ``slots × size`` categories.

    ``weight[n, s, v]`` is what agent ``n`` adds to its LSTM gates when slot ``s`` (another
    agent) shows category ``v`` (an action or a symbol).  Equivalent to a linear layer on the
    concatenated one-hot inputs, but a counterfactual change of one slot is a weight lookup.
    """

    def __init__(self, num_agents: int, slots: int, size: int, out_features: int, fan_in: int, mask: Tensor):
        super().__init__()
        self.size = size
        self.weight = nn.Parameter(_uniform_(torch.empty(num_agents, slots, size, out_features), fan_in))
        self.register_buffer("mask", mask.float(), persistent=False)  # (N, S): which slots agent n sees

    def masked_weight(self) -> Tensor:
        """``weight`` with the rows of unseen slots zeroed, ``(N, S, size, out)``."""
        return self.weight * self.mask[:, :, None, None]

    def forward(self, idx: Tensor) -> Tensor:
        """``idx (…, N, S)`` categories per agent and slot → ``(…, N, out)``."""
        onehot = F.one_hot(idx, self.size).to(self.weight.dtype).flatten(-2)  # (…, N, S·size)
        lead, n = onehot.shape[:-2], onehot.shape[-2]
        w = self.masked_weight().flatten(1, 2)  # (N, S·size, out)
        y = torch.bmm(onehot.reshape(-1, n, onehot.shape[-1]).transpose(0, 1), w)
        return y.transpose(0, 1).reshape(*lead, n, -1)
