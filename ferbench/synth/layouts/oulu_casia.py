"""Oulu-CASIA: ``OriginalImg/VL/Strong/`` colour sequences and their two cropped copies."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from ferbench.synth.face import colorize, face_crop, render_face
from ferbench.synth.identity import Identity, sample_identity, stream
from ferbench.synth.layouts.common import _run, _write_image, layout, ramp
from ferbench.synth.plans import check_shape

OULU_FOLDERS = {"anger": "Anger", "disgust": "Disgust", "fear": "Fear", "happy": "Happiness",
                "sadness": "Sadness", "surprise": "Surprise"}


@layout("oulu_casia")
def write_oulu_casia(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """``OriginalImg/VL/Strong/P001/Anger/000.jpeg`` (320x240 colour) and the same 128x128 face
    crops under both cropped copies, ``PreProcess_Img/VL_Acropped/Strong/`` and
    ``Oulu_CASIA_VL_Cropped/Strong/``: 80 subjects (small: 10) x 6 sequences of 6-10 frames."""
    subjects = [f"P{i:03d}" for i in range(1, (80 if check_shape(shape) == "paper" else 10) + 1)]
    _run([partial(_write_oulu_subject, out_dir, seed, s) for s in subjects], workers)
    return out_dir


OULU_CROPPED = ("PreProcess_Img/VL_Acropped/Strong", "Oulu_CASIA_VL_Cropped/Strong")
OULU_CROP_SIDE, OULU_CROP_MARGIN = 128, 0.1  # the cropped copies: the landmark box + 10% a side, 128 px


def _write_oulu_subject(root: Path, seed: int, subject: str) -> None:
    identity = sample_identity("ck", stream(seed, "oulu_casia", subject), key=subject)
    rng = stream(seed, "oulu_casia", subject, "frames")
    for expression, folder in OULU_FOLDERS.items():
        frames = int(rng.integers(6, 11))
        for k in range(frames):
            frame_rng = stream(seed, "oulu_casia", subject, folder, k)
            picture, landmarks = oulu_frame(identity, expression, ramp(k, frames), frame_rng)
            name = Path(subject, folder, f"{k:03d}.jpeg")
            _write_image(root / "OriginalImg/VL/Strong" / name, picture)
            crop = face_crop(picture, landmarks, OULU_CROP_SIDE, margin=OULU_CROP_MARGIN)
            for top in OULU_CROPPED:
                _write_image(root / top / name, crop)


def oulu_frame(identity: Identity, expression: str, intensity: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One 320x240 colour frame of an original Oulu-CASIA sequence and its 68 landmarks (68 x 2 px)."""
    image, landmarks = render_face(identity, expression, intensity, (240, 320), rng)
    return colorize(image, identity.tint), landmarks
