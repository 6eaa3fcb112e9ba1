"""FER2013: 35,887 48x48 grey faces from the ICML 2013 challenge, as the csv or as folders.

csv source: ``fer2013.csv`` (in the root or up to two folder levels below it; the root may
also be the csv file) with columns ``emotion,pixels,Usage``; codes 0 anger 1 disgust 2 fear
3 happy 4 sadness 5 surprise 6 neutral. path = the csv, index = 0-based data row; pixels are
2304 space-separated ints decoded by :meth:`Fer2013.read`.

folders source (``train/`` and/or ``test/`` in the root or up to two levels below it)::

    train/<class>/Training_<id>.jpg
    test/<class>/PublicTest_<id>.jpg, test/<class>/PrivateTest_<id>.jpg

classes ``angry disgust fear happy neutral sad surprise`` (the code is the folder name).
Usage comes from the file-name prefix; without one, ``train/`` gives ``Training`` and
``test/`` gives ``Test`` (such a copy does not tell public from private test images).

No subject identities: only the official split applies. attrs: ``usage``, ``cropped`` (True).
"""

from __future__ import annotations

import csv
import re
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np

from ferbench.data.base import DatasetLoader, LoaderOptions, Sample, read_image_file
from ferbench.data.loaders.common import (
    absolute_root,
    class_folder_images,
    find_dir,
    labels_of,
    lookup,
    sorted_samples,
)
from ferbench.data.registry import register_dataset
from ferbench.errors import DataError, DatasetNotFound

CSV_CODES = {
    "0": "anger", "1": "disgust", "2": "fear", "3": "happy", "4": "sadness", "5": "surprise", "6": "neutral",
}
FOLDER_CLASSES = {
    "angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happy",
    "neutral": "neutral", "sad": "sadness", "surprise": "surprise",
}
CSV_NAME = "fer2013.csv"
COLUMNS = ("emotion", "pixels", "Usage")
USAGES = {usage: usage for usage in ("Training", "PublicTest", "PrivateTest")}
SPLIT_FOLDERS = {"train": "Training", "test": "Test"}
USAGE_PREFIX = re.compile(r"(Training|PublicTest|PrivateTest)_")
SIDE = 48

EXPECTED_CSV = f"`{CSV_NAME}` with columns emotion,pixels,Usage"
EXPECTED_FOLDERS = "`train/<class>/Training_<id>.jpg` and `test/<class>/PublicTest_<id>.jpg` folders"
EXPECTED = {"csv": EXPECTED_CSV, "folders": EXPECTED_FOLDERS, "auto": f"{EXPECTED_CSV}, or {EXPECTED_FOLDERS}"}


class Fer2013Options(LoaderOptions):
    """``source``: read the csv, the folder copy, or whichever is found (csv first)."""

    source: Literal["auto", "csv", "folders"] = "auto"


@register_dataset("fer2013")
class Fer2013(DatasetLoader):
    """FER2013 from ``fer2013.csv`` or from the ``train/``/``test/`` folder copy."""

    labels = labels_of(CSV_CODES)
    sequential = False
    has_subjects = False
    options_model = Fer2013Options

    def __init__(self) -> None:
        self._pixels: dict[str, list[str]] = {}  # csv path -> pixel string of each data row
        self._lock = threading.Lock()

    def load(self, root: Path, options: Fer2013Options) -> list[Sample]:
        if Path(root).is_file() and options.source != "folders":
            return self._load_csv(Path(root).absolute())
        root = absolute_root(self.name, root, EXPECTED[options.source])
        if options.source != "folders":
            folder = find_dir(self.name, root, lambda d: (d / CSV_NAME).is_file(), f"folder holding `{CSV_NAME}`")
            if folder is not None:
                return self._load_csv(folder / CSV_NAME)
        if options.source != "csv":
            folder = find_dir(self.name, root, _holds_splits, "folder holding train/ or test/")
            samples = [] if folder is None else list(self._folder_samples(folder))
            if samples:
                return sorted_samples(samples)
        raise DatasetNotFound(self.name, root, EXPECTED[options.source])

    def read(self, sample: Sample) -> np.ndarray:
        """The 48 x 48 uint8 grey image of a csv row, or the image file of the folder copy."""
        if sample.index is None:
            return read_image_file(sample.path)
        rows = self._pixel_rows(Path(sample.path))
        if not 0 <= sample.index < len(rows):
            raise DataError(sample.path, f"no data row {sample.index} (the csv has {len(rows)})")
        return decode_pixels(rows[sample.index], sample.path, sample.index)

    def _pixel_rows(self, path: Path) -> list[str]:
        with self._lock:
            if str(path) not in self._pixels:
                self._pixels[str(path)] = [pixels for _, pixels, _ in read_csv(path)]
            return self._pixels[str(path)]

    def _load_csv(self, path: Path) -> list[Sample]:
        rows = read_csv(path)
        with self._lock:
            self._pixels[str(path)] = [pixels for _, pixels, _ in rows]
        samples = []
        for index, (code, _, usage) in enumerate(rows):
            where = f"{path}: row {index} (line {index + 2})"
            samples.append(Sample(
                dataset=self.name, path=str(path), subject=None,
                label=lookup(CSV_CODES, code, where, "FER2013 emotion code"), code=code, index=index,
                attrs={"usage": lookup(USAGES, usage, where, "FER2013 Usage"), "cropped": True},
            ))
        if not samples:
            raise DataError(path, "the csv holds no data rows")
        return sorted_samples(samples)

    def _folder_samples(self, folder: Path) -> Iterator[Sample]:
        label_of = partial(lookup, FOLDER_CLASSES, kind="FER2013 class folder")
        for split, default_usage in SPLIT_FOLDERS.items():
            if not (folder / split).is_dir():
                continue
            for path, name, label in class_folder_images(folder / split, label_of):
                prefix = USAGE_PREFIX.match(path.name)
                yield Sample(
                    dataset=self.name, path=str(path), subject=None, label=label, code=name,
                    attrs={"usage": prefix[1] if prefix else default_usage, "cropped": True},
                )


def _holds_splits(folder: Path) -> bool:
    return any((folder / split).is_dir() for split in SPLIT_FOLDERS)


def read_csv(path: Path) -> list[tuple[str, str, str]]:
    """``(emotion, pixels, Usage)`` of every data row of a FER2013 csv (header names may be padded)."""
    with path.open(newline="") as file:
        reader = csv.reader(file)
        header = [name.strip() for name in next(reader, [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DataError(path, f"missing column(s) {', '.join(missing)}; the header is {header}")
        columns = [header.index(c) for c in COLUMNS]
        rows = []
        for index, row in enumerate(reader):
            if len(row) != len(header):
                raise DataError(path, f"row {index} (line {index + 2}) has {len(row)} fields, expected {len(header)}")
            emotion, pixels, usage = (row[c].strip() for c in columns)
            rows.append((emotion, pixels, usage))
    return rows


def decode_pixels(pixels: str, path: Path | str, index: int) -> np.ndarray:
    """48 x 48 uint8 image from a row's space-separated ints; DataError naming the csv and row."""
    where = f"row {index} (line {index + 2})"
    try:
        values = np.array(pixels.split(), dtype=np.int64)
    except ValueError:
        raise DataError(path, f"{where}: pixels are not all integers") from None
    if values.size != SIDE * SIDE or values.min() < 0 or values.max() > 255:
        raise DataError(path, f"{where}: expected {SIDE * SIDE} integers 0-255, found {values.size} values")
    return values.astype(np.uint8).reshape(SIDE, SIDE)
