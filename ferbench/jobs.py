"""One training job: (protocol, card, seed, fold) -> the files of its job directory.

A job checks that its fold's training and test images are apart (:func:`check_job_isolation`),
trains the card's model on the fold's training indices only (``validation``, when the split has
one, only selects the epoch), predicts the fold's test indices (and, across datasets,
the whole target) and returns ``metrics.json``, ``predictions*.csv``, ``confusion*.csv``,
``history.csv`` (neural models: one row per epoch) and ``model.pt`` / ``model.pkl``
(:mod:`ferbench.runs.job_files`) as bytes. It reads and writes no file, so a process pool or a
Dask worker on another machine can run it; the runner writes what it returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ferbench.cards import ModelCard
from ferbench.errors import FerbenchError
from ferbench.io import json_bytes
from ferbench.metrics import fold_metrics
from ferbench.models.build import build_model
from ferbench.models.checkpoint import load_weights
from ferbench.pipeline import ProtocolData
from ferbench.runs import job_fingerprint
from ferbench.runs.job_files import confusion_csv, history_csv, model_file, predictions_csv
from ferbench.splits import Fold, check_isolation
from ferbench.training import can_stack, fit, fit_stacked, predict_proba, seed_everything, teacher_forward


def resolve_device(name: str) -> torch.device:
    """``auto`` = CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FerbenchError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


@dataclass(frozen=True)
class Job:
    """One (card, seed, fold) job of a protocol; ``inputs`` (:func:`ferbench.runs.job_inputs`)
    is everything that can change its result.

    A distilling card's job carries its teacher card and the state dict (``model.pt`` bytes)
    the teacher job of the same (seed, fold) trained."""

    card: ModelCard
    seed: int
    fold: Fold
    inputs: Mapping[str, Any]
    teacher_card: ModelCard | None = None
    teacher_state: bytes | None = None

    @property
    def fingerprint(self) -> str:
        """The hash of :attr:`inputs` that its ``DONE`` records."""
        return job_fingerprint(self.inputs)

    @property
    def key(self) -> tuple[str, int, int]:
        """(card name, seed, fold index): unique within a protocol's run."""
        return self.card.name, self.seed, self.fold.index


def check_job_isolation(data: ProtocolData, job: Job) -> None:
    """Raise :class:`~ferbench.errors.SplitError` when the job would train on a test image, or
    (subject-independent protocols) on a subject it is tested on (see :func:`check_isolation`)."""
    subjects = [s.subject for s in data.samples] if data.protocol.subject_independent else None
    target = [s.key for s in data.target.samples] if data.target is not None else ()
    check_isolation(job.fold, [s.key for s in data.samples], subjects, target)


def compute_job(data: ProtocolData, job: Job, device: torch.device, progress: bool = False) -> dict[str, bytes]:
    """Train and evaluate one job; return its files (name in the job directory -> content).

    Writes no file, so an executor can run it wherever the data is; the caller writes the files
    (:meth:`RunDir.write_job`). Deterministic for a given job and device (see ``fit``). Refuses
    a fold whose training and test images overlap (:func:`check_job_isolation`)."""
    check_job_isolation(data, job)
    classes = list(data.protocol.classes)
    fold, card, seed = job.fold, job.card, job.seed
    images, y = data.images, data.y
    teacher = _teacher(job, len(classes), device)
    validation = (images[fold.validation], y[fold.validation]) if len(fold.validation) else None
    model = train_model(card, images[fold.train], y[fold.train], len(classes), seed, device, teacher, validation,
                        progress)
    return evaluate_job(data, job, model, device)


def compute_jobs_stacked(data: ProtocolData, jobs: Sequence[Job], device: torch.device) -> list[dict[str, bytes]]:
    """Like :func:`compute_job` for each of ``jobs`` (one card, no validation), but their models
    train at once with stacked weights (:func:`~ferbench.training.stacked.fit_stacked`), a
    distilling card's with each job's own teacher: equal to one by one up to float noise (for
    models without dropout), and faster on a GPU for tiny models."""
    for job in jobs:
        check_job_isolation(data, job)
    card, num_classes = jobs[0].card, len(data.protocol.classes)
    teachers = [_teacher(job, num_classes, device) for job in jobs] if jobs[0].teacher_card is not None else None
    models = []
    for job in jobs:
        seed_everything(job.seed)  # each model starts from the weights its own job would
        models.append(build_model(card, num_classes))
    folds = [(torch.from_numpy(data.images[job.fold.train]), torch.from_numpy(data.y[job.fold.train])) for job in jobs]
    fit_stacked(models, card, folds, device, [job.seed for job in jobs], teachers=teachers)
    return [evaluate_job(data, job, model, device) for job, model in zip(jobs, models)]


def stackable(data: ProtocolData, job: Job, device: torch.device, verdicts: dict[str, bool]) -> bool:
    """Whether ``job`` can train stacked with others of its card (see ``stack_refusal``; a job
    with a validation set selects its epoch, which stacked training does not).
    ``verdicts`` remembers each card's answer by name, so a card's model is built once."""
    if len(job.fold.validation):
        return False
    if job.card.name not in verdicts:
        model = build_model(job.card, len(data.protocol.classes))
        verdicts[job.card.name] = can_stack(model, job.card, device)
    return verdicts[job.card.name]


def evaluate_job(data: ProtocolData, job: Job, model: Any, device: torch.device) -> dict[str, bytes]:
    """The files of a job whose model is trained: predictions, confusions, metrics, the model."""
    classes = list(data.protocol.classes)
    fold, card, images, y = job.fold, job.card, data.images, data.y
    results: dict[str, Any] = {"seed": job.seed, "fold": fold.index}
    if len(fold.validation) and hasattr(model, "selected_epoch"):
        results["selected_epoch"] = model.selected_epoch  # chosen on the validation set, never on test
    evaluations = []
    if len(fold.test):
        evaluations.append(("source" if data.target is not None else "test", data.samples, data.keys(), fold.test,
                            images, y))
    if data.target is not None:
        t = data.target
        evaluations.append(("target", t.samples, t.keys(), np.arange(len(t.samples)), t.images, t.y))
    files: dict[str, bytes] = {}
    for name, samples, keys, idx, imgs, labels in evaluations:
        probs = predict_proba(model, card, torch.from_numpy(imgs[idx]), device).cpu().numpy()
        pred = probs.argmax(axis=1)
        metrics = fold_metrics(labels[idx], pred, classes)
        results[name] = metrics
        suffix = "" if name in ("test", "source") else f"_{name}"
        files[f"predictions{suffix}.csv"] = predictions_csv([samples[i] for i in idx], [keys[i] for i in idx],
                                                            labels[idx], pred, probs, classes).encode()
        files[f"confusion{suffix}.csv"] = confusion_csv(metrics["confusion"], classes).encode()
    files.update(model_file(model))
    if getattr(model, "training_history", None):  # neural models (see ferbench.training.trainer)
        files["history.csv"] = history_csv(model.training_history).encode()
    files["metrics.json"] = json_bytes(results)
    return files


def _teacher(job: Job, num_classes: int, device: torch.device) -> Any:
    """For a distilling job: its fold's trained teacher, as a function from the student batch to
    teacher logits (see ``teacher_forward``)."""
    if job.teacher_card is None:
        return None
    teacher = load_weights(build_model(job.teacher_card, num_classes), job.teacher_state,
                           origin=f"the teacher model of seed{job.seed}/fold{job.fold.index}")
    return teacher_forward(teacher.to(device), job.teacher_card, job.card)


def train_model(card: ModelCard, images: np.ndarray, y: np.ndarray, num_classes: int, seed: int,
                device: torch.device, teacher: Any = None,
                validation: tuple[np.ndarray, np.ndarray] | None = None, progress: bool = False) -> Any:
    """Build the card's model with ``seed`` and fit it on the given training images only
    (``validation``, held-out non-test data, only selects the epoch)."""
    seed_everything(seed)
    model = build_model(card, num_classes)
    held_out = None if validation is None else (torch.from_numpy(validation[0]), torch.from_numpy(validation[1]))
    return fit(model, card, torch.from_numpy(images), torch.from_numpy(y), device, seed, teacher=teacher,
               progress=progress, validation=held_out)


