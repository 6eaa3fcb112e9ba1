"""95% confidence intervals of a run's headline numbers: a cluster bootstrap over test subjects.

Images of one subject are not independent (the same face, often frames of one sequence), so the
resampling unit is the **subject**: a resample draws the run's test subjects with replacement,
and each drawn subject brings all its test images, in every job that tested them. Where the
dataset has no subjects (an empty ``subject`` column, e.g. FER2013) each image is its own unit
(``unit: image``); an image without a subject in a dataset with subjects is its own unit too.

Each resample recomputes the statistic exactly as the summary aggregates it:

- ``fold_mean``: the metric of every (seed, fold) job over the resampled units it tested, then
  the mean over all jobs (``ferbench.metrics.aggregate``'s ``mean``). With several seeds the
  units are resampled once and the same draw applies to every seed, so the interval is that of
  the seed-averaged statistic.
- ``pooled``: the metric of all jobs' predictions of the resampled units together.

When every unit's test images lie in one fold (subject-independent folds) and every fold holds
at least two units, units are resampled within each fold, so each resampled fold keeps its
number of subjects (``stratified: true``); otherwise (leave-one-subject-out, whose folds hold
one subject each; a cross-dataset target tested by every fold model; a random split; one pooled
``evaluate`` job) all units are resampled together. The interval is the percentile interval of
``resamples`` draws from ``numpy.random.default_rng(seed)``, recorded with the result.

The work is a matrix product of (resamples x units) draw counts with per-unit confusion counts,
well under a second for thousands of images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ferbench.metrics import SCALAR_METRICS, scores_from_confusions

LEVEL = 0.95
RESAMPLES = 1000
SEED = 0


@dataclass(frozen=True)
class UnitCounts:
    """The test predictions of a run as confusion counts per (job, unit).

    ``counts``: int array (J, U, K, K), the confusion (rows true) of unit ``u``'s images in job
    ``j``; ``folds``: the fold index of each job (J,); ``units``: the unit names (U,);
    ``unit``: ``"subject"`` or ``"image"``.
    """

    counts: np.ndarray
    folds: np.ndarray
    units: list[str]
    unit: str

    def strata(self) -> np.ndarray | None:
        """The fold of each unit when every unit was tested in one fold only and every fold
        holds at least two units, else None (resample all units together)."""
        tested = self.counts.sum(axis=(2, 3)) > 0  # (J, U)
        folds_of_unit = [set(self.folds[tested[:, u]]) for u in range(tested.shape[1])]
        if not all(len(folds) == 1 for folds in folds_of_unit):
            return None
        strata = np.array([next(iter(folds)) for folds in folds_of_unit])
        # a fold of one unit would always redraw that unit: no variance (leave-one-subject-out)
        return strata if np.unique(strata, return_counts=True)[1].min() >= 2 else None


def unit_counts(predictions: Mapping[tuple[int, int], pd.DataFrame], classes: Sequence[str]) -> UnitCounts:
    """:class:`UnitCounts` of the predictions tables of a run's jobs, keyed by (seed, fold).

    Each table has the ``predictions.csv`` columns ``path``, ``subject`` (empty: none), ``true``
    and ``predicted`` (class names of ``classes``).
    """
    if not predictions:
        raise ValueError("unit_counts needs the predictions of at least one job")
    index = {name: i for i, name in enumerate(classes)}
    tables = list(predictions.values())
    has_subjects = any((table["subject"] != "").any() for table in tables)
    keys = [np.where(table["subject"] != "", "subject:" + table["subject"], "image:" + table["path"])
            for table in tables]
    units = sorted(set(np.concatenate(keys)))
    position = {name: u for u, name in enumerate(units)}
    k = len(classes)
    counts = np.zeros((len(tables), len(units), k, k), dtype=np.int64)
    for j, (table, key) in enumerate(zip(tables, keys)):
        true = table["true"].map(index).to_numpy()
        pred = table["predicted"].map(index).to_numpy()
        np.add.at(counts[j], ([position[name] for name in key], true, pred), 1)
    folds = np.array([fold for _, fold in predictions])
    return UnitCounts(counts, folds, [name.split(":", 1)[1] for name in units],
                      "subject" if has_subjects else "image")


def resample_weights(strata: np.ndarray | None, n_units: int, resamples: int, seed: int) -> np.ndarray:
    """How often each unit is drawn in each resample: int array (resamples, n_units).

    Within each stratum (e.g. fold) as many units are drawn, with replacement, as it holds;
    ``strata=None`` draws all units together.
    """
    rng = np.random.default_rng(seed)
    labels = np.zeros(n_units, dtype=int) if strata is None else np.asarray(strata)
    weights = np.zeros(resamples * n_units, dtype=np.int64)
    row_start = (np.arange(resamples) * n_units)[:, None]
    for stratum in np.unique(labels):
        members = np.flatnonzero(labels == stratum)
        drawn = members[rng.integers(0, len(members), size=(resamples, len(members)))]
        weights += np.bincount((row_start + drawn).ravel(), minlength=resamples * n_units)
    return weights.reshape(resamples, n_units)


def bootstrap_intervals(data: UnitCounts, resamples: int = RESAMPLES, seed: int = SEED,
                        level: float = LEVEL) -> dict[str, Any]:
    """Percentile intervals of the fold-mean and pooled metrics (see the module docstring).

    Returns ``{level, resamples, seed, unit, units, stratified, fold_mean: {metric: {low, high}},
    pooled: {metric: {low, high}}}``, fractions in [0, 1].
    """
    strata = data.strata()
    weights = resample_weights(strata, len(data.units), resamples, seed).astype(float)
    jobs, n_units, k, _ = data.counts.shape
    per_unit = data.counts.transpose(1, 0, 2, 3).reshape(n_units, jobs * k * k)
    resampled = (weights @ per_unit).reshape(resamples, jobs, k, k)  # (B, J, K, K)
    fold_scores = scores_from_confusions(resampled)
    pooled_scores = scores_from_confusions(resampled.sum(axis=1))
    tails = [(1 - level) / 2, (1 + level) / 2]

    def interval(draws: np.ndarray) -> dict[str, float]:
        low, high = np.nanquantile(draws, tails)
        return {"low": float(low), "high": float(high)}

    return {
        "level": level, "resamples": resamples, "seed": seed, "unit": data.unit, "units": n_units,
        "stratified": strata is not None,
        # a job none of whose units was drawn has no score in that resample: the mean skips it
        "fold_mean": {m: interval(_nanmean_rows(fold_scores[m])) for m in SCALAR_METRICS},
        "pooled": {m: interval(pooled_scores[m]) for m in SCALAR_METRICS},
    }


def binomial_interval(correct: int, total: int, level: float = LEVEL) -> dict[str, float]:
    """Clopper-Pearson (exact) interval of a proportion ``correct / total``: ``{low, high}`` in [0, 1].

    For a paper's number that is a count over one small test set (e.g. 40/42)."""
    ci = stats.binomtest(correct, total).proportion_ci(confidence_level=level, method="exact")
    return {"low": float(ci.low), "high": float(ci.high)}


def _nanmean_rows(scores: np.ndarray) -> np.ndarray:
    """Mean over axis 1 ignoring NaN (array (B, J) -> (B,))."""
    valid = ~np.isnan(scores)
    with np.errstate(invalid="ignore"):
        return np.where(valid, scores, 0.0).sum(axis=1) / valid.sum(axis=1)
