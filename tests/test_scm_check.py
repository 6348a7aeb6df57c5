"""The Bayesian check of a latent SCM: NUTS recovers known weights, the intervened variable
is masked, learned variables are aligned to true ones, and bad input is refused."""

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from pyrocrl.data import make_simulator, simulate_splits
from pyrocrl.inference.scm_check import (
    _model,
    align_to_truth,
    coverage_fraction,
    edge_list,
    fit_linear_scm,
    summarize,
    weight_coverage,
)

GRAPH_SEED = 308  # n = 3, edges z1 → z2, z1 → z3, z2 → z3; z3 is a sink
SETTINGS = {"num_chains": 2, "num_warmup": 300, "num_samples": 300, "seed": 0}


@pytest.fixture(scope="module", autouse=True)
def _compilation_cache(tmp_path_factory):
    """Compile NUTS once per shape for the module: fits of equal shapes share programs."""
    import jax

    previous = jax.config.jax_compilation_cache_dir
    minimum = jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("xla")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    yield
    jax.config.update("jax_compilation_cache_dir", previous)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", minimum)


@pytest.fixture(scope="module")
def truth() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """True ``z, z~ (500, 3)``, targets ``(500,)`` and weights ``(3, 3)`` of the scaling toy."""
    lcm = make_simulator("scaling", 3, GRAPH_SEED)
    data = simulate_splits(lcm, GRAPH_SEED, {"train": 500})["train"]
    z = data["z"].values
    return z[:, 0], z[:, 1], data["target"].values, lcm.ground_truth()["weights"]


@pytest.fixture(scope="module")
def fitted(truth) -> xr.DataTree:
    z, z_tilde, targets, weights = truth
    return fit_linear_scm(z, z_tilde, targets, weights != 0, **SETTINGS)


def test_truth_has_the_graph_the_tests_assume(truth):
    weights = truth[3]
    assert (weights != 0).sum() == 3 and not (weights[2] != 0).any()


def _least_squares(z, z_tilde, targets, j, parents):
    """Ordinary least squares of ``z_j`` on its parents over both worlds, leaving out the
    pairs whose second world intervenes on ``z_j``: coefficients ``(1 + |pa|,)`` (bias
    first) and their standard errors."""
    keep = targets != j + 1
    design = np.concatenate([z[:, parents], z_tilde[keep][:, parents]])
    design = np.column_stack([np.ones(len(design)), design])
    response = np.concatenate([z[:, j], z_tilde[keep, j]])
    coef, *_ = np.linalg.lstsq(design, response, rcond=None)
    residual = response - design @ coef
    variance = residual @ residual / (len(response) - design.shape[1])
    return coef, np.sqrt(variance * np.diag(np.linalg.inv(design.T @ design)))


def test_nuts_recovers_true_weights(truth, fitted):
    """The posterior is the least-squares answer (weak priors, 500 pairs), and it covers the
    true weights; the noise scales are 1."""
    z, z_tilde, targets, weights = truth
    table = summarize(fitted)
    for j, parents in ((1, [0]), (2, [0, 1])):
        coef, error = _least_squares(z, z_tilde, targets, j, parents)
        rows = [f"bias[z{j + 1}]"] + [f"weight[z{i + 1}→z{j + 1}]" for i in parents]
        np.testing.assert_allclose(table.loc[rows, "mean"], coef, atol=0.01)
        np.testing.assert_allclose(table.loc[rows, "sd"], error, rtol=0.15)
    wide = summarize(fitted, hdi_prob=0.99)
    for label, (i, j) in {"z1→z2": (0, 1), "z1→z3": (0, 2), "z2→z3": (1, 2)}.items():
        row = wide.loc[f"weight[{label}]"]
        assert row["hdi_low"] <= weights[i, j] <= row["hdi_high"], (label, row, weights[i, j])
        assert row["hdi_high"] - row["hdi_low"] < 0.3  # informative, not just wide
    scales = table.loc[[f"noise_scale[z{j}]" for j in (1, 2, 3)], "mean"]
    np.testing.assert_allclose(scales, 1.0, atol=0.1)
    np.testing.assert_allclose(table.loc[[f"bias[z{j}]" for j in (1, 2, 3)], "mean"], 0, atol=0.2)
    assert (table["r_hat"] < 1.05).all()
    assert (table["ess_bulk"] > 100).all()
    columns = ["mean", "sd", "hdi_low", "hdi_high", "r_hat", "ess_bulk", "ess_tail"]
    assert list(table.columns) == columns
    assert len(table) == 3 + 3 + 3


def _shortest_interval(draws: np.ndarray, prob: float) -> tuple[float, float]:
    """The narrowest interval holding ``floor(prob · S)`` + 1 of ``S`` sorted draws."""
    draws = np.sort(draws.ravel())
    k = int(np.floor(prob * len(draws)))
    start = int(np.argmin(draws[k:] - draws[: len(draws) - k]))
    return draws[start], draws[start + k]


def test_summary_intervals_are_highest_density(fitted):
    """The HDI, not the equal-tailed interval: it differs for the skewed noise scales."""
    table = summarize(fitted, hdi_prob=0.8)
    post = fitted["posterior"]
    for name, label in (("weight", "z1→z3"), ("noise_scale", "z2"), ("bias", "z3")):
        dim = "edge" if name == "weight" else "latent"
        draws = post[name].sel({dim: label}).values
        row = table.loc[f"{name}[{label}]"]
        np.testing.assert_allclose(
            [row["hdi_low"], row["hdi_high"]], _shortest_interval(draws, 0.8), rtol=1e-6
        )
        assert row["mean"] == pytest.approx(draws.mean(), rel=1e-5)


def test_posterior_tree_layout(truth, fitted):
    assert {"posterior", "sample_stats", "observed_data", "constant_data"} <= set(fitted.children)
    post = fitted["posterior"]
    assert post["weight"].dims == ("chain", "draw", "edge")
    assert post["bias"].dims == post["noise_scale"].dims == ("chain", "draw", "latent")
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 300
    assert list(post["edge"].values) == ["z1→z2", "z1→z3", "z2→z3"]
    assert list(post["cause"].values) == [0, 0, 1] and list(post["effect"].values) == [1, 2, 2]
    assert list(post["latent"].values) == ["z1", "z2", "z3"]
    edges = edge_list(fitted)
    assert list(edges["label"]) == ["z1→z2", "z1→z3", "z2→z3"]
    np.testing.assert_array_equal(fitted["constant_data"]["adjacency"], truth[3] != 0)
    np.testing.assert_array_equal(fitted["constant_data"]["target"], truth[2])
    np.testing.assert_allclose(fitted["observed_data"]["z_tilde"], truth[1])
    assert not fitted["sample_stats"]["diverging"].values.any()


def test_intervened_variable_is_masked(truth, fitted):
    """Garbage in the intervened value of a sink changes nothing: it is neither explained
    by its mechanism nor a parent of anything."""
    import torch

    z, z_tilde, targets, weights = truth
    hit = targets == 3
    assert hit.sum() > 50
    garbage = z_tilde.copy()
    garbage[hit, 2] = 1e12
    data = [torch.as_tensor(a) for a in (z, garbage, targets, weights != 0)]  # torch works too
    refit = fit_linear_scm(*data, **SETTINGS)
    for name in ("weight", "bias", "noise_scale"):
        np.testing.assert_array_equal(refit["posterior"][name], fitted["posterior"][name])


def test_garbage_outside_the_mask_does_change_the_posterior(truth):
    z, z_tilde, targets, weights = truth
    hit = targets == 3
    garbage = z_tilde.copy()
    garbage[hit, 1] += 5.0  # z2 is not intervened on in these pairs: it is data
    tree = fit_linear_scm(z, garbage, targets, weights != 0, **SETTINGS)
    row = summarize(tree).loc["noise_scale[z2]"]
    assert row["hdi_low"] > 1.5


def test_log_density_is_the_stated_model(truth, rng):
    """NumPyro's log joint equals a direct computation of the priors and both worlds'
    likelihoods, with the intervened entries left out (their values still feed children)."""
    from numpyro.infer.util import log_density

    z, z_tilde, targets, weights = truth
    z_tilde = z_tilde.copy()
    hit = targets > 0
    z_tilde[hit, targets[hit] - 1] = rng.normal(0, 3, hit.sum())  # any intervened value
    cause, effect = np.nonzero(weights)
    keep = targets[:, None] != np.arange(1, 4)
    w, b, sigma = rng.normal(size=3), rng.normal(size=3), rng.uniform(0.5, 2.0, size=3)
    params = {"weight": w, "bias": b, "noise_scale": sigma}
    data = [np.float32(a) for a in (z, z_tilde, np.where(keep, z_tilde, 0.0))]
    value, _ = log_density(_model, (*data, keep, cause, effect), {}, params)
    matrix = np.zeros((3, 3))
    matrix[cause, effect] = w
    expected = stats.norm(0, 2).logpdf(w).sum() + stats.norm(0, 2).logpdf(b).sum()
    expected += stats.halfnorm(scale=2).logpdf(sigma).sum()
    expected += stats.norm(b + z @ matrix, sigma).logpdf(z).sum()
    expected += (keep * stats.norm(b + z_tilde @ matrix, sigma).logpdf(z_tilde)).sum()
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)


def test_graph_without_edges(truth):
    z, z_tilde, targets, _ = truth
    names = ["a", "b", "c"]
    settings = {"num_chains": 1, "num_warmup": 100, "num_samples": 100, "max_pairs": 400}
    tree = fit_linear_scm(z, z_tilde, targets, np.zeros((3, 3)), names=names, **settings)
    post = tree["posterior"]
    assert "weight" not in post and post.sizes["edge"] == 0
    assert list(post["latent"].values) == names
    assert tree["observed_data"].sizes["pair"] == 400
    assert edge_list(tree).empty
    table = summarize(tree)
    assert list(table.index) == [f"{p}[{v}]" for p in ("bias", "noise_scale") for v in names]
    # without its parents z1, z2, the spread of z3 is larger than its noise scale 1
    assert table.loc["noise_scale[c]", "mean"] > 1.2
    assert weight_coverage(tree, np.zeros((3, 3)), np.arange(3), np.ones(3)).empty


def test_align_to_truth_recovers_permutation_sign_and_scale(rng):
    z_true = rng.normal(size=(2000, 4)) @ np.array(
        [[1, 0.5, 0, 0], [0, 1, 0.4, 0], [0, 0, 1, 0.3], [0, 0, 0, 1]]
    )
    permutation = np.array([2, 0, 3, 1])
    scale, shift = np.array([-1.5, 0.3, 2.0, -0.7]), np.array([0.1, -2.0, 5.0, 0.0])
    z = scale * z_true[:, permutation] + shift + 0.01 * rng.normal(size=(2000, 4))
    found, a, c = align_to_truth(z, z_true)
    np.testing.assert_array_equal(found, permutation)
    np.testing.assert_allclose(a, scale, rtol=0.01)
    np.testing.assert_allclose(c, shift, atol=0.01)
    given, a_given, _ = align_to_truth(z, z_true, permutation=permutation)
    np.testing.assert_array_equal(given, permutation)
    np.testing.assert_allclose(a_given, a)
    with pytest.raises(ValueError, match="permutation"):
        align_to_truth(z, z_true, permutation=[0, 0, 1, 2])
    with pytest.raises(ValueError, match="shape"):
        align_to_truth(z[:, :3], z_true)


def test_weight_coverage_maps_weights_exactly():
    """Known draws: ``ŵ_ik a_i / a_k`` on the truth's scale, compared at the permuted indices."""
    draws = np.linspace(-1.0, 1.0, 201)[None, :, None] * 0.1 + np.array([2.0, -1.0])
    posterior = xr.Dataset(
        {
            "weight": (("chain", "draw", "edge"), draws),
            "bias": (("chain", "draw", "latent"), np.zeros((1, 201, 3))),
        },
        coords={"edge": ["a→b", "b→c"], "cause": ("edge", [0, 1]), "effect": ("edge", [1, 2])},
    )
    permutation, scale = np.array([2, 0, 1]), np.array([2.0, -4.0, 0.5])
    true_weights = np.zeros((3, 3))
    true_weights[2, 0] = 2.0 * 2.0 / -4.0  # learned 0 → 1 is true 2 → 0
    table = weight_coverage(posterior, true_weights, permutation, scale, hdi_prob=0.9)
    assert list(table["edge"]) == ["a→b", "b→c"]
    assert list(table["true_edge"]) == [True, False]  # learned 1 → 2 is true 0 → 1: absent
    np.testing.assert_allclose(table["mean"], [-1.0, -1.0 * -4.0 / 0.5])
    np.testing.assert_allclose(table["true_weight"], [-1.0, 0.0])
    assert list(table["covered"]) == [True, False]
    np.testing.assert_allclose(table.loc[0, "hdi_high"] - table.loc[0, "hdi_low"], 0.09, atol=2e-3)
    assert coverage_fraction(table) == 1.0
    assert np.isnan(coverage_fraction(table.iloc[1:]))


def test_weight_coverage_of_a_permuted_rescaled_copy(truth):
    """Fit on ``ẑ = a z_π + c`` with the graph and targets relabelled: after alignment
    every true weight is covered."""
    z, z_tilde, targets, weights = truth
    permutation = np.array([2, 0, 1])  # learned j is true permutation[j]
    scale, shift = np.array([-2.0, 0.5, 3.0]), np.array([1.0, -1.0, 0.0])
    learned, learned_tilde = (scale * a[:, permutation] + shift for a in (z, z_tilde))
    inverse = np.argsort(permutation)
    learned_targets = np.where(targets > 0, inverse[targets - 1] + 1, 0)
    adjacency = (weights != 0)[np.ix_(permutation, permutation)]
    tree = fit_linear_scm(learned, learned_tilde, learned_targets, adjacency, **SETTINGS)
    found, a, _ = align_to_truth(learned, z)
    np.testing.assert_array_equal(found, permutation)
    table = weight_coverage(tree, weights, found, a)
    assert len(table) == 3 and table["true_edge"].all()
    assert coverage_fraction(table) == 1.0
    np.testing.assert_allclose(table["mean"], table["true_weight"], atol=0.15)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {**a, "z": a["z"][:, 0]}, r"shape \(N, n\)"),
        (lambda a: {**a, "z_tilde": a["z_tilde"][:-1]}, "z_tilde must have the shape"),
        (lambda a: {**a, "targets": a["targets"][:-1]}, "one per pair"),
        (lambda a: {**a, "adjacency": np.zeros((2, 2))}, r"shape \(3, 3\)"),
        (lambda a: {**a, "z": np.where(np.eye(10, 3) > 0, np.nan, a["z"])}, "z holds NaN"),
        (lambda a: {**a, "z_tilde": a["z_tilde"] * np.inf}, "z_tilde holds NaN"),
        (lambda a: {**a, "targets": a["targets"] - 1}, r"0\.\.3"),
        (lambda a: {**a, "targets": a["targets"] + 1}, r"0\.\.3"),
        (lambda a: {**a, "targets": a["targets"] + 0.5}, "integers"),
        (lambda a: {**a, "adjacency": np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]])}, "cycle"),
        (lambda a: {**a, "adjacency": np.eye(3)}, "self-loops"),
        (lambda a: {**a, "adjacency": 2 * np.triu(np.ones((3, 3)), 1)}, "0 or 1"),
        (lambda a: {**a, "names": ["a", "b"]}, "names"),
        (lambda a: {**a, "num_chains": 0}, "num_chains"),
    ],
)
def test_bad_input_is_refused(change, message, rng):
    good = {
        "z": rng.normal(size=(10, 3)),
        "z_tilde": rng.normal(size=(10, 3)),
        "targets": np.arange(10) % 4,
        "adjacency": np.triu(np.ones((3, 3)), 1),
    }
    args = change(good)
    with pytest.raises(ValueError, match=message):
        fit_linear_scm(
            args.pop("z"), args.pop("z_tilde"), args.pop("targets"), args.pop("adjacency"), **args
        )


def test_torch_input_is_checked():
    import torch

    z = torch.randn(10, 2)
    with pytest.raises(ValueError, match="targets must lie"):
        fit_linear_scm(z, z, torch.full((10,), 3), torch.tensor([[0, 1], [0, 0]]))
