"""The JAX backend: networks, programs and bound agree with the Pyro backend; training works,
resumes exactly and hands its result back to Pyro."""

import numpy as np
import pytest
import torch
from pyro.poutine.messenger import Messenger

jax = pytest.importorskip("jax")
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from numpyro import handlers  # noqa: E402

from pyrocrl import nets_jax  # noqa: E402
from pyrocrl.data import make_simulator, simulate_splits  # noqa: E402
from pyrocrl.inference.elbo import PairELBO  # noqa: E402
from pyrocrl.inference.elbo_jax import Schedule, pair_terms  # noqa: E402
from pyrocrl.inference.fit import fit_ilcm, load_ilcm  # noqa: E402
from pyrocrl.inference.guides import ILCMGuide  # noqa: E402
from pyrocrl.inference.guides_jax import NumPyroILCMGuide  # noqa: E402
from pyrocrl.inference.queries import predict_targets  # noqa: E402
from pyrocrl.inference.recipes import Recipe, get_recipe  # noqa: E402
from pyrocrl.inference.svi import TrainingError  # noqa: E402
from pyrocrl.inference.svi_jax import NETWORKS, JAXTrainer  # noqa: E402
from pyrocrl.metrics import intervention_accuracy  # noqa: E402
from pyrocrl.models.elcm import ELCM  # noqa: E402
from pyrocrl.models.ilcm import ILCM  # noqa: E402
from pyrocrl.models.ilcm_jax import NumPyroILCM  # noqa: E402
from pyrocrl.nets import GaussianEncoder  # noqa: E402

# float32 on both sides; terms of size ~1e5 agree to about 1e-6 relative
RTOL, ATOL = 1e-5, 1e-3


@pytest.fixture(scope="module", autouse=True)
def _compilation_cache(tmp_path_factory):
    """Compile each program once for the module (trainers in several tests share it)."""
    previous = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("xla")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    yield
    jax.config.update("jax_compilation_cache_dir", previous)


class _Fix(Messenger):
    """Give Pyro sample sites fixed values while keeping them latent."""

    def __init__(self, data):
        super().__init__()
        self.data = data

    def _pyro_sample(self, msg):
        if msg["name"] in self.data:
            msg["value"] = self.data[msg["name"]]
            msg["done"] = True


def _twins(n=3, dim_x=4, hidden=(16, 16), kind=ILCM):
    model = kind(dim_x, n, hidden=hidden)
    guide = ILCMGuide(model, hidden=hidden, tie="mean")
    with torch.no_grad():  # move every part off its initialization
        for p in [*model.parameters(), *guide.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
        guide.encoder.input_transform.copy_(torch.randn(dim_x, dim_x))
    twin = NumPyroILCM.from_torch(model)
    return model, guide, twin, NumPyroILCMGuide.from_torch(guide, twin)


def _params(twin, guide_twin):
    owners = {"model": twin, "guide": guide_twin}
    return {
        f"{attribute}$params": eqx.partition(
            getattr(owners[owner], attribute), eqx.is_inexact_array
        )[0]
        for owner, attribute in NETWORKS
    }


def _schedule(epoch: float, **changes) -> Schedule:
    rows = Schedule.from_phases([get_recipe("fast").at(epoch)])
    return Schedule(*(field[0] for field in rows))._replace(
        **{k: jnp.asarray(v) for k, v in changes.items()}
    )


def _np(x):
    return jnp.asarray(x.detach().numpy())


def test_schedule_carries_the_decayed_learning_rate():
    rows = Schedule.from_phases([get_recipe("fast-anneal").at(e) for e in (1.0, 3.125, 3.5)])
    assert np.allclose(rows.lr, [1e-3, 1e-4, 1e-5], rtol=1e-5)


def test_networks_convert_both_ways():
    torch.manual_seed(1)
    encoder = GaussianEncoder(5, 3, (8, 8))
    with torch.no_grad():
        encoder.skip.weight.normal_()
        encoder.input_mean.normal_()
    shapes = nets_jax.build(nets_jax.GaussianEncoder, 5, 3, (8, 8), key=None)
    twin = nets_jax.from_state_dict(shapes, encoder.state_dict())
    x = torch.randn(7, 2, 5)
    loc, scale = encoder(x)
    twin_loc, twin_scale = twin(_np(x))
    np.testing.assert_allclose(twin_loc, loc.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(twin_scale, scale.detach().numpy(), rtol=1e-5, atol=1e-7)
    back = nets_jax.state_dict(twin)
    assert set(back) == set(encoder.state_dict())
    for name, tensor in encoder.state_dict().items():
        np.testing.assert_array_equal(back[name], tensor.numpy())
    with pytest.raises(KeyError, match=r"skip\.weight"):
        nets_jax.from_state_dict(shapes, {k: v for k, v in encoder.state_dict().items()
                                          if k != "skip.weight"})  # fmt: skip
    with pytest.raises(ValueError, match="shape"):
        nets_jax.from_state_dict(
            nets_jax.build(nets_jax.GaussianEncoder, 4, 3, (8, 8), key=None), encoder.state_dict()
        )


def test_model_log_density_matches_pyro():
    """Same parameters and latent values: the same joint density, site by site."""
    import pyro

    model, _, twin, _ = _twins()
    n, size = 3, 6
    values = {
        "noise": torch.randn(size, n),
        "target": torch.tensor([0, 1, 2, 3, 1, 2]),
        "value": torch.randn(size),
    }
    x, x_tilde = torch.randn(size, 4), torch.randn(size, 4)
    trace = pyro.poutine.trace(_Fix(values)(model.model)).get_trace(x, x_tilde)
    trace.compute_log_prob()
    twin_trace = handlers.trace(
        handlers.substitute(twin.model, data={k: _np(v) for k, v in values.items()})
    ).get_trace(_np(x), _np(x_tilde))
    for name in ("noise", "target", "value", "x", "x_tilde"):
        site = twin_trace[name]
        np.testing.assert_allclose(
            site["fn"].log_prob(site["value"]), trace.nodes[name]["log_prob"].detach().numpy(),
            rtol=RTOL, atol=1e-4, err_msg=name,
        )  # fmt: skip
    z_tilde = trace.nodes["z_tilde"]["value"].detach().numpy()
    np.testing.assert_allclose(twin_trace["z_tilde"]["value"], z_tilde, atol=1e-5)


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("intervention_prior", [False, True])
@pytest.mark.parametrize("kind", [ILCM, ELCM])
def test_elbo_terms_match_pyro(deterministic, intervention_prior, kind):
    model, guide, twin, guide_twin = _twins(kind=kind)
    n, size = 3, 5
    x, x_tilde = torch.randn(size, 4), torch.randn(size, 4)
    noise, value = torch.randn(n + 1, size, n), torch.randn(n + 1, size)
    fixed = {"noise": noise, "value": value}
    if deterministic:  # the Pyro guide keeps the most probable hypothesis only
        best = guide.intervention_probs(x, x_tilde).argmax(-1)
        fixed = {k: v[best, torch.arange(size)] for k, v in fixed.items()}
    options = {"deterministic": deterministic, "intervention_prior": intervention_prior}
    terms = PairELBO().terms(model.model, _Fix(fixed)(guide.guide), x, x_tilde, **options)
    schedule = _schedule(3.0 if deterministic else 2.0, beta=1.0, offset=1e-4,
                         posterior_power=1.0, deterministic=deterministic,
                         intervention_prior=intervention_prior)  # fmt: skip
    terms_fn = jax.jit(
        lambda *args: pair_terms(twin, guide_twin, *args, deterministic=deterministic)[0]
    )
    twin_terms = terms_fn(_params(twin, guide_twin), _np(x), _np(x_tilde),
                          jax.random.PRNGKey(0), schedule,
                          {k: _np(v) for k, v in fixed.items()})  # fmt: skip
    assert set(terms) <= set(twin_terms)
    for name, value in terms.items():
        np.testing.assert_allclose(twin_terms[name], value.detach().numpy(), rtol=RTOL,
                                   atol=ATOL, err_msg=name)  # fmt: skip


@pytest.mark.parametrize("kind", [ILCM, ELCM])
def test_elbo_gradients_match_pyro(kind):
    model, guide, twin, guide_twin = _twins(hidden=(8,), kind=kind)
    size = 4
    x, x_tilde = torch.randn(size, 4), torch.randn(size, 4)
    noise, value = torch.randn(4, size, 3), torch.randn(4, size)
    PairELBO().differentiable_loss(
        model.model, _Fix({"noise": noise, "value": value})(guide.guide), x, x_tilde
    ).backward()
    params = _params(twin, guide_twin)
    grads = jax.jit(jax.grad(lambda p: -pair_terms(
        twin, guide_twin, p, _np(x), _np(x_tilde), jax.random.PRNGKey(0),
        _schedule(2.0, beta=1.0, offset=1e-4, posterior_power=1.0),
        {"noise": _np(noise), "value": _np(value)},
    )[0]["elbo"].sum()))(params)  # fmt: skip
    twin.likelihood = eqx.combine(grads["likelihood$params"], twin.likelihood)
    twin.solution = eqx.combine(grads["solution$params"], twin.solution)
    guide_twin.encoder = eqx.combine(grads["encoder$params"], guide_twin.encoder)
    for role, module, names in (("model", model, twin.state_dict()),
                                ("guide", guide, guide_twin.state_dict())):  # fmt: skip
        for name, p in module.named_parameters():
            if name.startswith(("likelihood.", "solution.", "encoder.")) and name in names:
                scale = p.grad.abs().max().item() + 1.0
                np.testing.assert_allclose(names[name] / scale, p.grad.numpy() / scale,
                                           atol=1e-4, err_msg=f"{role}.{name}")  # fmt: skip


def test_only_built_in_parts_have_twins():
    with pytest.raises(ValueError, match="built-in parts"):
        NumPyroILCM.from_torch(ILCM(3, 2, likelihood="laplace"))
    with pytest.raises(ValueError, match="heuristic"):
        NumPyroILCMGuide.from_torch(
            ILCMGuide(ILCM(3, 2), intervention_encoder="mlp"), NumPyroILCM(3, 2, key=None)
        )


SHORT = Recipe(name="short", epochs=2.0, lr=3e-3, pretrain_epochs=0.2, beta_ramp=(0.2, 0.6),
               intervention_prior_epoch=0.6, deterministic_epoch=1.6, sparsity_weight=10.0,
               balance_weight=10.0, sparsity_decay=(0.6, 1.0), posterior_power=0.1,
               posterior_power_ramp=(0.2, 0.8), offset=(0.025, 1e-4), offset_decay=(0.2, 0.6),
               consistency_weight=0.01, norm_weight=0.01, norm_decay=(0.2, 0.6),
               precondition=True)  # fmt: skip


@pytest.fixture(scope="module")
def toy():
    lcm = make_simulator("scaling", 2, 3)
    return simulate_splits(lcm, 5, {"train": 3200, "test": 1000})


def test_training_recovers_targets_and_lands_in_pyro(toy, tmp_path):
    _, _, report = fit_ilcm(
        toy["train"], 2, test=toy["test"], recipe=SHORT, hidden=(16, 16), backend="jax",
        output=tmp_path, progress=False, dci_pairs=(1000, 1000),
    )  # fmt: skip
    assert report.backend == "jax" and "(JAX backend)" in report.format()
    assert report.steps == 100 and report.metrics["intervention_accuracy"] > 0.6  # chance: 1/3
    _, loaded_guide = load_ilcm(tmp_path / "checkpoint.pt")
    x = torch.as_tensor(toy["test"]["x"].values)
    targets = predict_targets(loaded_guide, x[:, 0], x[:, 1]).numpy()
    accuracy = intervention_accuracy(targets, toy["test"]["target"].values, 2)
    assert accuracy == pytest.approx(report.metrics["intervention_accuracy"])
    assert (tmp_path / "checkpoint.jax.npz").exists()
    with pytest.raises(ValueError, match="validate_every"):
        fit_ilcm(toy["train"], 2, backend="jax", validate_every=10)


def test_resume_is_exact(toy, tmp_path):
    torch.manual_seed(0)
    data = toy["train"]["x"].values[:1280]
    model, guide = ILCM(2, 2, hidden=(8,)), None
    guide = ILCMGuide(model, hidden=(8,))
    recipe = SHORT.replace(precondition=False)

    def trainer(path=None):
        twin = NumPyroILCM.from_torch(model)
        return JAXTrainer(twin, NumPyroILCMGuide.from_torch(guide, twin), recipe,
                          checkpoint=path, checkpoint_every=10, chunk=5, log_every=5,
                          progress=False)  # fmt: skip

    whole = trainer()
    whole.fit(data)
    first = trainer(tmp_path / "run.npz")
    first.fit(data, until_epoch=0.5)  # stops after a checkpoint at step 10
    second = trainer(tmp_path / "run.npz")
    result = second.fit(data)
    assert result.steps == whole._progress[0] == 40
    for name, value in whole.model.state_dict().items():
        np.testing.assert_array_equal(second.model.state_dict()[name], value, err_msg=name)
    assert [h["loss"] for h in result.history] == [h["loss"] for h in whole._progress[1]]
    (tmp_path / "bad.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="cannot read checkpoint"):
        trainer(tmp_path / "bad.npz").fit(data)


def test_queries_match_pyro():
    from pyrocrl.inference import queries, queries_jax

    model, guide, twin, guide_twin = _twins()
    x = torch.randn(12, 4)
    values = torch.linspace(-1, 1, 12)
    ours = queries_jax.counterfactual(twin, guide_twin, x.numpy(), 2, values.numpy())
    pyros = queries.counterfactual(model, x, {2: values}, guide=guide)
    for name in ("x_tilde", "z", "z_tilde", "noise", "noise_tilde"):
        np.testing.assert_allclose(ours[name], pyros[name].numpy(), atol=1e-5, err_msg=name)
    np.testing.assert_allclose(ours["z_tilde"][:, 1], values.numpy(), atol=1e-5)
    posterior = queries_jax.intervention_posterior(guide_twin, x.numpy(), x.numpy() + 0.1)
    expected = queries.intervention_posterior(guide, x, x + 0.1).numpy()
    np.testing.assert_allclose(posterior, expected, atol=1e-6)
    encoded = queries_jax.encode(guide_twin, x.numpy())
    np.testing.assert_allclose(encoded["z"], queries.encode(guide, x)["z"].numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="cannot intervene on z4"):
        queries_jax.counterfactual(twin, guide_twin, x.numpy(), 4, 0.0)
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        queries_jax.encode(guide_twin, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        queries_jax.encode(guide_twin, np.full((3, 4), np.nan))
