"""The results of a run directory: ``summary.json`` (with the confusion PNG) and ``speed.json``
(see :mod:`ferbench.runs`). The finished jobs' metrics are aggregated by
:func:`ferbench.metrics.aggregate`; their 95% intervals are bootstrapped by :mod:`ferbench.intervals`
from the jobs' predictions files (:func:`run_intervals`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ferbench.cards import ModelCard
from ferbench.errors import DataError
from ferbench.intervals import RESAMPLES, SEED, bootstrap_intervals, unit_counts
from ferbench.metrics import aggregate, cross_dataset_drop, row_normalise
from ferbench.pipeline import ProtocolData
from ferbench.report import plot_confusion
from ferbench.runs import TRAIN_CROSS_VALIDATED, TRAIN_HELD_OUT_TARGET, RunDir
from ferbench.runs.job_files import load_job_model
from ferbench.speed import speed_report


def summarise(run: RunDir, data: ProtocolData, card: ModelCard, jobs: list[tuple[int, int, str]],
              header: dict[str, Any]) -> dict[str, Any]:
    """Aggregate the finished jobs of a run into ``summary.json`` (and the confusion PNG).

    The summary repeats ``header`` (``run.json``), so a reader can check that its numbers
    belong to the header of the directory, and lists the finished jobs it aggregates
    (``jobs``: seed, fold, fingerprint)."""
    protocol = data.protocol
    classes = list(protocol.classes)
    done = [(s, k, fp) for s, k, fp in jobs if run.is_done(s, k, fp)]
    per_job = [run.read_json(f"seed{s}", f"fold{k}", "metrics.json") for s, k, _ in done]
    primary_side = "target" if data.target is not None else "test"
    side_metrics = [j[primary_side] for j in per_job if primary_side in j]
    summary: dict[str, Any] = {
        **header,
        "architecture": card.model,
        "classes": classes,
        "synthetic": data.synthetic,
        "cross_dataset": data.target is not None,
        "train_status": TRAIN_HELD_OUT_TARGET if data.target is not None else TRAIN_CROSS_VALIDATED,
        "jobs_done": len(done),
        "jobs_total": len(jobs),
        "complete": len(done) == len(jobs),
        "seeds": sorted({s for s, _, _ in jobs}),
        "jobs": [{"seed": s, "fold": k, "fingerprint": fp} for s, k, fp in done],
        "reported": [r.model_dump() for r in card.reported if r.protocol == protocol.id],
    }
    if side_metrics:
        agg = aggregate(side_metrics)
        summary["metrics"] = {k: v for k, v in agg.items() if isinstance(v, dict) and "mean" in v}
        summary["confusion"] = agg["confusion"]
        summary["confusion_normalised"] = np.round(row_normalise(agg["confusion"]), 4).tolist()
        summary["pooled"] = agg["pooled"]
        summary["intervals"] = run_intervals(run, [(s, k) for s, k, _ in done], primary_side, classes)  # 95% cluster bootstrap
        suffix = "" if primary_side == "test" else f"_{primary_side}"
        plot_confusion(np.asarray(agg["confusion"]), classes, run.root / f"confusion{suffix}.png",
                       title=f"{card.name} on {protocol.id}{' (synthetic)' if data.synthetic else ''}")
    if data.target is not None:
        source = [j["source"] for j in per_job if "source" in j]
        if source and side_metrics:
            src = aggregate(source)
            summary["source_metrics"] = {k: v for k, v in src.items() if isinstance(v, dict) and "mean" in v}
            summary["drop"] = cross_dataset_drop(
                {"accuracy": src["accuracy"]["mean"]}, {"accuracy": summary["metrics"]["accuracy"]["mean"]})
    return summary


def run_speed(run: RunDir, card: ModelCard, num_classes: int, device: torch.device,
              done: list[tuple[int, int]]) -> dict[str, Any]:
    """Speed and size of the card's model, measured once per card fingerprint (``speed.json``).

    Measured on a trained model of the run (classical models cannot predict untrained)."""
    cached = run.read_json_or_none("speed.json")  # an unreadable one is measured again
    if cached is not None and cached.get("card_fingerprint") == card.fingerprint:
        return cached
    if not done:
        return {}
    model = load_job_model(run, card, num_classes, *done[0])
    shape = (card.input.channels, *card.input.size)
    report = {"card_fingerprint": card.fingerprint, **speed_report(model, shape, device=str(device))}
    run.write_json("speed.json", report)
    return report


def run_intervals(run: RunDir, done: Sequence[tuple[int, int]], side: str, classes: Sequence[str],
                  resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """:func:`~ferbench.intervals.bootstrap_intervals` of a run's finished (seed, fold) jobs, read from their
    ``predictions.csv`` (``side`` ``test``) or ``predictions_target.csv`` (``target``).

    Raises:
        DataError: a job without its predictions file, or with a class outside ``classes``.
    """
    name = "predictions.csv" if side in ("test", "source") else f"predictions_{side}.csv"
    tables = {}
    for seed_, fold in done:
        path = run.job_dir(seed_, fold) / name
        if not path.is_file():
            raise DataError(path, "missing; every finished job keeps its test predictions")
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        named = set(table["true"]) | set(table["predicted"])
        if not named <= set(classes):
            raise DataError(path, f"classes {sorted(named - set(classes))} are not the protocol's {list(classes)}")
        tables[(seed_, fold)] = table
    return bootstrap_intervals(unit_counts(tables, classes), resamples, seed)
