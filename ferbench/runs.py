"""The run directory: where a (protocol, model) run keeps its results, and how it resumes.

Layout (``OUT/<protocol-id>/<card-name>/``)::

    protocol.resolved.yaml  card.resolved.yaml  env.json  folds.json
    seed<s>/fold<k>/  metrics.json  predictions.csv  confusion.csv  model.pt  DONE
    summary.json  speed.json  confusion.png  confusion_counts.csv

Every file is written atomically. ``DONE`` is written last and holds the job fingerprint
(protocol fingerprint + card fingerprint + seed + fold + deviations such as ``--epochs``);
a job counts as finished only when its ``DONE`` carries the current fingerprint, so a killed
job is redone and a changed protocol or recipe never reuses stale results.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferbench.io import atomic_write_bytes, atomic_write_json, atomic_write_text


# What a number's training record is (``summary.json`` ``train_status``, every leaderboard row).
TRAIN_CROSS_VALIDATED = "cross-validated"  # each fold's model scored on its own held-out test fold
TRAIN_HELD_OUT_TARGET = "held-out target"  # scored on a target dataset it never trained on
TRAIN_EXTERNAL = "external (training data unknown)"  # a checkpoint without a training record
TRAIN_STATUSES = (TRAIN_CROSS_VALIDATED, TRAIN_HELD_OUT_TARGET, TRAIN_EXTERNAL)


def job_fingerprint(protocol_fp: str, card_fp: str, seed: int, fold: int, deviations: Mapping[str, Any]) -> str:
    """Hex digest identifying one training job's inputs."""
    payload = json.dumps([protocol_fp, card_fp, seed, fold, dict(sorted(deviations.items()))], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunDir:
    """Results of one model under one protocol, rooted at ``root``."""

    root: Path

    @classmethod
    def for_run(cls, out: Path, protocol_id: str, card_name: str) -> RunDir:
        return cls(Path(out) / protocol_id / card_name)

    def job_dir(self, seed: int, fold: int) -> Path:
        return self.root / f"seed{seed}" / f"fold{fold}"

    def is_done(self, seed: int, fold: int, fingerprint: str) -> bool:
        """True when the job finished with exactly this fingerprint."""
        marker = self.job_dir(seed, fold) / "DONE"
        return marker.is_file() and marker.read_text().strip() == fingerprint

    def start_job(self, seed: int, fold: int) -> Path:
        """Prepare a job directory for (re)computation: drop a stale DONE first, then return it."""
        path = self.job_dir(seed, fold)
        path.mkdir(parents=True, exist_ok=True)
        (path / "DONE").unlink(missing_ok=True)
        return path

    def write_job(self, seed: int, fold: int, files: Mapping[str, bytes], fingerprint: str) -> None:
        """Write a computed job's files (name -> content) into its directory, then its ``DONE``."""
        job_dir = self.start_job(seed, fold)
        for name, content in files.items():
            atomic_write_bytes(job_dir / name, content)
        self.finish_job(seed, fold, fingerprint)

    def finish_job(self, seed: int, fold: int, fingerprint: str) -> None:
        """Mark a job finished; call only after all its files are written."""
        atomic_write_text(self.job_dir(seed, fold) / "DONE", fingerprint + "\n")

    def done_jobs(self, jobs: Iterable[tuple[int, int, str]]) -> list[tuple[int, int]]:
        """The (seed, fold) pairs among ``jobs`` = (seed, fold, fingerprint) that are finished."""
        return [(s, k) for s, k, fp in jobs if self.is_done(s, k, fp)]

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.root / name
        atomic_write_json(path, obj)
        return path

    def read_json(self, *parts: str) -> Any:
        return json.loads(self.root.joinpath(*parts).read_text())


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
    repo = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
