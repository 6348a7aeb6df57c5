"""A jitted training loop for the NumPyro ILCM: the JAX twin of
:class:`pyrocrl.inference.svi.Trainer`.

Steps run in compiled chunks (``lax.scan`` over ``chunk`` steps); the recipe's settings
enter as per-step arrays, so one compilation serves a whole run, phases included.
Parameters live in a dict keyed by their NumPyro names; Adam with gradient-norm clipping
matches PyTorch's (bias-corrected, ``eps = 1e-8``). Randomness is ``fold_in(key, step)``
and the minibatch order a function of ``(seed, epoch)``, so a resumed run is exactly the
uninterrupted one. Checkpoints are those of the Pyro trainer (no pickles), with the
parameters under the names of the Pyro modules' ``state_dict`` and the optimizer's arrays.
"""

__all__ = ["NETWORKS", "JAXTrainer", "Schedule", "TwinTrainer", "bind", "ilcm_loss"]

import time
from dataclasses import fields
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from numpyro import handlers

from pyrocrl.errors import CheckpointError, TrainingError
from pyrocrl.inference.guides_jax import NumPyroILCMGuide
from pyrocrl.inference.objectives import REGULARIZERS, TERMS, pair_objective
from pyrocrl.inference.recipes import Phase, Recipe, for_model
from pyrocrl.inference.svi import (
    RunningLog,
    TrainingResult,
    check_same_run,
    pairs_tensor,
    progress_bar,
    run_length,
)
from pyrocrl.io import load_checkpoint, save_checkpoint
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
    """``(loss, report)`` of one minibatch: :func:`~pyrocrl.inference.objectives.
    pair_objective` with the trainable arrays ``params`` (and the rest, ``static``) of the
    networks, as a function JAX can differentiate and compile. The phases are the branches
    of one ``lax.switch`` on the schedule's traced switches, so one compiled step serves a
    whole run. The report holds every name of :data:`~pyrocrl.inference.objectives.TERMS`
    and :data:`~pyrocrl.inference.objectives.REGULARIZERS` (zero where a phase has none)
    and ``loss``."""
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


class JAXTrainer:
    """Fit a :class:`~pyrocrl.models.ilcm_jax.NumPyroILCM` and its guide to pairs.

    :param model, guide: the NumPyro programs (their networks hold the initial values and
        receive the trained ones).
    :param recipe: a :class:`~pyrocrl.inference.recipes.Recipe` or a preset name.
    :param seed: seeds the minibatch order and every random draw.
    :param checkpoint: a file written every ``checkpoint_every`` steps and at the end.
    :param chunk: steps per compiled call.
    """

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
    ) -> None:
        self.model, self.guide = model, guide
        self.recipe = for_model(recipe, model)
        self.seed = seed
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        if checkpoint_every % chunk or (log_every % chunk and chunk % log_every):
            raise ValueError(
                "checkpoint_every must be a multiple of chunk, and log_every "
                "a multiple or a divisor of it"
            )
        self.checkpoint_every, self.progress = checkpoint_every, progress
        self.log_every, self.chunk = log_every, chunk
        self.static, self.params = {}, {}
        self._partition()
        self.adam = optax.scale_by_adam()
        self._progress: tuple[int, list[dict[str, Any]]] | None = None
        self.opt_state = self.adam.init(self.params)
        self._run = jax.jit(self._chunk, donate_argnums=(0, 1))

    # -- the compiled chunk -------------------------------------------------------------------
    def _chunk(self, params, opt_state, data, rows, schedule, steps, active, key):
        grad = jax.value_and_grad(ilcm_loss, has_aux=True)
        clip = self.recipe.grad_clip

        def body(carry, inputs):
            params, opt_state = carry
            index, phase, step, on = inputs
            batch = data[index]
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
            norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads)))

            def update(_):
                clipped = jax.tree.map(lambda g: g * jnp.minimum(1.0, clip / (norm + 1e-6)), grads)
                updates, new_state = self.adam.update(clipped, opt_state)
                return jax.tree.map(lambda p, u: p - phase.lr * u, params, updates), new_state

            carry = jax.lax.cond(on, update, lambda _: (params, opt_state), None)
            return carry, {**report, "grad_norm": norm}

        (params, opt_state), reports = jax.lax.scan(
            body, (params, opt_state), (rows, schedule, steps, active)
        )
        return params, opt_state, reports

    # -- the loop -----------------------------------------------------------------------------
    def fit(
        self, pairs: np.ndarray, *, resume: bool = True, until_epoch: float | None = None
    ) -> TrainingResult:
        """Train on pairs ``(N, 2, D)`` until the recipe ends (or ``until_epoch``); returns
        what the Pyro trainer returns, with ``history`` in the same format. Calling it
        again continues where the last call stopped."""
        data = jnp.asarray(pairs_tensor(pairs, self.model.dim_x).numpy())  # checks shape, NaN
        steps_per_epoch, total, stop = run_length(len(data), self.recipe, until_epoch)
        start_time = time.perf_counter()
        if self._progress is not None:
            step, history = self._progress
        else:
            step, history = 0, []
            if resume and self.checkpoint is not None and self.checkpoint.exists():
                step, history = self._restore()
        key = jax.random.PRNGKey(self.seed)
        bar = progress_bar(total, step, "fit (jax)", self.progress)
        log = RunningLog(history, self.log_every, stop, steps_per_epoch, bar)
        bar.set_postfix_str("compiling (once per process, ~15 s)")
        with bar:
            while step < stop:
                size = min(self.chunk, stop - step)
                steps = np.arange(step, step + self.chunk)
                phases = [
                    self.recipe.at(s / steps_per_epoch, (s - 1) / steps_per_epoch if s else None)
                    for s in steps
                ]
                restarts = [i for i, p in enumerate(phases[:size]) if p.restart and i]
                if restarts:  # a new learning-rate cycle starts inside: stop the chunk there
                    size = restarts[0]
                if phases[0].restart:
                    self.opt_state = self.adam.init(self.params)
                rows = np.stack([self._rows(s, steps_per_epoch, len(data)) for s in steps])
                active = np.arange(self.chunk) < size
                self.params, self.opt_state, reports = self._run(
                    self.params,
                    self.opt_state,
                    data,
                    jnp.asarray(rows),
                    Schedule.from_phases(phases),
                    jnp.asarray(steps),
                    jnp.asarray(active),
                    key,
                )
                reports = {k: np.asarray(v)[:size] for k, v in reports.items()}
                self._check(reports, step, phases)
                for i in range(size):
                    step += 1
                    log.add(step, phases[i], {k: v[i] for k, v in reports.items()})
                bar.update(size)
                if self.checkpoint is not None and (
                    step == stop or step % self.checkpoint_every == 0
                ):
                    self._save(step, history)
        self._progress = (step, history)
        self._write_back()
        return TrainingResult(
            steps=step,
            epochs=step / steps_per_epoch,
            wall_time=time.perf_counter() - start_time,
            history=history,
            checkpoint=self.checkpoint,
        )

    def _rows(self, step: int, steps_per_epoch: int, size: int) -> np.ndarray:
        """Indices of the minibatch of ``step``: the epoch's order is a function of
        ``(seed, epoch)``."""
        epoch, i = divmod(step, steps_per_epoch)
        if getattr(self, "_order_epoch", None) != epoch:
            seed = np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0]
            self._order, self._order_epoch = np.random.default_rng(seed).permutation(size), epoch
        batch = self.recipe.batch_size
        return self._order[i * batch : (i + 1) * batch]

    def _check(self, reports: dict[str, np.ndarray], step: int, phases: list[Any]) -> None:
        """Raise naming the first step and term that is not finite."""
        for i in range(len(reports["loss"])):
            bad = [k for k, v in reports.items() if not np.isfinite(v[i])]
            if bad:
                raise TrainingError(
                    f"step {step + i} ({phases[i].name} phase): the term {bad[0]!r} is "
                    f"{reports[bad[0]][i]}; the last checkpoint holds the work before it"
                )

    def _partition(self) -> None:
        """Split every network into its trainable arrays and the rest."""
        for owner, attribute in NETWORKS:
            module = getattr(getattr(self, owner), attribute)
            self.params[attribute], self.static[attribute] = eqx.partition(
                module, eqx.is_inexact_array
            )

    def _write_back(self) -> None:
        """Put the trained parameters into the model's and guide's networks."""
        networks = {a: eqx.combine(self.params[a], self.static[a]) for a in self.params}
        self.model, self.guide = bind(self.model, self.guide, networks)

    # -- checkpoints --------------------------------------------------------------------------
    def _save(self, step: int, history: list[dict[str, Any]]) -> None:
        """A checkpoint in the Pyro trainer's format (:func:`~pyrocrl.io.save_checkpoint`,
        no pickles): parameters under their Pyro names, so that
        :func:`~pyrocrl.inference.fit.load_ilcm` reads it, and the optimizer's arrays."""
        self._write_back()
        save_checkpoint(
            self.checkpoint,
            {
                "step": step,
                "seed": self.seed,
                "recipe": self.recipe.to_dict(),
                "backend": "jax",
                "history": history,
                "model": _tensors(self.model.state_dict()),
                "guide": _tensors(self.guide.state_dict()),
                "model_config": self.model.config,
                "guide_config": self.guide.config,
                "adam": [torch.as_tensor(np.array(a)) for a in jax.tree.leaves(self.opt_state)],
            },
        )

    def _restore(self) -> tuple[int, list[dict[str, Any]]]:
        try:
            payload = load_checkpoint(self.checkpoint)
        except CheckpointError as error:
            raise TrainingError(str(error)) from error
        if payload.get("backend") != "jax":
            raise TrainingError(
                f"checkpoint {self.checkpoint} was written by the Pyro backend; resume with "
                "backend='torch' or choose a new checkpoint path"
            )
        check_same_run(payload, self.recipe, self.seed, self.checkpoint)
        leaves, treedef = jax.tree.flatten(self.opt_state)
        try:
            self.model.load_state_dict(payload["model"])
            self.guide.load_state_dict(payload["guide"])
            if len(payload["adam"]) != len(leaves):
                raise ValueError("the optimizer state has another structure")
        except (KeyError, ValueError) as error:
            raise TrainingError(
                f"checkpoint {self.checkpoint} does not fit this model: {error}"
            ) from error
        self.guide = self.guide.replace(model=self.model)
        self._partition()
        self.opt_state = jax.tree.unflatten(
            treedef, [jnp.asarray(a.numpy()) for a in payload["adam"]]
        )
        return int(payload["step"]), list(payload["history"])


def _tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.array(v)) for k, v in arrays.items()}


class TwinTrainer:
    """Train Pyro modules (an :class:`~pyrocrl.models.ilcm.ILCM` with built-in parts and
    its :class:`~pyrocrl.inference.guides.ILCMGuide`) with the JAX backend.

    The modules are copied into their NumPyro twins, trained by :class:`JAXTrainer`, and
    the trained parameters copied back, so everything downstream (evaluation, queries,
    graphs) uses the Pyro model. The interface is that of the Pyro trainer's ``fit``;
    ``checkpoint`` is the JAX trainer's, which :func:`~pyrocrl.inference.fit.load_ilcm`
    reads like any other.
    """

    def __init__(
        self,
        model: Any,
        guide: Any,
        recipe: str | Recipe = "fast",
        *,
        seed: int = 0,
        checkpoint: str | Path | None = None,
        progress: bool | None = None,
    ) -> None:
        self.model, self.guide = model, guide
        self.recipe, self.seed, self.progress = for_model(recipe, model), seed, progress
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self._twins: JAXTrainer | None = None

    def fit(
        self, pairs: Any, *, resume: bool = True, until_epoch: float | None = None
    ) -> TrainingResult:
        data = pairs_tensor(pairs, self.model.dim_x).numpy()
        if self._twins is None:
            twin = NumPyroILCM.from_torch(self.model)
            guide = NumPyroILCMGuide.from_torch(self.guide, twin)
            self._twins = JAXTrainer(
                twin, guide, self.recipe, seed=self.seed, progress=self.progress
            )
        trainer = self._twins
        trainer.checkpoint = self.checkpoint
        result = trainer.fit(data, resume=resume, until_epoch=until_epoch)
        self.model.load_state_dict(_tensors(trainer.model.state_dict()))
        self.guide.load_state_dict(_tensors(trainer.guide.state_dict()))
        self.model.eval()
        self.guide.eval()
        return result
