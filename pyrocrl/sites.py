"""The site vocabulary shared by every latent causal model (LCM) in pyrocrl.

One weakly supervised pair, in generative order:

=================  =============  ===========  ==============================================
site               kind           shape        meaning
=================  =============  ===========  ==============================================
``noise``          sample         ``(*, n)``   exogenous noise ``e``, shared by both worlds
``target``         sample         ``(*,)``     intervention target ``I ∈ {0, …, n}``, 0 = none
``value``          sample         ``(*,)``     new value of the intervened variable ``z~_I``
``noise_tilde``    deterministic  ``(*, n)``   ``e~``: ``e`` with component ``I`` replaced
``z``              deterministic  ``(*, n)``   causal variables before, ``s(e)``
``z_tilde``        deterministic  ``(*, n)``   causal variables after, ``s(e~)``
``x``              observed       ``(*, D)``   observation before the intervention
``x_tilde``        observed       ``(*, D)``   observation after the intervention
``graph``          factor         ``()``       log prior of a learned graph (explicit models)
=================  =============  ===========  ==============================================

For interventions on sets of up to ``k`` variables (``max_targets = k``), ``target``
indexes the sets of :mod:`pyrocrl.interventions` (0 and ``1 … n`` as above) and ``value``
is ``(*, n)``, the new value of each variable (read for the members).

Causal variables are numbered from 1 in names (``z1 … zn``), matching ``target = k`` for an
intervention on ``z_k``; in tensors, ``z_k`` sits at index ``k − 1``. Single-world programs
name their per-variable mechanism sites ``z1 … zn`` so that ``pyro.poutine.do`` can set one.
The plate over pairs is named ``pair``.
"""

from typing import Any

from pyrocrl.observations import check_observations

__all__ = [
    "GRAPH",
    "NOISE",
    "NOISE_TILDE",
    "PAIR_PLATE",
    "PAIR_SITES",
    "TARGET",
    "VALUE",
    "X_TILDE",
    "Z_TILDE",
    "X",
    "Z",
    "variable_names",
]

NOISE = "noise"
TARGET = "target"
VALUE = "value"
NOISE_TILDE = "noise_tilde"
Z = "z"
Z_TILDE = "z_tilde"
X = "x"
X_TILDE = "x_tilde"
GRAPH = "graph"
PAIR_PLATE = "pair"
PAIR_SITES = (NOISE, TARGET, VALUE, NOISE_TILDE, Z, Z_TILDE, X, X_TILDE)
"""The sites of a pair program in generative order; programs return their values in a dict
keyed by these names."""


def plate_size(
    size: int | None, x: Any = None, x_tilde: Any = None, *, dim_x: int | None = None
) -> int:
    """The number of pairs (or samples) of a program call, from its observations or ``size``.

    Observations ``x`` and ``x_tilde`` must be ``(N, D)`` arrays (torch, JAX or NumPy) with
    one ``N``, and ``D = dim_x`` when given (:func:`~pyrocrl.observations.check_observations`;
    their values are not read, so they may be traced).

    :raises ValueError: naming the inconsistency.
    """
    sizes = {
        check_observations(value, name, dim_x=dim_x, finite=False)
        for name, value in (("x", x), ("x_tilde", x_tilde))
        if value is not None
    }
    if len(sizes) > 1:
        raise ValueError(f"observations disagree on the number of pairs: {sorted(sizes)}")
    if sizes:
        (observed_size,) = sizes
        if size is not None and size != observed_size:
            raise ValueError(f"size={size} but the observations hold {observed_size} pairs")
        return observed_size
    if size is None or size < 1:
        raise ValueError("give observations or the number of pairs size=N (N ≥ 1)")
    return int(size)


def variable_names(n: int, prefix: str = "z") -> list[str]:
    """``["z1", …, "zn"]``: the names of ``n`` variables, numbered from 1.

    >>> variable_names(3)
    ['z1', 'z2', 'z3']
    """
    return [f"{prefix}{k}" for k in range(1, n + 1)]
