"""Where ferbench keeps files of its own between runs: the cache folder."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "FERBENCH_CACHE"


def cache_dir() -> Path:
    """ferbench's cache folder (synthetic twins, preprocessed crops, planner calibrations):
    ``$FERBENCH_CACHE``, or ``~/.cache/ferbench`` when it is unset or empty."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ferbench")
