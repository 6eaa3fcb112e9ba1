"""CK+ (Extended Cohn-Kanade), in its full distribution or as the CK+48 crops.

Full layout; each folder may sit up to two levels below the root, so both the folder holding
them and a parent where each archive was unpacked into its own folder (e.g.
``extended-cohn-kanade-images/cohn-kanade-images/``) work::

    cohn-kanade-images/S005/001/S005_001_00000001.png    every frame of the 593 sequences
    Emotion/S005/001/S005_001_00000011_emotion.txt       "   3.0000000e+00": labelled sequences only
    Landmarks/S005/001/S005_001_00000001_landmarks.txt   optional: 68 lines "x y" (pixels)

Every frame is a sample (subject ``S005``, sequence ``001``, frame 1). All frames of a
labelled sequence carry its label; frames of unlabelled sequences have label and code None.
Emotion codes: 0 neutral 1 anger 2 contempt 3 disgust 4 fear 5 happy 6 sadness 7 surprise.
attrs: ``layout`` ("full"), ``labelled_frame`` (the frame the Emotion file names, or None:
``frames.py`` refuses ``peak`` / ``last_n`` when it is not the sequence's last frame),
``landmarks_file`` (path or None).

CK+48 layout: class folders ``anger contempt disgust fear happy sadness surprise`` of 48x48
crops named ``S010_004_00000017.png`` (the last 3 frames of each labelled sequence); code =
folder name; attrs ``layout`` ("ck48") and ``cropped`` (True). ``frames.py`` reads ``layout``
to refuse frame rules that need frames CK+48 lacks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np

from ferbench.data.base import DatasetLoader, LoaderOptions, Sample
from ferbench.data.loaders.common import (
    absolute_root,
    class_folder_images,
    find_dir,
    is_image,
    labels_of,
    list_files,
    lookup,
    match_stem,
    sorted_samples,
    subfolders,
)
from ferbench.data.registry import register_dataset
from ferbench.errors import DataError, DatasetNotFound

EMOTION_CODES = {
    "0": "neutral", "1": "anger", "2": "contempt", "3": "disgust",
    "4": "fear", "5": "happy", "6": "sadness", "7": "surprise",
}
CK48_CLASSES = {name: name for name in ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")}
LANDMARK_POINTS = 68

EXPECTED_FULL = (
    "the full CK+ layout: `cohn-kanade-images/S005/001/S005_001_00000001.png` and "
    "`Emotion/S005/001/S005_001_00000011_emotion.txt` (at most 2 folder levels below the root)"
)
EXPECTED_CK48 = (
    "CK+48 class folders `anger contempt disgust fear happy sadness surprise` holding "
    "`S010_004_00000017.png` crops"
)
EXPECTED = {"full": EXPECTED_FULL, "ck48": EXPECTED_CK48, "auto": f"either {EXPECTED_FULL}, or {EXPECTED_CK48}"}


class CkplusOptions(LoaderOptions):
    """``layout``: which distribution the root holds; ``auto`` tries full, then CK+48."""

    layout: Literal["auto", "full", "ck48"] = "auto"


@register_dataset("ckplus")
class CkPlus(DatasetLoader):
    """CK+: every frame of every sequence (full layout) or the CK+48 crops."""

    labels = labels_of(EMOTION_CODES)
    sequential = True
    has_subjects = True
    options_model = CkplusOptions

    def load(self, root: Path, options: CkplusOptions) -> list[Sample]:
        root = absolute_root(self.name, root, EXPECTED[options.layout])
        images_dir = None if options.layout == "ck48" else self._find_named(root, "cohn-kanade-images")
        if images_dir is not None:
            return sorted_samples(self._load_full(root, images_dir))
        classes_dir = None
        if options.layout != "full":
            classes_dir = find_dir(self.name, root, _holds_ck48_classes, "folder of CK+48 class folders")
        if classes_dir is None:
            raise DatasetNotFound(self.name, root, EXPECTED[options.layout])
        return sorted_samples(self._load_ck48(classes_dir))

    def landmarks(self, sample: Sample) -> np.ndarray | None:
        """68 x 2 float (x, y) pixels from the sample's Landmarks file; None if it has none."""
        file = sample.attrs.get("landmarks_file")
        return None if file is None else read_landmarks(Path(file))

    def _find_named(self, root: Path, name: str) -> Path | None:
        return find_dir(self.name, root, lambda d: d.name == name, f"`{name}/` folder")

    def _load_full(self, root: Path, images_dir: Path) -> Iterator[Sample]:
        emotion_dir = self._find_named(root, "Emotion")
        if emotion_dir is None:
            raise DatasetNotFound(self.name, root, f"an `Emotion/` folder next to {images_dir}")
        landmarks_dir = self._find_named(root, "Landmarks")
        frames: dict[tuple[str, str], dict[int, Path]] = {}
        for path in list_files(images_dir, recursive=True):
            if is_image(path):
                subject, sequence, frame = parse_name(path)
                frames.setdefault((subject, sequence), {})[frame] = path
        if not frames:
            raise DatasetNotFound(self.name, images_dir, EXPECTED_FULL)
        emotions = read_emotions(emotion_dir, frames)
        landmark_files = {} if landmarks_dir is None else index_landmarks(landmarks_dir)
        for (subject, sequence), paths in frames.items():
            code, labelled_frame = emotions.get((subject, sequence), (None, None))
            for frame, path in paths.items():
                yield Sample(
                    dataset=self.name, path=str(path), subject=subject,
                    label=None if code is None else EMOTION_CODES[code], code=code,
                    sequence=sequence, frame=frame,
                    attrs={
                        "layout": "full",
                        "labelled_frame": labelled_frame,
                        "landmarks_file": landmark_files.get((subject, sequence, frame)),
                    },
                )

    def _load_ck48(self, classes_dir: Path) -> Iterator[Sample]:
        label_of = partial(lookup, CK48_CLASSES, kind="CK+48 class folder")
        for path, folder, label in class_folder_images(classes_dir, label_of):
            subject, sequence, frame = parse_name(path)
            yield Sample(
                dataset=self.name, path=str(path), subject=subject, label=label, code=folder,
                sequence=sequence, frame=frame, attrs={"layout": "ck48", "cropped": True},
            )


def _holds_ck48_classes(folder: Path) -> bool:
    return any(child.name in CK48_CLASSES for child in subfolders(folder))


def parse_name(path: Path, tail: str = "") -> tuple[str, str, int]:
    """``(subject, sequence, frame)`` of a file whose stem is ``S005_001_00000011<tail>``."""
    pattern = re.compile(r"(S\d+)_(\d+)_(\d+)" + re.escape(tail), re.IGNORECASE)
    match = match_stem(pattern, path, f"the CK+ pattern S005_001_00000011{tail}{path.suffix}")
    return match[1].upper(), match[2], int(match[3])


def read_emotions(
    emotion_dir: Path, frames: dict[tuple[str, str], dict[int, Path]]
) -> dict[tuple[str, str], tuple[str, int]]:
    """``(subject, sequence) -> (emotion code, labelled frame)`` from every ``*_emotion.txt``.

    Raises DataError for an unknown code, a second label file for one sequence, or a label
    file naming a frame that is not among the sequence's images.
    """
    emotions: dict[tuple[str, str], tuple[str, int]] = {}
    for path in list_files(emotion_dir, recursive=True):
        subject, sequence, frame = parse_name(path, "_emotion")
        if (subject, sequence) in emotions:
            raise DataError(path, f"a second Emotion file for sequence {subject}/{sequence}")
        if frame not in frames.get((subject, sequence), {}):
            raise DataError(path, f"names frame {frame}, but sequence {subject}/{sequence} has no such image")
        emotions[(subject, sequence)] = (read_emotion_code(path), frame)
    return emotions


def read_emotion_code(path: Path) -> str:
    """The code of a CK+ Emotion file holding one float (``   3.0000000e+00`` -> ``"3"``)."""
    try:
        text = path.read_bytes().decode("ascii").strip()
    except UnicodeDecodeError:
        raise DataError(path, "not a text label file (expected one number, the emotion code)") from None
    try:
        value = float(text)
    except ValueError:
        raise DataError(path, f"expected one number (the emotion code), found {text[:40]!r}") from None
    code = str(int(value)) if value.is_integer() else text
    lookup(EMOTION_CODES, code, path, "CK+ emotion code")
    return code


def index_landmarks(landmarks_dir: Path) -> dict[tuple[str, str, int], str]:
    """``(subject, sequence, frame) -> path`` of every ``*_landmarks.txt``."""
    return {parse_name(p, "_landmarks"): str(p) for p in list_files(landmarks_dir, recursive=True)}


def read_landmarks(path: Path) -> np.ndarray:
    """68 x 2 float64 (x, y) pixels from a CK+ landmarks file; DataError if malformed."""
    try:
        values = [float(v) for v in path.read_text().split()]
    except (OSError, ValueError) as error:
        raise DataError(path, f"unreadable landmarks file ({error})") from None
    if len(values) != 2 * LANDMARK_POINTS:
        raise DataError(path, f"expected {LANDMARK_POINTS} lines of `x y`, found {len(values)} numbers")
    return np.asarray(values, dtype=np.float64).reshape(LANDMARK_POINTS, 2)
