"""``ferbench predict``: expression probabilities of the face in each image or video frame.

Per picture: prepare the model's input as the protocol it was trained under did (``face``):

- ``haar``: the largest face of OpenCV's Haar cascade (:func:`~ferbench.preprocess.detect_face`),
  cut out with :func:`~ferbench.preprocess.crop_face` (margin, crop size, gray or colour);
- ``none``: the whole picture, cut the same way without margin;
- ``align``: the eye centres of :func:`~ferbench.preprocess.align.find_eyes` (Haar eyes, else
  the usual eyes of the Haar face box) warped onto the protocol's template (eye distance, eye
  height, size) by :func:`~ferbench.preprocess.align.align_face`. A picture of at most
  :data:`~ferbench.preprocess.pipeline.PRECROPPED_SIDE` pixels a side is taken as a face crop:
  its cascade eyes lose the crop bias as in training (:func:`~ferbench.preprocess.eye_prior.
  correct_crop_bias`; the side's eye prior needs a dataset side and is not applied); one without eyes is taken as a
  face crop and warped with the template's own eye positions (method ``mean``, as the
  pipeline does with a pre-cropped image); a larger one without a face gives "no face", whatever
  the protocol's ``on_no_face`` says (its ``center_crop`` fallback places the eyes at the mean of
  the other images of a dataset, which a single picture lacks; a guess would print confident
  probabilities for a picture without a face);
- ``auto`` (the default): the method of the protocol the model was trained under, when the
  checkpoint's run directory or ONNX metadata records it (:data:`AS_TRAINED`), else ``haar``.

The settings (margin, size, gray, Haar minimum face, template) come from that record too;
otherwise the protocol defaults (margin 0.2, minimum face 0.15 of the short side, eye distance
0.38 and height 0.33) at the card's input size (its crop canvas, for cards with crop
augmentations), gray for 1-channel cards. Then the trained model
(:class:`~ferbench.checkpoints.TrainedModel`: its card's input and test-time crops, its label
order) predicts. Videos (``.mp4 .avi .mov .mkv``) are read frame by frame, every ``every``-th
frame, each frame prepared like an image.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ferbench.data.base import read_image_file
from ferbench.errors import DataError, UnknownName
from ferbench.checkpoints import TrainedModel
from ferbench.io import atomic_write_bytes
from ferbench.preprocess import align, crop_face, detect_face, eye_prior
from ferbench.preprocess.faces import Box, to_gray
from ferbench.preprocess.pipeline import PRECROPPED_SIDE
from ferbench.protocol import PreprocessSpec
from ferbench.training import Augmenter

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
PREDICT_FACE_METHODS = ("auto", "align", "haar", "none")  # `predict --face` (module docstring)
AS_TRAINED = {"align": "align", "haar": "haar", "none": "none", "landmarks": "haar", "auto": "haar"}
"""``--face auto``: the predict method for each protocol ``face`` method. Arbitrary pictures
have no landmarks, so a protocol's landmark box (``landmarks``; ``auto``: landmarks, else Haar)
becomes the Haar face box, which :func:`~ferbench.preprocess.landmark_box` imitates."""

Eyes = tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class PreparedFace:
    """The model input cut from one picture, and how its face was found.

    ``method``: ``haar``, ``none`` (the whole picture) or, under align, ``eyes``, ``face_box``
    or ``mean`` (module docstring); the method tried when no face was found. ``box`` is the face
    ``(x, y, w, h)`` (haar, none) and ``eyes`` the left and right eye centres ``(x, y)`` (align),
    in the picture's pixels. ``image`` is the uint8 input (the spec's size, H x W gray or
    H x W x 3 RGB), None when no face was found.
    """

    method: str
    box: Box | None = None
    eyes: Eyes | None = None
    image: np.ndarray | None = None


@dataclass(frozen=True)
class FacePrediction:
    """The prediction for one picture. ``source`` is the file (``file#frame`` for a video frame);
    ``method``, ``box`` and ``eyes`` say how and where its face was found (:class:`PreparedFace`);
    ``probabilities`` label -> probability, in the model's label order (empty when no face was found)."""

    source: str
    method: str
    box: Box | None
    eyes: Eyes | None
    probabilities: dict[str, float]

    @property
    def top(self) -> tuple[str, float] | None:
        """The most probable label and its probability."""
        return max(self.probabilities.items(), key=lambda kv: kv[1]) if self.probabilities else None

    @property
    def where(self) -> str:
        """Where the face is: its box ``x y w h``, the eye centres ``x,y x,y`` (align), or ``-``."""
        if self.box is not None:
            return " ".join(map(str, self.box))
        if self.eyes is not None:
            return " ".join(f"{x:.1f},{y:.1f}" for x, y in self.eyes)
        return "-"


def crop_settings(trained: TrainedModel) -> PreprocessSpec:
    """The face crop of ``trained``'s protocol, else the defaults at the card's input (module docstring)."""
    if trained.preprocess is not None:
        return trained.preprocess
    card = trained.card
    recipe = card.recipe
    canvas = Augmenter(recipe.augment if recipe else (), recipe.tta if recipe else "none", card.input.size).canvas_size
    return PreprocessSpec(size=canvas, grayscale=card.input.channels == 1)


def face_method(face: str, trained: TrainedModel) -> str:
    """The method ``face`` (one of :data:`PREDICT_FACE_METHODS`) means for ``trained``: ``auto``
    is the method of its recorded protocol (:data:`AS_TRAINED`), else haar. Raises UnknownName."""
    if face not in PREDICT_FACE_METHODS:
        raise UnknownName("--face method", face, PREDICT_FACE_METHODS)
    if face != "auto":
        return face
    return AS_TRAINED[trained.preprocess.face] if trained.preprocess is not None else "haar"


def describe_face(face: str, trained: TrainedModel) -> str:
    """One line saying which method ``face`` means for ``trained`` and with which settings."""
    method, spec = face_method(face, trained), crop_settings(trained)
    recorded = trained.preprocess
    if face != "auto":
        why = "as asked"
    elif recorded is None:
        why = "the default: the checkpoint records no preprocessing"
    else:
        why = f"as trained: the protocol's face method is {recorded.face}"
    height, width = spec.size
    colour = "gray" if spec.grayscale else "colour"
    if method == "align":
        settings = f"template {height}x{width} {colour}, eye distance {spec.eye_distance:g}, eye height {spec.eye_height:g}"
    elif method == "haar":
        settings = f"margin {spec.margin:g}, minimum face {spec.min_face:g}, crop {height}x{width} {colour}"
    else:
        settings = f"the whole picture at {height}x{width} {colour}"
    return f"face: {method} ({why}; {settings})"


def predict_paths(paths: Sequence[str | Path], trained: TrainedModel, face: str = "auto", every: int = 1,
                  annotate: Path | None = None, device: torch.device | str = "cpu") -> list[FacePrediction]:
    """Predict every image and video under ``paths`` (files, or folders read non-recursively in
    name order), the face found as ``face`` says (module docstring). With ``annotate``, write each
    picture there with the face box or eyes and the top label drawn (``<stem>.png``;
    ``<stem>_frame<N>.png`` for video frames). Raises UnknownName for an unknown ``face``."""
    method, spec = face_method(face, trained), crop_settings(trained)
    results = []
    for path in _input_files(paths):
        for source, stem, picture in _pictures(path, every):
            result = predict_picture(picture, source, trained, spec, method, device)
            results.append(result)
            if annotate is not None:
                annotate.mkdir(parents=True, exist_ok=True)
                _, png = cv2.imencode(".png", draw_prediction(picture, result))
                atomic_write_bytes(annotate / f"{stem}.png", png.tobytes())
    return results


def predict_picture(picture: np.ndarray, source: str, trained: TrainedModel, spec: PreprocessSpec, method: str,
                    device: torch.device | str) -> FacePrediction:
    """Prepare the face in ``picture`` (uint8 gray or BGR) with ``method`` (align, haar or none)
    and ``spec`` (:func:`prepare_face`) and predict."""
    face = prepare_face(picture, spec, method)
    probabilities = {}
    if face.image is not None:
        probs = trained.predict_proba(face.image[None], device)[0]
        probabilities = {label: float(p) for label, p in zip(trained.labels, probs)}
    return FacePrediction(source, face.method, face.box, face.eyes, probabilities)


def prepare_face(picture: np.ndarray, spec: PreprocessSpec, method: str) -> PreparedFace:
    """The model input of ``picture`` (uint8 gray or BGR) under ``method`` (align, haar or none,
    module docstring) and ``spec``'s crop or template."""
    if method == "align":
        return _aligned_face(picture, spec)
    if method == "none":
        box, margin = (0, 0, picture.shape[1], picture.shape[0]), 0.0
    else:
        box, margin = detect_face(to_gray(picture), spec.min_face), spec.margin
    if box is None:
        return PreparedFace(method)
    return PreparedFace(method, box, image=crop_face(picture, box, margin, spec.size, spec.grayscale))


def _aligned_face(picture: np.ndarray, spec: PreprocessSpec) -> PreparedFace:
    """``face: align`` of one picture (module docstring)."""
    template = align.Template(spec.size, spec.eye_distance, spec.eye_height)
    precropped = max(picture.shape[:2]) <= PRECROPPED_SIDE
    eyes, method = align.find_eyes(picture, spec.min_face, precropped)
    if eyes is None:
        if not precropped:
            return PreparedFace("align")
        height, width = template.size
        eyes, method = template.eyes() / (width, height) * (picture.shape[1], picture.shape[0]), "mean"
    elif precropped and method == "eyes":
        eyes = eye_prior.correct_crop_bias(eyes[None])[0]
    found = ((float(eyes[0, 0]), float(eyes[0, 1])), (float(eyes[1, 0]), float(eyes[1, 1])))
    return PreparedFace(method, eyes=found, image=align.align_face(picture, eyes, template, spec.grayscale))


def draw_prediction(picture: np.ndarray, result: FacePrediction) -> np.ndarray:
    """A BGR copy of ``picture`` with the face box or eye centres and ``label probability`` drawn
    (or "no face")."""
    canvas = cv2.cvtColor(picture, cv2.COLOR_GRAY2BGR) if picture.ndim == 2 else picture.copy()
    scale = max(0.4, min(canvas.shape[:2]) / 600)
    thickness = max(1, round(2 * scale))
    green = (0, 255, 0)
    if result.top is None:
        cv2.putText(canvas, "no face", (5, round(25 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 255), thickness)
        return canvas
    if result.box is not None:
        x, y, w, h = result.box
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), green, thickness)
    else:
        (lx, ly), (rx, ry) = result.eyes
        radius = max(2, round(0.1 * np.hypot(rx - lx, ry - ly)))
        for ex, ey in result.eyes:
            cv2.circle(canvas, (round(ex), round(ey)), radius, green, thickness)
        x, y = round(lx), round(min(ly, ry) - 4 * radius)  # the label sits above the eyebrows
    label, p = result.top
    cv2.putText(canvas, f"{label} {p:.2f}", (x, max(y - 6, round(20 * scale))), cv2.FONT_HERSHEY_SIMPLEX, scale,
                green, thickness)
    return canvas


def _input_files(paths: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(path, "no such image, video or folder")
    return files


def _pictures(path: Path, every: int) -> Iterator[tuple[str, str, np.ndarray]]:
    """(source name, output stem, uint8 gray or BGR picture) of an image, or of every ``every``-th video frame."""
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        yield str(path), path.stem, read_image_file(path)
        return
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(path, "OpenCV cannot open this video")
    try:
        frame_number = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if frame_number % every == 0:
                yield f"{path}#{frame_number}", f"{path.stem}_frame{frame_number:06d}", frame
            frame_number += 1
    finally:
        capture.release()
