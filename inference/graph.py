"""Causal graph discovery on learned causal variables.

- :func:`ilcm_h` reads the graph off an implicit model's solution function: which noise
  each causal variable depends on gives a topological order, and the direct effects
  through the masked mechanisms give the edges (Brehmer et al., 2022, "ILCM-H").
- :func:`explicit_graph` reads the graph parameter of an explicit model (ELCM).
- :func:`enco` fits the graph to encoded pairs ``(z, z~)`` and their inferred intervention
  targets (Lippe et al., 2022, "ENCO"; "ILCM-E" when run on an ILCM's variables).

Both return a :class:`LearnedGraph` over the *learned* variables; compare it with a true
graph through :func:`pyrocrl.metrics.graph_scores` and a matching of variables.
"""

__all__ = [
    "METHODS",
    "NO_GRAPH",
    "POSTERIOR_PAIRS",
    "LearnedGraph",
    "default_method",
    "dependence",
    "enco",
    "explicit_graph",
    "ilcm_h",
    "learn_graph",
    "posterior_graph",
]

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from pyrocrl.graphs import is_acyclic, topological_order
from pyrocrl.nets import StackedMLP
from pyrocrl.solution import warp


class SolutionFunction(Protocol):
    """``__call__(e) → z`` and ``shift_scale(e) → (shift, scale)``, each ``(*, n)``."""

    n: int

    def __call__(self, e: torch.Tensor) -> torch.Tensor: ...

    def shift_scale(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass
class LearnedGraph:
    """A graph over learned variables; ``adjacency[i, j] = 1`` for ``z_i → z_j``."""

    adjacency: np.ndarray
    strength: np.ndarray
    """Edge scores ``(n, n)`` (``[i, j]`` for ``i → j``) that the adjacency thresholds."""
    order: list[int]
    """A topological order (0-based)."""
    method: str
    threshold: float
    info: dict[str, Any] = field(default_factory=dict)

    def edges(self) -> list[tuple[int, int]]:
        """Edges as 1-based ``(cause, effect)`` pairs, as in the names ``z1 … zn``."""
        return [(int(i) + 1, int(j) + 1) for i, j in zip(*np.nonzero(self.adjacency), strict=True)]


def dependence(f: torch.Tensor, f_shuffled: torch.Tensor, min_std: float = 0.1) -> torch.Tensor:
    """How much ``f`` changed when one input was shuffled: the mean squared difference of
    both, standardized by the mean and standard deviation of ``f`` (at least ``min_std``).

    Shapes: ``(N, *)`` → ``(*)``.
    """
    std = f.std(0).clamp_min(min_std)
    return ((f - f_shuffled) / std).pow(2).mean(0)


def _shuffled(x: torch.Tensor, column: int, generator: torch.Generator) -> torch.Tensor:
    out = x.clone()
    out[:, column] = x[torch.randperm(len(x), generator=generator), column]
    return out


@torch.no_grad()
def noise_dependence(
    solution: SolutionFunction, noise: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """``dep[i, j]``: how much ``z_i = s_i(e)`` depends on ``e_j`` (shuffling ``e_j``)."""
    z = solution(noise)
    return torch.stack(
        [dependence(z, solution(_shuffled(noise, j, generator))) for j in range(noise.shape[1])],
        dim=1,
    )


def greedy_order(dep: torch.Tensor) -> list[int]:
    """Repeatedly take the remaining variable least dependent on the others' noise."""
    remaining = list(range(len(dep)))
    order = []
    while remaining:
        cost = [sum(float(dep[i, j]) for j in remaining if j != i) for i in remaining]
        order.append(remaining.pop(int(np.argmin(cost))))
    return order


@torch.no_grad()
def _mechanism(
    solution: SolutionFunction,
    z: torch.Tensor,
    noise: torch.Tensor,
    order: list[int],
    position: int,
) -> torch.Tensor:
    """``z_i`` for ``i = order[position]`` from the causal values of the variables before it.

    The noise of earlier variables is rebuilt from their values, ``e_a = g_a⁻¹(shift_a +
    scale_a z_a)`` (``g`` the solution function's transform of the own noise,
    :func:`~pyrocrl.solution.warp`), in order; later variables keep the (shuffled) noise
    they were given, and ``e_i`` its own.
    """
    e = noise.clone()
    for a in order[:position]:
        shift, scale = solution.shift_scale(e)
        e[:, a] = warp(solution, shift + scale * z, inverse=True)[0][:, a]
    return solution(e)[:, order[position]]


@torch.no_grad()
def ilcm_h(
    solution: SolutionFunction,
    noise: torch.Tensor,
    *,
    threshold: float = 0.1,
    seed: int = 0,
) -> LearnedGraph:
    """The graph of an implicit latent causal model, read off its solution function.

    1. ``dep[i, j]`` — dependence of ``z_i = s_i(e)`` on noise ``e_j`` (shuffle ``e_j``);
       a topological order takes, again and again, the variable least dependent on the
       noise of those left.
    2. For each variable ``i`` and each ``j`` before it, the direct effect ``j → i``: hold
       the causal values of the other earlier variables, shuffle ``z_j`` and measure the
       change of ``z_i`` (:func:`dependence`), with the noise of later variables shuffled
       so that they cannot carry the effect.
    3. ``adjacency = effect > threshold``; the order makes it acyclic.

    Cost: ``O(n²)`` evaluations of the mechanisms, no search over orders.

    :param solution: an :class:`~pyrocrl.solution.AffineSolution` (``model.solution``) or
        any object with its interface (e.g. :class:`~pyrocrl.solution.SCMSolution`).
    :param noise: noise encodings of observations ``(N, n)``, e.g. ``encode(guide, x)``.
    :param threshold: minimal effect for an edge. Effects are standardized by ``z_i``'s
        spread: a linear mechanism ``z_i = w z_j + …`` gives about
        ``2 w² Var(z_j) / Var(z_i)``, so weak parents among many strong ones score low.
        On the simulators' own solution functions (n ≤ 5, graph seeds 0–9) the weakest
        true edge scored 0.06 and no false edge above 10⁻¹⁴.
    """
    noise = torch.as_tensor(noise, dtype=torch.get_default_dtype())
    if noise.dim() != 2 or noise.shape[1] != solution.n:
        raise ValueError(f"noise must have shape (N, {solution.n}), got {tuple(noise.shape)}")
    if len(noise) < 10:
        raise ValueError(f"need at least 10 noise samples, got {len(noise)}")
    generator = torch.Generator().manual_seed(seed)
    n = solution.n
    dep = noise_dependence(solution, noise, generator)
    order = greedy_order(dep)
    z = solution(noise)
    strength = np.zeros((n, n))
    for position in range(1, n):
        i = order[position]
        shuffled_noise = noise.clone()
        for later in order[position + 1 :]:
            shuffled_noise = _shuffled(shuffled_noise, later, generator)
        base = _mechanism(solution, z, shuffled_noise, order, position)
        for j in order[:position]:
            moved = _mechanism(
                solution, _shuffled(z, j, generator), shuffled_noise, order, position
            )
            strength[j, i] = float(dependence(base, moved))
    adjacency = (strength > threshold).astype(np.int8)
    return LearnedGraph(
        adjacency, strength, order, "ilcm-h", threshold, info={"noise_dependence": dep.numpy()}
    )


class _Conditionals(torch.nn.Module):
    """``p(z_j | z ⊙ G[:, j])`` for every ``j``: Gaussian MLPs evaluated together."""

    def __init__(self, n: int, hidden: int) -> None:
        super().__init__()
        self.n = n
        self.net = StackedMLP(n, 2 * n, 2, (hidden, hidden))

    def nll(self, z: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        """``−log p(z_j | parents)`` of shape ``(*, n)`` for ``z (*, n)`` and graphs
        ``(*, n, n)`` broadcasting against it (``graph[..., i, j]`` for ``i → j``)."""
        mask = graph.transpose(-1, -2)  # row j: the parents of j
        masked = z.unsqueeze(-2) * mask
        inputs = torch.cat([masked, (2 * mask - 1).expand_as(masked)], dim=-1)
        out = self.net(inputs)
        mean, log_std = out[..., 0], out[..., 1].clamp(-5, 5)
        return 0.5 * ((z - mean) / log_std.exp()).pow(2) + log_std


@torch.no_grad()
def _edge_effects(
    conditionals: _Conditionals,
    z: torch.Tensor,
    probs: torch.Tensor,
    samples: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean NLL of each ``z_j`` with the edge ``i → j`` present minus absent, ``(n, n)``,
    over ``samples`` graphs drawn from ``probs``; and where both cases occurred."""
    n = conditionals.n
    graphs = (torch.rand(samples, n, n, generator=generator) < probs).float()
    nll = conditionals.nll(z.unsqueeze(0), graphs.unsqueeze(1)).mean(1)  # (samples, n)
    present = graphs  # (samples, i, j)
    loss_j = nll.unsqueeze(1)  # (samples, 1, j)
    with_edge = (present * loss_j).sum(0) / present.sum(0).clamp_min(1)
    without = ((1 - present) * loss_j).sum(0) / (1 - present).sum(0).clamp_min(1)
    both = (present.sum(0) > 0) & ((1 - present).sum(0) > 0)
    return with_edge - without, both


def enco(
    z: torch.Tensor,
    z_tilde: torch.Tensor,
    targets: torch.Tensor,
    *,
    sparsity: float = 0.01,
    epochs: int = 30,
    seed: int = 0,
    hidden: int = 64,
    pretrain_steps: int = 500,
    distribution_steps: int = 50,
    graph_steps: int = 50,
    batch_size: int = 128,
    graph_samples: int = 32,
) -> LearnedGraph:
    """ENCO (Lippe et al., 2022) on causal variables before and after interventions.

    Observational data are ``z``; interventional data are ``z~`` of the pairs whose
    (inferred) target is ``k ≥ 1``, a perfect intervention on ``z_k``. Every variable gets
    a Gaussian MLP conditional on a masked set of parents; the graph has existence logits
    ``γ`` and orientation logits ``θ`` (``θ_ij = −θ_ji``), edge probability
    ``σ(γ_ij)σ(θ_ij)``. Training alternates fitting the conditionals on graphs sampled from
    the current probabilities (the intervened variable excluded from the likelihood) and
    fitting ``γ, θ`` with ENCO's low-variance gradient estimators on interventional data,
    with a sparsity penalty. It stops early once every ``σ(γ)`` has settled. The edges are
    ``γ > 0`` and ``θ > 0``.

    :param z, z_tilde: ``(N, n)``; :param targets: ``(N,)`` in ``0 … n``.
    """
    z = torch.as_tensor(z, dtype=torch.get_default_dtype())
    z_tilde = torch.as_tensor(z_tilde, dtype=torch.get_default_dtype())
    targets = torch.as_tensor(targets, dtype=torch.long)
    if z.dim() != 2 or z.shape != z_tilde.shape or targets.shape != z.shape[:1]:
        raise ValueError(
            f"need z and z_tilde of shape (N, n) and targets (N,), got {tuple(z.shape)}, "
            f"{tuple(z_tilde.shape)}, {tuple(targets.shape)}"
        )
    n = z.shape[1]
    if targets.min() < 0 or targets.max() > n:
        raise ValueError(f"targets must lie in 0..{n}")
    mean, std = z.mean(0), z.std(0).clamp_min(1e-6)
    z, z_tilde = (z - mean) / std, (z_tilde - mean) / std
    interventional = {k: z_tilde[targets == k + 1] for k in range(n)}
    interventional = {k: v for k, v in interventional.items() if len(v) >= 10}
    if not interventional:
        raise ValueError("ENCO needs pairs with interventions (at least 10 per variable)")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        conditionals = _Conditionals(n, hidden)
        optimizer = torch.optim.AdamW(conditionals.parameters(), lr=2e-3, weight_decay=1e-4)
        off_diagonal = 1 - torch.eye(n)
        gamma = torch.zeros(n, n)
        theta = torch.zeros(n, n)
        gamma_opt = torch.optim.Adam([gamma.requires_grad_()], lr=2e-2, betas=(0.9, 0.9))
        theta_opt = torch.optim.Adam([theta.requires_grad_()], lr=2e-2)

        def probs() -> torch.Tensor:
            return (torch.sigmoid(gamma) * torch.sigmoid(theta) * off_diagonal).detach()

        def fit_distributions(steps: int) -> None:
            for _ in range(steps):
                rows = torch.randint(len(z), (batch_size,), generator=generator)
                graphs = (torch.rand(batch_size, n, n, generator=generator) < probs()).float()
                loss = conditionals.nll(z[rows], graphs).sum(-1).mean()
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(conditionals.parameters(), 0.1)
                optimizer.step()

        fit_distributions(pretrain_steps)
        sig = torch.sigmoid
        done = 0
        while done < epochs:
            done += 1
            fit_distributions(distribution_steps)
            for _ in range(graph_steps):
                k = list(interventional)[
                    int(torch.randint(len(interventional), (1,), generator=generator))
                ]
                data = interventional[k]
                rows = torch.randint(len(data), (batch_size,), generator=generator)
                effect, both = _edge_effects(
                    conditionals, data[rows], probs(), graph_samples, generator
                )
                effect = effect * both
                grad_gamma = sig(theta) * sig(gamma) * (1 - sig(gamma)) * (effect + sparsity)
                grad_gamma[:, k] = 0  # the intervened variable's parents are cut
                grad_theta = torch.zeros(n, n)
                # intervening on k tells the orientation of every edge at k
                row = sig(gamma[k]) * sig(theta[k]) * (1 - sig(theta[k])) * effect[k]
                grad_theta[k] = row
                grad_theta[:, k] = -row
                gamma.grad, theta.grad = grad_gamma * off_diagonal, grad_theta * off_diagonal
                gamma_opt.step()
                theta_opt.step()
            settled = sig(gamma) * (1 - sig(gamma))
            if (settled[off_diagonal.bool()] < 1e-3).all():
                break
    gamma, theta = gamma.detach(), theta.detach()
    adjacency = ((gamma > 0) & (theta > 0) & off_diagonal.bool()).numpy().astype(np.int8)
    strength = (torch.sigmoid(gamma) * torch.sigmoid(theta) * off_diagonal).numpy()
    order = topological_order(adjacency) if is_acyclic(adjacency) else []
    return LearnedGraph(
        adjacency,
        strength,
        order,
        "enco",
        0.5,
        info={"gamma": gamma.numpy(), "theta": theta.numpy(), "epochs": done},
    )


def explicit_graph(solution: Any) -> LearnedGraph:
    """The graph an explicit model learned (:class:`~pyrocrl.solution.GraphSolution`):
    its hard graph, with the edge probabilities its learned order allows as strengths."""
    if not hasattr(solution, "graph"):
        raise ValueError(
            "this model has no explicit graph (an ILCM keeps it implicit): use method "
            "'ilcm-h' or 'enco', or fit an ELCM"
        )
    with torch.no_grad():
        strength = solution.ordered_edge_probs().cpu().numpy().astype(np.float64)
    adjacency = solution.graph().cpu().numpy().astype(np.int8)
    return LearnedGraph(adjacency, strength, topological_order(adjacency), "elcm", 0.5)


def posterior_graph(posterior: Any) -> LearnedGraph:
    """The graph of an :class:`~pyrocrl.inference.edge_posterior.EdgePosterior`: the edges
    more probable than not (weakest first left out while they close a cycle), their
    probabilities as strengths."""
    probs = posterior.probs
    adjacency = (probs > 0.5).astype(np.int8)
    for i, j in sorted(zip(*np.nonzero(adjacency), strict=True), key=lambda e: probs[e]):
        if is_acyclic(adjacency):
            break
        adjacency[i, j] = 0
    return LearnedGraph(
        adjacency,
        probs,
        topological_order(adjacency),
        "posterior",
        0.5,
        info={"before": posterior.before.tolist()},
    )


METHODS = ("ilcm-h", "enco", "elcm", "posterior")
"""The methods of :func:`learn_graph`."""
POSTERIOR_PAIRS = 250
"""Pairs the ``"posterior"`` method reads: the edge posterior is calibrated against the
true graphs of the scaling toy from this many, over-confident from 1,000
(``benchmarks/edge_posterior.py``)."""
NO_GRAPH = "none"
"""What :func:`default_method` answers for a model without a causal graph."""


def default_method(model: Any) -> str:
    """How to find the graph of a fitted model when not told: ``"elcm"`` for an explicit
    model (its graph parameter), :data:`NO_GRAPH` for a model that infers no interventions
    (the β-VAE: it has no causal graph), else ``"ilcm-h"``."""
    if not model.infers_interventions:
        return NO_GRAPH
    return "elcm" if model.config.get("model") == "elcm" else "ilcm-h"


def learn_graph(
    model: Any,
    guide: Any,
    x: Any,
    x_tilde: Any = None,
    *,
    method: str = "ilcm-h",
    max_pairs: int = 5000,
    seed: int = 0,
    **options: Any,
) -> LearnedGraph:
    """The causal graph of a fitted ILCM over its learned variables.

    :param x, x_tilde: observed pairs ``(N, D)`` (ILCM-H uses only ``x``).
    :param method: ``"posterior"`` (the edges more probable than not under
        :func:`~pyrocrl.inference.edge_posterior.fitted_edge_posterior`, read from
        :data:`POSTERIOR_PAIRS` pairs unless ``pairs`` is given; strengths are the edge
        probabilities), ``"ilcm-h"`` (read off the solution function), ``"enco"`` (fit to
        the encoded pairs and their most probable intervention targets; for a model whose
        targets are sets, the pairs whose target is none or one variable) or ``"elcm"`` (the
        graph parameter of an explicit model; needs no data).
    :param max_pairs: use at most this many pairs.
    :param options: passed to :func:`ilcm_h` or :func:`enco`.
    """
    from pyrocrl.inference.queries import encode, predict_targets

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not model.infers_interventions:
        raise ValueError(
            f"a {type(model).__name__} models the two views as independent: it has no "
            "interventions and no causal graph to learn"
        )
    if method == "elcm":
        return explicit_graph(model.solution)
    x = torch.as_tensor(np.asarray(x)[:max_pairs], dtype=torch.get_default_dtype())
    if method == "ilcm-h":
        return ilcm_h(model.solution, encode(guide, x)["noise"], seed=seed, **options)
    if x_tilde is None:
        raise ValueError(f"{method} needs pairs: give x_tilde")
    x_tilde = torch.as_tensor(np.asarray(x_tilde)[:max_pairs], dtype=torch.get_default_dtype())
    if method == "posterior":
        from pyrocrl.inference.edge_posterior import fitted_edge_posterior

        options.setdefault("pairs", POSTERIOR_PAIRS)
        return posterior_graph(fitted_edge_posterior(guide, x, x_tilde, **options))
    targets = predict_targets(guide, x, x_tilde)
    single = targets <= model.n  # none or one variable (a set's pairs are left out)
    x, x_tilde, targets = x[single], x_tilde[single], targets[single]
    return enco(encode(guide, x)["z"], encode(guide, x_tilde)["z"], targets, seed=seed, **options)
