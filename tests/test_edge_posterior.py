"""The edge posterior: exact sums over orders, orientation from interventions, the leak of
learned variables measured and tempered for, refusals."""

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from pyrocrl.graphs import is_acyclic
from pyrocrl.inference.edge_posterior import (
    _evidence,
    _local_scores,
    _order_sum,
    edge_posterior,
    leakage,
)
from pyrocrl.metrics import reliability


def _pairs(weights: np.ndarray, size: int, seed: int = 0):
    """A linear SCM ``z_j = Σ_i w_ij z_i + e_j`` in index order, its pairs with a uniform
    single target (0 = none) and a new value ``N(0, 1)``."""
    rng = np.random.default_rng(seed)
    n = len(weights)
    noise = rng.normal(size=(size, n))
    targets = rng.integers(0, n + 1, size)
    values = rng.normal(size=size)

    def solve(hit):
        z = np.zeros((size, n))
        for j in range(n):
            own = z @ weights[:, j] + noise[:, j]
            z[:, j] = np.where(hit == j + 1, values, own)
        return z

    return solve(np.zeros(size, dtype=int)), solve(targets), targets


def test_the_sum_over_orders_is_the_sum_over_dags_it_weighs():
    """Order-modular prior: a DAG weighs as many times as it has orders it fits."""
    z, z_tilde, targets = _pairs(np.array([[0, 0.8, 0.0], [0, 0, -0.6], [0, 0, 0]]), 300)
    hit = np.eye(4, 3, k=-1, dtype=bool)[targets]
    scores = _local_scores(z, z_tilde, hit, None)
    ours = _order_sum(scores, 3).probs
    log_weights, graphs = [], []
    for bits in itertools.product([0, 1], repeat=6):
        adjacency = np.zeros((3, 3), dtype=int)
        adjacency[~np.eye(3, dtype=bool)] = bits
        if not is_acyclic(adjacency):
            continue
        orders = sum(
            all(
                order.index(i) < order.index(j)
                for i, j in zip(*np.nonzero(adjacency), strict=True)
            )
            for order in itertools.permutations(range(3))
        )
        masks = [sum(1 << i for i in np.flatnonzero(adjacency[:, j])) for j in range(3)]
        log_weights.append(np.log(orders) + sum(scores[j][m] for j, m in enumerate(masks)))
        graphs.append(adjacency)
    weights = np.exp(np.array(log_weights) - logsumexp(log_weights))
    expected = np.einsum("g,gij->ij", weights, np.array(graphs))
    np.testing.assert_allclose(ours, expected, atol=1e-10)


def test_interventions_orient_a_linear_gaussian_chain():
    z, z_tilde, targets = _pairs(np.array([[0, 1.0, 0.0], [0, 0, -1.0], [0, 0, 0]]), 3000)
    posterior = edge_posterior(z, z_tilde, targets)
    truth = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    assert (np.abs(posterior.probs - truth) < 0.05).all(), posterior.probs
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose((posterior.before + posterior.before.T)[off], 1.0)
    assert (posterior.probs <= posterior.before + 1e-12).all()
    np.testing.assert_array_equal(posterior.most_probable_edges(), truth)


def test_fewer_pairs_leave_more_doubt():
    z, z_tilde, targets = _pairs(np.array([[0, 0.3], [0, 0]]), 4000, seed=1)
    many = edge_posterior(z, z_tilde, targets, pairs=4000).probs[0, 1]
    few = edge_posterior(z, z_tilde, targets, pairs=100).probs[0, 1]
    assert many > 0.95 and 0.05 < few < many


def test_true_variables_leak_nothing_and_keep_the_exact_posterior():
    z, z_tilde, targets = _pairs(np.array([[0, 1.0, 0.0], [0, 0, -1.0], [0, 0, 0]]), 2000)
    posterior = edge_posterior(z, z_tilde, targets, pairs=2000)
    assert posterior.leakage == 0.0  # what a perfect intervention leaves alone stays put
    exact = edge_posterior(z, z_tilde, targets, pairs=2000, leakage=0)
    np.testing.assert_array_equal(posterior.probs, exact.probs)
    assert leakage(z, z_tilde, targets, exact.before) == 0.0


def test_a_leak_is_measured_and_its_edge_stays_uncertain():
    """``ẑ1 = z1 + ε·z3`` on the chain z1 → z2 → z3: the exact posterior makes the leak an
    edge z1 → z3 with certainty from 4,000 pairs; tempered for the leak it reads, the
    posterior keeps the true edges and doubts the leaked one."""
    z, z_tilde, targets = _pairs(np.array([[0, 1.0, 0.0], [0, 0, -1.0], [0, 0, 0]]), 4000, 2)
    leaks = []
    for eps in (0.1, 0.2):
        mix = np.eye(3)
        mix[2, 0] = eps
        exact = edge_posterior(z @ mix, z_tilde @ mix, targets, pairs=4000, leakage=0)
        tempered = edge_posterior(z @ mix, z_tilde @ mix, targets, pairs=4000)
        assert exact.probs[0, 2] > 0.99 and tempered.probs[0, 2] < 0.3
        leaks.append(tempered.leakage)
    assert 0 < leaks[0] < leaks[1]
    assert tempered.probs[1, 2] > 0.9  # the strongest true edge survives the larger leak
    few = edge_posterior(z @ mix, z_tilde @ mix, targets, pairs=4000, leakage=10.0)
    assert few.leakage == 10.0 and few.probs.max() < tempered.probs.max()


def test_the_tempered_evidence_is_the_evidence_of_fewer_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = x @ [0.3, -0.2] + rng.normal(size=400)
    x, y = x - x.mean(0), y - y.mean()
    assert _evidence(y, x, None, 400.0) == _evidence(y, x, None)
    factors = [_evidence(y, x, None, m) - _evidence(y, x[:, :0], None, m) for m in (400, 100, 25)]
    assert factors[0] > factors[1] > factors[2]  # the same R², read from fewer rows


def test_reliability_bins_probabilities_against_truth():
    probs = np.array([0.05, 0.1, 0.9, 0.95, 0.4, 0.6])
    truth = np.array([0, 0, 1, 1, 1, 0])
    table = reliability(probs, truth, bins=2)
    np.testing.assert_allclose(table["frequency"].values, [1 / 3, 2 / 3])
    np.testing.assert_allclose(table["count"].values, [3, 3])
    assert table.attrs["ece"] == pytest.approx(
        (abs(np.mean([0.05, 0.1, 0.4]) - 1 / 3) * 3 + abs(np.mean([0.9, 0.95, 0.6]) - 2 / 3) * 3)
        / 6
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.zeros((5, 3)), np.zeros((5, 2)), np.zeros(5, int)), "need z and z_tilde"),
        ((np.zeros((5, 1)), np.zeros((5, 1)), np.zeros(5, int)), "2 … 8 variables"),
        ((np.full((5, 2), np.nan), np.zeros((5, 2)), np.zeros(5, int)), "finite"),
    ],
)
def test_bad_input_is_refused(args, message):
    with pytest.raises(ValueError, match=message):
        edge_posterior(*args)
    with pytest.raises(ValueError, match="leakage must be"):
        edge_posterior(np.zeros((5, 2)), np.zeros((5, 2)), np.zeros(5, int), leakage=-1)


def test_a_fitted_models_learned_variables_get_a_posterior():
    from pyrocrl.inference.edge_posterior import fitted_edge_posterior
    from pyrocrl.inference.guides import ILCMGuide
    from pyrocrl.models.ilcm import ILCM

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = ILCM(4, 3, max_targets=2)
    guide = ILCMGuide(model)
    x = torch.randn(300, 4)
    posterior = fitted_edge_posterior(guide, x, x + 0.1 * torch.randn(300, 4), pairs=200)
    assert posterior.probs.shape == (3, 3) and posterior.names == ["z1", "z2", "z3"]
    assert ((posterior.probs >= 0) & (posterior.probs <= 1)).all()
    assert (np.diag(posterior.probs) == 0).all()


def test_the_posterior_graph_keeps_likely_edges_and_breaks_cycles():
    from pyrocrl.inference.edge_posterior import EdgePosterior
    from pyrocrl.inference.graph import posterior_graph

    probs = np.array([[0, 0.9, 0.1], [0, 0, 0.8], [0.6, 0, 0]])  # a cycle 1 → 2 → 3 → 1
    graph = posterior_graph(EdgePosterior(probs, np.full((3, 3), 0.5), ["z1", "z2", "z3"]))
    np.testing.assert_array_equal(graph.adjacency, [[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    assert graph.order == [0, 1, 2] and graph.method == "posterior"
    np.testing.assert_array_equal(graph.strength, probs)


def test_learn_graph_reads_the_posterior_of_a_fitted_model():
    import torch

    from pyrocrl.inference.graph import learn_graph
    from pyrocrl.inference.guides import ILCMGuide
    from pyrocrl.models.ilcm import ILCM

    torch.manual_seed(0)
    model = ILCM(4, 3)
    x = torch.randn(400, 4)
    graph = learn_graph(model, ILCMGuide(model), x, x + 0.1, method="posterior")
    assert graph.adjacency.shape == (3, 3) and is_acyclic(graph.adjacency)
    with pytest.raises(ValueError, match="posterior needs pairs"):
        learn_graph(model, ILCMGuide(model), x, method="posterior")
