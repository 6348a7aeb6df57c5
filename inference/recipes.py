"""Training recipes: every schedule of a training run as a function of the epoch.

A :class:`Recipe` is a frozen description; :meth:`Recipe.at` turns a (fractional) epoch
into the :class:`Phase` that a training step needs: which objective, the KL weight ``β``,
whether the intervention prior is on, whether the intervention encoder is deterministic,
regularizer weights and the learning rate. Everything is a pure function of the step, so a
resumed run follows exactly the same schedule.
"""

__all__ = ["PRESETS", "Phase", "Recipe", "for_model", "for_targets", "get_recipe"]

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from pyrocrl.interventions import num_targets


@dataclass(frozen=True)
class Phase:
    """The settings of one training step."""

    pretrain: bool
    beta: float
    """KL weight (the pretraining β while pretraining)."""
    intervention_prior: bool
    deterministic: bool
    lr: float
    entropy_weight: float
    consistency_weight: float
    norm_weight: float
    offset: float
    sparsity_weight: float = 0.0
    balance_weight: float = 0.0
    posterior_power: float = 1.0
    restart: bool = False
    """This step starts a new learning-rate cycle (the optimizer state is reset)."""
    unpaired_weight: float = 1.0
    """Weight of an unpaired observation's bound against a pair's (set by the trainer from
    the data, see :func:`~pyrocrl.inference.objectives.pair_objective`)."""
    settle: bool = False
    """Only the solution function trains (see :attr:`Recipe.settle_epochs`)."""

    @property
    def name(self) -> str:
        if self.pretrain:
            return "pretrain"
        if self.settle:
            return "settle"
        return "deterministic" if self.deterministic else "soft"


def _ramp(epoch: float, start: float, end: float, a: float, b: float) -> float:
    """``a`` before ``start``, ``b`` after ``end``, linear in between."""
    if epoch <= start:
        return a
    if epoch >= end:
        return b
    return a + (b - a) * (epoch - start) / (end - start)


def _log_ramp(epoch: float, start: float, end: float, a: float, b: float) -> float:
    """Like :func:`_ramp` but geometric (for quantities spanning orders of magnitude)."""
    return math.exp(_ramp(epoch, start, end, math.log(a), math.log(b)))


@dataclass(frozen=True)
class Recipe:
    """A training schedule, with times in epochs (passes over the training pairs).

    :param epochs: length of the run.
    :param batch_size: pairs per step.
    :param lr: peak learning rate of Adam.
    :param restart_every: period of the cosine learning-rate cycles (the optimizer state is
        reset at each restart); ``None`` keeps the rate constant.
    :param lr_decay: ``(start, end)``: the learning rate falls geometrically by the factor
        ``final_lr_factor`` between these epochs (on top of any cycles) and stays there, so
        that the last steps settle the parameters; ``(0, 0)``: no decay.
    :param final_lr_factor: the learning rate at the end of ``lr_decay``, as a fraction.
    :param pretrain_epochs: epochs of a β-VAE on each view (no causal structure) first.
    :param pretrain_beta: KL weight while pretraining.
    :param beta_ramp: ``β`` rises linearly from 0 to ``beta`` between these epochs.
    :param beta: the KL weight after the ramp (1: the ELBO itself).
    :param intervention_prior_epoch: the prior on the intervened value switches on here
        (before, the intervened noise has a flat prior and the solution function rests).
    :param deterministic_epoch: from here only the most probable intervention hypothesis is
        used (straight-through gradients).
    :param grad_clip: maximal gradient norm.
    :param entropy_weight: bonus on the entropy of the batch-averaged ``q(I | x, x~)``.
    :param consistency_weight: weight of the per-view reconstruction error (mean squared).
    :param norm_weight: weight of ``‖e‖²`` of the encodings, decaying to 0 over ``norm_decay``.
    :param offset: ``(start, end)`` of the intervention-encoder offset, decaying
        geometrically over ``offset_decay``.
    :param sparsity_weight: weight of the change-sparsity penalty, decaying to 0 over
        ``sparsity_decay`` (see :class:`~pyrocrl.inference.objectives.ILCMObjective`).
    :param balance_weight: weight of the change-balance penalty, decaying like sparsity.
    :param posterior_power: the intervention posterior is used as ``q^p / Σ q^p``; ``p``
        rises linearly from this value to 1 over ``posterior_power_ramp``.
    :param candidates: train this many models (different seeds) until ``select_epoch``,
        keep the one with the best training ELBO and finish only that one.
    :param precondition: start the encoder from the linear solution of the pair statistics
        (:meth:`~pyrocrl.inference.guides.ILCMGuide.precondition`) before training.
    :param settle_epochs: the last epochs of the run train the solution function alone,
        the encoder, decoder and intervention encoder held (coordinate ascent on the same
        bound): the mechanisms settle at their fit to the encodings, which the joint steps,
        a few per pair and each moving the encoder too, leave them short of. 0: none.
    :param settle_lr: the learning rate at the start of the settling epochs, falling to 0
        along a half cosine.
    :param unpaired_weight: with unpaired observations among the training rows, each step
        takes a batch of pairs and one of unpaired observations, and the second counts this
        many times the first (default 1); ``None``: ``M / N`` for ``N`` pairs and ``M``
        unpaired observations, the bound of the whole data, which lets the unpaired part
        outweigh the pairs (and the regularizers tuned against them) when pairs are few.
    :param independent_views: every step is a VAE on each view — the pretraining objective,
        with ``β`` following the schedule and no term that reads the pairing (intervention
        entropy, change sparsity and balance) — as the β-VAE baseline is trained
        (:func:`for_model` sets it for such models, and turns ``precondition`` off).
    """

    name: str
    epochs: float
    batch_size: int = 64
    lr: float = 3e-4
    restart_every: float | None = None
    min_lr: float = 1e-8
    lr_decay: tuple[float, float] = (0.0, 0.0)
    final_lr_factor: float = 1.0
    pretrain_epochs: float = 0.0
    pretrain_beta: float = 1e-3
    beta_ramp: tuple[float, float] = (0.0, 0.0)
    beta: float = 1.0
    intervention_prior_epoch: float = 0.0
    deterministic_epoch: float = math.inf
    grad_clip: float = 10.0
    entropy_weight: float = 1.0
    consistency_weight: float = 0.0
    norm_weight: float = 0.0
    norm_decay: tuple[float, float] = (0.0, 0.0)
    offset: tuple[float, float] = (1e-4, 1e-4)
    offset_decay: tuple[float, float] = (0.0, 0.0)
    sparsity_weight: float = 0.0
    balance_weight: float = 0.0
    sparsity_decay: tuple[float, float] = (0.0, 0.0)
    posterior_power: float = 1.0
    posterior_power_ramp: tuple[float, float] = (0.0, 0.0)
    candidates: int = 1
    select_epoch: float = 0.0
    precondition: bool = False
    unpaired_weight: float | None = 1.0
    independent_views: bool = False
    settle_epochs: float = 0.0
    settle_lr: float = 3e-3
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("a recipe needs epochs > 0, batch_size ≥ 1 and lr > 0")
        if self.unpaired_weight is not None and not 0 < self.unpaired_weight < math.inf:
            raise ValueError(
                f"unpaired_weight must be positive or None, got {self.unpaired_weight}"
            )
        if self.restart_every is not None and self.restart_every <= 0:
            raise ValueError("restart_every must be positive or None")
        if self.candidates < 1 or (
            self.candidates > 1 and not 0 < self.select_epoch < self.epochs
        ):
            raise ValueError("candidates ≥ 1, and with several, 0 < select_epoch < epochs")
        if not 0 < self.beta < math.inf:
            raise ValueError(f"beta must be positive and finite, got {self.beta}")
        if not 0 < self.posterior_power <= 1:
            raise ValueError("posterior_power must lie in (0, 1]")
        if not 0 < self.final_lr_factor <= 1:
            raise ValueError(f"final_lr_factor must lie in (0, 1], got {self.final_lr_factor}")
        if not 0 <= self.lr_decay[0] <= self.lr_decay[1]:
            raise ValueError(
                f"lr_decay must be (start, end) with 0 ≤ start ≤ end, got {self.lr_decay}"
            )
        if self.final_lr_factor < 1 and self.lr_decay[1] == 0:
            raise ValueError("final_lr_factor < 1 needs a decay: set lr_decay=(start, end)")
        if self.settle_epochs and not (
            0 < self.settle_epochs < self.epochs
            and self.epochs - self.settle_epochs >= self.intervention_prior_epoch
            and self.settle_lr > 0
        ):
            raise ValueError(
                "settle_epochs must lie in (0, epochs) and start after the intervention "
                f"prior is on (epoch {self.intervention_prior_epoch}), with settle_lr > 0; "
                f"got settle_epochs={self.settle_epochs}, settle_lr={self.settle_lr}"
            )

    def settles(self, epoch: float) -> bool:
        """Whether ``epoch`` lies in the settling epochs (see ``settle_epochs``)."""
        return self.settle_epochs > 0 and epoch >= self.epochs - self.settle_epochs

    def lr_at(self, epoch: float) -> float:
        if self.settles(epoch):
            t = (epoch - (self.epochs - self.settle_epochs)) / self.settle_epochs
            return self.settle_lr * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
        decay = 1.0
        if self.lr_decay[1] > 0:
            decay = _log_ramp(epoch, *self.lr_decay, 1.0, self.final_lr_factor)
        if self.restart_every is None:
            return self.lr * decay
        t = (epoch % self.restart_every) / self.restart_every
        cycle = self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * t))
        return cycle * decay

    def cycle(self, epoch: float) -> int:
        """Index of the learning-rate cycle at ``epoch``."""
        return 0 if self.restart_every is None else int(epoch // self.restart_every)

    def at(self, epoch: float, previous_epoch: float | None = None) -> Phase:
        """The phase at ``epoch``; ``previous_epoch`` (the step before) detects restarts."""
        restart = previous_epoch is not None and self.cycle(epoch) != self.cycle(previous_epoch)
        pretrain = epoch < self.pretrain_epochs
        if pretrain:
            beta = self.pretrain_beta
        else:
            ramped = self.beta_ramp[1] > 0
            beta = _ramp(epoch, *self.beta_ramp, 0.0, self.beta) if ramped else self.beta
        paired = 0.0 if self.independent_views else 1.0  # weight of terms that read the pairs
        return Phase(
            pretrain=pretrain or self.independent_views,
            beta=beta,
            intervention_prior=epoch >= self.intervention_prior_epoch,
            deterministic=epoch >= self.deterministic_epoch,
            lr=self.lr_at(epoch),
            entropy_weight=paired * self.entropy_weight,
            consistency_weight=self.consistency_weight,
            norm_weight=_ramp(epoch, *self.norm_decay, self.norm_weight, 0.0),
            offset=_log_ramp(epoch, *self.offset_decay, *self.offset),
            sparsity_weight=paired * _ramp(epoch, *self.sparsity_decay, self.sparsity_weight, 0.0),
            balance_weight=paired * _ramp(epoch, *self.sparsity_decay, self.balance_weight, 0.0),
            posterior_power=_ramp(epoch, *self.posterior_power_ramp, self.posterior_power, 1.0),
            restart=restart,
            settle=self.settles(epoch),
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["deterministic_epoch"] = (
            None if math.isinf(self.deterministic_epoch) else d["deterministic_epoch"]
        )
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Recipe":
        d = dict(d)
        if d.get("deterministic_epoch") is None:
            d["deterministic_epoch"] = math.inf
        for key in (
            "lr_decay",
            "beta_ramp",
            "norm_decay",
            "offset",
            "offset_decay",
            "sparsity_decay",
            "posterior_power_ramp",
        ):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    def replace(self, **changes: Any) -> "Recipe":
        return replace(self, **changes)

    def scaled(self, factor: float) -> "Recipe":
        """The same schedule with every time (in epochs) multiplied by ``factor``.

        ``factor < 1`` gives a quicker, rougher version, e.g. for smoke tests.
        """
        if factor <= 0:
            raise ValueError(f"factor must be positive, got {factor}")
        changes: dict[str, Any] = {"name": f"{self.name}×{factor:g}"}
        for key in _EPOCH_FIELDS:
            value = getattr(self, key)
            if isinstance(value, tuple):
                changes[key] = tuple(v * factor for v in value)
            elif value is not None and not math.isinf(value):
                changes[key] = value * factor
        return replace(self, **changes)


_EPOCH_FIELDS = (
    "epochs",
    "restart_every",
    "lr_decay",
    "pretrain_epochs",
    "beta_ramp",
    "intervention_prior_epoch",
    "deterministic_epoch",
    "norm_decay",
    "offset_decay",
    "sparsity_decay",
    "posterior_power_ramp",
    "select_epoch",
    "settle_epochs",
)
"""The fields of a :class:`Recipe` that are times, in epochs."""

AUTHORS = Recipe(
    name="authors",
    epochs=90,
    batch_size=64,
    lr=3e-4,
    restart_every=30,
    pretrain_epochs=10,
    pretrain_beta=1e-3,
    beta_ramp=(10, 19),
    intervention_prior_epoch=30,
    deterministic_epoch=60,
    grad_clip=10.0,
    entropy_weight=1.0,
    consistency_weight=0.01,
    norm_weight=0.01,
    norm_decay=(10, 19),
    offset=(0.025, 1e-4),
    offset_decay=(10, 19),
    notes="The scaling recipe of Brehmer et al. (2022), for 100k training pairs.",
)

FAST = Recipe(
    name="fast",
    epochs=3.5,
    batch_size=64,
    lr=1e-3,
    restart_every=None,
    pretrain_epochs=0.3,
    pretrain_beta=1e-3,
    beta_ramp=(0.3, 1.0),
    intervention_prior_epoch=1.5,
    deterministic_epoch=2.75,
    grad_clip=10.0,
    entropy_weight=1.0,
    consistency_weight=0.01,
    norm_weight=0.01,
    norm_decay=(0.3, 1.0),
    offset=(0.025, 1e-4),
    offset_decay=(0.3, 1.0),
    sparsity_weight=10.0,
    balance_weight=10.0,
    sparsity_decay=(1.5, 2.0),
    posterior_power=0.05,
    posterior_power_ramp=(0.3, 1.0),
    precondition=True,
    notes=(
        "Our shorter schedule: the encoder starts from the linear solution of the pair "
        "statistics, a higher learning rate, compressed phases, a flattened intervention "
        "posterior early on, and penalties that favour noise changes on a single component "
        "spread evenly over components. See docs/training.md and benchmarks/scaling_ilcm.py."
    ),
)

FAST_ANNEAL = FAST.replace(
    name="fast-anneal",
    lr_decay=(2.75, 3.5),
    final_lr_factor=0.01,
    notes=(
        "The fast recipe with its learning rate falling 100-fold over the deterministic "
        "phase (epochs 2.75-3.5), at no extra cost: the learned mechanisms settle instead "
        "of jittering at the constant rate, which the weights of a latent SCM fitted to "
        "the causal variables need. See docs/training.md."
    ),
)

FAST_SETTLE = FAST.replace(
    name="fast-settle",
    epochs=4.5,
    settle_epochs=1.0,
    notes=(
        "The fast recipe and one more epoch in which the solution function trains alone "
        "(encoder, decoder and intervention encoder held), its learning rate falling from "
        "3e-3 to 0: the mechanisms settle at their fit to the encodings. For the spline "
        "transform of the own noise (noise_transform='spline'). See docs/training.md."
    ),
)

PRESETS: dict[str, Recipe] = {r.name: r for r in (AUTHORS, FAST, FAST_ANNEAL, FAST_SETTLE)}


def get_recipe(recipe: str | Recipe) -> Recipe:
    """A preset by name (``"authors"``, ``"fast"``, ``"fast-anneal"``, ``"fast-settle"``) or
    a :class:`Recipe` unchanged.

    The ``fast`` recipe pretrains a VAE on each view, trains with every intervention
    hypothesis (the soft phase) and ends with the most probable one:

    >>> recipe = get_recipe("fast")
    >>> [recipe.at(epoch).name for epoch in (0.0, 1.5, 3.0)]
    ['pretrain', 'soft', 'deterministic']
    >>> recipe.at(1.0).intervention_prior, recipe.at(2.0).intervention_prior
    (False, True)
    >>> get_recipe("fast-settle").at(4.0).name  # its last epoch: the mechanisms alone
    'settle'

    >>> recipe.scaled(2).epochs == 2 * recipe.epochs
    True
    """
    if isinstance(recipe, Recipe):
        return recipe
    if recipe not in PRESETS:
        raise ValueError(f"unknown recipe {recipe!r}; presets: {sorted(PRESETS)}")
    return PRESETS[recipe]


def for_targets(recipe: str | Recipe, n: int, max_targets: int) -> Recipe:
    """The recipe for interventions on sets of up to ``max_targets`` of ``n`` variables:
    every time multiplied by ``K / (n + 1)``, the number of target sets over that of single
    ones (:mod:`pyrocrl.interventions`; 11/5 for ``n = 4``, ``k = 2``), and unchanged for
    single targets.

    The order of the causal variables is learned from the pairs that intervene on one
    variable alone: a set moves its members together, and its pairs are fitted equally
    well with the members in either order. Under the uniform prior over the sets, these
    pairs are ``n / K`` of the data instead of ``n / (n + 1)``; the longer schedule gives the
    mechanisms as many of them as a single-target fit sees (``benchmarks/regimes.py``
    measures it).

    >>> for_targets("fast", 4, 2).name
    'fast×2.2'
    """
    recipe = get_recipe(recipe)
    if max_targets == 1:
        return recipe
    return recipe.scaled(num_targets(n, max_targets) / (n + 1))


def for_model(recipe: str | Recipe, model: Any) -> Recipe:
    """The recipe as ``model`` is trained with it (the model's ``training_recipe``: e.g.
    the β-VAE baseline trains every step as a VAE on each view). Both trainers and
    :func:`~pyrocrl.inference.fit.fit_ilcm` call it, so a model is never trained with a
    pair objective it does not have."""
    recipe = get_recipe(recipe)
    adapt = getattr(model, "training_recipe", None)
    return adapt(recipe) if adapt is not None else recipe
