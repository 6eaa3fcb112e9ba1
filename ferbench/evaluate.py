"""``ferbench evaluate``: score a trained model under a protocol, without training.

The model comes from a checkpoint file (:func:`ferbench.checkpoints.load_trained_model`: which
files, and where its card and label order come from).

Label mapping
-------------
The model's classes are matched to the protocol's by name. Model classes the protocol lacks
are dropped: their probability mass is removed and the rest renormalised to sum to 1. Protocol
classes the model lacks are an error unless ``allow_missing``; then the model's probability of
them is 0, so their samples always count as wrong (metrics stay comparable with models that
know every class). Both are reported in ``summary.json`` under ``label_mapping``.

What is scored: never a sample the model trained on
---------------------------------------------------
The candidates are every test sample of the protocol: within a dataset the union of all
folds' test sets (the whole selection under k-fold or leave-one-subject-out), across datasets
the whole target. A checkpoint with a *training record* (it lies in a run directory of
``ferbench run``, ``<run>/seed<S>/fold<K>/``, whose ``folds.json`` lists the fold's training
subjects and sample keys) is scored only on the candidates it never trained on:

- a candidate of a dataset the model did not train on (compared by
  :func:`~ferbench.checkpoints.dataset_identity`) is kept: ``train_status`` ``held-out target``;
- else a candidate is removed when its root-relative key is one the model trained on (or
  selected its epoch on), or when it has a subject and any image of that subject was in
  training; the rest is scored: ``train_status`` ``cross-validated``. Under the run's own
  protocol with a subject-independent split (or a split by image of a dataset without
  subjects) that is exactly the fold's test set, so the numbers equal the fold's
  ``metrics.json``; under another protocol on the same data (a 7-class model under the
  6-class protocol) the removed count is reported.

A checkpoint without a record is scored on every candidate: ``train_status``
``external (training data unknown)``. ``evaluate_run`` (``ferbench evaluate --run``) scores
every fold model of a finished run this way: the run's cross-validation redone under another
protocol or label mapping; a fold model with nothing held out under that protocol gets no job.

Output
------
The run directory of ``ferbench run`` (:mod:`ferbench.runs`) with one job per scored model
(``predictions*.csv`` name samples by root-relative key):
``seed<S>/fold<K>`` of the model's own job (``seed0/fold0`` for a model without record), its
``folds.json`` holding the scored samples as each fold's test set. ``summary.json`` is
aggregated like a run's and carries ``evaluated: true``, ``train_status``, ``trained_in`` (the
run the models come from, or null), ``held_out`` (per job: ``seed``, ``fold``, the
``checkpoint`` path and ``sha256``, ``scored`` and ``removed`` samples, ``removed_subjects``)
and ``label_mapping``; a single checkpoint's evaluation also ``checkpoint`` (path, sha256,
kind). No model file is written.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from ferbench.cards import ModelCard
from ferbench.checkpoints import TrainedModel, TrainingRecord, dataset_identity, load_trained_model, source_specs
from ferbench.errors import FerbenchError
from ferbench.io import json_bytes
from ferbench.jobs import resolve_device
from ferbench.metrics import fold_metrics
from ferbench.pipeline import ProtocolData, SideData, data_fingerprint
from ferbench.runs import TRAIN_CROSS_VALIDATED, TRAIN_EXTERNAL, TRAIN_HELD_OUT_TARGET, RunDir, job_fingerprint, job_inputs
from ferbench.runs.header import run_header, write_run_header
from ferbench.runs.job_files import confusion_csv, predictions_csv
from ferbench.runs.summary import summarise
from ferbench.splits import Fold


# ----------------------------------------------------------------------------- label mapping


@dataclass(frozen=True)
class LabelMapping:
    """How the model's outputs map onto the protocol's classes (see the module docstring)."""

    model_labels: tuple[str, ...]
    classes: tuple[str, ...]

    @property
    def missing(self) -> list[str]:
        """Protocol classes the model lacks."""
        return [c for c in self.classes if c not in self.model_labels]

    @property
    def dropped(self) -> list[str]:
        """Model classes the protocol lacks."""
        return [c for c in self.model_labels if c not in self.classes]

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """``N x len(model_labels)`` -> ``N x len(classes)``: shared columns renormalised, missing ones 0."""
        out = np.zeros((len(probs), len(self.classes)), dtype=np.float64)
        for k, name in enumerate(self.classes):
            if name in self.model_labels:
                out[:, k] = probs[:, self.model_labels.index(name)]
        return out / np.maximum(out.sum(axis=1, keepdims=True), 1e-12)

    def report(self, probs: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        """``model_labels``, ``missing`` with ``missing_samples`` (counted wrong), ``dropped`` with
        ``dropped_mass`` (mean probability removed per sample) for ``summary.json``."""
        missing = [self.classes.index(c) for c in self.missing]
        dropped = [self.model_labels.index(c) for c in self.dropped]
        return {
            "model_labels": list(self.model_labels),
            "missing": self.missing,
            "missing_samples": int(np.isin(y, missing).sum()),
            "dropped": self.dropped,
            "dropped_mass": float(probs[:, dropped].sum(axis=1).mean()) if dropped else 0.0,
        }


def label_mapping(model_labels: tuple[str, ...], classes: tuple[str, ...], allow_missing: bool) -> LabelMapping:
    """The mapping; raise :class:`FerbenchError` for protocol classes the model lacks unless ``allow_missing``."""
    mapping = LabelMapping(tuple(model_labels), tuple(classes))
    if mapping.missing and not allow_missing:
        raise FerbenchError(f"the model has no output for the protocol's classes {', '.join(mapping.missing)} "
                            f"(its labels: {', '.join(model_labels)}); pass --allow-missing to count those "
                            "samples as wrong")
    if not set(model_labels) & set(classes):
        raise FerbenchError(f"the model's labels {', '.join(model_labels)} share no class with the protocol's")
    return mapping


# ----------------------------------------------------------------------------- what is scored


@dataclass(frozen=True)
class Scoring:
    """The samples one model is scored on (see the module docstring): indices into ``side.samples``."""

    role: str  # "test" (within a dataset) or "target" (across datasets)
    side: SideData
    index: np.ndarray
    status: str  # a train status of ferbench.runs
    removed: int  # candidates dropped because the model trained on them
    removed_subjects: int  # their distinct subjects


def held_out_scoring(data: ProtocolData, training: TrainingRecord | None) -> Scoring:
    """The candidates of ``data`` (every test sample of its protocol) minus what ``training`` covers."""
    resolved = data.protocol.resolved_dict()
    if data.target is None:
        role, side, spec = "test", data.sources[0], resolved["dataset"]
        candidates = np.unique(np.concatenate([fold.test for fold in data.folds()])).astype(int)
    else:
        role, side, spec = "target", data.target, resolved["cross_dataset"]["test"]["dataset"]
        candidates = np.arange(len(data.target.samples))
    identity = dataset_identity(spec)
    if training is None:
        return Scoring(role, side, candidates, TRAIN_EXTERNAL, 0, 0)
    if identity not in training.datasets:
        return Scoring(role, side, candidates, TRAIN_HELD_OUT_TARGET, 0, 0)
    trained = _trained_mask(side, training, identity)[candidates]
    removed = candidates[trained]
    subjects = {side.samples[i].subject for i in removed} - {None}
    return Scoring(role, side, candidates[~trained], TRAIN_CROSS_VALIDATED, len(removed), len(subjects))


def _trained_mask(side: SideData, training: TrainingRecord, identity: str) -> np.ndarray:
    """Per sample of ``side`` (of dataset ``identity``): True when its key was in training, or
    its subject was (recorded, or owner of a trained key, e.g. a validation sample)."""
    keys = side.keys()
    subjects = {subject for dataset, subject in training.subjects if dataset == identity}
    subjects |= {str(s.subject) for s, key in zip(side.samples, keys) if key in training.keys and s.subject is not None}
    return np.array([key in training.keys or (s.subject is not None and str(s.subject) in subjects)
                     for s, key in zip(side.samples, keys)], dtype=bool)


def finished_models(run_dir: Path) -> list[Path]:
    """The model file of every (seed, fold) job of the finished ``ferbench run`` directory ``run_dir``.

    Raises:
        FerbenchError: ``run_dir`` is no run directory, an evaluation, or has an unfinished job.
    """
    run = RunDir(Path(run_dir))
    for name in ("summary.json", "protocol.resolved.yaml", "card.resolved.yaml", "folds.json"):
        if not (run.root / name).is_file():
            raise FerbenchError(f"--run {run_dir}: not a run directory of `ferbench run` (no {name})")
    summary = run.read_json("summary.json")
    if summary.get("evaluated"):
        raise FerbenchError(f"--run {run_dir}: an evaluation holds no models; pass the run it evaluated")
    if not summary.get("complete"):
        raise FerbenchError(f"--run {run_dir}: not a finished run ({summary.get('jobs_done')} of "
                            f"{summary.get('jobs_total')} jobs done; finish it with `ferbench run`)")
    models = []
    for job in summary.get("jobs", []):
        seed, fold = int(job["seed"]), int(job["fold"])
        found = [p for p in (run.job_dir(seed, fold) / n for n in ("model.pt", "model.pkl")) if p.is_file()]
        if not (run.is_done(seed, fold, job["fingerprint"]) and found):
            raise FerbenchError(f"--run {run_dir}: not a finished run, job seed{seed}/fold{fold} is not done "
                                "(finish it with `ferbench run`)")
        models.append(found[0])
    return models


# ----------------------------------------------------------------------------- evaluation


def evaluate_checkpoint(data: ProtocolData, trained: TrainedModel, out: Path, name: str | None = None,
                        device: str = "auto", allow_missing: bool = False) -> dict[str, Any]:
    """Score ``trained`` on the test samples of ``data`` (images attached) it never trained on
    (module docstring), write the run directory ``out/<protocol-id>/<name or card name>/`` and
    return its summary.

    Raises:
        FerbenchError: a label-set problem (see :func:`label_mapping`), a bad ``name``, nothing
            left to score, or a run directory that holds a trained run (it is never overwritten).
    """
    run, summary = _evaluate(data, [trained], out, name, device, allow_missing)
    job = summary["held_out"][0]
    summary["checkpoint"] = {"path": job["checkpoint"], "sha256": job["sha256"], "kind": trained.kind}
    run.write_json("summary.json", summary)
    return summary


def evaluate_run(data: ProtocolData, run_dir: Path, out: Path, name: str | None = None, device: str = "auto",
                 allow_missing: bool = False, model: str | Path | None = None,
                 labels: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Score every fold model of the finished run ``run_dir`` on its own held-out samples of
    ``data`` (the run's cross-validation under ``data``'s protocol), like :func:`evaluate_checkpoint`;
    ``model`` and ``labels`` as in :func:`load_trained_model`.

    Raises:
        FerbenchError: as :func:`evaluate_checkpoint`; ``run_dir`` is not a finished run (see
            :func:`finished_models`), or trained on other datasets than ``data`` selects.
    """
    trained = [load_trained_model(path, model, labels) for path in finished_models(run_dir)]
    trained_on = trained[0].training.datasets  # a finished run always has its record
    selected = tuple(dataset_identity(spec) for spec in source_specs(data.protocol.resolved_dict()))
    if trained_on != selected:
        raise FerbenchError(f"--run {run_dir} trained on {', '.join(trained_on)} but "
                            f"protocol {data.protocol.id} selects {', '.join(selected)}: --run re-scores a run on "
                            "its own dataset (score one --checkpoint on another)")
    run, summary = _evaluate(data, trained, out, name, device, allow_missing)
    run.write_json("summary.json", summary)
    return summary


def _evaluate(data: ProtocolData, models: list[TrainedModel], out: Path, name: str | None, device: str,
              allow_missing: bool) -> tuple[RunDir, dict[str, Any]]:
    """Score each of ``models`` (one card and label order) on its held-out samples, one job each;
    return the evaluation's run directory and summary (not yet written)."""
    protocol = data.protocol
    classes = tuple(protocol.classes)
    mapping = label_mapping(models[0].labels, classes, allow_missing)
    card = _renamed(models[0].card, name)
    run = RunDir.for_run(out, protocol.id, card.name)
    trained_files = sorted(run.root.glob("seed*/fold*/model.p*"))
    if trained_files:
        raise FerbenchError(f"{run.root} holds a trained run ({trained_files[0].relative_to(run.root)}); "
                            "evaluate into another --out or --name")
    scorings = [held_out_scoring(data, trained.training) for trained in models]
    if not any(len(scoring.index) for scoring in scorings):
        where = models[0].checkpoint if len(models) == 1 else models[0].training.run
        raise FerbenchError(f"{where}: every sample protocol {protocol.id} tests (or its subject) was in training; "
                            "nothing is left to score")
    at = [(t.training.seed, t.training.fold) if t.training else (0, 0) for t in models]
    kept = [(job, scoring) for job, scoring in zip(at, scorings) if len(scoring.index)]
    empty = np.array([], dtype=int)
    folds = {fold: Fold(fold, empty, s.index if s.role == "test" else empty, empty) for (_, fold), s in kept}
    wanted = {(f"seed{seed}", f"fold{fold}") for (seed, fold), _ in kept}
    for stale in run.root.glob("seed*/fold*"):  # jobs of an earlier evaluation into this directory
        if stale.is_dir() and (stale.parent.name, stale.name) not in wanted:
            shutil.rmtree(stale)
    data_fp = data_fingerprint(data)
    header = run_header(data, card, {}, data_fp)
    write_run_header(run, data, list(folds.values()), card, header)
    jobs, held_out, model_probs, truths = [], [], [], []
    for trained, scoring, (seed, fold) in zip(models, scorings, at):
        side, index = scoring.side, scoring.index
        digest = hashlib.sha256(trained.checkpoint.read_bytes()).hexdigest()
        held_out.append({"seed": seed, "fold": fold, "checkpoint": str(trained.checkpoint.resolve()),
                         "sha256": digest, "scored": len(index), "removed": scoring.removed,
                         "removed_subjects": scoring.removed_subjects})
        if not len(index):  # a fold model of --run with nothing held out under this protocol: no job
            continue
        probs_model = trained.predict_proba(side.images[index], resolve_device(device))
        probs = mapping.apply(probs_model)
        pred, y = probs.argmax(axis=1), side.y[index]
        metrics = fold_metrics(y, pred, classes)
        inputs = job_inputs(protocol.fingerprint, data_fp, card.fingerprint, seed, fold,
                            {"checkpoint": digest, "labels": list(trained.labels)})
        fingerprint = job_fingerprint(inputs)
        suffix = "" if scoring.role == "test" else f"_{scoring.role}"
        keys = side.keys()
        run.write_job(seed, fold, {
            f"predictions{suffix}.csv": predictions_csv([side.samples[i] for i in index], [keys[i] for i in index],
                                                        y, pred, probs, list(classes)).encode(),
            f"confusion{suffix}.csv": confusion_csv(metrics["confusion"], list(classes)).encode(),
            "metrics.json": json_bytes({"seed": seed, "fold": fold, scoring.role: metrics}),
        }, fingerprint, inputs)
        jobs.append((seed, fold, fingerprint))
        model_probs.append(probs_model)
        truths.append(y)
    summary = summarise(run, data, card, jobs, header)
    record = models[0].training
    summary.update({
        "evaluated": True,
        "train_status": scorings[0].status,
        "trained_in": None if record is None else {"run": str(record.run), "protocol": record.protocol,
                                                   "same_protocol": record.fingerprint == protocol.fingerprint},
        "held_out": held_out,
        "label_mapping": mapping.report(np.concatenate(model_probs), np.concatenate(truths)),
        "params": models[0].n_parameters,
    })
    return run, summary


def _renamed(card: ModelCard, name: str | None) -> ModelCard:
    if name is None:
        return card
    try:
        return ModelCard.model_validate({**card.resolved_dict(), "name": name})
    except ValidationError as err:
        raise FerbenchError(f"--name `{name}`: {err.errors()[0]['msg']}") from None
