"""Samples of one dataset -> one uint8 array of face crops, cached on disk.

Per sample: read the image, find the face with the spec's method, crop and resize it, or (``face:
align``) find the eye centres and warp them onto the template (:mod:`~ferbench.preprocess.align`).
Policies decide what happens to unreadable images (``on_unreadable``) and images without a face
(``on_no_face``). The result is stored under a key of the inputs, so a second run with the same
samples and settings reads one file and detects nothing.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm import tqdm

from ferbench.data.base import DatasetLoader, Sample
from ferbench.errors import DataError, UnknownName
from ferbench.preprocess import align, cache, eye_prior, faces
from ferbench.protocol import PreprocessSpec

FACE_METHODS = ("align", "auto", "haar", "landmarks", "none")
NO_FACE_POLICIES = ("center_crop", "fail", "skip")
UNREADABLE_POLICIES = ("fail", "skip")

PRECROPPED_SIDE = 64
"""``face: auto`` takes images with both sides at most this many pixels as already cropped faces."""
PRECROPPED_ATTR = "cropped"
"""A loader sets ``Sample.attrs["cropped"] = True`` on images that are already face crops."""

ALIGN_METHODS = ("landmarks", "eyes", "face_box", "mean")
"""How ``face: align`` found an image's eye centres, most exact first (module docstring of align)."""
CROP_METHODS = ("landmarks", "haar", "center_crop", "none")
FALLBACK_METHODS = ("face_box", "mean", "center_crop")
"""Methods that frame a face without finding it (its eyes or box): the report lists their images."""

WORKERS = min(4, os.cpu_count() or 1)
EYE_CHECK_IMAGES = 100
"""The report's eye check (:func:`eye_spread`) searches at most this many output images per call
(0.4-0.9 s in one thread whatever the side's size): measured on the 927 CK+48 and 183 JAFFE twin
images of benchmarks/alignment.py, 100 evenly spaced ones give the spread within 0.07 px and the
mean eyes within 0.1 px of all of them's, aligned or Haar-cropped (benchmarks/README.md)."""

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class PreprocessResult:
    """Face crops of the kept samples.

    Attributes:
        images: uint8, N x H x W (gray) or N x H x W x 3 (RGB).
        kept: int64 indices into the input samples, one per image, ascending.
        report: ``total``, ``kept``, ``methods`` (images per method used: landmarks, haar,
            center_crop, none; under ``face: align`` landmarks, eyes, face_box, mean),
            ``no_face`` (per method tried), ``detection_rate`` (faces found / images searched
            by haar or landmarks; under align: eye centres from landmarks or the eye cascade /
            images aligned; None when none were searched), ``eyes_checked``, ``eyes_found_again``,
            ``eye_mean_px`` and ``eye_spread_px`` (see :func:`eye_spread`: over at most
            :data:`EYE_CHECK_IMAGES` of the images), ``skipped_no_face`` (keys), ``skipped_unreadable``
            (``{"path", "problem"}`` each) and ``fallbacks`` (the keys of the kept images framed by
            each of :data:`FALLBACK_METHODS`, in sample order; methods without images absent);
            under align also ``eye_prior`` (the eyes of the pre-cropped faces found by the eye
            cascade, moved by :mod:`~ferbench.preprocess.eye_prior`: ``images`` so moved,
            ``crop_bias_px`` (``closer``: the bias taken off, source pixels), ``applied``
            (whether the side's prior moved them), and when applied ``centre``, ``weight`` and
            ``true_sd`` per component, see :func:`eye_prior.shrink`).
        eyes: under ``face: align`` the eye centres each image was warped with, float64 N x 2 x 2
            (source pixels, image-left eye first; for method ``mean`` the mean position used);
            None for the other face methods.
        methods: the method that framed each image (a key of ``report["methods"]``), N strings.
        cache_path: the cache file holding this result.
        from_cache: True when read from ``cache_path`` instead of computed.
    """

    images: np.ndarray
    kept: np.ndarray
    report: dict[str, Any]
    eyes: np.ndarray | None
    methods: list[str]
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
    eye_distance: float
    eye_height: float

    @classmethod
    def of(cls, spec: PreprocessSpec, on_unreadable: str) -> _Settings:
        settings = cls(
            str(spec.face), float(spec.margin), bool(spec.grayscale),
            (int(spec.size[0]), int(spec.size[1])), float(spec.min_face), str(spec.on_no_face),
            on_unreadable, float(spec.eye_distance), float(spec.eye_height),
        )
        for kind, value, choices in (
            ("face method", settings.face, FACE_METHODS),
            ("on_no_face policy", settings.on_no_face, NO_FACE_POLICIES),
            ("on_unreadable policy", settings.on_unreadable, UNREADABLE_POLICIES),
        ):
            if value not in choices:
                raise UnknownName(kind, value, choices)
        return settings

    @property
    def template(self) -> align.Template:
        return align.Template(self.size, self.eye_distance, self.eye_height)


@dataclass(frozen=True)
class _Outcome:
    """What happened to one sample: the method tried, whether it found a face, the crop or error.

    Under ``face: align`` also the eye centres (2 x 2 source pixels; None when not found, the
    image then still to be made by the mean-eye fallback), the source image's ``size`` (W, H),
    and ``awaits_prior``: cascade eyes of a pre-cropped face, warped once the side's eye prior
    has moved them (:func:`_align_the_rest`).
    """

    method: str = ""
    found: bool = False
    image: np.ndarray | None = None
    error: DataError | None = None
    eyes: np.ndarray | None = None
    size: tuple[int, int] = (0, 0)
    awaits_prior: bool = False


def preprocess_samples(
    loader: DatasetLoader,
    samples: Sequence[Sample],
    spec: PreprocessSpec,
    on_unreadable: str = "fail",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> PreprocessResult:
    """Crop the face of every sample (in order) into one uint8 array, or read it from the cache.

    ``spec.margin`` widens haar and landmark boxes; "none" (the whole image) and the centre
    crop used when no face is found (the central square) take no margin. ``face: align``
    ignores the margin; the eyes the eye cascade finds in pre-cropped images are corrected by the
    side's eye prior (:mod:`~ferbench.preprocess.eye_prior`) before the warp, so these images
    are read twice. Where no eyes, landmarks or face are found, ``on_no_face:
    center_crop`` places the eyes at the mean position (fractions of the image) of the eyes
    found in the other images of ``samples``, or at the template's own fractions when none was
    found (method ``mean``; a pre-cropped image without eyes always takes it). Raises the loader's
    DataError for an unreadable image when ``on_unreadable="fail"``, a DataError naming the file
    when no face is found and ``spec.on_no_face="fail"``, and UnknownName for a bad setting.
    """
    settings = _Settings.of(spec, on_unreadable)
    # the loader's crop flags change how an image is searched, so they are part of the key
    flagged = [i for i, sample in enumerate(samples) if sample.attrs.get(PRECROPPED_ATTR)]
    key = cache.cache_key(samples, {**asdict(settings), "flagged_crops": flagged})
    path = cache.cache_root(cache_dir) / "preprocessed" / f"{key}.npz"
    cached = cache.load_cached(path)
    if cached is not None:
        return PreprocessResult(*cached, cache_path=path, from_cache=True)

    process = _process_align if settings.face == "align" else _process
    outcomes = _map_in_order(
        lambda sample: process(loader, sample, settings), samples, progress, f"faces {loader.name}"
    )
    prior: dict[str, Any] = {}
    if settings.face == "align":
        outcomes, prior = _align_the_rest(loader, samples, outcomes, settings)
    images, kept, report, methods = _collect(samples, outcomes, settings)
    report.update(eye_spread(images, settings.eye_distance if settings.face == "align" else None))
    eyes = None
    if settings.face == "align":
        report["eye_prior"] = prior
        eyes = np.stack([outcomes[k].eyes for k in kept]) if len(kept) else np.zeros((0, 2, 2))
    cache.save_cached(path, images, kept, report, eyes, methods)
    return PreprocessResult(images, kept, report, eyes, methods, cache_path=path, from_cache=False)


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


def _precropped(sample: Sample, image: np.ndarray) -> bool:
    """An already cropped face: small (:data:`PRECROPPED_SIDE`) or flagged by the loader."""
    return max(image.shape[:2]) <= PRECROPPED_SIDE or bool(sample.attrs.get(PRECROPPED_ATTR))


def _process_align(loader: DatasetLoader, sample: Sample, spec: _Settings) -> _Outcome:
    """Read one sample, find its eye centres and warp them onto the template (``face: align``).

    Landmarks first, then Haar eyes in the Haar face box (the whole image for a pre-cropped
    face without one), then the face box's usual eye positions. The outcome has no image when
    none is found, or when the eyes are the cascade's in a pre-cropped face (they await the
    side's prior): :func:`_align_the_rest` makes those.
    """
    try:
        image = loader.read(sample)
        points = loader.landmarks(sample)
        eyes, method = (align.landmark_eyes(points), "landmarks") if points is not None else (None, "")
    except DataError as err:
        return _Outcome(error=err)
    except ValueError as err:
        return _Outcome(error=DataError(sample.key, f"bad landmarks: {err}"))
    size = (image.shape[1], image.shape[0])
    if eyes is None:
        precropped = _precropped(sample, image)
        eyes, method = align.find_eyes(image, spec.min_face, precropped)
        if eyes is None:  # a pre-cropped image is its own face: on_no_face does not apply
            return _Outcome("align", found=precropped, size=size)
        if precropped and method == "eyes":
            return _Outcome(method, True, eyes=eyes, size=size, awaits_prior=True)
    return _Outcome(method, True, align.align_face(image, eyes, spec.template, spec.grayscale), eyes=eyes, size=size)


def _align_the_rest(
    loader: DatasetLoader, samples: Sequence[Sample], outcomes: list[_Outcome], spec: _Settings
) -> tuple[list[_Outcome], dict[str, Any]]:
    """Warp the images :func:`_process_align` left without an image; return them and the
    report's ``eye_prior`` entry.

    First the cascade eyes of the pre-cropped faces lose the crop bias and are moved by the
    side's prior (:func:`eye_prior.correct_crop_bias`, :func:`eye_prior.shrink`). Then the images
    without eyes take the mean eye fractions of all the others: only under ``on_no_face:
    center_crop`` for images without any face, always for pre-cropped images (their whole
    picture is the face). Each of these images is read a second time.
    """
    outcomes = list(outcomes)
    waiting = [i for i, o in enumerate(outcomes) if o.awaits_prior]
    prior: dict[str, Any] = {"applied": False, "images": 0}
    if waiting:
        sizes = np.array([outcomes[i].size for i in waiting], np.float64)
        found = eye_prior.correct_crop_bias(np.stack([outcomes[i].eyes for i in waiting]))
        moved, prior = eye_prior.shrink(found, sizes)
        prior["crop_bias_px"] = {"closer": eye_prior.CROP_CLOSER_PX}
        for index, eyes in zip(waiting, moved):
            outcomes[index] = replace(outcomes[index], eyes=eyes)
    found = [o.eyes / o.size for o in outcomes if o.eyes is not None]
    template = spec.template
    mean = np.mean(found, axis=0) if found else template.eyes() / (template.size[1], template.size[0])
    rest = [i for i, o in enumerate(outcomes) if o.error is None and o.image is None
            and (o.found or spec.on_no_face == "center_crop")]

    def warp(index: int) -> _Outcome:
        outcome = outcomes[index]
        try:
            image = loader.read(samples[index])
        except DataError as err:
            return _Outcome(error=err)
        eyes = mean * (image.shape[1], image.shape[0]) if outcome.eyes is None else outcome.eyes
        method = outcome.method if outcome.awaits_prior else "mean" if outcome.found else "align"
        return replace(outcome, method=method, image=align.align_face(image, eyes, template, spec.grayscale), eyes=eyes)

    for index, outcome in zip(rest, _map_in_order(warp, rest, progress=False, label="align")):
        outcomes[index] = outcome
    return outcomes, prior


def eye_spread(images: np.ndarray, eye_distance: float | None = None) -> dict[str, Any]:
    """How well the eyes line up in the output images (N x H x W[ x 3] uint8), checked by one
    eye-cascade search (:func:`align.cascade_eyes`) in each of at most :data:`EYE_CHECK_IMAGES`
    of them (evenly spaced in order: the same images every run), the whole image as the face box.

    Aligned images (``eye_distance``: the template's, a fraction of W) are searched only for
    eye boxes of the sizes that distance implies (:func:`align.known_eye_widths`), sizes 1.1
    apart (under half the time); other images as :func:`align.haar_eyes` first searches a sharp face.

    Returns ``eyes_checked`` (images searched), ``eyes_found_again`` (of those, images with both
    eyes found), ``eye_mean_px`` (their mean left and right eye centres, [[x, y], [x, y]] in
    output pixels) and ``eye_spread_px`` (the root-mean-square distance of those centres from
    their means, both eyes pooled, output pixels); the last two are None when fewer than 2
    images had their eyes found.
    """
    checked = images[np.linspace(0, len(images) - 1, min(len(images), EYE_CHECK_IMAGES)).round().astype(int)]
    box = (0, 0, images.shape[2], images.shape[1]) if len(images) else (0, 0, 1, 1)
    search = (align.FIRST_SEARCH["sharp"] if eye_distance is None
              else align.EyeSearch(align.known_eye_widths(eye_distance), 1.1))
    found = [e for e in _map_in_order(lambda image: align.cascade_eyes(faces.to_gray(image), box, search),
                                      list(checked), progress=False, label="eyes") if e is not None]
    counts = {"eyes_checked": len(checked), "eyes_found_again": len(found)}
    if len(found) < 2:
        return {**counts, "eye_mean_px": None, "eye_spread_px": None}
    eyes = np.stack(found)
    mean = eyes.mean(axis=0)
    spread = float(np.sqrt(((eyes - mean) ** 2).sum(axis=2).mean()))
    return {**counts, "eye_mean_px": np.round(mean, 2).tolist(), "eye_spread_px": round(spread, 3)}


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
) -> tuple[np.ndarray, np.ndarray, dict[str, Any], list[str]]:
    """Apply the policies in sample order; return (images, kept, report, each kept image's method)."""
    crops: list[np.ndarray] = []
    kept: list[int] = []
    image_methods: list[str] = []
    methods: Counter[str] = Counter()
    tried: Counter[str] = Counter()
    no_face: Counter[str] = Counter()
    skipped_no_face: list[str] = []
    skipped_unreadable: list[dict[str, str]] = []
    fallbacks: dict[str, list[str]] = {}
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
        method = outcome.method if outcome.found else "mean" if spec.face == "align" else "center_crop"
        methods[method] += 1
        if method in FALLBACK_METHODS:
            fallbacks.setdefault(method, []).append(sample.key)
        crops.append(outcome.image)
        kept.append(index)
        image_methods.append(method)

    if spec.face == "align":
        names, searched = ALIGN_METHODS, sum(tried.values())
        detected = methods["landmarks"] + methods["eyes"]
    else:
        names, searched = CROP_METHODS, tried["haar"] + tried["landmarks"]
        detected = searched - sum(no_face.values())
    report = {
        "total": len(samples),
        "kept": len(kept),
        "methods": {name: methods[name] for name in names},
        "no_face": dict(no_face),
        "detection_rate": detected / searched if searched else None,
        "skipped_no_face": skipped_no_face,
        "skipped_unreadable": skipped_unreadable,
        "fallbacks": fallbacks,
    }
    empty_shape = (0, *spec.size) if spec.grayscale else (0, *spec.size, 3)
    images = np.stack(crops) if crops else np.zeros(empty_shape, np.uint8)
    return images, np.asarray(kept, dtype=np.int64), report, image_methods
