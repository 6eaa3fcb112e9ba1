"""Atomic writes of result files: a reader sees the old file or the new one, never half of one.

Each writer puts the data in a temporary file in the target's directory, flushes and fsyncs it,
then renames it over the target with :func:`os.replace` (atomic on POSIX and Windows). If
anything fails, the temporary file is removed and the old target is left untouched.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, creating the parent directory; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as file:  # "x": never reuse a file; permissions follow umask
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as err:
        temporary.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno is not None and err.filename in (None, str(temporary)):
            err.filename = str(path)  # write() and fsync() name no file: name the target (disk full)
        raise
    return path


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path | str, obj: Any) -> Path:
    """Write ``obj`` as JSON (see :func:`json_bytes`) atomically; return the path."""
    return atomic_write_bytes(path, json_bytes(obj))


def json_bytes(obj: Any) -> bytes:
    """``obj`` as UTF-8 JSON text (indent 2, keys in insertion order, final newline).

    NumPy scalars and arrays become numbers and lists, paths become strings, and non-finite
    floats (NaN, +-inf), which JSON cannot hold, become ``null``.
    """
    return (json.dumps(_jsonable(obj), indent=2, sort_keys=False, allow_nan=False) + "\n").encode("utf-8")


def _jsonable(obj: Any) -> Any:
    """A copy of ``obj`` built from JSON types only (see :func:`atomic_write_json`)."""
    if isinstance(obj, dict):
        return {key: _jsonable(value) for key, value in obj.items()}
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (list, tuple)):
        return [_jsonable(value) for value in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj
