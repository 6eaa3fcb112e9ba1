"""Reading finished run directories (``ferbench.runs`` layout) back for the leaderboard.

Nothing here trains or evaluates: every number comes from a run's ``summary.json``,
``protocol.resolved.yaml``, ``env.json`` and its per-job ``seed<s>/fold<k>/metrics.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ferbench.errors import DataError, FerbenchError
from ferbench.runs import TRAIN_CROSS_VALIDATED, TRAIN_EXTERNAL, TRAIN_HELD_OUT_TARGET, RunDir, job_fingerprint

_JOB = re.compile(r"seed(\d+)/fold(\d+)$")


@dataclass(frozen=True)
class RunResult:
    """One (protocol, model) run directory as written by ``ferbench run``.

    ``summary`` is ``summary.json``, ``protocol`` the resolved protocol, ``ferbench_version``
    the version in ``env.json`` (None when absent) and ``modified`` the time ``summary.json``
    was last written (seconds since the epoch).
    """

    path: Path
    summary: dict[str, Any]
    protocol: dict[str, Any]
    ferbench_version: str | None
    modified: float

    @property
    def protocol_id(self) -> str:
        return self.summary["protocol"]

    @property
    def model(self) -> str:
        return self.summary["model"]

    @property
    def fingerprint(self) -> str:
        return self.summary["fingerprint"]

    @property
    def synthetic(self) -> bool:
        return bool(self.summary.get("synthetic"))

    @property
    def cross_dataset(self) -> bool:
        return bool(self.summary.get("cross_dataset"))

    @property
    def primary(self) -> str:
        """The protocol's ranking metric (``metrics.primary``, default ``accuracy``)."""
        return (self.protocol.get("metrics") or {}).get("primary", "accuracy")

    @property
    def rankable(self) -> bool:
        """Complete (every job done) and holding an aggregate of the primary metric."""
        return bool(self.summary.get("complete")) and self.primary in self.summary.get("metrics", {})

    def mean(self, metric: str) -> float | None:
        """Mean of ``metric`` over the run's jobs (a fraction), or None when not reported."""
        entry = self.summary.get("metrics", {}).get(metric)
        return entry["mean"] if entry else None

    def pooled(self, metric: str) -> float | None:
        """``metric`` over every job's test predictions pooled (a fraction), or None when not reported."""
        value = (self.summary.get("pooled") or {}).get(metric)
        return float(value) if value is not None else None

    def interval(self, kind: str, metric: str) -> dict[str, float] | None:
        """The 95% bootstrap interval ``{low, high}`` of ``metric``'s ``fold_mean`` or ``pooled``
        number (``summary.json`` ``intervals``, see ``ferbench.intervals``), or None."""
        return ((self.summary.get("intervals") or {}).get(kind) or {}).get(metric)

    @property
    def train_status(self) -> str:
        """How the run's models relate to its test data (``ferbench.runs``' ``TRAIN_*``): the
        summary's ``train_status``; for an older summary without one, ``external`` for an
        evaluated checkpoint, ``held-out target`` across datasets, else ``cross-validated``."""
        if self.summary.get("train_status"):
            return self.summary["train_status"]
        if self.summary.get("evaluated"):
            return TRAIN_EXTERNAL
        return TRAIN_HELD_OUT_TARGET if self.cross_dataset else TRAIN_CROSS_VALIDATED

    def skipped_files(self) -> list[dict[str, str]] | None:
        """Every file preprocessing dropped, from the run's ``preprocess.json``, as
        ``{role, dataset, path, reason}`` (reason: the unreadable file's problem, or ``no face
        found``); None when the run has no ``preprocess.json``.

        Raises:
            DataError: a ``preprocess.json`` that is not a list of ``{role, dataset, report}``.
        """
        path = self.path / "preprocess.json"
        if not path.is_file():
            return None
        skipped = []
        try:
            for entry in _read_json(path):
                report, where = entry["report"], {"role": entry["role"], "dataset": entry["dataset"]}
                skipped += [{**where, "path": item["path"], "reason": item["problem"]}
                            for item in report.get("skipped_unreadable", [])]
                skipped += [{**where, "path": item, "reason": "no face found"}
                            for item in report.get("skipped_no_face", [])]
        except (KeyError, TypeError, AttributeError):
            raise DataError(path, "expected a list of {role, dataset, report: {skipped_unreadable: "
                                  "[{path, problem}], skipped_no_face: [path]}}") from None
        return skipped

    def job_scores(self, metric: str) -> dict[tuple[int, int], float]:
        """``(seed, fold) -> metric`` of every finished job, from ``seed<s>/fold<k>/metrics.json``
        (the ``target`` entry for cross-dataset runs, ``test`` otherwise).

        A job counts only when its ``DONE`` carries the fingerprint the summary was made with,
        so a stale ``metrics.json`` left by an interrupted rerun is never paired. A run of
        ``ferbench evaluate`` (``evaluated: true``) has one pooled job, no folds: no scores."""
        if self.summary.get("evaluated"):
            return {}
        run = RunDir(self.path)
        side = "target" if self.cross_dataset else "test"
        scores = {}
        for metrics_file in sorted(self.path.glob("seed*/fold*/metrics.json")):
            match = _JOB.search(metrics_file.parent.as_posix())
            if match is None:
                continue
            seed, fold = int(match[1]), int(match[2])
            expected = job_fingerprint(self.fingerprint, self.summary["card_fingerprint"], seed, fold,
                                       self.summary.get("deviations") or {})
            if not run.is_done(seed, fold, expected):
                continue
            try:
                scores[(seed, fold)] = float(_read_json(metrics_file)[side][metric])
            except (KeyError, TypeError):
                raise DataError(metrics_file, f"no `{side}.{metric}` entry") from None
        return scores


def find_runs(paths: Iterable[Path | str]) -> list[RunResult]:
    """Every run under ``paths``; each is an output root (``OUT/<protocol>/<model>/``), one
    protocol's folder (``<model>/``) or a single run directory. Each run is read once.

    Raises:
        FerbenchError: a path that does not exist or holds no ``summary.json``.
        DataError: an unreadable ``summary.json`` or a run without ``protocol.resolved.yaml``.
    """
    found: dict[Path, RunResult] = {}
    for path in map(Path, paths):
        if not path.is_dir():
            raise FerbenchError(f"{path}: no such run directory")
        summaries = [*path.glob("summary.json"), *path.glob("*/summary.json"), *path.glob("*/*/summary.json")]
        if not summaries:
            raise FerbenchError(f"{path}: no summary.json found; expected OUT/<protocol>/<model>/summary.json "
                                f"as written by `ferbench run --out OUT`")
        for summary in sorted(summaries):
            root = summary.parent.resolve()
            if root not in found:
                found[root] = load_run(root)
    return list(found.values())


def load_run(root: Path) -> RunResult:
    """Read one run directory (see :class:`RunResult`)."""
    summary_file, protocol_file = root / "summary.json", root / "protocol.resolved.yaml"
    summary = _read_json(summary_file)
    for key in ("protocol", "fingerprint", "model"):
        if key not in summary:
            raise DataError(summary_file, f"no `{key}` key; is this a ferbench summary?")
    if not protocol_file.is_file():
        raise DataError(protocol_file, "missing; every run directory holds its resolved protocol")
    protocol = yaml.safe_load(protocol_file.read_text(encoding="utf-8"))
    env_file = root / "env.json"
    version = _read_json(env_file).get("ferbench") if env_file.is_file() else None
    return RunResult(root, summary, protocol, version, summary_file.stat().st_mtime)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(path, f"cannot read JSON: {err}") from None
