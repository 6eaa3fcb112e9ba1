"""Any labelled image collection: class folders, or a csv manifest.

Class folders: ``<root>/<label>/**/<image>``; folder names are canonical labels or clear
synonyms (angry, disgusted, fearful, happiness, sad, surprised), in any letter case.
Manifest (option ``manifest``, a csv path relative to the root): columns ``path,label`` and
optionally ``subject``, ``sequence``, ``frame``; ``path`` is relative to the root. The file is
UTF-8 (with or without a byte-order mark) or UTF-16 with a byte-order mark (as Excel writes it).

Options: ``label_map`` maps folder/manifest labels to canonical ones (checked first);
``subject_regex`` (a regex with a named group ``subject``, searched in the file name) gives
subjects where the manifest has no ``subject`` column; otherwise subject is None;
``cropped: true`` says the pictures are already face crops (attrs ``cropped``): preprocessing
then looks for the eyes in the whole picture when the face cascade finds no face in it (``face:
align``), and ``face: auto`` keeps the whole picture, as for the crop datasets (CK+48, FER2013).
The code is the label as written (folder name or manifest label). An unknown label raises
DataError naming the folder or manifest line.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from pydantic import field_validator

from ferbench.data.base import DatasetLoader, LoaderOptions, Sample
from ferbench.data.loaders.common import absolute_root, class_folder_images, sorted_samples
from ferbench.data.registry import register_dataset
from ferbench.errors import DataError, DatasetNotFound, UnknownName
from ferbench.labels import CANONICAL, check_label

SYNONYMS = {
    "angry": "anger", "disgusted": "disgust", "fearful": "fear",
    "happiness": "happy", "sad": "sadness", "surprised": "surprise",
}
EXPECTED = "class folders `<root>/<label>/<image>` (e.g. `happy/img001.png`) or the csv named by `manifest`"


class GenericOptions(LoaderOptions):
    """``manifest``: csv relative to the root (else class folders); ``subject_regex``: regex
    with a named group ``subject`` applied to file names; ``label_map``: label -> canonical;
    ``cropped``: the pictures are face crops, not photographs with a face somewhere in them."""

    manifest: str | None = None
    subject_regex: str | None = None
    label_map: dict[str, str] | None = None
    cropped: bool = False

    @field_validator("subject_regex")
    @classmethod
    def _has_subject_group(cls, pattern: str | None) -> str | None:
        if pattern is not None and "subject" not in re.compile(pattern).groupindex:
            raise ValueError(f"subject_regex `{pattern}` needs a named group `(?P<subject>...)`")
        return pattern

    @field_validator("label_map")
    @classmethod
    def _canonical_targets(cls, label_map: dict[str, str] | None) -> dict[str, str] | None:
        for target in (label_map or {}).values():
            check_label(target)
        return label_map


@register_dataset("generic")
class Generic(DatasetLoader):
    """A user's own collection in class folders or listed in a manifest."""

    labels = CANONICAL
    sequential = False
    has_subjects = True
    options_model = GenericOptions

    def load(self, root: Path, options: GenericOptions) -> list[Sample]:
        root = absolute_root(self.name, root, EXPECTED)
        names = {**{label: label for label in CANONICAL}, **SYNONYMS, **(options.label_map or {})}

        def label_of(name: str, where: Path | str) -> str:
            for key in (name, name.lower()):
                if key in names:
                    return names[key]
            raise DataError(where, str(UnknownName("class", name, names)))

        subject_of = _subject_reader(options.subject_regex)
        if options.manifest is not None:
            samples = list(self._manifest_samples(root, root / options.manifest, label_of, subject_of))
        else:
            samples = [
                self._sample(path, name, label, subject_of(path))
                for path, name, label in class_folder_images(root, label_of)
            ]
        if not samples:
            raise DatasetNotFound(self.name, root, EXPECTED)
        if options.cropped:
            samples = [replace(sample, attrs={"cropped": True}) for sample in samples]
        return sorted_samples(samples)

    def _manifest_samples(
        self,
        root: Path,
        manifest: Path,
        label_of: Callable[[str, str], str],
        subject_of: Callable[[Path], str | None],
    ) -> Iterator[Sample]:
        if not manifest.is_file():
            raise DatasetNotFound(
                self.name, manifest, "a csv manifest with columns path,label[,subject,sequence,frame]"
            )
        with io.StringIO(read_manifest_text(manifest), newline="") as file:
            reader = csv.DictReader(file)
            missing = {"path", "label"} - set(reader.fieldnames or [])
            if missing:
                raise DataError(manifest, f"missing column(s) {', '.join(sorted(missing))}")
            for line, row in enumerate(reader, start=2):
                where = f"{manifest}:{line}"
                if not row["path"] or not row["label"]:
                    raise DataError(where, "empty `path` or `label`")
                path = root / row["path"]
                if not path.is_file():
                    raise DataError(where, f"image `{row['path']}` does not exist under {root}")
                frame = row.get("frame") or None
                if frame is not None and not frame.strip().isdigit():
                    raise DataError(where, f"frame {frame!r} is not a non-negative integer")
                yield self._sample(
                    path, row["label"], label_of(row["label"], where),
                    (row["subject"] or None) if "subject" in row else subject_of(path),
                    sequence=row.get("sequence") or None, frame=None if frame is None else int(frame),
                )

    def _sample(
        self, path: Path, code: str, label: str, subject: str | None,
        sequence: str | None = None, frame: int | None = None,
    ) -> Sample:
        return Sample(
            dataset=self.name, path=str(path.absolute()), subject=subject, label=label, code=code,
            sequence=sequence, frame=frame,
        )


def read_manifest_text(manifest: Path) -> str:
    """The text of a csv manifest: UTF-16 when it starts with a UTF-16 byte-order mark, else UTF-8
    (a UTF-8 byte-order mark is dropped); DataError naming the file when it is neither."""
    data = manifest.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, name = "utf-16", "UTF-16"
    elif b"\x00" in data:  # NUL is valid UTF-8 but never text: UTF-16 (or binary) without a byte-order mark
        raise DataError(manifest, "not a UTF-8 text file (UTF-16 without a byte-order mark?); "
                                  "save the manifest as UTF-8 csv")
    else:
        encoding, name = "utf-8-sig", "UTF-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        raise DataError(manifest, f"not a {name} text file: undecodable byte at offset {err.start}; "
                                  "save the manifest as UTF-8 csv") from None


def _subject_reader(pattern: str | None) -> Callable[[Path], str | None]:
    """A function giving the ``subject`` group of ``pattern`` in a file name (None without pattern)."""
    if pattern is None:
        return lambda path: None
    regex = re.compile(pattern)

    def subject(path: Path) -> str:
        match = regex.search(path.name)
        if match is None or match["subject"] is None:
            raise DataError(path, f"file name does not match subject_regex `{pattern}`")
        return match["subject"]

    return subject
