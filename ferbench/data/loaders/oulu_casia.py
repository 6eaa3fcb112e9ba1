"""Oulu-CASIA NIR&VIS: 80 subjects x 6 expressions, one onset-to-peak sequence each.

Layout (the top folder may sit up to two levels below the root)::

    OriginalImg/<camera>/<illumination>/P001/Anger/000.jpeg                  cropped: false
    PreProcess_Img/<camera>_Acropped/<illumination>/P001/Anger/000.jpeg      cropped: true
    Oulu_CASIA_<camera>_Cropped/<illumination>/P001/Anger/000.jpeg           cropped: true

camera VL (visible) or NI (near infrared); illumination Strong, Weak or Dark. A sample per
frame: subject ``P001``, sequence and code = the expression folder (``Anger``), frame = the
file stem as int. Expressions: Anger Disgust Fear Happiness Sadness Surprise.
attrs: ``camera``, ``illumination``, ``cropped``.

Cropped copies: ``PreProcess_Img/VL_Acropped/Strong/...`` (also ``NI_Acropped``) is the
folder public preparation scripts read the dataset's own face crops from (MicroExpNet (000)
uses "the already cropped versions"); the illumination level under ``NI_Acropped``, the
frame names and the crop size there are assumed to follow ``OriginalImg`` ([check]).
``Oulu_CASIA_<camera>_Cropped/`` is another cropped copy seen in the wild. Option
``cropped_copy`` picks one: ``preprocess_img``, ``oulu_casia_cropped``, or ``auto`` (default):
``PreProcess_Img`` when its ``<camera>_Acropped/<illumination>`` folder exists, else
``Oulu_CASIA_<camera>_Cropped``.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Literal

from pydantic import model_validator

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
CROPPED_COPIES = ("preprocess_img", "oulu_casia_cropped")  # the order ``auto`` tries them in


class OuluCasiaOptions(LoaderOptions):
    """Which recording to read: camera, illumination, and original or cropped frames (which cropped copy)."""

    camera: Literal["VL", "NI"] = "VL"
    illumination: Literal["Strong", "Weak", "Dark"] = "Strong"
    cropped: bool = False
    cropped_copy: Literal["auto", "preprocess_img", "oulu_casia_cropped"] = "auto"

    @model_validator(mode="after")
    def _copy_needs_cropped(self) -> OuluCasiaOptions:
        if self.cropped_copy != "auto" and not self.cropped:
            raise ValueError(f"cropped_copy: {self.cropped_copy} needs cropped: true")
        return self


@register_dataset("oulu_casia")
class OuluCasia(DatasetLoader):
    """Oulu-CASIA: every frame of the chosen camera and illumination."""

    labels = labels_of(EXPRESSIONS)
    sequential = True
    has_subjects = True
    options_model = OuluCasiaOptions

    def load(self, root: Path, options: OuluCasiaOptions) -> list[Sample]:
        if not options.cropped:
            copies = ["original"]
        else:
            copies = list(CROPPED_COPIES) if options.cropped_copy == "auto" else [options.cropped_copy]
        places = [_place(copy, options) for copy in copies]
        expected = " or ".join(f"`{top}/{inner.as_posix()}/P001/Anger/000.jpeg`" for top, inner in places)
        expected += " (at most 2 folder levels below the root)"
        root = absolute_root(self.name, root, expected)
        folders = []
        for top, inner in places:
            base = find_dir(self.name, root, lambda d, top=top: d.name == top, f"`{top}/` folder")
            folders.append((root / top if base is None else base) / inner)
        folder = next((f for f in folders if f.is_dir()), folders[-1])
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


def _place(copy: str, options: OuluCasiaOptions) -> tuple[str, Path]:
    """(top folder name, path inside it) of a copy of the chosen camera and illumination."""
    camera, illumination = options.camera, options.illumination
    if copy == "original":
        return "OriginalImg", Path(camera, illumination)
    if copy == "preprocess_img":
        return "PreProcess_Img", Path(f"{camera}_Acropped", illumination)
    return f"Oulu_CASIA_{camera}_Cropped", Path(illumination)
