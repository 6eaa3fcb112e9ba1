"""RAF-DB basic emotions: 15,339 in-the-wild faces with an official train/test split.

Layout (root = the folder holding ``basic/``, up to two levels above it, or ``basic/``)::

    basic/EmoLabel/list_patition_label.txt      lines `train_00001.jpg 5` (sic: "patition")
    basic/Image/aligned/train_00001_aligned.jpg  aligned: true (100x100 aligned faces)
    basic/Image/original/train_00001.jpg         aligned: false

Only images listed in the label file are samples; a listed image that is missing raises
DataError. Codes: 1 surprise 2 fear 3 disgust 4 happy 5 sadness 6 anger 7 neutral.
No subject identities. attrs: ``usage`` (``train``/``test``, the name prefix), ``cropped``.
"""

from __future__ import annotations

from pathlib import Path

from ferbench.data.base import DatasetLoader, LoaderOptions, Sample
from ferbench.data.loaders.common import absolute_root, find_dir, labels_of, lookup, sorted_samples
from ferbench.data.registry import register_dataset
from ferbench.errors import DataError, DatasetNotFound

CODES = {"1": "surprise", "2": "fear", "3": "disgust", "4": "happy", "5": "sadness", "6": "anger", "7": "neutral"}
USAGES = {"train": "train", "test": "test"}
LABEL_FILE = Path("EmoLabel", "list_patition_label.txt")
EXPECTED = f"`basic/{LABEL_FILE.as_posix()}` and `basic/Image/aligned/` (or `basic/Image/original/`)"


class RafdbOptions(LoaderOptions):
    """``aligned``: read the aligned 100x100 faces (true) or the original images (false)."""

    aligned: bool = True


@register_dataset("rafdb")
class Rafdb(DatasetLoader):
    """RAF-DB basic: one sample per image listed in the label file."""

    labels = labels_of(CODES)
    sequential = False
    has_subjects = False
    options_model = RafdbOptions

    def load(self, root: Path, options: RafdbOptions) -> list[Sample]:
        root = absolute_root(self.name, root, EXPECTED)
        basic = find_dir(self.name, root, lambda d: (d / LABEL_FILE).is_file(), "`basic/` folder")
        if basic is None:
            raise DatasetNotFound(self.name, root, EXPECTED)
        image_dir = basic / "Image" / ("aligned" if options.aligned else "original")
        if not image_dir.is_dir():
            raise DatasetNotFound(self.name, image_dir, EXPECTED)
        samples = []
        label_file = basic / LABEL_FILE
        for line_number, line in enumerate(label_file.read_text().splitlines(), start=1):
            if line.strip():
                where = f"{label_file}:{line_number}"
                samples.append(self._sample(line, where, image_dir, options.aligned))
        if not samples:
            raise DataError(label_file, "the label file lists no images")
        return sorted_samples(samples)

    def _sample(self, line: str, where: str, image_dir: Path, aligned: bool) -> Sample:
        fields = line.split()
        if len(fields) != 2:
            raise DataError(where, f"expected `<image name> <code>`, found {line.strip()!r}")
        name, code = fields
        path = image_dir / (f"{Path(name).stem}_aligned{Path(name).suffix}" if aligned else name)
        if not path.is_file():
            raise DataError(path, f"image listed in {where} is missing")
        return Sample(
            dataset=self.name, path=str(path), subject=None,
            label=lookup(CODES, code, where, "RAF-DB emotion code"), code=code,
            attrs={"usage": lookup(USAGES, name.split("_")[0], where, "RAF-DB split prefix"), "cropped": aligned},
        )
