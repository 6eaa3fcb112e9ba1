"""The run directory: where a (protocol, model) run keeps its results, and how it resumes.

Layout (``OUT/<protocol-id>/<card-name>/``)::

    run.json  protocol.resolved.yaml  card.resolved.yaml  env.json  folds.json  preprocess.json
    preprocess_images.csv  faces.png
    seed<s>/fold<k>/  metrics.json  predictions.csv  confusion.csv  model.pt  DONE
    summary.json  speed.json  confusion.png

Every file is written atomically.

*Jobs.* ``DONE`` is written last, as JSON: the job fingerprint, the inputs it hashes
(:func:`job_inputs`: protocol, data and card fingerprints, seed, fold, deviations such as
``--epochs``, and for a distilling card the teacher job's fingerprint) and the sha256 of every
file of the job. A job counts as finished only when its ``DONE`` carries the current
fingerprint and every file it lists is there with that hash (:meth:`RunDir.check_job`), so a
killed job, a changed input, or a missing, truncated or edited file is redone.

*Header.* ``run.json`` (:data:`HEADER_KEYS`: protocol id, model, the protocol, data and card
fingerprints, deviations, the teacher card's fingerprint) describes the results the directory
holds; ``summary.json`` carries the same keys. The header files are (re)written only together
with results of the same header (:meth:`RunDir.write_header`): when a run writes its first
job and again when it writes its summary. Writing a header first removes a ``summary.json``
(and a ``speed.json``) made under another header, so a failed or killed rerun with a changed
protocol leaves the old header with the old summary, and never the new header with old numbers.

This package is the one home of the run directory: this module holds its layout (:class:`RunDir`)
and the integrity of its jobs and header; what goes into the files lives in its submodules:
:mod:`ferbench.runs.header` (``run.json`` and the header files), :mod:`ferbench.runs.job_files`
(a job's predictions, confusion and model files, and loading a job's model back) and
:mod:`ferbench.runs.summary` (``summary.json``, ``speed.json`` and the confusion PNG).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferbench.io import atomic_write_bytes, atomic_write_json


# What a number's training record is (``summary.json`` ``train_status``, every leaderboard row).
TRAIN_CROSS_VALIDATED = "cross-validated"  # each fold's model scored on its own held-out test fold
TRAIN_HELD_OUT_TARGET = "held-out target"  # scored on a target dataset it never trained on
TRAIN_EXTERNAL = "external (training data unknown)"  # a checkpoint without a training record

# What ``run.json`` records and ``summary.json`` repeats: the results belong to this header.
HEADER_KEYS = ("protocol", "model", "fingerprint", "data_fingerprint", "card_fingerprint", "deviations",
               "teacher_card_fingerprint")
# Header files whose sha256 ``run.json`` records (written before it, see RunDir.write_header).
HEADER_FILES = ("protocol.resolved.yaml", "card.resolved.yaml", "folds.json", "preprocess.json",
                "preprocess_images.csv")


def job_inputs(protocol_fp: str, data_fp: str, card_fp: str, seed: int, fold: int, deviations: Mapping[str, Any],
               teacher_fp: str | None = None) -> dict[str, Any]:
    """Everything that can change one job's result: the protocol fingerprint (without its
    ``metrics`` block), the data fingerprint (:func:`ferbench.pipeline.data_fingerprint`), the
    card fingerprint, seed, fold, deviations and, for a distilling card, the fingerprint of the
    teacher job of the same (seed, fold) (which covers the teacher card)."""
    return {"protocol": protocol_fp, "data": data_fp, "card": card_fp, "seed": seed, "fold": fold,
            "deviations": dict(sorted(deviations.items())), "teacher": teacher_fp}


def job_fingerprint(inputs: Mapping[str, Any]) -> str:
    """16 hex digits of sha256 over a job's :func:`job_inputs`."""
    payload = json.dumps(dict(inputs), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def header_mismatch(record: Mapping[str, Any], header: Mapping[str, Any]) -> list[str]:
    """The :data:`HEADER_KEYS` on which ``record`` (a summary) and ``header`` (``run.json``) differ."""
    return [key for key in HEADER_KEYS if record.get(key) != header.get(key)]


@dataclass(frozen=True)
class RunDir:
    """Results of one model under one protocol, rooted at ``root``."""

    root: Path

    @classmethod
    def for_run(cls, out: Path, protocol_id: str, card_name: str) -> RunDir:
        return cls(Path(out) / protocol_id / card_name)

    def job_dir(self, seed: int, fold: int) -> Path:
        return self.root / f"seed{seed}" / f"fold{fold}"

    def check_job(self, seed: int, fold: int, fingerprint: str, inputs: Mapping[str, Any] | None = None) -> str | None:
        """None when the job finished with exactly this fingerprint and its files are intact;
        else why it is not finished (``inputs``, when given, name what changed)."""
        job_dir = self.job_dir(seed, fold)
        marker = job_dir / "DONE"
        if not marker.is_file():
            return "no DONE (it never finished)"
        try:
            done = json.loads(marker.read_text(encoding="utf-8"))
            recorded, files = done["fingerprint"], dict(done["files"])
        except (OSError, ValueError, KeyError, TypeError):
            return "DONE is unreadable or from an older ferbench"
        if recorded != fingerprint:
            old = done.get("inputs") if isinstance(done.get("inputs"), dict) else {}
            changed = [key for key, value in (inputs or {}).items() if key in old and old[key] != value]
            return f"fingerprint changed: {', '.join(changed) or 'inputs'}"
        if "metrics.json" not in files:
            return "DONE lists no metrics.json"
        for name, digest in files.items():
            path = job_dir / name
            if not path.is_file():
                return f"{name} missing"
            if sha256_file(path) != digest:
                return f"{name} does not match DONE"
        return None

    def is_done(self, seed: int, fold: int, fingerprint: str) -> bool:
        """True when the job finished with exactly this fingerprint and its files are intact."""
        return self.check_job(seed, fold, fingerprint) is None

    def write_job(self, seed: int, fold: int, files: Mapping[str, bytes], fingerprint: str,
                  inputs: Mapping[str, Any] | None = None) -> None:
        """Write a computed job's files (name -> content) into its directory, then its ``DONE``
        (fingerprint, ``inputs`` and each file's sha256). A stale ``DONE`` is removed first."""
        job_dir = self.job_dir(seed, fold)
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "DONE").unlink(missing_ok=True)
        for name, content in files.items():
            atomic_write_bytes(job_dir / name, content)
        atomic_write_json(job_dir / "DONE", {
            "fingerprint": fingerprint, "inputs": dict(inputs or {}),
            "files": {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}})

    def write_header(self, header: Mapping[str, Any], files: Mapping[str, bytes]) -> None:
        """Make ``header`` (``run.json``, see :data:`HEADER_KEYS`) and its header ``files``
        (name -> content) the run's header. A ``summary.json`` of another header is removed
        first, and a ``speed.json`` of another card; ``run.json`` is written last, with the
        sha256 of each of ``files`` named in :data:`HEADER_FILES`."""
        summary = self.read_json_or_none("summary.json")
        if summary is not None and header_mismatch(summary, header):
            (self.root / "summary.json").unlink()
        speed = self.read_json_or_none("speed.json")
        if speed is not None and speed.get("card_fingerprint") != header.get("card_fingerprint"):
            (self.root / "speed.json").unlink()
        for name, content in files.items():
            atomic_write_bytes(self.root / name, content)
        hashes = {name: hashlib.sha256(content).hexdigest() for name, content in files.items() if name in HEADER_FILES}
        self.write_json("run.json", {**header, "files": hashes})

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.root / name
        atomic_write_json(path, obj)
        return path

    def read_json(self, *parts: str) -> Any:
        return json.loads(self.root.joinpath(*parts).read_text())

    def read_json_or_none(self, name: str) -> dict[str, Any] | None:
        """The JSON object in ``name``; None when it is missing, unreadable or not an object."""
        try:
            obj = self.read_json(name)
        except (OSError, ValueError):
            return None
        return obj if isinstance(obj, dict) else None
