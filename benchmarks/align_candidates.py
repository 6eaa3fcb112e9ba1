"""Face and eye finders compared on twin faces with known eye centres (issue #14, item 2).

    PYTHONPATH=.:/path/to/dlib-pkgs .venv/bin/python benchmarks/align_candidates.py [--faces 100] [--seed 5]

Candidates, all on the gray picture as ferbench reads it:

- ``opencv``: ferbench's current :func:`ferbench.preprocess.align.find_eyes` (Haar face box,
  Haar eye cascade; the face box's usual eye positions when the cascade finds no pair).
- ``dlib upN``: dlib's HOG frontal face detector (``N`` = times the picture is upsampled) and
  the 5-point shape predictor of ``face-recognition-models``; an eye centre is the mean of its
  two corner points. When the detector finds nothing in a pre-cropped face the predictor runs
  with the whole picture as the face rectangle (method ``whole``). ``dlib up1 x4``: the same
  with the predictor run on the picture enlarged 4x (dlib rounds its points to whole pixels).
- ``dlib68 up1``: the 68-point predictor instead (eye = mean of its six eye points, as the truth
  is defined); a reference only: it is trained on iBUG 300-W, whose licence bars commercial use.
- ``dlib box + opencv eyes``: OpenCV's Haar eye search (``align.haar_eyes``) in dlib's face
  rectangle (upsample 0) instead of the Haar face box; the rectangle's usual eye positions
  (:data:`DLIB_BOX_EYES`) when the eye cascade finds no pair.

For each layout of :data:`~ferbench.synth.layouts.truth.TRUTH_LAYOUTS` (``--faces`` fresh
faces each, ``truth_faces(layout, n, seed)``) it prints: the share of faces with eyes found,
how (methods), the error of each found eye against the truth (mean, in true eye distances),
the share of all faces whose worse eye is within 2 / 4 px at a 128-px aligned output (eye
distance 0.38 x 128 = 48.6 px; a miss counts as outside), the mean offset (dx, dy) of the found
eyes at that scale, the 2-px share once that offset is taken off (what a constant correction
such as align's ``CASCADE_DROP`` could reach), and seconds per 1,000 faces; then the same over
all layouts. Candidates alternate face by face in one run, one thread each (the pipeline runs
one image per thread), so compare the speed as ratios.
Without dlib installed only the OpenCV rows are printed, after a one-line note.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from tabulate import tabulate

from ferbench.preprocess.align import FACE_BOX_EYES, find_eyes, haar_eyes
from ferbench.preprocess.faces import to_gray
from ferbench.protocol import PreprocessSpec
from ferbench.synth.layouts.truth import CROP_LAYOUTS, TRUTH_LAYOUTS, truth_faces

OUTPUT_EYE_DISTANCE = 0.38 * 128
"""Eye distance in pixels of a 128-px output with the default template: errors are scaled to it."""
MIN_FACE = PreprocessSpec().min_face
PREDICTORS = {
    "5": ("shape_predictor_5_face_landmarks.dat", (slice(2, 4), slice(0, 2))),
    "68": ("shape_predictor_68_face_landmarks.dat", (slice(36, 42), slice(42, 48))),
}
"""dlib shape predictors of face-recognition-models: file, and the points of each eye (image-left
eye first): the two corners of the 5-point model, the six eye points of the 68-point one."""
DLIB_BOX_EYES = np.array([[0.273, 0.29], [0.732, 0.29]])
"""Mean eye centres in a dlib HOG face rectangle (fractions of its width, height), measured on 270
twin faces (30 per layout, seed 0; spread 3-4% of the rectangle)."""
SUBPIXEL = 4
"""dlib returns whole-pixel points: the ``x4`` variant runs the predictor on the picture enlarged
this many times (bilinear) and maps its points back."""

Found = tuple[np.ndarray | None, str]
"""What a finder returns: the eye centres (2 x 2 pixels, image-left eye first) or None, and how."""
Finder = Callable[[np.ndarray, bool], Found]
"""A finder takes a gray picture and whether it is a pre-cropped face."""


def opencv_finder() -> Finder:
    """ferbench's current eye finder (``find_eyes`` with the default ``min_face``)."""
    return lambda gray, precropped: find_eyes(gray, MIN_FACE, precropped)


def dlib_finder(upsample: int, points: str = "5", enlarge: int = 1) -> Finder:
    """dlib's HOG face detector (picture upsampled ``upsample`` times), then the ``points``
    shape predictor (on the picture enlarged ``enlarge`` times); eye = mean of its eye points."""
    import dlib

    file, eye_points = PREDICTORS[points]
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(model_folder() / file))

    def find(gray: np.ndarray, precropped: bool) -> Found:
        rectangles = list(detector(gray, upsample))
        if rectangles:
            rectangle, method = max(rectangles, key=lambda r: r.area()), "detector"
        elif precropped:
            rectangle, method = dlib.rectangle(0, 0, gray.shape[1] - 1, gray.shape[0] - 1), "whole"
        else:
            return None, "none"
        picture = gray
        if enlarge > 1:
            picture = cv2.resize(gray, None, fx=enlarge, fy=enlarge, interpolation=cv2.INTER_LINEAR)
            rectangle = dlib.rectangle(rectangle.left() * enlarge, rectangle.top() * enlarge,
                                       (rectangle.right() + 1) * enlarge - 1, (rectangle.bottom() + 1) * enlarge - 1)
        found = np.array([(p.x, p.y) for p in predictor(picture, rectangle).parts()], dtype=np.float64)
        found = (found + 0.5) / enlarge - 0.5
        eyes = np.stack([found[eye].mean(axis=0) for eye in eye_points])
        return eyes[np.argsort(eyes[:, 0])], method

    return find


def dlib_box_finder() -> Finder:
    """OpenCV's eye search (:func:`~ferbench.preprocess.align.haar_eyes`) in dlib's face rectangle
    (upsample 0) made into the square box in which a Haar face box would have the same eyes."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    scale = (DLIB_BOX_EYES[1, 0] - DLIB_BOX_EYES[0, 0]) / (FACE_BOX_EYES[1, 0] - FACE_BOX_EYES[0, 0])

    def find(gray: np.ndarray, precropped: bool) -> Found:
        rectangles = list(detector(gray, 0))
        if not rectangles:
            eyes = haar_eyes(gray, (0, 0, gray.shape[1], gray.shape[0])) if precropped else None
            return eyes, "eyes" if eyes is not None else "none"
        r = max(rectangles, key=lambda r: r.area())
        side = scale * r.width()
        left_eye = DLIB_BOX_EYES[0] * (r.width(), r.height()) + (r.left(), r.top())
        box = (round(left_eye[0] - FACE_BOX_EYES[0, 0] * side), round(left_eye[1] - FACE_BOX_EYES[0, 1] * side),
               round(side), round(side))
        eyes = haar_eyes(gray, box)
        if eyes is None:
            return DLIB_BOX_EYES * (r.width(), r.height()) + (r.left(), r.top()), "face_box"
        return eyes, "eyes"

    return find


def model_folder() -> Path:
    """The model folder of the installed face-recognition-models, found without importing the
    package (its ``__init__`` imports ``pkg_resources``, which current setuptools no longer has)."""
    spec = importlib.util.find_spec("face_recognition_models")
    return Path(spec.submodule_search_locations[0]) / "models"


def candidates() -> dict[str, Finder]:
    """The finders to compare: OpenCV always, dlib where it is installed."""
    finders = {"opencv": opencv_finder()}
    if importlib.util.find_spec("dlib") is None or importlib.util.find_spec("face_recognition_models") is None:
        print("dlib or face-recognition-models is not installed: only the OpenCV rows are measured.")
        return finders
    for upsample in (0, 1):
        finders[f"dlib up{upsample}"] = dlib_finder(upsample)
    finders[f"dlib up1 x{SUBPIXEL}"] = dlib_finder(1, enlarge=SUBPIXEL)
    finders["dlib68 up1"] = dlib_finder(1, points="68")
    finders["dlib box + opencv eyes"] = dlib_box_finder()
    return finders


def run_finders(faces: list[tuple[np.ndarray, np.ndarray]], precropped: bool,
                finders: dict[str, Finder]) -> tuple[dict[str, list[Found]], dict[str, float]]:
    """Every finder on every picture of ``faces``, the finders taking turns to go first:
    what each found per face, and its seconds in all."""
    names = list(finders)
    seconds = dict.fromkeys(names, 0.0)
    found: dict[str, list[Found]] = {name: [] for name in names}
    for k, (image, _) in enumerate(faces):
        gray = np.ascontiguousarray(to_gray(image))
        for name in names[k % len(names):] + names[:k % len(names)]:
            start = time.perf_counter()
            found[name].append(finders[name](gray, precropped))
            seconds[name] += time.perf_counter() - start
    return found, seconds


def summary(found: list[Found], truths: list[np.ndarray], seconds: float) -> list[str]:
    """Table cells for one finder on faces with true eyes ``truths``: found share, methods, mean
    eye error (true eye distances), worse eye within 2 / 4 px (128-px output), mean offset px,
    worse eye within 2 px less that offset, seconds per 1,000 faces."""
    errors, signed = [], []  # per eye in eye distances; per face 2 x 2 in output px
    for (eyes, _), truth in zip(found, truths):
        if eyes is not None:
            offset = (eyes - truth) / float(np.linalg.norm(truth[1] - truth[0]))
            errors.extend(np.linalg.norm(offset, axis=1))
            signed.append(offset * OUTPUT_EYE_DISTANCE)
    misses = len(truths) - len(signed)
    worst = np.array([np.linalg.norm(face, axis=1).max() for face in signed] + [np.inf] * misses)
    bias = np.concatenate(signed).mean(axis=0) if signed else np.full(2, np.nan)
    unbiased = np.array([np.linalg.norm(face - bias, axis=1).max() for face in signed] + [np.inf] * misses)
    methods = Counter(method for _, method in found)
    return [
        f"{len(signed) / len(truths):.2f}", " ".join(f"{m} {c}" for m, c in sorted(methods.items())),
        f"{np.mean(errors):.3f}" if errors else "-", f"{(worst <= 2).mean():.2f} / {(worst <= 4).mean():.2f}",
        f"{bias[0]:+.1f}, {bias[1]:+.1f}", f"{(unbiased <= 2).mean():.2f}", f"{1000 * seconds / len(truths):.1f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100, help="faces per layout")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--layouts", nargs="+", default=list(TRUTH_LAYOUTS), choices=TRUTH_LAYOUTS)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    finders = candidates()
    warm_up = np.full((64, 64), 128, np.uint8)
    for find in finders.values():  # the cascades load on their first call
        find(warm_up, True)
    rows, truths = [], []
    pooled: dict[str, list[Found]] = {name: [] for name in finders}
    total = dict.fromkeys(finders, 0.0)
    for layout in args.layouts:
        faces = truth_faces(layout, args.faces, args.seed)
        found, seconds = run_finders(faces, layout in CROP_LAYOUTS, finders)
        truths.extend(truth for _, truth in faces)
        for name in finders:
            rows.append([layout, name, *summary(found[name], [t for _, t in faces], seconds[name])])
            pooled[name].extend(found[name])
            total[name] += seconds[name]
    rows.extend(["all", name, *summary(pooled[name], truths, total[name])] for name in finders)
    print(tabulate(rows, tablefmt="github", headers=[
        "layout", "finder", "found", "methods", "eye error (eye dist.)", "worse eye <= 2 / 4 px",
        "offset dx, dy px", "<= 2 px less offset", "s / 1,000 faces"]))
    others = [name for name in finders if name != "opencv"]
    if others:
        print("speed vs opencv (all layouts): " + ", ".join(f"{n} {total['opencv'] / total[n]:.1f}x" for n in others))


if __name__ == "__main__":
    main()
