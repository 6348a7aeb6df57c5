"""Causal queries: interventions and counterfactuals through handlers, on the simulators
(where the answers are known exactly) and on the ILCM."""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
import xarray as xr
from pyro import poutine

import pyrocrl
from pyrocrl.data import validate
from pyrocrl.inference import queries
from pyrocrl.inference.queries import counterfactual, do, encode, generate, intervene
from pyrocrl.mixing import Rotation
from pyrocrl.models.truth import GroundTruthLCM, scaling_toy
from pyrocrl.scm import LinearSCM


@pytest.fixture
def lcm():
    return scaling_toy(4, 302)  # z1→z2, z1→z3, z1→z4, z2→z3, z3→z4


def test_counterfactual_equals_the_simulators_own(lcm):
    pairs = lcm.model(size=400)
    for k in range(1, lcm.n + 1):
        rows = pairs["target"] == k
        out = counterfactual(lcm, pairs["x"][rows], z={k: pairs["value"][rows]})
        assert torch.allclose(out["x_tilde"], pairs["x_tilde"][rows], atol=1e-5)
        assert torch.allclose(out["z_tilde"], pairs["z_tilde"][rows], atol=1e-5)
        assert torch.allclose(out["x"], pairs["x"][rows], atol=1e-5)  # the factual world


def test_do_then_condition_equals_condition_then_do(lcm):
    noise = torch.randn(6, 4)
    first = pyro.condition(do(lcm.model, z={3: 0.7}), data={"noise": noise})(size=6)
    second = do(pyro.condition(lcm.model, data={"noise": noise}), z={3: 0.7})(size=6)
    for key in ("x_tilde", "z_tilde", "noise_tilde"):
        assert torch.allclose(first[key], second[key])
    assert torch.allclose(first["z_tilde"][:, 2], torch.full((6,), 0.7))


def test_do_as_context_manager_decorator_and_function(lcm):
    with do(z={"z2": 0.25}):
        a = lcm.model(size=5)

    @do(z={2: 0.25})
    def decorated(size):
        return lcm.model(size=size)

    b = decorated(5)
    c = pyrocrl.do(lcm.model, z={2: 0.25})(size=5)
    for out in (a, b, c):
        assert torch.equal(out["target"], torch.full((5,), 2))
        assert torch.allclose(out["z_tilde"][:, 1], torch.full((5,), 0.25))


def test_intervention_values_broadcast_over_the_plate(lcm):
    scalar = intervene(lcm, {2: 0.5}, 7, seed=0)
    assert scalar["z_tilde"].shape == (7, 4) and scalar["value"].shape == (7,)
    assert torch.allclose(scalar["z_tilde"][:, 1], torch.full((7,), 0.5))
    values = torch.linspace(-1, 1, 7)
    per_pair = intervene(lcm, {2: values}, 7, seed=0)
    assert torch.allclose(per_pair["z_tilde"][:, 1], values)
    drawn = intervene(lcm, {2: dist.Normal(3.0, 0.5)}, 4000, seed=0)["z_tilde"][:, 1]
    assert abs(float(drawn.mean()) - 3.0) < 5 * 0.5 / np.sqrt(4000)
    assert abs(float(drawn.std()) - 0.5) < 0.05


def test_batched_queries_equal_one_by_one(lcm, monkeypatch):
    pairs = lcm.model(size=9)
    x, values = pairs["x"], torch.linspace(-2, 2, 9)
    together = counterfactual(lcm, x, z={4: values})
    monkeypatch.setattr(queries, "BATCH", 4)  # three batches
    batched = counterfactual(lcm, x, z={4: values})
    for i in range(9):
        single = counterfactual(lcm, x[i : i + 1], z={4: values[i : i + 1]})
        assert torch.allclose(single["x_tilde"][0], together["x_tilde"][i], atol=1e-6)
    assert torch.allclose(batched["x_tilde"], together["x_tilde"], atol=1e-6)


def test_counterfactual_agrees_with_chirho():
    """An explicit linear SCM, queried by pyrocrl and by ChiRho's twin-world handlers."""
    from chirho.counterfactual.handlers import MultiWorldCounterfactual
    from chirho.indexed.ops import IndexSet, gather
    from chirho.interventional.handlers import do as chirho_do
    from chirho.observational.handlers import condition as chirho_condition

    weights = np.array([[0.0, 0.8, 0.3], [0.0, 0.0, -1.2], [0.0, 0.0, 0.0]])
    lcm = GroundTruthLCM(LinearSCM(weights), Rotation(np.eye(3)))
    x = lcm.model(size=200)["x"]  # x = z: the observed causal variables
    ours = counterfactual(lcm, x, z={2: 0.5})["x_tilde"]

    noise = lcm.encode(x)  # both abduct the same noise: the SCM is invertible

    def scm():
        with pyro.plate("units", len(x)):
            e = [pyro.sample(f"e{k}", dist.Normal(0.0, 1.0)) for k in (1, 2, 3)]
            z1 = pyro.deterministic("z1", e[0], event_dim=0)
            z2 = pyro.deterministic("z2", 0.8 * z1 + e[1], event_dim=0)
            return pyro.deterministic("z3", 0.3 * z1 - 1.2 * z2 + e[2], event_dim=0)

    data = {f"e{k}": noise[:, k - 1] for k in (1, 2, 3)}
    with MultiWorldCounterfactual(), chirho_do(actions={"z2": torch.tensor(0.5)}):
        with chirho_condition(data=data):
            trace = poutine.trace(scm).get_trace()
            theirs = gather(trace.nodes["z3"]["value"], IndexSet(z2={1})).reshape(-1)
    assert torch.allclose(ours[:, 2], theirs, atol=1e-5)


def test_ilcm_counterfactual_samples_and_encodings():
    model = pyrocrl.ILCM(3, 2)
    guide = pyrocrl.ILCMGuide(model)
    x = torch.randn(10, 3)
    out = counterfactual(model, x, z={1: 0.3}, guide=guide, num_samples=4, seed=0)
    assert out["x_tilde"].shape == (10, 3) and out["x_tilde_samples"].shape == (4, 10, 3)
    assert torch.allclose(out["z_tilde_samples"][..., 0], torch.full((4, 10), 0.3), atol=1e-5)
    assert torch.allclose(out["z_tilde"][:, 0], torch.full((10,), 0.3), atol=1e-5)
    again = counterfactual(model, x, z={1: 0.3}, guide=guide, num_samples=4, seed=0)
    assert torch.equal(out["x_tilde_samples"], again["x_tilde_samples"])
    enc = encode(guide, x, num_samples=3)
    assert enc["z_samples"].shape == (3, 10, 2)
    assert torch.allclose(out["z"], enc["z"], atol=1e-6)


@pytest.mark.parametrize("kind", ["pairs", "observational", "interventional", "counterfactual"])
def test_generated_datasets(lcm, kind, tmp_path):
    x = lcm.model(size=30)["x"]
    ds = generate(lcm, kind, size=30, x=x, z={3: 1.5}, seed=2)
    validate(ds)
    assert ds.attrs["generated"] == kind and ds.sizes["pair"] == 30
    z = ds["z"].values
    if kind == "observational":
        assert (ds["target"].values == 0).all() and np.allclose(z[:, 0], z[:, 1])
    if kind in ("interventional", "counterfactual"):
        assert (ds["target"].values == 3).all() and np.allclose(z[:, 1, 2], 1.5)
        assert ds.attrs["intervention"] == "do(z3 = 1.5)"
    if kind == "counterfactual":
        assert np.allclose(ds["x"].values[:, 0], x.numpy())
    xr.testing.assert_identical(pyrocrl.load(pyrocrl.save(ds, tmp_path / "g.nc")), ds)
    assert generate(lcm, kind, size=30, x=x, z={3: 1.5}, seed=2).identical(ds)


@pytest.mark.parametrize(
    ("z", "error", "message"),
    [
        ({"y2": 1.0}, ValueError, "unknown causal variable 'y2'"),
        ({0: 1.0}, ValueError, "numbered from 1"),
        ({1: 1.0, 2: 0.0}, ValueError, "one causal variable at a time"),
        ({1: "high"}, TypeError, "a number, a tensor or a distribution"),
        ({1: torch.tensor(float("nan"))}, ValueError, "NaN"),
    ],
)
def test_bad_interventions(z, error, message):
    with pytest.raises(error, match=message):
        do(z=z)


def test_out_of_range_and_shape_errors(lcm):
    with pytest.raises(ValueError, match="cannot intervene on z5: the model has z1 … z4"):
        intervene(lcm, {5: 0.0}, 3)
    with pytest.raises(ValueError, match=r"needs shape \(3,\)"):
        intervene(lcm, {1: torch.zeros(4)}, 3)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 4\)"):
        counterfactual(lcm, torch.zeros(3, 5), z={1: 0.0})
    with pytest.raises(ValueError, match="needs an intervention"):
        generate(lcm, "interventional", size=3)
    with pytest.raises(ValueError, match="kind must be one of"):
        generate(lcm, "dreams", size=3)
    model = pyrocrl.ILCM(3, 2)
    with pytest.raises(ValueError, match="cannot intervene on z3"):
        counterfactual(model, torch.zeros(2, 3), z={3: 0.0}, guide=pyrocrl.ILCMGuide(model))
