"""Eye alignment: find the two eye centres of a face and warp them onto a fixed template.

The eye centres come, in this order of preference, from the dataset's 68 landmarks (mean of
points 36-41 and 42-47), from OpenCV's Haar eye cascade (:func:`haar_eyes`: searched in the
upper part of the face box, then again in the face warped onto a fixed template), or from the
face box alone (the mean eye positions of a Haar face box, :data:`FACE_BOX_EYES`). A
similarity transform (rotation, uniform scale, shift) then maps the two centres exactly onto
the :class:`Template`'s eye points (:func:`align_face`). Where none is found the pipeline uses
the mean eye position of the other images (``ferbench.preprocess.pipeline``).

Points are ``(x, y)`` in pixels, cv2 convention (pixel centres at integers); "left" is the eye
on the image's left. Eyes are a 2 x 2 float64 array: row 0 the left eye, row 1 the right one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ferbench.preprocess.faces import Box, cascade, detect_face, to_gray

EYE_CASCADE_FILE = "haarcascade_eye.xml"
FACE_BOX_EYES = np.array([[0.316, 0.40], [0.685, 0.40]])
"""Mean eye centres in a Haar face box (fractions of its width, height), measured on 300 twin
frames (CK+ and JAFFE populations; spread 1-2% of the box width)."""
SEARCH_WIDTH = 128
"""The face box is resized to this width (pixels) before the eye cascade runs: constant speed."""
SEARCH_PASSES = 2
"""Searches after the first, in the face warped onto :data:`SEARCH_TEMPLATE` (see :func:`haar_eyes`)."""
SETTLED = 0.03
"""No further canonical pass once one finds every coordinate of both eyes within this many eye
distances (1.5 px on :data:`SEARCH_TEMPLATE`) of the template's: the estimate it was warped with
was right already. Measured on 100 twin faces per layout (seed 5): the second pass is skipped on
593 of 882 faces, the share within 2 px changes by 0.02 at most (ckplus48 0.94 -> 0.92)."""
SEARCH_BAND = (0.1, 0.6)
"""The eyes are searched between these fractions of the face box height."""
EYE_BOX_SIDES = (0.45, 1.05)
"""Smallest and largest eye box of :func:`known_eye_widths`, in eye distances: the boxes the
cascade picks measured 0.47-1.00 on 360 twin faces of every layout (median 0.64)."""
CASCADE_DROP = 0.028
"""The eye cascade's box centre sits this fraction of the eye distance above the eye centre (it
takes in the brow): measured on 500 twin faces (frames and crops, mean 0.018-0.036, sd 0.01)."""
FACE_SEARCH_SIDE = 30
""":func:`find_eyes` looks for the face on a copy of the image shrunk so that the smallest face
searched (``min_face``) is this many pixels (the face cascade's window is 24): 256-px JAFFE
frames take 10 instead of 12.5 ms. The box only seeds the eye search: the eyes' precision on 100
twin faces per layout did not change (kdef +0.01). Shrinking to 24 px gains 1 ms more; searching
by octaves (faces s-2s px on a copy where s is 24 px: 5 ms) loses faces (nimstim 57 of 98)."""


@dataclass(frozen=True)
class EyeSearch:
    """Settings of one eye-cascade search (:func:`cascade_eyes`): eye boxes from ``widths[0]`` to
    ``widths[1]`` of the searched width, sizes ``step`` apart; the found centres moved right by
    ``shift`` searched pixels. The search's cost grows with the number of sizes (about 0.35 ms
    each on a face, most of it in the windows on the eyes; boxes over 40 px, where OpenCV steps
    windows 1 px instead of 2, cost most)."""

    widths: tuple[float, float]
    step: float
    shift: float = 0.0


ENLARGED = 1.25
"""A search whose frame enlarges the source more than this (a low-resolution face: a crop under
about 100 px, eyes under 39 px apart) uses the ``enlarged`` settings of :data:`FIRST_SEARCH` and
:data:`CANONICAL_SEARCH`: there the cascade's large, brow-inclusive boxes are blurred and miss
the eye, and the smaller boxes alone are more exact."""
BICUBIC_ABOVE = 2.0
"""A search frame that enlarges the source more than this many times (a face crop of 64 px or
less: CK+48, FER2013) is resampled bicubically, whose edges linear interpolation blurs; others
linearly (a shrinking band with INTER_AREA). Measured on 100 twin faces per layout (seed 5),
share within 2 px, linear -> bicubic: ckplus48 0.93 -> 0.96, fer2013 0.36 -> 0.50 (seed 11:
0.91 -> 0.96, 0.43 -> 0.57); bicubic from 1.25x lost generic 0.97 -> 0.93 (112 px crops, searched as crops).
The ``shift`` of the searches below was measured on linear frames; on the bicubic ones the aligned
eyes' mean sideways offset measured 0.1 px (ckplus48) and 0.3 px (fer2013): left as it is."""
FIRST_SEARCH = {"sharp": EyeSearch((1 / 8, 3 / 8), 1.05, 0.5), "enlarged": EyeSearch((1 / 8, 1 / 2), 1.1, 0.6)}
""":func:`haar_eyes`' search in the face box (128 px wide: eyes about 47 px apart): boxes up to
48 px (1.0 eye distances) at sizes 1.05 apart on sharp faces, up to 64 px at sizes 1.1 apart on
enlarged ones. ``shift``: the found centres' mean lean to the left, measured on 450 twin faces of
every layout (50 each, seed 0): 0.46 px sharp, 0.61 px enlarged."""
CANONICAL_SEARCH = {"sharp": EyeSearch((1 / 8, 3 / 8), 1.1, 0.7), "enlarged": EyeSearch((1 / 8, 5 / 16), 1.1, 0.7)}
""":func:`haar_eyes`' searches on :data:`SEARCH_TEMPLATE` (eyes 48.6 px apart): boxes up to 48 px
(1.0 eye distances), 40 px where enlarged, sizes 1.1 apart. ``shift``: on that frame the found
eye centres sit this many pixels left of the true ones, measured on the same 450 faces (511
sharp passes 0.72 px, 365 enlarged 0.65 px; at sizes 1.05 apart it measured 0.31 px)."""


@dataclass(frozen=True)
class Template:
    """Where the eyes land in the output: ``size`` (H, W) pixels; ``eye_distance`` the distance
    between the eye centres as a fraction of W; ``eye_height`` the height of both centres as a
    fraction of H, from the top. The eyes sit symmetrically about the vertical centre line."""

    size: tuple[int, int]
    eye_distance: float
    eye_height: float

    def eyes(self) -> np.ndarray:
        """The template's eye centres (2 x 2) in output pixels."""
        height, width = self.size
        y = self.eye_height * height - 0.5
        half = self.eye_distance * width / 2
        return np.array([[width / 2 - half - 0.5, y], [width / 2 + half - 0.5, y]])


SEARCH_TEMPLATE = Template((128, 128), 0.38, 0.33)
"""The frame of :func:`haar_eyes`' second pass (independent of the protocol's template)."""


def landmark_eyes(landmarks: np.ndarray) -> np.ndarray:
    """Eye centres of 68 iBUG landmarks (N x 2 pixels): the means of points 36-41 and 42-47,
    ordered left-right in the image. Raises ValueError for anything but finite 68 x 2."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2) or not np.isfinite(points).all():
        raise ValueError(f"expected 68 x 2 finite landmarks, got shape {points.shape}")
    eyes = np.stack([points[36:42].mean(axis=0), points[42:48].mean(axis=0)])
    return eyes[np.argsort(eyes[:, 0])]


def find_eyes(image: np.ndarray, min_face: float, precropped: bool) -> tuple[np.ndarray | None, str]:
    """Eye centres of the face in ``image`` (gray or BGR) without landmarks, and how they were found.

    Haar eyes (:func:`haar_eyes`) in the largest Haar face box (searched at
    :data:`FACE_SEARCH_SIDE`; the whole image when none is found and the image is
    ``precropped``, i.e. already a face crop): method ``eyes``; else the face box's usual eye
    positions: ``face_box``; else ``(None, "none")``.
    """
    gray = to_gray(image)
    box = detect_face(gray, min_face, FACE_SEARCH_SIDE)
    search = box or ((0, 0, gray.shape[1], gray.shape[0]) if precropped else None)
    eyes = haar_eyes(gray, search) if search is not None else None
    if eyes is not None:
        return eyes, "eyes"
    if box is not None:
        return face_box_eyes(box), "face_box"
    return None, "none"


def face_box_eyes(box: Box) -> np.ndarray:
    """The usual eye centres of a Haar face ``box`` (:data:`FACE_BOX_EYES`), in image pixels."""
    x, y, w, h = box
    return FACE_BOX_EYES * (w, h) + (x, y)


def haar_eyes(gray: np.ndarray, box: Box) -> np.ndarray | None:
    """Eye centres found by the Haar eye cascade inside ``box`` of ``gray`` (H x W uint8), or None.

    A first search in the face box (:func:`cascade_eyes`, :data:`FIRST_SEARCH`), then
    :data:`SEARCH_PASSES` more (:data:`CANONICAL_SEARCH`), each in the face warped so that the
    mean of the estimates so far lands on :data:`SEARCH_TEMPLATE` (the same scale and framing
    whatever the input); the passes stop once one finds the eyes within :data:`SETTLED` of the
    template's. Each search uses the ``enlarged`` settings where its frame enlarges the source
    more than :data:`ENLARGED` times. Returns the mean of all estimates; None when the first
    search finds no pair. 3-8 ms per search in one thread (benchmarks/README.md).
    """
    estimates = [cascade_eyes(gray, box, FIRST_SEARCH[_sharpness(SEARCH_WIDTH / box[2])])]
    if estimates[0] is None:
        return None
    height, width = SEARCH_TEMPLATE.size
    target = SEARCH_TEMPLATE.eyes()
    settled = SETTLED * SEARCH_TEMPLATE.eye_distance * width  # pixels of the canonical frame
    for _ in range(SEARCH_PASSES):
        to_template = similarity(np.mean(estimates, axis=0), target)
        enlargement = float(np.hypot(*to_template[:, 0]))
        sharpness = _sharpness(enlargement)
        canonical = cv2.warpAffine(gray, to_template, (width, height), flags=_interpolation(enlargement),
                                   borderMode=cv2.BORDER_REPLICATE)
        search = CANONICAL_SEARCH[sharpness]
        found = cascade_eyes(canonical, (0, 0, width, height), search)
        if found is None:
            break
        back = cv2.invertAffineTransform(to_template)
        estimates.append(found @ back[:, :2].T + back[:, 2])
        if np.abs(found - target).max() <= settled:
            break
    return np.mean(estimates, axis=0)


def _interpolation(enlargement: float) -> int:
    """The cv2 flag a search frame enlarging its source ``enlargement`` (>= 1) times is made with."""
    return cv2.INTER_CUBIC if enlargement > BICUBIC_ABOVE else cv2.INTER_LINEAR


def _sharpness(enlargement: float) -> str:
    """The key of :data:`FIRST_SEARCH` / :data:`CANONICAL_SEARCH` for a frame that enlarges the
    source ``enlargement`` times."""
    return "enlarged" if enlargement > ENLARGED else "sharp"


def known_eye_widths(eye_distance: float) -> tuple[float, float]:
    """The eye box sides (:data:`EYE_BOX_SIDES`) to search for in a box whose eyes are
    ``eye_distance`` (a fraction of its width) apart, as fractions of the box width."""
    return EYE_BOX_SIDES[0] * eye_distance, EYE_BOX_SIDES[1] * eye_distance


def cascade_eyes(gray: np.ndarray, box: Box, search: EyeSearch) -> np.ndarray | None:
    """One eye-cascade search in ``box``: the band :data:`SEARCH_BAND` of the box resized to
    :data:`SEARCH_WIDTH` pixels wide, for the eye boxes of ``search``; of the detections the
    pair with one eye in each half of the box, 25-65% of its width apart, most level and most
    alike in size; each box centre moved down by :data:`CASCADE_DROP` eye distances and right by
    ``search.shift`` (pixels of the resized band)."""
    x, y, w, h = box
    scale = SEARCH_WIDTH / w
    top = y + SEARCH_BAND[0] * h
    band_h = max(1, round((SEARCH_BAND[1] - SEARCH_BAND[0]) * h * scale))
    to_band = np.array([[scale, 0.0, -x * scale], [0.0, scale, -top * scale]])
    flags = cv2.INTER_AREA if scale < 1 else _interpolation(scale)
    band = cv2.warpAffine(gray, to_band, (SEARCH_WIDTH, band_h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    found = cascade(EYE_CASCADE_FILE).detectMultiScale(
        band, scaleFactor=search.step, minNeighbors=3, minSize=(round(search.widths[0] * SEARCH_WIDTH),) * 2,
        maxSize=(round(search.widths[1] * SEARCH_WIDTH),) * 2)
    pair = _best_pair([tuple(int(v) for v in eye) for eye in found])
    if pair is None:
        return None
    centres = np.array([[ex + ew / 2, ey + eh / 2] for ex, ey, ew, eh in pair])
    centres[:, 1] += CASCADE_DROP * float(np.linalg.norm(centres[1] - centres[0]))
    centres[:, 0] += search.shift
    return centres / scale + (x, top)


def _best_pair(eyes: list[Box]) -> tuple[Box, Box] | None:
    """The most plausible (left, right) pair of eye boxes in a band :data:`SEARCH_WIDTH` wide."""
    middle = SEARCH_WIDTH / 2
    best: tuple[float, Box, Box] | None = None
    for left in eyes:
        for right in eyes:
            lx, ly = left[0] + left[2] / 2, left[1] + left[3] / 2
            rx, ry = right[0] + right[2] / 2, right[1] + right[3] / 2
            distance, tilt = rx - lx, abs(ry - ly)
            if not (lx < middle <= rx and 0.25 * SEARCH_WIDTH < distance < 0.65 * SEARCH_WIDTH
                    and tilt <= 0.25 * distance):
                continue
            score = tilt / distance + abs(left[2] - right[2]) / max(left[2], right[2])
            if best is None or score < best[0]:
                best = (score, left, right)
    return None if best is None else best[1:]


def similarity(eyes: np.ndarray, template_eyes: np.ndarray) -> np.ndarray:
    """The 2 x 3 similarity matrix (rotation, uniform scale, shift) mapping ``eyes`` exactly onto
    ``template_eyes`` (both 2 x 2, left eye first)."""
    source, target = (complex(*(e[1] - e[0])) for e in (eyes, template_eyes))
    ratio = target / source  # rotation and scale as one complex number
    a, b = ratio.real, ratio.imag
    shift = template_eyes[0] - np.array([a * eyes[0, 0] - b * eyes[0, 1], b * eyes[0, 0] + a * eyes[0, 1]])
    return np.array([[a, -b, shift[0]], [b, a, shift[1]]])


def align_face(image: np.ndarray, eyes: np.ndarray, template: Template, grayscale: bool) -> np.ndarray:
    """Warp ``image`` (gray or BGR) so that ``eyes`` land on the template's eye points.

    An image shrunk by more than 2x is first resized with INTER_AREA (no aliasing), then warped
    with INTER_LINEAR, an image enlarged more than :data:`BICUBIC_ABOVE` times with INTER_CUBIC
    (a low-resolution crop stays as sharp as its pixels allow); parts outside the image repeat the
    nearest edge pixel. Returns uint8
    ``template.size`` gray (``grayscale``) or H x W x 3 RGB.
    """
    eyes = np.asarray(eyes, dtype=np.float64)
    target = template.eyes()
    shrink = float(np.linalg.norm(target[1] - target[0]) / max(np.linalg.norm(eyes[1] - eyes[0]), 1e-6))
    if shrink < 0.5:
        small = (max(1, round(image.shape[1] * shrink)), max(1, round(image.shape[0] * shrink)))
        factors = np.array([small[0] / image.shape[1], small[1] / image.shape[0]])
        image = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
        eyes = (eyes + 0.5) * factors - 0.5
    image = to_gray(image) if grayscale else (
        cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if image.ndim == 2 else cv2.COLOR_BGR2RGB))
    height, width = template.size
    return cv2.warpAffine(image, similarity(eyes, target), (width, height), flags=_interpolation(max(shrink, 1.0)),
                          borderMode=cv2.BORDER_REPLICATE)
