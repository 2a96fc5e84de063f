"""CUDA-graph readiness, proven on CPU: the acting step (policy forward, sampling, influence
counterfactuals, env transition, reward shaping) traces as one graph with ``fullgraph=True`` (no
host sync, no data-dependent shapes, no branch on tensor values) for every game and reward, and
the traced step gives the eager rollouts bit for bit."""

import pytest
import torch
from test_trainer import make

from si.train.sampling import CategoricalSampler

CASES = [("harvest", "extrinsic"), ("harvest", "visible"), ("harvest", "influence"), ("harvest", "comm_influence"),
         ("harvest", "moa_influence"), ("harvest", "inequity_aversion"), ("cleanup", "collective"),
         ("box_trapped", "moa_influence")]


@pytest.mark.parametrize("env, reward", CASES)
def test_acting_step_is_one_graph_and_equals_eager(env: str, reward: str) -> None:
    eager, traced = make(f"env={env}", f"reward={reward}"), make(f"env={env}", f"reward={reward}")
    graphs = []

    def count_graphs(gm: torch.fx.GraphModule, example_inputs: list) -> object:
        graphs.append(gm)
        return gm.forward

    traced.step_fn = torch.compile(traced.act_and_step, fullgraph=True, dynamic=False, backend=count_graphs)
    for _ in range(3):  # 75 steps: crosses the 50-step horizon (reset outside the graph)
        a, b = eager.collect(), traced.collect()
        eager.update(a)
        traced.update(b)
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], torch.Tensor):
                assert torch.equal(a[key], b[key]), key
    assert len(graphs) == 1, "one graph for every step, β and episode phase (no recompilation)"


def test_sampler_draws_each_index_with_its_probability_and_resumes_exactly() -> None:
    probs = torch.tensor([0.1, 0.0, 0.2, 0.3, 0.4]).expand(4000, 5, 5)
    sampler = CategoricalSampler(seed=3, num_envs=4000, device=torch.device("cpu"))
    draws = []
    for _ in range(5):
        sampler.advance()
        draws.append(sampler.sample(probs, "actions"))
    freq = torch.bincount(torch.cat(draws).flatten(), minlength=5).float() / (5 * 4000 * 5)
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.0, 0.2, 0.3, 0.4]), atol=0.007, rtol=0)  # 4.5 σ
    assert not torch.equal(sampler.sample(probs, "actions"), sampler.sample(probs, "symbols")), "streams differ"
    copy = CategoricalSampler(seed=0, num_envs=4000, device=torch.device("cpu"))
    copy.load_state_dict(sampler.state_dict())
    sampler.advance()
    copy.advance()
    assert torch.equal(sampler.sample(probs, "actions"), copy.sample(probs, "actions"))
