"""In-the-wild-like face crops of fresh identities (FER2013 and RAF-DB)."""

from __future__ import annotations

from functools import partial

import numpy as np

from ferbench.synth.face import crop_points, eye_centres, face_crop, render_face
from ferbench.synth.identity import Lighting, sample_identity, stream
from ferbench.synth.layouts.common import _run

MARGINS = {"fer2013": (0.08, 0.28), "rafdb": (0.0, 0.2)}
"""Range of the crop margin per side (fraction of the landmark box) of each dataset's faces:
FER2013 crops are looser than CK+48's (REFERENCE.md, facts measured on real copies)."""

def _wild_faces(seed: int, dataset: str, items: list[tuple[str, str]], side: int, workers: int) -> list[np.ndarray]:
    """In-the-wild-like face crops (``side`` px) of fresh identities, one per (key, label)."""
    chunks = [items[k:k + 250] for k in range(0, len(items), 250)]
    return [face for chunk in _run([partial(_wild_chunk, seed, dataset, c, side) for c in chunks], workers)
            for face in chunk]


def _wild_chunk(seed: int, dataset: str, items: list[tuple[str, str]], side: int) -> list[np.ndarray]:
    return [_wild_face(seed, dataset, key, label, side)[0] for key, label in items]


def _wild_face(seed: int, dataset: str, key: str, label: str, side: int) -> tuple[np.ndarray, np.ndarray]:
    """An in-the-wild-like crop (``side`` px: loose, off-centre, mixed populations and light)
    and its eye centres."""
    rng = stream(seed, dataset, key)
    identity = sample_identity("jaffe" if rng.random() < 0.25 else "ck", rng, key=key)
    lighting = Lighting(direction=rng.uniform(-1, 1), strength=rng.uniform(0.0, 0.3),
                        contrast=rng.uniform(0.7, 1.2), brightness=rng.uniform(-25, 25),
                        noise=rng.uniform(1.0, 3.0))
    intensity = 0.0 if label == "neutral" else rng.uniform(0.5, 1.0)
    image, landmarks = render_face(identity, label, intensity, (128, 128), rng, lighting)
    shift = rng.normal(0.0, 0.04, 2) * np.ptp(landmarks[:, 0])
    margin = rng.uniform(*MARGINS[dataset])
    eyes = crop_points(eye_centres(landmarks), landmarks + shift, side, margin)
    return face_crop(image, landmarks + shift, side, margin), eyes
