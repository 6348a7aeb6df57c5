"""The explicit latent causal model: its solution function, program, bound and fitting."""

import numpy as np
import pytest
import torch
from pyro.infer import TraceEnum_ELBO

from pyrocrl.data import make_simulator, simulate_splits
from pyrocrl.graphs import is_acyclic
from pyrocrl.inference.elbo import PairELBO
from pyrocrl.inference.fit import fit_ilcm, load_ilcm
from pyrocrl.inference.graph import learn_graph
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.inference.queries import counterfactual, intervene
from pyrocrl.inference.recipes import Recipe
from pyrocrl.models.elcm import ELCM
from pyrocrl.models.ilcm import ILCM
from pyrocrl.solution import GraphSolution


def _with_graph(module: ELCM | GraphSolution, adjacency: list[list[int]]) -> None:
    solution = module.solution if isinstance(module, ELCM) else module
    with torch.no_grad():
        solution.edge_logits.copy_(torch.tensor(adjacency, dtype=torch.float) * 20 - 10)


def test_solution_solves_every_mechanism_and_is_triangular():
    solution = GraphSolution(4, hidden=(16,))
    e = torch.randn(50, 4)
    z, shift, scale = solution.solve(e)
    assert torch.allclose(shift + scale * z, e, atol=1e-5)
    assert torch.allclose(solution(e), z)
    # z_k depends on e_j for j ≤ k only, with ∂z_k/∂e_k = 1 / scale_k
    jacobian = torch.autograd.functional.jacobian(solution, e[0])
    assert torch.equal(jacobian.triu(1), torch.zeros(4, 4))
    assert torch.allclose(jacobian.diagonal(), 1 / scale[0], atol=1e-6)


@pytest.mark.parametrize("order", ["learned", "fixed"])
def test_graph_stays_acyclic_whatever_the_parameters(order):
    solution = GraphSolution(4, hidden=(8,), order=order)
    with torch.no_grad():
        solution.edge_logits.fill_(10.0)
        solution.positions.copy_(torch.tensor([0.3, -1.0, 2.0, 0.3]))
    graph = solution.graph().numpy().astype(int)
    assert is_acyclic(graph) and graph.sum() == 6  # every edge the order allows
    first = [1, 0, 3, 2] if order == "learned" else [0, 1, 2, 3]  # ties by index
    assert np.array_equal(graph[np.ix_(first, first)], np.triu(np.ones((4, 4), int), 1))
    assert torch.allclose(solution.adjacency().detach(), solution.graph())
    e = torch.randn(30, 4)
    z, shift, scale = solution.solve(e)
    assert torch.allclose(shift + scale * z, e, atol=1e-5)


def test_hard_graph_passes_the_soft_gradient_straight_through():
    hard, soft = GraphSolution(3, hidden=(8,)), GraphSolution(3, hidden=(8,), hard=False)
    soft.load_state_dict(hard.state_dict())
    weights = torch.randn(3, 3)
    for solution in (hard, soft):
        (solution.adjacency() * weights).sum().backward()
    assert torch.allclose(hard.edge_logits.grad, soft.edge_logits.grad)
    assert torch.allclose(hard.positions.grad, soft.positions.grad)
    assert hard.positions.grad.abs().sum() > 0
    assert not torch.allclose(hard.adjacency(), soft.adjacency())


def test_a_mechanism_ignores_non_parents():
    solution = GraphSolution(3, hidden=(16,))
    _with_graph(solution, [[0, 0, 1], [0, 0, 0], [0, 0, 0]])  # z1 → z3 only
    e = torch.randn(20, 3)
    moved = e.clone()
    moved[:, 1] += 1.0  # z2's noise: no child
    assert torch.equal(solution(e)[:, 2], solution(moved)[:, 2])
    moved = e.clone()
    moved[:, 0] += 1.0  # z1's noise reaches z3
    assert not torch.allclose(solution(e)[:, 2], solution(moved)[:, 2])


def test_interventions_change_only_descendants():
    model = ELCM(3, 3, hidden=(16,))
    _with_graph(model, [[0, 1, 0], [0, 0, 0], [0, 0, 0]])  # z1 → z2; z3 alone
    out = intervene(model, {1: 0.7}, 200, seed=0)
    z, z_tilde = out["z"], out["z_tilde"]
    assert torch.allclose(z_tilde[:, 0], torch.tensor(0.7), atol=1e-5)
    assert not torch.allclose(z_tilde[:, 1], z[:, 1])
    assert torch.equal(z_tilde[:, 2], z[:, 2])
    out = intervene(model, {2: -0.3}, 200, seed=0)
    assert torch.equal(out["z_tilde"][:, 0], out["z"][:, 0])
    assert torch.equal(out["z_tilde"][:, 2], out["z"][:, 2])


def test_bound_agrees_with_pyro_and_counts_the_graph_prior():
    model = ELCM(3, 3, hidden=(8,), edge_penalty=0.5)
    guide = ILCMGuide(model, hidden=(8,), tie="mean")
    x, x_tilde = torch.randn(6, 3), torch.randn(6, 3)
    with torch.random.fork_rng():
        torch.manual_seed(2)
        ours = PairELBO().differentiable_loss(model.model, guide.guide, x, x_tilde)
    with torch.random.fork_rng():
        torch.manual_seed(2)
        pyros = TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(
            model.model, guide.guide, x, x_tilde
        )
    assert torch.allclose(ours, pyros, rtol=1e-5)
    terms = PairELBO().terms(model.model, guide.guide, x, x_tilde)
    expected = -0.5 * torch.sigmoid(torch.tensor(4.0)) * 3  # three edges at logit 4
    assert torch.allclose(terms["log_graph"], expected.expand(6), atol=1e-6)
    rest = terms["log_likelihood"] - sum(v for k, v in terms.items() if k.startswith("kl_"))
    assert torch.allclose(terms["elbo"], rest + terms["log_graph"])


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="edge_penalty"):
        ELCM(2, 2, edge_penalty=-1.0)
    with pytest.raises(ValueError, match="no explicit graph"):
        learn_graph(ILCM(2, 2), None, np.zeros((10, 2)), method="elcm")
    with pytest.raises(ValueError, match="unknown model"):
        fit_ilcm(
            simulate_splits(make_simulator("scaling", 2, 0), 0, {"t": 10})["t"], 2, model="dag"
        )


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_fit_save_load_query_and_graph(tmp_path, backend):
    if backend == "jax":
        pytest.importorskip("jax")
    splits = simulate_splits(make_simulator("scaling", 2, 3), 5, {"train": 600, "test": 200})
    short = Recipe(name="short", epochs=0.5, pretrain_epochs=0.1, beta_ramp=(0.1, 0.2))
    model, _, report = fit_ilcm(
        splits["train"],
        2,
        test=splits["test"],
        recipe=short,
        model="elcm",
        hidden=(8, 8),
        output=tmp_path,
        progress=False,
        dci_pairs=(200, 200),
        backend=backend,
    )
    assert isinstance(model, ELCM) and report.format().startswith("ELCM fitted")
    # the graph prior alone moves every possible edge's logit off its start
    assert (model.solution.edge_logits[~torch.eye(2, dtype=bool)] < 4.0).all()
    loaded, loaded_guide = load_ilcm(tmp_path / "checkpoint.pt")
    assert isinstance(loaded, ELCM)
    assert torch.equal(loaded.solution.edge_logits, model.solution.edge_logits)
    found = learn_graph(loaded, loaded_guide, None, method="elcm")
    assert np.array_equal(found.adjacency, loaded.adjacency())
    assert found.order == [0, 1]
    x = torch.as_tensor(splits["test"]["x"].values[:20])
    out = counterfactual(loaded, x[:, 0], {1: 0.2}, guide=loaded_guide)
    assert torch.allclose(out["z_tilde"][:, 0], torch.tensor(0.2), atol=1e-5)
