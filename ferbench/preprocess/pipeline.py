"""Samples of one dataset -> one uint8 array of face crops, cached on disk.

Per sample: read the image, find the face with the spec's method, crop and resize it. Policies
decide what happens to unreadable images (``on_unreadable``) and images without a face
(``on_no_face``). The result is stored under a key of the inputs, so a second run with the same
samples and settings reads one file and detects nothing.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from tqdm import tqdm

from ferbench.data.base import DatasetLoader, Sample
from ferbench.errors import DataError, UnknownName
from ferbench.preprocess import cache, faces

FACE_METHODS = ("auto", "haar", "landmarks", "none")
NO_FACE_POLICIES = ("center_crop", "fail", "skip")
UNREADABLE_POLICIES = ("fail", "skip")

PRECROPPED_SIDE = 64
"""``face: auto`` takes images with both sides at most this many pixels as already cropped faces."""
PRECROPPED_ATTR = "cropped"
"""A loader sets ``Sample.attrs["cropped"] = True`` on images that are already face crops."""

WORKERS = min(4, os.cpu_count() or 1)

T = TypeVar("T")
R = TypeVar("R")


class PreprocessSpecLike(Protocol):
    """What preprocessing reads from a protocol's ``preprocess`` section (``PreprocessSpec``)."""

    @property
    def face(self) -> str: ...  # "auto" | "haar" | "landmarks" | "none"
    @property
    def margin(self) -> float: ...  # fraction of the face box added on each side
    @property
    def grayscale(self) -> bool: ...
    @property
    def size(self) -> tuple[int, int]: ...  # (H, W) of the stored crop, pixels
    @property
    def min_face(self) -> float: ...  # Haar minimum face side, fraction of the short image side
    @property
    def on_no_face(self) -> str: ...  # "center_crop" | "fail" | "skip"


@dataclass(frozen=True)
class PreprocessResult:
    """Face crops of the kept samples.

    Attributes:
        images: uint8, N x H x W (gray) or N x H x W x 3 (RGB).
        kept: int64 indices into the input samples, one per image, ascending.
        report: ``total``, ``kept``, ``methods`` (images per method used: landmarks, haar,
            center_crop, none), ``no_face`` (per method tried), ``detection_rate`` (faces found
            / images searched by haar or landmarks; None when none were), ``skipped_no_face``
            (keys) and ``skipped_unreadable`` (``{"path", "problem"}`` each).
        cache_path: the cache file holding this result.
        from_cache: True when read from ``cache_path`` instead of computed.
    """

    images: np.ndarray
    kept: np.ndarray
    report: dict[str, Any]
    cache_path: Path
    from_cache: bool


@dataclass(frozen=True)
class _Settings:
    """The spec's fields plus ``on_unreadable``, checked and normalised to plain types."""

    face: str
    margin: float
    grayscale: bool
    size: tuple[int, int]
    min_face: float
    on_no_face: str
    on_unreadable: str

    @classmethod
    def of(cls, spec: PreprocessSpecLike, on_unreadable: str) -> _Settings:
        settings = cls(
            str(spec.face), float(spec.margin), bool(spec.grayscale),
            (int(spec.size[0]), int(spec.size[1])), float(spec.min_face), str(spec.on_no_face),
            on_unreadable,
        )
        for kind, value, choices in (
            ("face method", settings.face, FACE_METHODS),
            ("on_no_face policy", settings.on_no_face, NO_FACE_POLICIES),
            ("on_unreadable policy", settings.on_unreadable, UNREADABLE_POLICIES),
        ):
            if value not in choices:
                raise UnknownName(kind, value, choices)
        return settings


@dataclass(frozen=True)
class _Outcome:
    """What happened to one sample: the method tried, whether it found a face, the crop or error."""

    method: str = ""
    found: bool = False
    image: np.ndarray | None = None
    error: DataError | None = None


def preprocess_samples(
    loader: DatasetLoader,
    samples: Sequence[Sample],
    spec: PreprocessSpecLike,
    on_unreadable: str = "fail",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> PreprocessResult:
    """Crop the face of every sample (in order) into one uint8 array, or read it from the cache.

    ``spec.margin`` widens haar and landmark boxes; "none" (the whole image) and the centre
    crop used when no face is found (the central square) take no margin. Raises the loader's
    DataError for an unreadable image when ``on_unreadable="fail"``, a DataError naming the file
    when no face is found and ``spec.on_no_face="fail"``, and UnknownName for a bad setting.
    """
    settings = _Settings.of(spec, on_unreadable)
    key = cache.cache_key(samples, asdict(settings))
    path = cache.cache_root(cache_dir) / "preprocessed" / f"{key}.npz"
    cached = cache.load_cached(path)
    if cached is not None:
        return PreprocessResult(*cached, cache_path=path, from_cache=True)

    outcomes = _map_in_order(
        lambda sample: _process(loader, sample, settings), samples, progress, f"faces {loader.name}"
    )
    images, kept, report = _collect(samples, outcomes, settings)
    cache.save_cached(path, images, kept, report)
    return PreprocessResult(images, kept, report, cache_path=path, from_cache=False)


def _map_in_order(fn: Callable[[T], R], items: Sequence[T], progress: bool, label: str) -> list[R]:
    """``[fn(item) for item in items]`` on a small thread pool (OpenCV releases the GIL)."""
    pool = ThreadPoolExecutor(WORKERS)
    try:
        results = pool.map(fn, items)
        return list(tqdm(results, total=len(items), desc=label, disable=not progress, leave=False))
    finally:
        pool.shutdown(cancel_futures=True)


def _process(loader: DatasetLoader, sample: Sample, spec: _Settings) -> _Outcome:
    """Read one sample, find its face box with the spec's method and crop it."""
    try:
        image = loader.read(sample)
        method, box = _find_face(loader, sample, image, spec)
    except DataError as err:
        return _Outcome(error=err)
    found = box is not None
    if not found and spec.on_no_face != "center_crop":
        return _Outcome(method, found)
    margin = spec.margin if found and method != "none" else 0.0
    box = box or faces.center_box(image.shape)
    return _Outcome(method, found, faces.crop_face(image, box, margin, spec.size, spec.grayscale))


def _find_face(
    loader: DatasetLoader, sample: Sample, image: np.ndarray, spec: _Settings
) -> tuple[str, faces.Box | None]:
    """Return the method used and the face box (the whole image for "none"; None if no face)."""
    points = loader.landmarks(sample) if spec.face in ("auto", "landmarks") else None
    method = spec.face
    if method == "auto":
        small = max(image.shape[:2]) <= PRECROPPED_SIDE
        precropped = small or bool(sample.attrs.get(PRECROPPED_ATTR))
        method = "landmarks" if points is not None else "none" if precropped else "haar"
    if method == "none":
        return method, (0, 0, image.shape[1], image.shape[0])
    if method == "haar":
        return method, faces.detect_face(faces.to_gray(image), spec.min_face)
    if points is None:
        return method, None
    try:
        return method, faces.landmark_box(points)
    except ValueError as err:
        raise DataError(sample.key, f"bad landmarks: {err}") from err


def _collect(
    samples: Sequence[Sample], outcomes: Sequence[_Outcome], spec: _Settings
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Apply the policies in sample order; return (images, kept, report)."""
    crops: list[np.ndarray] = []
    kept: list[int] = []
    methods: Counter[str] = Counter()
    tried: Counter[str] = Counter()
    no_face: Counter[str] = Counter()
    skipped_no_face: list[str] = []
    skipped_unreadable: list[dict[str, str]] = []
    for index, (sample, outcome) in enumerate(zip(samples, outcomes)):
        if outcome.error is not None:
            if spec.on_unreadable == "fail":
                raise outcome.error
            skipped_unreadable.append({"path": sample.key, "problem": outcome.error.problem})
            continue
        tried[outcome.method] += 1
        if not outcome.found:
            no_face[outcome.method] += 1
            if spec.on_no_face == "fail":
                raise DataError(sample.key, f"no face found (method {outcome.method})")
            if spec.on_no_face == "skip":
                skipped_no_face.append(sample.key)
                continue
        assert outcome.image is not None
        methods[outcome.method if outcome.found else "center_crop"] += 1
        crops.append(outcome.image)
        kept.append(index)

    searched = tried["haar"] + tried["landmarks"]
    report = {
        "total": len(samples),
        "kept": len(kept),
        "methods": {name: methods[name] for name in ("landmarks", "haar", "center_crop", "none")},
        "no_face": dict(no_face),
        "detection_rate": (searched - sum(no_face.values())) / searched if searched else None,
        "skipped_no_face": skipped_no_face,
        "skipped_unreadable": skipped_unreadable,
    }
    empty_shape = (0, *spec.size) if spec.grayscale else (0, *spec.size, 3)
    images = np.stack(crops) if crops else np.zeros(empty_shape, np.uint8)
    return images, np.asarray(kept, dtype=np.int64), report
