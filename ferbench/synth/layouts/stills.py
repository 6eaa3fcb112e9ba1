"""Still pictures of subjects, photographed as each still-image dataset was (:class:`Studio`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from ferbench.synth.face import colorize, crop_points, eye_centres, face_crop, render_face
from ferbench.synth.identity import Identity, sample_identity, stream
from ferbench.synth.layouts.common import _run, _write_image

@dataclass(frozen=True)
class Still:
    """One picture of a subject: file path relative to the root, expression and intensity."""

    path: str
    expression: str
    intensity: float


@dataclass(frozen=True)
class Studio:
    """How a still-image dataset was photographed.

    ``framing`` (face width fraction, centre x, centre y) replaces the population's framing;
    ``background`` its background grey; ``crop`` stores a square face crop of that side.
    """

    population: str
    size: tuple[int, int]
    colour: bool = False
    framing: tuple[float, float, float] | None = None
    background: float | None = None
    crop: int | None = None


STUDIOS: dict[str, Studio] = {
    "jaffe": Studio("jaffe", (256, 256)),
    "generic": Studio("ck", (256, 256), crop=112),
    "bu3dfe": Studio("ck", (192, 192), framing=(0.62, 0.5, 0.54), background=12.0),
    "nimstim": Studio("ck", (240, 192), framing=(0.55, 0.5, 0.5), background=225.0),
    "kdef": Studio("ck", (381, 281), colour=True, framing=(0.55, 0.5, 0.45)),
}


def _write_all_stills(root: Path, seed: int, dataset: str, studio: Studio, stills: dict[str, list[Still]],
                      workers: int) -> None:
    jobs = [partial(_write_subject_stills, root, seed, dataset, studio, s, items) for s, items in stills.items()]
    _run(jobs, workers)


def _write_subject_stills(root: Path, seed: int, dataset: str, studio: Studio, subject: str,
                          stills: list[Still]) -> None:
    identity = _studio_identity(seed, dataset, studio, subject)
    for still in stills:
        _write_image(root / still.path, _still_picture(seed, dataset, studio, identity, still)[0])


def _studio_identity(seed: int, dataset: str, studio: Studio, subject: str) -> Identity:
    identity = sample_identity(studio.population, stream(seed, dataset, subject), key=subject)
    if studio.framing is not None:
        frac, cx, cy = studio.framing
        identity = replace(identity, face_frac=frac, center=(cx, cy))
    if studio.background is not None:
        identity = replace(identity, background=studio.background)
    return identity


def _still_picture(seed: int, dataset: str, studio: Studio, identity: Identity, still: Still
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One still as the studio stores it (gray, or BGR when ``colour``) and its eye centres."""
    image, landmarks = render_face(identity, still.expression, still.intensity, studio.size,
                                   stream(seed, dataset, still.path))
    eyes = eye_centres(landmarks)
    if studio.crop is not None:
        eyes = crop_points(eyes, landmarks, studio.crop, 0.2)
        image = face_crop(image, landmarks, studio.crop, margin=0.2)
    return (colorize(image, identity.tint) if studio.colour else image), eyes
