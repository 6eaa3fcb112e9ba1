"""Oulu-CASIA NIR&VIS: 80 subjects x 6 expressions, one onset-to-peak sequence each.

Layout (the top folder may sit up to two levels below the root)::

    OriginalImg/<camera>/<illumination>/P001/Anger/000.jpeg                 cropped: false
    Oulu_CASIA_<camera>_Cropped/<illumination>/P001/Anger/000.jpeg          cropped: true

camera VL (visible) or NI (near infrared); illumination Strong, Weak or Dark. A sample per
frame: subject ``P001``, sequence and code = the expression folder (``Anger``), frame = the
file stem as int. Expressions: Anger Disgust Fear Happiness Sadness Surprise.
attrs: ``camera``, ``illumination``, ``cropped``.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Literal

from ferbench.data.base import DatasetLoader, LoaderOptions, Sample
from ferbench.data.loaders.common import (
    absolute_root,
    class_folder_images,
    find_dir,
    labels_of,
    lookup,
    sorted_samples,
    subfolders,
)
from ferbench.data.registry import register_dataset
from ferbench.errors import DataError, DatasetNotFound

EXPRESSIONS = {
    "Anger": "anger", "Disgust": "disgust", "Fear": "fear",
    "Happiness": "happy", "Sadness": "sadness", "Surprise": "surprise",
}


class OuluCasiaOptions(LoaderOptions):
    """Which recording to read: camera, illumination, and original or cropped frames."""

    camera: Literal["VL", "NI"] = "VL"
    illumination: Literal["Strong", "Weak", "Dark"] = "Strong"
    cropped: bool = False


@register_dataset("oulu_casia")
class OuluCasia(DatasetLoader):
    """Oulu-CASIA: every frame of the chosen camera and illumination."""

    labels = labels_of(EXPRESSIONS)
    sequential = True
    has_subjects = True
    options_model = OuluCasiaOptions

    def load(self, root: Path, options: OuluCasiaOptions) -> list[Sample]:
        if options.cropped:
            top, inner = f"Oulu_CASIA_{options.camera}_Cropped", Path(options.illumination)
        else:
            top, inner = "OriginalImg", Path(options.camera, options.illumination)
        expected = f"`{top}/{inner.as_posix()}/P001/Anger/000.jpeg` (at most 2 folder levels below the root)"
        root = absolute_root(self.name, root, expected)
        base = find_dir(self.name, root, lambda d: d.name == top, f"`{top}/` folder")
        folder = (root / top if base is None else base) / inner
        samples = list(self._samples(folder, options)) if folder.is_dir() else []
        if not samples:
            raise DatasetNotFound(self.name, folder, expected)
        return sorted_samples(samples)

    def _samples(self, folder: Path, options: OuluCasiaOptions) -> Iterator[Sample]:
        attrs = {"camera": options.camera, "illumination": options.illumination, "cropped": options.cropped}
        label_of = partial(lookup, EXPRESSIONS, kind="Oulu-CASIA expression folder")
        for subject_dir in subfolders(folder):
            for path, expression, label in class_folder_images(subject_dir, label_of):
                if not path.stem.isdigit():
                    raise DataError(path, "file name is not a frame number such as 000.jpeg")
                yield Sample(
                    dataset=self.name, path=str(path), subject=subject_dir.name, label=label, code=expression,
                    sequence=expression, frame=int(path.stem), attrs=dict(attrs),
                )
