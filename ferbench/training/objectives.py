"""Training objectives and their card specs, looked up by the name a card's ``recipe.objective`` gives.

Each objective is registered with the spec of its card keys (:func:`register_objective`); the
card schema (:mod:`ferbench.cards`) validates ``recipe.objective`` with the spec registered under
its ``name``, so a plug-in's objective is named in a card like a built-in one.

An objective is built once per fit as ``cls(model, spec, num_classes)`` and asked for the loss
of every batch: ``loss(model, x, y, teacher_logits)`` -> scalar (mean over the batch).
``after_step()`` runs after each optimiser step (the center-loss centre update);
``extra_parameters()`` lists trainable tensors the objective owns (none of the built-in ones:
their extra state, the centres, is not trained by the optimiser). ``requires`` names the model
methods it calls; ``needs_teacher`` says it wants teacher logits. A model with an unusual
objective registers its own class here (as ED²L does).

The pure loss functions below carry the exact definitions; the classes wire them to models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, StrictFloat
from torch import nn

from ferbench.registry import OBJECTIVES
from ferbench.spec import NamedSpec, entry_spec


def register_objective(name: str, spec: type[NamedSpec] | None = None) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator: register an :class:`Objective` subclass under ``name`` with ``spec``, the
    :class:`~ferbench.spec.NamedSpec` of its card keys (``name: Literal[name]``). Without a spec
    the card's other keys are kept unchecked, as attributes of ``self.spec``."""
    return OBJECTIVES.register(name, entry_spec(name, spec))


def objective_names() -> list[str]:
    """Registered objective names, sorted."""
    return OBJECTIVES.names()


def objective_class(name: str) -> type[Objective]:
    """The class registered under ``name``; raise :class:`UnknownName` with a suggestion."""
    return OBJECTIVES.get(name)


def build_objective(model: nn.Module, spec: NamedSpec, num_classes: int) -> Objective:
    """The objective a card spec describes, for ``model`` with ``num_classes`` outputs."""
    return objective_class(spec.name)(model, spec, num_classes)


class Objective:
    """Base class: plain hooks that do nothing; subclasses define :meth:`loss`."""

    requires: tuple[str, ...] = ()  # model methods the loss calls (besides forward)
    needs_teacher: bool = False

    def __init__(self, model: nn.Module, spec: NamedSpec, num_classes: int):
        self.spec, self.num_classes = spec, num_classes

    def extra_parameters(self) -> list[nn.Parameter]:
        return []

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after every optimiser step."""


# ----------------------------------------------------------------------------- loss functions
# logits / features are B x K / B x D, y holds B class indices; every loss is a batch mean.


def smoothed_targets(y: torch.Tensor, num_classes: int, confidence: float) -> torch.Tensor:
    """C-SPP's label smoothing: ``confidence`` on the true class, ``(1 - confidence) / (K - 1)``
    on each other class (torch's ``label_smoothing`` instead spreads over all K)."""
    targets = torch.full((len(y), num_classes), (1 - confidence) / (num_classes - 1), device=y.device)
    return targets.scatter(1, y[:, None], confidence)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor,
                      lam: float, temperature: float) -> torch.Tensor:
    """MicroExpNet (Eq. 2): (1 - λ)·CE(y, softmax(v)) + λ·H(softmax(z/T), softmax(v/T)), no T² factor."""
    hard = F.cross_entropy(student_logits, y)
    soft = F.cross_entropy(student_logits / temperature, F.softmax(teacher_logits / temperature, dim=1))
    return (1 - lam) * hard + lam * soft


def center_loss(features: torch.Tensor, centres: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Wen et al.: ½ · mean over the batch of ||f_i - c_{y_i}||² (the Caffe layer's convention)."""
    return 0.5 * (features - centres[y]).pow(2).sum(dim=1).mean()


def center_update(centres: torch.Tensor, features: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """New centres c_j - α·Δc_j, Δc_j = Σ_{i: y_i = j} (c_j - f_i) / (1 + n_j) (Wen et al., Eq. 4)."""
    counts = torch.bincount(y, minlength=len(centres)).to(centres.dtype)[:, None]
    sums = torch.zeros_like(centres).index_add_(0, y, features.to(centres.dtype))
    return centres - alpha * (counts * centres - sums) / (1 + counts)


def am_softmax_loss(cos: torch.Tensor, y: torch.Tensor, scale: float, margin: float) -> torch.Tensor:
    """Additive-margin softmax: CE of s·(cos - m·onehot(y)) (one-hot by ``scatter``, which ``vmap`` supports)."""
    onehot = torch.zeros_like(cos).scatter(1, y[:, None], 1.0)
    return F.cross_entropy(scale * (cos - margin * onehot), y)


def ed2l_terms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """ED²L's three losses:

    - ``l_t``: additive-margin softmax on the distilling branch's cosines;
    - ``l_a``: CE of the dispeller on the *detached* dispelling feature (trains only the dispeller);
    - ``l_p``: -(1/K)·Σ_j mean_i log softmax(dispeller(f_p))_j, cross-entropy against the uniform
      distribution, through the dispeller's *detached* weights (trains the branch and base net only).
    """
    parts = model.forward_parts(x)
    features, dispeller = parts["feat_p"].float(), model.dispeller
    l_a = F.cross_entropy(dispeller(features.detach()), y)
    logits = F.linear(features, dispeller.weight.detach(), dispeller.bias.detach())
    l_p = -F.log_softmax(logits, dim=1).mean()
    return {"l_t": am_softmax_loss(parts["cos"].float(), y, model.scale, model.margin), "l_a": l_a, "l_p": l_p}


# ----------------------------------------------------------------------------- objectives


class CrossEntropy(NamedSpec):
    name: Literal["cross_entropy"]


@register_objective("cross_entropy", CrossEntropy)
class CrossEntropyObjective(Objective):
    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
        return F.cross_entropy(model(x).float(), y)


class LabelSmoothing(NamedSpec):
    """``confidence`` on the true class, the rest shared equally by the other K - 1 classes."""

    name: Literal["label_smoothing"]
    confidence: StrictFloat = Field(gt=0, le=1)


@register_objective("label_smoothing", LabelSmoothing)
class LabelSmoothingObjective(Objective):
    """CE against :func:`smoothed_targets`."""

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
        return F.cross_entropy(model(x).float(), smoothed_targets(y, self.num_classes, self.spec.confidence))


class Distillation(NamedSpec):
    """``teacher`` is the card (name or path) of the teacher model."""

    name: Literal["distillation"]
    lambda_: StrictFloat = Field(alias="lambda", ge=0, le=1)
    temperature: StrictFloat = Field(gt=0)
    teacher: str


@register_objective("distillation", Distillation)
class DistillationObjective(Objective):
    """:func:`distillation_loss` with the card's λ and temperature."""

    needs_teacher = True

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
        if teacher_logits is None:
            raise ValueError("objective `distillation` needs teacher logits")
        return distillation_loss(model(x).float(), teacher_logits.float(), y, self.spec.lambda_, self.spec.temperature)


class CenterLoss(NamedSpec):
    name: Literal["center_loss"]
    lambda_: StrictFloat = Field(alias="lambda", ge=0)
    alpha: StrictFloat = Field(gt=0, le=1)


@register_objective("center_loss", CenterLoss)
class CenterLossObjective(Objective):
    """CE + λ·:func:`center_loss` on ``model.forward_features``. The centres (K x D, zeros at
    the start) move by :func:`center_update` after each step, with that step's batch features."""

    requires = ("forward_features", "forward_head")

    def __init__(self, model: nn.Module, spec: NamedSpec, num_classes: int):
        super().__init__(model, spec, num_classes)
        self.centres: torch.Tensor | None = None  # K x D, allocated at the first batch
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None  # detached features and labels

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
        features = model.forward_features(x)
        logits = model.forward_head(features).float()
        features = features.float()
        if self.centres is None:
            self.centres = torch.zeros(self.num_classes, features.shape[1], device=features.device)
        self._batch = (features.detach(), y)
        return F.cross_entropy(logits, y) + self.spec.lambda_ * center_loss(features, self.centres, y)

    def after_step(self) -> None:
        if self._batch is not None:
            self.centres = center_update(self.centres, *self._batch, self.spec.alpha)
            self._batch = None


class AMSoftmax(NamedSpec):
    name: Literal["am_softmax"]


@register_objective("am_softmax", AMSoftmax)
class AMSoftmaxObjective(Objective):
    """The ED²L baseline: :func:`am_softmax_loss` on ``forward_parts(x)["cos"]`` with the model's s and m."""

    requires = ("forward_parts",)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
        return am_softmax_loss(model.forward_parts(x)["cos"].float(), y, model.scale, model.margin)


class ED2L(NamedSpec):
    name: Literal["ed2l"]
    lambda_t: StrictFloat = Field(1.0, ge=0)
    lambda_p: StrictFloat = Field(10.0, ge=0)


@register_objective("ed2l", ED2L)
class ED2LObjective(Objective):
    """λt·l_t + λp·(l_a + l_p) of :func:`ed2l_terms`."""

    requires = ("forward_parts", "dispeller")

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
        terms = ed2l_terms(model, x, y)
        return self.spec.lambda_t * terms["l_t"] + self.spec.lambda_p * (terms["l_a"] + terms["l_p"])
