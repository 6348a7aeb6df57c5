"""Ground-truth LCMs as Pyro programs: interventions with ``do``, counterfactuals by
conditioning on the noise, and validity under Pyro's trace checks."""

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer.util import torch_item

from pyrocrl.graphs import descendants
from pyrocrl.models.truth import scaling_toy, toy2d

N = 20_000
# tolerance of the statistical checks: 5 standard errors of a correlation / mean
TOL = 5 / np.sqrt(N)


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch_item(torch.corrcoef(torch.stack([a, b]))[0, 1])


@pytest.fixture
def lcm():
    lcm = scaling_toy(4, 302)  # graph z1→z2, z1→z3, z1→z4, z2→z3, z3→z4
    assert lcm.scm.parents[2].tolist() == [0, 1]
    return lcm


def test_do_on_target_cuts_parents(lcm):
    k = 3
    observed = lcm.model(size=N)
    with poutine.do(data={"target": torch.tensor(k)}):
        out = lcm.model(size=N)
    assert (out["target"] == k).all()
    z_tilde_k = out["z_tilde"][:, k - 1]
    for parent in lcm.scm.parents[k - 1].tolist():
        # observationally the parents drive z3; under do(z3) they do not
        assert abs(_corr(observed["z"][:, k - 1], observed["z"][:, parent])) > 3 * TOL
        assert abs(_corr(z_tilde_k, out["z"][:, parent])) < TOL
        assert abs(_corr(z_tilde_k, out["z_tilde"][:, parent])) < TOL
    # z~_k ~ N(0, 1): mean and standard deviation within 5 standard errors
    assert abs(torch_item(z_tilde_k.mean())) < TOL
    assert abs(torch_item(z_tilde_k.std()) - 1) < 5 / np.sqrt(2 * N)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_do_on_target_changes_exactly_the_descendants(lcm, k):
    with poutine.do(data={"target": torch.tensor(k)}):
        out = lcm.model(size=500)
    downstream = set(descendants(lcm.scm.adjacency, k - 1).tolist())
    for j in range(lcm.n):
        if j == k - 1 or j in downstream:
            assert (out["z_tilde"][:, j] != out["z"][:, j]).all()
        else:
            assert torch.equal(out["z_tilde"][:, j], out["z"][:, j])
    assert torch.equal(out["noise_tilde"][:, k - 1] != out["noise"][:, k - 1], torch.ones(500) > 0)


def test_value_intervention_broadcasts_over_the_plate(lcm):
    with poutine.do(data={"target": torch.tensor(2), "value": torch.tensor(0.5)}):
        out = lcm.model(size=7)
    assert out["z_tilde"].shape == (7, 4)
    assert torch.equal(out["z_tilde"][:, 1], torch.full((7,), 0.5))


def test_world_do_on_mechanism_site(lcm):
    observed = lcm.world(size=N)
    values = torch.randn(N)
    with poutine.do(data={"z3": values}):
        out = lcm.world(size=N)
    assert torch.equal(out["z"][:, 2], values)
    for parent in (0, 1):
        assert abs(_corr(observed["z"][:, 2], observed["z"][:, parent])) > 3 * TOL
        assert abs(_corr(out["z"][:, 2], out["z"][:, parent])) < TOL
    # the child z4 still listens to its mechanism
    assert abs(_corr(out["z"][:, 3], values)) > 0.3


def test_counterfactual_by_conditioning_on_noise(lcm):
    """The pair program's z~ is the counterfactual of the world program under do."""
    pair = lcm.model(size=300)
    for k in range(1, lcm.n + 1):
        rows = pair["target"] == k
        noise, value = pair["noise"][rows], pair["value"][rows]
        size = int(rows.sum())
        # condition then do, and do then condition: Pyro's semantics say they agree
        cf1 = poutine.do(pyro.condition(lcm.world, {"noise": noise}), {f"z{k}": value})
        cf2 = pyro.condition(poutine.do(lcm.world, {f"z{k}": value}), {"noise": noise})
        for program in (cf1, cf2):
            out = program(size=size)
            assert torch.allclose(out["z"], pair["z_tilde"][rows], atol=1e-6)
            assert torch.allclose(out["x"], pair["x_tilde"][rows], atol=1e-5)


def test_replaying_noise_reproduces_the_factual_world(lcm):
    trace = poutine.trace(lcm.model).get_trace(size=50)
    replayed = poutine.replay(lcm.model, trace=trace)(size=50)
    assert torch.equal(replayed["x_tilde"], trace.nodes["x_tilde"]["value"])
    world = pyro.condition(lcm.world, {"noise": trace.nodes["noise"]["value"]})(size=50)
    assert torch.allclose(world["x"], trace.nodes["x"]["value"])


def test_exact_abduction(lcm):
    out = lcm.model(size=100)
    assert torch.allclose(lcm.encode(out["x"]), out["noise"], atol=1e-4)
    assert torch.allclose(lcm.encode(out["x_tilde"]), out["noise_tilde"], atol=1e-4)


@pytest.mark.parametrize("make", [lambda: scaling_toy(3, 0), toy2d])
def test_trace_is_valid_and_has_the_site_vocabulary(make):
    lcm = make()
    trace = poutine.trace(lcm.model).get_trace(size=10)
    trace.compute_log_prob()  # raises under validation if any value is outside its support
    samples = {
        name: s for name, s in trace.nodes.items() if s["type"] == "sample" and name != "pair"
    }
    shapes = {name: s["value"].shape for name, s in samples.items()}
    n, d = lcm.n, lcm.dim_x
    assert shapes["noise"] == shapes["noise_tilde"] == shapes["z"] == shapes["z_tilde"] == (10, n)
    assert shapes["target"] == shapes["value"] == (10,)
    assert shapes["x"] == shapes["x_tilde"] == (10, d)
    assert all([f.name for f in s["cond_indep_stack"]] == ["pair"] for s in samples.values())


def test_observed_model_needs_consistent_sizes(lcm):
    x = torch.zeros(5, 4)
    with pytest.raises(ValueError, match="disagree"):
        lcm.model(x, torch.zeros(6, 4))
    with pytest.raises(ValueError, match="size"):
        lcm.model()


def test_noisy_observations():
    lcm = scaling_toy(3, 1)
    lcm.observation_scale = 0.1
    out = lcm.model(size=2000)
    residual = out["x"] - lcm.mixing(out["z"])
    assert abs(torch_item(residual.std()) - 0.1) < 0.01


def test_sensors_watch_the_same_system():
    plain = scaling_toy(4, 11)
    lcm = scaling_toy(4, 11, sensors=7, sensor_noise=0.02)
    assert np.array_equal(lcm.scm.weights, plain.scm.weights)
    assert lcm.dim_x == 7 and lcm.settings["simulator"] == "scaling-sensors"
    out = lcm.model(size=3000)
    residual = out["x"] - lcm.mixing(out["z"])
    assert abs(torch_item(residual.std()) - 0.02) < 0.002
    exact = scaling_toy(4, 11, sensors=7)
    pairs = exact.model(size=50)
    assert torch.allclose(exact.encode(pairs["x"]), pairs["noise"], atol=1e-3)


def test_sensors_are_refused_when_they_cannot_see_every_variable():
    with pytest.raises(ValueError, match="at least 4 sensors"):
        scaling_toy(4, 0, sensors=3)
    with pytest.raises(ValueError, match="give sensors"):
        scaling_toy(4, 0, sensor_noise=0.1)


def test_toy2d_mechanism_is_nonlinear():
    lcm = toy2d()
    out = lcm.world(size=5000)
    z1, z2 = out["z"].T
    assert torch.allclose(z2 - 1.5 * torch.tanh(2 * z1), 0.5 * out["noise"][:, 1], atol=1e-5)
    assert lcm.scm.adjacency.tolist() == [[0, 1], [0, 0]]


def test_a_shift_intervention_moves_only_the_target_noise_and_keeps_the_parents():
    lcm = scaling_toy(4, 302, intervention="shift")
    out = lcm.model(size=3000)
    target, change = out["target"], out["noise_tilde"] - out["noise"]
    hit = torch.nn.functional.one_hot(target, 5)[:, 1:].bool()
    assert torch.equal(change[~hit], torch.zeros_like(change[~hit]))
    assert torch.allclose(change[hit], out["value"][target > 0])
    assert torch.allclose(out["z_tilde"], lcm.scm.solve(out["noise_tilde"]))
    assert abs(torch_item(out["value"].std()) - 2.0) < 0.1  # SHIFT_SCALE
    with pytest.raises(ValueError, match="intervention must be"):
        scaling_toy(4, 302, intervention="soft")
