"""What a run will cost before it starts: jobs, image passes, optimiser steps and a time estimate.

The counts are exact for the protocol's folds as loaded (before preprocessing skips): a job of a
neural card trains ``epochs`` epochs of ``repeats`` passes over its fold's training images, in
batches of ``batch_size`` (a last batch of one image is dropped, as the trainer does). The time is
an estimate: the training seconds per image pass of each card are measured on this device by a
short calibration (:func:`calibrate`: four epochs of one or two batches of random images,
the first epoch discarded as warm-up), cached per device and card under
``<cache>/planner/``, and multiplied by the job's image passes. A distilling student also pays for
its teacher's forward pass, taken as a third of the teacher's training pass (the usual
forward:backward ratio), once per distinct view of a training image where the augmentation
has finitely many views (the teacher's logits are remembered: :func:`teacher_passes`). Evaluation, preprocessing and data loading are not counted, and a
classical model's fit is timed on 256 images and scaled linearly (linear SVMs grow faster than
that on large sets), so read the estimate as a lower bound.

The training compute (``train_flops``, the same on every device) counts a training image pass as
three forward passes (forward, and backward at twice the forward's cost) of 2 FLOPs per
multiply-accumulate (:func:`ferbench.speed.count_macs` at the card's input size), plus one
teacher forward pass per :func:`teacher_passes` for a distilling student; None for a classical
model.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ferbench.cards import ModelCard, load_card
from ferbench.errors import FerbenchError
from ferbench.io import atomic_write_json

CONFIRM_SECONDS = 2 * 3600
"""``ferbench run`` asks for ``--yes`` when its estimate exceeds this (``FERBENCH_CONFIRM_HOURS``)."""

CONFIRM_ENV = "FERBENCH_CONFIRM_HOURS"


def confirm_seconds() -> float:
    """The estimate above which ``ferbench run`` asks first: ``$FERBENCH_CONFIRM_HOURS`` hours,
    else :data:`CONFIRM_SECONDS`. Raises FerbenchError for a value that is no positive number."""
    text = os.environ.get(CONFIRM_ENV)
    if text is None:
        return float(CONFIRM_SECONDS)
    try:
        hours = float(text)
    except ValueError:
        hours = -1.0
    if not hours > 0:
        raise FerbenchError(f"${CONFIRM_ENV}={text!r}: expected a positive number of hours, e.g. 2 or 0.5")
    return hours * 3600


CALIBRATION_EPOCHS = 4
CLASSICAL_CALIBRATION_IMAGES = 256


@dataclass(frozen=True)
class PlanRow:
    """The cost of one card under one protocol. ``seconds`` is None when not calibrated."""

    protocol: str
    model: str
    jobs: int
    images_per_epoch: float  # mean over the jobs: training images x repeats
    epochs: int
    image_passes: int  # images seen by the optimiser, all jobs together
    steps: int  # optimiser steps, all jobs together (0 for classical models)
    seconds_per_pass: float | None
    seconds: float | None
    train_flops: int | None  # multiply-adds x 2, forward + backward (+ teacher forward), all jobs together
    teacher_passes: int  # images a distilling card's teachers run on (see teacher_passes), else 0
    role: str = "model"  # or "teacher of <card>"


def job_counts(card: ModelCard, train_sizes: Sequence[int]) -> tuple[int, int]:
    """(image passes, optimiser steps) of training ``card`` once on each of ``train_sizes``."""
    recipe = card.recipe
    if recipe is None:  # a classical model sees each training image once, in one fit
        return sum(train_sizes), 0
    passes = steps = 0
    for n in train_sizes:
        per_epoch = n * recipe.repeats
        batches = math.ceil(per_epoch / recipe.batch_size)
        if batches > 1 and per_epoch % recipe.batch_size == 1:
            batches, per_epoch = batches - 1, per_epoch - 1
        passes += per_epoch * recipe.epochs
        steps += batches * recipe.epochs
    return passes, steps


def plan_protocol(protocol_id: str, train_sizes: Sequence[int], cards: Sequence[ModelCard], seeds: int,
                  num_classes: int, calibration: Calibration | None,
                  adjust: Callable[[ModelCard], ModelCard] = lambda card: card) -> list[PlanRow]:
    """One row per card (and one per teacher of a distilling card, counted once) for a protocol
    of ``num_classes`` classes whose selected folds have ``train_sizes`` training images, run with
    ``seeds`` seeds.
    ``adjust`` maps a card to the card as the run trains it (``--epochs`` / ``--repeats``); it is
    applied to teachers too, as the runner does."""
    rows: list[PlanRow] = []
    teachers: dict[str, PlanRow] = {}
    sizes = list(train_sizes) * seeds
    for card in cards:
        card = adjust(card)
        teacher = adjust(load_card(card.teacher)) if card.teacher is not None else None
        if teacher is not None and teacher.fingerprint not in teachers:
            teachers[teacher.fingerprint] = _row(protocol_id, teacher, sizes, num_classes, calibration, None,
                                                 f"teacher of {card.name}")
        rows.append(_row(protocol_id, card, sizes, num_classes, calibration, teacher, "model"))
    return list(teachers.values()) + rows


def plan_folds(protocol: Any, folds: Sequence[Any], cards: Sequence[ModelCard], seeds: int,
               selected: Sequence[int] | None, device: torch.device | str | None,
               adjust: Callable[[ModelCard], ModelCard] = lambda card: card) -> list[PlanRow]:
    """:func:`plan_protocol` for ``protocol``'s ``folds`` (:class:`~ferbench.splits.Fold`; only the
    ``selected`` indices, None = all), calibrated on ``device`` (None: counts only)."""
    from ferbench.pipeline import cache_dir

    sizes = [len(fold.train) for fold in folds if selected is None or fold.index in selected]
    calibration = None
    if device is not None:
        calibration = Calibration(torch.device(device), protocol.preprocess.size, len(protocol.classes), cache_dir())
    return plan_protocol(protocol.id, sizes, cards, seeds, len(protocol.classes), calibration, adjust)


def pending_folds(protocol: Any, folds: Sequence[Any], cards: Sequence[ModelCard], seeds: Sequence[int],
                  selected: Sequence[int] | None, out: Path) -> list[int]:
    """Indices of the selected folds where some (card, seed) job has no ``DONE`` in ``out`` yet:
    what a resumed run still has to train, for its estimate (whether a ``DONE`` is current is
    the runner's decision; here any ``DONE`` counts as finished)."""
    from ferbench.runs import RunDir

    runs = [RunDir.for_run(out, protocol.id, card.name) for card in cards]
    return [fold.index for fold in folds if (selected is None or fold.index in selected)
            and any(not (run.job_dir(seed, fold.index) / "DONE").is_file() for run in runs for seed in seeds)]


def _row(protocol_id: str, card: ModelCard, sizes: list[int], num_classes: int, calibration: Calibration | None,
         teacher: ModelCard | None, role: str) -> PlanRow:
    passes, steps = job_counts(card, sizes)
    taught = teacher_passes(card, sizes) if teacher is not None else 0
    seconds = per_pass = None
    if calibration is not None:
        per_pass = calibration.seconds_per_pass(card)
        seconds = per_pass * passes + (calibration.seconds_per_pass(teacher) / 3 * taught if teacher else 0.0)
    flops = None
    if card.recipe is not None:
        flops = 3 * forward_flops(card, num_classes) * passes
        flops += forward_flops(teacher, num_classes) * taught if teacher is not None else 0
    epochs = card.recipe.epochs if card.recipe is not None else 1
    repeats = card.recipe.repeats if card.recipe is not None else 1
    return PlanRow(protocol_id, card.name, len(sizes), float(np.mean(sizes)) * repeats if sizes else 0.0,
                   epochs, passes, steps, per_pass, seconds, flops, taught, role)


def teacher_passes(card: ModelCard, train_sizes: Sequence[int]) -> int:
    """Images a distilling ``card``'s teachers run on, all jobs together: each job's image passes,
    or, when its augmentations make finitely many views of an image, at most the fold's
    (image, view) pairs, since the teacher's logits are remembered per distinct image
    (:class:`~ferbench.training.teacher.MemoisedTeacher`)."""
    from ferbench.training.augment import Augmenter

    views = Augmenter(card.recipe.augment, card.recipe.tta, card.input.size).views_per_image
    per_job = (job_counts(card, [n])[0] for n in train_sizes)
    return sum(per_job) if views is None else sum(min(p, n * views) for p, n in zip(per_job, train_sizes))


def forward_flops(card: ModelCard, num_classes: int) -> int:
    """FLOPs (2 per multiply-accumulate) of one forward pass of ``card``'s model on one image of
    its input size, built untrained for ``num_classes`` classes (counted once per process)."""
    from ferbench.models.build import build_model
    from ferbench.speed import count_macs

    key = (card.fingerprint, num_classes)
    if key not in _FORWARD_FLOPS:
        model = build_model(card, num_classes)
        _FORWARD_FLOPS[key] = 2 * (count_macs(model, (card.input.channels, *card.input.size)) or 0)
    return _FORWARD_FLOPS[key]


_FORWARD_FLOPS: dict[tuple[str, int], int] = {}


def totals(rows: Sequence[PlanRow]) -> dict[str, Any]:
    """Jobs, image passes, steps and seconds summed over ``rows`` (seconds None if any is)."""
    seconds = [r.seconds for r in rows]
    return {"jobs": sum(r.jobs for r in rows), "image_passes": sum(r.image_passes for r in rows),
            "steps": sum(r.steps for r in rows), "train_flops": sum(r.train_flops or 0 for r in rows),
            "seconds": None if any(s is None for s in seconds) else float(sum(seconds))}


def format_duration(seconds: float | None) -> str:
    """``42 s``, ``12.5 min``, ``3.4 h`` or ``2.1 d``."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def rows_as_dicts(rows: Sequence[PlanRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


# ----------------------------------------------------------------------------- calibration


class Calibration:
    """Measured training seconds per image pass of each card on one device, cached on disk.

    The cache file ``<cache>/planner/<device>.json`` maps a key of the card's fingerprint,
    the stored crop size, the number of classes and the memory format the card trains in
    (``ferbench.training.trainer.training_memory_format``) to seconds per pass."""

    def __init__(self, device: torch.device, crop_size: tuple[int, int], num_classes: int, cache_dir: Path):
        self.device, self.crop_size, self.num_classes = torch.device(device), tuple(crop_size), num_classes
        self.path = Path(cache_dir) / "planner" / f"{_device_name(self.device)}.json"
        self._cache: dict[str, float] = self._read()

    def seconds_per_pass(self, card: ModelCard) -> float:
        from ferbench.training.trainer import training_memory_format

        key = (f"{card.fingerprint}:{self.crop_size[0]}x{self.crop_size[1]}:{self.num_classes}:"
               f"{training_memory_format(card, self.device)}")
        if key not in self._cache:
            self._cache[key] = calibrate(card, self.num_classes, self.crop_size, self.device)
            atomic_write_json(self.path, self._cache)
        return self._cache[key]

    def _read(self) -> dict[str, float]:
        try:
            cached = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: float(v) for k, v in cached.items() if isinstance(v, (int, float))} if isinstance(cached, dict) else {}


def calibrate(card: ModelCard, num_classes: int, crop_size: tuple[int, int], device: torch.device) -> float:
    """Seconds per training image pass of ``card`` on ``device``, from random uint8 crops of
    ``crop_size`` (H, W): the median epoch time after the first (warm-up) epoch of
    :data:`CALIBRATION_EPOCHS`, divided by the images per epoch. Classical models: the time of
    one fit on :data:`CLASSICAL_CALIBRATION_IMAGES` images, per image."""
    from ferbench.models.build import build_model
    from ferbench.training import fit, seed_everything

    seed_everything(0)
    model = build_model(card, num_classes)
    generator = np.random.default_rng(0)
    if card.recipe is None:
        n = CLASSICAL_CALIBRATION_IMAGES
    else:
        n = card.recipe.batch_size * (2 if card.recipe.batch_size <= 64 else 1)
    images = torch.from_numpy(generator.integers(0, 256, (n, *crop_size), dtype=np.uint8))
    labels = torch.from_numpy(np.arange(n, dtype=np.int64) % num_classes)
    if card.recipe is None:
        start = time.perf_counter()
        fit(model, card, images, labels, device, 0, progress=False)
        return (time.perf_counter() - start) / n
    short = card.with_epochs(CALIBRATION_EPOCHS).with_repeats(1)
    ends: list[float] = []
    fit(model, short, images, labels, device, 0, progress=False,
        on_epoch_end=lambda epoch, loss: ends.append(time.perf_counter()))
    return float(np.median(np.diff(ends))) / n


def _device_name(device: torch.device) -> str:
    """A file-name-safe name of the device model (a CPU by its processor name)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        import platform

        name = f"cpu-{platform.processor() or platform.machine()}-{torch.get_num_threads()}threads"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
