"""Fitting an ILCM end to end: build, train, evaluate, report, save; and loading it back."""

__all__ = ["MODELS", "FitReport", "build_ilcm", "candidate_seed", "fit_ilcm", "load_ilcm"]

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from pyrocrl.inference.evaluate import elbo_per_pair, evaluate
from pyrocrl.inference.guides import ILCMGuide
from pyrocrl.inference.objectives import ILCMObjective
from pyrocrl.inference.recipes import Recipe, for_model, get_recipe
from pyrocrl.inference.svi import Trainer, pairs_tensor
from pyrocrl.io import CheckpointError, load_checkpoint, write_json
from pyrocrl.models.baselines import DVAE, BetaVAE
from pyrocrl.models.elcm import ELCM
from pyrocrl.models.ilcm import ILCM

SELECTION_PAIRS = 4096
"""Training pairs on which candidates are compared."""
PRECONDITION_PAIRS = 20_000
"""Training pairs whose statistics precondition the encoder."""
SELECTION_FILE = "selection.json"
"""The candidate selection and its training seconds, kept in ``output`` while the chosen
candidate is finished (so a resumed run reports them)."""


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
    dci_pairs: tuple[int, int] | None = None
    data: dict[str, Any] = field(default_factory=dict)
    selection: list[dict[str, float]] = field(default_factory=list)
    """Candidates of the recipe: seed and training ELBO at the selection epoch."""
    files: list[str] = field(default_factory=list)
    model: str = "ILCM"
    """Class name of the fitted model."""
    backend: str = "torch"

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
            lines.append(
                f"  {len(self.selection)} candidates, training ELBO per pair {scores}: "
                f"kept candidate {best['candidate']:.0f}"
            )
        lines.append(
            f"  training: {self.steps} steps = {self.epochs:.2f} epochs of {self.pairs} pairs "
            f"(batch {self.batch_size}) in {_duration(self.train_time)}"
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
            lines.append(
                f"  DCI regressors fitted on {fitted} pairs and scored on {subset} test pairs"
            )
        lines.append(f"  wall time: {_duration(self.total_time)} in all")
        if self.files:
            lines.append("  wrote " + ", ".join(self.files))
        return "\n".join(lines)


def _save_history_plot(history: list[dict[str, Any]], path: Path) -> Path:
    from matplotlib.figure import Figure  # no pyplot: the user's backend stays as it is

    from pyrocrl.plots import plot_history

    plot_history(history, figure=Figure()).savefig(path, dpi=110)
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


MODELS: dict[str, type[ILCM]] = {"ilcm": ILCM, "elcm": ELCM, "dvae": DVAE, "betavae": BetaVAE}
"""The built-in latent causal models by name."""
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
            "this model was built with custom parts; construct it yourself and load the "
            "checkpoint's state dicts into it"
        )
    model_config["hidden"] = tuple(model_config.get("hidden", (64, 64)))
    model = MODELS[kind](model_config.pop("dim_x"), model_config.pop("n"), **model_config)
    guide_config = dict(guide_config or {})
    if guide_config.get("intervention_encoder", "heuristic") is None:
        raise CheckpointError("this guide has a custom intervention encoder; build it yourself")
    guide_config["hidden"] = tuple(guide_config.get("hidden", (64, 64)))
    return model, ILCMGuide(model, **guide_config)


def load_ilcm(path: str | os.PathLike) -> tuple[ILCM, ILCMGuide]:
    """Model and guide from a checkpoint written by :func:`fit_ilcm` or the trainer."""
    payload = load_checkpoint(path)
    config = payload.get("model_config") or {}
    if "dim_x" not in config:
        raise CheckpointError(f"{path} holds no model configuration")
    model, guide = build_ilcm(
        config["dim_x"], config["n"], model_config=config, guide_config=payload["guide_config"]
    )
    model.load_state_dict(payload["model"])
    guide.load_state_dict(payload["guide"])
    model.eval()
    guide.eval()
    return model, guide


def candidate_seed(seed: int, candidate: int) -> int:
    """Model seed of candidate ``candidate`` of a run with ``seed`` (candidate 0: ``seed``)."""
    if candidate == 0:
        return seed
    return int(np.random.SeedSequence([seed, candidate]).generate_state(1)[0])


ModelSpec = str | ILCM | Callable[[], ILCM] | None
GuideSpec = ILCMGuide | Callable[[ILCM], ILCMGuide] | None


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
    :param output: a directory for ``checkpoint.pt`` (training resumes from it when
        ``resume``; so do unfinished candidates) and ``results.json``. A resumed run reports
        the candidate selection and the training time of the calls before it as well.
    :param validate_every: evaluate on (a part of) ``test`` every so many steps.
    :param validate_model: Pyro validation while training (see :class:`Trainer`).
    :param dci_pairs: how many pairs to fit the DCI regressors on and to score them on.
    :param backend: ``"torch"`` (Pyro) or ``"jax"``: the NumPyro twin of the model is
        trained with a compiled loop (:class:`~pyrocrl.inference.svi_jax.TwinTrainer`) and
        the result copied back, so the returned model, the report and the checkpoint are
        the same as with Pyro. Needs the ``jax`` extra; built-in models with built-in parts
        only, and no ``validate_every``.
    """
    start = time.perf_counter()
    recipe = get_recipe(recipe)
    data = pairs_tensor(train)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if isinstance(model, str) and model not in MODELS:
        raise ValueError(f"unknown model {model!r}; built-in models: {sorted(MODELS)}")
    if backend not in ("torch", "jax"):
        raise ValueError(f"backend must be 'torch' or 'jax', got {backend!r}")
    if backend == "jax":
        import importlib

        try:
            for name in ("jax", "numpyro", "equinox", "optax"):
                importlib.import_module(name)
        except ImportError as error:
            raise ImportError(
                f"backend='jax' needs JAX ({error.name} is missing): pip install 'pyrocrl[jax]'"
            ) from error
    if backend == "jax" and validate_every:
        raise ValueError("the JAX backend does not validate while training: drop validate_every")
    if recipe.candidates > 1 and (isinstance(model, nn.Module) or isinstance(guide, nn.Module)):
        raise ValueError(
            f"recipe {recipe.name!r} trains {recipe.candidates} candidates: pass functions that "
            "build the model and guide, or use recipe.replace(candidates=1)"
        )
    output = Path(output) if output is not None else None
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)

    def build(model_seed: int) -> tuple[ILCM, ILCMGuide]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(model_seed)
            if model is None or isinstance(model, str):
                m = MODELS[model or "ilcm"](
                    data.shape[-1], n, hidden=hidden, likelihood=likelihood
                )
            else:
                m = model if isinstance(model, nn.Module) else model()
            if guide is None:
                g = ILCMGuide(m, hidden=hidden, intervention_encoder=intervention_encoder)
            else:
                g = guide if isinstance(guide, nn.Module) else guide(m)
        if m.n != n or m.dim_x != data.shape[-1]:
            raise ValueError(
                f"the model has n={m.n}, dim_x={m.dim_x}; the data need n={n}, "
                f"dim_x={data.shape[-1]}"
            )
        if for_model(recipe, m).precondition:
            sample = data[:PRECONDITION_PAIRS]
            g.precondition(sample[:, 0], sample[:, 1])
        return m, g

    def make_trainer(m: ILCM, g: ILCMGuide, model_seed: int, path: Path | None) -> Trainer:
        if backend == "jax":
            from pyrocrl.inference.svi_jax import TwinTrainer

            return TwinTrainer(m, g, recipe, seed=model_seed, checkpoint=path, progress=progress)
        validation = None
        if test is not None and validate_every:
            small_test = test.isel(pair=slice(0, 2000))

            def validation(step: int) -> dict[str, float]:
                return evaluate(m, g, small_test, dci_train, seed=seed, dci_pairs=3000,
                                dci_test_pairs=2000)  # fmt: skip

        return Trainer(
            m,
            g,
            ILCMObjective(m, g),
            recipe,
            seed=model_seed,
            checkpoint=path,
            validation=validation,
            validate_every=validate_every,
            progress=progress,
            validate_model=validate_model,
        )

    final = output / "checkpoint.pt" if output is not None else None
    selection: list[dict[str, float]] = []
    earlier = 0.0  # training seconds of the earlier calls this one resumes
    if resume and final is not None and final.exists():
        selection, earlier = _earlier_record(output)
        chosen = int(load_checkpoint(final)["seed"])
        model_, guide_ = build(chosen)
        trainer = make_trainer(model_, guide_, chosen, final)
    elif recipe.candidates == 1:
        model_, guide_ = build(seed)
        trainer = make_trainer(model_, guide_, seed, final)
    else:
        subset = data[:SELECTION_PAIRS]
        best = None
        for c in range(recipe.candidates):
            c_seed = candidate_seed(seed, c)
            m, g = build(c_seed)
            path = output / f"candidate{c}.pt" if output is not None else None
            t = make_trainer(m, g, c_seed, path)
            t.fit(data, resume=resume, until_epoch=recipe.select_epoch)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                score = elbo_per_pair(m, g, subset[:, 0], subset[:, 1])
            selection.append({"candidate": c, "seed": c_seed, "elbo": score})
            if best is None or score > best[0]:
                best = (score, m, g, t)
        _, model_, guide_, trainer = best
        trainer.checkpoint = final
        if output is not None:  # kept until results.json holds it
            record = {"selection": selection, "train_time": time.perf_counter() - start}
            write_json(output / SELECTION_FILE, record)
    result = trainer.fit(data, resume=resume)
    train_time = earlier + time.perf_counter() - start
    if output is not None:
        for leftover in output.glob("candidate*"):
            leftover.unlink()

    metrics: dict[str, float] = {}
    if test is not None:
        metrics = evaluate(
            model_, guide_, test, dci_train, seed=seed, dci_pairs=dci_pairs[0],
            dci_test_pairs=dci_pairs[1],
        )  # fmt: skip
        metrics["test_pairs"] = float(test.sizes["pair"])
    report = FitReport(
        recipe=recipe.name,
        seed=seed,
        pairs=len(data),
        batch_size=recipe.batch_size,
        steps=result.steps,
        epochs=result.epochs,
        train_time=train_time,
        total_time=time.perf_counter() - start,
        metrics=metrics,
        dci_pairs=_dci_sizes(dci_pairs, dci_train, test)
        if "dci_disentanglement" in metrics
        else None,
        data={k: train.attrs[k] for k in ("simulator", "n", "graph_seed") if k in train.attrs},
        selection=selection,
        model=type(model_).__name__,
        backend=backend,
    )
    if output is not None:
        report.files = [str(output / name) for name in ("checkpoint.pt", "results.json")]
        report.files.append(str(_save_history_plot(result.history, output / "training.png")))
        results = {
            **asdict(report),
            "recipe_settings": recipe.to_dict(),
            "history": result.history,
        }
        write_json(output / "results.json", results)
        (output / SELECTION_FILE).unlink(missing_ok=True)
    return model_, guide_, report


def _earlier_record(output: Path) -> tuple[list[dict[str, float]], float]:
    """The candidate selection and training seconds of the earlier calls that a resumed
    :func:`fit_ilcm` goes on from: from ``results.json`` if that run finished, else from the
    record written at the selection (a run interrupted while finishing loses only the
    seconds of that last stretch)."""
    for name in ("results.json", SELECTION_FILE):
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
