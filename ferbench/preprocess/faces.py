"""Finding a face box in one image and cutting it out: Haar detection, landmark boxes, crops.

A box is ``(x, y, w, h)`` in pixels of the source image, ``x`` to the right, ``y`` down.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from ferbench.errors import FerbenchError

Box = tuple[int, int, int, int]

HAAR_FILE = "haarcascade_frontalface_default.xml"
FOREHEAD = 0.25
"""Forehead added above the brows by :func:`landmark_box`, as a fraction of brow-to-chin height."""

# One classifier per thread: a CascadeClassifier keeps per-image state while it detects,
# so sharing one between pool threads is not safe.
_local = threading.local()


def cascade(file: str = HAAR_FILE) -> cv2.CascadeClassifier:
    """A Haar cascade shipped in the OpenCV wheel (``file`` under ``cv2.data.haarcascades``),
    loaded once per thread."""
    loaded = getattr(_local, "cascades", None)
    if loaded is None:
        loaded = _local.cascades = {}
    if file not in loaded:
        folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
        path = Path(folder or "<cv2.data.haarcascades missing>") / file
        classifier = cv2.CascadeClassifier(str(path)) if path.is_file() else None
        if classifier is None or classifier.empty():
            raise FerbenchError(
                f"OpenCV Haar cascade not found or unreadable at {path}: ferbench needs the "
                f"cascades bundled with opencv-python(-headless) 4.x (OpenCV {cv2.__version__} "
                f"is installed; 5.x no longer ships them)"
            )
        loaded[file] = classifier
    return loaded[file]


def to_gray(image: np.ndarray) -> np.ndarray:
    """Return an H x W uint8 image from a gray (H x W) or BGR (H x W x 3) one."""
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def detect_face(gray: np.ndarray, min_face: float, smallest: int | None = None) -> Box | None:
    """Return the largest frontal face in ``gray`` (H x W uint8) as ``(x, y, w, h)``, or None.

    ``min_face`` is the smallest face side searched for, as a fraction of the image's short side
    (OpenCV ``detectMultiScale`` with scaleFactor 1.1, minNeighbors 5). With ``smallest``
    (pixels, at least the cascade's 24 px window) an image whose smallest face would be larger is
    searched on a copy shrunk (INTER_AREA) until it is ``smallest`` pixels: fewer windows, a
    coarser box (returned in ``gray``'s pixels).
    """
    side = max(1, round(min_face * min(gray.shape[:2])))
    scale = np.ones(2)  # source pixels per searched pixel, x and y
    if smallest is not None and side > smallest:
        small = cv2.resize(gray, (max(1, round(gray.shape[1] * smallest / side)),
                                  max(1, round(gray.shape[0] * smallest / side))), interpolation=cv2.INTER_AREA)
        scale = np.array([gray.shape[1] / small.shape[1], gray.shape[0] / small.shape[0]])
        gray, side = small, smallest
    faces = cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: int(f[2]) * int(f[3]))
    x, w = round(int(x) * scale[0]), round(int(w) * scale[0])
    y, h = round(int(y) * scale[1]), round(int(h) * scale[1])
    return x, y, w, h


def landmark_box(landmarks: np.ndarray) -> Box:
    """Return the face box of 68 (x, y) landmarks (iBUG order) in pixels.

    The box spans the jaw line (points 0-16) and brows (17-26) left to right and from the chin
    up to the brows, then grows upwards by :data:`FOREHEAD` of that height to take in part of
    the forehead, as a Haar face box does. Raises ValueError for anything but finite 68 x 2.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2) or not np.isfinite(points).all():
        raise ValueError(f"expected 68 x 2 finite landmarks, got shape {points.shape}")
    outline = points[:27]  # jaw 0-16, brows 17-26
    left, top = outline.min(axis=0)
    right, bottom = outline.max(axis=0)
    top -= FOREHEAD * (bottom - top)
    x, y = int(np.floor(left)), int(np.floor(top))
    return x, y, max(1, int(np.ceil(right)) - x), max(1, int(np.ceil(bottom)) - y)


def center_box(shape: tuple[int, ...]) -> Box:
    """Return the central square of an image of ``shape`` (H, W[, C])."""
    height, width = shape[:2]
    side = min(height, width)
    return (width - side) // 2, (height - side) // 2, side, side


def crop_face(
    image: np.ndarray, box: Box, margin: float, size: tuple[int, int], grayscale: bool
) -> np.ndarray:
    """Cut ``box`` out of ``image`` (gray or BGR) and resize it to ``size`` = (H, W).

    The box grows by ``margin`` times its width (height) on the left and right (top and bottom),
    then its shorter side grows about the centre to the aspect ratio of ``size`` (a square for a
    square size), so the face is never stretched. Parts outside the image repeat the nearest
    edge pixel. Resizing uses INTER_AREA. Returns uint8 H x W (``grayscale``) or H x W x 3 RGB.
    """
    out_h, out_w = size
    x, y, w, h = box
    crop_w, crop_h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    crop_w, crop_h = max(crop_w, crop_h * out_w / out_h), max(crop_h, crop_w * out_h / out_w)
    x0 = round(x + w / 2 - crop_w / 2)
    y0 = round(y + h / 2 - crop_h / 2)
    rows = np.clip(np.arange(y0, y0 + max(1, round(crop_h))), 0, image.shape[0] - 1)
    cols = np.clip(np.arange(x0, x0 + max(1, round(crop_w))), 0, image.shape[1] - 1)
    crop = image[rows[:, None], cols]
    if grayscale:
        crop = to_gray(crop)
    else:
        crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB if crop.ndim == 2 else cv2.COLOR_BGR2RGB)
    return cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA)
