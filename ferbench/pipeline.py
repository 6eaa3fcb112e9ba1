"""From a validated protocol to samples, labels, folds and face-crop tensors.

This is the one place where the protocol meets the data layer, in this order:
resolve the dataset root (a real copy or the synthetic twin) -> loader -> frame selection ->
class set -> (face crops) -> folds. It is what ``ferbench inspect`` prints and what the
runner trains on; nothing here knows about models.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ferbench.data.base import DatasetLoader, Sample, file_stamps
from ferbench.data.registry import get_dataset
from ferbench.errors import FerbenchError
from ferbench.frames import select_frames
from ferbench.paths import cache_dir
from ferbench.protocol import is_synthetic
from ferbench.splits import Fold, make_folds, subject_overlap


@dataclass
class SideData:
    """The selected samples of one dataset in a protocol.

    ``role`` is ``"data"`` for a within-dataset protocol, ``"train"``/``"test"`` for the
    source/target of a cross-dataset one. ``y`` holds class indices into the protocol's
    class set; :func:`attach_images` fills ``images`` (N x H x W [x 3] uint8), the
    ``preprocess_report``, ``image_methods`` (the method that framed each image) and, under
    ``face: align``, ``eyes`` (the eye centres each image was warped with, N x 2 x 2 source px).
    """

    role: str
    dataset: str
    root: Path
    synthetic: bool
    loader: DatasetLoader
    samples: list[Sample]
    y: np.ndarray
    images: np.ndarray | None = None
    preprocess_report: dict[str, Any] = field(default_factory=dict)
    image_methods: list[str] = field(default_factory=list)
    eyes: np.ndarray | None = None

    def keys(self) -> list[str]:
        """Each sample's key relative to this side's root (:meth:`Sample.relative_key`)."""
        return [s.relative_key(self.root) for s in self.samples]


def twin_layout(dataset: str, options: dict[str, Any]) -> str:
    """The synthetic layout that stands in for ``dataset`` with these loader options."""
    if dataset == "ckplus" and options.get("layout") == "ck48":
        return "ckplus48"
    if dataset == "fer2013" and options.get("source") == "folders":
        return "fer2013_folders"
    return dataset


def resolve_root(dataset: str, root: str | None, options: dict[str, Any]) -> tuple[Path, bool]:
    """Return (root path, is_synthetic). ``synthetic`` or ``synthetic:small`` uses the twin."""
    if root is None:
        raise FerbenchError(f"dataset `{dataset}` has no root: set `dataset.root` in the protocol, pass "
                            f"`--root {dataset}=/path`, or use `--synthetic`")
    if is_synthetic(root):
        from ferbench.synth import twin_root

        shape = root.partition(":")[2] or "paper"
        return twin_root(twin_layout(dataset, options), shape=shape, seed=0, cache_dir=cache_dir()), True
    return Path(root).expanduser(), False


def load_side(role: str, dataset_spec: Any, frames_spec: Any, classes: tuple[str, ...]) -> SideData:
    """Load one dataset, select its frames and keep the protocol's classes (in class-set order)."""
    loader = get_dataset(dataset_spec.name)
    options = dict(dataset_spec.options or {})
    root, synthetic = resolve_root(dataset_spec.name, dataset_spec.root, options)
    samples = loader.load(root, dataset_spec.loader_options())
    selected = [s for s in select_frames(samples, frames_spec, loader.sequential, loader.peak_frame) if s.label in classes]
    counts = Counter(s.label for s in selected)
    empty = [c for c in classes if counts[c] == 0]
    if empty:
        raise FerbenchError(f"classes {empty} have no samples in `{dataset_spec.name}` at {root} with these frames; "
                            "check `classes` and `frames` in the protocol")
    y = np.array([classes.index(s.label) for s in selected], dtype=np.int64)
    return SideData(role, dataset_spec.name, root, synthetic, loader, selected, y)


@dataclass
class ProtocolData:
    """Everything a protocol selects: the training source(s) and, cross-dataset, the target."""

    protocol: Any
    sources: list[SideData]
    target: SideData | None

    @property
    def samples(self) -> list[Sample]:
        """The source samples, concatenated; fold indices point into this list."""
        return [s for side in self.sources for s in side.samples]

    def keys(self) -> list[str]:
        """Root-relative keys of :attr:`samples`, in the same order (fold indices point into it)."""
        return [key for side in self.sources for key in side.keys()]

    @property
    def y(self) -> np.ndarray:
        return np.concatenate([side.y for side in self.sources])

    @property
    def images(self) -> np.ndarray:
        return np.concatenate([side.images for side in self.sources]) if len(self.sources) > 1 else self.sources[0].images

    @property
    def synthetic(self) -> bool:
        return any(side.synthetic for side in self.all_sides())

    def all_sides(self) -> list[SideData]:
        return self.sources + ([self.target] if self.target is not None else [])

    def folds(self) -> list[Fold]:
        """Folds over :attr:`samples` (the source side); leakage asserted by ``make_folds``."""
        split, cross = self.protocol.split, self.protocol.cross_dataset
        if split is None or (cross is not None and cross.evaluate == "all_source"):
            # cross-dataset, one model trained on all source data (a split, if given, is unused)
            return [Fold(0, np.arange(len(self.samples)), np.array([], dtype=int), np.array([], dtype=int))]
        base = Path(self.protocol.source_file).parent if self.protocol.source_file else None
        return make_folds(split, self.samples, self.y, base_dir=base)


def load_protocol_data(protocol: Any) -> ProtocolData:
    """Load every side of ``protocol`` (:meth:`~ferbench.protocol.Protocol.sides`; no images yet)."""
    classes = tuple(protocol.classes)
    # a within-dataset side keeps the role name "data" that data fingerprints record
    loaded = [load_side("data" if side.role == "within" else side.role, side.dataset, side.frames, classes)
              for side in protocol.sides()]
    sources = [side for side in loaded if side.role != "test"]
    if len(sources) > 1:  # subject ids of different datasets must not collide
        sources = [_prefix_subjects(side) for side in sources]
    return ProtocolData(protocol, sources, next((side for side in loaded if side.role == "test"), None))


def _prefix_subjects(side: SideData) -> SideData:
    side.samples = [s if s.subject is None else replace(s, subject=f"{side.dataset}/{s.subject}") for s in side.samples]
    return side


def attach_images(data: ProtocolData, progress: bool = True) -> ProtocolData:
    """Fill every side's ``images`` with preprocessed face crops (cached on disk).

    Under ``on_unreadable: skip`` unreadable images are dropped from the side's samples and
    labels, so folds must be computed *after* this call.
    """
    from ferbench.preprocess import preprocess_samples

    for side in data.all_sides():
        result = preprocess_samples(side.loader, side.samples, data.protocol.preprocess,
                                    on_unreadable=data.protocol.on_unreadable, cache_dir=cache_dir(),
                                    progress=progress)
        kept = np.asarray(result.kept, dtype=int)
        relative = {s.key: s.relative_key(side.root) for s in side.samples}
        side.samples = [side.samples[i] for i in kept]
        side.y = side.y[kept]
        side.images = result.images
        side.preprocess_report = _relative_paths(result.report, relative)
        side.image_methods, side.eyes = result.methods, result.eyes
    return data


def _relative_paths(report: dict[str, Any], relative: dict[str, str]) -> dict[str, Any]:
    """``report`` with its skipped and fallback files named by root-relative keys (portable run
    directories)."""
    return {**report,
            "fallbacks": {method: [relative.get(key, key) for key in keys]
                          for method, keys in report.get("fallbacks", {}).items()},
            "skipped_unreadable": [{**item, "path": relative.get(item["path"], item["path"])}
                                   for item in report.get("skipped_unreadable", [])],
            "skipped_no_face": [relative.get(key, key) for key in report.get("skipped_no_face", [])]}


def may_skip_images(protocol: Any) -> bool:
    """True when :func:`attach_images` may drop samples (``on_unreadable`` or ``on_no_face`` is
    ``skip``), so folds computed before it can differ from a run's."""
    return protocol.on_unreadable == "skip" or protocol.preprocess.on_no_face == "skip"


def data_fingerprint(data: ProtocolData) -> str:
    """16 hex digits of sha256 over the data a protocol's jobs use; call after :func:`attach_images`.

    Covers, per side (role, dataset), every selected sample's root-relative key, label, subject
    and frame, the size and modification time (ns) of its file, and the side's preprocessing
    report (which images were skipped, and why). So deleting, adding or editing an image, or
    fixing one that ``on_unreadable: skip`` dropped, changes it (as does a copy of the data
    elsewhere: its files have other modification times)."""
    digest = hashlib.sha256()
    for side in data.all_sides():
        digest.update(json.dumps([side.role, side.dataset, side.preprocess_report], sort_keys=True).encode())
        stamps = file_stamps(side.samples)
        for sample, key in zip(side.samples, side.keys()):
            digest.update(json.dumps([key, sample.label, sample.subject, sample.frame, *stamps[sample.path]]).encode())
    return digest.hexdigest()[:16]


def describe(data: ProtocolData) -> dict[str, Any]:
    """Counts for ``ferbench inspect``: per class, per subject, per fold, and the leakage check.

    ``leakage`` is True when a subject is in train and test of some fold, False when none is,
    and None (not applicable) when the source data has no subject identities (FER2013, RAF-DB).
    Once images are attached, ``preprocess`` lists each side's role, dataset and preprocessing
    report (:class:`~ferbench.preprocess.PreprocessResult`).
    The folds are those of ``data`` as given: call :func:`attach_images` first for the folds a
    run trains on when the protocol skips images (:func:`may_skip_images`).
    """
    protocol = data.protocol
    classes = list(protocol.classes)
    folds = data.folds()
    y = data.y
    subjects = [s.subject for s in data.samples]
    identified = all(side.loader.has_subjects for side in data.sources)
    leakage = subject_overlap(folds, subjects) if identified else None
    info: dict[str, Any] = {
        "protocol": protocol.id,
        "fingerprint": protocol.fingerprint,
        "synthetic": data.synthetic,
        "classes": classes,
        "total": len(data.samples),
        "per_class": {c: int((y == i).sum()) for i, c in enumerate(classes)},
        "subjects": len({s for s in subjects if s is not None}),
        "sequences": len({(s.subject, s.sequence) for s in data.samples if s.sequence is not None}),
        "per_subject": dict(sorted(Counter(str(s) for s in subjects).items())),
        "split": protocol.split.type if protocol.split is not None else None,
        "subject_independent": protocol.subject_independent,
        "folds": [
            {"train": len(f.train), "test": len(f.test), "validation": len(f.validation),
             "test_subjects": len({subjects[i] for i in f.test}),
             "test_per_class": {c: int((y[f.test] == i).sum()) for i, c in enumerate(classes)}}
            for f in folds
        ],
        "leakage": leakage,
        "sources": [{"dataset": s.dataset, "root": str(s.root), "total": len(s.samples)} for s in data.sources],
    }
    if data.target is not None:
        t = data.target
        info["target"] = {"dataset": t.dataset, "root": str(t.root), "total": len(t.samples),
                          "per_class": {c: int((t.y == i).sum()) for i, c in enumerate(classes)}}
    preprocessed = [side for side in data.all_sides() if side.images is not None]
    if preprocessed:
        info["preprocess"] = [{"role": side.role, "dataset": side.dataset, "report": side.preprocess_report}
                              for side in preprocessed]
    return info
