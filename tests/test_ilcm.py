"""The ILCM program, its guide and the enumerated ELBO."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO
from pyro.util import check_model_guide_match

from pyrocrl.inference.elbo import PairELBO, scale_latents
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.models.ilcm import ILCM
from pyrocrl.nets import LaplaceHead


@pytest.fixture
def pair():
    torch.manual_seed(1)
    model = ILCM(3, 2)
    guide = ILCMGuide(model, tie="mean")
    x, x_tilde = torch.randn(5, 3), torch.randn(5, 3)
    return model, guide, x, x_tilde


def _traces(model, guide, x, x_tilde, **kwargs):
    return PairELBO().traces(model.model, guide.guide, x, x_tilde, **kwargs)


def test_model_and_guide_agree_on_sites(pair):
    model, guide, x, x_tilde = pair
    guide_trace = poutine.trace(guide.guide).get_trace(x, x_tilde)
    model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(
        x, x_tilde
    )
    check_model_guide_match(model_trace, guide_trace, max_plate_nesting=1)
    latent = {
        n
        for n, s in model_trace.nodes.items()
        if s["type"] == "sample" and not s["is_observed"] and n != "pair"
    }
    assert latent == {"noise", "target", "value"}
    model_trace.compute_log_prob()  # validation is on: supports and shapes are checked
    guide_trace.compute_log_prob()


@pytest.mark.parametrize("deterministic", [False, True])
def test_enumerated_traces_are_valid(pair, deterministic):
    model, guide, x, x_tilde = pair
    model_trace, guide_trace = _traces(model, guide, x, x_tilde, deterministic=deterministic)
    hypotheses = 1 if deterministic else model.n + 1
    assert model_trace.nodes["noise"]["value"].shape[-2:] == (5, 2)
    if not deterministic:
        assert guide_trace.nodes["target"]["value"].shape == (hypotheses, 1)


def test_non_intervened_noise_is_identical_in_both_worlds(pair):
    model, guide, x, x_tilde = pair
    model_trace, _ = _traces(model, guide, x, x_tilde)
    noise = model_trace.nodes["noise"]["value"]  # (n + 1, N, n)
    noise_tilde = model_trace.nodes["noise_tilde"]["value"]
    value = model_trace.nodes["value"]["value"]
    shift, scale = model.solution.shift_scale(noise)
    for hypothesis in range(model.n + 1):
        for j in range(model.n):
            same = torch.equal(noise_tilde[hypothesis, :, j], noise[hypothesis, :, j])
            assert same == (j != hypothesis - 1)
        if hypothesis:
            k = hypothesis - 1
            expected = shift[hypothesis, :, k] + scale[hypothesis, :, k] * value[hypothesis]
            assert torch.allclose(noise_tilde[hypothesis, :, k], expected)
    # the intervened world's new value is z~_I = s_I(e~)
    z_tilde = model_trace.nodes["z_tilde"]["value"]
    for hypothesis in range(1, model.n + 1):
        assert torch.allclose(z_tilde[hypothesis, :, hypothesis - 1], value[hypothesis], atol=1e-5)


def test_elbo_agrees_with_pyro_trace_enum_elbo(pair):
    model, guide, x, x_tilde = pair
    with torch.random.fork_rng():
        torch.manual_seed(5)
        ours = PairELBO().differentiable_loss(model.model, guide.guide, x, x_tilde)
    with torch.random.fork_rng():
        torch.manual_seed(5)
        pyros = TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(
            model.model, guide.guide, x, x_tilde
        )
    assert torch.allclose(ours, pyros, rtol=1e-5)


def test_scale_latents_weights_only_the_kl(pair):
    model, guide, x, x_tilde = pair
    with torch.random.fork_rng():
        full = PairELBO().terms(model.model, guide.guide, x, x_tilde)
    with torch.random.fork_rng(), scale_latents(scale=0.25):
        scaled = PairELBO().terms(model.model, guide.guide, x, x_tilde)
    assert torch.allclose(scaled["log_likelihood"], full["log_likelihood"])
    for key in ("kl_noise", "kl_value", "kl_target"):
        assert torch.allclose(scaled[key], 0.25 * full[key], atol=1e-5)


def test_swapping_the_likelihood():
    model = ILCM(3, 2, likelihood=LaplaceHead(2, 3))
    guide = ILCMGuide(model)
    terms = PairELBO().terms(model.model, guide.guide, torch.randn(4, 3), torch.randn(4, 3))
    assert torch.isfinite(terms["elbo"]).all()
    trace = poutine.trace(model.model).get_trace(size=4)
    assert isinstance(trace.nodes["x"]["fn"].base_dist, dist.Laplace)


def test_do_on_target_and_value():
    model = ILCM(4, 3)
    with poutine.do(data={"target": torch.tensor(2), "value": torch.tensor(0.7)}):
        out = model.model(size=6)
    assert torch.allclose(out["z_tilde"][:, 1], torch.full((6,), 0.7), atol=1e-5)
    assert torch.equal(out["noise_tilde"][:, [0, 2]], out["noise"][:, [0, 2]])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((torch.randn(4, 3), torch.randn(5, 3)), "disagree on the number of pairs"),
        ((torch.randn(4, 2), torch.randn(4, 2)), r"shape \(N, 3\)"),
    ],
)
def test_bad_observations(args, message):
    model = ILCM(3, 2)
    with pytest.raises(ValueError, match=message):
        model.model(*args)
    with pytest.raises(ValueError, match=message):
        ILCMGuide(model).guide(*args)


def test_guide_needs_both_views_and_model_accepts_one():
    model = ILCM(3, 2)
    with pytest.raises(ValueError, match="observed pairs x and x_tilde"):
        ILCMGuide(model).guide(torch.randn(4, 3), None)
    out = model.model(torch.randn(4, 3))  # condition on the first view, sample the second
    assert out["x_tilde"].shape == (4, 3)


def test_parameters_are_all_in_the_state_dicts():
    model = ILCM(3, 2)
    guide = ILCMGuide(model)
    names = set(model.state_dict()) | {f"guide.{k}" for k in guide.state_dict()}
    assert any(k.startswith("solution.") for k in names)
    assert any(k.startswith("guide.encoder.") for k in names)
    assert "guide.intervention_encoder.alpha" in names
    assert not any(k.startswith("guide.solution") for k in names)  # read, not owned
    n_params = sum(p.numel() for p in model.parameters()) + sum(
        p.numel() for p in guide.parameters()
    )
    n_state = sum(v.numel() for m in (model, guide) for v in m.state_dict().values())
    n_buffers = sum(b.numel() for m in (model, guide) for b in m.buffers())
    assert n_params == n_state - n_buffers
    assert pyro.get_param_store().keys() == set()  # no hidden global state


@pytest.mark.parametrize("graph_seed", [302, 304])
def test_preconditioning_recovers_linear_noise(graph_seed):
    """On a linear toy the generalized eigenvectors of the pair statistics are the noise."""
    from pyrocrl.data import make_simulator, simulate

    lcm = make_simulator("scaling", 4, graph_seed)
    ds = simulate(lcm, 20_000, seed=1)
    x = torch.as_tensor(ds["x"].values)
    guide = ILCMGuide(ILCM(4, 4))
    assert (guide.encoder.skip.weight == 0).all()  # inert until preconditioned
    guide.precondition(x[:, 0], x[:, 1])
    encoder = guide.encoder
    u = (x[:, 0] - encoder.input_mean) @ encoder.input_transform
    noise = torch.as_tensor(ds["noise"].values[:, 0])
    corr = torch.corrcoef(torch.cat([u, noise], 1).T)[:4, 4:].abs()
    assert (corr.max(dim=1).values > 0.98).all()
    assert sorted(corr.argmax(dim=1).tolist()) == [0, 1, 2, 3]
    assert torch.equal(encoder.skip.weight, torch.eye(4))
    with pytest.raises(ValueError, match="more than 8 pairs"):
        guide.precondition(x[:5, 0], x[:5, 1])
