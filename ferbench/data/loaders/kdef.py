"""KDEF (Karolinska Directed Emotional Faces): 70 subjects, 2 sessions, 7 expressions, 5 views.

Layout: ``KDEF/AF01/AF01ANS.JPG`` (root = the folder holding ``KDEF/``, up to two levels
above it, or the folder of id folders itself). Name = session ``A``/``B``, sex ``F``/``M``,
id 01-35, expression, view ``FL HL S HR FR`` (full left, half left, straight, half right,
full right). Subject = sex + id (``F01``), so both sessions of a person share a subject.
Codes: AF fear, AN anger, DI disgust, HA happy, NE neutral, SA sadness, SU surprise.
Option ``views`` keeps the listed views (default: straight only). attrs: ``session``, ``view``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from ferbench.data.base import DatasetLoader, LoaderOptions, Sample
from ferbench.data.loaders.common import (
    absolute_root,
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
from ferbench.errors import DatasetNotFound

CODES = {
    "AF": "fear", "AN": "anger", "DI": "disgust", "HA": "happy", "NE": "neutral", "SA": "sadness", "SU": "surprise",
}
VIEWS = {view: view for view in ("FL", "HL", "S", "HR", "FR")}
NAME = re.compile(
    r"(?P<session>[AB])(?P<sex>[FM])(?P<id>\d{2})(?P<code>[A-Z]{2})(?P<view>[A-Z]{1,2})", re.IGNORECASE
)
EXPECTED = "`KDEF/AF01/AF01ANS.JPG` (id folders of images named session, sex, id, expression, view)"

View = Literal["FL", "HL", "S", "HR", "FR"]


class KdefOptions(LoaderOptions):
    """``views``: which camera angles to keep (FL HL S HR FR); default straight only."""

    views: tuple[View, ...] = ("S",)


@register_dataset("kdef")
class Kdef(DatasetLoader):
    """KDEF: one sample per image of the selected views."""

    labels = labels_of(CODES)
    sequential = False
    has_subjects = True
    options_model = KdefOptions

    def load(self, root: Path, options: KdefOptions) -> list[Sample]:
        root = absolute_root(self.name, root, EXPECTED)
        folder = find_dir(self.name, root, lambda d: d.name.upper() == "KDEF", "`KDEF/` folder") or root
        samples = [s for s in self._samples(folder) if s.attrs["view"] in options.views]
        if not samples:
            raise DatasetNotFound(self.name, root, EXPECTED)
        return sorted_samples(samples)

    def _samples(self, folder: Path) -> Iterator[Sample]:
        for id_folder in subfolders(folder):
            for path in list_files(id_folder):
                if is_image(path):
                    yield self._sample(path)

    def _sample(self, path: Path) -> Sample:
        match = match_stem(NAME, path, "the KDEF pattern AF01ANS.JPG")
        code = match["code"].upper()
        return Sample(
            dataset=self.name, path=str(path), subject=f"{match['sex']}{match['id']}".upper(),
            label=lookup(CODES, code, path, "KDEF expression code"), code=code,
            attrs={
                "session": match["session"].upper(),
                "view": lookup(VIEWS, match["view"].upper(), path, "KDEF view"),
            },
        )
