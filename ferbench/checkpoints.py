"""A trained model from a checkpoint file, with what predicting with it needs
(``ferbench evaluate``, ``ferbench predict``, ``ferbench export``).

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

A checkpoint in a run directory also has a *training record* (:class:`TrainingRecord`, from
the run's ``folds.json``): what its model trained on, which ``ferbench evaluate`` never scores.
"""

from __future__ import annotations

import json
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ferbench.cards import ModelCard, load_card
from ferbench.errors import DataError, FerbenchError
from ferbench.labels import check_class_set
from ferbench.models.checkpoint import load_weights, read_pickle
from ferbench.models.build import build_model
from ferbench.protocol import PreprocessSpec, is_synthetic
from ferbench.speed import count_parameters
from ferbench.training import predict_proba


@dataclass(frozen=True)
class TrainingRecord:
    """What one fold model of a run trained on (its run's ``folds.json`` and resolved protocol).

    ``datasets`` are the training sources (:func:`dataset_identity`); ``subjects`` pairs a
    source with a subject id that was in training; ``keys`` are the root-relative keys
    (:meth:`~ferbench.data.base.Sample.relative_key`) of the training and validation samples."""

    run: Path
    protocol: str
    fingerprint: str
    datasets: tuple[str, ...]
    seed: int
    fold: int
    subjects: frozenset[tuple[str, str]]
    keys: frozenset[str]


@dataclass(frozen=True)
class RunRecord:
    """What the run directory holding a checkpoint says about it (all None outside a run)."""

    card: ModelCard | None = None
    classes: tuple[str, ...] | None = None
    preprocess: PreprocessSpec | None = None
    training: TrainingRecord | None = None


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
    training: TrainingRecord | None = None  # None: training data unknown

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


def run_record(checkpoint: Path) -> RunRecord:
    """Read ``card.resolved.yaml``, ``protocol.resolved.yaml`` and ``folds.json`` of
    ``<run>/seed<S>/fold<K>/<checkpoint>``.

    Raises:
        DataError: ``folds.json`` lacks the fold or its ``train_keys`` (written by an older ferbench).
    """
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
    training = None
    if (root / "folds.json").is_file():
        training = _training_record(root, protocol, int(seed.name[4:]), int(job.name[4:]))
    return RunRecord(card, tuple(protocol["classes"]), PreprocessSpec.model_validate(protocol["preprocess"]),
                     training)


def _training_record(root: Path, protocol: dict[str, Any], seed: int, fold: int) -> TrainingRecord:
    path = root / "folds.json"
    entry = next((e for e in json.loads(path.read_text()) if e.get("fold") == fold), None)
    if entry is None or "train_keys" not in entry:
        raise DataError(path, f"records no `train_keys` of fold {fold}, so what its model trained on is unknown; "
                              "rerun the `ferbench run` command that wrote it (finished jobs are kept)")
    specs = source_specs(protocol)
    datasets = tuple(dataset_identity(spec) for spec in specs)
    subjects = set()
    for subject in entry["train_subjects"]:
        if subject == "None":  # how folds.json writes a sample without subject
            continue
        if len(specs) == 1:
            subjects.add((datasets[0], subject))
        else:  # several sources: subjects are prefixed `<dataset>/` (ferbench.pipeline)
            name, _, bare = subject.partition("/")
            subjects.add((datasets[[spec["name"] for spec in specs].index(name)], bare))
    return TrainingRecord(root, protocol["id"], _protocol_fingerprint(root), datasets, seed, fold,
                          frozenset(subjects), frozenset(entry["train_keys"]))


def _protocol_fingerprint(root: Path) -> str | None:
    summary = root / "summary.json"
    return json.loads(summary.read_text()).get("fingerprint") if summary.is_file() else None


def source_specs(protocol: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``dataset`` blocks a resolved protocol trains on (its cross-dataset sources, else its dataset)."""
    cross = protocol.get("cross_dataset")
    return [side["dataset"] for side in cross["train"]] if cross else [protocol["dataset"]]


def dataset_identity(spec: dict[str, Any]) -> str:
    """Which data a resolved ``dataset`` block reads: its name, for a real copy wherever it lies
    (sample keys are root-relative), or ``name (synthetic:<shape>)`` for a synthetic twin."""
    root = spec.get("root")
    if not is_synthetic(root):
        return spec["name"]
    return f"{spec['name']} ({root if ':' in root else root + ':paper'})"


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
    return TrainedModel(net, card, order, checkpoint, kind, preprocess, record.training)


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
    model = build_model(card, num_classes)
    if not isinstance(model, torch.nn.Module):
        raise DataError(path, f"card `{card.name}` is a classical model: its checkpoint is the pickled model.pkl")
    return load_weights(model, path, fits=f"card `{card.name}` built for {num_classes} classes").eval()
