"""Per-agent actor-critic: agent independence and counterfactuals against brute force."""

import torch

from si.models import ActorCritic
from si.rewards.intrinsic import symbol_influence

N, A, B = 3, 5, 4


def _model(**kw) -> ActorCritic:
    torch.manual_seed(0)
    return ActorCritic(N, A, lstm_size=16, **kw)


def _obs(b: int = B) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (b, N, 15, 15, 3), generator=g, dtype=torch.uint8)


def test_gradient_on_one_agent_changes_nobody_else():
    m = _model(visible_actions=True, comm=True, moa=True, vocab=4)
    state = {k: torch.randn_like(v) for k, v in m.initial_state(B).items()}
    feat, moa_feat = m.encode(_obs())
    acts = torch.randint(0, A, (B, N, N))
    gates = m.base_gates(feat, state["h"], torch.zeros(B, N, dtype=torch.long)) + m.action_term(acts)
    pol, state = m.policy_step(gates, state)
    moa_logits = m.moa_logits(m.moa_step(m.moa_gates(moa_feat, state["moa_h"], acts[:, 0]), state)["moa_h"])
    loss = sum(t[:, 0].sum() for t in (pol.logits, pol.value, pol.comm_logits, pol.comm_value, moa_logits))
    loss.backward()
    for name, p in m.named_parameters():
        g = p.grad.reshape(N, -1)
        assert g[1:].abs().sum() == 0, f"{name}: agents 1.. got gradient from agent 0's loss"
        assert g[0].abs().sum() > 0, f"{name}: agent 0 got no gradient"


def test_outputs_of_an_agent_depend_only_on_its_own_parameters():
    m = _model()
    obs = _obs()
    state = m.initial_state(B)
    feat, _ = m.encode(obs)
    before, _ = m.policy_step(m.base_gates(feat, state["h"], None), state)
    with torch.no_grad():
        for p in m.parameters():
            p.view(N, -1)[2] += 0.5
    feat, _ = m.encode(obs)
    after, _ = m.policy_step(m.base_gates(feat, state["h"], None), state)
    assert torch.equal(before.logits[:, :2], after.logits[:, :2])
    assert not torch.allclose(before.logits[:, 2], after.logits[:, 2])


def _policy_probs(m: ActorCritic, feat, state, act_in, msgs=None):
    gates = m.base_gates(feat, state["h"], msgs) + m.action_term(act_in)
    pol, _ = m.policy_step(gates, state)
    return torch.softmax(pol.logits, -1), gates


def test_action_counterfactuals_match_recomputing_with_each_action():
    m = _model(visible_actions=True)
    state = {k: torch.randn_like(v) for k, v in m.initial_state(B).items()}
    feat, _ = m.encode(_obs())
    act_in = torch.randint(0, A, (B, N, N))
    _, gates = _policy_probs(m, feat, state, act_in)
    slots = torch.tensor([0, 1])
    actual = act_in[:, 2, :2]  # what agent 2 sees in slots 0, 1; rows 0, 1 see the same values below
    act_in[:, :, 0], act_in[:, :, 1] = actual[:, :1], actual[:, 1:]
    _, gates = _policy_probs(m, feat, state, act_in)
    p_cf = m.counterfactual_policy(gates, state["c"], "action_in", slots, actual, torch.arange(N))
    assert p_cf.shape == (B, 2, A, N, A)
    only_2 = m.counterfactual_policy(gates, state["c"], "action_in", slots, actual, torch.tensor([2]))
    torch.testing.assert_close(only_2, p_cf[:, :, :, 2:])
    for k in range(2):
        for a in range(A):
            brute = act_in.clone()
            brute[:, :, k] = a
            expected, _ = _policy_probs(m, feat, state, brute)
            torch.testing.assert_close(p_cf[:, k, a], expected)


def test_symbol_counterfactuals_match_recomputing_with_each_symbol():
    v = 3
    m = _model(comm=True, vocab=v)
    state = {k: torch.randn_like(x) for k, x in m.initial_state(B).items()}
    feat, _ = m.encode(_obs())
    msgs = torch.randint(0, v, (B, N))
    _, gates = _policy_probs(m, feat, state, None, msgs)
    p_cf = m.counterfactual_policy(gates, state["c"], "message_in", torch.arange(N), msgs, torch.arange(N))
    for k in range(N):
        for s in range(v):
            brute = msgs.clone()
            brute[:, k] = s
            expected, _ = _policy_probs(m, feat, state, None, brute)
            torch.testing.assert_close(p_cf[:, k, s], expected)



def test_symbol_influence_counts_every_listener_but_the_speaker():
    """Per-speaker listener sets (``targets (K, J)``) give the same counterfactuals as evaluating
    everyone, and Eq 2's influence matches KL/PMI computed from brute-force recomputed policies."""
    v = 3
    m = _model(comm=True, vocab=v)
    state = {k: torch.randn_like(x) for k, x in m.initial_state(B).items()}
    feat, _ = m.encode(_obs())
    msgs = torch.randint(0, v, (B, N))
    _, gates = _policy_probs(m, feat, state, None, msgs)
    everyone = torch.arange(N)
    full = m.counterfactual_policy(gates, state["c"], "message_in", everyone, msgs, everyone)
    others = torch.tensor([[j for j in range(N) if j != k] for k in range(N)])
    per_slot = m.counterfactual_policy(gates, state["c"], "message_in", everyone, msgs, others)
    assert per_slot.shape == (B, N, v, N - 1, A)
    for k in range(N):
        torch.testing.assert_close(per_slot[:, k], full[:, k][:, :, others[k]])
    prior = torch.softmax(torch.randn(B, N, v, generator=torch.Generator().manual_seed(2)), -1)
    actions = torch.randint(0, A, (B, N))
    kl = symbol_influence(m, gates, state["c"], msgs, prior, actions, "kl")
    pmi = symbol_influence(m, gates, state["c"], msgs, prior, actions, "pmi")
    for k in range(N):
        for j in range(N):
            if j == k:
                assert (kl[:, k, j] == 0).all() and (pmi[:, k, j] == 0).all()
                continue
            cond = torch.stack([full[b, k, msgs[b, k], j] for b in range(B)])  # p(a_j | m_k actual)
            marg = (full[:, k, :, j] * prior[:, k, :, None]).sum(1)  # Σ_m p(a_j | m) p(m)
            torch.testing.assert_close(kl[:, k, j], (cond * (cond / marg).log()).sum(-1))
            taken = actions[:, j, None]
            torch.testing.assert_close(pmi[:, k, j], (cond.gather(1, taken) / marg.gather(1, taken)).log().squeeze(1))

def test_moa_counterfactuals_match_recomputing_with_each_own_action():
    m = _model(moa=True, visible_actions=True)
    state = {k: torch.randn_like(x) for k, x in m.initial_state(B).items()}
    _, moa_feat = m.encode(_obs())
    joint = torch.randint(0, A, (B, N))
    gates = m.moa_gates(moa_feat, state["moa_h"], joint)
    p_cf = m.moa_counterfactual(gates, state["moa_c"], joint)
    assert p_cf.shape == (B, N, A, N, A)
    for k in range(N):
        for a in range(A):
            brute = joint.clone()
            brute[:, k] = a
            logits = m.moa_logits(m.moa_step(m.moa_gates(moa_feat, state["moa_h"], brute), state)["moa_h"])
            torch.testing.assert_close(p_cf[:, k, a], torch.softmax(logits[:, k], -1))


def test_reset_state_zeroes_only_first_envs():
    m = _model(moa=True)
    state = {k: torch.ones_like(v) for k, v in m.initial_state(B).items()}
    first = torch.tensor([True, False, True, False])
    out = m.reset_state(state, first)
    for v in out.values():
        assert v[first].abs().sum() == 0 and torch.all(v[~first] == 1)


def test_fused_first_fc_layers_equal_the_separate_policy_and_moa_branches():
    m = _model(moa=True)
    obs = _obs()
    feat, moa_feat = m.encode(obs)
    plain = _model(moa=False)
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("moa")})
    ref_feat, none = plain.encode(obs)
    conv = torch.relu(m.conv(obs, 1.0 / 255.0)).flatten(2)
    torch.testing.assert_close(feat, ref_feat)
    torch.testing.assert_close(moa_feat, m._run_mlp(m.moa_fc, conv))
    assert none is None


def test_cpu_activation_composites_equal_torch_and_keep_gradients():
    from si.models.stacked import log_softmax, softmax, tanh

    x = (torch.randn(64, 5, 8, dtype=torch.float32) * 10).requires_grad_()
    torch.testing.assert_close(softmax(x), torch.softmax(x, -1))
    torch.testing.assert_close(log_softmax(x), torch.log_softmax(x, -1))
    torch.testing.assert_close(tanh(x), torch.tanh(x), atol=2e-7, rtol=0)
    big = torch.tensor([[1000.0, 0.0, -1000.0]])  # no overflow: the max is subtracted
    assert torch.isfinite(softmax(big)).all() and torch.isfinite(log_softmax(big)).all()
    (g,) = torch.autograd.grad(log_softmax(x)[..., 0].sum(), x)
    (ref,) = torch.autograd.grad(torch.log_softmax(x, -1)[..., 0].sum(), x)
    torch.testing.assert_close(g, ref)
