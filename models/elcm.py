"""The explicit latent causal model (ELCM): the pair program over a learned causal graph."""

__all__ = ["ELCM", "GraphPrior"]

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from pyrocrl import sites
from pyrocrl.models.ilcm import ILCM
from pyrocrl.solution import GraphSolution


class GraphPrior:
    """The prior of a learned graph, ``log p(A) = −λ · E[number of edges]``, as the factor
    site ``graph`` of every pair: the pair program of an explicit model, for any backend.
    Needs ``backend``, ``edge_penalty`` (``λ``) and a solution function with
    ``edge_probs()``."""

    def graph_log_prior(self) -> Any:
        """``log p(A) = −λ · E[number of edges]`` (up to a constant), a scalar."""
        return -self.edge_penalty * self.solution.edge_probs().sum()

    def pair_factors(self, size: int) -> None:
        """The graph prior, once per pair (inside the pair plate)."""
        b = self.backend
        b.factor(sites.GRAPH, b.broadcast_to(self.graph_log_prior(), (size,)))


class ELCM(GraphPrior, ILCM):
    """Explicit latent causal model: an SCM with a learned graph over the causal variables.

    The pair program is that of :class:`~pyrocrl.models.ilcm.ILCM` — noise shared by both
    worlds, the intervention target summed out, the new value drawn from ``N(0, 1)`` — with
    the implicit solution function replaced by an explicit one
    (:class:`~pyrocrl.solution.GraphSolution`): each causal variable is an affine function
    of its own noise whose shift and scale are MLPs of its *parents' causal values*,
    ``z_k = (e_k − shift_k(z_pa(k))) / scale_k(z_pa(k))``. The causal variables are the
    deterministic sites ``z`` and ``z_tilde`` of a non-centred parameterization: ``p(z)``
    is the SCM's density ``Π_k p(z_k | z_pa(k))`` exactly.

    The graph is a parameter: edge logits ``γ`` and a variable order (learned positions, or
    the index order), used hard with straight-through gradients. Its prior
    ``log p(A) = −λ Σ_ij a_ij`` on the soft adjacency ``a`` (the expected number of edges,
    weight ``edge_penalty``) enters the program as the factor site ``graph`` inside the
    pair plate, so ``λ`` weighs against the ELBO per pair.

    Guide, trainer, recipes and queries are those of the ILCM: every one of them talks to
    the model through the solution function's interface. The decoder reads noise as in the
    ILCM (``z = s(e)`` is a bijection, so this changes the parameterization, not the model
    class) and the two models differ in the graph alone.

    :param edge_penalty: ``λ`` of the sparsity prior on the graph.
    :param init_edge_logit: ``γ`` at the start (4: every edge present).
    :param hard_graph: use the thresholded graph with straight-through gradients
        (``False``: the edge probabilities themselves weigh the parents).
    :param order: ``"learned"`` (positions per variable) or ``"fixed"`` (the index order).
    :param options: further options of :class:`~pyrocrl.models.ilcm.ILCM`
        (``max_targets``, ``solve_rounds``, ``intervention``, ``shift_scale``).
    """

    def __init__(
        self,
        dim_x: int,
        n: int,
        *,
        hidden: Sequence[int] = (64, 64),
        likelihood: str | nn.Module = "normal",
        intervention_probs: Sequence[float] | torch.Tensor | None = None,
        edge_penalty: float = 0.01,
        init_edge_logit: float = 4.0,
        hard_graph: bool = True,
        order: str = "learned",
        **options: Any,
    ) -> None:
        if edge_penalty < 0:
            raise ValueError(f"edge_penalty must be ≥ 0, got {edge_penalty}")
        solution = GraphSolution(
            n, hidden, init_edge_logit=init_edge_logit, hard=hard_graph, order=order
        )
        super().__init__(
            dim_x,
            n,
            hidden=hidden,
            likelihood=likelihood,
            solution=solution,
            intervention_probs=intervention_probs,
            **options,
        )
        self.edge_penalty = float(edge_penalty)
        self.config.update(
            model="elcm",
            solution="graph",
            edge_penalty=self.edge_penalty,
            init_edge_logit=float(init_edge_logit),
            hard_graph=hard_graph,
            order=order,
        )

    def adjacency(self) -> np.ndarray:
        """The learned graph as a 0/1 matrix ``(n, n)``, ``[i, j] = 1`` for ``z_i → z_j``."""
        return self.solution.graph().cpu().numpy().astype(np.int8)
