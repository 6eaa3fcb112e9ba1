"""RAF-DB: ``basic/Image/aligned/`` face crops and ``basic/EmoLabel/list_patition_label.txt``."""

from __future__ import annotations

from pathlib import Path

from ferbench.synth.face import colorize
from ferbench.synth.identity import stream
from ferbench.synth.layouts.common import _write_image, _write_text, layout
from ferbench.synth.layouts.wild import _wild_faces
from ferbench.synth.plans import check_shape, draw_labels

RAF_CODES = {"surprise": 1, "fear": 2, "disgust": 3, "happy": 4, "sadness": 5, "anger": 6, "neutral": 7}
RAF_PROPORTIONS = {"surprise": 1619, "fear": 355, "disgust": 877, "happy": 5957, "sadness": 2460,
                   "anger": 867, "neutral": 3204}  # the real 15,339 images
RAF_SPLITS = {"paper": {"train": 1227, "test": 307}, "small": {"train": 200, "test": 50}}  # paper: 1/10


@layout("rafdb")
def write_rafdb(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """``basic/Image/aligned/train_00001_aligned.jpg`` (100x100 colour face crops) and
    ``basic/EmoLabel/list_patition_label.txt``; returns the folder holding ``basic/``."""
    rows = []
    for usage, n in RAF_SPLITS[check_shape(shape)].items():
        labels = draw_labels(stream(seed, "rafdb", usage), n, RAF_PROPORTIONS)
        rows += [(f"{usage}_{k:05d}", label) for k, label in enumerate(labels, start=1)]
    for (name, _), face in zip(rows, _wild_faces(seed, "rafdb", rows, 100, workers)):
        _write_image(out_dir / "basic/Image/aligned" / f"{name}_aligned.jpg", colorize(face, (0.9, 1.0, 1.1)))
    _write_text(out_dir / "basic/EmoLabel/list_patition_label.txt",
                "".join(f"{name}.jpg {RAF_CODES[label]}\n" for name, label in rows))
    return out_dir
