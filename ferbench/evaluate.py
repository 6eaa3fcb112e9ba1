"""``ferbench evaluate``: score a trained model under a protocol, without training.

Checkpoints
-----------
- TorchScript (a zip written by ``torch.jit.save``);
- ONNX (``.onnx``, run by ONNX Runtime on the CPU, see :mod:`ferbench.export`);
- a state dict (``torch.save(model.state_dict())``, e.g. a run's ``seed<S>/fold<K>/model.pt``)
  or a pickled classical model (``.pkl``, a run's ``model.pkl``), rebuilt from the card.

What predicting needs besides the weights — the card (input size, channels, normalisation,
test-time crops), the model's label order (the class of each output) and the face crop
settings — comes from, first found wins: the command line (``--model``, ``--labels``); the run
directory the checkpoint lives in (``<run>/seed<S>/fold<K>/<file>``: ``card.resolved.yaml`` and
``protocol.resolved.yaml``); the metadata ``ferbench export`` writes into an ONNX file.
``--labels`` contradicting a recorded order is an error.

Label mapping
-------------
The model's classes are matched to the protocol's by name. Model classes the protocol lacks
are dropped: their probability mass is removed and the rest renormalised to sum to 1. Protocol
classes the model lacks are an error unless ``allow_missing``; then the model's probability of
them is 0, so their samples always count as wrong (metrics stay comparable with models that
know every class). Both are reported in ``summary.json`` under ``label_mapping``.

Output
------
The run directory of ``ferbench run`` (:mod:`ferbench.runs`) with a single job ``seed0/fold0``
that tests every test sample of the protocol: within a dataset the union of all folds' test
sets (the whole selection under k-fold or leave-one-subject-out), across datasets the whole
target. ``summary.json`` is complete and carries ``evaluated: true`` and the checkpoint's
path and sha256; no model file is written.
"""

from __future__ import annotations

import hashlib
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from pydantic import ValidationError

from ferbench.cards import ModelCard, load_card
from ferbench.errors import DataError, FerbenchError
from ferbench.io import json_bytes
from ferbench.labels import check_class_set
from ferbench.metrics import fold_metrics
from ferbench.models.checkpoint import read_pickle, read_state_dict
from ferbench.pipeline import ProtocolData
from ferbench.plugins import build_model
from ferbench.protocol import PreprocessSpec
from ferbench.jobs import confusion_csv, predictions_csv, resolve_device
from ferbench.runner import summarise, write_run_header
from ferbench.runs import RunDir, job_fingerprint
from ferbench.speed import count_parameters
from ferbench.splits import Fold
from ferbench.training import predict_proba


@dataclass(frozen=True)
class RunRecord:
    """What the run directory holding a checkpoint says about it (all None outside a run)."""

    card: ModelCard | None = None
    classes: tuple[str, ...] | None = None
    preprocess: PreprocessSpec | None = None


@dataclass(frozen=True)
class TrainedModel:
    """A trained model and what predicting with it needs.

    ``model`` is an ``nn.Module`` (TorchScript and :class:`~ferbench.export.OnnxModule`
    included) or a classical estimator; ``labels`` names its outputs in order; ``preprocess``
    holds the face crop settings of the protocol it was trained under, when known.
    """

    model: Any
    card: ModelCard
    labels: tuple[str, ...]
    checkpoint: Path
    kind: str  # torchscript | onnx | state_dict | pickle
    preprocess: PreprocessSpec | None = None

    def predict_proba(self, images: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
        """Probabilities ``N x len(labels)`` for uint8 face crops ``N x H x W`` or ``N x H x W x 3``."""
        probs = predict_proba(self.model, self.card, torch.from_numpy(np.ascontiguousarray(images)),
                              torch.device(device)).numpy()
        if probs.shape[1] != len(self.labels):
            raise FerbenchError(f"{self.checkpoint}: the model has {probs.shape[1]} outputs but its label order names "
                                f"{len(self.labels)} classes ({', '.join(self.labels)}); fix --labels")
        return probs

    @property
    def n_parameters(self) -> int:
        """Parameters of the network (the weights stored in an ONNX file)."""
        return self.model.n_parameters if self.kind == "onnx" else count_parameters(self.model)


# ----------------------------------------------------------------------------- loading


def run_record(checkpoint: Path) -> RunRecord:
    """Read ``card.resolved.yaml`` and ``protocol.resolved.yaml`` of ``<run>/seed<S>/fold<K>/<checkpoint>``."""
    job, seed = checkpoint.resolve().parent, checkpoint.resolve().parent.parent
    if not (re.fullmatch(r"fold\d+", job.name) and re.fullmatch(r"seed\d+", seed.name)):
        return RunRecord()
    root = seed.parent
    card = protocol = None
    if (root / "card.resolved.yaml").is_file():
        card = ModelCard.model_validate(yaml.safe_load((root / "card.resolved.yaml").read_text()))
    if (root / "protocol.resolved.yaml").is_file():
        protocol = yaml.safe_load((root / "protocol.resolved.yaml").read_text())
    if protocol is None:
        return RunRecord(card)
    return RunRecord(card, tuple(protocol["classes"]), PreprocessSpec.model_validate(protocol["preprocess"]))


def checkpoint_kind(path: Path) -> str:
    """``onnx`` (suffix), ``pickle`` (``.pkl``), ``torchscript`` (a zip with ``code/``) or ``state_dict``."""
    if path.suffix == ".onnx":
        return "onnx"
    if path.suffix == ".pkl":
        return "pickle"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any("/code/" in name for name in archive.namelist()):
                return "torchscript"
    return "state_dict"


def load_trained_model(checkpoint: str | Path, model: str | Path | None = None,
                       labels: tuple[str, ...] | None = None) -> TrainedModel:
    """Load ``checkpoint`` with its card (``model``: a card name or path) and label order (see the
    module docstring for where each comes from when not given).

    Raises:
        DataError: the file is missing or holds no usable model.
        FerbenchError: the card or the label order is unknown, or ``labels`` contradicts the record.
    """
    checkpoint = Path(checkpoint).expanduser()
    if not checkpoint.is_file():
        raise DataError(checkpoint, "checkpoint file not found")
    record = run_record(checkpoint)
    kind = checkpoint_kind(checkpoint)
    net: Any = None
    stored: dict[str, Any] = {}
    if kind == "onnx":
        from ferbench.export import OnnxModule

        net = OnnxModule(checkpoint)
        stored = net.metadata
    elif kind == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
            try:
                net = torch.jit.load(str(checkpoint), map_location="cpu")
            except RuntimeError as err:
                raise DataError(checkpoint, f"unreadable TorchScript file ({err})") from err
    card = load_card(model) if model is not None else record.card
    if card is None and stored.get("card"):
        card = ModelCard.model_validate(stored["card"])
    if card is None:
        raise FerbenchError(f"{checkpoint}: which card does this model follow? Pass --model CARD (name or YAML) "
                            "for its input size, channels and normalisation")
    order = label_order(checkpoint, labels, record.classes or _tuple(stored.get("labels")))
    if kind == "state_dict":
        net = _load_state_dict(checkpoint, card, len(order))
    elif kind == "pickle":
        net = read_pickle(checkpoint)
        if not callable(getattr(net, "predict_proba", None)):
            raise DataError(checkpoint, f"holds a {type(net).__name__}, not a classical model with predict_proba()")
    preprocess = record.preprocess
    if preprocess is None and stored.get("preprocess"):
        preprocess = PreprocessSpec.model_validate(stored["preprocess"])
    return TrainedModel(net, card, order, checkpoint, kind, preprocess)


def label_order(checkpoint: Path, given: tuple[str, ...] | None, recorded: tuple[str, ...] | None) -> tuple[str, ...]:
    """The model's label order: ``given`` (checked against ``recorded`` when both exist), else ``recorded``."""
    if given is None:
        if recorded is None:
            raise FerbenchError(f"{checkpoint}: the model's label order is unknown; pass --labels a,b,c "
                                "(canonical class names in the order of its outputs)")
        return recorded
    try:
        given = check_class_set(given)
    except ValueError as err:
        raise FerbenchError(f"--labels: {err}") from err
    if recorded is not None and given != recorded:
        raise FerbenchError(f"--labels {','.join(given)} contradicts the label order recorded for {checkpoint}: "
                            f"{','.join(recorded)}")
    return given


def _tuple(values: Any) -> tuple[str, ...] | None:
    return tuple(values) if values else None


def _load_state_dict(path: Path, card: ModelCard, num_classes: int) -> Any:
    state = read_state_dict(path)
    model = build_model(card, num_classes)
    if not isinstance(model, torch.nn.Module):
        raise DataError(path, f"card `{card.name}` is a classical model: its checkpoint is the pickled model.pkl")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        problem = str(err).splitlines()
        raise DataError(path, f"does not fit card `{card.name}` built for {num_classes} classes: "
                              f"{' '.join(line.strip() for line in problem[:3])}") from err
    return model.eval()


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


# ----------------------------------------------------------------------------- evaluation


def evaluate_checkpoint(data: ProtocolData, trained: TrainedModel, out: Path, name: str | None = None,
                        device: str = "auto", allow_missing: bool = False) -> dict[str, Any]:
    """Evaluate ``trained`` on every test sample of ``data`` (with images attached), write the run
    directory ``out/<protocol-id>/<name or card name>/`` and return its summary.

    Raises:
        FerbenchError: a label-set problem (see :func:`label_mapping`), a bad ``name``, or a run
            directory that holds a trained run (it is never overwritten).
    """
    protocol = data.protocol
    classes = tuple(protocol.classes)
    mapping = label_mapping(trained.labels, classes, allow_missing)
    card = _renamed(trained.card, name)
    run = RunDir.for_run(out, protocol.id, card.name)
    trained_files = sorted(run.root.glob("seed*/fold*/model.p*"))
    if trained_files:
        raise FerbenchError(f"{run.root} holds a trained run ({trained_files[0].relative_to(run.root)}); "
                            "evaluate into another --out or --name")
    side, fold, samples, images, y = _evaluation_set(data)
    index = fold.test if side == "test" else np.arange(len(samples))
    model_probs = trained.predict_proba(images[index], resolve_device(device))
    probs = mapping.apply(model_probs)
    pred = probs.argmax(axis=1)
    metrics = fold_metrics(y[index], pred, classes)

    digest = hashlib.sha256(trained.checkpoint.read_bytes()).hexdigest()
    fingerprint = job_fingerprint(protocol.fingerprint, card.fingerprint, 0, 0,
                                  {"checkpoint": digest, "labels": list(trained.labels)})
    write_run_header(run, data, [fold], card, {})
    suffix = "" if side == "test" else f"_{side}"
    run.write_job(0, 0, {
        f"predictions{suffix}.csv": predictions_csv([samples[i] for i in index], y[index], pred, probs,
                                                    list(classes)).encode(),
        f"confusion{suffix}.csv": confusion_csv(metrics["confusion"], list(classes)).encode(),
        "metrics.json": json_bytes({"seed": 0, "fold": 0, side: metrics}),
    }, fingerprint)
    summary = summarise(run, data, card, [(0, 0, fingerprint)], {})
    summary.update({
        "evaluated": True,
        "checkpoint": {"path": str(trained.checkpoint.resolve()), "sha256": digest, "kind": trained.kind},
        "label_mapping": mapping.report(model_probs, y[index]),
        "params": trained.n_parameters,
    })
    run.write_json("summary.json", summary)
    return summary


def _evaluation_set(data: ProtocolData) -> tuple[str, Fold, list, np.ndarray, np.ndarray]:
    """(side, fold, samples, images, labels) of the evaluation: within a dataset ``test``, one fold
    testing the union of every fold's test indices; across datasets ``target``, one fold testing
    no source sample (the whole target is evaluated)."""
    empty = np.array([], dtype=int)
    if data.target is None:
        tested = np.unique(np.concatenate([fold.test for fold in data.folds()]))
        return "test", Fold(0, empty, tested, empty), data.samples, data.images, data.y
    target = data.target
    return "target", Fold(0, empty, empty, empty), target.samples, target.images, target.y


def _renamed(card: ModelCard, name: str | None) -> ModelCard:
    if name is None:
        return card
    try:
        return ModelCard.model_validate({**card.resolved_dict(), "name": name})
    except ValidationError as err:
        raise FerbenchError(f"--name `{name}`: {err.errors()[0]['msg']}") from None
