"""Graph discovery (ILCM-H, ENCO), variable matching and graph metrics; the report of a
learned graph."""

import json

import numpy as np
import pytest
import torch

from pyrocrl.data import make_simulator, simulate
from pyrocrl.graphs import topological_order
from pyrocrl.inference.graph import default_method, enco, ilcm_h, learn_graph
from pyrocrl.inference.graph_report import graph_report, plot_learned_graph, write_graph
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.metrics import dci, graph_scores, match_importance, structural_hamming_distance
from pyrocrl.models.elcm import ELCM
from pyrocrl.models.ilcm import ILCM
from pyrocrl.solution import SCMSolution

CHAIN = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])


@pytest.mark.parametrize(
    ("learned", "shd"),
    [
        (CHAIN, 0),
        (np.array([[0, 1, 0], [0, 0, 0], [0, 0, 0]]), 1),  # missing
        (np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]]), 1),  # extra
        (np.array([[0, 0, 0], [1, 0, 1], [0, 0, 0]]), 1),  # reversed
        (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]]), 2),  # both reversed
        (np.zeros((3, 3), int), 2),  # empty
        (np.triu(np.ones((3, 3), int), 1), 1),  # full (one extra edge)
    ],
)
def test_structural_hamming_distance(learned, shd):
    assert structural_hamming_distance(learned, CHAIN) == shd


def test_graph_metric_edge_cases():
    assert structural_hamming_distance(np.zeros((1, 1)), np.zeros((1, 1))) == 0
    full = np.ones((4, 4), int) - np.eye(4, dtype=int)  # every pair in both directions
    assert structural_hamming_distance(full, np.zeros((4, 4), int)) == 6
    scores = graph_scores(np.zeros((3, 3), int), CHAIN)
    assert (scores.shd, scores.precision, scores.recall) == (2, 1.0, 0.0)
    with pytest.raises(ValueError, match="square graphs of one size"):
        graph_scores(np.zeros((2, 2)), CHAIN)
    with pytest.raises(ValueError, match="only 0 and 1"):
        graph_scores(2 * CHAIN, CHAIN)
    with pytest.raises(ValueError, match="permutation"):
        graph_scores(CHAIN, CHAIN, match=np.array([0, 0, 1]))


def test_matching_permuted_and_sign_flipped_latents(rng):
    true = rng.normal(size=(2000, 3))
    learned = np.stack([-true[:, 2], 3 * true[:, 0], np.tanh(true[:, 1])], axis=1)
    scores = dci(learned[:1500], true[:1500], learned[1500:], true[1500:])
    match = match_importance(scores.importance)
    assert match.tolist() == [2, 0, 1]
    # the learned graph, written in learned labels, is the chain once relabelled
    learned_graph = np.zeros((3, 3), int)
    learned_graph[1, 2] = learned_graph[2, 0] = 1  # learned 1 = true 0 → learned 2 = true 1 …
    assert graph_scores(learned_graph, CHAIN, match).shd == 0
    with pytest.raises(ValueError, match="square importance"):
        match_importance(np.ones((2, 3)))


@pytest.mark.parametrize(("n", "seed"), [(4, 302), (4, 304), (5, 1)])
def test_ilcm_h_on_the_simulators_own_solution(n, seed):
    lcm = make_simulator("scaling", n, seed)
    noise = torch.randn(3000, n)
    found = ilcm_h(SCMSolution(lcm.scm), noise, seed=0)
    assert (found.adjacency == lcm.scm.adjacency).all()
    position = {v: i for i, v in enumerate(found.order)}
    for i, j in zip(*np.nonzero(lcm.scm.adjacency), strict=True):
        assert position[i] < position[j]
    assert topological_order(found.adjacency)  # acyclic


def test_enco_recovers_a_simulator_graph_from_ground_truth():
    ds = simulate(make_simulator("scaling", 4, 302), 5000, seed=1)
    found = enco(ds["z"].values[:, 0], ds["z"].values[:, 1], ds["target"].values)
    assert graph_scores(found.adjacency, ds["adjacency"].values).shd == 0
    assert found.order and found.info["epochs"] <= 30


def test_graph_inputs_are_checked():
    with pytest.raises(ValueError, match=r"noise must have shape \(N, 4\)"):
        ilcm_h(SCMSolution(make_simulator("scaling", 4, 0).scm), torch.randn(50, 3))
    with pytest.raises(ValueError, match=r"targets must lie in 0\.\.2"):
        enco(torch.randn(50, 2), torch.randn(50, 2), torch.full((50,), 3))
    with pytest.raises(ValueError, match="at least 10 per variable"):
        enco(torch.randn(50, 2), torch.randn(50, 2), torch.zeros(50))
    with pytest.raises(ValueError, match="method must be one of"):
        learn_graph(None, None, np.zeros((3, 2)), method="pc")


def test_default_method_follows_the_model():
    assert default_method(ILCM(3, 3, hidden=(8,))) == "ilcm-h"
    assert default_method(ELCM(3, 3, hidden=(8,))) == "elcm"  # (the β-VAE: test_baselines)


def test_graph_report_prints_writes_and_draws(tmp_path):
    data = simulate(make_simulator("scaling", 3, 302), 300, seed=1)
    model = ILCM(3, 3, hidden=(8,))
    report = graph_report(model, ILCMGuide(model, hidden=(8,)), data, max_pairs=200)
    assert report.pairs == 200 and report.seconds >= 0 and report.names == ["z1", "z2", "z3"]
    assert report.edges() == [(f"z{i}", f"z{j}") for i, j in report.graph.edges()]
    lines = report.format().splitlines()
    assert lines[0].startswith("ilcm-h on 200 pairs in ") and len(lines) == 6
    assert lines[1] == "adjacency (row = cause, column = effect), variables z1 z2 z3"
    path = write_graph(report, tmp_path / "graph.json", data="pairs.nc")
    written = json.loads(path.read_text())
    assert list(written) == [
        "method",
        "variables",
        "adjacency",
        "strength",
        "threshold",
        "order",
        "edges",
        "data",
    ]
    assert written["adjacency"] == report.graph.adjacency.tolist()
    assert written["order"] == [f"z{i + 1}" for i in report.graph.order]
    assert plot_learned_graph(report.graph, tmp_path / "graph.png").stat().st_size > 5000
