"""Reading finished run directories (``ferbench.runs`` layout) back for the leaderboard.

Nothing here trains or evaluates: every number comes from a run's ``summary.json``,
``protocol.resolved.yaml``, ``env.json``, ``folds.json`` and its per-job
``seed<s>/fold<k>/metrics.json`` and ``predictions.csv``.
A run is shown only when its summary belongs to the header it is shown under (``run.json``
and the ``protocol.resolved.yaml`` it records, see :func:`header_problem`), and a job's
results only when its ``DONE`` verifies.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import (BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr, TypeAdapter,
                      ValidationError)

from ferbench.errors import DataError, FerbenchError
from ferbench.protocol import SplitSpec
from ferbench.runs import (HEADER_FILES, TRAIN_CROSS_VALIDATED, TRAIN_EXTERNAL, TRAIN_HELD_OUT_TARGET, RunDir,
                           header_mismatch, sha256_file)

log = logging.getLogger(__name__)


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

    def preprocess_sides(self) -> list[dict[str, Any]] | None:
        """The run's ``preprocess.json``: per side ``{role, dataset, report}``; None when absent.

        Raises:
            DataError: a ``preprocess.json`` that is not a list of ``{role, dataset, report}``.
        """
        path = self.path / "preprocess.json"
        if not path.is_file():
            return None
        sides = _read_json(path)
        if not (isinstance(sides, list) and all(isinstance(side, dict) and {"role", "dataset", "report"} <= set(side)
                                                and isinstance(side["report"], dict) for side in sides)):
            raise DataError(path, "expected a list of {role, dataset, report: {skipped_unreadable: "
                                  "[{path, problem}], skipped_no_face: [path]}}")
        return sides

    def skipped_files(self) -> list[dict[str, str]] | None:
        """Every file preprocessing dropped, from the run's ``preprocess.json``, as
        ``{role, dataset, path, reason}`` (reason: the unreadable file's problem, or ``no face
        found``); None when the run has no ``preprocess.json``.

        Raises:
            DataError: a malformed ``preprocess.json`` (see :meth:`preprocess_sides`).
        """
        sides = self.preprocess_sides()
        if sides is None:
            return None
        skipped = []
        try:
            for entry in sides:
                report, where = entry["report"], {"role": entry["role"], "dataset": entry["dataset"]}
                skipped += [{**where, "path": item["path"], "reason": item["problem"]}
                            for item in report.get("skipped_unreadable", [])]
                skipped += [{**where, "path": item, "reason": "no face found"}
                            for item in report.get("skipped_no_face", [])]
        except (KeyError, TypeError, AttributeError):
            raise DataError(self.path / "preprocess.json", "expected a list of {role, dataset, report: "
                            "{skipped_unreadable: [{path, problem}], skipped_no_face: [path]}}") from None
        return skipped

    def job_scores(self, metric: str) -> dict[tuple[int, int], float]:
        """``(seed, fold) -> metric`` of every finished job, from ``seed<s>/fold<k>/metrics.json``
        (the ``target`` entry for cross-dataset runs, ``test`` otherwise).

        Only the jobs the summary aggregated (its ``jobs``) count, and only while their ``DONE``
        carries the fingerprint listed there and their files are intact, so a stale
        ``metrics.json`` left by an interrupted rerun is never paired. A run of
        ``ferbench evaluate`` (``evaluated: true``) has one pooled job, no folds: no scores."""
        if self.summary.get("evaluated"):
            return {}
        side = "target" if self.cross_dataset else "test"
        scores = {}
        for (seed, fold), job in self.done_jobs().items():
            metrics_file = job / "metrics.json"
            try:
                score = _read_json(metrics_file)[side][metric]
            except (KeyError, TypeError):
                raise DataError(metrics_file, f"no `{side}.{metric}` entry") from None
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                raise DataError(metrics_file, f"`{side}.{metric}`: expected a number, got {json.dumps(score)}")
            scores[(seed, fold)] = float(score)
        return scores

    def fold_sizes(self) -> dict[int, tuple[int, int]]:
        """``fold -> (training samples, test samples)`` from the run's ``folds.json``."""
        folds_file = self.path / "folds.json"
        try:
            return {int(entry["fold"]): (int(entry["train"]), int(entry["test"])) for entry in _read_json(folds_file)}
        except (KeyError, TypeError, ValueError):
            raise DataError(folds_file, "every entry needs integer `fold`, `train` and `test` counts") from None

    def image_correctness(self) -> dict[str, list[bool]]:
        """``path -> [correct, ...]``: whether each finished job's model classified the image
        correctly, one entry per job that tested it (see :meth:`prediction_rows`)."""
        correct: dict[str, list[bool]] = {}
        for row in self.prediction_rows("path"):
            correct.setdefault(row["path"], []).append(row["true"] == row["predicted"])
        return correct

    def subject_correctness(self) -> dict[str, tuple[int, int]]:
        """``subject -> (correct, predicted)``: the test predictions of every finished job
        counted by the image's ``subject`` (an image counts once per job that tested it: once
        per seed, and once per fold model on a cross-dataset target). Images without a subject
        are left out."""
        counts: dict[str, tuple[int, int]] = {}
        for row in self.prediction_rows("subject"):
            if row["subject"]:
                correct, total = counts.get(row["subject"], (0, 0))
                counts[row["subject"]] = (correct + (row["true"] == row["predicted"]), total + 1)
        return counts

    @property
    def has_predictions(self) -> bool:
        """Every finished job holds its predictions file (see :meth:`prediction_rows`)."""
        return all((job / self._predictions_name).is_file() for job in self.done_jobs().values())

    @property
    def _predictions_name(self) -> str:
        return "predictions_target.csv" if self.cross_dataset else "predictions.csv"

    def prediction_rows(self, key: str) -> Iterator[dict[str, str]]:
        """Every row of every finished job's ``seed<s>/fold<k>/predictions.csv``
        (``predictions_target.csv`` for cross-dataset runs), each holding ``key``, ``true`` and
        ``predicted`` (class names).

        Raises:
            DataError: a finished job without its predictions file, or one lacking a column.
        """
        for job in self.done_jobs().values():
            predictions = job / self._predictions_name
            try:
                with predictions.open(encoding="utf-8", newline="") as handle:
                    reader = csv.DictReader(handle)
                    columns = reader.fieldnames or []
                    missing = [column for column in (key, "true", "predicted") if column not in columns]
                    if missing:
                        raise DataError(predictions, f"no `{missing[0]}` column")
                    yield from reader
            except FileNotFoundError:
                raise DataError(predictions, "missing; every finished job writes one") from None
            except OSError as err:
                raise DataError(predictions, f"cannot read predictions: {err}") from None

    @property
    def subject_independent(self) -> bool:
        """No test subject's images were trained on: a split that keeps each subject in one fold
        (the split's ``subject_independent``), or a cross-dataset target (other people)."""
        split = self.protocol.get("split")
        if self.cross_dataset or split is None:
            return self.cross_dataset
        try:
            return TypeAdapter(SplitSpec).validate_python(split).subject_independent
        except ValidationError as err:
            raise DataError(self.path / "protocol.resolved.yaml", f"`split`: {err.errors()[0]['msg']}") from None

    def done_jobs(self) -> dict[tuple[int, int], Path]:
        """``(seed, fold) -> job directory`` of the jobs the summary aggregated (its ``jobs``)
        whose ``DONE`` still carries the fingerprint listed there and whose files are intact."""
        run = RunDir(self.path)
        jobs = {}
        for job in self.summary.get("jobs", []):
            seed, fold = int(job["seed"]), int(job["fold"])
            if run.is_done(seed, fold, job["fingerprint"]):
                jobs[(seed, fold)] = run.job_dir(seed, fold)
        return jobs


def find_runs(paths: Iterable[Path | str]) -> list[RunResult]:
    """Every run under ``paths``; each is an output root (``OUT/<protocol>/<model>/``), one
    protocol's folder (``<model>/``) or a single run directory. Each run is read once; a run
    whose summary does not belong to its header (:func:`header_problem`) is left out, with a
    logged warning saying why.

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
            if root in found:
                continue
            run = load_run(root)
            problem = header_problem(run)
            if problem is None:
                found[root] = run
            else:
                log.warning("leaderboard: left out %s: %s", root, problem)
    return list(found.values())


def header_problem(run: RunResult) -> str | None:
    """Why ``run``'s numbers may not belong to the header they would be shown under, or None:
    no readable ``run.json``, a ``summary.json`` of another header (:data:`ferbench.runs.HEADER_KEYS`),
    or a header file that is not the one ``run.json`` records."""
    header = RunDir(run.path).read_json_or_none("run.json")
    if header is None:
        return "no readable run.json (written before ferbench recorded run headers?); rerun it"
    differ = header_mismatch(run.summary, header)
    if differ:
        return f"summary.json was made under another header than run.json (differs in {', '.join(differ)}); rerun it"
    for name, digest in (header.get("files") or {}).items():
        path = run.path / name
        if name in HEADER_FILES and (not path.is_file() or sha256_file(path) != digest):
            return f"{name} is not the file run.json records; rerun it"
    return None


def load_run(root: Path) -> RunResult:
    """Read one run directory (see :class:`RunResult`)."""
    summary_file, protocol_file = root / "summary.json", root / "protocol.resolved.yaml"
    summary = _read_json(summary_file)
    check_summary(summary, summary_file)
    if not protocol_file.is_file():
        raise DataError(protocol_file, "missing; every run directory holds its resolved protocol")
    protocol = yaml.safe_load(protocol_file.read_text(encoding="utf-8"))
    env_file = root / "env.json"
    version = _read_json(env_file).get("ferbench") if env_file.is_file() else None
    return RunResult(root, summary, protocol, version, summary_file.stat().st_mtime)


class _Aggregate(BaseModel):
    """One metric over a run's jobs: fractions, null where a value was not finite."""

    model_config = ConfigDict(extra="allow")
    mean: StrictFloat | None
    std: StrictFloat | None = None
    values: list[StrictFloat | None] = []


class _Reported(BaseModel):
    model_config = ConfigDict(extra="allow")
    metric: StrictStr = "accuracy"
    value: StrictFloat


class _Drop(BaseModel):
    model_config = ConfigDict(extra="allow")
    drop: StrictFloat | None


class _Summary(BaseModel):
    """The ``summary.json`` keys the leaderboard reads, with their types (other keys pass unchecked)."""

    model_config = ConfigDict(extra="allow")
    protocol: StrictStr
    fingerprint: StrictStr
    model: StrictStr
    card_fingerprint: StrictStr
    synthetic: StrictBool = False
    cross_dataset: StrictBool = False
    evaluated: StrictBool = False
    complete: StrictBool = False
    jobs_done: StrictInt = 0
    jobs_total: StrictInt
    seeds: list[StrictInt] | None = None
    deviations: dict[str, Any] | None = None
    metrics: dict[str, _Aggregate] = {}
    source_metrics: dict[str, _Aggregate] = {}
    drop: _Drop | None = None
    params: StrictInt | None = None
    speed: dict[str, Any] | None = None
    reported: list[_Reported] = []


_EXPECTED = {"int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
             "string_type": "a string", "dict_type": "a mapping", "model_type": "a mapping", "list_type": "a list"}


def check_summary(summary: Any, summary_file: Path) -> None:
    """Raise :class:`DataError` naming ``summary_file`` and the key when ``summary`` (its parsed
    content) lacks a key the leaderboard reads or holds a value of the wrong type there."""
    if not isinstance(summary, dict):
        raise DataError(summary_file, "expected a JSON object; is this a ferbench summary?")
    try:
        _Summary.model_validate(summary)
    except ValidationError as err:
        error = err.errors()[0]
        key = ".".join(map(str, error["loc"]))
        if error["type"] == "missing":
            raise DataError(summary_file, f"no `{key}` key; is this a ferbench summary?") from None
        expected = _EXPECTED.get(error["type"])
        problem = f"expected {expected}" if expected else error["msg"]
        raise DataError(summary_file, f"`{key}`: {problem}, got {json.dumps(error['input'])[:60]}") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(path, f"cannot read JSON: {err}") from None
