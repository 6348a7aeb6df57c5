"""The feature transform: observations in any units and float dtype, standardized inside
the model, answers in the user's units."""

import copy

import numpy as np
import pytest
import torch

from pyrocrl.data import make_simulator, simulate_splits
from pyrocrl.errors import DatasetError
from pyrocrl.features import FeatureScaling
from pyrocrl.inference.evaluate import elbo_per_pair
from pyrocrl.inference.fit import fit_ilcm
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.inference.queries import counterfactual, encode
from pyrocrl.models import ILCM

SCALE = torch.tensor([1e4, 0.01, 250.0])
OFFSET = torch.tensor([3e4, -2.0, 1e3])


def test_fit_is_the_mean_and_spread_of_both_worlds():
    pairs = torch.randn(500, 2, 3, dtype=torch.float64) * SCALE + OFFSET
    features = FeatureScaling(3)
    x = torch.randn(4, 3)
    torch.testing.assert_close(features(x), x)  # identity until fitted
    features.fit(pairs)
    flat = pairs.reshape(-1, 3).numpy()
    np.testing.assert_allclose(features.loc, flat.mean(0), rtol=1e-6)
    np.testing.assert_allclose(features.scale, flat.std(0), rtol=1e-6)
    u = features(pairs.float())
    np.testing.assert_allclose(u.reshape(-1, 3).mean(0), 0, atol=1e-3)
    np.testing.assert_allclose(u.reshape(-1, 3).std(0), 1, atol=1e-3)
    torch.testing.assert_close(features.inverse(u), pairs.float(), rtol=1e-5, atol=0)


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (torch.full((200, 2), 7.0), r"feature 1 \(value 7\) is constant"),
        (1e4 + 1e-4 * torch.randn(200, 2, dtype=torch.float64), r"feature 1 .* is constant"),
        (torch.full((200, 2), float("nan")), "NaN or infinite"),
    ],
)
def test_constant_and_non_finite_features_are_refused(column, message):
    pairs = torch.randn(200, 2, 3, dtype=torch.float64)
    pairs[:, :, 1] = column
    with pytest.raises(DatasetError, match=message):
        FeatureScaling(3).fit(pairs)
    with pytest.raises(DatasetError, match="shape"):
        FeatureScaling(3).fit(torch.randn(10, 4))


def _scaled_twin(model, guide):
    """The same model for observations ``x' = OFFSET + SCALE · x`` (identity features in
    ``model``)."""
    other = copy.deepcopy(model)
    other.features.loc.copy_(OFFSET)
    other.features.scale.copy_(SCALE)
    return other, ILCMGuide(other, hidden=(16,))


def test_the_model_answers_in_the_units_of_the_observations():
    model = ILCM(3, 2, hidden=(16,))
    guide = ILCMGuide(model, hidden=(16,))
    other, other_guide = _scaled_twin(model, guide)
    other_guide.load_state_dict(guide.state_dict())
    x, x_tilde = torch.randn(50, 3), torch.randn(50, 3)
    scaled, scaled_tilde = (OFFSET + SCALE * a for a in (x, x_tilde))
    # the encodings are those of the standardized features
    for key in ("noise", "z"):
        torch.testing.assert_close(encode(other_guide, scaled)[key], encode(guide, x)[key])
    # densities carry the Jacobian of x ↦ u: log p(x') = log p(u) − Σ log SCALE per world
    jacobian = 2 * float(torch.log(SCALE).sum())
    torch.manual_seed(0)
    reference = elbo_per_pair(model, guide, x, x_tilde)
    torch.manual_seed(0)
    assert elbo_per_pair(other, other_guide, scaled, scaled_tilde) == pytest.approx(
        reference - jacobian, abs=1e-3 * abs(reference - jacobian)
    )
    # reconstructions, counterfactuals and samples come back in the user's units
    ours = counterfactual(other, scaled, {1: 0.3}, guide=other_guide)
    theirs = counterfactual(model, x, {1: 0.3}, guide=guide)
    torch.testing.assert_close(
        ours["x_tilde"], OFFSET + SCALE * theirs["x_tilde"], rtol=1e-4, atol=0
    )
    samples = other.model(size=4000)["x"]
    assert (samples.mean(0) - OFFSET).abs().lt(3 * SCALE).all()
    assert (samples.std(0) / SCALE).gt(0.05).all()


def test_checkpoints_without_a_transform_load_as_the_identity():
    model = ILCM(3, 2, hidden=(16,))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("features.")}
    model.features.fit(torch.randn(100, 3) * 5 + 2)
    model.load_state_dict(state)
    torch.testing.assert_close(model.features.loc, torch.zeros(3))
    torch.testing.assert_close(model.features.scale, torch.ones(3))
    assert ILCM(3, 2, likelihood="bernoulli").features is None


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_a_rescaled_float64_copy_fits_like_the_original(backend, short_recipe):
    splits = simulate_splits(make_simulator("scaling", 3, 4), 6, {"train": 3200, "test": 1000})
    scale, offset = np.array([1e4, 3e-3, 40.0]), np.array([5e4, -1.0, 7.0])
    reports = []
    for factor, shift in ((1.0, 0.0), (scale, offset)):
        data = {
            k: ds.assign(x=ds["x"].astype(np.float64) * factor + shift) for k, ds in splits.items()
        }
        options = {
            "recipe": short_recipe,
            "hidden": (32, 32),
            "progress": False,
            "backend": backend,
        }
        _, _, report = fit_ilcm(data["train"], 3, test=data["test"], **options)
        reports.append(report)
    original, rescaled = (r.metrics for r in reports)
    assert original["dci_disentanglement"] > 0.8  # it learned something to compare
    for key in ("dci_disentanglement", "intervention_accuracy"):
        assert rescaled[key] == pytest.approx(original[key], abs=0.02), key
    jacobian = 2 * np.log(scale).sum()
    assert rescaled["elbo"] == pytest.approx(original["elbo"] - jacobian, abs=0.05 * abs(jacobian))
    assert "no separate DCI set" in reports[0].format()


def test_a_constant_feature_stops_a_fit_before_training(short_recipe):
    splits = simulate_splits(make_simulator("scaling", 2, 4), 6, {"train": 640, "test": 100})
    x = splits["train"]["x"].values.copy()
    x[:, :, 1] = 3.5
    # named as the dataset names it: the second feature is x2
    with pytest.raises(DatasetError, match=r"feature x2 \(value 3.5\) is constant"):
        fit_ilcm(splits["train"].assign(x=(splits["train"]["x"].dims, x)), 2, recipe=short_recipe)


MIXING = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _readings(z: torch.Tensor) -> torch.Tensor:
    """Readings ``(N, 6)`` of four quantities ``z`` ``(N, 4)``: four linear sensors of the
    first three, one that reads the product of the first two (determined by the others,
    nonlinearly), one that reads the square of the fourth (which no other sensor sees)."""
    return torch.cat([z[:, :3] @ MIXING, z[:, :1] * z[:, 1:2], z[:, 3:] ** 2], 1)


def _quantities(rows: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(rows, 4, generator=g, dtype=torch.float64) + 0.5


def test_only_features_that_the_others_determine_nonlinearly_are_flagged():
    from pyrocrl.features import nonlinear_features, regression_r2

    u = _readings(_quantities(6000, 0))
    r2 = regression_r2(u)
    assert (r2[:4, 0] > 0.99).all()  # each linear sensor: a linear function of the others
    assert r2[4, 0] < 0.99 < r2[4, 1]  # the product: only quadratically
    assert r2[5, 1] < 0.1  # the unseen quantity: determined by nothing
    assert nonlinear_features(u, max_flagged=2) == [4]
    assert nonlinear_features(u, max_flagged=0) == []
    assert nonlinear_features(u[:, :4], max_flagged=1) == []  # all linear
    assert nonlinear_features(u[:50], max_flagged=2) == []  # too few rows to tell


def test_preconditioning_leaves_the_product_sensor_out_of_the_directions():
    z = _quantities(6000, 0)
    moved = z.clone()  # an intervention sets one of the first three quantities afresh
    rows = torch.arange(len(z))
    target = torch.randint(0, 3, (len(z),), generator=torch.Generator().manual_seed(1))
    moved[rows, target] = _quantities(len(z), 2)[rows, 0]
    x, x_tilde = _readings(z), _readings(moved)
    guide = ILCMGuide(ILCM(6, 4))
    assert guide.precondition(x, x_tilde) == [4]
    transform = guide.encoder.input_transform
    assert torch.equal(transform[4], torch.eye(6, dtype=transform.dtype)[5])  # passed last
    assert (transform[[0, 1, 2, 3, 5], 5] == 0).all()
    assert guide.precondition(x, x_tilde, screen=False) == []
    assert (guide.encoder.input_transform[4, :5] != 0).any()


def test_preconditioning_starts_from_directions_that_interventions_move_not_from_noise():
    # three quantities read by three linear sensors, and two readings of noise drawn afresh
    # in each view: the noise directions change the most (their views are uncorrelated)
    # but in every pair, so the encoder must not start from them
    rows, g = 6000, torch.Generator().manual_seed(3)
    z = torch.rand(rows, 3, generator=g, dtype=torch.float64)
    moved = z.clone()
    target = torch.randint(0, 4, (rows,), generator=g)  # 3: no intervention
    hit = target < 3
    moved[hit, target[hit]] = torch.rand(int(hit.sum()), generator=g, dtype=torch.float64)

    def view(v: torch.Tensor) -> torch.Tensor:
        return torch.cat([v @ MIXING, torch.randn(rows, 2, generator=g, dtype=v.dtype)], 1)

    x, x_tilde = view(z), view(moved)
    guide = ILCMGuide(ILCM(6, 3))
    assert guide.precondition(x, x_tilde) == []
    start = x @ guide.encoder.input_transform[:, :3].double()
    # the start reads the three quantities (R² ≈ 1) and none of the noise
    design = torch.cat([z, torch.ones(rows, 1, dtype=z.dtype)], 1)
    residual = start - design @ torch.linalg.lstsq(design, start).solution
    assert (residual.var(0) / start.var(0) < 0.01).all()
    assert (torch.corrcoef(torch.cat([start, x[:, 4:]], 1).T)[:3, 3:].abs() < 0.05).all()
    guide.precondition(x, x_tilde, screen=False)  # the plain start: most change first
    plain = x @ guide.encoder.input_transform[:, :3].double()
    read = torch.corrcoef(torch.cat([plain, x[:, 4:]], 1).T)[:3, 3:].pow(2).sum(1)
    assert (read[:2] > 0.99).all()  # its first two directions are the noise plane
