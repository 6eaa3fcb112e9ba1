"""NimStim: 646 still images of 43 actors in one flat folder.

Layout: ``01F_HA_O.bmp`` = actor ``01F`` (id and sex; the subject), expression ``HA``, mouth
``O`` open / ``C`` closed / ``X`` exuberant. Tolerated variants: any image suffix in any case,
lower-case codes, an extra suffix after a separator (``01F_HA_O_2.bmp``, ``01f_ha_o (1).jpg``).
An image whose name does not parse raises DataError; non-image files are ignored.
Codes: AN anger, CA calm, DI disgust, FE fear, HA happy, NE neutral, SA sadness, SP surprise.
Calm has no canonical label: CA images get label None (code "CA") and are dropped downstream,
unless ``calm_as_neutral: true`` labels them neutral. attrs: ``mouth``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ferbench.data.base import DatasetLoader, LoaderOptions, Sample
from ferbench.data.loaders.common import (
    absolute_root,
    is_image,
    labels_of,
    list_files,
    lookup,
    match_stem,
    sorted_samples,
)
from ferbench.data.registry import register_dataset
from ferbench.errors import DatasetNotFound

CODES: dict[str, str | None] = {
    "AN": "anger", "CA": None, "DI": "disgust", "FE": "fear",
    "HA": "happy", "NE": "neutral", "SA": "sadness", "SP": "surprise",
}
NAME = re.compile(r"(?P<actor>\d{2}[FM])_(?P<code>[A-Z]{2})_(?P<mouth>[OCX])(?:[_\-\s(.].*)?", re.IGNORECASE)
EXPECTED = "a flat folder of NimStim images named like `01F_HA_O.bmp`"


class NimStimOptions(LoaderOptions):
    """``calm_as_neutral``: label CA (calm) images neutral instead of leaving them unlabelled."""

    calm_as_neutral: bool = False


@register_dataset("nimstim")
class NimStim(DatasetLoader):
    """NimStim: one sample per image."""

    labels = labels_of(CODES)
    sequential = False
    has_subjects = True
    options_model = NimStimOptions

    def load(self, root: Path, options: NimStimOptions) -> list[Sample]:
        root = absolute_root(self.name, root, EXPECTED)
        images = [p for p in list_files(root) if is_image(p)]
        if not images:
            raise DatasetNotFound(self.name, root, EXPECTED)
        return sorted_samples(self._sample(path, options.calm_as_neutral) for path in images)

    def _sample(self, path: Path, calm_as_neutral: bool) -> Sample:
        match = match_stem(NAME, path, "the NimStim pattern 01F_HA_O.bmp")
        code = match["code"].upper()
        label = lookup(CODES, code, path, "NimStim expression code")
        if code == "CA" and calm_as_neutral:
            label = "neutral"
        return Sample(
            dataset=self.name, path=str(path), subject=match["actor"].upper(), label=label, code=code,
            attrs={"mouth": match["mouth"].upper()},
        )
