"""Train a model as its card's recipe says, and predict with the card's test-time views.

Everything about training comes from the card: optimiser, per-epoch learning-rate schedule,
epochs, batch size, repeats, augmentation and objective (looked up by name); no model has a
code path of its own here. The training images are prepared once (:mod:`.inputs`: resized,
scaled) and sit on the device as one tensor; a set too large for that
(``FERBENCH_RESIDENT_BYTES``) stays uint8 on the host and streams through a DataLoader whose
workers prepare each batch. Each batch is then augmented (:mod:`.augment`) on the device.

Reproducibility: the caller seeds (:func:`seed_everything`) *before* building the model, so
the initial weights depend on the seed only; :func:`fit` seeds again and draws the batch order
and every augmentation from a ``torch.Generator`` on the device seeded with ``seed``. The same
seed on the same device gives the same weights (bit for bit on CPU with the same thread count
and memory format; CUDA kernels may differ).

Memory format: on a CPU, a model registered with ``cpu_channels_last`` (:mod:`ferbench.models.registry`;
its training step measured clearly faster that way, ``benchmarks/compile.py``) trains and
predicts with ``torch.channels_last`` weights and batches; every other model, and every model
on CUDA, stays contiguous. ``$FERBENCH_MEMORY_FORMAT`` (``ferbench run --memory-format``)
overrides the choice (:func:`training_memory_format`). The two formats sum in different orders,
so their weights and probabilities differ in the last bits; ``env.json`` records the choice.

Precision: on CUDA the forward pass runs under ``torch.autocast`` (bfloat16 where supported,
else float16 with a gradient scaler); losses are computed in float32. Elsewhere float32.

History: a neural model returned by :func:`fit` carries ``model.training_history``, one
:func:`epoch_record` per epoch (a job writes it as ``history.csv``, see :mod:`ferbench.jobs`).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from ferbench.cards import ModelCard, OptimizerSpec, Recipe
from ferbench.errors import CardError, FerbenchError
from ferbench.models.checkpoint import load_weights
from ferbench.models.registry import list_models, model_info
from ferbench.training.augment import Augmenter
from ferbench.training.inputs import match_channels, prepare, resize, resize_uint8
from ferbench.training.objectives import Objective, objective_class
from ferbench.training.teacher import MemoisedTeacher

TeacherForward = Callable[[torch.Tensor], torch.Tensor]
"""Student batch (normalised, augmented, B x C x H x W) -> teacher logits B x K."""

_OPTIMIZERS: dict[str, Callable[[list[nn.Parameter], Any], torch.optim.Optimizer]] = {
    "adam": lambda params, s: torch.optim.Adam(params, lr=s.lr, betas=s.betas, eps=s.eps, weight_decay=s.weight_decay),
    "adamw": lambda params, s: torch.optim.AdamW(params, lr=s.lr, betas=s.betas, eps=s.eps, weight_decay=s.weight_decay),
    "sgd": lambda params, s: torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, nesterov=s.nesterov,
                                             weight_decay=s.weight_decay),
}


PREPARE_CHUNK = 1024
"""Images converted per step when the training set is prepared for the network (bounds peak memory)."""

MEMORY_FORMAT_ENV = "FERBENCH_MEMORY_FORMAT"
MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
"""The memory formats a model can train in, by the name ``$FERBENCH_MEMORY_FORMAT`` takes (or ``auto``)."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) and ask cuDNN for deterministic kernels.

    Call it right before ``create_model`` so the initial weights depend on ``seed`` only.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def learning_rate(recipe: Recipe, epoch: int) -> float:
    """The learning rate of 0-based ``epoch``: ``optimizer.lr * schedule.factor(epoch)``."""
    return recipe.optimizer.lr * recipe.schedule.factor(epoch)


def epoch_record(epoch: int, loss: float, lr: float, seconds: float,
                 val_accuracy: float | None = None) -> dict[str, float]:
    """One row of a training history: 0-based ``epoch``, mean training ``loss`` over the
    epoch's images, learning rate ``lr``, validation accuracy (a fraction; only when a
    validation set exists) and the epoch's wall-clock ``seconds`` (training and validation;
    it varies between runs and is part of no fingerprint)."""
    record = {"epoch": epoch, "loss": loss, "lr": lr}
    if val_accuracy is not None:
        record["val_accuracy"] = val_accuracy
    return record | {"seconds": round(seconds, 3)}


def memory_format_setting() -> str:
    """``$FERBENCH_MEMORY_FORMAT`` (set by ``ferbench run --memory-format``): ``auto`` when unset,
    ``contiguous`` or ``channels_last``. Raises FerbenchError for any other value."""
    setting = os.environ.get(MEMORY_FORMAT_ENV, "auto")
    if setting != "auto" and setting not in MEMORY_FORMATS:
        raise FerbenchError(f"${MEMORY_FORMAT_ENV}={setting!r}: expected auto, contiguous or channels_last")
    return setting


def training_memory_format(card: ModelCard, device: torch.device | str) -> str:
    """The memory format (a :data:`MEMORY_FORMATS` name) :func:`fit` and :func:`predict_proba` run
    ``card``'s model in on ``device``: the :func:`memory_format_setting` when it names one; with
    ``auto``, ``channels_last`` on a CPU for a registered model marked ``cpu_channels_last``,
    else ``contiguous`` (CUDA, timm architectures, factory strings, unmarked models)."""
    setting = memory_format_setting()
    if setting != "auto":
        return setting
    marked = card.model in list_models() and model_info(card.model).cpu_channels_last
    return "channels_last" if marked and torch.device(device).type == "cpu" else "contiguous"


def memory_format_record(card: ModelCard) -> dict[str, str]:
    """What ``env.json`` records: the setting and the memory format ``card``'s model trains in on
    a CPU and on CUDA (stacked training, ``ferbench.training.stacked``, is always contiguous)."""
    return {"setting": memory_format_setting(), "cpu": training_memory_format(card, "cpu"),
            "cuda": training_memory_format(card, "cuda")}


def build_optimizer(params: list[nn.Parameter], spec: OptimizerSpec) -> torch.optim.Optimizer:
    """The torch optimiser a card's ``recipe.optimizer`` describes."""
    return _OPTIMIZERS[spec.name](params, spec)


def fit(
    model: Any,
    card: ModelCard,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
    seed: int,
    teacher: TeacherForward | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, float], None] | None = None,
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Any:
    """Train ``model`` on ``images`` (uint8 N x H x W or N x H x W x 3) and ``labels`` (int64 N).

    Classical models (not ``nn.Module``) get the images resized to the card's input as a
    uint8 numpy array and fit in one call. Neural models train for ``recipe.epochs`` epochs
    on ``device``, in the :func:`training_memory_format`, and are returned in eval mode.

    Args:
        teacher: for objectives that distil, maps the augmented student batch to teacher
            logits (see :func:`teacher_forward`); called without gradients.
        on_epoch_end: called as ``on_epoch_end(epoch, mean_loss)`` (0-based epoch, mean
            training loss over the epoch's images).
        validation: held-out (images, labels) that are neither training nor test data (e.g.
            FER2013's PublicTest). When given, the weights of the epoch with the best
            validation accuracy (the earliest on a tie) are returned, and the chosen epoch is
            stored as ``model.selected_epoch``; the test data never takes part in selection.

    The per-epoch history (:func:`epoch_record`) is stored as ``model.training_history``.
    """
    if not isinstance(model, nn.Module):
        return model.fit(_classical_images(card, images), labels.cpu().numpy())
    device = torch.device(device)
    recipe = _recipe(card)
    objective_cls = objective_class(recipe.objective.name)
    _check_objective(model, card, objective_cls, teacher)
    seed_everything(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    memory_format = MEMORY_FORMATS[training_memory_format(card, device)]
    model.to(device, memory_format=memory_format)
    if recipe.init_checkpoint is not None:
        load_init_checkpoint(model, recipe.init_checkpoint)
    if isinstance(teacher, nn.Module):
        teacher.eval()
    labels = labels.to(device)
    augmenter = Augmenter(recipe.augment, recipe.tta, card.input.size)
    source = _training_images(images, augmenter.canvas_size, card, device)

    probe = augmenter.test_views(source.take(torch.arange(min(2, len(images)), device=device)))[0]
    objective = objective_cls(model, recipe.objective, _num_classes(model, probe))
    optimizer = build_optimizer(list(model.parameters()) + objective.extra_parameters(), recipe.optimizer)
    precision = _Precision(device)
    selection = _BestEpoch(card, validation, device) if validation is not None else None
    history = []
    bar = tqdm(range(recipe.epochs), desc=card.name, unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        started = time.perf_counter()
        lr = learning_rate(recipe, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        total, seen = torch.zeros((), device=device), 0
        batches = _batches(len(images), recipe, generator)
        for index, prepared in zip(batches, source.epoch(batches)):
            x = augmenter.train(prepared, generator).contiguous(memory_format=memory_format)
            y = labels[index]
            with precision.autocast():
                teacher_logits = _no_grad(teacher, x)
                loss = objective.loss(model, x, y, teacher_logits)
            optimizer.zero_grad(set_to_none=True)
            precision.step(loss, optimizer)
            objective.after_step()
            total += loss.detach() * len(index)
            seen += len(index)
        mean_loss = (total / max(seen, 1)).item()
        bar.set_postfix(loss=f"{mean_loss:.4f}")
        if on_epoch_end is not None:
            on_epoch_end(epoch, mean_loss)
        val_accuracy = selection.update(epoch, model) if validation is not None else None
        history.append(epoch_record(epoch, mean_loss, lr, time.perf_counter() - started, val_accuracy))
    if validation is not None:
        selection.restore(model)
    model.training_history = history
    return model.eval()


def predict_proba(model: Any, card: ModelCard, images: torch.Tensor, device: torch.device,
                  batch_size: int = 256) -> torch.Tensor:
    """Class probabilities, float32 N x K on the CPU, in eval mode without gradients.

    With ``recipe.tta`` set, the softmax outputs of all crop views are averaged; a card with a
    crop augmentation but ``tta: none`` predicts on the centre crop. The model runs in the
    :func:`training_memory_format`, so a trained and a reloaded model predict alike.
    """
    if not isinstance(model, nn.Module):
        return torch.from_numpy(np.asarray(model.predict_proba(_classical_images(card, images)))).float()
    device = torch.device(device)
    recipe = card.recipe
    augmenter = Augmenter(recipe.augment if recipe else (), recipe.tta if recipe else "none", card.input.size)
    memory_format = MEMORY_FORMATS[training_memory_format(card, device)]
    model.to(device, memory_format=memory_format).eval()
    chunks = []
    with torch.inference_mode(), _Precision(device).autocast():
        for chunk in images.split(batch_size):
            x = prepare(chunk.to(device), augmenter.canvas_size, card.input.channels, card.input.normalise)
            views = augmenter.test_views(x)
            probs = sum(F.softmax(model(view.contiguous(memory_format=memory_format)).float(), dim=1)
                        for view in views) / len(views)
            chunks.append(probs.cpu())
    if not chunks:
        raise ValueError("predict_proba got no images")
    return torch.cat(chunks)


def teacher_forward(teacher: nn.Module, teacher_card: ModelCard, student_card: ModelCard) -> TeacherForward:
    """Teacher logits for a student batch: resized (bilinear) to the teacher's input size and
    converted to its channels, each distinct image computed once (:class:`MemoisedTeacher`). The
    batch is already normalised the student's way, so both cards must name the same
    ``input.normalise``. ``teacher`` must sit on the training device."""
    if teacher_card.input.normalise != student_card.input.normalise:
        raise CardError(student_card.source_file,
                        f"the teacher `{teacher_card.name}` normalises `{teacher_card.input.normalise}`, this card "
                        f"`{student_card.input.normalise}`; the teacher sees the student's batch, so they must agree",
                        key="input.normalise")
    teacher.eval()
    size, channels = teacher_card.input.size, teacher_card.input.channels
    return MemoisedTeacher(lambda x: teacher(match_channels(resize(x, size), channels)))


def load_init_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Copy into ``model`` every tensor of the state dict file at ``path`` whose name and shape
    match (a ``state_dict`` or ``model`` wrapper is unwrapped). The rest, e.g. a classifier
    trained for another class count, keeps its initialisation, with a warning (:func:`load_weights`)."""
    load_weights(model, path, keep_fresh=lambda key: True)


# ----------------------------------------------------------------------------- helpers


class _BestEpoch:
    """Keeps the weights of the epoch with the highest accuracy on held-out validation data."""

    def __init__(self, card: ModelCard, validation: tuple[torch.Tensor, torch.Tensor], device: torch.device):
        self.card, self.device = card, device
        self.images, self.labels = validation[0], validation[1].cpu()
        self.best_accuracy, self.best_epoch, self.best_state = -1.0, -1, None

    def update(self, epoch: int, model: nn.Module) -> float:
        """Score ``model`` after ``epoch``; keep its weights when best so far; return the accuracy."""
        probs = predict_proba(model, self.card, self.images, self.device)
        accuracy = (probs.argmax(dim=1) == self.labels).float().mean().item()
        if accuracy > self.best_accuracy:
            self.best_accuracy, self.best_epoch = accuracy, epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return accuracy

    def restore(self, model: nn.Module) -> None:
        model.load_state_dict(self.best_state)
        model.selected_epoch = self.best_epoch


class _Precision:
    """Autocast and gradient scaling for a device (see the module docstring)."""

    def __init__(self, device: torch.device):
        self.device_type = device.type
        self.dtype: torch.dtype | None = None
        if device.type == "cuda":
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype is torch.float16)

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype or torch.bfloat16, enabled=self.dtype is not None)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()


def _recipe(card: ModelCard) -> Recipe:
    if card.recipe is None:
        raise CardError(card.source_file, f"model `{card.model}` is a neural network: the card needs a `recipe`",
                        key="recipe")
    return card.recipe


def _check_objective(model: nn.Module, card: ModelCard, objective_cls: type[Objective],
                     teacher: TeacherForward | None) -> None:
    name = card.recipe.objective.name
    missing = [attr for attr in objective_cls.requires if getattr(model, attr, None) is None]
    if missing:
        raise CardError(card.source_file, f"objective `{name}` needs {', '.join(missing)} on the model, "
                                          f"which `{card.model}` lacks", key="recipe.objective")
    if objective_cls.needs_teacher and teacher is None:
        raise CardError(card.source_file, f"objective `{name}` needs a teacher: pass `teacher=` to fit",
                        key="recipe.objective")


def resident_bytes_limit() -> int:
    """Largest prepared training set kept whole on the device: ``$FERBENCH_RESIDENT_BYTES`` or 2 GiB."""
    return int(os.environ.get("FERBENCH_RESIDENT_BYTES", 2 * 2**30))


def loader_workers() -> int:
    """DataLoader worker processes for a streamed set: ``$FERBENCH_LOADER_WORKERS`` or
    min(4, CPU cores - 1); 0 prepares batches in the training process."""
    return int(os.environ.get("FERBENCH_LOADER_WORKERS", min(4, (os.cpu_count() or 1) - 1)))


class _ResidentImages:
    """The whole training set prepared once (resized, scaled) on the device: the usual FER case."""

    def __init__(self, images: torch.Tensor, canvas_size: tuple[int, int], channels: int, mode: str,
                 device: torch.device):
        self.canvas = torch.cat([prepare(chunk.to(device), canvas_size, channels, mode)
                                 for chunk in images.split(PREPARE_CHUNK)])

    def take(self, index: torch.Tensor) -> torch.Tensor:
        return self.canvas[index]

    def epoch(self, batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        return (self.canvas[index] for index in batches)


class _PreparedBatches(Dataset):
    """Index batch -> prepared float batch on the CPU (what a DataLoader worker computes)."""

    def __init__(self, images: torch.Tensor, canvas_size: tuple[int, int], channels: int, mode: str):
        self.images, self.canvas_size, self.channels, self.mode = images, canvas_size, channels, mode

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        return prepare(self.images[index], self.canvas_size, self.channels, self.mode)

    def __len__(self) -> int:
        return len(self.images)


class _EpochBatches(Sampler):
    """The current epoch's index batches (set before each epoch; read in the training process)."""

    def __init__(self) -> None:
        self.batches: list[torch.Tensor] = []

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _StreamedImages:
    """A set too large to keep prepared on the device: uint8 on the host, each batch prepared
    by :func:`loader_workers` DataLoader workers ahead of the training step (same values)."""

    def __init__(self, images: torch.Tensor, canvas_size: tuple[int, int], channels: int, mode: str,
                 device: torch.device):
        self.dataset = _PreparedBatches(images.cpu(), canvas_size, channels, mode)
        self.device = device
        self.sampler = _EpochBatches()
        workers = loader_workers()
        self.loader = DataLoader(self.dataset, batch_size=None, sampler=self.sampler, num_workers=workers,
                                 pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                                 prefetch_factor=4 if workers else None,
                                 generator=torch.Generator().manual_seed(0))  # leaves the global RNG (dropout) alone

    def take(self, index: torch.Tensor) -> torch.Tensor:
        return self.dataset[index.cpu()].to(self.device)

    def epoch(self, batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        self.sampler.batches = [index.cpu() for index in batches]
        return (x.to(self.device, non_blocking=True) for x in self.loader)


def _training_images(images: torch.Tensor, canvas_size: tuple[int, int], card: ModelCard,
                     device: torch.device) -> _ResidentImages | _StreamedImages:
    """Resident when the prepared set fits :func:`resident_bytes_limit`, else streamed
    (FER2013-, RAF-DB- or AffectNet-sized sets at large inputs)."""
    channels, mode = card.input.channels, card.input.normalise
    prepared_bytes = len(images) * channels * canvas_size[0] * canvas_size[1] * 4
    kind = _StreamedImages if prepared_bytes > resident_bytes_limit() else _ResidentImages
    return kind(images, canvas_size, channels, mode, device)


def _batches(n: int, recipe: Recipe, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch's index batches: a random order of ``repeats`` passes over the ``n`` images.
    A last batch of a single image is dropped (BatchNorm cannot train on it)."""
    order = torch.randperm(n * recipe.repeats, generator=generator, device=generator.device) % n
    batches = list(order.split(recipe.batch_size))
    return batches[:-1] if len(batches) > 1 and len(batches[-1]) == 1 else batches


def _num_classes(model: nn.Module, x: torch.Tensor) -> int:
    """The model's output width, from an eval-mode forward pass (no state or RNG changes)."""
    was_training = model.training
    with torch.no_grad():
        width = model.eval()(x).shape[1]
    model.train(was_training)
    return width


def _no_grad(teacher: TeacherForward | None, x: torch.Tensor) -> torch.Tensor | None:
    if teacher is None:
        return None
    with torch.no_grad():
        return teacher(x).float()


def _classical_images(card: ModelCard, images: torch.Tensor) -> np.ndarray:
    return resize_uint8(images, card.input.size, card.input.channels).cpu().numpy()
