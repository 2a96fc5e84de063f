"""What a trained model of other agents (MOA, §6) responds to: the evidence behind a small MOA
influence.

The MOA influence of agent k on agent j (Eq 3) is the KL between k's MOA prediction of j's next
action given k's actual action and its marginal over k's counterfactual actions. It is small when
k's MOA barely uses k's own action, which can be what the model learnt or a defect (the
counterfactual, the marginal, the visibility gate). ``probe(job_dir)`` steps the job's trained
policy as in training and, at every step and for every ordered pair (k, j), measures with k's MOA:

* ``influence``: the influence of k's own action on its prediction of j (Eq 3; the ungated value
  of what training rewards), on pairs in view and out of view of each other;
* ``sensitivity_to_j``: the same counterfactual KL, with j's own current action varied instead of
  k's (under j's policy) — how much the MOA uses an action input at all;
* the MOA's accuracy on j's next action, against the persistence guess a^j_{t+1} = a^j_t, the
  agreement of two independent draws from j's action marginal (Σ_a p(a)², what persistence
  scores when successive actions are independent) and the mutual information I(a^j_t; a^j_{t+1})
  (how much j's current action tells about its next one at all, given nothing else);
* the state of its LSTM core: the mean |c| of the cell state and the mean pre-activation of the
  output gate (a saturated core, |c| ≫ 1, passes little of a one-step input change on to h).

It writes ``<job>/eval/moa_probe.json`` (CLI: ``python -m si.eval moa-probe JOB``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from si import metrics as M
from si.eval import EVAL_SEED, eval_trainer, load_job
from si.models import ActorCritic
from si.models.stacked import softmax
from si.rewards.intrinsic import moa_influence, pairwise_influence


@torch.no_grad()
def probe_rollout(model: ActorCritic, roll: dict[str, Tensor], measure: str = "kl") -> dict[str, Tensor]:
    """Per-step measurements of one rollout ``(T, B, …)`` with the divergence ``measure``
    (``reward.divergence``): ``influence`` and ``sensitivity`` ``(T, B, N_k, N_j)``, ``correct``
    ``(T-1, B, N_k, N_j)`` (k's MOA right about a^j_{t+1}), and per step the MOA core's mean
    ``cell_abs`` |c| and ``output_gate`` pre-activation ``(T,)``."""
    n = model.num_agents
    ar = torch.arange(n, device=roll["actions"].device)
    _, moa_feat = model.encode(roll["obs"])
    x = model.moa_input_gates(moa_feat, roll["actions"])
    probs = softmax(roll["logits"])
    state = {k: v for k, v in roll["init_state"].items() if k.startswith("moa_")}
    influence, sensitivity, predictions, cell_abs, output_gate = [], [], [], [], []
    for t in range(x.shape[0]):
        state = model.reset_state(state, roll["first"][t])
        gates = x[t] + model.moa_lstm.recurrent(state["moa_h"])
        acts = roll["actions"][t]
        own = moa_influence(model, gates, state["moa_c"], acts, probs[t], None, measure)  # Eq 3, ungated
        influence.append(own)
        sens = torch.zeros_like(own)
        for shift in range(1, n):
            slots = (ar + shift) % n  # agent k varies the action of agent slots[k]
            p_cf = model.moa_counterfactual(gates, state["moa_c"], acts, slots)
            m = pairwise_influence(p_cf, probs[t][:, slots], acts[:, slots], measure, None)
            sens[:, ar, slots] = m[:, ar, slots]
        sensitivity.append(sens)
        h, c = model.moa_lstm.cell(gates, state["moa_c"])
        state = {"moa_h": h, "moa_c": c}
        cell_abs.append(c.abs().mean())
        output_gate.append(gates.chunk(4, -1)[3].mean())
        predictions.append(model.moa_logits(h).argmax(-1))  # (B, N_k, N_j): predicted a^j_{t+1}
    pred = torch.stack(predictions)
    correct = pred[:-1] == roll["actions"][1:, :, None, :]
    return {"influence": torch.stack(influence), "sensitivity": torch.stack(sensitivity), "correct": correct,
            "cell_abs": torch.stack(cell_abs), "output_gate": torch.stack(output_gate)}


def _successive_actions(pairs: Tensor, num_actions: int) -> dict[str, float]:
    """``pairs (M, 2, N)`` of each agent's successive actions → the mean over agents of
    I(a_t; a_{t+1}) (nats; the plug-in estimate, biased up by about (A − 1)² / 2M), of the
    persistence guess's accuracy P(a_{t+1} = a_t) and of the chance agreement Σ_a p(a)² of
    a_{t+1}'s marginal (what persistence scores when successive actions are independent)."""
    mi = [M.mutual_information(pairs[:, 0, j], pairs[:, 1, j], num_actions, num_actions) for j in range(pairs.shape[-1])]
    p = torch.nn.functional.one_hot(pairs[:, 1], num_actions).double().mean(0)  # (N, A)
    return {"next_action_mi": sum(mi) / len(mi), "chance_agreement": float(p.pow(2).sum(-1).mean()),
            "persistence_accuracy": float((pairs[:, 0] == pairs[:, 1]).double().mean())}


def _mean(x: Tensor, mask: Tensor) -> float:
    return float((x * mask).sum() / mask.sum().clamp(min=1))


def probe(job_dir: Path | str, episodes: int = 16, steps: int = 1000, device: str = "cpu",
          seed: int = EVAL_SEED) -> dict[str, float]:
    """Probe a trained MOA job for ``steps`` env steps of ``episodes`` envs; write and return
    ``eval/moa_probe.json`` (means over steps, envs and ordered pairs k ≠ j)."""
    job = load_job(job_dir)
    if not job.cfg.model.moa:
        raise ValueError(f"{job.path} has no model of other agents (model.moa=false)")
    trainer = eval_trainer(job.cfg, job.model_state, episodes, device, seed)
    n = trainer.n
    pair = ~torch.eye(n, dtype=torch.bool, device=trainer.device)
    sums: dict[str, list[float]] = {}
    pairs: list[Tensor] = []  # (a^j_t, a^j_{t+1}) within episodes, (M, 2, N)
    done = 0
    while done < steps:
        roll = trainer.collect()
        r = probe_rollout(trainer.model, roll, trainer.rcfg.divergence)
        vis = roll["visible"] & pair  # (T, B, N_k, N_j): j in k's view
        hidden = ~roll["visible"] & pair
        same_ep = (~roll["dones"][:-1])[:, :, None, None] & pair
        values = {
            "influence_per_pair": _mean(r["influence"], pair.expand_as(vis)),
            "influence_in_view": _mean(r["influence"], vis), "influence_out_of_view": _mean(r["influence"], hidden),
            "logged_influence_per_agent_step": float((r["influence"] * vis).sum(-1).mean()),
            "sensitivity_to_j_per_pair": _mean(r["sensitivity"], pair.expand_as(vis)),
            "sensitivity_to_j_in_view": _mean(r["sensitivity"], vis),
            "in_view_frac": float(vis.sum() / pair.expand_as(vis).sum()),
            "moa_accuracy": _mean(r["correct"].float(), same_ep),
            "moa_accuracy_in_view": _mean(r["correct"].float(), same_ep & vis[:-1]),
            "cell_abs_mean": float(r["cell_abs"].mean()), "output_gate_mean": float(r["output_gate"].mean()),
        }
        for key, value in values.items():
            sums.setdefault(key, []).append(value)
        pairs.append(torch.stack([roll["actions"][:-1], roll["actions"][1:]], 2)[~roll["dones"][:-1]])
        done += len(roll["actions"])
    result = {key: sum(v) / len(v) for key, v in sums.items()}
    result.update(_successive_actions(torch.cat(pairs).cpu(), trainer.model.num_actions))
    result.update(env_steps=done * episodes, episodes=episodes, seed=seed)
    out = job.path / "eval" / "moa_probe.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result
