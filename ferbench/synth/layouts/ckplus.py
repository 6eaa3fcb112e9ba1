"""CK+ (``cohn-kanade-images/``, ``Emotion/``, ``Landmarks/``) and CK+48 (48x48 class folders)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from ferbench.labels import CANONICAL
from ferbench.synth.face import colorize, eye_centres, render_face, square_crop, square_points
from ferbench.synth.identity import Identity, sample_identity, stream
from ferbench.synth.layouts.common import _run, _write_image, _write_text, layout, ramp
from ferbench.synth.plans import CkSequence, CkSubject, plan_ckplus

CK48_WIDTH = 1.25
"""Side of a CK+48 crop as a multiple of the face width (x-extent of the 68 landmarks)."""
CK48_EYE_HEIGHT = 0.39
"""Height of the eye line in a CK+48 crop, as a fraction of its side from the top."""
CK48_JITTER = (0.015, 0.025)
"""A face detector's crop is not placed identically on every face: each CK+48 crop's centre moves
by a normal offset of sd ``CK48_JITTER[0]`` of its side in x and in y, and its side is scaled by
``exp(N(0, CK48_JITTER[1]))`` (about the spread of a Haar box about the eyes, 1-2% of its width,
``ferbench.preprocess.align.FACE_BOX_EYES``, plus frame-to-frame detector jitter)."""


@layout("ckplus")
def write_ckplus(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """``cohn-kanade-images/``, ``Emotion/`` and ``Landmarks/`` of every planned sequence."""
    plan = plan_ckplus(shape, seed)
    _run([partial(_write_ck_subject, out_dir, seed, s) for s in _largest_first(plan)], workers)
    return out_dir


@layout("ckplus48")
def write_ckplus48(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """48x48 crops of the last 3 frames of each labelled sequence, in class folders."""
    plan = [replace(s, sequences=tuple(q for q in s.sequences if q.labelled)) for s in plan_ckplus(shape, seed)]
    _run([partial(_write_ck48_subject, out_dir, seed, s) for s in _largest_first(plan) if s.sequences], workers)
    return out_dir


def _ck_identity(seed: int, subject: CkSubject) -> Identity:
    return sample_identity("ck", stream(seed, "ckplus", subject.name), key=subject.name)


def _ck_frames(seed: int, subject: CkSubject, last: int | None = None
               ) -> Iterator[tuple[CkSequence, int, np.ndarray, np.ndarray]]:
    """(sequence, frame number, gray image, landmarks) of a subject's frames (only the ``last`` n)."""
    identity = _ck_identity(seed, subject)
    for seq in subject.sequences:
        first = 0 if last is None else max(0, seq.frames - last)
        for k in range(first, seq.frames):
            rng = stream(seed, "ckplus", subject.name, seq.number, k)
            image, landmarks = render_face(identity, seq.expression, seq.peak * ramp(k, seq.frames), subject.size, rng)
            yield seq, k + 1, image, landmarks


def _write_ck_subject(root: Path, seed: int, subject: CkSubject) -> None:
    tint = _ck_identity(seed, subject).tint
    for seq, frame, image, landmarks in _ck_frames(seed, subject):
        folder = Path(subject.name, f"{seq.number:03d}")
        stem = f"{subject.name}_{seq.number:03d}_{frame:08d}"
        _write_image(root / "cohn-kanade-images" / folder / f"{stem}.png",
                     colorize(image, tint) if subject.colour else image)
        _write_text(root / "Landmarks" / folder / f"{stem}_landmarks.txt",
                    "".join(f"{x:16.7e}{y:16.7e}\n" for x, y in landmarks))
        if seq.labelled and frame == seq.frames:
            code = float(CANONICAL.index(seq.expression))
            _write_text(root / "Emotion" / folder / f"{stem}_emotion.txt", f"{code:16.7e}\n")


def _write_ck48_subject(root: Path, seed: int, subject: CkSubject) -> None:
    for seq, frame, image, landmarks in _ck_frames(seed, subject, last=3):
        stem = f"{subject.name}_{seq.number:03d}_{frame:08d}"
        crop, _ = _ck48_crop(image, landmarks, stream(seed, "ckplus48", stem))
        _write_image(root / seq.expression / f"{stem}.png", crop)


def _ck48_crop(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
    """The tight CK+48 crop (48x48, see :func:`_ck48_square`, placed with ``rng``'s jitter) and
    its eye centres."""
    square, eyes = _ck48_square(landmarks, rng), eye_centres(landmarks)
    return square_crop(image, square, 48), square_points(eyes, square, 48)


def _ck48_square(landmarks: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int]:
    """(x0, y0, side) in frame pixels of the CK+48 crop of a face, framed as a face detector's
    box: cheek to cheek with a little margin (:data:`CK48_WIDTH`), centred on the face, the eye
    line at :data:`CK48_EYE_HEIGHT`; the brows then sit about a quarter of the way down, the
    chin near the bottom. At this framing, jitter included, ``detect_face(crop, 0.15)`` finds
    74.3% of the paper twin's six-class faces (689 of 927; 78% on the real copy, REFERENCE.md; the
    misses are mostly open-mouthed surprise and crops the jitter made tighter; without the jitter
    1.2 widths gave 75.1%, with it 68.8%, 1.28 widths 78.1%). Tighter crops defeat the cascade, whose box has the eyes 0.4 of its side down:
    the old crop (landmark box + 5%, eyes 0.26 down) gave 3.6%, 1.1 widths with the eyes at 0.30
    about 20%. Each crop then moves and scales by :data:`CK48_JITTER`."""
    left, right = float(landmarks[:, 0].min()), float(landmarks[:, 0].max())
    shift_x, shift_y, scale = rng.normal(0.0, 1.0, 3) * (CK48_JITTER[0], CK48_JITTER[0], CK48_JITTER[1])
    side = (right - left) * CK48_WIDTH * float(np.exp(scale))
    eye_y = float(eye_centres(landmarks)[:, 1].mean())
    x0, y0 = (left + right - side) / 2 + shift_x * side, eye_y - CK48_EYE_HEIGHT * side + shift_y * side
    return int(round(x0)), int(round(y0)), max(int(round(side)), 1)


def _largest_first(plan: list[CkSubject]) -> list[CkSubject]:
    """Subjects ordered by frame count, largest first (keeps worker processes evenly busy)."""
    return sorted(plan, key=lambda s: -sum(q.frames for q in s.sequences))
