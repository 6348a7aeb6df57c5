"""The spline transform of the own noise (pyrocrl.splines, AffineSolution's
``noise_transform``) and the settling epochs of a recipe: closed forms, the bound's
invariants, both backends, training, checkpoints and the refusals."""

import numpy as np
import pytest
import torch

from pyrocrl.backends import pyro as pyro_backend
from pyrocrl.data import make_simulator, simulate_splits
from pyrocrl.inference.elbo import PairELBO
from pyrocrl.inference.fit import fit_ilcm, load_ilcm
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.inference.objectives import ILCMObjective
from pyrocrl.inference.recipes import Recipe, get_recipe
from pyrocrl.inference.svi import Trainer
from pyrocrl.models.ilcm import ILCM
from pyrocrl.solution import AffineSolution, warp
from pyrocrl.splines import bins, spline


def _bent(n=2, dim_x=3, hidden=(16, 16)):
    """An ILCM with the spline transform moved well off the identity, and its guide."""
    model = ILCM(dim_x, n, hidden=hidden, noise_transform="spline")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.solution.spline.normal_(0.0, 0.7)
    return model, ILCMGuide(model, hidden=hidden, tie="mean")


# -- the spline -------------------------------------------------------------------------------
def test_spline_is_a_monotone_bijection_with_its_log_slope():
    torch.manual_seed(0)
    theta = torch.randn(3, 3 * 5 - 1, dtype=torch.float64)
    x = torch.linspace(-7, 7, 3001, dtype=torch.float64)[:, None].expand(-1, 3).clone()
    x.requires_grad_(True)
    y, log_slope = spline(pyro_backend, x, theta, bound=4.0)
    slope = torch.autograd.grad(y.sum(), x)[0]
    torch.testing.assert_close(log_slope, slope.log(), atol=1e-9, rtol=0)
    assert (y[1:] > y[:-1]).all()
    back, log_slope_back = spline(pyro_backend, y.detach(), theta, bound=4.0, inverse=True)
    torch.testing.assert_close(back, x.detach(), atol=1e-10, rtol=0)
    torch.testing.assert_close(log_slope_back, log_slope.detach(), atol=1e-8, rtol=0)
    outside = x.detach().abs() > 4.0
    assert torch.equal(y[outside], x[outside]) and (log_slope[outside] == 0).all()
    # continuous at ±B, where the identity takes over
    edge = spline(pyro_backend, torch.tensor([[-4.0, 4.0, 4.0]], dtype=torch.float64), theta, 4.0)
    torch.testing.assert_close(edge[0], torch.tensor([[-4.0, 4.0, 4.0]], dtype=torch.float64))


def test_spline_at_zero_parameters_is_the_identity():
    x = torch.linspace(-9, 9, 101)[:, None].expand(-1, 2)
    y, log_slope = spline(pyro_backend, x, torch.zeros(2, 3 * 8 - 1), bound=8.0)
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)
    assert log_slope.abs().max() < 1e-5


def test_spline_refuses_parameters_of_no_spline():
    with pytest.raises(ValueError, match="3K − 1"):
        bins(torch.zeros(2, 6))


def test_spline_is_the_same_on_both_backends():
    jnp = pytest.importorskip("jax.numpy")
    from pyrocrl.backends import numpyro as numpyro_backend

    theta = np.random.default_rng(0).normal(size=(2, 3 * 6 - 1))
    x = np.random.default_rng(1).normal(scale=3.0, size=(50, 2))
    for inverse in (False, True):
        ours = spline(pyro_backend, torch.as_tensor(x), torch.as_tensor(theta), 5.0, inverse)
        twin = spline(numpyro_backend, jnp.asarray(x), jnp.asarray(theta), 5.0, inverse)
        for a, b in zip(ours, twin, strict=True):
            np.testing.assert_allclose(np.asarray(b), a.numpy(), atol=1e-5)


# -- the solution function and the pair program -----------------------------------------------
def test_solution_reads_the_transformed_own_noise():
    torch.manual_seed(0)
    solution = AffineSolution(3, hidden=(8,), noise_transform="spline")
    with torch.no_grad():
        solution.spline.normal_(0.0, 0.5)
    e = torch.randn(20, 3)
    shift, scale = solution.shift_scale(e)
    warped, _ = warp(solution, e)
    torch.testing.assert_close(solution(e), (warped - shift) / scale)
    assert not torch.allclose(warped, e)
    identity = AffineSolution(3, hidden=(8,))
    assert identity.spline is None and torch.equal(warp(identity, e)[0], e)
    with pytest.raises(ValueError, match="noise_transform"):
        AffineSolution(3, noise_transform="cubic")


def test_intervention_sets_the_value_and_keeps_the_other_noise():
    torch.manual_seed(0)
    model, _ = _bent(n=3, dim_x=4)
    with torch.no_grad():
        out = model.model(size=60)
    for i, t in enumerate(out["target"].tolist()):
        changed = out["noise_tilde"][i] != out["noise"][i]
        assert not changed[torch.arange(3) != t - 1].any()
        if t:
            value = out["value"][i].item()
            assert out["z_tilde"][i, t - 1].item() == pytest.approx(value, abs=1e-4)
    assert (out["target"] > 0).any()


def test_flat_prior_keeps_the_spline_out_of_the_bound():
    """Flat in the intervened noise: the value term is −log q(e~_I), whatever ``g``, so
    neither the spline nor the mechanisms get a gradient from it."""
    torch.manual_seed(1)
    model, guide = _bent()
    x, x_tilde = torch.randn(6, 3), torch.randn(6, 3)
    model_trace, guide_trace = PairELBO().traces(
        model.model, guide.guide, x, x_tilde, intervention_prior=False
    )
    value_kl = guide_trace.nodes["value"]["log_prob"] - model_trace.nodes["value"]["log_prob"]
    enc = guide_trace.nodes["_RETURN"]["value"]
    for h in (1, 2):
        k = h - 1
        noise_tilde = model_trace.nodes["noise_tilde"]["value"][h, :, k]
        expected = torch.distributions.Normal(enc.loc_tilde[:, k], enc.scale_tilde[:, k])
        wanted = expected.log_prob(noise_tilde)
        torch.testing.assert_close(value_kl[h], wanted, atol=1e-4, rtol=1e-4)
    value_kl[1:].sum().backward()
    assert model.solution.spline.grad is None or model.solution.spline.grad.abs().max() < 1e-4


def test_value_density_is_the_change_of_variables():
    """With the prior on, ``q(v) = q(e~_I) · scale_I / g'(e~_I)`` for ``v = (g(e~_I) −
    shift_I) / scale_I``: checked against the derivative of that map by autograd."""
    torch.manual_seed(2)
    model, guide = _bent()
    x, x_tilde = torch.randn(6, 3), torch.randn(6, 3)
    model_trace, guide_trace = PairELBO().traces(model.model, guide.guide, x, x_tilde)
    enc = guide_trace.nodes["_RETURN"]["value"]
    noise = guide_trace.nodes["noise"]["value"]
    for h in (1, 2):
        k = h - 1
        e_tilde = model_trace.nodes["noise_tilde"]["value"][h, :, k].detach().requires_grad_()
        others = noise[h].detach().clone()
        others[:, k] = e_tilde  # shift and scale do not read component k
        shift, scale = model.solution.shift_scale(noise[h].detach())
        v = (warp(model.solution, others)[0][:, k] - shift[:, k]) / scale[:, k]
        (dv,) = torch.autograd.grad(v.sum(), e_tilde)
        normal = torch.distributions.Normal(enc.loc_tilde[:, k], enc.scale_tilde[:, k])
        expected = normal.log_prob(e_tilde) - dv.log()
        got = guide_trace.nodes["value"]["log_prob"][h]
        torch.testing.assert_close(got.detach(), expected.detach(), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(guide_trace.nodes["value"]["value"][h].detach(), v.detach())


def test_graph_discovery_rebuilds_the_noise_through_the_spline():
    """ILCM-H holds earlier variables at their causal values by rebuilding their noise,
    ``e_a = g_a⁻¹(shift_a + scale_a z_a)``: with nothing shuffled it gives ``z`` back."""
    from pyrocrl.inference.graph import _mechanism

    torch.manual_seed(5)
    solution = AffineSolution(3, hidden=(8,), noise_transform="spline")
    with torch.no_grad():
        solution.spline.normal_(0.0, 0.7)
    e = torch.randn(40, 3)
    z = solution(e).detach()
    for position in range(3):
        again = _mechanism(solution, z, e, [2, 0, 1], position)
        torch.testing.assert_close(again, z[:, [2, 0, 1][position]], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("max_targets", [1, 2])
def test_flat_prior_keeps_the_spline_out_of_the_bound_for_sets(max_targets):
    """Interventions on sets: the same invariant under the flat prior, every member's
    new noise scored by ``q`` alone."""
    torch.manual_seed(6)
    model = ILCM(3, 3, hidden=(16, 16), noise_transform="spline", max_targets=max_targets)
    with torch.no_grad():
        model.solution.spline.normal_(0.0, 0.7)
    guide = ILCMGuide(model, hidden=(16, 16), tie="mean")
    x, x_tilde = torch.randn(6, 3), torch.randn(6, 3)
    model_trace, guide_trace = PairELBO().traces(
        model.model, guide.guide, x, x_tilde, intervention_prior=False
    )
    value_kl = guide_trace.nodes["value"]["log_prob"] - model_trace.nodes["value"]["log_prob"]
    enc = guide_trace.nodes["_RETURN"]["value"]
    noise_tilde = model_trace.nodes["noise_tilde"]["value"]
    noise = guide_trace.nodes["noise"]["value"]
    normal = torch.distributions.Normal(enc.loc_tilde, enc.scale_tilde)
    changed = noise_tilde != noise  # the intervened members, per hypothesis
    wanted = torch.where(changed, normal.log_prob(noise_tilde), 0.0).sum(-1)
    torch.testing.assert_close(value_kl, wanted, atol=1e-3, rtol=1e-3)  # float32 round trips


def test_twin_of_a_spline_solution_agrees():
    pytest.importorskip("jax")
    import jax.numpy as jnp

    from pyrocrl.models.ilcm_jax import NumPyroILCM

    torch.manual_seed(3)
    model, _ = _bent(n=3, dim_x=4)
    twin = NumPyroILCM.from_torch(model)
    e = torch.randn(30, 3)
    np.testing.assert_allclose(
        np.asarray(twin.solution(jnp.asarray(e.numpy()))),
        model.solution(e).detach().numpy(),
        atol=1e-4,
    )


# -- settling ---------------------------------------------------------------------------------
def test_recipe_settles_at_the_end_with_a_falling_rate():
    recipe = get_recipe("fast-settle")
    assert recipe.at(3.4).name == "deterministic" and recipe.at(3.6).name == "settle"
    assert recipe.at(3.5).lr == pytest.approx(recipe.settle_lr)
    assert recipe.at(4.0).lr == pytest.approx(recipe.settle_lr / 2)
    assert recipe.at(4.5).lr == pytest.approx(0.0, abs=1e-12)
    assert recipe.scaled(2).settle_epochs == 2.0
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    with pytest.raises(ValueError, match="settle_epochs"):
        recipe.replace(settle_epochs=4.5)
    with pytest.raises(ValueError, match="intervention prior"):
        recipe.replace(settle_epochs=3.5)


def test_settling_moves_the_mechanisms_only(short_recipe):
    torch.manual_seed(4)
    data = torch.randn(256, 2, 3)
    model, guide = _bent()
    recipe = short_recipe.replace(epochs=1.4, settle_epochs=0.5, precondition=False)
    trainer = Trainer(model, guide, ILCMObjective(model, guide), recipe, progress=False)
    frozen = {
        name: p.detach().clone()
        for name, p in [*model.named_parameters(), *guide.named_parameters()]
        if not name.startswith("solution.")
    }
    before = [p.detach().clone() for p in model.solution.parameters()]
    phase = recipe.at(1.0)
    assert phase.settle
    trainer._step(data[:64, 0], data[:64, 1], phase, 0)
    for name, p in [*model.named_parameters(), *guide.named_parameters()]:
        if name in frozen:
            assert torch.equal(p, frozen[name]), name
    assert any(
        not torch.equal(a, b) for a, b in zip(before, model.solution.parameters(), strict=True)
    )


# -- fitting ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy():
    return simulate_splits(make_simulator("toy2d"), 0, {"train": 1600, "test": 400})


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_fit_with_the_spline_checkpoints_and_reloads(toy, tmp_path, short_recipe, backend):
    if backend == "jax":
        pytest.importorskip("jax")
    recipe = short_recipe.replace(epochs=2.5, settle_epochs=0.5)
    model, _, report = fit_ilcm(
        toy["train"],
        2,
        recipe=recipe,
        hidden=(16, 16),
        noise_transform="spline",
        backend=backend,
        output=tmp_path,
        progress=False,
    )
    assert model.config["noise_transform"] == "spline"
    assert model.solution.spline.abs().max() > 0  # trained, off the identity
    loaded, _ = load_ilcm(tmp_path / "checkpoint.pt")
    torch.testing.assert_close(loaded.solution.spline, model.solution.spline)
    e = torch.randn(10, 2)
    torch.testing.assert_close(loaded.solution(e), model.solution(e))
    assert [h["phase"] for h in report.history][-1] == "settle"


def test_fit_refuses_a_noise_transform_it_cannot_build(toy):
    with pytest.raises(ValueError, match="noise_transform must be one of"):
        fit_ilcm(toy["train"], 2, noise_transform="cubic")
    with pytest.raises(ValueError, match="built-in ILCM"):
        fit_ilcm(toy["train"], 2, model="dvae", noise_transform="spline")
    with pytest.raises(ValueError, match="built-in solution function only"):
        ILCM(3, 2, solution=AffineSolution(2), noise_transform="spline")
