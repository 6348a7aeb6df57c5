"""A jitted training loop for the NumPyro ILCM: the JAX twin of
:class:`pyrocrl.inference.svi.Trainer`.

Steps run in compiled chunks (``lax.scan`` over ``chunk`` steps); the recipe's settings
enter as per-step arrays, so one compilation serves a whole run, phases included.
Parameters live in a dict keyed by their NumPyro names; Adam with gradient-norm clipping
matches PyTorch's (bias-corrected, ``eps = 1e-8``). Randomness is ``fold_in(key, step)``
and the minibatch order a function of ``(seed, epoch)``, so a resumed run is exactly the
uninterrupted one. Everything around the steps (resuming, the log, checkpoints in the Pyro
trainer's format) is :class:`~pyrocrl.inference.svi.TrainingLoop`, shared with that trainer.

On several devices (``devices=``) training is data parallel: every step's minibatch is
split along the batch axis over a one-axis :class:`~jax.sharding.Mesh` (``"batch"``), while
the data, the parameters and the optimizer state are replicated; the gradients are summed
across the devices by the compiler. The global batch stays the recipe's ``batch_size``, so
the run is the one-device run up to the order of floating-point sums.
"""

__all__ = [
    "NETWORKS",
    "JAXTrainer",
    "Placement",
    "Schedule",
    "TwinTrainer",
    "bind",
    "ilcm_loss",
]

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from jax.sharding import Mesh, NamedSharding, PartitionSpec, SingleDeviceSharding
from numpyro import handlers

from pyrocrl.devices import jax_devices
from pyrocrl.errors import TrainingError
from pyrocrl.inference.guides_jax import NumPyroILCMGuide
from pyrocrl.inference.objectives import REGULARIZERS, TERMS, pair_objective
from pyrocrl.inference.recipes import Phase, Recipe, for_model
from pyrocrl.inference.svi import TrainingLoop
from pyrocrl.models.ilcm_jax import NumPyroILCM

NETWORKS = (
    ("model", "likelihood"),
    ("model", "solution"),
    ("guide", "encoder"),
    ("guide", "intervention_encoder"),
)
"""``(owner, attribute)`` of every trained network; its parameters are ``params[attribute]``."""


class Schedule(NamedTuple("Settings", [(f.name, Any) for f in fields(Phase)])):
    """The settings of one or more steps: :class:`~pyrocrl.inference.recipes.Phase` as
    arrays, one field per field of a phase."""

    __slots__ = ()

    @classmethod
    def from_phases(cls, phases: list[Any]) -> "Schedule":
        """Stack :class:`~pyrocrl.inference.recipes.Phase` objects, one row per step."""
        return cls(*(jnp.asarray([getattr(p, f) for p in phases]) for f in cls._fields))


def bind(model: NumPyroILCM, guide: NumPyroILCMGuide, networks: dict[str, Any]):
    """``(model, guide)`` with the networks of :data:`NETWORKS` replaced by ``networks``
    (by attribute): copies that live as long as the computation that uses them."""
    parts = {owner: {a: networks[a] for o, a in NETWORKS if o == owner} for owner, _ in NETWORKS}
    model = model.replace(**parts["model"])
    return model, guide.replace(model=model, **parts["guide"])


def ilcm_loss(
    params: dict[str, Any],
    static: dict[str, Any],
    model: NumPyroILCM,
    guide: NumPyroILCMGuide,
    x: jax.Array,
    x_tilde: jax.Array,
    key: jax.Array,
    schedule: Schedule,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``(loss, report)`` of one minibatch:
    :func:`~pyrocrl.inference.objectives.pair_objective` with the trainable arrays
    ``params`` (and the rest, ``static``) of the networks, as a function JAX can
    differentiate and compile. The phases are the branches of one ``lax.switch`` on the
    schedule's traced switches, so one compiled step serves a whole run. The report holds
    every name of :data:`~pyrocrl.inference.objectives.TERMS` and
    :data:`~pyrocrl.inference.objectives.REGULARIZERS` (zero where a phase has none) and
    ``loss``."""
    networks = {a: eqx.combine(params[a], static[a]) for a in params}
    model, guide = bind(model, guide, networks)

    def branch(pretrain: bool, deterministic: bool):
        def run(_):
            options = {"pretrain": pretrain, "deterministic": deterministic}
            with handlers.seed(rng_seed=key):
                loss, report, _ = pair_objective(model, guide, x, x_tilde, schedule, **options)
            report = {k: report.get(k, jnp.zeros(())) for k in (*TERMS, *REGULARIZERS)}
            return {**report, "loss": loss}

        return run

    index = jnp.where(schedule.pretrain, 0, jnp.where(schedule.deterministic, 2, 1))
    branches = [branch(True, False), branch(False, False), branch(False, True)]
    report = jax.lax.switch(index, branches, None)
    return report["loss"], report


class Placement(NamedTuple):
    """Where a run's arrays live. ``replicated``: the sharding of everything every device
    holds whole (the data ``(N, 2, D)``, the parameters, the optimizer state, the
    settings); ``rows``: of a chunk's minibatch indices ``(chunk, B)``; ``batch``: of one
    minibatch ``(B, 2, D)`` inside a step. All ``None`` is JAX's default placement (its
    default device, nothing committed): the one-device code path."""

    devices: tuple[Any, ...] = ()
    replicated: Any = None
    rows: Any = None
    batch: Any = None

    @classmethod
    def on(cls, devices: Sequence[Any]) -> "Placement":
        """Everything on one device, or data parallel over several: a mesh with one axis,
        ``"batch"``, along which each minibatch is split."""
        if len(devices) == 1:
            whole = SingleDeviceSharding(devices[0])
            return cls(tuple(devices), whole, whole)
        mesh = Mesh(np.asarray(devices), ("batch",))
        return cls(
            tuple(devices),
            NamedSharding(mesh, PartitionSpec()),
            NamedSharding(mesh, PartitionSpec(None, "batch")),
            NamedSharding(mesh, PartitionSpec("batch")),
        )

    @classmethod
    def choose(
        cls, device: str | None = None, devices: int | Sequence[Any] | None = None
    ) -> "Placement":
        """The placement for a trainer's ``device`` (a string for
        :func:`~pyrocrl.devices.jax_devices`) and ``devices`` (a count of devices of that
        platform, or the JAX devices themselves).

        :raises ValueError: on devices JAX does not have, or both a device string and a
            sequence of devices.
        """
        if device in (None, "auto") and devices in (None, 1):
            return cls()
        if devices is None or isinstance(devices, int):
            return cls.on(jax_devices(device, devices))
        if device is not None:
            raise ValueError(f"device={device!r} and a sequence of devices: give one of them")
        devices = list(devices)
        if not devices or len(set(devices)) != len(devices):
            raise ValueError(f"devices={devices}: give one or more distinct JAX devices")
        return cls.on(devices)

    @property
    def count(self) -> int:
        """How many devices share each minibatch."""
        return max(1, len(self.devices))

    def check(self, batch_size: int) -> None:
        """Refuse a minibatch that does not split evenly over the devices."""
        if batch_size % self.count:
            raise ValueError(
                f"the batch size {batch_size} does not split over {self.count} devices: "
                f"choose a batch size that is a multiple of {self.count}, or other devices"
            )

    def replicate(self, tree: Any) -> Any:
        """``tree``'s arrays, whole on every device."""
        return tree if self.replicated is None else jax.device_put(tree, self.replicated)

    def split_rows(self, rows: jax.Array) -> jax.Array:
        """A chunk's indices ``(chunk, B)``, each step's ``B`` split over the devices."""
        return rows if self.rows is None else jax.device_put(rows, self.rows)

    def split_batch(self, batch: jax.Array) -> jax.Array:
        """One minibatch ``(B, 2, D)`` inside a step, split along ``B`` over the devices."""
        if self.batch is None:
            return batch
        return jax.lax.with_sharding_constraint(batch, self.batch)


class JAXTrainer(TrainingLoop):
    """Fit a :class:`~pyrocrl.models.ilcm_jax.NumPyroILCM` and its guide to pairs.

    :param model, guide: the NumPyro programs (their networks hold the initial values and
        receive the trained ones).
    :param recipe: a :class:`~pyrocrl.inference.recipes.Recipe` or a preset name.
    :param seed: seeds the minibatch order and every random draw.
    :param checkpoint: a file written every ``checkpoint_every`` steps and at the end.
    :param chunk: steps per compiled call (a chunk also ends where a checkpoint is due or a
        learning-rate cycle starts).
    :param device: ``None`` or ``"auto"``: JAX's default device; ``"cpu"``, ``"gpu"`` (or
        ``"cuda"``), ``"cuda:1"``: see :func:`~pyrocrl.devices.jax_devices`.
    :param devices: ``None`` or ``1``: one device; a number: that many devices of
        ``device``'s platform, the first ones; or a sequence of JAX devices. With several,
        each minibatch is split over them (data parallel; the batch size must be a
        multiple of their number), the data and parameters replicated.
    :raises ValueError: on devices JAX does not have, or a batch size that does not split
        over the devices.
    """

    backend = "jax"
    label = "fit (jax)"
    starting = "compiling (once per process, ~15 s)"

    def __init__(
        self,
        model: NumPyroILCM,
        guide: NumPyroILCMGuide,
        recipe: str | Recipe = "fast",
        *,
        seed: int = 0,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 2000,
        progress: bool | None = None,
        log_every: int = 100,
        chunk: int = 100,
        device: str | None = None,
        devices: int | Sequence[Any] | None = None,
    ) -> None:
        self.model, self.guide = model, guide
        self.recipe, self.seed = for_model(recipe, model), seed
        self.placement = Placement.choose(device, devices)
        self.placement.check(self.recipe.batch_size)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every, self.progress = checkpoint_every, progress
        self.log_every, self.chunk = log_every, chunk
        self.static, self.params = {}, {}
        self._partition()
        self.adam = optax.scale_by_adam()
        self.opt_state = self.adam.init(self.params)
        self._place()
        # several devices: what a chunk returns (parameters, optimizer state, reports) is
        # whole on every device, like what it takes
        outputs = (
            {} if self.placement.batch is None else {"out_shardings": self.placement.replicated}
        )
        self._run = jax.jit(self._chunk, donate_argnums=(0, 1), **outputs)

    # -- the compiled chunk -------------------------------------------------------------------
    def _chunk(self, params, opt_state, data, rows, schedule, steps, active, key):
        grad = jax.value_and_grad(ilcm_loss, has_aux=True)
        clip = self.recipe.grad_clip

        def body(carry, inputs):
            params, opt_state = carry
            index, phase, step, on = inputs
            batch = self.placement.split_batch(data[index])
            (_, report), grads = grad(
                params,
                self.static,
                self.model,
                self.guide,
                batch[:, 0],
                batch[:, 1],
                jax.random.fold_in(key, step),
                phase,
            )
            # settling: the solution function alone (the others' gradients and steps zeroed)
            keep = {a: jnp.where(phase.settle & (a != "solution"), 0.0, 1.0) for a in grads}
            grads = {a: jax.tree.map(lambda g, a=a: g * keep[a], grads[a]) for a in grads}
            norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads)))

            def update(_):
                clipped = jax.tree.map(lambda g: g * jnp.minimum(1.0, clip / (norm + 1e-6)), grads)
                updates, new_state = self.adam.update(clipped, opt_state)
                new = {
                    a: jax.tree.map(
                        lambda p, u, a=a: p - phase.lr * keep[a] * u, params[a], updates[a]
                    )
                    for a in params
                }
                return new, new_state

            carry = jax.lax.cond(on, update, lambda _: (params, opt_state), None)
            return carry, {**report, "grad_norm": norm}

        (params, opt_state), reports = jax.lax.scan(
            body, (params, opt_state), (rows, schedule, steps, active)
        )
        return params, opt_state, reports

    # -- the steps ----------------------------------------------------------------------------
    def _steps(self, data: torch.Tensor, start: int, stop: int, steps_per_epoch: int):
        # A step's random draws do not depend on how its minibatch is split: JAX's results
        # do not depend on shardings, with jax_threefry_partitionable on or off. The flag
        # picks which numbers are drawn (a run depends on it as on the JAX version; on by
        # default since JAX 0.5, and left as it is); on, each device draws only its own
        # part of a batch-shaped draw.
        place, key, step = self.placement, jax.random.PRNGKey(self.seed), start
        data = place.replicate(jnp.asarray(data.numpy()))
        self._place()
        while step < stop:
            due = self.checkpoint_every - step % self.checkpoint_every
            size = min(self.chunk, stop - step, due)
            steps = np.arange(step, step + self.chunk)
            phases = [self._phase(s, steps_per_epoch) for s in steps]
            restarts = [i for i, p in enumerate(phases[:size]) if p.restart and i]
            size = restarts[0] if restarts else size  # a new cycle starts inside: stop there
            if phases[0].restart:
                self.opt_state = place.replicate(self.adam.init(self.params))
            rows = np.stack([self._rows(s, steps_per_epoch, len(data)) for s in steps])
            settings = (
                Schedule.from_phases(phases),
                jnp.asarray(steps),
                jnp.asarray(np.arange(self.chunk) < size),
                key,
            )
            self.params, self.opt_state, reports = self._run(
                self.params,
                self.opt_state,
                data,
                place.split_rows(jnp.asarray(rows)),
                *place.replicate(settings),
            )
            reports = {k: np.asarray(v)[:size] for k, v in reports.items()}
            for i in range(size):
                bad = [k for k, v in reports.items() if not np.isfinite(v[i])]
                if bad:
                    raise TrainingError(
                        f"step {step + i} ({phases[i].name} phase): the term {bad[0]!r} is "
                        f"{reports[bad[0]][i]}; the last checkpoint holds the work before it"
                    )
            self._write_back()
            for i in range(size):
                yield phases[i], {k: v[i] for k, v in reports.items()}
            step += size

    def _partition(self) -> None:
        """Split every network into its trainable arrays and the rest."""
        for owner, attribute in NETWORKS:
            module = getattr(getattr(self, owner), attribute)
            self.params[attribute], self.static[attribute] = eqx.partition(
                module, eqx.is_inexact_array
            )

    def _place(self) -> None:
        """Put the parameters and the optimizer state on the trainer's devices."""
        self.params = self.placement.replicate(self.params)
        self.opt_state = self.placement.replicate(self.opt_state)

    def _write_back(self) -> None:
        """Put the trained parameters into the model's and guide's networks."""
        networks = {a: eqx.combine(self.params[a], self.static[a]) for a in self.params}
        self.model, self.guide = bind(self.model, self.guide, networks)

    # -- checkpoints: parameters under their Pyro names, and the optimizer's arrays ----------
    def _state(self) -> dict[str, Any]:
        return {"adam": [torch.as_tensor(np.array(a)) for a in jax.tree.leaves(self.opt_state)]}

    def _load(self, payload: dict[str, Any]) -> None:
        leaves, treedef = jax.tree.flatten(self.opt_state)
        if len(payload["adam"]) != len(leaves):
            raise ValueError("the optimizer state has another structure")
        self.guide = self.guide.replace(model=self.model)
        self._partition()
        self.opt_state = jax.tree.unflatten(
            treedef, [jnp.asarray(a.numpy()) for a in payload["adam"]]
        )
        self._place()


class TwinTrainer(JAXTrainer):
    """Train Pyro modules (an :class:`~pyrocrl.models.ilcm.ILCM` with built-in parts and
    its :class:`~pyrocrl.inference.guides.ILCMGuide`) with the JAX backend.

    The modules' NumPyro twins are trained by :class:`JAXTrainer`, and the trained
    parameters copied back at the end of every :meth:`fit`, so everything downstream
    (evaluation, queries, graphs) uses the Pyro modules, ``pyro_model`` and ``pyro_guide``.
    Checkpoints are the JAX trainer's, which :func:`~pyrocrl.inference.fit.load_ilcm` reads
    like any other. ``device`` and ``devices`` are :class:`JAXTrainer`'s.
    """

    def __init__(
        self,
        model: Any,
        guide: Any,
        recipe: str | Recipe = "fast",
        *,
        seed: int = 0,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 2000,
        progress: bool | None = None,
        device: str | None = None,
        devices: int | Sequence[Any] | None = None,
    ) -> None:
        self.pyro_model, self.pyro_guide = model, guide
        twin = NumPyroILCM.from_torch(model)
        twin_guide = NumPyroILCMGuide.from_torch(guide, twin)
        recipe = for_model(recipe, model)
        super().__init__(
            twin,
            twin_guide,
            recipe,
            seed=seed,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            progress=progress,
            device=device,
            devices=devices,
        )

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        yield
        for module, twin in ((self.pyro_model, self.model), (self.pyro_guide, self.guide)):
            module.load_state_dict(twin.state_dict())
            module.eval()
