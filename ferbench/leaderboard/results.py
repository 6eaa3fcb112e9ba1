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
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from ferbench.errors import DataError, FerbenchError
from ferbench.runs import RunDir, job_fingerprint

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
                score = _read_json(metrics_file)[side][metric]
            except (KeyError, TypeError):
                raise DataError(metrics_file, f"no `{side}.{metric}` entry") from None
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                raise DataError(metrics_file, f"`{side}.{metric}`: expected a number, got {json.dumps(score)}")
            scores[(seed, fold)] = float(score)
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
