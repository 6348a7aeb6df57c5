"""Stochastic variational inference for pair programs, following a :class:`Recipe`.

The :class:`Trainer` owns nothing global: parameters live in the model and guide modules
(no Pyro param store), randomness comes from a seed, and a training step is a function of
``(model, guide, minibatch, phase)``. Checkpoints hold the modules, the optimizer, the
random state and the history, so a killed run resumes to the same result as an
uninterrupted one.
"""

__all__ = [
    "RunningLog",
    "Trainer",
    "TrainingLoop",
    "TrainingResult",
    "check_same_run",
    "pairs_tensor",
    "progress_bar",
    "run_length",
    "shard_stream",
]

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch
import xarray as xr
from torch import nn
from tqdm.auto import tqdm

from pyrocrl.data.dataset import validate
from pyrocrl.devices import torch_device
from pyrocrl.errors import NonFiniteError, TrainingError
from pyrocrl.inference.recipes import Phase, Recipe, for_model
from pyrocrl.io import check_state_dict, load_checkpoint, on_cpu, save_checkpoint
from pyrocrl.observations import check_observations, paired_rows

Objective = Callable[[torch.Tensor, torch.Tensor, Phase], tuple[torch.Tensor, dict[str, float]]]
Validation = Callable[[int], dict[str, float]]


@dataclass
class TrainingResult:
    """What :meth:`Trainer.fit` returns."""

    steps: int
    epochs: float
    wall_time: float
    """Seconds spent in this call (a resumed run counts only its own part)."""
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None


@contextlib.contextmanager
def shard_stream(seed: int, step: int, shard: int, device: torch.device) -> Iterator[None]:
    """The random stream of one shard of one step, a function of ``(seed, step, shard)``
    alone, so that every process of a data-parallel run draws what one process computing
    all shards draws (the caller's stream is left as it was)."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(np.random.SeedSequence([seed, step, shard]).generate_state(1)[0]))
        yield


def pairs_tensor(data: xr.Dataset | torch.Tensor | np.ndarray, dim_x: int | None = None):
    """Observations as a float tensor ``(N, 2, D)``, with checks.

    Accepts a pyrocrl dataset, or an array whose second axis holds the two worlds.

    :raises ValueError: on a wrong shape, a feature size other than ``dim_x``, or
        non-finite values (:func:`~pyrocrl.observations.check_observations`).
    """
    if isinstance(data, xr.Dataset):
        validate(data)
        if "image_shape" in data.attrs:
            raise ValueError(
                "this dataset holds images: reduce them to features first "
                "(pyrocrl.inference.reduce.fit_image_vae and reduce, or 'pyrocrl reduce')"
            )
        data = data["x"].values
    check_observations(data, "pairs", dim_x=dim_x, pairs=True, finite=False)  # dtype, shape
    x = torch.as_tensor(data if torch.is_tensor(data) else np.asarray(data))
    x = x.to(torch.get_default_dtype())
    check_observations(x, "pairs", dim_x=dim_x, pairs=True, unpaired=True)  # as trained on
    return x


def run_length(
    pairs: int, recipe: Recipe, until_epoch: float | None, unpaired: int = 0
) -> tuple[int, int, int]:
    """``(steps per epoch, steps of the recipe, step to stop at)`` for ``pairs`` training
    pairs and ``unpaired`` observations; ``until_epoch`` stops early. With unpaired
    observations a step takes a batch of each, and an epoch is a pass over the larger
    part."""
    batch = recipe.batch_size
    if pairs < batch:
        raise ValueError(f"{pairs} pairs are fewer than one batch of {batch}")
    if 0 < unpaired < batch:
        raise ValueError(
            f"{unpaired} unpaired observations are fewer than one batch of {batch}: train "
            "on the pairs alone (pyrocrl.data.pairs_only) or add observations"
        )
    steps_per_epoch = max(pairs, unpaired) // batch
    total = max(1, math.ceil(recipe.epochs * steps_per_epoch))
    if until_epoch is None:
        return steps_per_epoch, total, total
    return steps_per_epoch, total, min(total, math.ceil(until_epoch * steps_per_epoch))


def progress_bar(total: int, initial: int, desc: str, progress: bool | None) -> tqdm:
    """The training progress bar (``progress=None``: shown when attached to a terminal)."""
    disable = None if progress is None else not progress
    return tqdm(total=total, initial=initial, desc=desc, unit="step", disable=disable)


class RunningLog:
    """Running means of the step reports, appended to ``history`` every ``log_every``
    steps and at ``stop``, each entry with its step, epoch, learning rate and phase."""

    def __init__(
        self,
        history: list[dict[str, Any]],
        log_every: int,
        stop: int,
        steps_per_epoch: int,
        bar: tqdm,
    ) -> None:
        self.history, self.log_every, self.stop = history, log_every, stop
        self.steps_per_epoch, self.bar = steps_per_epoch, bar
        self.running: dict[str, float] = {}

    def add(self, step: int, phase: Phase, report: dict[str, float]) -> None:
        """Count the report of the step that ends at ``step``."""
        for key, value in report.items():
            self.running[key] = self.running.get(key, 0.0) + float(value)
        if step % self.log_every and step != self.stop:
            return
        count = (step - 1) % self.log_every + 1
        entry: dict[str, Any] = {
            "step": step,
            "epoch": step / self.steps_per_epoch,
            "lr": phase.lr,
        }
        entry.update({k: v / count for k, v in self.running.items()})
        entry["phase"] = phase.name
        self.history.append(entry)
        self.running = {}
        self.bar.set_postfix(phase=phase.name, loss=f"{entry['loss']:.3g}")


def check_same_run(saved: dict[str, Any], recipe: Recipe, seed: int, path: Path | None) -> None:
    """Refuse to resume from a checkpoint written with another recipe or seed."""
    if Recipe.from_dict(saved["recipe"]) != recipe or saved["seed"] != seed:
        raise TrainingError(
            f"checkpoint {path} was written with another recipe or seed; "
            "resume with the same settings or choose a new checkpoint path"
        )


BACKEND_NAMES = {"torch": "Pyro", "jax": "JAX"}
"""How messages name the backend that wrote a checkpoint (its ``"backend"`` entry)."""


class TrainingLoop:
    """What every trainer does around its steps: the run's length, resuming (from memory
    or a checkpoint of the same run only), the running log, validation, checkpoints and
    the progress bar. A trainer supplies :meth:`_steps`, and may extend :meth:`_session`,
    :meth:`_state` and :meth:`_load`.

    Subclasses set ``model``, ``guide``, ``recipe``, ``seed``, ``checkpoint``,
    ``checkpoint_every``, ``progress`` and ``log_every``.
    """

    backend = "torch"
    """The ``"backend"`` entry of the checkpoints it writes and reads."""
    label = "fit"
    """The progress bar's label."""
    starting = ""
    """What the progress bar says until the first report."""
    validation: Validation | None = None
    validate_every: int | None = None
    _progress: tuple[int, list[dict[str, Any]]] | None = None

    def fit(
        self, pairs: Any, *, resume: bool = True, until_epoch: float | None = None
    ) -> TrainingResult:
        """Train on ``pairs`` (``(N, 2, D)`` or a dataset) until the recipe ends.

        A trainer remembers where it stopped: calling :meth:`fit` again (e.g. after
        ``until_epoch``) continues exactly where the last call left off. Otherwise, with
        ``resume=True`` and an existing checkpoint file, training continues from the file.

        :param until_epoch: stop at this epoch instead of the recipe's end (a checkpoint is
            written there).
        """
        data = pairs_tensor(pairs, getattr(self.model, "dim_x", None))
        paired = paired_rows(data)
        self._strata = (np.flatnonzero(paired), np.flatnonzero(~paired))
        counts = [len(rows) for rows in self._strata]
        steps_per_epoch, total, stop = run_length(counts[0], self.recipe, until_epoch, counts[1])
        start_time = time.perf_counter()
        with self._session():
            if self._progress is not None:
                step, history = self._progress
            elif resume and self.checkpoint is not None and self.checkpoint.exists():
                step, history = self._restore(load_checkpoint(self.checkpoint))
            else:
                step, history = 0, []
            bar = progress_bar(total, step, self.label, self.progress)
            log = RunningLog(history, self.log_every, stop, steps_per_epoch, bar)
            if self.starting:
                bar.set_postfix_str(self.starting)
            with bar:
                for phase, report in self._steps(data, step, stop, steps_per_epoch):
                    step += 1
                    log.add(step, phase, report)
                    if self.validation is not None and (
                        step == total or (self.validate_every and step % self.validate_every == 0)
                    ):
                        metrics = self._validate(step)
                        history.append({"step": step, "epoch": step / steps_per_epoch, **metrics})
                        bar.write(
                            f"step {step}: "
                            + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
                        )
                    if self.checkpoint is not None and (
                        step == stop or step % self.checkpoint_every == 0
                    ):
                        save_checkpoint(self.checkpoint, self.state(step, history))
                    bar.update(1)
            self._progress = (step, history)
        return TrainingResult(
            steps=step,
            epochs=step / steps_per_epoch,
            wall_time=time.perf_counter() - start_time,
            history=history,
            checkpoint=self.checkpoint,
        )

    def _steps(
        self, data: Any, start: int, stop: int, steps_per_epoch: int
    ) -> Iterator[tuple[Phase, dict[str, float]]]:
        """Train from ``start`` to ``stop``, yielding each step's phase and report; when it
        yields, the parameters are those after the step (or a later one in the same
        compiled chunk: then no checkpoint may fall inside the chunk)."""
        raise NotImplementedError

    def _session(self) -> contextlib.AbstractContextManager:
        """The context of one call of :meth:`fit`."""
        return contextlib.nullcontext()

    def _validate(self, step: int) -> dict[str, float]:
        return self.validation(step)

    def _phase(self, step: int, steps_per_epoch: int) -> Phase:
        """The recipe's phase at ``step`` (a restart is flagged at its first step), with
        the weight of an unpaired observation: the recipe's ``unpaired_weight``, or for
        ``None`` ``M / N`` with ``N`` pairs and ``M`` unpaired observations (each batch
        holds as many of each, so that is the bound of the whole data)."""
        phase = self.recipe.at(
            step / steps_per_epoch, (step - 1) / steps_per_epoch if step else None
        )
        pairs, unpaired = (len(rows) for rows in getattr(self, "_strata", ((), ())))
        if not unpaired:
            return phase
        weight = self.recipe.unpaired_weight
        return replace(phase, unpaired_weight=unpaired / pairs if weight is None else weight)

    def _rows(self, step: int, steps_per_epoch: int, size: int) -> Any:
        """Indices of the minibatch of ``step``: each epoch's order is a function of
        ``(seed, epoch)`` (:meth:`_permutation`). With unpaired observations, a batch of
        pairs followed by one of unpaired observations, each part in its own cycle
        (orders from ``(seed, cycle)`` and ``(seed, 1, cycle)``)."""
        pairs, unpaired = getattr(self, "_strata", (None, ()))
        if len(unpaired) == 0:
            return self._cycle(step, size, steps_per_epoch, [self.seed])
        batch = self.recipe.batch_size
        parts = [
            rows[np.asarray(self._cycle(step, len(rows), len(rows) // batch, [self.seed, *s]))]
            for rows, s in ((pairs, []), (unpaired, [1]))
        ]
        return np.concatenate(parts)

    def _cycle(self, step: int, size: int, steps_per_cycle: int, entropy: list[int]) -> Any:
        """Batch ``step`` of cycles through ``size`` rows, each cycle in its own order
        (:meth:`_permutation`, seeded by ``entropy`` and the cycle)."""
        cycle, i = divmod(step, steps_per_cycle)
        key = (tuple(entropy), cycle)
        orders = self.__dict__.setdefault("_orders", {})
        if key not in orders:
            seed = np.random.SeedSequence([*entropy, cycle]).generate_state(1)[0]
            orders[key] = self._permutation(size, int(seed))
            for old in [k for k in orders if k[0] == key[0] and k != key]:
                del orders[old]
        batch = self.recipe.batch_size
        return orders[key][i * batch : (i + 1) * batch]

    def _permutation(self, size: int, seed: int) -> Any:
        return np.random.default_rng(seed).permutation(size)

    # -- checkpoints ------------------------------------------------------------------------
    def state(self, step: int, history: list[dict[str, Any]]) -> dict[str, Any]:
        """The checkpoint after ``step`` (read by :func:`~pyrocrl.inference.fit.load_ilcm`)."""
        return {
            "step": step,
            "seed": self.seed,
            "recipe": self.recipe.to_dict(),
            "backend": self.backend,
            "model": on_cpu(self.model.state_dict()),
            "guide": on_cpu(self.guide.state_dict()),
            "model_config": dict(getattr(self.model, "config", {})),
            "guide_config": dict(getattr(self.guide, "config", {})),
            "history": history,
            **self._state(),
        }

    def _state(self) -> dict[str, Any]:
        """The trainer's own part of a checkpoint (optimizer, random state)."""
        return {}

    def _restore(self, payload: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        written = payload.get("backend", "torch")
        if written != self.backend:
            raise TrainingError(
                f"checkpoint {self.checkpoint} was written by the "
                f"{BACKEND_NAMES.get(written, written)} backend; resume with "
                f"backend={written!r} or choose a new checkpoint path"
            )
        check_same_run(payload, self.recipe, self.seed, self.checkpoint)
        check_state_dict(self.model, payload.get("model"), self.checkpoint, "model")
        check_state_dict(self.guide, payload.get("guide"), self.checkpoint, "guide")
        try:
            self.model.load_state_dict(payload["model"])
            self.guide.load_state_dict(payload["guide"])
            self._load(payload)
        except (KeyError, ValueError, RuntimeError) as error:
            raise TrainingError(
                f"checkpoint {self.checkpoint} does not fit this model: {error}"
            ) from error
        return int(payload["step"]), list(payload["history"])

    def _load(self, payload: dict[str, Any]) -> None:
        """Take the trainer's own part of a checkpoint (see :meth:`_state`)."""


class Trainer(TrainingLoop):
    """Fit a model and guide to weakly supervised pairs.

    :param model: the generative program's module (e.g. :class:`~pyrocrl.models.ILCM`).
    :param guide: its guide module.
    :param objective: ``(x, x_tilde, phase) → (loss, report)``.
    :param recipe: a :class:`~pyrocrl.inference.recipes.Recipe` or a preset name.
    :param int seed: seeds the minibatch order and every random draw of training.
    :param checkpoint: path of the checkpoint file (written every ``checkpoint_every`` steps
        and at the end); ``None`` keeps nothing on disk.
    :param validation: called as ``validation(step)`` every ``validate_every`` steps and at
        the end; its numbers join the history. It runs on a private random stream, so it
        does not change the course of training.
    :param progress: show a progress bar (``None``: when attached to a terminal).
    :param log_every: steps between history entries (running means of the report).
    :param validate_model: switch Pyro's validation of distributions and traces on or off
        while training (``None`` keeps the global setting). Off saves about an eighth of
        the time per step; non-finite values are still caught and named.
    :param device: where the modules and minibatches live while training: ``None`` or
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"``
        (:func:`~pyrocrl.devices.torch_device`). The modules are back on the CPU when
        :meth:`fit` returns, and checkpoints hold CPU tensors.
    :param shards: split every minibatch into this many interleaved shards (rows
        ``s, s + S, …``), each with its own random stream seeded by ``(seed, step, shard)``,
        and average their gradients: what ``shards`` data-parallel processes compute
        (:class:`~pyrocrl.inference.distributed.DistributedTrainer`), in one process. The
        recipe's batch-level regularizers are computed per shard. ``1`` (the default) keeps
        one random stream for the whole run.
    """

    def __init__(
        self,
        model: nn.Module,
        guide: nn.Module,
        objective: Objective,
        recipe: str | Recipe = "fast",
        *,
        seed: int = 0,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 2000,
        validation: Validation | None = None,
        validate_every: int | None = None,
        progress: bool | None = None,
        log_every: int = 100,
        validate_model: bool | None = None,
        device: str | torch.device | None = None,
        shards: int = 1,
    ) -> None:
        self.model, self.guide, self.objective = model, guide, objective
        self.validate_model = validate_model
        self._rng: torch.Tensor | None = None
        self.recipe = for_model(recipe, model)
        if not 1 <= shards <= self.recipe.batch_size:
            raise ValueError(
                f"shards={shards}: a minibatch of {self.recipe.batch_size} pairs splits "
                "into 1 to that many shards"
            )
        self.device, self.shards = torch_device(device), shards
        self.seed = seed
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every = checkpoint_every
        self.validation, self.validate_every = validation, validate_every
        self.progress, self.log_every = progress, log_every
        seen: set[int] = set()
        self.params = [
            p
            for p in (*model.parameters(), *guide.parameters())
            if id(p) not in seen and not seen.add(id(p))
        ]
        self.names = {
            id(p): f"{role}.{name}"
            for role, module in (("guide", guide), ("model", model))
            for name, p in module.named_parameters()
        }
        solution = getattr(model, "solution", None)
        self.solution_params = {id(p) for p in getattr(solution, "parameters", list)()}
        self.optimizer = self._new_optimizer()

    def _new_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.params, lr=self.recipe.lr, foreach=True)

    def _state(self) -> dict[str, Any]:
        state = {"optimizer": on_cpu(self.optimizer.state_dict())}
        if self.shards == 1:  # a sharded run draws from (seed, step, shard) alone
            state["rng"] = torch.random.get_rng_state()
        else:
            state["shards"] = self.shards
        return state

    def _load(self, payload: dict[str, Any]) -> None:
        shards = int(payload.get("shards", 1))
        if shards != self.shards:
            raise TrainingError(
                f"checkpoint {self.checkpoint} was written by a run over {shards} "
                f"shard(s) (devices), this one has {self.shards}; resume with the same "
                "number of devices or choose a new checkpoint path"
            )
        self.optimizer.load_state_dict(payload["optimizer"])
        if shards == 1:
            torch.random.set_rng_state(payload["rng"])

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        """A private random stream (seeded, or where the last call stopped) and Pyro's
        validation as asked; the modules train inside and are in eval mode after."""
        validation_context = (
            pyro.validation_enabled(self.validate_model)
            if self.validate_model is not None
            else contextlib.nullcontext()
        )
        with torch.random.fork_rng(devices=[]), validation_context:
            if self._rng is None:
                torch.manual_seed(self.seed)
            else:
                torch.random.set_rng_state(self._rng)
            self.model.to(self.device).train()
            self.guide.to(self.device).train()
            try:
                yield
                self._rng = torch.random.get_rng_state()
            finally:
                self.model.cpu().eval()
                self.guide.cpu().eval()

    def _steps(self, data: torch.Tensor, start: int, stop: int, steps_per_epoch: int):
        for step in range(start, stop):
            rows = data[self._rows(step, steps_per_epoch, len(data))]
            phase = self._phase(step, steps_per_epoch)
            yield phase, self._step(rows[:, 0], rows[:, 1], phase, step)

    def _permutation(self, size: int, seed: int) -> torch.Tensor:
        return torch.randperm(size, generator=torch.Generator().manual_seed(seed))

    def _validate(self, step: int) -> dict[str, float]:
        with torch.random.fork_rng(devices=[]):
            self.model.cpu().eval()
            self.guide.cpu().eval()
            try:
                return self.validation(step)
            finally:
                self.model.to(self.device).train()
                self.guide.to(self.device).train()

    def _step(self, x: torch.Tensor, x_tilde: torch.Tensor, phase: Phase, step: int):
        if phase.restart:
            self.optimizer = self._new_optimizer()
        for group in self.optimizer.param_groups:
            group["lr"] = phase.lr
        x, x_tilde = x.to(self.device), x_tilde.to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        if self.shards == 1:
            try:
                loss, report = self.objective(x, x_tilde, phase)
            except NonFiniteError as error:
                raise TrainingError(f"step {step} ({phase.name} phase): {error}") from error
            loss.backward()
        else:
            report = self._sharded_backward(x, x_tilde, phase, step)
        if phase.settle:  # the solution function alone: Adam skips parameters without grad
            for p in self.params:
                if id(p) not in self.solution_params:
                    p.grad = None
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.recipe.grad_clip)
        if not torch.isfinite(norm):
            bad = [
                self.names.get(id(p), "?")
                for p in self.params
                if p.grad is not None and not torch.isfinite(p.grad).all()
            ]
            raise TrainingError(
                f"step {step} ({phase.name} phase): non-finite gradient in {', '.join(bad)}"
            )
        self.optimizer.step()
        report["grad_norm"] = float(norm)
        return report

    # -- shards: the steps of data-parallel training, in one process or several --------------
    def _own_shards(self) -> range:
        """The shards this process computes (all of them; a distributed trainer's process
        computes one)."""
        return range(self.shards)

    def _sharded_backward(
        self, x: torch.Tensor, x_tilde: torch.Tensor, phase: Phase, step: int
    ) -> dict[str, float]:
        """Accumulate ``∇ loss_s / S`` of this process's shards ``s`` of the minibatch, each
        on its own random stream, then :meth:`_combine` them with the other processes'.
        Returns the report averaged over all shards."""
        reports, failure = [], ""
        for shard in self._own_shards():
            with shard_stream(self.seed, step, shard, self.device):
                try:
                    loss, report = self.objective(
                        x[shard :: self.shards], x_tilde[shard :: self.shards], phase
                    )
                except NonFiniteError as error:
                    failure = failure or f"shard {shard}: {error}"
                    continue
            (loss / self.shards).backward()
            reports.append(report)
        report, failure = self._combine(reports, failure)
        if failure:
            raise TrainingError(f"step {step} ({phase.name} phase), {failure}")
        return report

    def _combine(
        self, reports: list[dict[str, float]], failure: str
    ) -> tuple[dict[str, float], str]:
        """The report averaged over the shards, and the first failure among them (the
        gradients of one process already hold the sum over its shards)."""
        keys = reports[0].keys() if reports else ()
        return {k: sum(r[k] for r in reports) / len(reports) for k in keys}, failure
