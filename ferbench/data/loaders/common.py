"""Helpers shared by the loaders: finding the dataset folder, listing images, mapping codes.

Every loader answers the same questions: where under the user's root does the dataset sit,
which files are images (and which are clutter such as ``.DS_Store``), how does a dataset code
map to a canonical label, and how are samples ordered. The answers live here, once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from ferbench.data.base import Sample
from ferbench.errors import DataError, DatasetNotFound, UnknownName
from ferbench.labels import CANONICAL

T = TypeVar("T")

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm"})
TWO_LETTER_CODES = {
    "AN": "anger", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral", "SA": "sadness", "SU": "surprise",
}
"""Expression codes of JAFFE and BU-3DFE (KDEF and NimStim differ: AF fear, SP surprise, CA calm)."""
CLUTTER_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx"})
"""Names (lower case) of files and folders that operating systems and archivers leave behind."""


def is_clutter(path: Path) -> bool:
    """True for hidden entries (``.DS_Store``, ``._x.png``), OS leftovers and README files."""
    name = path.name.lower()
    return name.startswith(".") or name in CLUTTER_NAMES or name.startswith("readme")


def is_image(path: Path) -> bool:
    """True for a non-clutter file whose suffix is an image format (any letter case)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not is_clutter(path)


def list_files(folder: Path, recursive: bool = False) -> list[Path]:
    """Sorted non-clutter files of ``folder`` (and, if ``recursive``, of its non-clutter subfolders)."""
    if not recursive:
        return sorted(p for p in folder.iterdir() if p.is_file() and not is_clutter(p))
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not is_clutter(Path(d))]
        found.extend(Path(parent, f) for f in files if not is_clutter(Path(f)))
    return sorted(found)


def subfolders(folder: Path) -> list[Path]:
    """Sorted non-clutter subfolders of ``folder``."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not is_clutter(p))


def absolute_root(dataset: str, root: Path | str, expected: str) -> Path:
    """Return ``root`` as an absolute path; raise DatasetNotFound if it is not an existing folder."""
    path = Path(root).expanduser().absolute()
    if not path.is_dir():
        raise DatasetNotFound(dataset, path, expected)
    return path


def find_dir(
    dataset: str, root: Path, matches: Callable[[Path], bool], what: str, depth: int = 2
) -> Path | None:
    """Return the shallowest folder at most ``depth`` levels below ``root`` (root included) that
    ``matches``; None if there is none. Two matches at that level raise DatasetNotFound, since the
    loader cannot tell which copy is meant; ``what`` names the folder in that message."""
    level = [root]
    for _ in range(depth + 1):
        found = [d for d in level if matches(d)]
        if len(found) > 1:
            names = ", ".join(str(d.relative_to(root)) for d in found)
            raise DatasetNotFound(dataset, root, f"exactly one {what}, found {len(found)}: {names}")
        if found:
            return found[0]
        level = [child for d in level for child in subfolders(d)]
    return None


def match_stem(pattern: re.Pattern[str], path: Path, expected: str) -> re.Match[str]:
    """``pattern.fullmatch`` of ``path``'s stem, or DataError naming the file and the ``expected``
    pattern (``"the JAFFE pattern KA.AN1.39.tiff"``)."""
    match = pattern.fullmatch(path.stem)
    if match is None:
        raise DataError(path, f"file name does not follow {expected}")
    return match


def lookup(codes: Mapping[str, T], code: str, where: Path | str, kind: str = "code") -> T:
    """``codes[code]``, or DataError naming ``where`` with a did-you-mean suggestion."""
    if code not in codes:
        raise DataError(where, str(UnknownName(kind, code, codes)))
    return codes[code]


def labels_of(codes: Mapping[str, str | None]) -> tuple[str, ...]:
    """The canonical labels a code map can produce, in canonical order."""
    return tuple(label for label in CANONICAL if label in codes.values())


def class_folder_images(root: Path, label_of: Callable[[str, Path], str]) -> list[tuple[Path, str, str]]:
    """``(image, folder name, label)`` for every image under ``root/<class folder>/``.

    ``label_of(folder name, folder)`` maps a folder name to a canonical label and raises
    DataError for an unknown one. Non-image files are ignored; an image lying directly in
    ``root`` or a class folder without images raises DataError.
    """
    found = []
    for folder in subfolders(root):
        label = label_of(folder.name, folder)
        images = [p for p in list_files(folder, recursive=True) if is_image(p)]
        if not images:
            raise DataError(folder, "class folder holds no images")
        found.extend((image, folder.name, label) for image in images)
    strays = [p for p in list_files(root) if is_image(p)]
    if strays:
        raise DataError(strays[0], "image outside any class folder")
    return found


def sorted_samples(samples: Iterable[Sample]) -> list[Sample]:
    """Samples in the loaders' deterministic order: subject, sequence, frame, path, index."""
    return sorted(
        samples,
        key=lambda s: (
            s.subject or "",
            s.sequence or "",
            -1 if s.frame is None else s.frame,
            s.path,
            -1 if s.index is None else s.index,
        ),
    )
