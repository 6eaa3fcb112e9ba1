"""Objectives in the form stacked training (:mod:`.stacked`) needs: a pure function of one model's
weights and of the objective's own state, which ``torch.func.vmap`` runs for K models at once.

:class:`ferbench.training.objectives.Objective` keeps its state on itself (the center-loss
centres, the last batch's features), which ``vmap`` cannot batch. A :class:`StackedObjective`
holds that state outside, one ``K x ...`` tensor per name, and splits the objective in two:

- :meth:`StackedObjective.loss` (inside ``vmap``): one model's loss on its batch, plus an
  auxiliary output (detached tensors the state update needs);
- :meth:`StackedObjective.update` (outside, after the step): the new state of a group of models
  from that auxiliary output, as ``Objective.after_step`` would compute it for each.

The stateless objectives (cross-entropy, label smoothing, AM-softmax, ED²L's three terms,
distillation) call the registered objective's own ``loss``; only center loss has a stacked form
of its own, which reuses :func:`~ferbench.training.objectives.center_loss` and
:func:`~ferbench.training.objectives.center_update`. An objective not listed in
:data:`STACKED_OBJECTIVES` (a plugin's) trains one fold at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ferbench.cards import ObjectiveSpec
from ferbench.training.objectives import Objective, center_loss, center_update, objective_class

State = dict[str, torch.Tensor]
"""An objective's non-trained state: name -> tensor (one model's, or K models' stacked on dim 0)."""


class StackedObjective:
    """A stateless objective: the registered objective's ``loss``, no state, no auxiliary output."""

    def __init__(self, model: nn.Module, spec: ObjectiveSpec, num_classes: int):
        self.objective: Objective = objective_class(spec.name)(model, spec, num_classes)
        self.spec, self.num_classes = spec, num_classes

    def initial_state(self, model: nn.Module, probe: torch.Tensor) -> State:
        """One model's state before its first step (``probe``: a prepared batch, for shapes)."""
        return {}

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: State,
             teacher_logits: torch.Tensor | None) -> tuple[torch.Tensor, State]:
        """One model's mean loss on its batch (``x``: B x C x H x W, ``y``: B) and what
        :meth:`update` needs (detached)."""
        return self.objective.loss(model, x, y, teacher_logits), {}

    def update(self, state: State, aux: State, y: torch.Tensor) -> State:
        """The state after a step of a group of G models (``state``, ``aux``: G x ..., ``y``: G x B)."""
        return state


class StackedCenterLoss(StackedObjective):
    """CE + λ·center loss with the centres (classes x D per model, zeros at the start) as state,
    moved after each step by :func:`center_update` with that step's batch features: what
    :class:`~ferbench.training.objectives.CenterLossObjective` computes, one model at a time."""

    def initial_state(self, model: nn.Module, probe: torch.Tensor) -> State:
        was_training = model.training
        with torch.no_grad():
            width = model.eval().forward_features(probe).shape[1]
        model.train(was_training)
        return {"centres": torch.zeros(self.num_classes, width, device=probe.device)}

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: State,
             teacher_logits: torch.Tensor | None) -> tuple[torch.Tensor, State]:
        features = model.forward_features(x)
        logits = model.forward_head(features).float()
        features = features.float()
        value = F.cross_entropy(logits, y) + self.spec.lambda_ * center_loss(features, state["centres"], y)
        return value, {"features": features.detach()}

    def update(self, state: State, aux: State, y: torch.Tensor) -> State:
        centres = torch.stack([center_update(c, f, labels, self.spec.alpha)
                               for c, f, labels in zip(state["centres"], aux["features"], y)])
        return {"centres": centres}


STACKED_OBJECTIVES: dict[str, type[StackedObjective]] = {
    "cross_entropy": StackedObjective,
    "label_smoothing": StackedObjective,
    "am_softmax": StackedObjective,
    "ed2l": StackedObjective,
    "distillation": StackedObjective,
    "center_loss": StackedCenterLoss,
}
"""Objective name -> its stacked form."""


def build_stacked_objective(model: nn.Module, spec: ObjectiveSpec, num_classes: int) -> StackedObjective:
    """The stacked form of the objective ``spec`` names (a ``KeyError`` for one without)."""
    return STACKED_OBJECTIVES[spec.name](model, spec, num_classes)
