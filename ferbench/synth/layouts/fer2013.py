"""FER2013: the ``fer2013.csv`` of pixel rows, and the class-folder copy of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferbench.synth.identity import stream
from ferbench.synth.layouts.common import _write_image, _write_text, layout
from ferbench.synth.layouts.wild import _wild_faces
from ferbench.synth.plans import check_shape, draw_labels

FER_CODES = ("anger", "disgust", "fear", "happy", "sadness", "surprise", "neutral")  # csv code = index
FER_FOLDERS = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
               "sadness": "sad", "surprise": "surprise", "neutral": "neutral"}
FER_PROPORTIONS = {"anger": 4953, "disgust": 547, "fear": 5121, "happy": 8989,
                   "sadness": 6077, "surprise": 4002, "neutral": 6198}  # the real 35,887 rows
FER_SPLITS = {"paper": {"Training": 2871, "PublicTest": 359, "PrivateTest": 359},  # 1/10 of the real set
              "small": {"Training": 300, "PublicTest": 60, "PrivateTest": 60}}


@layout("fer2013")
def write_fer2013(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """``fer2013/fer2013.csv`` (emotion,pixels,Usage); returns the folder holding the csv."""
    root = out_dir / "fer2013"
    lines = ["emotion,pixels,Usage\n"]
    for usage, label, _, face in _fer_faces(shape, seed, workers):
        lines.append(f"{FER_CODES.index(label)},{' '.join(map(str, face.ravel().tolist()))},{usage}\n")
    _write_text(root / "fer2013.csv", "".join(lines))
    return root


@layout("fer2013_folders")
def write_fer2013_folders(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """``train/<class>/Training_<id>.jpg`` and ``test/<class>/{PublicTest,PrivateTest}_<id>.jpg``."""
    for usage, label, image_id, face in _fer_faces(shape, seed, workers):
        split = "train" if usage == "Training" else "test"
        _write_image(out_dir / split / FER_FOLDERS[label] / f"{usage}_{image_id}.jpg", face)
    return out_dir


def _fer_faces(shape: str, seed: int, workers: int) -> list[tuple[str, str, int, np.ndarray]]:
    """(usage, label, image id, 48x48 face) of every row, Training first."""
    rows = []
    for usage, n in FER_SPLITS[check_shape(shape)].items():
        rng = stream(seed, "fer2013", usage)
        ids = 10_000_000 + np.cumsum(rng.integers(1, 5000, n))
        rows += [(usage, label, int(i)) for label, i in zip(draw_labels(rng, n, FER_PROPORTIONS), ids)]
    faces = _wild_faces(seed, "fer2013", [(f"{u}{i}", label) for u, label, i in rows], 48, workers)
    return [(*row, face) for row, face in zip(rows, faces)]
