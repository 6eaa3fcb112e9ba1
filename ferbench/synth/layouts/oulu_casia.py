"""Oulu-CASIA: ``OriginalImg/VL/Strong/`` colour sequences and their two cropped copies."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ferbench.synth.face import colorize, face_crop, render_face
from ferbench.synth.identity import sample_identity, stream
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


def _write_oulu_subject(root: Path, seed: int, subject: str) -> None:
    identity = sample_identity("ck", stream(seed, "oulu_casia", subject), key=subject)
    rng = stream(seed, "oulu_casia", subject, "frames")
    for expression, folder in OULU_FOLDERS.items():
        frames = int(rng.integers(6, 11))
        for k in range(frames):
            frame_rng = stream(seed, "oulu_casia", subject, folder, k)
            image, landmarks = render_face(identity, expression, ramp(k, frames), (240, 320), frame_rng)
            picture = colorize(image, identity.tint)
            name = Path(subject, folder, f"{k:03d}.jpeg")
            _write_image(root / "OriginalImg/VL/Strong" / name, picture)
            crop = face_crop(picture, landmarks, 128, margin=0.1)
            for top in OULU_CROPPED:
                _write_image(root / top / name, crop)
