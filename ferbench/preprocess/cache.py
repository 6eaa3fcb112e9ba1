"""The on-disk cache of preprocessed crops: keys, atomic writes, tolerant reads.

One ``.npz`` file per (samples, preprocessing settings) under ``<cache root>/preprocessed/``,
holding ``images`` (uint8), ``kept`` (int64 indices), ``report`` (a JSON string), ``methods``
(the method that framed each kept image, unicode) and, under ``face: align``, ``eyes`` (float64
N x 2 x 2).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ferbench import paths
from ferbench.data.base import Sample, file_stamps

PREPROCESS_VERSION = 5
"""Bump when a change to the preprocessing code changes its output: old cache entries then miss
(v2: face alignment and the eye-spread fields of the report; v3: the canonical-frame eye shift,
and the aligned images' eye check searching the template's eye sizes only; v4: the cheaper eye
search of issue #14's speed item, the eye check over at most 100 images (``eyes_checked``), the
side's eye prior for pre-cropped faces, the eyes each aligned image was warped with and the
report's fallback images; v5: the method of each kept image)."""

log = logging.getLogger(__name__)


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ferbench's cache folder (:func:`ferbench.paths.cache_dir`)."""
    return Path(cache_dir) if cache_dir is not None else paths.cache_dir()


def cache_key(samples: Sequence[Sample], settings: dict[str, Any]) -> str:
    """sha256 over the samples, in order, and the settings (JSON-serialisable).

    Each sample contributes its dataset, key and its file's size and mtime (ns), so an edited or
    replaced file misses the cache without reading any image. Files the loader reads besides
    ``sample.path`` (e.g. landmark files) are not covered: bump PREPROCESS_VERSION or clear the
    cache after changing them.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps({"version": PREPROCESS_VERSION, **settings}, sort_keys=True).encode())
    stamps = file_stamps(samples)
    for sample in samples:
        size, mtime = stamps[sample.path]
        digest.update(f"\n{sample.dataset}\t{sample.key}\t{size}\t{mtime}".encode())
    return digest.hexdigest()


def load_cached(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any], np.ndarray | None, list[str]] | None:
    """Return (images, kept, report, eyes or None, methods) stored at ``path``; None when absent,
    corrupt or inconsistent."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            images, kept, report = data["images"], data["kept"], json.loads(str(data["report"]))
            eyes = data["eyes"] if "eyes" in data.files else None
            methods = [str(m) for m in data["methods"]]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        log.warning("ignoring unreadable preprocessing cache %s (%s); recomputing", path, err)
        return None
    if (images.dtype != np.uint8 or not len(images) == len(kept) == len(methods)
            or (eyes is not None and len(eyes) != len(kept))):
        log.warning("ignoring inconsistent preprocessing cache %s; recomputing", path)
        return None
    return images, kept, report, eyes, methods


def save_cached(path: Path, images: np.ndarray, kept: np.ndarray, report: dict[str, Any],
                eyes: np.ndarray | None, methods: Sequence[str]) -> None:
    """Write the entry atomically: a temp file in the same folder, fsync, then rename over ``path``.

    A run killed mid-write leaves at most a ``*.tmp`` file, never a partial ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            extra = {} if eyes is None else {"eyes": eyes}
            np.savez(file, images=images, kept=kept, report=np.array(json.dumps(report)),
                     methods=np.array(list(methods), dtype=np.str_), **extra)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
