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
=================  =============  ===========  ==============================================

Causal variables are numbered from 1 in names (``z1 … zn``), matching ``target = k`` for an
intervention on ``z_k``; in tensors, ``z_k`` sits at index ``k − 1``. Single-world programs
name their per-variable mechanism sites ``z1 … zn`` so that ``pyro.poutine.do`` can set one.
The plate over pairs is named ``pair``.
"""

__all__ = [
    "NOISE",
    "NOISE_TILDE",
    "PAIR_PLATE",
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
PAIR_PLATE = "pair"


def variable_names(n: int, prefix: str = "z") -> list[str]:
    """``["z1", …, "zn"]``: the names of ``n`` variables, numbered from 1."""
    return [f"{prefix}{k}" for k in range(1, n + 1)]
