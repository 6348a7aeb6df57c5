"""Posterior checks: the ArviZ export, its round trip, PSIS and calibration."""

import random

import numpy as np
import pytest
import torch
import xarray as xr

from pyrocrl.data import make_simulator, simulate_splits
from pyrocrl.inference import diagnostics
from pyrocrl.inference.evaluate import elbo_per_pair
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.models.ilcm import ILCM
from pyrocrl.sites import variable_names

pytest.importorskip("arviz_stats")


@pytest.fixture(scope="module")
def pairs():
    return simulate_splits(make_simulator("scaling", 3, 302), 1, {"test": 200})["test"]


@pytest.fixture(scope="module")
def tree(pairs):
    torch.manual_seed(0)
    model = ILCM(3, 3, hidden=(8,))
    guide = ILCMGuide(model, hidden=(8,))
    graph = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    return diagnostics.to_datatree(
        model, guide, pairs, num_samples=40, graph=graph, metrics={"elbo": -3.0}
    )


def test_export_has_the_groups_dims_and_coords(tree):
    optional = {"importance", "intervention", "ground_truth", "graph", "metrics"}
    assert set(tree.children) == {*diagnostics.GROUPS, *optional}
    posterior = tree["posterior"]
    assert posterior["z"].dims == ("chain", "draw", "pair", "latent")
    assert posterior["z"].shape == (1, 40, 200, 3)
    assert list(posterior["latent"].values) == ["z1", "z2", "z3"]
    assert posterior["target"].dims == ("chain", "draw", "pair")
    assert set(np.unique(posterior["target"].values)) <= {0, 1, 2, 3}
    assert tree["posterior_predictive"]["x_tilde"].shape == (1, 40, 200, 3)
    assert tree["log_likelihood"]["pairs"].dims == ("chain", "draw", "pair")
    assert list(tree["intervention"]["hypothesis"].values) == ["none", "z1", "z2", "z3"]
    np.testing.assert_allclose(tree["intervention"]["probs"].sum("hypothesis"), 1, rtol=1e-5)
    assert tree["graph"]["adjacency"].sel(cause="z1", effect="z2") == 1
    # the deterministic sites follow the model: z~ differs from z only where intervened
    z, z_tilde = posterior["z"].values[0], posterior["z_tilde"].values[0]
    unchanged = posterior["target"].values[0] == 0
    np.testing.assert_allclose(z_tilde[unchanged], z[unchanged], atol=1e-5)


def test_round_trip_is_exact(tree, tmp_path):
    path = tmp_path / "check.nc"
    diagnostics.save_datatree(tree, path)
    back = diagnostics.load_datatree(path)
    assert back.identical(tree)


def test_log_weights_average_to_the_elbo(pairs):
    """``mean log w`` over draws is a one-sample ELBO per draw: its mean over pairs and
    draws estimates the ELBO that training reports (same model, other draws)."""
    torch.manual_seed(1)
    model = ILCM(3, 3, hidden=(8,))
    guide = ILCMGuide(model, hidden=(8,))
    tree = diagnostics.to_datatree(model, guide, pairs, num_samples=200)
    log_w = tree["importance"]["log_weight"].values
    x = torch.as_tensor(pairs["x"].values)
    elbo = elbo_per_pair(model, guide, x[:, 0], x[:, 1])
    spread = log_w.mean(1).std() / np.sqrt(log_w.shape[-1])  # over pairs
    assert abs(log_w.mean() - elbo) < 4 * spread + 0.05 * abs(elbo)
    checked = diagnostics.loo(tree)
    # log of a mean ≥ mean of the logs (Jensen), pair by pair
    assert (checked["elpd"].values >= log_w[0].mean(0) - 1e-9).all()
    assert checked["pareto_k"].dims == ("pair",)
    assert np.isfinite(checked.attrs["elpd"]) and 0 <= checked.attrs["share_k_above_0.7"] <= 1


def _calibration_tree(probs, target):
    n = probs.shape[1] - 1
    names = ["none", *variable_names(n)]
    return xr.DataTree.from_dict(
        {
            "intervention": xr.Dataset(
                {"probs": (("pair", "hypothesis"), probs)}, coords={"hypothesis": names}
            ),
            "ground_truth": xr.Dataset({"target": ("pair", target)}),
        }
    )


def test_calibration_of_a_perfect_posterior_under_relabelling(rng):
    target = rng.integers(0, 4, size=500)
    relabel = np.array([0, 3, 1, 2])  # learned label k is true label relabel[k]
    learned = np.argsort(relabel)[target]
    probs = np.eye(4)[learned]
    result = diagnostics.calibration(_calibration_tree(probs, target))
    assert result.attrs["accuracy"] == 1.0
    assert result.attrs["ece"] == pytest.approx(0.0)
    # an overconfident one, always certain and right about half of the time: the bin at 1
    # holds N entries with a gap 1 − a, the bin at 0 holds 3N with (1 − a)N hits, a gap of
    # (1 − a)/3; so ECE = (1 − a)/2
    wrong = np.where(rng.random(500) < 0.5, learned, (learned + 1) % 4)
    result = diagnostics.calibration(_calibration_tree(np.eye(4)[wrong], target))
    assert result.attrs["ece"] == pytest.approx((1 - result.attrs["accuracy"]) / 2, abs=1e-9)
    assert result["count"].sum() == 500 * 4


def test_checks_draw_their_files(tree, tmp_path):
    import matplotlib.pyplot as plt

    mine = plt.figure()  # a figure of the caller's stays open
    try:
        paths = diagnostics.write_checks(tree, tmp_path)
        assert plt.get_fignums() == [mine.number]
    finally:
        plt.close(mine)
    names = {p.name for p in paths}
    assert names == {"ppc.png", "pareto_k.png", "calibration.png", "graph.png"}
    assert all(p.stat().st_size > 5000 for p in paths)
    summary = diagnostics.summary(tree)
    assert {"elpd_per_pair", "share_k_above_0.7", "calibration_ece", "fit_elbo"} <= set(summary)


def _global_random_states() -> tuple:
    """torch's, NumPy's legacy and Python's global random states."""
    legacy = np.random.get_state()  # noqa: NPY002  (the global state is what is checked)
    return torch.random.get_rng_state(), legacy[1].copy(), legacy[2], random.getstate()


def test_export_is_seeded_and_leaves_the_global_random_state_alone(pairs):
    model = ILCM(3, 3, hidden=(8,))
    guide = ILCMGuide(model, hidden=(8,))
    before = _global_random_states()
    first = diagnostics.to_datatree(model, guide, pairs, num_samples=3, seed=5)
    after = _global_random_states()
    assert torch.equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]
    again = diagnostics.to_datatree(model, guide, pairs, num_samples=3, seed=5)
    assert again.identical(first)


def test_bad_input_gives_clear_errors(tree, pairs):
    model = ILCM(3, 3, hidden=(8,))
    guide = ILCMGuide(model, hidden=(8,))
    with pytest.raises(ValueError, match="no group 'posterior'"):
        diagnostics.check_datatree(xr.DataTree.from_dict({"observed_data": xr.Dataset()}))
    mismatched = tree.copy()
    mismatched["observed_data"] = tree["observed_data"].to_dataset().isel(pair=slice(0, 10))
    with pytest.raises(ValueError, match="10 pairs"):
        diagnostics.check_datatree(mismatched)
    with pytest.raises(ValueError, match="shape"):
        diagnostics.to_datatree(model, guide, (np.zeros((5, 4)), np.zeros((5, 4))))
    x = pairs["x"].values.copy()
    x[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        diagnostics.to_datatree(model, guide, (x[:, 0], x[:, 1]))
    with pytest.raises(ValueError, match="at least 25 draws"):
        diagnostics.loo(diagnostics.to_datatree(model, guide, pairs, num_samples=5))
    with pytest.raises(ValueError, match="no true targets"):
        diagnostics.calibration(tree.drop_nodes("ground_truth"))
