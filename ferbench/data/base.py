"""What every dataset loader yields and the interface it implements.

A loader reads one dataset in its *original distributed layout* and returns every image it
finds as a :class:`Sample`. It knows nothing about protocols: frame selection, class sets
and folds are applied downstream (``ferbench.frames``, ``ferbench.splits``).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict

from ferbench.errors import DataError


@dataclass(frozen=True)
class Sample:
    """One image of a dataset.

    Attributes:
        dataset: registry name of the loader that produced it (``"ckplus"``).
        path: absolute path of the file holding the image (for FER2013's csv, the csv itself;
            for a video, the video file).
        subject: subject (person) identifier as the dataset writes it (``"S005"``, ``"KA"``);
            ``None`` for datasets without identities (FER2013, RAF-DB).
        label: canonical label (``ferbench.labels.CANONICAL``) of the image, or of the
            sequence it belongs to; ``None`` for a frame of an unlabelled sequence.
        code: the dataset's own label code as written in its files (``"3"``, ``"AN"``).
        sequence: sequence identifier, unique within the subject; ``None`` for still images.
        frame: frame number inside the sequence as the dataset numbers it; frames of a
            sequence sort by it (first = onset/neutral, last = peak for CK+ and Oulu-CASIA).
        index: position inside a container file (FER2013 csv row, video frame); else ``None``.
        attrs: anything else the loader knows (``usage``, ``intensity``, ``camera``, ...).
    """

    dataset: str
    path: str
    subject: str | None
    label: str | None
    code: str | None
    sequence: str | None = None
    frame: int | None = None
    index: int | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """A unique, human-readable id of the image: its path plus the container index if any."""
        return self.path if self.index is None else f"{self.path}#{self.index}"

    def relative_key(self, root: Path | str) -> str:
        """:attr:`key` with the path relative to the dataset ``root`` (POSIX separators), so
        results of copies at different places compare equal; the absolute key when the file
        lies outside ``root``."""
        try:
            path = Path(self.path).resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            path = self.path
        return path if self.index is None else f"{path}#{self.index}"


class LoaderOptions(BaseModel):
    """Base of every loader's options model: unknown options are errors, values are frozen.
    Used as is by loaders that take no options."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetLoader(ABC):
    """Reads one dataset layout. Subclasses register with ``@register_dataset(name)``.

    Class attributes describe the dataset to the protocol layer:
        name: registry name (set by the decorator).
        labels: the canonical labels this dataset can produce.
        sequential: ``True`` when images come as onset-to-peak (or onset-apex-offset) sequences.
        peak_frame: where a sequence's peak (apex) lies: ``"last"`` (onset-to-peak: CK+,
            Oulu-CASIA) or ``"middle"`` (onset-apex-offset: MMI, which refuses ``peak``/``last_n``).
        has_subjects: ``True`` when samples carry subject identities (subject splits possible).
        options_model: pydantic model of the loader's options (``extra="forbid"``).
    """

    name: ClassVar[str] = ""
    labels: ClassVar[tuple[str, ...]] = ()
    sequential: ClassVar[bool] = False
    peak_frame: ClassVar[Literal["last", "middle"]] = "last"
    has_subjects: ClassVar[bool] = True
    options_model: ClassVar[type[BaseModel]] = LoaderOptions

    @abstractmethod
    def load(self, root: Path, options: BaseModel) -> list[Sample]:
        """Return every image under ``root``; raise ``DatasetNotFound`` naming the path tried."""

    def read(self, sample: Sample) -> np.ndarray:
        """Return the image as uint8, H x W (gray) or H x W x 3 (BGR); ``DataError`` if unreadable."""
        return read_image_file(sample.path)

    def landmarks(self, sample: Sample) -> np.ndarray | None:
        """Return 68 x 2 float (x, y) landmarks in pixels when the dataset ships them, else None."""
        return None


def file_stamps(samples: Iterable[Sample]) -> dict[str, tuple[int, int]]:
    """``path -> (size in bytes, modification time in ns)`` of each distinct ``Sample.path`` (a
    container file, a csv or a video, is stat'ed once); ``(-1, -1)`` for a file that cannot be
    stat'ed (missing: the loader reports it when reading)."""
    stamps: dict[str, tuple[int, int]] = {}
    for sample in samples:
        if sample.path not in stamps:
            try:
                info = os.stat(sample.path)
                stamps[sample.path] = (info.st_size, info.st_mtime_ns)
            except OSError:
                stamps[sample.path] = (-1, -1)
    return stamps


def read_image_file(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 (gray stays 2-D, colour is BGR); raise DataError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image file is missing")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise DataError(path, "corrupt or unreadable image (OpenCV could not decode it)")
    if image.dtype != np.uint8:  # 16-bit PNG/TIFF: scale to 8 bits
        image = (image / max(float(image.max()), 1.0) * 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return image
