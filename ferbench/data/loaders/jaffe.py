"""JAFFE: 213 still images of 10 Japanese women in one flat folder.

Layout: ``KA.AN1.39.tiff`` = subject ``KA``, expression ``AN``, repetition 1, image id 39
(``.tif`` and upper-case suffixes accepted). Root: the folder itself, or a parent holding a
single ``jaffe/`` or ``jaffedbase/`` folder. Files that are not TIFFs (``README``, ...) are
ignored; a TIFF whose name does not parse raises DataError.
Codes: AN anger, DI disgust, FE fear, HA happy, NE neutral, SA sadness, SU surprise.
attrs: ``repetition`` (int), ``image_id`` (int).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from ferbench.data.base import DatasetLoader, Sample
from ferbench.data.loaders.common import (
    TWO_LETTER_CODES,
    absolute_root,
    find_dir,
    labels_of,
    list_files,
    lookup,
    match_stem,
    sorted_samples,
)
from ferbench.data.registry import register_dataset
from ferbench.errors import DatasetNotFound

CODES = TWO_LETTER_CODES
NAME = re.compile(r"(?P<subject>[A-Z]{2})\.(?P<code>[A-Z]{2})(?P<repetition>\d+)\.(?P<image_id>\d+)", re.IGNORECASE)
FOLDER_NAMES = ("jaffe", "jaffedbase")
EXPECTED = "a flat folder of `KA.AN1.39.tiff` images (or a parent holding one `jaffe/` or `jaffedbase/` folder)"


def _tiffs(folder: Path) -> list[Path]:
    return [p for p in list_files(folder) if p.suffix.lower() in (".tif", ".tiff")]


@register_dataset("jaffe")
class Jaffe(DatasetLoader):
    """JAFFE: one sample per TIFF."""

    labels = labels_of(CODES)
    sequential = False
    has_subjects = True

    def load(self, root: Path, options: BaseModel) -> list[Sample]:
        root = absolute_root(self.name, root, EXPECTED)
        folder = find_dir(
            self.name, root, lambda d: d.name.lower() in FOLDER_NAMES or bool(_tiffs(d)), "JAFFE folder"
        )
        images = [] if folder is None else _tiffs(folder)
        if not images:
            raise DatasetNotFound(self.name, root, EXPECTED)
        return sorted_samples(self._sample(path) for path in images)

    def _sample(self, path: Path) -> Sample:
        match = match_stem(NAME, path, "the JAFFE pattern KA.AN1.39.tiff")
        code = match["code"].upper()
        return Sample(
            dataset=self.name, path=str(path), subject=match["subject"].upper(),
            label=lookup(CODES, code, path, "JAFFE expression code"), code=code,
            attrs={"repetition": int(match["repetition"]), "image_id": int(match["image_id"])},
        )
