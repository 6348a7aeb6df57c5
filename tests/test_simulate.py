import numpy as np
import pytest
import torch
import xarray as xr

from pyrocrl.data import simulate, simulate_pairs
from pyrocrl.data import simulators as simulate_module
from pyrocrl.models.truth import scaling_toy


def test_same_seeds_give_identical_data():
    a = simulate_pairs("scaling", 500, n=4, seed=7, graph_seed=3)
    b = simulate_pairs("scaling", 500, n=4, seed=7, graph_seed=3)
    xr.testing.assert_identical(a, b)


def test_sample_seed_and_graph_seed_are_separate():
    a = simulate_pairs("scaling", 500, n=5, seed=1, graph_seed=3)
    b = simulate_pairs("scaling", 500, n=5, seed=2, graph_seed=3)
    for truth in ("adjacency", "weights", "mixing"):
        xr.testing.assert_identical(a[truth], b[truth])
    assert not np.array_equal(a["x"].values, b["x"].values)
    assert not np.array_equal(a["target"].values, b["target"].values)
    c = simulate_pairs("scaling", 500, n=5, seed=1, graph_seed=4)
    assert not np.array_equal(a["mixing"].values, c["mixing"].values)


def test_simulation_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()  # noqa: NPY002 (the legacy global state)
    simulate_pairs("scaling", 100, n=3, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)  # noqa: NPY002


def test_chunked_simulation(monkeypatch):
    monkeypatch.setattr(simulate_module, "CHUNK_SIZE", 64)
    ds = simulate(scaling_toy(3, 0), 200, seed=0, progress=False)
    assert ds.sizes["pair"] == 200
    # chunks are seeded apart: no repeated noise between chunks
    noise = ds["noise"].values[:, 0]
    assert len(np.unique(noise.round(6), axis=0)) == 200


def test_dataset_holds_consistent_ground_truth():
    lcm = scaling_toy(4, 302)
    ds = simulate(lcm, 1000, seed=0)
    x = torch.as_tensor(ds["x"].values)
    z = torch.as_tensor(ds["z"].values)
    assert torch.allclose(lcm.mixing(z), x, atol=1e-5)
    assert torch.allclose(lcm.scm.solve(torch.as_tensor(ds["noise"].values)), z, atol=1e-5)
    assert ds.attrs["graph_seed"] == 302 and ds.attrs["sample_seed"] == 0
    assert ds["latent"].values.tolist() == ["z1", "z2", "z3", "z4"]
    # interventions are uniform over {none, z1..z4}
    counts = np.bincount(ds["target"].values, minlength=5)
    assert (np.abs(counts / 1000 - 0.2) < 0.065).all()  # 5 standard errors of 0.0126


@pytest.mark.parametrize(
    ("name", "n", "message"),
    [("scaling", 1, "n ≥ 2"), ("toy2d", 3, "2 causal"), ("nope", 2, "unknown simulator")],
)
def test_bad_simulator_arguments(name, n, message):
    with pytest.raises(ValueError, match=message):
        simulate_pairs(name, 10, n=n)
    with pytest.raises(ValueError, match="pairs"):
        simulate_pairs("toy2d", 0)
