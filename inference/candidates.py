"""The candidates of a fit (:func:`~pyrocrl.inference.fit.fit_ilcm`): each built from
:class:`ModelParts` and a model seed (:func:`build_candidate`), given a trainer
(:func:`make_trainer`), and the one to finish chosen (:func:`choose_candidate`) — the one an
earlier call left in the output directory (:func:`resumed_candidate`), the only one, or the
best of several after training each to the selection epoch (:func:`select_candidate`)."""

__all__ = [
    "CHECKPOINT_FILE",
    "MODELS",
    "PRECONDITION_PAIRS",
    "RESULTS_FILE",
    "SELECTION_FILE",
    "SELECTION_PAIRS",
    "Chosen",
    "ModelParts",
    "build_candidate",
    "build_model",
    "candidate_screen",
    "candidate_seed",
    "choose_candidate",
    "earlier_record",
    "make_trainer",
    "precondition",
    "remove_candidates",
    "resumed_candidate",
    "select_candidate",
    "selection_score",
    "train_candidate",
    "train_in_processes",
    "validation_metrics",
]

import contextlib
import json
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from pyrocrl.devices import torch_device
from pyrocrl.errors import CheckpointError, TrainingError
from pyrocrl.inference.evaluate import elbo_per_pair, evaluate
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.inference.objectives import ILCMObjective
from pyrocrl.inference.recipes import Recipe
from pyrocrl.inference.svi import Trainer
from pyrocrl.io import load_checkpoint, write_json
from pyrocrl.models.baselines import DVAE, BetaVAE
from pyrocrl.models.elcm import ELCM
from pyrocrl.models.ilcm import ILCM
from pyrocrl.observations import paired_rows

SELECTION_PAIRS = 4096
"""Training pairs on which candidates are compared."""
PRECONDITION_PAIRS = 20_000
"""Training pairs whose statistics precondition the encoder."""
CHECKPOINT_FILE = "checkpoint.pt"
"""The finished (or finishing) candidate's checkpoint in ``output``."""
RESULTS_FILE = "results.json"
"""The report, the recipe's settings and the training history, in ``output``."""
SELECTION_FILE = "selection.json"
"""The candidate selection and its training seconds, kept in ``output`` while the chosen
candidate is finished (so a resumed run reports them)."""
VALIDATION_PAIRS = 2000
"""Test pairs evaluated while training (``validate_every``)."""

MODELS: dict[str, type[ILCM]] = {"ilcm": ILCM, "elcm": ELCM, "dvae": DVAE, "betavae": BetaVAE}
"""The built-in latent causal models by name."""


def candidate_seed(seed: int, candidate: int) -> int:
    """Model seed of candidate ``candidate`` of a run with ``seed`` (candidate 0: ``seed``)."""
    if candidate == 0:
        return seed
    return int(np.random.SeedSequence([seed, candidate]).generate_state(1)[0])


def candidate_screen(candidate: int) -> bool:
    """Whether candidate ``candidate`` starts its encoder the way sensor readings need
    (:meth:`~pyrocrl.inference.guides.ILCMGuide.precondition` with ``screen``: features
    that the others determine nonlinearly left out, the sparsest changes first) or from
    the plain linear solution, as image features need: the even ones screen, the odd ones
    do not, and a fit of one candidate screens.

    The screen keeps a sensor reading the product of two others from bending the start
    directions; but a variable that image features hold along a curve (the arm of
    CausalCircuit) makes some features nonlinear functions of the others too, and the
    screen then starts the encoder without it. Nothing in the features tells the two
    apart; the training ELBO, on which the candidates are compared, does.
    """
    return candidate % 2 == 0


ModelSpec = str | ILCM | Callable[[], ILCM] | None
GuideSpec = ILCMGuide | Callable[[ILCM], ILCMGuide] | None
Builder = Callable[..., tuple[ILCM, ILCMGuide]]
"""``build(model_seed, screen=True) → (model, guide)``: a candidate, ready to train
(``screen``: :func:`candidate_screen`)."""
TrainerFactory = Callable[..., Trainer]
"""``trainer_for(model, guide, seed=…, checkpoint=…)``: :func:`make_trainer` with the
settings of the fit bound."""


# --- building ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelParts:
    """What each candidate of a fit is built from (the arguments of
    :func:`~pyrocrl.inference.fit.fit_ilcm`).

    :param model: a key of :data:`MODELS` (``None``: ``"ilcm"``), a model module, or a
        function that builds one.
    :param guide: a guide module, a function of the model that builds one, or ``None`` for
        the built-in :class:`~pyrocrl.inference.guides.ILCMGuide`.
    :param hidden: hidden layer sizes of the built-in networks.
    :param likelihood: of a built-in model; :param intervention_encoder: of the built-in
        guide; :param max_targets: the most variables one intervention of a built-in model
        hits; :param intervention: the kind of intervention it models;
        :param noise_transform: the built-in ILCM's transform of each variable's own noise
        (:class:`~pyrocrl.solution.AffineSolution`).
    """

    model: ModelSpec = None
    guide: GuideSpec = None
    hidden: tuple[int, ...] = (64, 64)
    likelihood: str = "normal"
    intervention_encoder: str = "heuristic"
    max_targets: int = 1
    intervention: str = "perfect"
    noise_transform: str = "identity"

    def new_model(self, n: int, dim_x: int) -> ILCM:
        """The model: built in by name, the given module, or what the given function
        builds."""
        if self.model is None or isinstance(self.model, str):
            kind = MODELS[self.model or "ilcm"]
            options: dict[str, Any] = {}
            if self.max_targets != 1:
                options["max_targets"] = self.max_targets
            if self.intervention != "perfect":
                options["intervention"] = self.intervention
            if self.noise_transform != "identity":
                if kind is not ILCM:
                    raise ValueError(
                        f"noise_transform={self.noise_transform!r} is an option of the ILCM, "
                        f"not of {self.model!r}"
                    )
                options["noise_transform"] = self.noise_transform
            return kind(dim_x, n, hidden=self.hidden, likelihood=self.likelihood, **options)
        return self.model if isinstance(self.model, nn.Module) else self.model()

    def new_guide(self, model: ILCM) -> ILCMGuide:
        """The guide of ``model``: built in, the given module, or what the given function
        builds from the model."""
        if self.guide is None:
            return ILCMGuide(
                model, hidden=self.hidden, intervention_encoder=self.intervention_encoder
            )
        return self.guide if isinstance(self.guide, nn.Module) else self.guide(model)


def build_model(parts: ModelParts, model_seed: int, n: int, dim_x: int) -> tuple[ILCM, ILCMGuide]:
    """A model and its guide, initialized from ``model_seed`` (the global random state is
    left as it was).

    :raises ValueError: if the model does not have ``n`` causal variables and ``dim_x``
        features.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(model_seed)
        model = parts.new_model(n, dim_x)
        guide = parts.new_guide(model)
    if model.n != n or model.dim_x != dim_x:
        raise ValueError(
            f"the model has n={model.n}, dim_x={model.dim_x}; the data need n={n}, dim_x={dim_x}"
        )
    return model, guide


def precondition(
    model: ILCM, guide: ILCMGuide, data: torch.Tensor, recipe: Recipe, screen: bool = True
) -> None:
    """Precondition the guide's encoder on the first :data:`PRECONDITION_PAIRS` pairs of
    ``data`` ``(N, 2, D)`` (unpaired observations skipped), with the feature screen or not
    (``screen``), when the recipe, as the model is trained with it
    (``model.training_recipe``), asks for it."""
    if model.training_recipe(recipe).precondition:
        sample = data[torch.as_tensor(paired_rows(data))][:PRECONDITION_PAIRS]
        guide.precondition(sample[:, 0], sample[:, 1], screen=screen)


def build_candidate(
    model_seed: int,
    *,
    parts: ModelParts,
    data: torch.Tensor,
    n: int,
    recipe: Recipe,
    screen: bool = True,
) -> tuple[ILCM, ILCMGuide]:
    """A candidate ready to train on ``data`` ``(N, 2, D)``: :func:`build_model`, its
    feature transform fitted to ``data`` (``model.fit_features``), then :func:`precondition`
    (with the feature screen or not: ``screen``)."""
    model, guide = build_model(parts, model_seed, n, data.shape[-1])
    model.fit_features(data)
    precondition(model, guide, data, recipe, screen=screen)
    return model, guide


# --- training ------------------------------------------------------------------------------


def validation_metrics(
    model: ILCM,
    guide: ILCMGuide,
    test: xr.Dataset,
    dci_train: xr.Dataset | None = None,
    *,
    seed: int = 0,
) -> Callable[[int], dict[str, float]]:
    """``validation(step)`` for a trainer: :func:`~pyrocrl.inference.evaluate.evaluate` on
    the first :data:`VALIDATION_PAIRS` pairs of ``test`` (DCI regressors fitted on 3000
    pairs)."""
    small_test = test.isel(pair=slice(0, VALIDATION_PAIRS))

    def validation(step: int) -> dict[str, float]:
        return evaluate(
            model,
            guide,
            small_test,
            dci_train,
            seed=seed,
            dci_pairs=3000,
            dci_test_pairs=VALIDATION_PAIRS,
        )

    return validation


def make_trainer(
    model: ILCM,
    guide: ILCMGuide,
    recipe: Recipe,
    *,
    seed: int,
    checkpoint: Path | None = None,
    checkpoint_every: int = 2000,
    backend: str = "torch",
    progress: bool | None = None,
    validate_every: int | None = None,
    validate_model: bool | None = None,
    test: xr.Dataset | None = None,
    dci_train: xr.Dataset | None = None,
    evaluation_seed: int = 0,
    device: str | None = None,
    devices: int | None = None,
    num_nodes: int = 1,
) -> Trainer:
    """The trainer of one candidate: :class:`~pyrocrl.inference.svi.Trainer` with the
    :class:`~pyrocrl.inference.objectives.ILCMObjective`, or for ``backend="jax"`` the
    :class:`~pyrocrl.inference.svi_jax.TwinTrainer`.

    :param seed: the candidate's model seed; :param checkpoint: where it checkpoints, every
        ``checkpoint_every`` steps and at the end.
    :param test: with ``validate_every``, evaluated while training
        (:func:`validation_metrics`, seeded by ``evaluation_seed``).
    :param device, devices: where the trainer runs (:mod:`pyrocrl.devices`) and over how
        many devices each minibatch is split: for ``backend="jax"`` by
        :class:`~pyrocrl.inference.svi_jax.JAXTrainer`'s sharding; for Pyro, more than one
        device (or ``num_nodes``) trains with one process each
        (:class:`~pyrocrl.inference.distributed.DistributedTrainer`, on GPUs when
        ``device`` names one, else CPU processes).
    """
    if backend == "jax":
        from pyrocrl.inference.svi_jax import TwinTrainer

        return TwinTrainer(
            model,
            guide,
            recipe,
            seed=seed,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            progress=progress,
            device=device,
            devices=devices,
        )
    options = {
        "seed": seed,
        "checkpoint": checkpoint,
        "checkpoint_every": checkpoint_every,
        "progress": progress,
        "validate_model": validate_model,
    }
    objective = ILCMObjective(model, guide)
    if (devices or 1) * num_nodes > 1:
        from pyrocrl.inference.distributed import DistributedTrainer

        accelerator = "cpu" if torch_device(device).type == "cpu" else "gpu"
        return DistributedTrainer(
            model,
            guide,
            objective,
            recipe,
            devices=devices or 1,
            num_nodes=num_nodes,
            accelerator=accelerator,
            **options,
        )
    validation = None
    if test is not None and validate_every:
        validation = validation_metrics(model, guide, test, dci_train, seed=evaluation_seed)
    return Trainer(
        model,
        guide,
        objective,
        recipe,
        validation=validation,
        validate_every=validate_every,
        device=device,
        **options,
    )


# --- choosing ------------------------------------------------------------------------------


@dataclass
class Chosen:
    """The candidate a fit finishes, and what it carries over from before."""

    model: ILCM
    guide: ILCMGuide
    trainer: Trainer
    """Its trainer, checkpointing to ``output/checkpoint.pt`` (if there is an ``output``)."""
    selection: list[dict[str, float]] = field(default_factory=list)
    """The candidates compared: ``candidate``, ``seed``, ``screen``
    (:func:`candidate_screen`) and training ``elbo`` each."""
    earlier: float = 0.0
    """Training seconds of the earlier calls that this one resumes."""


def selection_score(model: ILCM, guide: ILCMGuide, pairs: torch.Tensor, seed: int) -> float:
    """The ELBO per pair on which candidates are compared, on ``pairs`` ``(N, 2, D)``; every
    candidate is scored with the same random draws (``seed``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return elbo_per_pair(model, guide, pairs[:, 0], pairs[:, 1])


def train_candidate(
    candidate: int,
    seed: int,
    data: torch.Tensor,
    until_epoch: float,
    build: Builder,
    trainer_for: TrainerFactory,
    checkpoint: Path,
    resume: bool,
) -> None:
    """Train candidate ``candidate`` of a run with ``seed`` until ``until_epoch``, into its
    ``checkpoint``: what a process of :func:`select_candidate` with ``workers`` does."""
    torch.set_num_threads(1)
    c_seed = candidate_seed(seed, candidate)
    model, guide = build(c_seed, screen=candidate_screen(candidate))
    trainer = trainer_for(model, guide, seed=c_seed, checkpoint=checkpoint, progress=False)
    trainer.fit(data, resume=resume, until_epoch=until_epoch)


def train_in_processes(
    candidates: list[int], workers: int, *arguments: Any, paths: list[Path], resume: bool
) -> None:
    """:func:`train_candidate` for each of ``candidates``, ``workers`` at a time, each in
    a process of its own (started afresh: ``spawn``), into ``paths``.

    :raises TrainingError: naming a candidate that failed (the others go on to the end).
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        jobs = {
            c: pool.submit(train_candidate, c, *arguments, path, resume)
            for c, path in zip(candidates, paths, strict=True)
        }
        for c, job in jobs.items():
            try:
                job.result()
            except Exception as error:
                raise TrainingError(f"candidate {c} failed in its process: {error}") from error


def select_candidate(
    data: torch.Tensor,
    recipe: Recipe,
    *,
    seed: int,
    build: Builder,
    trainer_for: TrainerFactory,
    output: Path | None = None,
    resume: bool = True,
    workers: int = 1,
) -> Chosen:
    """Train ``recipe.candidates`` candidates (model seeds :func:`candidate_seed`, every
    other one preconditioned without the feature screen: :func:`candidate_screen`) on
    ``data`` ``(N, 2, D)`` until ``recipe.select_epoch`` and keep the one with the best
    :func:`selection_score` on the first :data:`SELECTION_PAIRS` pairs (the first one of
    equals). Each checkpoints to ``output/candidate{c}.pt`` (resumed when ``resume``); the
    kept one's trainer then checkpoints to ``output/checkpoint.pt``.

    :param workers: train that many candidates at a time, each in its own process
        (:func:`train_in_processes`; ``build`` and ``trainer_for`` must be picklable, as
        those of :func:`~pyrocrl.inference.fit.fit_ilcm` for built-in models are); each
        then resumes here from its checkpoint at the selection epoch, so the selection is
        the one of a single process.
    """
    subset = data[:SELECTION_PAIRS]
    selection: list[dict[str, float]] = []
    best: tuple[float, Chosen] | None = None
    with contextlib.ExitStack() as stack:
        directory = output
        if directory is None and workers > 1:  # the processes hand over by checkpoint
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        paths = [
            directory / f"candidate{c}.pt" if directory is not None else None
            for c in range(recipe.candidates)
        ]
        if workers > 1:
            arguments = (seed, data, recipe.select_epoch, build, trainer_for)
            candidates = list(range(recipe.candidates))
            train_in_processes(candidates, workers, *arguments, paths=paths, resume=resume)
            resume = True  # each candidate now stands at the selection epoch
        for c, path in enumerate(paths):
            c_seed, screen = candidate_seed(seed, c), candidate_screen(c)
            model, guide = build(c_seed, screen=screen)
            trainer = trainer_for(model, guide, seed=c_seed, checkpoint=path)
            trainer.fit(data, resume=resume, until_epoch=recipe.select_epoch)
            score = selection_score(model, guide, subset, seed)
            selection.append({"candidate": c, "seed": c_seed, "screen": screen, "elbo": score})
            if best is None or score > best[0]:
                best = (score, Chosen(model, guide, trainer, selection))
    chosen = best[1]
    chosen.trainer.checkpoint = output / CHECKPOINT_FILE if output is not None else None
    return chosen


def resumed_candidate(output: Path, build: Builder, trainer_for: TrainerFactory) -> Chosen:
    """The candidate whose checkpoint an earlier call left in ``output``, with that call's
    selection and training seconds (:func:`earlier_record`).

    :raises CheckpointError: if the checkpoint, or the record beside it, is unreadable.
    """
    selection, earlier = earlier_record(output)
    final = output / CHECKPOINT_FILE
    seed = int(load_checkpoint(final)["seed"])
    model, guide = build(seed)
    trainer = trainer_for(model, guide, seed=seed, checkpoint=final)
    return Chosen(model, guide, trainer, selection, earlier)


def choose_candidate(
    data: torch.Tensor,
    recipe: Recipe,
    *,
    seed: int,
    build: Builder,
    trainer_for: TrainerFactory,
    output: Path | None = None,
    resume: bool = True,
    started: float | None = None,
    workers: int = 1,
) -> Chosen:
    """The candidate to finish: the one in ``output/checkpoint.pt`` when ``resume`` finds
    it; else the only one (``seed``); else the one :func:`select_candidate` keeps, whose
    selection is recorded in ``output/selection.json`` with the training seconds since
    ``started`` (a ``time.perf_counter()``; default: now) until ``results.json`` holds it.
    ``workers``: candidates trained at a time, each in its own process.
    """
    started = time.perf_counter() if started is None else started
    final = output / CHECKPOINT_FILE if output is not None else None
    if resume and final is not None and final.exists():
        return resumed_candidate(output, build, trainer_for)
    if recipe.candidates == 1:
        model, guide = build(seed)
        return Chosen(model, guide, trainer_for(model, guide, seed=seed, checkpoint=final))
    chosen = select_candidate(
        data,
        recipe,
        seed=seed,
        build=build,
        trainer_for=trainer_for,
        output=output,
        resume=resume,
        workers=workers,
    )
    if output is not None:  # kept until results.json holds it
        record = {"selection": chosen.selection, "train_time": time.perf_counter() - started}
        write_json(output / SELECTION_FILE, record)
    return chosen


def earlier_record(output: Path) -> tuple[list[dict[str, float]], float]:
    """The candidate selection and training seconds of the earlier calls that a resumed
    :func:`~pyrocrl.inference.fit.fit_ilcm` goes on from: from ``results.json`` if that run
    finished, else from the record written at the selection (a run interrupted while
    finishing loses only the seconds of that last stretch).

    :raises CheckpointError: if the record is not one that ``fit_ilcm`` wrote.
    """
    for name in (RESULTS_FILE, SELECTION_FILE):
        path = output / name
        if path.exists():
            try:
                record = json.loads(path.read_text())
                return list(record["selection"]), float(record["train_time"])
            except (ValueError, KeyError, TypeError) as error:
                raise CheckpointError(
                    f"{path} is not a record written by fit_ilcm ({error!r}); remove it to "
                    "resume without the earlier selection and timing"
                ) from error
    return [], 0.0


def remove_candidates(output: Path | None) -> None:
    """The candidates' checkpoints, once the chosen one is finished."""
    if output is not None:
        for leftover in output.glob("candidate*"):
            leftover.unlink()
