"""CK+ (``cohn-kanade-images/``, ``Emotion/``, ``Landmarks/``) and CK+48 (48x48 class folders)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from ferbench.labels import CANONICAL
from ferbench.synth.face import colorize, crop_points, eye_centres, face_crop, render_face
from ferbench.synth.identity import Identity, sample_identity, stream
from ferbench.synth.layouts.common import _run, _write_image, _write_text, layout, ramp
from ferbench.synth.plans import CkSequence, CkSubject, plan_ckplus

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
        _write_image(root / seq.expression / f"{stem}.png", _ck48_crop(image, landmarks)[0])


def _ck48_crop(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tight CK+48 crop (eyebrows to chin, 5% margin, 48x48) and its eye centres."""
    return face_crop(image, landmarks, 48, margin=0.05), crop_points(eye_centres(landmarks), landmarks, 48, 0.05)


def _largest_first(plan: list[CkSubject]) -> list[CkSubject]:
    """Subjects ordered by frame count, largest first (keeps worker processes evenly busy)."""
    return sorted(plan, key=lambda s: -sum(q.frames for q in s.sequences))
