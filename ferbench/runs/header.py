"""The header of a run directory: ``run.json`` and the files written with it (see :mod:`ferbench.runs`).

:func:`run_header` is what ``run.json`` records (:data:`~ferbench.runs.HEADER_KEYS`);
:func:`write_run_header` writes it with the resolved protocol and card, ``env.json``
(:func:`environment`, the card's training memory format and the deviations), ``folds.json``,
``preprocess.json`` and ``preprocess_images.csv``.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ferbench.cards import ModelCard
from ferbench.io import json_bytes
from ferbench.pipeline import ProtocolData
from ferbench.preprocess.sheet import protocol_faces_png
from ferbench.runs import RunDir
from ferbench.splits import Fold
from ferbench.training.trainer import memory_format_record


def run_header(data: ProtocolData, card: ModelCard, deviations: dict[str, Any], data_fp: str,
               teacher: ModelCard | None = None) -> dict[str, Any]:
    """The ``run.json`` of ``card`` under ``data``'s protocol (:data:`ferbench.runs.HEADER_KEYS`);
    ``data_fp`` is :func:`~ferbench.pipeline.data_fingerprint` of ``data``."""
    return {"protocol": data.protocol.id, "model": card.name, "fingerprint": data.protocol.fingerprint,
            "data_fingerprint": data_fp, "card_fingerprint": card.fingerprint, "deviations": dict(deviations),
            "teacher_card_fingerprint": teacher.fingerprint if teacher is not None else None}


def write_run_header(run: RunDir, data: ProtocolData, folds: list[Fold], card: ModelCard,
                     header: dict[str, Any]) -> None:
    """Write the header files of ``header`` (see :func:`run_header` and :meth:`RunDir.write_header`):
    the resolved protocol and card, ``env.json``, ``folds.json`` (subjects and root-relative
    sample keys per fold), ``faces.png`` (each side's contact sheet, see
    :mod:`ferbench.preprocess.sheet`), ``preprocess.json`` (each side's preprocessing report:
    methods, detection rate, eye spread, every image it skipped) and ``preprocess_images.csv``
    (:func:`preprocess_images_csv`: how each image was framed)."""
    samples, keys = data.samples, data.keys()
    folds_record = [
        {"fold": f.index,
         "train_subjects": sorted({str(samples[i].subject) for i in f.train}),
         "test_subjects": sorted({str(samples[i].subject) for i in f.test}),
         "train": len(f.train), "test": len(f.test),
         # root-relative sample keys: what the fold's model trained on (and selected its epoch on)
         "train_keys": sorted(keys[i] for i in np.concatenate([f.train, f.validation]).astype(int)),
         "test_keys": sorted(keys[i] for i in f.test)}
        for f in folds
    ]
    preprocess = [{"role": side.role, "dataset": side.dataset, "report": side.preprocess_report}
                  for side in data.all_sides()]
    run.write_header(header, {
        "protocol.resolved.yaml": yaml.safe_dump(data.protocol.resolved_dict(), sort_keys=False).encode(),
        "card.resolved.yaml": yaml.safe_dump(card.resolved_dict(), sort_keys=False).encode(),
        "env.json": json_bytes({**environment(), "memory_format": memory_format_record(card),
                                "deviations": header["deviations"]}),
        "folds.json": json_bytes(folds_record),
        "preprocess.json": json_bytes(preprocess),
        "preprocess_images.csv": preprocess_images_csv(data),
        "faces.png": protocol_faces_png(data),  # every side's faces as the network receives them
    })


IMAGE_COLUMNS = ("role", "dataset", "key", "label", "method",
                 "left_eye_x", "left_eye_y", "right_eye_x", "right_eye_y")


def preprocess_images_csv(data: ProtocolData) -> bytes:
    """One row per image each side kept (after :func:`~ferbench.pipeline.attach_images`), in
    sample order: its side's role and dataset, root-relative key, label, the method that framed
    it (``landmarks``, ``eyes``, ``face_box``, ``mean`` under ``face: align``; ``landmarks``,
    ``haar``, ``center_crop``, ``none`` otherwise) and, under ``face: align``, the eye centres it
    was warped with (source pixels, image-left eye first, 2 decimals; empty otherwise)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(IMAGE_COLUMNS)
    for side in data.all_sides():
        labels = [data.protocol.classes[int(k)] for k in side.y]
        for k, (key, method) in enumerate(zip(side.keys(), side.image_methods)):
            eyes = [] if side.eyes is None else [f"{v:.2f}" for v in side.eyes[k].ravel()]
            writer.writerow([side.role, side.dataset, key, labels[k], method, *(eyes or [""] * 4)])
    return text.getvalue().encode()


def environment() -> dict[str, Any]:
    """Versions, platform and git commit, for ``env.json``."""
    import numpy
    import sklearn
    import timm
    import torch

    import ferbench

    env: dict[str, Any] = {
        "ferbench": ferbench.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpu_threads": torch.get_num_threads(),
        "git_commit": _git_commit(),
    }
    return env


def _git_commit() -> str | None:
    repo = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
