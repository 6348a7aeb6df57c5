"""One program source for Pyro and NumPyro: the primitives and array operations a pair
program needs, per backend.

The pair programs (:class:`~pyrocrl.models.ilcm.PairModel`,
:class:`~pyrocrl.inference.guides.PairGuide`), the bound
(:mod:`pyrocrl.inference.elbo`), the training objective and the solution functions are
written once against a *backend*: a module with the same names for both PPLs —

- the primitives ``sample``, ``plate``, ``factor``, ``deterministic``, ``mask``, ``dist``;
- tracing: ``trace(fn, *args, **kwargs)`` (the sites, by name), ``replay``, ``enum``
  (parallel enumeration of a site marked ``infer={"enumerate": "parallel"}``) and
  ``check_traces`` (the PPL's own model/guide checks);
- the few array operations whose spelling differs between torch and ``jax.numpy``
  (``where``, ``concat``, ``exp``, ``stop_gradient``, ``uniform``, …);
- ``InterventionValue``, the one distribution both programs need that neither PPL ships.

:mod:`pyrocrl.backends.pyro` is Pyro over torch; :mod:`pyrocrl.backends.numpyro` is NumPyro
over JAX (imported only when used: JAX is an optional extra). The networks are the only
twins (:mod:`pyrocrl.nets` and :mod:`pyrocrl.nets_jax`).

This is the role ``pyroapi`` plays for Pyro and NumPyro, with two differences that matter
here. A pyrocrl program carries its backend as an attribute (``program.backend``), so a
Pyro model and its NumPyro twin live side by side in one process (as the twin trainer and
the parity tests need) without switching a process-wide setting; and nothing reseeds a
global random generator (``pyroapi.pyro_backend`` enters ``seed(rng_seed=1)``, which under
Pyro resets torch's, NumPy's and Python's generators).
"""

__all__ = ["INTERFACE", "get_backend"]

import importlib
from types import ModuleType

INTERFACE = (
    # primitives and handlers
    "name", "dist", "sample", "plate", "factor", "deterministic", "mask", "replay", "enum",
    "trace", "nodes", "log_probs", "check_traces", "check_targets", "InterventionValue",
    # array operations
    "arange", "argmax", "as_array", "broadcast_shapes", "broadcast_to", "cast", "concat",
    "det", "exp", "full", "isnan", "jvp", "log", "maximum", "norm", "normal", "sigmoid",
    "softmax", "std", "stop_gradient", "take_along", "uniform", "where", "zeros_like",
)  # fmt: skip
"""The names every backend module defines (its ``__all__``)."""

BACKENDS = {"pyro": "pyrocrl.backends.pyro", "numpyro": "pyrocrl.backends.numpyro"}
"""Backend names and their modules."""


def get_backend(name: str) -> ModuleType:
    """The backend module called ``name`` (``"pyro"`` or ``"numpyro"``)."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {name!r}")
    return importlib.import_module(BACKENDS[name])
