"""A tidy table of finished runs for analysis in pandas (``ferbench results``).

One row per (protocol, model, seed, fold, side): ``side`` is ``test`` for a within-dataset
run, ``source`` and ``target`` for a cross-dataset one (a job has a row per side it scored).
Columns, in this order:

- ``protocol, model, seed, fold, side``;
- every scalar metric of the job's ``metrics.json`` side (``accuracy, macro_f1, weighted_f1,
  uar`` as fractions, ``n`` test samples), ``absent_classes`` (``;``-joined class names, empty
  when none) and per class ``precision_<class>, recall_<class>, f1_<class>, support_<class>``;
- ``selected_epoch`` (the validation-selected epoch, when the split has a validation set);
- ``train_status, evaluated, synthetic, cross_dataset`` and the fingerprints ``fingerprint``
  (protocol), ``data_fingerprint``, ``card_fingerprint``, ``job_fingerprint``;
- ``deviation_<name>`` for each deviation of the run (e.g. ``deviation_epochs``), empty
  where a run has none of that name; ``run``: the run directory.

Only the runs the leaderboard would show are read (:func:`~ferbench.leaderboard.results.find_runs`:
the summary belongs to its header) and of them only the jobs the summary aggregates whose
``DONE`` verifies (:meth:`~ferbench.leaderboard.results.RunResult.done_jobs`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ferbench.errors import DataError, FerbenchError
from ferbench.io import atomic_write_bytes
from ferbench.leaderboard.results import RunResult, find_runs

SIDES = ("test", "source", "target")
"""The ``metrics.json`` entries that hold one scored side of a job."""
KEY_COLUMNS = ("protocol", "model", "seed", "fold", "side")
PER_CLASS = ("precision", "recall", "f1", "support")
FORMATS = ("csv", "parquet")


def results_frame(paths: Iterable[Path | str]) -> pd.DataFrame:
    """The table of every finished job under ``paths`` (output roots, protocol folders or run
    directories, as ``ferbench leaderboard`` takes them), sorted by protocol, model, seed, fold.

    Raises:
        FerbenchError: a path that holds no run (see ``find_runs``).
        DataError: an unreadable ``summary.json`` or ``metrics.json``.
    """
    rows = [row for run in find_runs(paths) for row in run_rows(run)]
    frame = pd.DataFrame(rows, columns=None if rows else list(KEY_COLUMNS))
    frame = frame.sort_values(list(KEY_COLUMNS[:4]), kind="stable", ignore_index=True)
    if rows:  # deviations of later runs come after the first run's columns: keep `run` last
        frame = frame[[column for column in frame.columns if column != "run"] + ["run"]]
    if "selected_epoch" in frame:
        frame["selected_epoch"] = frame["selected_epoch"].astype("Int64")  # empty where no validation set
    return frame


def run_rows(run: RunResult) -> list[dict[str, Any]]:
    """The rows of one run: one per verified job and side (see the module docstring)."""
    summary = run.summary
    about = {"train_status": run.train_status, "evaluated": bool(summary.get("evaluated")),
             "synthetic": run.synthetic, "cross_dataset": run.cross_dataset, "fingerprint": run.fingerprint,
             "data_fingerprint": summary.get("data_fingerprint"), "card_fingerprint": summary.get("card_fingerprint")}
    deviations = {f"deviation_{name}": value for name, value in (summary.get("deviations") or {}).items()}
    fingerprints = {(int(job["seed"]), int(job["fold"])): job["fingerprint"] for job in summary.get("jobs", [])}
    rows = []
    for (seed, fold), job_dir in sorted(run.done_jobs().items()):
        metrics_file = job_dir / "metrics.json"
        record = _read_object(metrics_file)
        sides = [side for side in SIDES if side in record]
        if not sides:
            raise DataError(metrics_file, f"no `{'`, `'.join(SIDES)}` entry; is this a ferbench job?")
        for side in sides:
            rows.append({"protocol": run.protocol_id, "model": run.model, "seed": seed, "fold": fold, "side": side,
                         **_metric_columns(record[side], metrics_file, side),
                         "selected_epoch": record.get("selected_epoch"), **about,
                         "job_fingerprint": fingerprints[(seed, fold)], **deviations, "run": str(run.path)})
    return rows


def write_results(frame: pd.DataFrame, path: Path, fmt: str) -> Path:
    """Write ``frame`` to ``path`` atomically as ``csv`` or ``parquet`` (which needs pyarrow)."""
    if fmt == "csv":
        return atomic_write_bytes(path, frame.to_csv(index=False).encode("utf-8"))
    if fmt != "parquet":
        raise ValueError(f"unknown results format {fmt!r}; expected one of {FORMATS}")
    try:
        import pyarrow  # noqa: F401  (pandas writes parquet through it)
    except ImportError:
        raise FerbenchError("--parquet needs pyarrow: pip install 'ferbench[parquet]' (or write --csv)") from None
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return atomic_write_bytes(path, buffer.getvalue())


def _metric_columns(metrics: Any, metrics_file: Path, side: str) -> dict[str, Any]:
    """A side's metrics as flat columns: the scalars, ``absent_classes`` joined, per-class entries."""
    if not isinstance(metrics, dict):
        raise DataError(metrics_file, f"`{side}`: expected a mapping of metrics, got {json.dumps(metrics)[:60]}")
    columns: dict[str, Any] = {name: value for name, value in metrics.items()
                               if isinstance(value, (int, float)) and not isinstance(value, bool)}
    columns["absent_classes"] = ";".join(metrics.get("absent_classes") or [])
    for label, entry in (metrics.get("per_class") or {}).items():
        columns.update({f"{name}_{label}": entry.get(name) for name in PER_CLASS})
    return columns


def _read_object(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(path, f"cannot read JSON: {err}") from None
    if not isinstance(record, dict):
        raise DataError(path, "expected a JSON object; is this a ferbench job?")
    return record
