"""Baselines: the dVAE has no causal structure between its latent variables; the β-VAE
does not read the pairing at all.

The β-VAE's differences from the ILCM are tested here, once per concern: how it says it is
trained and scored (``infers_interventions``, ``programs``, ``training_recipe``), its
scores, the queries it refuses, its posterior export, and a fit.
"""

import json

import numpy as np
import pytest
import torch

from pyrocrl.data import make_simulator, simulate_splits
from pyrocrl.inference.elbo import PairELBO
from pyrocrl.inference.evaluate import elbo_per_pair, evaluate
from pyrocrl.inference.fit import fit_ilcm, load_ilcm
from pyrocrl.inference.graph import METHODS, NO_GRAPH, default_method, learn_graph
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.inference.queries import intervene, intervention_posterior
from pyrocrl.inference.recipes import Recipe, get_recipe
from pyrocrl.models.baselines import DVAE, BetaVAE
from pyrocrl.models.ilcm import ILCM


def test_interventions_change_only_the_target():
    model = DVAE(3, 3, hidden=(8,))
    out = intervene(model, {2: 0.3}, 100, seed=0)
    assert torch.allclose(out["z_tilde"][:, 1], torch.tensor(0.3), atol=1e-5)
    for j in (0, 2):
        assert torch.equal(out["z_tilde"][:, j], out["z"][:, j])


def test_mechanisms_ignore_the_other_noise():
    model = DVAE(3, 3, hidden=(8,))
    e = torch.randn(20, 3)
    moved = e.clone()
    moved[:, 0] += 1.0
    shift, scale = model.solution.shift_scale(e)
    moved_shift, moved_scale = model.solution.shift_scale(moved)
    assert torch.equal(shift, moved_shift) and torch.equal(scale, moved_scale)


@pytest.fixture(scope="module")
def tiny_splits():
    return simulate_splits(make_simulator("scaling", 2, 3), 5, {"train": 600, "test": 200})


def test_fit_and_load(tmp_path, tiny_splits):
    short = Recipe(name="short", epochs=0.5, pretrain_epochs=0.1, beta_ramp=(0.1, 0.2))
    model, _, report = fit_ilcm(
        tiny_splits["train"],
        2,
        test=tiny_splits["test"],
        recipe=short,
        model="dvae",
        hidden=(8, 8),
        output=tmp_path,
        progress=False,
        dci_pairs=(200, 200),
    )
    assert report.format().startswith("DVAE fitted")
    assert "intervention_accuracy" in report.metrics  # a dVAE infers interventions
    loaded, _ = load_ilcm(tmp_path / "checkpoint.pt")
    assert isinstance(loaded, DVAE)
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_jax_twin_has_the_same_density():
    pytest.importorskip("jax")
    import jax.numpy as jnp
    import pyro
    from numpyro import handlers

    from pyrocrl.models.ilcm_jax import NumPyroILCM

    model = DVAE(4, 3, hidden=(8, 8))
    twin = NumPyroILCM.from_torch(model)
    latents = {"noise": torch.randn(6, 3), "target": torch.arange(6) % 4, "value": torch.randn(6)}
    x, x_tilde = torch.randn(6, 4), torch.randn(6, 4)
    trace = pyro.poutine.trace(pyro.condition(model.model, data=latents)).get_trace(x, x_tilde)
    trace.compute_log_prob()
    twin_trace = handlers.trace(
        handlers.substitute(
            twin.model, data={k: jnp.asarray(v.numpy()) for k, v in latents.items()}
        )
    ).get_trace(jnp.asarray(x.numpy()), jnp.asarray(x_tilde.numpy()))
    for site in ("value", "x_tilde"):
        ours = twin_trace[site]["fn"].log_prob(twin_trace[site]["value"])
        expected = trace.nodes[site]["log_prob"].detach().numpy()
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4, err_msg=site)


# --- the β-VAE, once per concern -----------------------------------------------------------


def _beta_vae(dim_x: int = 2, n: int = 2) -> tuple[BetaVAE, ILCMGuide]:
    model = BetaVAE(dim_x, n, hidden=(8,))
    return model, ILCMGuide(model, hidden=(8,))


def test_beta_vae_says_it_infers_no_interventions_and_uses_its_independent_programs():
    model, guide = _beta_vae()
    assert not model.infers_interventions
    assert model.programs(guide) == (model.independent_model, guide.independent_guide)
    ilcm = ILCM(2, 2, hidden=(8,))
    ilcm_guide = ILCMGuide(ilcm, hidden=(8,))
    assert ilcm.infers_interventions and DVAE.infers_interventions
    assert ilcm.programs(ilcm_guide) == (ilcm.model, ilcm_guide.guide)


def test_beta_vae_recipe_is_the_vae_objective_throughout():
    fast = get_recipe("fast")
    recipe = BetaVAE(3, 2, hidden=(8,)).training_recipe(fast)
    assert recipe.independent_views and not fast.independent_views
    assert fast.precondition and not recipe.precondition  # preconditioning reads the pairs
    assert BetaVAE(3, 2, hidden=(8,)).training_recipe(recipe) is recipe
    assert ILCM(3, 2, hidden=(8,)).training_recipe(fast) is fast
    for epoch in np.linspace(0, recipe.epochs, 15):
        causal, phase = fast.at(epoch), recipe.at(epoch)
        assert phase.pretrain
        assert phase.beta == causal.beta  # the β schedule is kept
        assert phase.consistency_weight == causal.consistency_weight
        assert phase.entropy_weight == phase.sparsity_weight == phase.balance_weight == 0


def test_beta_vae_is_scored_by_its_independent_programs(tiny_splits):
    model, guide = _beta_vae()
    test = tiny_splits["test"]
    x = torch.as_tensor(test["x"].values)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(1)
        terms = PairELBO().terms(
            model.independent_model, guide.independent_guide, x[:, 0], x[:, 1]
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        score = elbo_per_pair(model, guide, x[:, 0], x[:, 1])
    assert score == pytest.approx(float(terms["elbo"].mean()), rel=1e-6)
    metrics = evaluate(model, guide, test, dci_pairs=100, dci_test_pairs=100)
    assert "intervention_accuracy" not in metrics  # though the test set has true targets
    assert {"elbo", "dci_disentanglement"} <= set(metrics) and "target" in test


def test_beta_vae_refuses_intervention_and_graph_queries(tiny_splits):
    model, guide = _beta_vae()
    x = torch.as_tensor(tiny_splits["test"]["x"].values[:20])
    with pytest.raises(ValueError, match="infers no intervention"):
        intervention_posterior(guide, x[:, 0], x[:, 1])
    for method in METHODS:
        with pytest.raises(ValueError, match="no causal graph"):
            learn_graph(model, guide, x[:, 0], x[:, 1], method=method)
    assert default_method(model) == NO_GRAPH


def test_beta_vae_export_has_no_intervention_posterior(tiny_splits):
    pytest.importorskip("arviz_stats")
    from pyrocrl.inference import diagnostics

    model, guide = _beta_vae()
    tree = diagnostics.to_datatree(model, guide, tiny_splits["test"], num_samples=5)
    assert "intervention" not in tree.children
    assert "target" not in tree["posterior"]
    with pytest.raises(ValueError, match="no group 'intervention'"):
        diagnostics.calibration(tree)


SHORT = Recipe(
    name="short",
    epochs=0.5,
    pretrain_epochs=0.1,
    beta_ramp=(0.1, 0.2),
    sparsity_weight=1.0,
    balance_weight=1.0,
    precondition=True,
)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_beta_vae_fits_without_the_pair_structure(tmp_path, tiny_splits, backend):
    if backend == "jax":
        pytest.importorskip("jax")
    torch.manual_seed(0)
    model, guide, report = fit_ilcm(
        tiny_splits["train"],
        2,
        test=tiny_splits["test"],
        recipe=SHORT,
        model="betavae",
        hidden=(8, 8),
        output=tmp_path,
        progress=False,
        dci_pairs=(200, 200),
        backend=backend,
    )
    torch.manual_seed(0)  # the initial model and guide, as fit_ilcm built them
    fresh = BetaVAE(model.dim_x, 2, hidden=(8, 8))
    fresh_guide = ILCMGuide(fresh, hidden=(8, 8))
    # what only the pair program reads is never trained: the solution function and the
    # intervention encoder; the decoder and encoder are
    untrained = [
        (model.solution, fresh.solution),
        (guide.intervention_encoder, fresh_guide.intervention_encoder),
    ]
    for trained, initial in untrained:
        for name, value in initial.state_dict().items():
            assert torch.equal(trained.state_dict()[name], value), name
    # nor is the encoder preconditioned from how the pairs change
    assert torch.equal(guide.encoder.input_transform, fresh_guide.encoder.input_transform)
    decoder = zip(model.likelihood.parameters(), fresh.likelihood.parameters(), strict=True)
    assert not all(torch.equal(a, b) for a, b in decoder)
    assert report.format().startswith("BetaVAE fitted")
    assert "intervention_accuracy" not in report.metrics
    assert 0 <= report.metrics["dci_disentanglement"] <= 1
    assert np.isfinite(report.metrics["elbo"])
    history = json.loads((tmp_path / "results.json").read_text())["history"]
    assert {h["phase"] for h in history} == {"pretrain"}
    assert isinstance(load_ilcm(tmp_path / "checkpoint.pt")[0], BetaVAE)


def test_a_model_with_fewer_variables_than_the_truth_is_scored_without_accuracy(tiny_splits):
    # the truth has 2 variables; a model of 1 cannot be matched one to one (its DCI can)
    test = tiny_splits["test"]
    model = ILCM(test.sizes["feature"], 1, hidden=(8,))
    metrics = evaluate(model, ILCMGuide(model, hidden=(8,)), test, dci_pairs=100)
    assert "intervention_accuracy" not in metrics and test["target"].max() == 2
    assert 0 <= metrics["dci_disentanglement"] <= 1
