"""Train several folds' copies of one small network at once, with stacked weights.

A tiny model (65K-3M parameters) trained one fold at a time leaves a GPU mostly idle.
:func:`fit_stacked` trains K models (one per fold, seed and training set) in one process: their
trainable weights sit in one ``K x P`` tensor, and each step runs all K forward and backward
passes as one batched call (``torch.func.vmap`` of ``grad_and_value`` of ``functional_call``).
Model k ends where ``fit(models[k], card, *folds[k], device, seeds[k], progress=False)`` would
(:func:`ferbench.training.fit`), up to floating-point noise (a different summation order in
the batched kernels; on CUDA the noise of bfloat16 autocast, which both paths use):

- **same draws**: fold k has its own ``torch.Generator`` seeded as ``fit`` seeds it; its batch
  order (``_batches``) and every augmentation come from that generator in ``fit``'s order.
- **unequal folds**: folds have different sizes, hence different batch counts and last-batch
  sizes. At each step the folds are grouped by batch size and each group runs as one batched
  call, so no batch is ever padded (padding would enter BatchNorm's batch statistics). A fold
  with no batch left at a step is *inactive*: its weights and optimiser state (moments, step
  count) stay as they are. A zero gradient would not do: Adam still moves on momentum.
- **optimisers** (``adam``, ``adamw``, ``sgd`` with momentum / Nesterov / weight decay) are
  re-implemented on the ``K x P`` tensor with the formulas of torch's single-tensor
  implementations, a per-model step count and a per-model active mask.

Supported (:func:`stack_refusal` says why not, :func:`can_stack` answers yes or no):

- neural models, BatchNorm included: each model's running statistics are stacked buffers that
  its own batches update in place, and train / eval modes are honoured as in ``fit``;
- dropout (and any random op inside the model): ``vmap(..., randomness="different")`` gives each
  model its own masks, drawn from the global generator that :func:`fit_stacked` seeds with
  ``seeds[0]``. **Reproducibility:** a model with dropout trained stacked is identical on a rerun
  (same K folds, seeds and device) but is *not* the model ``fit`` trains, which draws other
  masks; it lands in the same accuracy band (tests/test_stacked.py). Without random ops the two
  agree up to float noise;
- every objective with a stacked form (:mod:`.stacked_objectives`): cross-entropy, label
  smoothing, AM-softmax, ED²L's three terms (its dispeller is trained: trained parameters are
  those the *loss* reaches), center loss (each model's centres are stacked state, moved after
  each step by the α update with that model's batch features) and distillation (one teacher per
  model, ``teachers=``, each called on its own fold's augmented batch, as ``fit`` calls it);
  optimisers ``adam``, ``adamw``, ``sgd``; any schedule, augmentation, ``repeats`` and
  ``init_checkpoint``;
- not: objectives with trainable parameters of their own or without a stacked form (a plugin's),
  validation-based epoch selection, ``on_epoch_end``, and CUDA devices without bfloat16 (``fit``
  would use float16 with a gradient scaler there). All bundled neural models stack (EmotionNet
  Nano-A/B, MicroExpNet M/S/XS/XXS and their distilled forms, the Lopes family, C-SPP, ED²L and
  its baseline, MobileNet + center loss, the Inception-v3 teacher); those with dropout
  (MicroExpNet, MobileNet) follow the reproducibility rule above.

Parameters with ``requires_grad=False`` and parameters the loss does not reach are held
constant, as ``fit``'s optimiser skips parameters without a gradient.

Noise: both paths compute float32 gradients with different kernels (one grouped convolution
for K models instead of K plain ones), each off the float64 gradient by up to about 1e-4 of the
tensor's largest element at 48 x 48 on a CPU, so they differ by that much. SGD passes it on
unchanged; Adam divides by ``sqrt(v) + eps``, so an element whose gradient is near ``eps``
(dead ReLU units) can differ by a fraction of one step (``lr``). Batching, preparation and
precision reuse :mod:`.trainer`'s own helpers, so the two paths cannot drift apart.

Speed: the point is a GPU that one tiny model leaves idle; on a CPU the batched (grouped)
convolutions are slower than K sequential runs (``benchmarks/fold_batching.py``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap
from tqdm.auto import tqdm

from ferbench.cards import ModelCard, OptimizerSpec
from ferbench.training.augment import Augmenter
from ferbench.training.objectives import objective_class
from ferbench.training.stacked_objectives import STACKED_OBJECTIVES, State, StackedObjective, build_stacked_objective
from ferbench.training.trainer import (
    TeacherForward,
    _batches,
    _no_grad,
    _num_classes,
    _Precision,
    _training_images,
    epoch_record,
    learning_rate,
    load_init_checkpoint,
    seed_everything,
)

STACKABLE_OPTIMIZERS = ("adam", "adamw", "sgd")


def stack_refusal(model: object, card: ModelCard, device: torch.device | str | None = None) -> str | None:
    """Why ``model`` cannot be trained by :func:`fit_stacked` with ``card`` (on ``device``), or
    ``None`` when it can. The model is only inspected, never changed."""
    if not isinstance(model, nn.Module):
        return f"`{card.model}` is not a neural network (classical models fit in one call)"
    recipe = card.recipe
    if recipe is None:
        return f"card `{card.name}` has no training recipe"
    objective = recipe.objective.name
    if objective not in STACKED_OBJECTIVES:
        return (f"objective `{objective}` has no stacked form (ferbench.training.stacked_objectives has "
                f"{', '.join(STACKED_OBJECTIVES)})")
    missing = [attr for attr in objective_class(objective).requires if getattr(model, attr, None) is None]
    if missing:
        return f"objective `{objective}` needs {', '.join(missing)} on the model, which `{card.model}` lacks"
    if recipe.optimizer.name not in STACKABLE_OPTIMIZERS:
        return f"optimizer `{recipe.optimizer.name}` is not supported (only {', '.join(STACKABLE_OPTIMIZERS)})"
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        return f"`{card.model}` has no trainable parameters"
    if len({p.dtype for p in trainable}) > 1 or not trainable[0].is_floating_point():
        return f"`{card.model}` needs trainable parameters of one floating dtype"
    cuda = device is not None and torch.device(device).type == "cuda"
    if cuda and _Precision(torch.device(device)).scaler.is_enabled():
        return "this CUDA device lacks bfloat16, and float16 training needs a gradient scaler, which is not supported"
    return None


def can_stack(model: object, card: ModelCard, device: torch.device | str | None = None) -> bool:
    """Whether :func:`fit_stacked` supports ``model`` with ``card`` (see :func:`stack_refusal`)."""
    return stack_refusal(model, card, device) is None


def fit_stacked(
    models: list[nn.Module],
    card: ModelCard,
    folds: list[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str,
    seeds: list[int],
    progress: bool = False,
    teachers: list[TeacherForward] | None = None,
) -> list[nn.Module]:
    """Train ``models[k]`` on ``folds[k]`` with seed ``seeds[k]`` (and teacher ``teachers[k]``), all K at once.

    Args:
        models: K models of one architecture, each built right after ``seed_everything(seeds[k])``
            (so the initial weights are those ``fit`` would start from). Changed in place.
        card: the card whose recipe all K follow.
        folds: K pairs (uint8 images ``N_k x H x W`` or ``N_k x H x W x 3``, int64 labels ``N_k``),
            ``N_k >= 1``; the sizes may differ.
        device: where to train.
        seeds: K seeds, as ``fit``'s ``seed``.
        progress: show a progress bar over the epochs (mean loss over all folds' images).
        teachers: for a distilling objective, K teachers as ``fit``'s ``teacher`` (see
            :func:`~ferbench.training.teacher_forward`): teacher k sees fold k's augmented
            batches, one fold after another (a teacher is large next to its tiny student).

    Returns:
        ``models``, trained, on ``device`` and in eval mode: model k equals
        ``fit(models[k], card, *folds[k], device, seeds[k], teachers[k], progress=False)`` up to float noise.
        Each carries ``training_history`` as ``fit`` records it: its own mean loss per epoch;
        ``seconds`` is the wall time of the epoch all K shared.

    Raises:
        ValueError: an unsupported model, card or device (the message says why; see
            :func:`stack_refusal`), or inconsistent arguments.
    """
    device = torch.device(device)
    _check_arguments(models, card, folds, seeds, device, teachers)
    recipe = card.recipe
    seed_everything(seeds[0])  # cuDNN flags as fit sets them; every random draw below uses per-fold generators
    augmenter = Augmenter(recipe.augment, recipe.tta, card.input.size)
    for teacher in teachers or []:
        if isinstance(teacher, nn.Module):
            teacher.eval()
    for model in models:
        model.to(device)
        if recipe.init_checkpoint is not None:
            load_init_checkpoint(model, recipe.init_checkpoint)
    lanes = [
        _Lane(torch.Generator(device=device).manual_seed(seed),
              _training_images(images, augmenter.canvas_size, card, device).take, labels.to(device), len(images))
        for seed, (images, labels) in zip(seeds, folds)
    ]
    probe_index = torch.arange(min(2, lanes[0].size), device=device)
    probe = augmenter.test_views(lanes[0].batch(probe_index))[0]
    num_classes = _num_classes(models[0], probe)
    objective = build_stacked_objective(models[0], recipe.objective, num_classes)
    if objective.objective.extra_parameters():
        raise ValueError(f"cannot train card `{card.name}` stacked: objective `{recipe.objective.name}` has "
                         "trainable parameters of its own")
    objective_state = {name: torch.stack([objective.initial_state(model, probe)[name] for model in models])
                       for name in objective.initial_state(models[0], probe)}
    trained = _trained_names(models[0], objective, probe, lanes[0].labels[probe_index],
                             {name: value[0] for name, value in objective_state.items()}, num_classes)
    if not trained:
        raise ValueError(f"cannot train card `{card.name}` stacked: no trainable parameter of `{card.model}` "
                         "reaches the loss")
    state = _StackedState(models, trained, objective)
    optimizer = _StackedOptimizer(recipe.optimizer, state.flat)
    precision = _Precision(device)

    def loss(flat: torch.Tensor, constants: dict[str, torch.Tensor], own: State, x: torch.Tensor, y: torch.Tensor,
             teacher_logits: torch.Tensor | None) -> tuple[torch.Tensor, State]:
        """One model's mean loss over its batch and the objective's auxiliary output; BatchNorm
        updates the running statistics in ``constants`` in place, as it would on the model."""
        with precision.autocast():
            return functional_call(state.skeleton, (state.unflatten(flat), constants), (x, y, own, teacher_logits))

    # randomness="different": each model draws its own dropout masks (from the global generator,
    # seeded above), so a stacked run is deterministic but draws other masks than one-by-one fit.
    step = vmap(grad_and_value(loss, has_aux=True), in_dims=(0, 0, 0, 0, 0, None if teachers is None else 0),
                randomness="different")
    state.skeleton.train()
    bar = tqdm(range(recipe.epochs), desc=f"{card.name} x{len(models)}", unit="epoch", disable=not progress,
               leave=False)
    histories: list[list[dict[str, float]]] = [[] for _ in models]
    for epoch in bar:
        started = time.perf_counter()
        lr = learning_rate(recipe, epoch)
        plans = [_batches(lane.size, recipe, lane.generator) for lane in lanes]
        total, seen = torch.zeros(len(lanes), device=device), torch.zeros(len(lanes), device=device)
        for position in range(max(len(plan) for plan in plans)):
            batches = _lane_batches(lanes, plans, position, augmenter)
            grads = torch.zeros_like(state.flat)
            for group in _same_size_groups(batches):
                index = torch.tensor(group, device=device)
                x = torch.stack([batches[k][0] for k in group])
                y = torch.stack([batches[k][1] for k in group])
                teacher_logits = None if teachers is None else _teacher_logits([teachers[k] for k in group], x,
                                                                               precision)
                own = {name: value[index] for name, value in objective_state.items()}
                group_grads, (losses, aux) = step(*state.group(index), own, x, y, teacher_logits)
                state.ungroup(index)
                for name, value in objective.update(own, aux, y).items():  # each fold's after_step
                    objective_state[name][index] = value
                grads[index] = group_grads
                total[index] += losses.detach() * x.shape[1]
                seen[index] += x.shape[1]
            optimizer.step(state.flat, grads, [k in batches for k in range(len(lanes))], lr)
        if progress:
            bar.set_postfix(loss=f"{(total.sum() / seen.sum().clamp_min(1)).item():.4f}")
        mean_losses = (total / seen).tolist()  # per model, over its epoch's images (waits for the device)
        seconds = time.perf_counter() - started
        for history, mean_loss in zip(histories, mean_losses):
            history.append(epoch_record(epoch, mean_loss, lr, seconds))
    state.write_back(models)
    for model, history in zip(models, histories):
        model.training_history = history
    return [model.eval() for model in models]


# ----------------------------------------------------------------------------- helpers


@dataclass
class _Lane:
    """One fold's data and random stream, as ``fit`` holds them."""

    generator: torch.Generator
    batch: Callable[[torch.Tensor], torch.Tensor]  # index batch -> prepared float batch on the device
    labels: torch.Tensor  # int64 N on the device
    size: int  # N


def _check_arguments(models: list[nn.Module], card: ModelCard, folds: list[tuple[torch.Tensor, torch.Tensor]],
                     seeds: list[int], device: torch.device, teachers: list[TeacherForward] | None) -> None:
    if not models or not (len(models) == len(folds) == len(seeds)):
        raise ValueError(f"fit_stacked needs K >= 1 models, folds and seeds alike; got {len(models)}, "
                         f"{len(folds)} and {len(seeds)}")
    reason = stack_refusal(models[0], card, device)
    if reason is not None:
        raise ValueError(f"cannot train card `{card.name}` stacked: {reason}")
    distils = objective_class(card.recipe.objective.name).needs_teacher
    if distils != (teachers is not None) or (teachers is not None and len(teachers) != len(models)):
        raise ValueError(f"objective `{card.recipe.objective.name}` needs "
                         + (f"one teacher per model ({len(models)})" if distils else "no teachers"))
    layout = _layout(models[0])
    for k, model in enumerate(models[1:], start=1):
        if type(model) is not type(models[0]) or _layout(model) != layout:
            raise ValueError(f"models[{k}] differs from models[0] in class, parameter or buffer names or shapes")
    for k, (images, labels) in enumerate(folds):
        if len(images) == 0 or len(images) != len(labels):
            raise ValueError(f"folds[{k}] has {len(images)} images and {len(labels)} labels; "
                             "it needs at least one image and one label per image")


def _layout(model: nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype, bool]]:
    """(name, shape, dtype, trainable) of every parameter and buffer, in order."""
    tensors = [(n, t, t.requires_grad) for n, t in model.named_parameters()]
    tensors += [(n, t, False) for n, t in model.named_buffers()]
    return [(n, tuple(t.shape), t.dtype, trainable) for n, t, trainable in tensors]


def _trained_names(model: nn.Module, objective: StackedObjective, probe: torch.Tensor, labels: torch.Tensor,
                   own: State, num_classes: int) -> list[str]:
    """Names of the parameters ``fit``'s optimiser would update: trainable ones that get a
    gradient from the objective's loss (found by one training-mode backward pass on ``probe``
    with ``labels``, zero teacher logits and the objective state ``own``; the model's
    ``.grad`` attributes are restored). ED²L's dispeller, say, is reached by the loss only."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    saved = [p.grad for _, p in params]
    buffers = {n: b.clone() for n, b in model.named_buffers()}  # a training pass moves BatchNorm statistics
    rng = torch.get_rng_state()  # and dropout draws from the global generator
    was_training = model.training
    model.train()
    teacher_logits = torch.zeros(len(probe), num_classes, device=probe.device)
    value, _ = objective.loss(model, probe, labels, own, teacher_logits)
    model.train(was_training)
    grads = torch.autograd.grad(value, [p for _, p in params], allow_unused=True)
    for (_, p), grad in zip(params, saved):
        p.grad = grad
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            buffer.copy_(buffers[name])
    torch.set_rng_state(rng)
    return [n for (n, _), grad in zip(params, grads) if grad is not None]


class _ObjectiveLoss(nn.Module):
    """``model`` and a stacked objective as one module whose ``forward`` is the objective's loss,
    so that ``functional_call`` swaps the model's weights for every method the loss calls."""

    def __init__(self, model: nn.Module, objective: StackedObjective):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x: torch.Tensor, y: torch.Tensor, own: State,
                teacher_logits: torch.Tensor | None) -> tuple[torch.Tensor, State]:
        return self.objective.loss(self.model, x, y, own, teacher_logits)


class _StackedState:
    """The K models' tensors, stacked: trained parameters as one ``K x P`` tensor (:attr:`flat`),
    everything else (frozen or unreached parameters, buffers) as ``K x ...`` constants, and a
    weightless copy of the architecture wrapped with the objective's loss (:attr:`skeleton`) to
    call functionally (its tensor names carry a ``model.`` prefix)."""

    def __init__(self, models: list[nn.Module], trained: list[str], objective: StackedObjective):
        params, buffers = stack_module_state(models)
        self.names = trained
        self.shapes = [params[n].shape[1:] for n in trained]
        self.numels = [math.prod(shape) for shape in self.shapes]
        self.flat = torch.cat([params[n].detach().flatten(1) for n in trained], dim=1).contiguous()
        self.constants = {f"model.{n}": t.detach() for n, t in params.items() if n not in trained}
        self.constants |= {f"model.{n}": t for n, t in buffers.items()}
        self.buffer_names = list(buffers)
        self.skeleton = _ObjectiveLoss(copy.deepcopy(models[0]).to("meta"), objective)
        self._group: tuple[torch.Tensor, dict[str, torch.Tensor]] | None = None

    def group(self, index: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(weights, constants) of the models in ``index`` for one batched call. All models: the
        stacked tensors themselves; a subset: copies, whose updated buffers :meth:`ungroup`
        writes back."""
        if len(index) == len(self.flat):
            self._group = None
            return self.flat, self.constants
        constants = {n: t[index] for n, t in self.constants.items()}
        self._group = (index, constants)
        return self.flat[index], constants

    @torch.no_grad()
    def ungroup(self, index: torch.Tensor) -> None:
        """Write the buffers (BatchNorm running statistics) a subset's call updated back."""
        if self._group is not None:
            for name in self.buffer_names:
                self.constants[f"model.{name}"][index] = self._group[1][f"model.{name}"]
            self._group = None

    def unflatten(self, flat: torch.Tensor, prefix: str = "model.") -> dict[str, torch.Tensor]:
        """One model's parameter dict as views of its flat vector ``P`` (names as :attr:`skeleton` has them)."""
        return {prefix + n: part.view(shape)
                for n, part, shape in zip(self.names, flat.split(self.numels), self.shapes)}

    @torch.no_grad()
    def write_back(self, models: list[nn.Module]) -> None:
        """Copy each model's trained weights and buffers (running statistics) into it."""
        for k, (model, flat) in enumerate(zip(models, self.flat)):
            own = dict(model.named_parameters())
            for name, value in self.unflatten(flat, prefix="").items():
                own[name].copy_(value)
            buffers = dict(model.named_buffers())
            for name in self.buffer_names:
                buffers[name].copy_(self.constants[f"model.{name}"][k])


def _lane_batches(lanes: list[_Lane], plans: list[list[torch.Tensor]], position: int,
                  augmenter: Augmenter) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Batch ``position`` of every fold that has one: fold index -> (augmented ``B_k x C x H x W``,
    labels ``B_k``). Each fold's batch is augmented with its own generator, in ``fit``'s order;
    a fold without a batch at this position is inactive for the step."""
    batches = {}
    for k, (lane, plan) in enumerate(zip(lanes, plans)):
        if position < len(plan):
            index = plan[position]
            batches[k] = (augmenter.train(lane.batch(index), lane.generator), lane.labels[index])
    return batches


def _teacher_logits(teachers: list[TeacherForward], x: torch.Tensor, precision: _Precision) -> torch.Tensor:
    """``G x B x classes`` float32 logits of teacher g on batch ``x[g]``, without gradients and
    under the precision ``fit`` uses, one teacher after another."""
    with precision.autocast():
        return torch.stack([_no_grad(teacher, batch) for teacher, batch in zip(teachers, x)])


def _same_size_groups(batches: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> list[list[int]]:
    """The folds of ``batches`` grouped by batch size, largest first: each group trains in one
    batched call without padding (padding would enter BatchNorm's batch statistics). Usually all
    folds share the recipe's batch size; only the last batches of an epoch differ."""
    groups: dict[int, list[int]] = {}
    for k, (x, _) in batches.items():
        groups.setdefault(len(x), []).append(k)
    return [groups[size] for size in sorted(groups, reverse=True)]


class _StackedOptimizer:
    """Adam, AdamW or SGD on ``K x P`` weights, with torch's single-tensor formulas (and its
    ``weight_decay`` semantics: L2 added to the gradient, decoupled for AdamW), a step count
    per model, and a per-model ``active`` mask: inactive models keep weights and state."""

    def __init__(self, spec: OptimizerSpec, flat: torch.Tensor):
        self.spec = spec
        self.steps = [0] * len(flat)  # optimiser steps taken, per model
        if spec.name in ("adam", "adamw"):
            self.exp_avg, self.exp_avg_sq = torch.zeros_like(flat), torch.zeros_like(flat)
        elif spec.momentum != 0:
            self.buffer = torch.zeros_like(flat)  # momentum * 0 + grad == grad: torch's first step

    @torch.no_grad()
    def step(self, flat: torch.Tensor, grads: torch.Tensor, active: list[bool], lr: float) -> None:
        """Update ``flat`` in place from ``grads`` (both K x P) for the models where ``active``."""
        self.steps = [n + on for n, on in zip(self.steps, active)]
        keep = None if all(active) else torch.tensor([not on for on in active], device=flat.device)[:, None]

        def assign(target: torch.Tensor, value: torch.Tensor) -> None:
            target.copy_(value if keep is None else torch.where(keep, target, value))

        spec = self.spec
        if spec.name == "sgd":
            if spec.weight_decay != 0:
                grads = grads.add(flat, alpha=spec.weight_decay)
            if spec.momentum != 0:
                assign(self.buffer, self.buffer.mul(spec.momentum).add_(grads))
                grads = grads.add(self.buffer, alpha=spec.momentum) if spec.nesterov else self.buffer
            assign(flat, flat.add(grads, alpha=-lr))
            return
        beta1, beta2 = spec.betas
        if spec.weight_decay != 0:
            if spec.name == "adamw":
                assign(flat, flat.mul(1 - lr * spec.weight_decay))
            else:
                grads = grads.add(flat, alpha=spec.weight_decay)
        assign(self.exp_avg, self.exp_avg.lerp(grads, 1 - beta1))
        assign(self.exp_avg_sq, self.exp_avg_sq.mul(beta2).addcmul_(grads, grads, value=1 - beta2))
        steps = [max(n, 1) for n in self.steps]  # a model that never stepped is inactive: its value is discarded
        step_size = self._per_model([lr / (1 - beta1 ** n) for n in steps], flat)
        bias_correction2_sqrt = self._per_model([(1 - beta2 ** n) ** 0.5 for n in steps], flat)
        denom = (self.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(spec.eps)
        assign(flat, flat - step_size * self.exp_avg / denom)

    @staticmethod
    def _per_model(values: list[float], like: torch.Tensor) -> torch.Tensor:
        """K Python floats (computed in double, as torch's optimisers do) -> a K x 1 tensor."""
        return torch.tensor(values, dtype=like.dtype, device=like.device)[:, None]
