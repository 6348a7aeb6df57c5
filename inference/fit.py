"""Fitting an ILCM end to end: build, train, evaluate, report, save; and loading it back.

:func:`fit_ilcm` is a composition of its stages, each usable on its own:

1. :func:`check_fit_options` refuses what cannot be fitted, before anything is built;
2. :func:`~pyrocrl.inference.candidates.build_candidate` builds a model and its guide from
   :class:`~pyrocrl.inference.candidates.ModelParts` and a model seed, and preconditions
   the encoder;
3. :func:`~pyrocrl.inference.candidates.make_trainer` makes a candidate's trainer (Pyro,
   or the JAX twin);
4. :func:`~pyrocrl.inference.candidates.choose_candidate` picks the candidate to finish:
   the one an earlier call left in ``output``, the only one, or the best of several after
   training each to the selection epoch; its trainer finishes it;
5. :func:`held_out_metrics` evaluates the finished model on held-out pairs;
6. :func:`write_results` writes ``results.json`` and ``training.png`` beside the checkpoint.
"""

__all__ = [
    "MODELS",
    "FitReport",
    "build_ilcm",
    "candidate_seed",
    "check_fit_options",
    "check_parts",
    "fit_ilcm",
    "held_out_metrics",
    "load_ilcm",
    "recorded_metrics",
    "write_results",
]

import json
import os
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import xarray as xr
from torch import nn

from pyrocrl.data.dataset import max_targets as dataset_max_targets
from pyrocrl.devices import jax_devices, torch_device
from pyrocrl.errors import CheckpointError
from pyrocrl.features import FeatureScaling
from pyrocrl.inference.candidates import (
    CHECKPOINT_FILE,
    MODELS,
    RESULTS_FILE,
    SELECTION_FILE,
    GuideSpec,
    ModelParts,
    ModelSpec,
    build_candidate,
    build_model,
    candidate_seed,
    choose_candidate,
    make_trainer,
    remove_candidates,
)
from pyrocrl.inference.evaluate import evaluate
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.inference.recipes import Recipe, for_targets, get_recipe
from pyrocrl.inference.runs import run_directory, run_fingerprint
from pyrocrl.inference.svi import pairs_tensor, run_length
from pyrocrl.interventions import num_targets
from pyrocrl.io import (
    check_sizes,
    check_state_dict,
    load_checkpoint,
    save_figure,
    write_json,
)
from pyrocrl.models.ilcm import ILCM, INTERVENTIONS, SCALED_LIKELIHOODS
from pyrocrl.observations import paired_rows
from pyrocrl.solution import NOISE_TRANSFORMS


@dataclass
class FitReport:
    """Summary of a fit: settings, training length and time, and test metrics."""

    recipe: str
    seed: int
    pairs: int
    batch_size: int
    steps: int
    epochs: float
    train_time: float
    total_time: float
    metrics: dict[str, float] = field(default_factory=dict)
    unpaired: int = 0
    """Unpaired observations trained on beside the ``pairs``."""
    dci_pairs: tuple[int, int] | None = None
    dci_on_test: bool = False
    """Whether the DCI regressors were fitted on test pairs (no separate DCI set)."""
    data: dict[str, Any] = field(default_factory=dict)
    selection: list[dict[str, float]] = field(default_factory=list)
    """Candidates of the recipe: seed, feature screen and training ELBO at the selection
    epoch."""
    files: list[str] = field(default_factory=list)
    model: str = "ILCM"
    """Class name of the fitted model."""
    backend: str = "torch"
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """The trainer's record: an entry per logged step (``step``, ``epoch``, ``phase``,
    ``loss``, ``elbo``, …) and one per validation (``step`` and the validation metrics),
    as ``results.json`` keeps it and :func:`~pyrocrl.plots.plot_history` draws it."""

    def format(self) -> str:
        """The report printed by ``pyrocrl fit``."""
        lines = []
        source = ", ".join(f"{k}={v}" for k, v in self.data.items()) or "user data"
        backend = " (JAX backend)" if self.backend == "jax" else ""
        lines.append(
            f"{self.model} fitted with recipe {self.recipe!r}{backend}, model seed {self.seed} "
            f"({source})"
        )
        if self.selection:
            best = max(self.selection, key=lambda c: c["elbo"])
            scores = ", ".join(f"{c['elbo']:.2f}" for c in self.selection)
            kept = f"kept candidate {best['candidate']:.0f}"
            if not best.get("screen", True):  # records from before candidate_screen have none
                kept += " (preconditioned without the feature screen)"
            lines.append(
                f"  {len(self.selection)} candidates, training ELBO per pair {scores}: {kept}"
            )
        lines.append(
            f"  training: {self.steps} steps = {self.epochs:.2f} epochs of {self.pairs} pairs "
            + (f"and {self.unpaired} unpaired observations " if self.unpaired else "")
            + f"(batch {self.batch_size}) in {_duration(self.train_time)}"
        )
        names = {
            "dci_disentanglement": "DCI disentanglement",
            "dci_completeness": "DCI completeness",
            "dci_informativeness": "DCI informativeness (R²)",
            "intervention_accuracy": "intervention accuracy",
            "elbo": "ELBO per pair",
        }
        if self.metrics:
            lines.append(f"  test set ({self.metrics.get('test_pairs', 0):.0f} pairs):")
        for key, label in names.items():
            if key in self.metrics:
                lines.append(f"    {label:<28s}{self.metrics[key]:9.4f}")
        if self.dci_pairs is not None:
            fitted, scored = self.dci_pairs
            total = int(self.metrics.get("test_pairs", scored))
            subset = f"{scored} of the {total}" if scored < total else f"all {total}"
            source = "test pairs (no separate DCI set)" if self.dci_on_test else "pairs"
            lines.append(
                f"  DCI regressors fitted on {fitted} {source} and scored on {subset} test pairs"
            )
        lines.append(f"  wall time: {_duration(self.total_time)} in all")
        if self.files:
            lines.append("  wrote " + ", ".join(self.files))
        return "\n".join(lines)


def _save_history_plot(history: list[dict[str, Any]], path: Path) -> Path:
    from matplotlib.figure import Figure  # no pyplot: the user's backend stays as it is

    from pyrocrl.plots import plot_history

    save_figure(plot_history(history, figure=Figure()), path, dpi=110)
    return path


def _dci_sizes(
    requested: tuple[int, int], dci_train: xr.Dataset | None, test: xr.Dataset
) -> tuple[int, int]:
    """Pairs the DCI regressors were actually fitted and scored on."""
    train = dci_train if dci_train is not None else test
    return min(requested[0], train.sizes["pair"]), min(requested[1], test.sizes["pair"])


def _duration(seconds: float) -> str:
    minutes, sec = divmod(seconds, 60)
    return f"{int(minutes)}m{sec:04.1f}s" if minutes else f"{sec:.1f}s"


SOLUTIONS = {"ilcm": "affine", "elcm": "graph", "dvae": "affine-empty", "betavae": "affine-empty"}
"""The solution function each built-in model records in its configuration."""


def build_ilcm(
    dim_x: int,
    n: int,
    *,
    model_config: dict[str, Any] | None = None,
    guide_config: dict[str, Any] | None = None,
) -> tuple[ILCM, ILCMGuide]:
    """A latent causal model and its guide from (checkpoint) configurations of the built-in
    parts. ``model_config["model"]`` names the model: a key of :data:`MODELS` (``"ilcm"``
    by default)."""
    model_config = {"dim_x": dim_x, "n": n, **(model_config or {})}
    kind = model_config.pop("model", "ilcm")
    if kind not in MODELS:
        raise CheckpointError(f"unknown model {kind!r}; built-in models: {sorted(MODELS)}")
    solution = model_config.pop("solution", "affine")
    if solution != SOLUTIONS[kind] or (model_config.get("likelihood", "normal") is None):
        raise CheckpointError(
            "this model was built with parts of your own: pass it to load_ilcm(path, model=...)"
        )
    model_config["hidden"] = tuple(model_config.get("hidden", (64, 64)))
    model = MODELS[kind](model_config.pop("dim_x"), model_config.pop("n"), **model_config)
    guide_config = dict(guide_config or {})
    if guide_config.get("intervention_encoder", "heuristic") is None:
        raise CheckpointError(
            "this guide has an intervention encoder of your own: pass it to "
            "load_ilcm(path, guide=...)"
        )
    guide_config["hidden"] = tuple(guide_config.get("hidden", (64, 64)))
    return model, ILCMGuide(model, **guide_config)


def load_ilcm(
    path: str | os.PathLike, *, model: ModelSpec = None, guide: GuideSpec = None
) -> tuple[ILCM, ILCMGuide]:
    """Model and guide from a checkpoint written by :func:`fit_ilcm` or the trainer.

    The checkpoint is checked before anything is built from it: its configurations must be
    complete and their sizes those of its tensors, and the tensors must be exactly those
    of the model and guide they describe (:func:`~pyrocrl.io.check_state_dict`).

    A model fitted with parts of your own (a solution function, a likelihood, a guide)
    cannot be rebuilt from its configuration: give ``model`` (the module, or the function
    that built it for :func:`fit_ilcm`) and, if it was not the built-in one, ``guide`` (a
    module, or a function of the model); the checkpoint's state is loaded into them, after
    the same checks.

    :raises FileNotFoundError: if there is no file.
    :raises CheckpointError: naming what is wrong with the file.
    :raises ValueError, TypeError: on a ``model`` or ``guide`` that builds nothing
        (:func:`check_parts`).
    """
    check_parts(model, guide)
    payload = load_checkpoint(path)
    config = payload.get("model_config")
    guide_config = payload.get("guide_config")
    if not isinstance(config, dict) or "dim_x" not in config or "n" not in config:
        raise CheckpointError(f"{path} holds no model configuration")
    for part in ("model", "guide"):
        if not isinstance(payload.get(part), dict):
            raise CheckpointError(f"{path} holds no {part} state")
    check_sizes(config, ("dim_x", "n", "hidden"), payload["model"], path, "model")
    guide_config = guide_config if isinstance(guide_config, dict) else {}
    check_sizes(guide_config, ("hidden",), payload["guide"], path, "guide")
    try:
        if model is None and guide is None:
            model, guide = build_ilcm(
                config["dim_x"], config["n"], model_config=config, guide_config=guide_config
            )
        else:
            parts = ModelParts(
                model if model is not None else config.get("model", "ilcm"),
                guide,
                # the built-in part's sizes: the guide's when the model is given
                hidden=tuple(
                    (guide_config if model is not None else config).get("hidden", (64, 64))
                ),
                likelihood=config.get("likelihood") or "normal",
                intervention_encoder=guide_config.get("intervention_encoder") or "heuristic",
            )
            model, guide = build_model(parts, 0, config["n"], config["dim_x"])
    except (TypeError, ValueError) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"{path}: its configuration builds no model: {error}") from error
    check_state_dict(model, payload["model"], path, "model")
    check_state_dict(guide, payload["guide"], path, "guide")
    model.load_state_dict(payload["model"])
    guide.load_state_dict(payload["guide"])
    model.eval()
    guide.eval()
    return model, guide


def recorded_metrics(checkpoint: str | os.PathLike) -> dict[str, float] | None:
    """The test metrics that :func:`fit_ilcm` recorded beside ``checkpoint`` (in the
    ``results.json`` of its directory); ``None`` when there is no such record."""
    results = Path(checkpoint).parent / RESULTS_FILE
    return json.loads(results.read_text()).get("metrics") if results.exists() else None


def check_fit_options(
    n: int,
    recipe: Recipe,
    *,
    model: ModelSpec = None,
    guide: GuideSpec = None,
    backend: str = "torch",
    validate_every: int | None = None,
    dim_x: int | None = None,
    device: str | None = None,
    devices: int = 1,
    num_nodes: int = 1,
    candidate_workers: int = 1,
) -> None:
    """Refuse the settings of :func:`fit_ilcm` that cannot be fitted, before anything is
    built (the arguments are those of :func:`fit_ilcm`; ``dim_x``: the features of the
    training pairs).

    :raises ValueError: on ``n < 1`` or more variables than features, an unknown model name
        (:func:`check_parts`, which also raises ``TypeError``) or backend, ``validate_every``
        with the JAX backend or several devices, model or guide *modules* with a recipe of
        several candidates (each candidate needs a fresh one), or a device that is not here
        (:mod:`pyrocrl.devices`).
    :raises ImportError: for ``backend="jax"`` without the ``jax`` extra, or several Pyro
        devices without the ``scale`` extra (Lightning).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if dim_x is not None and n > dim_x:
        raise ValueError(
            f"{n} causal variables cannot be identified from {dim_x} features: the decoder "
            f"maps the variables to the features one to one, so n must be at most {dim_x}"
        )
    check_parts(model, guide)
    if backend not in ("torch", "jax"):
        raise ValueError(f"backend must be 'torch' or 'jax', got {backend!r}")
    if backend == "jax":
        _require_jax()
    if backend == "jax" and validate_every:
        raise ValueError("the JAX backend does not validate while training: drop validate_every")
    if devices < 1 or num_nodes < 1 or candidate_workers < 1:
        raise ValueError(
            f"devices={devices}, num_nodes={num_nodes}, candidate_workers="
            f"{candidate_workers}: each must be at least 1"
        )
    if candidate_workers > 1 and devices * num_nodes > 1:
        raise ValueError(
            "candidate_workers trains candidates in processes of their own: not with "
            "several devices (each candidate would start processes of its own)"
        )
    if backend == "jax":
        if num_nodes > 1:
            raise ValueError("the JAX backend trains on one node: drop num_nodes")
        jax_devices(device, devices)  # refuses devices that are not here
    else:
        torch_device(device)  # refuses a GPU that is not here
        if devices * num_nodes > 1:
            if validate_every:
                raise ValueError(
                    "several devices do not validate while training: drop validate_every"
                )
            try:
                import lightning  # noqa: F401
            except ImportError as error:
                raise ImportError(
                    "training on several devices needs Lightning: pip install 'pyrocrl[scale]'"
                ) from error
    if recipe.candidates > 1 and (isinstance(model, nn.Module) or isinstance(guide, nn.Module)):
        raise ValueError(
            f"recipe {recipe.name!r} trains {recipe.candidates} candidates: pass functions that "
            "build the model and guide, or use recipe.replace(candidates=1)"
        )


def check_parts(model: ModelSpec, guide: GuideSpec) -> None:
    """Refuse a model or guide that :class:`~pyrocrl.inference.candidates.ModelParts`
    cannot build from.

    :raises ValueError: on an unknown model name.
    :raises TypeError: on anything but a name (the model only), a module or a function.
    """
    if isinstance(model, str) and model not in MODELS:
        raise ValueError(f"unknown model {model!r}; built-in models: {sorted(MODELS)}")
    for part, spec in (("model", model), ("guide", guide)):
        if spec is not None and not (
            isinstance(spec, nn.Module)
            or callable(spec)
            or (part == "model" and isinstance(spec, str))
        ):
            raise TypeError(
                f"{part} must be {'a name, ' if part == 'model' else ''}a module or a function "
                f"that builds one, got {type(spec).__name__}"
            )


def _require_jax() -> None:
    import importlib

    try:
        for name in ("jax", "numpyro", "equinox", "optax"):
            importlib.import_module(name)
    except ImportError as error:
        raise ImportError(
            f"backend='jax' needs JAX ({error.name} is missing): pip install 'pyrocrl[jax]'"
        ) from error


def _prepared_directory(output: str | os.PathLike | None) -> Path | None:
    if output is None:
        return None
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    return output


def held_out_metrics(
    model: ILCM,
    guide: ILCMGuide,
    test: xr.Dataset | None,
    dci_train: xr.Dataset | None = None,
    *,
    seed: int = 0,
    dci_pairs: tuple[int, int] = (10_000, 5_000),
) -> dict[str, float]:
    """:func:`~pyrocrl.inference.evaluate.evaluate` on ``test`` with its size as
    ``test_pairs``; empty without ``test``.

    :param dci_pairs: pairs to fit the DCI regressors on (of ``dci_train``, else ``test``)
        and to score them on (of ``test``).
    """
    if test is None:
        return {}
    metrics = evaluate(
        model,
        guide,
        test,
        dci_train,
        seed=seed,
        dci_pairs=dci_pairs[0],
        dci_test_pairs=dci_pairs[1],
    )
    metrics["test_pairs"] = float(test.sizes["pair"])
    return metrics


def write_results(
    report: FitReport, output: Path, recipe: Recipe, history: list[dict[str, Any]]
) -> list[str]:
    """Write ``results.json`` (the report, ``recipe_settings`` and the training
    ``history``) and ``training.png`` into ``output``, beside the checkpoint; the selection
    record, which ``results.json`` now holds, is removed. Sets and returns
    ``report.files``."""
    report.files = [str(output / name) for name in (CHECKPOINT_FILE, RESULTS_FILE)]
    report.files.append(str(_save_history_plot(history, output / "training.png")))
    results = {**asdict(report), "recipe_settings": recipe.to_dict(), "history": history}
    write_json(output / RESULTS_FILE, results)
    (output / SELECTION_FILE).unlink(missing_ok=True)
    return report.files


def _data_source(train: xr.Dataset) -> dict[str, Any]:
    """The simulator settings a dataset records, for the report."""
    return {k: train.attrs[k] for k in ("simulator", "n", "graph_seed") if k in train.attrs}


def fit_ilcm(
    train: xr.Dataset,
    n: int,
    *,
    test: xr.Dataset | None = None,
    dci_train: xr.Dataset | None = None,
    recipe: str | Recipe = "fast",
    seed: int = 0,
    output: str | os.PathLike | None = None,
    resume: bool = True,
    hidden: tuple[int, ...] = (64, 64),
    intervention_encoder: str = "heuristic",
    likelihood: str = "normal",
    validate_every: int | None = None,
    validate_model: bool | None = None,
    progress: bool | None = None,
    dci_pairs: tuple[int, int] = (10_000, 5_000),
    model: ModelSpec = None,
    guide: GuideSpec = None,
    backend: str = "torch",
    checkpoint_every: int = 2000,
    max_targets: int | None = None,
    intervention: str | None = None,
    noise_transform: str = "identity",
    device: str | None = None,
    devices: int = 1,
    num_nodes: int = 1,
    candidate_workers: int = 1,
) -> tuple[ILCM, ILCMGuide, FitReport]:
    """Fit a latent causal model with ``n`` causal variables to the pairs of ``train``.

    By default the model is an ILCM; ``model="elcm"`` fits the explicit model
    (:class:`~pyrocrl.models.elcm.ELCM`), ``model="dvae"`` and ``model="betavae"`` the
    baselines :class:`~pyrocrl.models.baselines.DVAE` and
    :class:`~pyrocrl.models.baselines.BetaVAE` instead. Built-in models and their guide are built
    from ``hidden``, ``likelihood`` and ``intervention_encoder`` (seeded by ``seed``). To fit
    an extended generative model with the same recipe, pass ``model`` — a module, or a
    function that builds one (needed when the recipe trains several candidates) — and
    optionally ``guide``, a module or a function of the model.

    With ``recipe.candidates > 1``, that many models (seeds derived from ``seed``) train
    until ``recipe.select_epoch``; the one with the best ELBO on a fixed subset of the
    training pairs — no test data, no ground truth — is trained to the end.

    :param test: held-out pairs; with ground truth, the report has DCI and intervention
        accuracy (DCI regressors are fitted on ``dci_train``, or on ``test``).
    :param output: a directory for ``checkpoint.pt`` (written every ``checkpoint_every``
        steps and at the end), ``results.json`` and the run's fingerprint ``run.json``
        (:mod:`~pyrocrl.inference.runs`). With ``resume``, training resumes from the
        checkpoint (so do unfinished candidates) if the fingerprint is this call's, and is
        refused if not; without, the earlier run's files are removed. A resumed run reports
        the candidate selection and the training time of the calls before it as well. The
        directory is locked while the fit runs: a second fit into it is refused.
    :param validate_every: evaluate on (a part of) ``test`` every so many steps.
    :param validate_model: Pyro validation while training (see :class:`Trainer`).
    :param dci_pairs: how many pairs to fit the DCI regressors on and to score them on.
    :param max_targets: the most variables one intervention hits, for a built-in model
        (:mod:`pyrocrl.interventions`); default: the dataset's ``max_targets`` attribute,
        or 1. Above 1, the recipe's times are stretched for the sets
        (:func:`~pyrocrl.inference.recipes.for_targets`).
    :param intervention: ``"perfect"`` or ``"shift"`` (soft), for a built-in model;
        default: the dataset's ``intervention`` attribute, or ``"perfect"``.
    :param noise_transform: for the built-in ILCM: ``"identity"`` (default) or
        ``"spline"``, a learned monotone transform of each variable's own noise in its
        mechanism (:class:`~pyrocrl.solution.AffineSolution`); fit it with a recipe that
        settles the mechanisms (``"fast-settle"``, ``docs/training.md``).
    :param backend: ``"torch"`` (Pyro) or ``"jax"``: the NumPyro twin of the model is
        trained with a compiled loop (:class:`~pyrocrl.inference.svi_jax.TwinTrainer`) and
        the result copied back, so the returned model, the report and the checkpoint are
        the same as with Pyro. Needs the ``jax`` extra; built-in models with built-in parts
        only, and no ``validate_every``.
    :param device: where training runs: ``None``/``"cpu"``, ``"cuda"``, ``"cuda:1"`` or
        ``"auto"`` (:mod:`pyrocrl.devices`); the returned model is on the CPU.
    :param devices, num_nodes: data-parallel training over ``devices`` devices of the kind
        ``device`` names (on each of ``num_nodes`` nodes), each minibatch split between
        them. Pyro: one process a device through Lightning
        (:class:`~pyrocrl.inference.distributed.DistributedTrainer`; the same run as one
        process with that many shards, so a resume needs the same number); JAX: sharded
        batches on one node (:class:`~pyrocrl.inference.svi_jax.JAXTrainer`). See
        ``docs/scale.md``.
    :param candidate_workers: with several candidates, train that many at a time, each in
        a process of its own (the same selection as one after the other; built-in models,
        or model and guide functions that can be pickled). Not with several ``devices``.
    """
    start = time.perf_counter()
    recipe = get_recipe(recipe)
    data = pairs_tensor(train)
    max_targets = dataset_max_targets(train) if max_targets is None else max_targets
    num_targets(n, max_targets)  # refuses a max_targets outside 1 … n
    intervention = (
        train.attrs.get("intervention", "perfect") if intervention is None else intervention
    )
    if intervention not in INTERVENTIONS:
        raise ValueError(f"intervention must be one of {INTERVENTIONS}, got {intervention!r}")
    if noise_transform not in NOISE_TRANSFORMS:
        raise ValueError(
            f"noise_transform must be one of {NOISE_TRANSFORMS}, got {noise_transform!r}"
        )
    if noise_transform != "identity" and model not in (None, "ilcm"):
        raise ValueError("noise_transform is an option of the built-in ILCM (model='ilcm')")
    if model is None or isinstance(model, str):
        recipe = for_targets(recipe, n, max_targets)
    check_fit_options(
        n,
        recipe,
        model=model,
        guide=guide,
        backend=backend,
        validate_every=validate_every,
        dim_x=data.shape[-1],
        device=device,
        devices=devices,
        num_nodes=num_nodes,
        candidate_workers=candidate_workers,
    )
    run_length(len(data), recipe, None)  # at least one batch
    if (model is None or isinstance(model, str)) and likelihood in SCALED_LIKELIHOODS:
        names = train["feature"].values if "feature" in getattr(train, "coords", ()) else None
        FeatureScaling(data.shape[-1]).fit(data, names)  # refuses constant features
    for name, pairs in (("test", test), ("dci_train", dci_train)):
        _check_held_out(pairs, name, data.shape[-1])
    output = _prepared_directory(output)
    shards = devices * num_nodes if backend == "torch" else 1  # a sharded run is its own
    fingerprint = None
    if output is not None:
        fingerprint = run_fingerprint(
            data,
            n=n,
            seed=seed,
            model=_spec_name(model, "ilcm"),
            guide=_spec_name(guide, "ILCMGuide"),
            backend=backend,
            recipe=recipe,
            hidden=list(hidden),
            likelihood=likelihood,
            intervention_encoder=intervention_encoder,
            **({} if max_targets == 1 else {"max_targets": max_targets}),
            **({} if intervention == "perfect" else {"intervention": intervention}),
            **({} if noise_transform == "identity" else {"noise_transform": noise_transform}),
            **({} if shards == 1 else {"shards": shards}),
        )
    with run_directory(output, fingerprint, resume=resume):
        parts = ModelParts(
            model,
            guide,
            hidden,
            likelihood,
            intervention_encoder,
            max_targets,
            intervention,
            noise_transform,
        )
        build = partial(build_candidate, parts=parts, data=data, n=n, recipe=recipe)
        trainer_for = partial(
            make_trainer,
            recipe=recipe,
            checkpoint_every=checkpoint_every,
            backend=backend,
            progress=progress,
            validate_every=validate_every,
            validate_model=validate_model,
            test=test,
            dci_train=dci_train,
            evaluation_seed=seed,
            device=device,
            devices=devices,
            num_nodes=num_nodes,
        )
        chosen = choose_candidate(
            data,
            recipe,
            seed=seed,
            build=build,
            trainer_for=trainer_for,
            output=output,
            resume=resume,
            started=start,
            workers=candidate_workers,
        )
        result = chosen.trainer.fit(data, resume=resume)
        paired = paired_rows(data)
        train_time = chosen.earlier + time.perf_counter() - start
        remove_candidates(output)
        metrics = held_out_metrics(
            chosen.model, chosen.guide, test, dci_train, seed=seed, dci_pairs=dci_pairs
        )
        report = FitReport(
            recipe=recipe.name,
            seed=seed,
            pairs=int(paired.sum()),
            unpaired=int((~paired).sum()),
            batch_size=recipe.batch_size,
            steps=result.steps,
            epochs=result.epochs,
            train_time=train_time,
            total_time=time.perf_counter() - start,
            metrics=metrics,
            dci_pairs=_dci_sizes(dci_pairs, dci_train, test)
            if "dci_disentanglement" in metrics
            else None,
            dci_on_test=dci_train is None,
            data=_data_source(train),
            selection=chosen.selection,
            model=type(chosen.model).__name__,
            backend=backend,
            history=result.history,
        )
        if output is not None:
            write_results(report, output, recipe, result.history)
        return chosen.model, chosen.guide, report


def _spec_name(spec: Any, default: str) -> str:
    """How a fingerprint names a model or guide given as a name, a module or a builder."""
    if spec is None or isinstance(spec, str):
        return spec or default
    if isinstance(spec, nn.Module):
        return type(spec).__name__
    return getattr(spec, "__qualname__", type(spec).__name__)


def _check_held_out(pairs: xr.Dataset | None, name: str, dim_x: int) -> None:
    """Refuse held-out pairs that the model could not read, before training."""
    if pairs is None:
        return
    try:
        pairs_tensor(pairs, dim_x)
    except ValueError as error:
        raise ValueError(f"{name} pairs: {error}") from None
