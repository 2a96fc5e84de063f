"""Per-agent conv-FC-LSTM actor-critic of the paper (§3, Fig 3, Fig 6, appendix 10.4).

Architecture per agent: one conv layer (6 channels, kernel 3, stride 1, valid padding) → two
fully connected layers of 32 (ReLU) → LSTM 128 → policy and value heads.  Options:

* ``visible_actions``: the other agents' actions (one-hot) are an additive LSTM input
  (visible-actions baseline, basic influence, MOA models — §4.1, §6.1);
* ``comm``: every agent's previous symbol (one-hot, vocab ``V``) is an LSTM input, and extra
  heads emit a symbol through a linear layer of size ``comm_embedding``: π_m and V_m (§5, Fig 3);
* ``moa``: a second FC + LSTM branch on the agent's conv features predicts every agent's next
  action given the joint action ``a_t`` and the view ``s_t^k`` (§6, Fig 6).

All agents run in one batched call (``si.models.stacked``).  One-hot inputs enter the LSTM as
additive gate terms, so a counterfactual action or symbol only changes one looked-up weight
row: :meth:`ActorCritic.counterfactual_policy` and :meth:`ActorCritic.moa_counterfactual`
evaluate every counterfactual in one call without re-running the trunk or the recurrent matmul.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from si.models.stacked import StackedConv, StackedEmbedding, StackedLinear, StackedLSTMCell, softmax, stacked_linear

OBS_SHAPE = (15, 15, 3)
State = dict[str, Tensor]


@dataclass
class PolicyOut:
    """Heads of one step: ``logits (…, N, A)``, ``value (…, N)``; comm heads when enabled."""

    logits: Tensor
    value: Tensor
    comm_logits: Tensor | None = None
    comm_value: Tensor | None = None


class ActorCritic(nn.Module):
    """Stacked per-agent actor-critic; see the module docstring."""

    def __init__(
        self,
        num_agents: int,
        num_actions: int,
        *,
        conv_channels: int = 6,
        conv_kernel: int = 3,
        fc_sizes: tuple[int, ...] | list[int] = (32, 32),
        lstm_size: int = 128,
        visible_actions: bool = False,
        comm: bool = False,
        vocab: int = 9,
        comm_embedding: int = 32,
        moa: bool = False,
    ):
        super().__init__()
        n, a, h = num_agents, num_actions, lstm_size
        self.num_agents, self.num_actions, self.hidden = n, a, h
        self.visible_actions, self.comm, self.moa, self.vocab = visible_actions, comm, moa, vocab
        side = OBS_SHAPE[0] - conv_kernel + 1
        self.conv = StackedConv(n, OBS_SHAPE[2], conv_channels, conv_kernel)
        conv_out = conv_channels * side * side
        self.fc = self._mlp(n, conv_out, fc_sizes)
        feat = fc_sizes[-1] if fc_sizes else conv_out
        self.lstm = StackedLSTMCell(n, feat, h)
        self.policy = StackedLinear(n, h, a)
        self.value = StackedLinear(n, h, 1)
        others, everyone = ~torch.eye(n, dtype=torch.bool), torch.ones(n, n, dtype=torch.bool)
        if visible_actions:  # the others' actions; an agent's own slot is not an input
            self.action_in = StackedEmbedding(n, n, a, 4 * h, fan_in=h, mask=others)
        if comm:  # every agent's previous symbol, its own included (§5)
            self.message_in = StackedEmbedding(n, n, vocab, 4 * h, fan_in=h, mask=everyone)
            self.comm_embed = StackedLinear(n, h, comm_embedding)
            self.comm_policy = StackedLinear(n, comm_embedding, vocab)
            self.comm_value = StackedLinear(n, comm_embedding, 1)
        if moa:
            self.moa_fc = self._mlp(n, conv_out, fc_sizes)
            self.moa_lstm = StackedLSTMCell(n, feat, h)
            self.moa_action_in = StackedEmbedding(n, n, a, 4 * h, fan_in=h, mask=everyone)
            self.moa_head = StackedLinear(n, h, n * a)

    @staticmethod
    def _mlp(n: int, inp: int, sizes: tuple[int, ...] | list[int]) -> nn.ModuleList:
        layers, prev = [], inp
        for size in sizes:
            layers.append(StackedLinear(n, prev, size))
            prev = size
        return nn.ModuleList(layers)

    @staticmethod
    def _run_mlp(layers: nn.ModuleList, x: Tensor) -> Tensor:
        for layer in layers:
            x = F.relu(layer(x))
        return x

    # ----------------------------------------------------------------- state
    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        """Zero LSTM state ``(batch, N, H)`` for the policy core (and the MOA core)."""
        zeros = lambda: torch.zeros(batch, self.num_agents, self.hidden, device=device)  # noqa: E731
        state = {"h": zeros(), "c": zeros()}
        if self.moa:
            state.update(moa_h=zeros(), moa_c=zeros())
        return state

    @staticmethod
    def reset_state(state: State, first: Tensor) -> State:
        """Zero the state of environments whose observation opens an episode (``first (B,)``)."""
        keep = (~first).to(next(iter(state.values())).dtype)[:, None, None]
        return {k: v * keep for k, v in state.items()}

    # ----------------------------------------------------------------- trunk
    def encode(self, obs: Tensor) -> tuple[Tensor, Tensor | None]:
        """``obs (…, N, 15, 15, 3)`` uint8 → (policy FC features ``(…, N, F)``, MOA FC features
        ``(…, N, F)`` or ``None`` without a MOA).

        Both branches start from the same conv features; their first FC layers run as one matmul
        with the two weights side by side, so the conv features (the largest activation, and a
        memory-bound read) are read once, forward and backward.
        """
        lead = obs.shape[:-4]
        conv = F.relu(self.conv(obs.reshape(-1, *obs.shape[-4:]), 1.0 / 255.0)).flatten(2)
        conv = conv.view(*lead, *conv.shape[1:])
        if not self.moa:
            return self._run_mlp(self.fc, conv), None
        if not self.fc:
            return conv, conv
        first, moa_first = self.fc[0], self.moa_fc[0]
        both = F.relu(stacked_linear(
            conv, torch.cat([first.weight, moa_first.weight], -1), torch.cat([first.bias, moa_first.bias], -1)
        ))
        feat, moa_feat = both.split([first.weight.shape[-1], moa_first.weight.shape[-1]], -1)
        return self._run_mlp(self.fc[1:], feat), self._run_mlp(self.moa_fc[1:], moa_feat)

    # ----------------------------------------------------------------- policy core
    def input_gates(self, feat: Tensor, msg_in: Tensor | None) -> Tensor:
        """Non-recurrent LSTM gate terms (features, and messages for comm models); any leading dims,
        so a whole rollout is done in one call.  ``msg_in (…, N)``: every agent's previous symbol."""
        gates = self.lstm.input(feat)
        if self.comm:
            msgs = msg_in.unsqueeze(-2).expand(*msg_in.shape[:-1], self.num_agents, self.num_agents)
            gates = gates + self.message_in(msgs)
        return gates

    def base_gates(self, feat: Tensor, h: Tensor, msg_in: Tensor | None) -> Tensor:
        """LSTM gate pre-activations of one step without the visible-actions term."""
        return self.input_gates(feat, msg_in) + self.lstm.recurrent(h)

    def action_term(self, act_in: Tensor | None) -> Tensor | float:
        """Visible-actions gate term; ``act_in (…, N, N)``: action shown in slot ``m`` to agent ``n``
        (own slot ignored).  ``0.0`` when the model has no visible actions."""
        if not self.visible_actions:
            return 0.0
        return self.action_in(act_in)

    def heads(self, h: Tensor) -> PolicyOut:
        out = PolicyOut(self.policy(h), self.value(h).squeeze(-1))
        if self.comm:
            e = F.relu(self.comm_embed(h))
            out.comm_logits, out.comm_value = self.comm_policy(e), self.comm_value(e).squeeze(-1)
        return out

    def policy_step(self, gates: Tensor, state: State) -> tuple[PolicyOut, State]:
        h, c = self.lstm.cell(gates, state["c"])
        return self.heads(h), {**state, "h": h, "c": c}

    def counterfactual_policy(
        self, gates: Tensor, c: Tensor, embedding: str, slots: Tensor, actual: Tensor, targets: Tensor
    ) -> Tensor:
        """Action distributions of some agents under every counterfactual value of some input slots.

        ``gates (B, N, 4H)`` and ``c (B, N, H)`` are the actual step's; ``embedding`` is
        ``"action_in"`` or ``"message_in"``; ``slots (K,)`` the agents whose shown action/symbol
        is replaced, ``actual (B, K)`` their actual values; ``targets`` the agents whose policy is
        evaluated: ``(J,)`` the same for every slot, or ``(K, J)`` a set per slot (e.g. everyone
        but the slot's own agent).  Returns ``p (B, K, V, J, A)``: agent ``targets[(k,) j]``'s
        policy when slot ``slots[k]`` shows ``v`` (Eq 1–3 counterfactuals).
        """
        k = slots.shape[0]
        t = targets.expand(k, -1) if targets.dim() == 1 else targets  # (K, J)
        w = getattr(self, embedding).masked_weight()[t, slots[:, None]].transpose(1, 2)  # (K, V, J, 4H)
        w_act = w[torch.arange(k, device=w.device), actual]  # (B, K, J, 4H): the rows actually shown
        g = (gates[:, t] - w_act)[:, :, None] + w  # (B, K, V, J, 4H)
        h, _ = self.lstm.cell(g, c[:, t][:, :, None])
        if targets.dim() == 1:
            return softmax(self.policy(h, targets))
        # a policy head per (slot, target) pair: flatten the pairs into the stacked agent dim
        b, _, v, j, hid = h.shape
        logits = self.policy(h.transpose(1, 2).reshape(b, v, k * j, hid), t.flatten())
        return softmax(logits.view(b, v, k, j, -1).transpose(1, 2))

    def unroll(self, obs: Tensor, act_in: Tensor | None, actions: Tensor, first: Tensor, init_state: State,
               prev_symbols: Tensor | None = None) -> dict[str, Tensor]:
        """Recompute a rollout with gradients from its initial state (truncated BPTT).

        ``obs (T, B, N, 15, 15, 3)``, ``act_in (T, B, N, N)`` the actions shown to each agent,
        ``actions (T, B, N)`` the actions taken (the MOA's input), ``first (T, B)`` episode starts,
        ``prev_symbols (T, B, N)`` for comm models. Everything but the recurrence runs on the whole
        rollout at once; the loop over ``t`` only adds the recurrent term and applies the LSTM
        cell. Returns ``logits``, ``values`` (and ``comm_logits``, ``comm_values``, ``moa_logits``).
        """
        feat, moa_feat = self.encode(obs)
        x = (self.input_gates(feat, prev_symbols) + self.action_term(act_in)).unbind(0)
        mx = self.moa_input_gates(moa_feat, actions).unbind(0) if self.moa else None
        state = init_state
        hs, moa_hs = [], []
        for t in range(len(x)):
            state = self.reset_state(state, first[t])
            h, c = self.lstm.cell(x[t] + self.lstm.recurrent(state["h"]), state["c"])
            state = {**state, "h": h, "c": c}
            hs.append(h)
            if self.moa:
                mh, mc = self.moa_lstm.cell(mx[t] + self.moa_lstm.recurrent(state["moa_h"]), state["moa_c"])
                state = {**state, "moa_h": mh, "moa_c": mc}
                moa_hs.append(mh)
        pol = self.heads(torch.stack(hs))
        out = {"logits": pol.logits, "values": pol.value}
        if self.comm:
            out.update(comm_logits=pol.comm_logits, comm_values=pol.comm_value)
        if self.moa:
            out["moa_logits"] = self.moa_logits(torch.stack(moa_hs))
        return out

    # ----------------------------------------------------------------- model of other agents
    def moa_input_gates(self, moa_feat: Tensor, joint_actions: Tensor) -> Tensor:
        """Non-recurrent MOA gate terms from the MOA FC features (:meth:`encode`) and the joint
        action ``a_t (…, N)``."""
        acts = joint_actions.unsqueeze(-2).expand(*joint_actions.shape[:-1], self.num_agents, self.num_agents)
        return self.moa_lstm.input(moa_feat) + self.moa_action_in(acts)

    def moa_gates(self, moa_feat: Tensor, moa_h: Tensor, joint_actions: Tensor) -> Tensor:
        """MOA gates of one step (adds the recurrent term to :meth:`moa_input_gates`)."""
        return self.moa_input_gates(moa_feat, joint_actions) + self.moa_lstm.recurrent(moa_h)

    def moa_logits(self, h: Tensor) -> Tensor:
        """``(…, N, H)`` → predicted next-action logits ``(…, N, N, A)`` of every agent."""
        return self.moa_head(h).unflatten(-1, (self.num_agents, self.num_actions))

    def moa_step(self, gates: Tensor, state: State) -> State:
        """Advance the MOA core one step; predictions are ``moa_logits(state["moa_h"])`` (acting
        needs only the state, so the head is not run)."""
        h, c = self.moa_lstm.cell(gates, state["moa_c"])
        return {**state, "moa_h": h, "moa_c": c}

    def moa_counterfactual(self, gates: Tensor, c: Tensor, actions: Tensor, slots: Tensor | None = None) -> Tensor:
        """Each agent's MOA prediction under each of its own counterfactual actions ã (§6).

        ``gates (B, N, 4H)``, ``c (B, N, H)`` of the MOA core, ``actions (B, N)`` the joint action.
        Returns ``p (B, N, A, N, A)``: agent ``k``'s predicted distribution of agent ``j``'s next
        action had ``k`` taken ``ã`` (same MOA state, other agents' actions unchanged). With
        ``slots (N,)``, agent ``k`` varies the action of agent ``slots[k]`` instead of its own
        (si.eval.moa_probe: how much the MOA uses another agent's action).
        """
        n = self.num_agents
        ar = torch.arange(n, device=gates.device)
        if slots is None:  # the influence: every agent varies its own slot
            slots, shown = ar, actions
        else:
            shown = actions[:, slots]
        w = self.moa_action_in.weight[ar, slots]  # (N, A, 4H): agent k's weights for slot slots[k]
        # actual gates minus the actual action's row, plus every row: one broadcast over (B, N, A, 4H)
        g = (gates - w[ar, shown])[:, :, None] + w  # (B, N, A, 4H)
        h, _ = self.moa_lstm.cell(g, c[:, :, None])
        # the MOA head is per agent k: move the counterfactual dim before N for the stacked linear
        return softmax(self.moa_logits(h.transpose(1, 2))).transpose(1, 2)  # (B, N, A, N, A)
