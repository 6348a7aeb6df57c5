"""The pair programs, their bound and their objective on both backends: one suite, run on
Pyro and on NumPyro (the twins of the same Pyro modules), against closed forms computed
from the PyTorch networks and against each other; JAX training, resume and queries."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from pyro.poutine.messenger import Messenger

jax = pytest.importorskip("jax")
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from numpyro import handlers  # noqa: E402
from scipy import stats  # noqa: E402

from pyrocrl import nets_jax  # noqa: E402
from pyrocrl.data import make_simulator, simulate_splits  # noqa: E402
from pyrocrl.errors import CheckpointError, TrainingError  # noqa: E402
from pyrocrl.inference.elbo import PairELBO  # noqa: E402
from pyrocrl.inference.fit import fit_ilcm, load_ilcm  # noqa: E402
from pyrocrl.inference.guides import Encoding, ILCMGuide  # noqa: E402
from pyrocrl.inference.guides_jax import NumPyroILCMGuide  # noqa: E402
from pyrocrl.inference.objectives import (  # noqa: E402
    change_balance,
    change_sparsity,
    pair_objective,
    regularizers,
)
from pyrocrl.inference.queries import predict_targets  # noqa: E402
from pyrocrl.inference.recipes import get_recipe  # noqa: E402
from pyrocrl.inference.svi_jax import NETWORKS, JAXTrainer, Schedule, ilcm_loss  # noqa: E402
from pyrocrl.io import load_checkpoint, save_checkpoint  # noqa: E402
from pyrocrl.metrics import intervention_accuracy  # noqa: E402
from pyrocrl.models.baselines import BetaVAE  # noqa: E402
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


class Backend:
    """One backend as the tests see it: the programs of Pyro modules on it, arrays in and
    out, and a seeded context for its random draws."""

    def __init__(self, name: str) -> None:
        self.name = name

    def programs(self, model, guide):
        if self.name == "pyro":
            return model, guide
        twin = NumPyroILCM.from_torch(model)
        return twin, NumPyroILCMGuide.from_torch(guide, twin)

    def array(self, value):
        if self.name == "pyro" or not hasattr(value, "detach"):
            return value
        return jnp.asarray(value.detach().numpy())

    def fix(self, program, values):
        """``program`` with fixed values at latent sites."""
        if self.name == "pyro":
            return _Fix(values)(program)
        return handlers.substitute(program, data={k: self.array(v) for k, v in values.items()})

    def seeded(self):
        if self.name == "pyro":
            return torch.random.fork_rng(devices=[])
        return handlers.seed(rng_seed=0)


def _np(value) -> np.ndarray:
    return value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)


@pytest.fixture(params=["pyro", "numpyro"])
def backend(request) -> Backend:
    return Backend(request.param)


def _modules(n=3, dim_x=4, hidden=(16, 16), kind=ILCM):
    model = kind(dim_x, n, hidden=hidden)
    guide = ILCMGuide(model, hidden=hidden, tie="mean")
    with torch.no_grad():  # move every part off its initialization
        for p in [*model.parameters(), *guide.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
        guide.encoder.input_transform.copy_(torch.randn(dim_x, dim_x))
        model.features.loc.copy_(3 * torch.randn(dim_x))  # observations in other units
        model.features.scale.copy_(0.5 + 2 * torch.rand(dim_x))
    return model, guide


def _standardized(model, x):
    """``(u, log|du/dx|)`` of observations under the model's feature transform, by hand."""
    loc, scale = model.features.loc.numpy(), model.features.scale.numpy()
    return (_np(x) - loc) / scale, -np.log(scale).sum()


def _traces(backend, model, guide, x, x_tilde, **options):
    with backend.seeded():
        return PairELBO().traces(
            model.model, guide.guide, backend.array(x), backend.array(x_tilde), **options
        )


def _nodes(trace):
    return trace.nodes if hasattr(trace, "nodes") else trace


def test_both_backends_implement_the_interface():
    from pyrocrl.backends import BACKENDS, INTERFACE, get_backend

    for name in BACKENDS:
        module = get_backend(name)
        assert module.name == name and list(module.__all__) == list(INTERFACE)
        assert [n for n in INTERFACE if not hasattr(module, n)] == []
    with pytest.raises(ValueError, match="backend must be one of"):
        get_backend("tensorflow")


# -- the pair program ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [ILCM, ELCM])
def test_sampled_pairs_change_the_intervened_variable_only(backend, kind):
    torch.manual_seed(0)
    model, _ = backend.programs(*_modules(kind=kind))
    with backend.seeded():
        out = {k: _np(v) for k, v in model.model(size=40).items()}
    assert out["noise"].shape == out["z"].shape == out["z_tilde"].shape == (40, 3)
    assert out["target"].shape == out["value"].shape == (40,)
    assert out["x"].shape == out["x_tilde"].shape == (40, 4)
    for i, t in enumerate(out["target"]):
        changed = out["noise_tilde"][i] != out["noise"][i]
        assert not changed[np.arange(3) != t - 1].any()
        if t:
            assert out["z_tilde"][i, t - 1] == pytest.approx(out["value"][i], abs=1e-4)


def test_site_log_densities_are_the_closed_forms(backend):
    """Fixed latents: each site's density from the PyTorch networks evaluated by hand."""
    torch.manual_seed(0)
    modules = _modules()
    model, _ = backend.programs(*modules)
    pyro_model = modules[0]
    n, size = 3, 6
    values = {
        "noise": torch.randn(size, n),
        "target": torch.tensor([0, 1, 2, 3, 1, 2]),
        "value": torch.randn(size),
    }
    x, x_tilde = torch.randn(size, 4), torch.randn(size, 4)
    for prior in (True, False):
        with backend.seeded():
            program = backend.fix(model.model, values)
            args = (backend.array(x), backend.array(x_tilde))
            trace = model.backend.trace(program, *args, intervention_prior=prior)
        model.backend.log_probs(trace)
        trace = _nodes(trace)
        e, t, v = (_np(values[k]) for k in ("noise", "target", "value"))
        shift, scale = (_np(a) for a in pyro_model.solution.shift_scale(values["noise"]))
        k = np.clip(t - 1, 0, n - 1)
        rows = np.arange(size)
        value_density = stats.norm.logpdf(v) if prior else np.log(scale[rows, k])
        e_tilde = e.copy()
        e_tilde[rows[t > 0], k[t > 0]] = (shift + scale * v[:, None])[rows, k][t > 0]
        (u, jacobian), (u_tilde, _) = (_standardized(pyro_model, a) for a in (x, x_tilde))
        with torch.no_grad():  # the density of x is that of u = (x - loc) / scale, rescaled
            log_x = pyro_model.likelihood(values["noise"]).log_prob(torch.as_tensor(u))
            log_x_tilde = pyro_model.likelihood(torch.as_tensor(e_tilde))
            log_x_tilde = log_x_tilde.log_prob(torch.as_tensor(u_tilde))
        expected = {
            "noise": stats.norm.logpdf(e).sum(-1),
            "target": np.full(size, math.log(1 / (n + 1))),
            "value": np.where(t > 0, value_density, 0.0),
            "x": log_x.numpy() + jacobian,
            "x_tilde": log_x_tilde.numpy() + jacobian,
        }
        for name, density in expected.items():
            np.testing.assert_allclose(
                _np(trace[name]["log_prob"]),
                density,
                rtol=1e-5,
                atol=1e-4,
                err_msg=f"{name}, prior={prior}",
            )
        np.testing.assert_allclose(_np(trace["noise_tilde"]["value"]), e_tilde, atol=1e-5)


# -- the bound ----------------------------------------------------------------------------------
def test_elbo_is_the_hand_computed_sum_over_hypotheses(backend):
    torch.manual_seed(1)
    modules = _modules(n=2, dim_x=3)
    model, guide = backend.programs(*modules)
    pyro_model = modules[0]
    x, x_tilde = torch.randn(5, 3), torch.randn(5, 3)
    model_trace, guide_trace = _traces(backend, model, guide, x, x_tilde)
    elbo = _np(PairELBO().terms_from_traces(model_trace, guide_trace, model.backend)["elbo"])
    nodes = _nodes(guide_trace)
    enc = nodes["_RETURN"]["value"]
    loc, scale, loc_t, scale_t, probs = (_np(a) for a in enc)
    noise, value = _np(nodes["noise"]["value"]), _np(nodes["value"]["value"])
    n, total = 2, np.zeros(5)
    for h in range(n + 1):
        e, v = noise[h], value[h]
        q_loc, q_scale = 0.5 * (loc + loc_t), 0.5 * (scale + scale_t)
        if h:  # the intervened component keeps its own posterior in the first world
            q_loc[:, h - 1], q_scale[:, h - 1] = loc[:, h - 1], scale[:, h - 1]
        log_q = stats.norm.logpdf(e, q_loc, q_scale).sum(-1)
        log_p = stats.norm.logpdf(e).sum(-1) + math.log(1 / (n + 1))
        e_tilde = e.copy()
        if h:
            k = h - 1
            shift, sol_scale = (_np(a) for a in pyro_model.solution.shift_scale(torch.tensor(e)))
            q_v = stats.norm(
                (loc_t[:, k] - shift[:, k]) / sol_scale[:, k], scale_t[:, k] / sol_scale[:, k]
            )
            log_q = log_q + q_v.logpdf(v)
            log_p = log_p + stats.norm.logpdf(v)
            e_tilde[:, k] = shift[:, k] + sol_scale[:, k] * v
        (u, jacobian), (u_tilde, _) = (_standardized(pyro_model, a) for a in (x, x_tilde))
        with torch.no_grad():
            likelihood = pyro_model.likelihood
            log_lik = (
                likelihood(torch.tensor(e)).log_prob(torch.as_tensor(u))
                + likelihood(torch.tensor(e_tilde)).log_prob(torch.as_tensor(u_tilde))
            ).numpy() + 2 * jacobian
        weight = probs[:, h]
        total += weight * (log_lik + log_p - log_q - np.log(weight))
    np.testing.assert_allclose(elbo, total, rtol=1e-5, atol=1e-4)


def test_an_unpaired_row_scores_the_single_world_elbo(backend):
    """A row whose x~ is all NaN gets E_q[log p(x | e) + log p(e) − log q(e | x)]: no target,
    value or second-world term, and every hypothesis encodes x alone."""
    torch.manual_seed(2)
    modules = _modules(n=2, dim_x=3)
    model, guide = backend.programs(*modules)
    pyro_model = modules[0]
    x, x_tilde = torch.randn(4, 3), torch.randn(4, 3)
    x_tilde[[1, 3]] = float("nan")
    model_trace, guide_trace = _traces(backend, model, guide, x, x_tilde)
    terms = PairELBO().terms_from_traces(model_trace, guide_trace, model.backend)
    unpaired = [1, 3]
    for name in ("kl_target", "kl_value"):
        assert (_np(terms[name])[unpaired] == 0).all() and (_np(terms[name])[[0, 2]] != 0).all()
    nodes = _nodes(guide_trace)
    loc, scale, loc_t, _, probs = (_np(a) for a in nodes["_RETURN"]["value"])
    np.testing.assert_array_equal(loc_t[unpaired], loc[unpaired])
    noise, total = _np(nodes["noise"]["value"]), np.zeros(4)
    u, jacobian = _standardized(pyro_model, x)
    for h in range(3):
        e = noise[h]
        log_q = stats.norm.logpdf(e, loc, scale).sum(-1)
        with torch.no_grad():
            log_lik = pyro_model.likelihood(torch.tensor(e)).log_prob(torch.as_tensor(u))
        total += probs[:, h] * (log_lik.numpy() + jacobian + stats.norm.logpdf(e).sum(-1) - log_q)
    elbo = _np(terms["elbo"])
    np.testing.assert_allclose(elbo[unpaired], total[unpaired], rtol=1e-5, atol=1e-4)
    assert np.isfinite(elbo).all()


def test_unpaired_observations_teach_encoder_and_decoder_not_mechanisms():
    """A batch of unpaired observations carries no gradient to the solution function."""
    torch.manual_seed(3)
    model, guide = _modules(n=2, dim_x=3)
    x = torch.randn(6, 3)
    loss = PairELBO().differentiable_loss(model.model, guide.guide, x, torch.full_like(x, np.nan))
    loss.backward()
    for module, taught in (
        (model.solution, False),
        (model.likelihood, True),
        (guide.encoder, True),
    ):
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        assert any(g.abs().sum() > 0 for g in grads) == taught, module
        assert all(torch.isfinite(g).all() for g in grads)


def test_flat_intervention_prior_drops_the_solution_from_the_bound(backend):
    """Without the intervention prior the value term is −log q(e~_I): no solution Jacobian."""
    torch.manual_seed(1)
    model, guide = backend.programs(*_modules(n=2, dim_x=3))
    x, x_tilde = torch.randn(5, 3), torch.randn(5, 3)
    model_trace, guide_trace = _traces(backend, model, guide, x, x_tilde, intervention_prior=False)
    model_sites, guide_sites = _nodes(model_trace), _nodes(guide_trace)
    value_kl = _np(guide_sites["value"]["log_prob"] - model_sites["value"]["log_prob"])
    enc = guide_sites["_RETURN"]["value"]
    for h in range(1, 3):
        k = h - 1
        noise_tilde = _np(model_sites["noise_tilde"]["value"])[h, :, k]
        expected = stats.norm.logpdf(
            noise_tilde, _np(enc.loc_tilde)[:, k], _np(enc.scale_tilde)[:, k]
        )
        np.testing.assert_allclose(value_kl[h], expected, atol=1e-4)
    assert (value_kl[0] == 0).all()  # no intervention: the value is masked out


def test_deterministic_guide_keeps_the_argmax_with_straight_through_weight(backend):
    torch.manual_seed(1)
    model, guide = backend.programs(*_modules(n=2, dim_x=3))
    x, x_tilde = backend.array(torch.randn(5, 3)), backend.array(torch.randn(5, 3))

    def weights(guide):
        _, guide_trace = _traces(backend, model, guide, x, x_tilde, deterministic=True)
        sites = _nodes(guide_trace)
        target, probs = sites["target"]["value"], sites["_RETURN"]["value"].probs
        return model.backend.exp(sites["target"]["log_prob"]), target, probs

    weight, target, probs = weights(guide)
    assert (_np(target) == _np(probs).argmax(-1)).all()
    np.testing.assert_allclose(_np(weight), np.ones(5), atol=1e-6)
    if backend.name == "pyro":
        weight.sum().backward()
        grad = guide.intervention_encoder.alpha.grad
    else:
        params, static = eqx.partition(guide.intervention_encoder, eqx.is_inexact_array)
        encoder = lambda p: guide.replace(intervention_encoder=eqx.combine(p, static))  # noqa: E731
        grad = jax.grad(lambda p: weights(encoder(p))[0].sum())(params).alpha
    assert grad is not None and float(abs(grad)) > 0


def test_float64_observations_meet_a_float32_model(backend):
    """Observations are read in the encoder's dtype: a user's float64 data trains and scores."""
    torch.manual_seed(3)
    model, guide = backend.programs(*_modules(n=2, dim_x=3))
    x, x_tilde = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    with backend.seeded():
        terms = PairELBO().terms(
            model.model, guide.guide, backend.array(x), backend.array(x_tilde)
        )
    assert np.isfinite(_np(terms["elbo"])).all() and terms["elbo"].shape == (5,)


# -- the regularizers ---------------------------------------------------------------------------
def test_change_penalties_closed_forms(backend):
    b = backend.programs(*_modules())[0].backend
    one_hot = backend.array(torch.tensor([[2.0, 0, 0], [0, -1.0, 0], [0, 0, 0.5]]))
    spread = backend.array(torch.ones(4, 3))
    assert float(change_sparsity(one_hot, b)) == pytest.approx(1.0)
    assert float(change_sparsity(spread, b)) == pytest.approx(math.sqrt(3))
    assert float(change_balance(spread, b)) == pytest.approx(0.0, abs=1e-6)
    assert float(change_balance(backend.array(torch.tensor([[1.0, 0, 0]] * 3)), b)) == (
        pytest.approx(math.log(3))
    )


def test_regularizers_are_their_formulas(backend):
    """With zero encoder scales the regularizers are deterministic: compare with numpy."""
    torch.manual_seed(2)
    modules = _modules()
    model, _ = backend.programs(*modules)
    loc, loc_t = torch.randn(8, 3), torch.randn(8, 3)
    probs = torch.softmax(torch.randn(8, 4), -1)
    zero = torch.zeros(8, 3)
    x, x_tilde = torch.randn(8, 4), torch.randn(8, 4)
    weights = {
        "entropy_weight": 0.7,
        "consistency_weight": 0.3,
        "norm_weight": 0.2,
        "sparsity_weight": 0.5,
        "balance_weight": 0.4,
    }
    phase = dataclasses.replace(get_recipe("fast").at(0.0), **weights)
    encoding = Encoding(*map(backend.array, (loc, zero, loc_t, zero, probs)))
    with backend.seeded():
        out = regularizers(model, encoding, backend.array(x), backend.array(x_tilde), phase)
    out = {k: float(_np(v)) for k, v in out.items()}
    lo, lt, p = loc.numpy(), loc_t.numpy(), probs.numpy()
    aggregate = p.mean(0)
    with torch.no_grad():
        mean = modules[0].likelihood(torch.cat([loc, loc_t])).mean.numpy()
    both = _standardized(modules[0], torch.cat([x, x_tilde]))[0]  # in the features' units
    delta = (lt - lo) / np.concatenate([lo, lt]).std(0, ddof=1)
    norms = np.linalg.norm(delta, axis=-1)
    share = ((delta**2) / norms[:, None]).sum(0)
    share = share / share.sum()
    expected = {
        "intervention_entropy": 0.7 * (aggregate * np.log(aggregate)).sum(),
        "noise_norm": 0.2 * ((lo**2).sum(-1) + (lt**2).sum(-1)).mean(),
        "consistency": 0.3 * 2 * ((mean - both) ** 2).sum(-1).mean(),
        "change_sparsity": 0.5 * np.abs(delta).sum() / norms.sum(),
        "change_balance": 0.4 * (share * np.log(share * 3)).sum(),
    }
    assert set(out) == set(expected)
    for name, value in expected.items():
        assert out[name] == pytest.approx(value, rel=1e-4), name


# -- one backend against the other --------------------------------------------------------------
def _twins(kind=ILCM, hidden=(16, 16)):
    model, guide = _modules(kind=kind, hidden=hidden)
    twin, twin_guide = Backend("numpyro").programs(model, guide)
    return model, guide, twin, twin_guide


def _params(twin, twin_guide):
    """``{"params": …, "static": …}``: each network's trainable arrays and the rest."""
    owners = {"model": twin, "guide": twin_guide}
    parts = {"params": {}, "static": {}}
    for owner, attribute in NETWORKS:
        network = getattr(owners[owner], attribute)
        parts["params"][attribute], parts["static"][attribute] = eqx.partition(
            network, eqx.is_inexact_array
        )
    return parts


def _schedule(epoch: float, **changes) -> Schedule:
    rows = Schedule.from_phases([get_recipe("fast").at(epoch)])
    return Schedule(*(field[0] for field in rows))._replace(
        **{k: jnp.asarray(v) for k, v in changes.items()}
    )


def _np_in(x):
    return jnp.asarray(x.detach().numpy())


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("intervention_prior", [False, True])
@pytest.mark.parametrize("kind", [ILCM, ELCM, BetaVAE])
def test_elbo_terms_match_across_backends(deterministic, intervention_prior, kind):
    model, guide, twin, twin_guide = _twins(kind=kind)
    n, size = 3, 5
    x, x_tilde = torch.randn(size, 4), torch.randn(size, 4)
    x_tilde[1] = float("nan")  # an unpaired observation among the pairs
    noise, value = torch.randn(n + 1, size, n), torch.randn(n + 1, size)
    fixed = {"noise": noise, "value": value}
    if deterministic:  # the guide keeps the most probable hypothesis only
        best = guide.intervention_probs(x, x_tilde).argmax(-1)
        fixed = {k: v[best, torch.arange(size)] for k, v in fixed.items()}
    options = {"deterministic": deterministic, "intervention_prior": intervention_prior}
    pair, twin_pair = model.programs(guide), twin.programs(twin_guide)
    if kind is BetaVAE:
        options, fixed = {}, {"noise": noise[0], "noise_tilde": noise[1]}
    terms = PairELBO().terms(pair[0], _Fix(fixed)(pair[1]), x, x_tilde, **options)
    numpyro = Backend("numpyro")

    def twin_terms(x, x_tilde):
        with handlers.seed(rng_seed=0):
            return PairELBO().terms(
                twin_pair[0], numpyro.fix(twin_pair[1], fixed), x, x_tilde, **options
            )

    ours = jax.jit(twin_terms)(_np_in(x), _np_in(x_tilde))
    assert set(terms) == set(ours)
    for name, value in terms.items():
        np.testing.assert_allclose(
            ours[name], value.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=name
        )


@pytest.mark.parametrize("kind", [ILCM, ELCM])
def test_elbo_gradients_match_across_backends(kind):
    model, guide, twin, twin_guide = _twins(hidden=(8,), kind=kind)
    size = 4
    x, x_tilde = torch.randn(size, 4), torch.randn(size, 4)
    x_tilde[2] = float("nan")  # an unpaired observation: no NaN may reach a gradient
    fixed = {"noise": torch.randn(4, size, 3), "value": torch.randn(4, size)}
    PairELBO().differentiable_loss(model.model, _Fix(fixed)(guide.guide), x, x_tilde).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    parts = _params(twin, twin_guide)
    numpyro = Backend("numpyro")

    def loss(params):
        networks = {a: eqx.combine(params[a], parts["static"][a]) for a in params}
        m = twin.replace(likelihood=networks["likelihood"], solution=networks["solution"])
        g = twin_guide.replace(
            model=m,
            encoder=networks["encoder"],
            intervention_encoder=networks["intervention_encoder"],
        )
        with handlers.seed(rng_seed=0):
            return PairELBO().differentiable_loss(
                m.model, numpyro.fix(g.guide, fixed), _np_in(x), _np_in(x_tilde)
            )

    grads = jax.jit(jax.grad(loss))(parts["params"])
    for role, module in (("model", model), ("guide", guide)):
        names = {}
        for owner, attribute in NETWORKS:
            if owner == role:
                names.update(nets_jax.state_dict(grads[attribute], attribute))
        for name, p in module.named_parameters():
            if name in names and p.grad is not None:
                scale = p.grad.abs().max().item() + 1.0
                np.testing.assert_allclose(
                    names[name] / scale,
                    p.grad.numpy() / scale,
                    atol=1e-4,
                    err_msg=f"{role}.{name}",
                )


@pytest.mark.parametrize("epoch", [0.1, 2.0, 3.6])
def test_ilcm_loss_is_the_objective_of_its_phase(epoch):
    """The compiled loss picks the phase's branch and reports every term and regularizer."""
    _, _, twin, twin_guide = _twins()
    x, x_tilde = jnp.asarray(np.random.default_rng(0).normal(size=(2, 6, 4)), jnp.float32)
    parts = _params(twin, twin_guide)
    schedule = _schedule(epoch)
    key = jax.random.PRNGKey(3)
    with jax.checking_leaks():
        loss, report = jax.jit(
            lambda p: ilcm_loss(p, parts["static"], twin, twin_guide, x, x_tilde, key, schedule)
        )(parts["params"])
    phase = get_recipe("fast").at(epoch)
    with handlers.seed(rng_seed=key):
        expected, terms, _ = pair_objective(
            twin,
            twin_guide,
            x,
            x_tilde,
            schedule,
            pretrain=phase.pretrain,
            deterministic=phase.deterministic,
        )
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    for name, value in terms.items():
        assert float(report[name]) == pytest.approx(float(value), rel=1e-4, abs=1e-5), name
    assert {k for k, v in report.items() if float(v) == 0} >= (
        {"kl_target", "kl_value", "intervention_entropy"} if phase.pretrain else set()
    )


def _x64():
    """Double precision in JAX, within a block (``jax.enable_x64``, older ``jax.experimental``)."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64

    return enable_x64()


def test_float64_parity():
    """In double precision on both sides the backends agree to 1e-10."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with _x64():
            model, guide, twin, twin_guide = _twins()
            assert twin_guide.encoder.loc.weight.dtype == jnp.float64
            x, x_tilde = torch.randn(5, 4), torch.randn(5, 4)
            fixed = {"noise": torch.randn(4, 5, 3), "value": torch.randn(4, 5)}
            terms = PairELBO().terms(model.model, _Fix(fixed)(guide.guide), x, x_tilde)
            with handlers.seed(rng_seed=0):
                ours = PairELBO().terms(
                    twin.model,
                    Backend("numpyro").fix(twin_guide.guide, fixed),
                    _np_in(x),
                    _np_in(x_tilde),
                )
            for name, value in terms.items():
                assert ours[name].dtype == jnp.float64
                np.testing.assert_allclose(
                    ours[name], value.detach().numpy(), rtol=1e-10, err_msg=name
                )
    finally:
        torch.set_default_dtype(previous)


def test_schedule_carries_the_decayed_learning_rate():
    rows = Schedule.from_phases([get_recipe("fast-anneal").at(e) for e in (1.0, 3.125, 3.5)])
    assert np.allclose(rows.lr, [1e-3, 1e-4, 1e-5], rtol=1e-5)


def test_networks_convert_both_ways():
    torch.manual_seed(1)
    encoder = GaussianEncoder(5, 3, (8, 8))
    with torch.no_grad():
        encoder.skip.weight.normal_()
        encoder.input_mean.normal_()
    twin = nets_jax.twin(encoder)
    x = torch.randn(7, 2, 5)
    loc, scale = encoder(x)
    twin_loc, twin_scale = twin(_np_in(x))
    np.testing.assert_allclose(twin_loc, loc.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(twin_scale, scale.detach().numpy(), rtol=1e-5, atol=1e-7)
    back = nets_jax.state_dict(twin)
    assert set(back) == set(encoder.state_dict())
    for name, tensor in encoder.state_dict().items():
        np.testing.assert_array_equal(back[name], tensor.numpy())
    other = {k: torch.zeros_like(v) for k, v in encoder.state_dict().items()}
    assert all(
        (v == 0).all() for v in nets_jax.state_dict(nets_jax.load_state_dict(twin, other)).values()
    )
    with pytest.raises(KeyError, match=r"skip\.weight"):
        nets_jax.load_state_dict(twin, {k: v for k, v in other.items() if k != "skip.weight"})
    with pytest.raises(ValueError, match="shape"):
        nets_jax.load_state_dict(nets_jax.twin(GaussianEncoder(4, 3, (8, 8))), other)


def test_only_built_in_parts_have_twins():
    with pytest.raises(ValueError, match="built-in parts"):
        NumPyroILCM.from_torch(ILCM(3, 2, likelihood="laplace"))
    with pytest.raises(ValueError, match="heuristic"):
        NumPyroILCMGuide.from_torch(
            ILCMGuide(ILCM(3, 2), intervention_encoder="mlp"), NumPyroILCM.from_torch(ILCM(3, 2))
        )


@pytest.fixture(scope="module")
def toy():
    lcm = make_simulator("scaling", 2, 3)
    return simulate_splits(lcm, 5, {"train": 3200, "test": 1000})


def test_training_recovers_targets_and_lands_in_pyro(toy, tmp_path, short_recipe):
    _, _, report = fit_ilcm(
        toy["train"],
        2,
        test=toy["test"],
        recipe=short_recipe,
        hidden=(16, 16),
        backend="jax",
        output=tmp_path,
        progress=False,
        dci_pairs=(1000, 1000),
    )
    assert report.backend == "jax" and "(JAX backend)" in report.format()
    assert report.steps == 100 and report.metrics["intervention_accuracy"] > 0.6  # chance: 1/3
    _, loaded_guide = load_ilcm(tmp_path / "checkpoint.pt")
    x = torch.as_tensor(toy["test"]["x"].values)
    targets = predict_targets(loaded_guide, x[:, 0], x[:, 1]).numpy()
    accuracy = intervention_accuracy(targets, toy["test"]["target"].values, 2)
    assert accuracy == pytest.approx(report.metrics["intervention_accuracy"])
    assert load_checkpoint(tmp_path / "checkpoint.pt")["backend"] == "jax"  # the only file
    with pytest.raises(TrainingError, match="backend 'jax' there"):  # the other one refuses
        fit_ilcm(
            toy["train"], 2, recipe=short_recipe, hidden=(16, 16), output=tmp_path, progress=False
        )
    with pytest.raises(ValueError, match="validate_every"):
        fit_ilcm(toy["train"], 2, backend="jax", validate_every=10)


def test_resume_is_exact_and_leaks_no_tracer(toy, tmp_path, short_recipe):
    torch.manual_seed(0)
    data = toy["train"]["x"].values[:1280]
    model = ILCM(2, 2, hidden=(8,))
    guide = ILCMGuide(model, hidden=(8,))
    recipe = short_recipe.replace(precondition=False)

    def trainer(path=None):
        twin = NumPyroILCM.from_torch(model)
        return JAXTrainer(
            twin,
            NumPyroILCMGuide.from_torch(guide, twin),
            recipe,
            checkpoint=path,
            checkpoint_every=10,
            chunk=5,
            log_every=5,
            progress=False,
        )

    whole = trainer()
    with jax.checking_leaks():
        whole.fit(data)
    first = trainer(tmp_path / "run.pt")
    first.fit(data, until_epoch=0.5)  # stops after a checkpoint at step 10
    second = trainer(tmp_path / "run.pt")
    result = second.fit(data)
    assert result.steps == whole._progress[0] == 40
    for name, value in whole.model.state_dict().items():
        np.testing.assert_array_equal(second.model.state_dict()[name], value, err_msg=name)
    assert [h["loss"] for h in result.history] == [h["loss"] for h in whole._progress[1]]
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a checkpoint: not a torch archive"):
        trainer(tmp_path / "bad.pt").fit(data)
    save_checkpoint(tmp_path / "pyro.pt", {"step": 0})
    with pytest.raises(TrainingError, match="Pyro backend"):
        trainer(tmp_path / "pyro.pt").fit(data)


def test_queries_match_across_backends():
    from pyrocrl.inference import queries, queries_jax

    model, guide, twin, twin_guide = _twins()
    x = torch.randn(12, 4)
    values = torch.linspace(-1, 1, 12)
    ours = queries_jax.counterfactual(twin, twin_guide, x.numpy(), 2, values.numpy())
    pyros = queries.counterfactual(model, x, {2: values}, guide=guide)
    for name in ("x_tilde", "z", "z_tilde", "noise", "noise_tilde"):
        np.testing.assert_allclose(ours[name], pyros[name].numpy(), atol=1e-5, err_msg=name)
    np.testing.assert_allclose(ours["z_tilde"][:, 1], values.numpy(), atol=1e-5)
    posterior = queries_jax.intervention_posterior(twin_guide, x.numpy(), x.numpy() + 0.1)
    expected = queries.intervention_posterior(guide, x, x + 0.1).numpy()
    np.testing.assert_allclose(posterior, expected, atol=1e-6)
    encoded = queries_jax.encode(twin_guide, x.numpy())
    np.testing.assert_allclose(encoded["z"], queries.encode(guide, x)["z"].numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="cannot intervene on z4"):
        queries_jax.counterfactual(twin, twin_guide, x.numpy(), 4, 0.0)
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        queries_jax.encode(twin_guide, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        queries_jax.encode(twin_guide, np.full((3, 4), np.nan))
