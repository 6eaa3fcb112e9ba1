"""Model cards: one YAML file per baseline naming the architecture, its input and its training recipe.

A card says *what* to train and *how*; the trainer (:mod:`ferbench.training`) reads nothing
else. Cards live in the repository's ``baselines/`` folder, found next to the package
(``Path(ferbench.__file__).parents[1] / "baselines"``) or in the folder named by the
environment variable ``FERBENCH_BASELINES``. :func:`load_card` takes a bare card name (looked
up there) or a path to any card file.

Format (every key but ``name``, ``model``, ``input.size`` and the recipe's ``epochs``,
``batch_size`` and ``optimizer`` has a default)::

    name: emotionnet_nano_a          # card id = file stem = run directory name
    model: emotionnet_nano_a         # registered model (ferbench.models) or timm/<architecture>
    # factory: my_pkg.nets:build     # instead of `model`: a callable, or path/to/file.py:build
    kwargs: {}                       # model constructor kwargs, e.g. {pooling: p12}
    input: {channels: 1, size: [48, 48], normalise: unit}   # unit | minus_one_one | standardize
    recipe:
      epochs: 200
      batch_size: 32
      repeats: 1                     # visits of every training image per epoch
      optimizer: {name: adam, lr: 1.0e-3}                     # adam | adamw | sgd
      schedule: {name: multistep, milestones: [81, 121, 161, 181], factors: [0.1, 0.01, 0.001, 0.0005]}
      objective: {name: cross_entropy}                        # see ferbench.training.objectives
      augment: [{name: rotate, degrees: 10}, {name: hflip}]   # see ferbench.training.augment
      tta: none                      # none | fixed_crops | ten_crop
      init_checkpoint: null          # local state dict to start from (relative to the card file)
    temperature_sweep: [2, 4, 8]     # distillation only: the runner runs one job per temperature
    citation: "..."
    notes: "..."                     # what is a reconstruction, and why
    reported: [{protocol: ckplus_7cls_si, metric: accuracy, value: 97.6, aggregation: fold_mean,
                note: "Table 1"}]   # aggregation: fold_mean | pooled | single_split; correct/total

``factory:`` is another way to write ``model:`` for a factory string (the card's ``model`` then
holds it; a relative ``.py`` path is made absolute, relative to the card file); a bare name
``timm/<architecture>[@<side>]`` loads a default card made on the fly (:func:`timm_card`). See
:mod:`ferbench.models.factories`.

The schema of ``recipe.objective`` and of each ``recipe.augment`` item comes from the registries
(:data:`ferbench.registry.OBJECTIVES`, :data:`~ferbench.registry.AUGMENTATIONS`): the spec
registered with the ``name`` validates the other keys, so what a plug-in registers is named in a
card like a built-in. The specs live beside their code (:mod:`ferbench.training.objectives`,
:mod:`ferbench.training.augment`).

Errors raise :class:`~ferbench.errors.CardError` naming the card file, the 1-based line and
the key path, with a suggestion for a misspelt key or name (:mod:`ferbench.spec`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Field, PrivateAttr, StrictFloat, StrictInt, ValidationError, model_validator

import ferbench
from ferbench.errors import CardError, PluginError, UnknownName
from ferbench.registry import AUGMENTATIONS, OBJECTIVES
from ferbench.spec import Locator, NameChoice, NamedSpec, PositiveInt, Size, StrictSpec, read_yaml, translate

BASELINES_ENV = "FERBENCH_BASELINES"
"""Environment variable naming the folder of bundled cards (default: the repository's ``baselines/``)."""

NOT_FINGERPRINTED = frozenset({"citation", "notes", "reported"})
"""Card keys that describe a card but cannot change results."""

TIMM_SIDE = 64
"""Default input side (pixels) of a card made for ``timm/<architecture>``."""


def _not_boolean(value: Any) -> Any:
    """Refuse ``true``/``false`` where a number is expected (pydantic reads them as 1 and 0)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got `{str(value).lower()}`")
    return value


def _choice(kind: str, *members: type[NamedSpec]) -> Any:
    """The annotation of a ``name``-tagged choice among ``members``."""
    return Annotated[Union[members], NameChoice.closed(kind, *members)]


# ----------------------------------------------------------------------------- input


class InputSpec(StrictSpec):
    """What the network sees: channels (gray is repeated to 3, colour becomes luminance), size
    [H, W] in pixels, and the intensity scaling: ``unit`` [0, 1], ``minus_one_one`` [-1, 1],
    ``standardize`` per image to zero mean and unit standard deviation."""

    channels: Annotated[Literal[1, 3], BeforeValidator(_not_boolean)] = 1
    size: Size
    normalise: Literal["unit", "minus_one_one", "standardize"] = "unit"


# ----------------------------------------------------------------------------- optimizers


class Adam(NamedSpec):
    name: Literal["adam"]
    lr: StrictFloat = Field(gt=0)
    betas: tuple[StrictFloat, StrictFloat] = (0.9, 0.999)
    eps: StrictFloat = Field(1e-8, gt=0)
    weight_decay: StrictFloat = Field(0.0, ge=0)


class AdamW(NamedSpec):
    name: Literal["adamw"]
    lr: StrictFloat = Field(gt=0)
    betas: tuple[StrictFloat, StrictFloat] = (0.9, 0.999)
    eps: StrictFloat = Field(1e-8, gt=0)
    weight_decay: StrictFloat = Field(0.01, ge=0)


class SGD(NamedSpec):
    name: Literal["sgd"]
    lr: StrictFloat = Field(gt=0)
    momentum: StrictFloat = Field(0.0, ge=0)
    nesterov: bool = False
    weight_decay: StrictFloat = Field(0.0, ge=0)


OptimizerSpec = _choice("optimizer", Adam, AdamW, SGD)


# ----------------------------------------------------------------------------- schedules
# The learning rate of epoch e (0-based) is optimizer.lr * schedule.factor(e). When --epochs
# changes the length of a run, rescaled() keeps the schedule's shape over the run.


class Constant(NamedSpec):
    name: Literal["constant"]

    def factor(self, epoch: int) -> float:
        return 1.0

    def rescaled(self, old_epochs: int, new_epochs: int) -> Constant:
        return self


class MultiStep(NamedSpec):
    """From epoch ``milestones[k]`` (0-based, so 81 is the 82nd epoch, Keras' ``epoch > 80``) on,
    the rate is lr * ``factors[k]`` (factors are relative to the initial rate, not cumulative)."""

    name: Literal["multistep"]
    milestones: tuple[PositiveInt, ...] = Field(min_length=1)
    factors: tuple[StrictFloat, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _matching(self) -> MultiStep:
        if len(self.milestones) != len(self.factors):
            raise ValueError(f"{len(self.milestones)} milestones but {len(self.factors)} factors")
        if list(self.milestones) != sorted(self.milestones):
            raise ValueError("milestones must be in ascending order")
        return self

    def factor(self, epoch: int) -> float:
        passed = [f for m, f in zip(self.milestones, self.factors) if epoch >= m]
        return passed[-1] if passed else 1.0

    def rescaled(self, old_epochs: int, new_epochs: int) -> MultiStep:
        milestones = tuple(max(1, round(m * new_epochs / old_epochs)) for m in self.milestones)
        return self.model_copy(update={"milestones": milestones})


class Step(NamedSpec):
    """lr * gamma ** (epoch // step_size)."""

    name: Literal["step"]
    step_size: PositiveInt
    gamma: StrictFloat = Field(gt=0)

    def factor(self, epoch: int) -> float:
        return self.gamma ** (epoch // self.step_size)

    def rescaled(self, old_epochs: int, new_epochs: int) -> Step:
        return self.model_copy(update={"step_size": max(1, round(self.step_size * new_epochs / old_epochs))})


ScheduleSpec = _choice("schedule", Constant, MultiStep, Step)


# ----------------------------------------------------------------------------- objectives and augmentations

ObjectiveSpec = Annotated[NamedSpec, NameChoice.registered(OBJECTIVES)]
"""The spec of a registered objective (:mod:`ferbench.training.objectives`, or a plug-in's)."""

AugmentSpec = Annotated[NamedSpec, NameChoice.registered(AUGMENTATIONS)]
"""The spec of a registered augmentation (:mod:`ferbench.training.augment`, or a plug-in's)."""

CROP_AUGMENTATIONS = ("fixed_crops", "ten_crop")
"""Augmentations that choose among fixed views of a larger face; ``tta`` averages over them."""

DISTILLATION = "distillation"
"""The objective that learns from a teacher card (``temperature_sweep`` needs it)."""


# ----------------------------------------------------------------------------- recipe and card


class Recipe(StrictSpec):
    """How a neural model is trained. ``repeats``: each epoch visits every training image that
    many times (papers that augment offline count epochs over the enlarged set)."""

    epochs: PositiveInt
    batch_size: PositiveInt
    repeats: PositiveInt = 1
    optimizer: OptimizerSpec
    schedule: ScheduleSpec = Constant(name="constant")
    objective: ObjectiveSpec = Field({"name": "cross_entropy"}, validate_default=True)
    augment: tuple[AugmentSpec, ...] = ()
    tta: Literal["none", "fixed_crops", "ten_crop"] = "none"
    init_checkpoint: str | None = None

    @property
    def crop(self) -> NamedSpec | None:
        """The crop augmentation (``fixed_crops`` or ``ten_crop``), if any (always the first one)."""
        return next((a for a in self.augment if a.name in CROP_AUGMENTATIONS), None)

    @property
    def distils(self) -> bool:
        """True when the objective learns from a teacher card."""
        return self.objective.name == DISTILLATION


class Reported(StrictSpec):
    """A number a paper reports for this card under a protocol (percent for accuracy-like metrics).

    ``aggregation`` says how the paper got it, so the leaderboard compares like with like:
    ``fold_mean`` (mean of the per-fold numbers), ``pooled`` (one number over every fold's test
    images together) or ``single_split`` (one train/test split, e.g. one held-out fifth).
    ``correct`` / ``total``: where the number is a count of correct test images, that count (the
    value must be ``100 * correct / total`` rounded to one or two decimals).
    """

    protocol: str
    metric: str = "accuracy"
    value: StrictFloat
    aggregation: Literal["fold_mean", "pooled", "single_split"]
    correct: Annotated[StrictInt, Field(ge=0)] | None = None
    total: PositiveInt | None = None
    note: str = ""

    @model_validator(mode="after")
    def _count_matches_value(self) -> Reported:
        if (self.correct is None) != (self.total is None):
            raise ValueError("give `correct` and `total` together, or neither")
        if self.total is not None:
            share = 100 * self.correct / self.total
            if self.correct > self.total or self.value not in (round(share, 1), round(share, 2)):
                raise ValueError(f"{self.correct}/{self.total} = {share:.3f}% does not round to value {self.value}")
        return self


class ModelCard(StrictSpec):
    """A validated model card (see the module docstring)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    model: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    input: InputSpec
    recipe: Recipe | None = None  # None for classical (non-neural) models
    temperature_sweep: tuple[Annotated[StrictFloat, Field(gt=0)], ...] | None = None
    citation: str = ""
    notes: str = ""
    reported: tuple[Reported, ...] = ()

    _source_file: Path | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _factory_is_model(cls, data: Any) -> Any:
        """``factory: pkg.module:build`` is stored as ``model`` (a factory string, see ferbench.plugins)."""
        if isinstance(data, dict) and "factory" in data:
            if "model" in data:
                raise ValueError("`model` and `factory` are alternatives: give one of them")
            if ":" not in str(data["factory"]):
                raise ValueError(f"factory `{data['factory']}`: expected `package.module:callable` or "
                                 "`path/to/file.py:callable`")
            data = {("model" if key == "factory" else key): value for key, value in data.items()}
        return data

    @property
    def source_file(self) -> Path | None:
        """The card file this was loaded from (``None`` when built in code)."""
        return self._source_file

    @property
    def teacher(self) -> str | None:
        """The teacher card (name or path) when the objective is distillation, else ``None``."""
        return self.recipe.objective.teacher if self.recipe and self.recipe.distils else None

    def resolved_dict(self) -> dict[str, Any]:
        """The card with every default filled in, as plain JSON-able values (``card.resolved.yaml``)."""
        return self.model_dump(mode="json", by_alias=True)

    @property
    def fingerprint(self) -> str:
        """16 hex digits of sha256 over the resolved card minus ``citation``, ``notes`` and ``reported``."""
        payload = self.model_dump(mode="json", by_alias=True, exclude=set(NOT_FINGERPRINTED))
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_epochs(self, epochs: int) -> ModelCard:
        """A copy trained for ``epochs`` epochs (the CLI's ``--epochs``). The schedule keeps its
        shape: multistep milestones and the step schedule's ``step_size`` scale by
        ``epochs / recipe.epochs`` (rounded, at least 1)."""
        recipe = self._require_recipe("--epochs")
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        schedule = recipe.schedule.rescaled(recipe.epochs, epochs)
        return self._with_recipe(recipe.model_copy(update={"epochs": epochs, "schedule": schedule}))

    def with_repeats(self, repeats: int) -> ModelCard:
        """A copy whose epoch is ``repeats`` passes over the training set (the CLI's ``--repeats``)."""
        recipe = self._require_recipe("--repeats")
        if repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {repeats}")
        return self._with_recipe(recipe.model_copy(update={"repeats": repeats}))

    def with_temperature(self, temperature: float) -> ModelCard:
        """A copy distilling at ``temperature`` (one job of ``temperature_sweep``)."""
        recipe = self._require_recipe("a temperature")
        if not recipe.distils:
            raise ValueError(f"card `{self.name}` does not distil (objective `{recipe.objective.name}`)")
        objective = recipe.objective.model_copy(update={"temperature": float(temperature)})
        return self._with_recipe(recipe.model_copy(update={"objective": objective}))

    def _require_recipe(self, what: str) -> Recipe:
        if self.recipe is None:
            raise ValueError(f"card `{self.name}` has no training recipe to apply {what} to")
        return self.recipe

    def _with_recipe(self, recipe: Recipe) -> ModelCard:
        card = self.model_copy(update={"recipe": recipe})
        card._source_file = self._source_file
        return card


# ----------------------------------------------------------------------------- loading


def baselines_dir() -> Path:
    """The folder of bundled cards: ``$FERBENCH_BASELINES``, else ``<repository>/baselines``."""
    override = os.environ.get(BASELINES_ENV)
    return Path(override).expanduser() if override else Path(ferbench.__file__).resolve().parents[1] / "baselines"


def card_names() -> list[str]:
    """Names of the bundled cards, sorted."""
    folder = baselines_dir()
    return sorted(path.stem for path in folder.glob("*.yaml")) if folder.is_dir() else []


def list_cards() -> list[ModelCard]:
    """Every bundled card, sorted by name."""
    return [load_card(baselines_dir() / f"{name}.yaml") for name in card_names()]


def load_card(name_or_path: str | Path) -> ModelCard:
    """Load a card by bundled name (``emotionnet_nano_a``), by path to a YAML file, or the
    default card of a timm architecture (``timm/resnet18``, ``timm/resnet18@112``).

    Raises:
        UnknownName: a bare name that is no bundled card (with a suggestion).
        PluginError: an unknown timm architecture.
        CardError: an invalid card, naming the file, line and key.
    """
    text = str(name_or_path)
    if isinstance(name_or_path, str) and text.startswith("timm/") and not text.endswith((".yaml", ".yml")):
        return timm_card(text)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text:
        path = Path(name_or_path).expanduser().resolve()
        if not path.is_file():
            raise CardError(path, "model card file not found")
    else:
        path = baselines_dir() / f"{text}.yaml"
        if not path.is_file():
            raise UnknownName("model card", text, card_names())
    raw, marks = read_yaml(path, CardError)
    where = Locator(path, marks, CardError)
    try:
        card = ModelCard.model_validate(raw)
    except ValidationError as err:
        raise translate(err, ModelCard, (), where, raw) from None
    _check_consistency(card, path, where)
    factory_file, colon, attribute = card.model.rpartition(":")
    if colon and factory_file.endswith(".py"):
        factory_file = str((path.parent / Path(os.path.expandvars(factory_file)).expanduser()).resolve())
        card = card.model_copy(update={"model": f"{factory_file}:{attribute}"})
    if card.recipe is not None and card.recipe.init_checkpoint is not None:
        checkpoint = (path.parent / Path(os.path.expandvars(card.recipe.init_checkpoint)).expanduser()).resolve()
        card = card.model_copy(update={"recipe": card.recipe.model_copy(update={"init_checkpoint": str(checkpoint)})})
    card._source_file = path
    return card


def timm_card(spec: str) -> ModelCard:
    """The default card of ``timm/<architecture>[@<side>]``: 3 x side x side input (side 64 unless
    given), ``unit`` scaling, 30 epochs of Adam (lr 1e-3, batch 32) with cross-entropy and
    horizontal flips. Named ``timm-<architecture>[-<side>]`` (lowercase, other characters ``_``)."""
    from ferbench.models.factories import TIMM_PREFIX, timm_architecture  # imports torch and the models

    model, _, side_text = spec.partition("@")
    if side_text and not (side_text.isdigit() and int(side_text) > 0):
        raise PluginError(f"`{spec}`: expected timm/<architecture> or timm/<architecture>@<side in pixels>, "
                          "e.g. timm/resnet18@112")
    architecture = timm_architecture(model)
    side = int(side_text or TIMM_SIDE)
    name = re.sub(r"[^a-z0-9_\-]", "_", f"timm-{architecture}{'-' + side_text if side_text else ''}".lower())
    recipe = Recipe(epochs=30, batch_size=32, optimizer=Adam(name="adam", lr=1e-3), augment=({"name": "hflip"},))
    return ModelCard(name=name, model=f"{TIMM_PREFIX}{architecture}",
                     input=InputSpec(channels=3, size=(side, side), normalise="unit"), recipe=recipe,
                     notes="default card for a timm architecture, made on the fly (ferbench.cards.timm_card)")


def _check_consistency(card: ModelCard, path: Path, where: Locator) -> None:
    """Rules that span several keys."""
    if card.name != path.stem:
        raise where.error(("name",), f"card name `{card.name}` differs from its file name `{path.stem}`; "
                                     "they must match (the name is the run directory)")
    recipe = card.recipe
    if card.temperature_sweep is not None and not (recipe and recipe.distils):
        raise where.error(("temperature_sweep",), f"`temperature_sweep` needs objective `{DISTILLATION}`")
    if recipe is None:
        return
    crops = [i for i, a in enumerate(recipe.augment) if a.name in CROP_AUGMENTATIONS]
    if len(crops) > 1 or crops and crops[0] != 0:
        raise where.error(("recipe", "augment", crops[-1]),
                          f"at most one of {', '.join(CROP_AUGMENTATIONS)}, and it must come first in `augment`")
    if recipe.tta != "none" and (recipe.crop is None or recipe.crop.name != recipe.tta):
        raise where.error(("recipe", "tta"), f"tta `{recipe.tta}` averages the views of augmentation "
                                             f"`{recipe.tta}`, which `augment` lacks")
