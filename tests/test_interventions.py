"""Interventions on sets of variables: the target table, simulators, the pair program with
set-valued targets on both backends, the guide's encoder, metrics and the fit."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from pyrocrl.cli import main
from pyrocrl.data import load, save, simulate_pairs, validate
from pyrocrl.errors import DatasetError
from pyrocrl.inference import do
from pyrocrl.inference.elbo import PairELBO
from pyrocrl.inference.evaluate import evaluate
from pyrocrl.inference.fit import fit_ilcm, load_ilcm
from pyrocrl.inference.guides import HeuristicInterventionEncoder, ILCMGuide
from pyrocrl.interventions import num_targets, set_index, target_names, target_sets
from pyrocrl.metrics import intervention_accuracy, set_accuracy
from pyrocrl.models.elcm import ELCM
from pyrocrl.models.ilcm import ILCM
from pyrocrl.models.truth import scaling_toy


# -- the table -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "k"), [(1, 1), (3, 1), (3, 2), (4, 2), (4, 4), (5, 3)])
def test_target_table_lists_every_set_once_by_size(n, k):
    table = target_sets(n, k)
    assert table.shape == (num_targets(n, k), n) == (sum(math.comb(n, j) for j in range(k + 1)), n)
    assert len({row.tobytes() for row in table}) == len(table)  # no set twice
    sizes = table.sum(-1)
    assert (np.diff(sizes) >= 0).all() and sizes.max() == k
    np.testing.assert_array_equal(table[: n + 1], np.eye(n + 1, n, k=-1, dtype=bool))
    for index, row in enumerate(table):
        assert set_index(np.flatnonzero(row) + 1, n, k) == index
    assert len(target_names(n, k)) == len(table)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: target_sets(3, 4), "max_targets"),
        (lambda: target_sets(3, 0), "max_targets"),
        (lambda: set_index([1, 2], 3, 1), "at most 1"),
        (lambda: set_index([4], 3, 2), "numbered 1..3"),
    ],
)
def test_target_table_refuses_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# -- simulators ----------------------------------------------------------------------------------
def test_simulated_sets_set_their_variables_and_move_only_descendants():
    lcm = scaling_toy(n=4, graph_seed=302).with_max_targets(2)
    torch.manual_seed(0)
    out = lcm.model(size=3000)
    hit = torch.as_tensor(target_sets(4, 2))[out["target"]]
    assert out["value"].shape == (3000, 4)
    torch.testing.assert_close(out["z_tilde"][hit], out["value"][hit])
    reach = np.eye(4, dtype=bool) | lcm.scm.adjacency.astype(bool)
    for _ in range(4):  # the transitive closure: each variable and its descendants
        reach = reach | ((reach.astype(int) @ reach.astype(int)) > 0)
    may_change = torch.as_tensor(hit.numpy().astype(int) @ reach.astype(int) > 0)
    assert torch.equal(out["z_tilde"][~may_change], out["z"][~may_change])
    assert (out["z_tilde"][may_change] != out["z"][may_change]).float().mean() > 0.99
    counts = np.bincount(out["target"].numpy(), minlength=11)
    assert stats.chisquare(counts).pvalue > 1e-3  # uniform over the 11 sets


def test_datasets_record_and_check_the_largest_set(tmp_path):
    ds = simulate_pairs("scaling", 300, n=3, seed=1, max_targets=2)
    assert ds.attrs["max_targets"] == 2 and ds["target"].values.max() > 3
    save(ds, tmp_path / "sets.nc")
    assert load(tmp_path / "sets.nc").attrs["max_targets"] == 2
    bad = ds.copy()
    bad["target"].values[0] = num_targets(3, 2)
    with pytest.raises(DatasetError, match=r"0\.\.6"):
        validate(bad)
    single = ds.copy()
    single.attrs.pop("max_targets")
    with pytest.raises(DatasetError, match=r"0\.\.3"):
        validate(single)


# -- the pair program ----------------------------------------------------------------------------
def test_an_ordered_solution_sets_every_intervened_variable_exactly():
    """With a solution function that respects an order, k rounds solve s_i(e~) = v_i."""
    torch.manual_seed(0)
    model = ELCM(5, 4, max_targets=3, order="fixed")
    with torch.no_grad():
        out = model.model(size=500)
    hit = torch.as_tensor(target_sets(4, 3))[out["target"]]
    assert hit.sum(-1).max() == 3
    torch.testing.assert_close(out["z_tilde"][hit], out["value"][hit], atol=1e-5, rtol=0)
    kept = ~hit
    torch.testing.assert_close(out["noise_tilde"][kept], out["noise"][kept])


def test_more_rounds_solve_the_values_of_a_cyclic_solution_function():
    """An implicit solution function may couple two members both ways: the fixed-point
    iteration then converges geometrically, and the default rounds get close."""
    torch.manual_seed(3)
    model = ILCM(4, 3, hidden=(16, 16), max_targets=2)
    assert model.solve_rounds == 5 and ILCM(4, 3).solve_rounds == 1
    table = torch.as_tensor(target_sets(3, 2))[4:].repeat(20, 1)  # pairs of variables
    e, v = torch.randn(len(table), 3), torch.randn(len(table), 3)

    def error(rounds):
        model.solve_rounds = rounds
        with torch.no_grad():
            e_tilde = model.intervened_noise(e, table, v)
            shift, scale = model.solution.shift_scale(e_tilde)
        return ((e_tilde - shift) / scale - v)[table].abs().max()

    with torch.no_grad():
        for p in model.solution.parameters():
            p.add_(0.03 * torch.randn_like(p))
    assert error(5) < error(2) / 10
    with torch.no_grad():  # so strong a coupling that the iteration diverges
        for p in model.solution.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert torch.isfinite(error(2)) and error(2) > 0.1
    assert torch.isfinite(error(9))  # rounds resume from the best iterate, not the last
    with pytest.raises(ValueError, match="at least max_targets"):
        ILCM(4, 3, max_targets=2, solve_rounds=1)


def test_do_on_one_variable_works_in_a_program_of_sets():
    torch.manual_seed(0)
    model = ELCM(5, 3, max_targets=2, order="fixed")
    with torch.no_grad(), do(z={2: torch.linspace(-1, 1, 6)}):
        out = model.model(size=6)
    assert (out["target"] == 2).all()
    torch.testing.assert_close(out["z_tilde"][:, 1], torch.linspace(-1, 1, 6))
    torch.testing.assert_close(out["z_tilde"][:, 0], out["z"][:, 0])
    with pytest.raises(ValueError, match="z1 … z3"):
        with do(z={5: 0.0}):
            model.model(size=2)


def test_heuristic_encoder_scores_a_set_by_the_sum_of_its_members():
    torch.manual_seed(0)
    loc = torch.randn(7, 3)
    loc_tilde = loc + 0.2 * torch.randn(7, 3)  # logits of a few units, no underflow
    single = HeuristicInterventionEncoder(3)(loc, loc_tilde)
    sets = HeuristicInterventionEncoder(3, max_targets=2)(loc, loc_tilde)
    assert sets.shape == (7, 7)
    log_odds = (sets / sets[:, :1]).log()
    member_logits = (single / single[:, :1]).log()[:, 1:]  # (7, 3): the logit of each z_k
    expected = member_logits @ torch.as_tensor(target_sets(3, 2), dtype=torch.float32).T
    torch.testing.assert_close(log_odds, expected, atol=1e-4, rtol=1e-4)


def _np(value) -> np.ndarray:
    return value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)


def _bound(backend, model, guide, x, x_tilde):
    """``(elbo (N,), model sites, guide sites)`` of one draw, on ``backend``."""
    programs = (model, guide)
    if backend == "numpyro":
        pytest.importorskip("jax")
        import jax.numpy as jnp
        from numpyro import handlers

        from pyrocrl.inference.guides_jax import NumPyroILCMGuide
        from pyrocrl.models.ilcm_jax import NumPyroILCM

        twin = NumPyroILCM.from_torch(model)
        programs = (twin, NumPyroILCMGuide.from_torch(guide, twin))
        arrays = (jnp.asarray(x.numpy()), jnp.asarray(x_tilde.numpy()))
        with handlers.seed(rng_seed=0):
            traces = PairELBO().traces(programs[0].model, programs[1].guide, *arrays)
        model_nodes, nodes = traces
    else:
        traces = PairELBO().traces(model.model, guide.guide, x, x_tilde)
        model_nodes, nodes = traces[0].nodes, traces[1].nodes
    elbo = PairELBO().terms_from_traces(*traces, programs[0].backend)["elbo"]
    return _np(elbo), model_nodes, nodes


def _modules(n=3, dim_x=4, hidden=(16, 16)):
    model = ILCM(dim_x, n, hidden=hidden, max_targets=2)
    guide = ILCMGuide(model, hidden=hidden, tie="mean")
    with torch.no_grad():  # move every part off its initialization
        for p in [*model.parameters(), *guide.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
        guide.encoder.input_transform.copy_(torch.randn(dim_x, dim_x))
    return model, guide


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_elbo_of_sets_is_the_hand_computed_sum_over_hypotheses(backend):
    """Every set hypothesis: q(e) mixes the views off the set; the members' new noise
    e~ ~ N(μ~, σ~²) gives v_i = (e~_i − shift_i(e~)) / scale_i(e~) with density
    q(e~) Π scale_i(e~); the model maps v back to e~ (exactly, for a solution function that
    respects an order); p(v) is N(0, 1) on the members only."""
    torch.manual_seed(4)
    model = ELCM(4, 3, hidden=(16, 16), max_targets=2, order="fixed", edge_penalty=0.0)
    guide = ILCMGuide(model, hidden=(16, 16), tie="mean")
    with torch.no_grad():  # move every part off its initialization
        for p in [*model.parameters(), *guide.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
        guide.encoder.input_transform.copy_(torch.randn(4, 4))
    x, x_tilde = torch.randn(5, 4), torch.randn(5, 4)
    elbo, model_nodes, nodes = _bound(backend, model, guide, x, x_tilde)
    loc, scale, loc_t, scale_t, probs = (_np(a) for a in nodes["_RETURN"]["value"])
    noise, value = _np(nodes["noise"]["value"]), _np(nodes["value"]["value"])
    noise_tilde = _np(model_nodes["noise_tilde"]["value"])
    table = target_sets(3, 2)
    assert probs.shape == (5, len(table)) and value.shape == (len(table), 5, 3)

    def shift_scale(e):
        with torch.no_grad():
            return [a.numpy() for a in model.solution.shift_scale(torch.tensor(e))]

    total = np.zeros(5)
    for h, members in enumerate(table):
        e, v, e_tilde = noise[h], value[h], noise_tilde[h]
        q_loc = np.where(members, loc, 0.5 * (loc + loc_t))
        q_scale = np.where(members, scale, 0.5 * (scale + scale_t))
        log_q = stats.norm.logpdf(e, q_loc, q_scale).sum(-1)
        log_p = stats.norm.logpdf(e).sum(-1) + math.log(1 / len(table))
        np.testing.assert_allclose(np.where(members, e, e_tilde), e, atol=1e-6)
        if members.any():
            shift, sol_scale = shift_scale(e_tilde)
            expected = np.where(members, (e_tilde - shift) / sol_scale, 0.0)
            np.testing.assert_allclose(v, expected, atol=1e-4)
            new = stats.norm.logpdf(e_tilde, loc_t, scale_t) + np.log(sol_scale)
            log_q += np.where(members, new, 0.0).sum(-1)
            log_p += np.where(members, stats.norm.logpdf(v), 0.0).sum(-1)
        with torch.no_grad():
            likelihood = model.likelihood
            log_lik = (
                likelihood(torch.tensor(e)).log_prob(x)
                + likelihood(torch.tensor(e_tilde)).log_prob(x_tilde)
            ).numpy()
        weight = probs[:, h]
        total += weight * (log_lik + log_p - log_q - np.log(weight))
    np.testing.assert_allclose(elbo, total, rtol=1e-4, atol=1e-3)


def test_the_values_density_holds_the_jacobian_of_the_whole_set():
    """log |det ∂G/∂e~_I| = log |det(I − A_I)| − Σ_I log scale_i, checked against the
    Jacobian of v = G(e~) by reverse-mode differentiation, for an implicit solution
    function whose members depend on each other both ways."""
    torch.manual_seed(6)
    model, guide = _modules(n=4, dim_x=5)
    with torch.no_grad():  # mechanisms that couple the variables strongly
        for p in model.solution.parameters():
            p.add_(0.5 * torch.randn_like(p))
    table = torch.as_tensor(target_sets(4, 2))
    point = torch.randn(len(table), 4)

    def values(e):  # G, every variable: (n,) → (n,)
        shift, scale = model.solution.shift_scale(e)
        return (e - shift) / scale

    with torch.no_grad():
        value = torch.where(table, torch.stack([values(e) for e in point]), 0.0)
        log_det = guide._coupling(point, table, value)
        _, scale = model.solution.shift_scale(point)
    for h, members in enumerate(table):
        jacobian = torch.autograd.functional.jacobian(values, point[h])
        expected = torch.linalg.det(jacobian[members][:, members]).abs().log()
        ours = log_det[h] - scale[h][members].log().sum()
        torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)
    assert (log_det[5:].abs() > 1e-2).all()  # the pairs: not triangular here


@pytest.mark.parametrize("max_targets", [1, 2])
def test_under_the_flat_prior_the_bound_ignores_the_solution_function(max_targets):
    """Early training scores intervened noise with a flat prior: the solution function
    gets no gradient then, for sets as for single targets (else it is pushed around by
    values that mean nothing yet)."""
    torch.manual_seed(5)
    model, guide = _modules()
    if max_targets == 1:
        model = ILCM(4, 3, hidden=(16, 16))
        guide = ILCMGuide(model, hidden=(16, 16), tie="mean")
    x, x_tilde = torch.randn(6, 4), torch.randn(6, 4)
    for prior, moved in ((False, False), (True, True)):
        model.zero_grad()
        loss = PairELBO().differentiable_loss(
            model.model, guide.guide, x, x_tilde, intervention_prior=prior
        )
        loss.backward()
        largest = max(p.grad.abs().max() for p in model.solution.parameters())
        assert (largest > 1e-3) == moved, (prior, largest)


# -- metrics and the fit -------------------------------------------------------------------------
def test_set_accuracy_is_intervention_accuracy_for_single_targets():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, 300)
    predicted = np.where(rng.random(300) < 0.7, (true % 3) + (true > 0), rng.integers(0, 4, 300))
    table = target_sets(3, 1)
    assert set_accuracy(table[predicted], table[true]) == intervention_accuracy(predicted, true, 3)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_a_fit_of_sets_saves_reloads_and_scores_the_exact_set(tmp_path, backend):
    if backend == "jax":
        pytest.importorskip("jax")
    ds = simulate_pairs("scaling", 1200, n=3, seed=5, max_targets=2)
    train, test = ds.isel(pair=slice(0, 1000)), ds.isel(pair=slice(1000, None))
    model, guide, report = fit_ilcm(
        train, 3, test=test, recipe=get_tiny_recipe(), output=tmp_path, backend=backend
    )
    assert model.max_targets == 2 and guide.intervention_probs(
        torch.randn(4, 3), torch.randn(4, 3)
    ).shape == (4, 7)
    assert 0 <= report.metrics["intervention_accuracy"] <= 1
    loaded, loaded_guide = load_ilcm(tmp_path / "checkpoint.pt")
    assert loaded.max_targets == 2
    again = evaluate(loaded, loaded_guide, test)
    assert again["intervention_accuracy"] == pytest.approx(report.metrics["intervention_accuracy"])


def get_tiny_recipe():
    from pyrocrl.inference.recipes import get_recipe

    return get_recipe("fast").scaled(0.01)


def test_cli_simulates_sets_and_fits_them(tmp_path, capsys):
    data, out = tmp_path / "sets.nc", tmp_path / "fit"
    argv = ["simulate", "--n", "3", "--pairs", "1500", "--max-targets", "2", "-o", str(data)]
    assert main(argv) == 0
    assert "z1+z2" in capsys.readouterr().out  # the share of each set
    assert main(["fit", "--data", str(data), "--recipe-scale", "0.01", "-o", str(out)]) == 0
    report = capsys.readouterr().out
    assert "fast×0.01×1.75" in report and "intervention accuracy" in report  # K / (n + 1)
    assert main(["query", str(out / "checkpoint.pt"), "--pairs", "--size", "50", "-o",
                 str(tmp_path / "q.nc")]) == 0  # fmt: skip
    assert load(tmp_path / "q.nc").attrs["max_targets"] == 2


# -- soft interventions: the shift-aware program ------------------------------------------------
@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_elbo_of_shifts_is_the_hand_computed_sum_over_hypotheses(backend):
    """A soft intervention moves the intervened noise: e~_k = e_k + v, v ~ N(0, τ²), and
    the guide's q(v) = N(μ~_k − e_k, σ~_k²); the solution function takes no part."""
    torch.manual_seed(7)
    model = ILCM(4, 3, hidden=(16, 16), intervention="shift", shift_scale=1.5)
    guide = ILCMGuide(model, hidden=(16, 16), tie="mean")
    x, x_tilde = torch.randn(5, 4), torch.randn(5, 4)
    elbo, _, nodes = _bound(backend, model, guide, x, x_tilde)
    loc, scale, loc_t, scale_t, probs = (_np(a) for a in nodes["_RETURN"]["value"])
    noise, value = _np(nodes["noise"]["value"]), _np(nodes["value"]["value"])
    total = np.zeros(5)
    for h in range(4):
        e, v = noise[h], value[h]
        q_loc, q_scale = 0.5 * (loc + loc_t), 0.5 * (scale + scale_t)
        log_p = stats.norm.logpdf(e).sum(-1) + math.log(1 / 4)
        e_tilde = e.copy()
        if h:
            k = h - 1
            q_loc[:, k], q_scale[:, k] = loc[:, k], scale[:, k]
        log_q = stats.norm.logpdf(e, q_loc, q_scale).sum(-1)
        if h:
            log_q += stats.norm.logpdf(v, loc_t[:, k] - e[:, k], scale_t[:, k])
            log_p += stats.norm.logpdf(v, 0.0, 1.5)
            e_tilde[:, k] = e[:, k] + v
        with torch.no_grad():
            log_lik = (
                model.likelihood(torch.tensor(e)).log_prob(x)
                + model.likelihood(torch.tensor(e_tilde)).log_prob(x_tilde)
            ).numpy()
        total += probs[:, h] * (log_lik + log_p - log_q - np.log(probs[:, h]))
    np.testing.assert_allclose(elbo, total, rtol=1e-4, atol=1e-3)


def test_a_dataset_of_shifts_is_fitted_with_the_shift_program(tmp_path):
    ds = simulate_pairs("scaling-shift", 600, n=3, seed=2)
    assert ds.attrs["intervention"] == "shift"
    model, _, _ = fit_ilcm(ds, 3, recipe=get_tiny_recipe(), output=tmp_path)
    assert model.intervention == "shift" and model.config["intervention"] == "shift"
    loaded, _ = load_ilcm(tmp_path / "checkpoint.pt")
    assert loaded.intervention == "shift" and loaded.shift_scale == model.shift_scale
    with pytest.raises(ValueError, match="intervention must be one of"):
        ILCM(4, 3, intervention="nudge")


@pytest.mark.parametrize("max_targets", [1, 2])
def test_shifted_pairs_give_the_solution_function_no_gradient(max_targets):
    torch.manual_seed(8)
    model = ILCM(4, 3, hidden=(16, 16), intervention="shift", max_targets=max_targets)
    guide = ILCMGuide(model, hidden=(16, 16))
    x = torch.randn(6, 4)
    PairELBO().differentiable_loss(model.model, guide.guide, x, x + 0.3).backward()
    grads = [p.grad for p in model.solution.parameters() if p.grad is not None]
    assert all((g == 0).all() for g in grads)
    assert any((p.grad != 0).any() for p in guide.encoder.parameters())


def test_the_posterior_export_names_sets_and_calibrates_by_their_members():
    from pyrocrl.inference import diagnostics

    torch.manual_seed(9)
    ds = simulate_pairs("scaling", 300, n=3, seed=4, max_targets=2)
    model = ILCM(3, 3, hidden=(16, 16), max_targets=2)
    tree = diagnostics.to_datatree(model, ILCMGuide(model, hidden=(16, 16)), ds, num_samples=3)
    assert list(tree["intervention"]["hypothesis"].values) == target_names(3, 2)
    assert tree["ground_truth"].attrs["max_targets"] == 2
    table = diagnostics.calibration(tree)
    assert int(table["count"].sum()) == 300 * 7 and 0 <= table.attrs["accuracy"] <= 1
    # a posterior that names every true set gets accuracy 1 under any relabelling
    probs = np.eye(7)[ds["target"].values]
    tree["intervention"]["probs"].values[:] = probs[:, [0, 2, 1, 3, 4, 6, 5]]  # z1 ↔ z2
    assert diagnostics.calibration(tree).attrs["accuracy"] == 1.0


@pytest.mark.parametrize("value", ["two", 2.5, 0, [1, 2]])
def test_a_bad_max_targets_attribute_is_refused_by_name(value):
    ds = simulate_pairs("scaling", 50, n=3, seed=1)
    ds.attrs["max_targets"] = value
    with pytest.raises(DatasetError, match="'max_targets' must be a whole number"):
        validate(ds)
