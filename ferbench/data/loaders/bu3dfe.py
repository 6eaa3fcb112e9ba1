"""BU-3DFE, 2D frontal textures: 100 subjects x (6 expressions x 4 intensities + neutral).

Layout: ``F0001/F0001_AN04WH_F2D.bmp`` (files directly under the root are accepted too; the
whole tree below the root is searched) = subject ``F0001``, expression ``AN``, intensity 04,
ethnicity ``WH``. Neutral is ``NE00``, the others have intensity 01-04. Only ``_F2D``
textures are read; ``_F3D`` textures, ``.wrl`` meshes and other files are ignored.
Codes: AN anger, DI disgust, FE fear, HA happy, NE neutral, SA sadness, SU surprise.
attrs: ``intensity`` (int, 0 for neutral), ``ethnicity``.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from ferbench.data.base import DatasetLoader, Sample
from ferbench.data.loaders.common import (
    TWO_LETTER_CODES,
    absolute_root,
    is_image,
    labels_of,
    list_files,
    lookup,
    match_stem,
    sorted_samples,
)
from ferbench.data.registry import register_dataset
from ferbench.errors import DataError, DatasetNotFound

CODES = TWO_LETTER_CODES
NAME = re.compile(
    r"(?P<subject>[FM]\d{4})_(?P<code>[A-Z]{2})(?P<intensity>\d{2})(?P<ethnicity>[A-Z]{2})_F2D", re.IGNORECASE
)
TEXTURE_TAIL = "_F2D"
EXPECTED = "subject folders of 2D textures such as `F0001/F0001_AN04WH_F2D.bmp`"


@register_dataset("bu3dfe")
class Bu3dfe(DatasetLoader):
    """BU-3DFE: one sample per ``_F2D`` texture."""

    labels = labels_of(CODES)
    sequential = False
    has_subjects = True

    def load(self, root: Path, options: BaseModel) -> list[Sample]:
        root = absolute_root(self.name, root, EXPECTED)
        textures = [
            p for p in list_files(root, recursive=True) if is_image(p) and p.stem.upper().endswith(TEXTURE_TAIL)
        ]
        if not textures:
            raise DatasetNotFound(self.name, root, EXPECTED)
        return sorted_samples(self._sample(path) for path in textures)

    def _sample(self, path: Path) -> Sample:
        match = match_stem(NAME, path, "the BU-3DFE pattern F0001_AN04WH_F2D")
        code, intensity = match["code"].upper(), int(match["intensity"])
        label = lookup(CODES, code, path, "BU-3DFE expression code")
        if (intensity == 0) != (label == "neutral") or intensity > 4:
            raise DataError(path, f"intensity {intensity:02d} is impossible for {code} (NE is 00, others 01-04)")
        return Sample(
            dataset=self.name, path=str(path), subject=match["subject"].upper(), label=label, code=code,
            attrs={"intensity": intensity, "ethnicity": match["ethnicity"].upper()},
        )
