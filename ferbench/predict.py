"""``ferbench predict``: expression probabilities of the face in each image or video frame.

Per picture: find the largest face with OpenCV's Haar cascade (:func:`~ferbench.preprocess.detect_face`;
``face="none"`` takes the whole picture), crop it with :func:`~ferbench.preprocess.crop_face` and
predict with the trained model (:class:`~ferbench.checkpoints.TrainedModel`: its card's input and
test-time crops, its label order). The crop follows the protocol the model was trained under
(margin, crop size, gray or colour, Haar minimum face) when the checkpoint's run directory or
ONNX metadata records it; otherwise the protocol defaults (margin 0.2, minimum face 0.15 of the
short side) at the card's input size (its crop canvas, for cards with crop augmentations), gray
for 1-channel cards. Videos (``.mp4 .avi .mov .mkv``) are read frame by frame, every
``every``-th frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ferbench.data.base import read_image_file
from ferbench.errors import DataError
from ferbench.checkpoints import TrainedModel
from ferbench.io import atomic_write_bytes
from ferbench.preprocess import crop_face, detect_face
from ferbench.preprocess.faces import Box, to_gray
from ferbench.protocol import PreprocessSpec
from ferbench.training import Augmenter

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
PREDICT_FACE_METHODS = ("haar", "none")  # `predict --face`: the largest Haar face, or the whole picture


@dataclass(frozen=True)
class FacePrediction:
    """The prediction for one picture. ``source`` is the file (``file#frame`` for a video frame);
    ``box`` the face ``(x, y, w, h)`` in its pixels and ``probabilities`` label -> probability,
    in the model's label order (None and empty when no face was found)."""

    source: str
    box: Box | None
    probabilities: dict[str, float]

    @property
    def top(self) -> tuple[str, float] | None:
        """The most probable label and its probability."""
        return max(self.probabilities.items(), key=lambda kv: kv[1]) if self.probabilities else None


def crop_settings(trained: TrainedModel) -> PreprocessSpec:
    """The face crop of ``trained``'s protocol, else the defaults at the card's input (module docstring)."""
    if trained.preprocess is not None:
        return trained.preprocess
    card = trained.card
    recipe = card.recipe
    canvas = Augmenter(recipe.augment if recipe else (), recipe.tta if recipe else "none", card.input.size).canvas_size
    return PreprocessSpec(size=canvas, grayscale=card.input.channels == 1)


def predict_paths(paths: Sequence[str | Path], trained: TrainedModel, face: str = "haar", every: int = 1,
                  annotate: Path | None = None, device: torch.device | str = "cpu") -> list[FacePrediction]:
    """Predict every image and video under ``paths`` (files, or folders read non-recursively in
    name order). With ``annotate``, write each picture there with the face box and top label drawn
    (``<stem>.png``; ``<stem>_frame<N>.png`` for video frames)."""
    if face not in PREDICT_FACE_METHODS:
        raise ValueError(f"face must be one of {', '.join(PREDICT_FACE_METHODS)}, got `{face}`")
    spec = crop_settings(trained)
    results = []
    for path in _input_files(paths):
        for source, stem, picture in _pictures(path, every):
            result = predict_picture(picture, source, trained, spec, face, device)
            results.append(result)
            if annotate is not None:
                annotate.mkdir(parents=True, exist_ok=True)
                _, png = cv2.imencode(".png", draw_prediction(picture, result))
                atomic_write_bytes(annotate / f"{stem}.png", png.tobytes())
    return results


def predict_picture(picture: np.ndarray, source: str, trained: TrainedModel, spec: PreprocessSpec, face: str,
                    device: torch.device | str) -> FacePrediction:
    """Find the face in ``picture`` (uint8 gray or BGR) as ``face`` says, crop it as ``spec`` says and predict."""
    if face == "none":
        box, margin = (0, 0, picture.shape[1], picture.shape[0]), 0.0
    else:
        box, margin = detect_face(to_gray(picture), spec.min_face), spec.margin
    if box is None:
        return FacePrediction(source, None, {})
    crop = crop_face(picture, box, margin, spec.size, spec.grayscale)
    probs = trained.predict_proba(crop[None], device)[0]
    return FacePrediction(source, box, {label: float(p) for label, p in zip(trained.labels, probs)})


def draw_prediction(picture: np.ndarray, result: FacePrediction) -> np.ndarray:
    """A BGR copy of ``picture`` with the face box and ``label probability`` drawn (or "no face")."""
    canvas = cv2.cvtColor(picture, cv2.COLOR_GRAY2BGR) if picture.ndim == 2 else picture.copy()
    scale = max(0.4, min(canvas.shape[:2]) / 600)
    thickness = max(1, round(2 * scale))
    if result.box is None:
        cv2.putText(canvas, "no face", (5, round(25 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 255), thickness)
        return canvas
    x, y, w, h = result.box
    label, p = result.top
    cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), (0, 255, 0), thickness)
    cv2.putText(canvas, f"{label} {p:.2f}", (x, max(y - 6, round(20 * scale))), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (0, 255, 0), thickness)
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
