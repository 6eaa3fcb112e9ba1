"""What every layout writer shares: the registry, the worker pool, file writing, intensity curves.

Every writer has the signature ``write_<layout>(out_dir, shape, seed, workers=1) -> root``
and is registered with :func:`layout` in :data:`WRITERS` under the layout name. Jobs run in
``workers`` spawned processes (:func:`_run`) that exit when their parent dies.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ferbench.errors import DataError

LayoutWriter = Callable[..., Path]
WRITERS: dict[str, LayoutWriter] = {}

# fast PNG: zlib level 1, SUB filter, RLE strategy (deterministic, ~3 ms for 640x490)
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB,
              cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def layout(name: str) -> Callable[[LayoutWriter], LayoutWriter]:
    """Decorator registering a writer under ``name``."""

    def register(writer: LayoutWriter) -> LayoutWriter:
        WRITERS[name] = writer
        return writer

    return register


def ramp(k: int, frames: int) -> float:
    """Intensity of frame ``k`` (0-based) of an onset-to-peak sequence: 0 first, 1 last, smooth."""
    return _smoothstep(k / max(frames - 1, 1))


def apex(k: int, frames: int) -> float:
    """Intensity of frame ``k`` (0-based) of an onset-apex-offset sequence: 0 first and last,
    1 over the middle quarter (the apex), smooth in between."""
    rise = 1 - abs(2 * k / max(frames - 1, 1) - 1)  # 0 at the ends, 1 at the middle frame
    return _smoothstep(min(1.0, rise / 0.75))


def _smoothstep(x: float) -> float:
    return x * x * (3 - 2 * x)


def _run(jobs: list[Callable[[], Any]], workers: int) -> list[Any]:
    """Results of ``jobs`` in order, computed in ``workers`` processes (in this one if 1).

    Workers are spawned, not forked: a fork of a process whose OpenCV (or torch) thread pool
    is running can deadlock. Workers exit a fraction of a second after this process dies, however it dies.
    """
    if workers <= 1 or len(jobs) <= 1 or multiprocessing.current_process().daemon:  # daemons cannot fork
        return [job() for job in jobs]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)) as pool:
        return list(pool.map(_call, jobs))


def _start_worker(parent: int) -> None:
    """Set up a worker: one OpenCV thread, and an exit as soon as process ``parent`` is gone
    (a parent killed with SIGKILL cannot stop its workers; they would go on writing files)."""
    cv2.setNumThreads(1)
    threading.Thread(target=_exit_with, args=(parent,), name="exit-with-parent", daemon=True).start()


def _exit_with(parent: int) -> None:
    """Poll every 0.1 s whether this process still has ``parent`` as its parent; exit when not."""
    while os.getppid() == parent:
        time.sleep(0.1)
    os._exit(1)


def _call(job: Callable[[], Any]) -> Any:
    return job()


def _write_image(path: Path, image: np.ndarray) -> None:
    """Encode by suffix (PNG with :data:`PNG_PARAMS`) and write, creating folders."""
    params = PNG_PARAMS if path.suffix == ".png" else []
    ok, data = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise DataError(path, f"OpenCV could not encode a {image.shape} image as {path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.tobytes())


def _write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """Write H x W x 3 BGR frames as a Motion-JPEG ``.avi`` (OpenCV's built-in encoder), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    try:
        if not writer.isOpened():
            raise DataError(path, "OpenCV cannot write a Motion-JPEG video here")
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
