"""Classification metrics of one test fold and their aggregate over folds and seeds.

Labels are class indices into an ordered class set ``classes`` (index ``i`` is ``classes[i]``).
Every number comes from scikit-learn or SciPy (the bootstrap's vectorised
:func:`scores_from_confusions` is checked against them); results are plain Python types, ready
for JSON.

Definitions used throughout:

- ``accuracy``: fraction of correct predictions.
- **Absent classes.** A protocol class with no image in a fold's test set (``y_true``; e.g. fear
  in fold 10 of the DeRL CK+ split) has no recall and no meaningful F1 there. ``macro_f1`` and
  ``uar`` of a fold average over the *present* classes only, and ``absent_classes`` names the
  ones left out. Predictions of an absent class still count: they are false positives that
  lower the recall (and F1) of the true classes. Pooled over every fold's predictions
  (``aggregate``'s ``pooled``) every protocol class with a test image anywhere is present, so the
  pooled macro-F1 and UAR average over all the protocol's classes (one rule, applied to the pool).
- ``macro_f1``: unweighted mean F1 over the present classes.
- ``weighted_f1``: mean F1 weighted by each class's support in ``y_true``.
- ``uar`` (unweighted average recall): mean recall over the present classes, i.e. balanced
  accuracy over the classes present in the fold.
- ``per_class``: precision, recall, F1 and support of every class of ``classes``. A ratio whose
  denominator is zero (precision of a never-predicted class, recall of an absent class) is 0
  (``zero_division=0``).
- ``confusion``: K x K counts, rows = true class, columns = predicted class, in ``classes`` order;
  absent classes keep their (zero) row and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    recall_score,
)

MetricName = Literal["accuracy", "macro_f1", "weighted_f1", "uar"]
"""The scalar metrics every fold result holds (a protocol's ``metrics.report`` lists some)."""
SCALAR_METRICS: tuple[MetricName, ...] = get_args(MetricName)
"""The names of :data:`MetricName`, in the order results list them."""
RankingMetric = Literal["accuracy", "macro_f1", "uar"]
"""The metrics of :data:`MetricName` a protocol may rank models by (``metrics.primary``)."""


def fold_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Metrics of one fold from true and predicted class indices (int arrays of length N).

    Returns ``accuracy, macro_f1, weighted_f1, uar`` (floats in [0, 1]), ``per_class``
    ``{label: {precision, recall, f1, support}}``, ``confusion`` (K x K list of lists),
    ``absent_classes`` (the classes with no test image, left out of macro-F1 and UAR),
    ``classes`` and ``n``. See the module docstring for the exact definitions.
    """
    y_true, y_pred = _check_labels(y_true, y_pred, len(classes))
    every = np.arange(len(classes))
    present = np.unique(y_true)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=every, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
        ),
        "weighted_f1": float(
            f1_score(y_true, y_pred, labels=present, average="weighted", zero_division=0)
        ),
        "uar": float(recall_score(y_true, y_pred, labels=present, average="macro")),
        "absent_classes": [label for i, label in enumerate(classes) if i not in present],
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(classes)
        },
        "confusion": confusion_matrix(y_true, y_pred, labels=every).tolist(),
        "classes": list(classes),
        "n": int(len(y_true)),
    }


def aggregate(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Summarise :func:`fold_metrics` results of every (seed, fold) of a run.

    Each scalar metric becomes ``{mean, std, values}``, where ``std`` is the sample standard
    deviation (ddof=1) over the fold results, or 0.0 for a single result. ``confusion`` is the sum
    of the fold confusions, and ``pooled`` is :func:`fold_metrics` of all predictions pooled (every
    metric here is a function of the confusion matrix, so it is computed from the sum; with several
    seeds each test image counts once per seed).
    """
    if not folds:
        raise ValueError("aggregate needs at least one fold result")
    classes = folds[0]["classes"]
    for i, fold in enumerate(folds):
        if fold["classes"] != classes:
            raise ValueError(
                f"fold result {i} has classes {fold['classes']}, the first has {classes}"
            )
    confusion = np.sum([np.asarray(f["confusion"], dtype=np.int64) for f in folds], axis=0)
    summary: dict[str, Any] = {
        name: _summarise([fold[name] for fold in folds]) for name in SCALAR_METRICS
    }
    summary.update(
        n_folds=len(folds),
        classes=list(classes),
        confusion=confusion.tolist(),
        pooled=_metrics_from_confusion(confusion, classes),
    )
    return summary


def scores_from_confusions(confusions: np.ndarray) -> dict[str, np.ndarray]:
    """The scalar metrics of a stack of K x K confusions (shape ``(..., K, K)``, rows true), at once.

    The definitions of :func:`fold_metrics` (absent classes left out of macro-F1 and UAR), for the
    bootstrap's thousands of resampled confusions. Returns ``{name: array of shape (...)}`` for
    every name in :data:`SCALAR_METRICS`; a confusion holding no image gives NaN.
    """
    counts = np.asarray(confusions, dtype=float)
    support = counts.sum(axis=-1)
    predicted = counts.sum(axis=-2)
    hits = np.diagonal(counts, axis1=-2, axis2=-1)
    total = support.sum(axis=-1)
    present = support > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(present, hits / support, 0.0)
        f1 = np.where(present, 2 * hits / (support + predicted), 0.0)  # 2TP / (2TP + FP + FN)
        n_present = present.sum(axis=-1)
        return {
            "accuracy": hits.sum(axis=-1) / total,
            "macro_f1": f1.sum(axis=-1) / n_present,
            "weighted_f1": (f1 * support).sum(axis=-1) / total,
            "uar": recall.sum(axis=-1) / n_present,
        }


def row_normalise(confusion: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
    """Divide each row of a K x K confusion by its sum (recall view); all-zero rows stay zero."""
    counts = np.asarray(confusion, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def cross_dataset_drop(
    source: dict[str, Any], target: dict[str, Any], metric: str = "accuracy"
) -> dict[str, Any]:
    """How much ``metric`` falls from the source-dataset test to the target-dataset test.

    ``source`` and ``target`` are :func:`aggregate` results (their means are used) or single
    :func:`fold_metrics` results. Returns ``{metric, source, target, drop = source - target}``.
    """
    src, tgt = _metric_value(source, metric), _metric_value(target, metric)
    return {"metric": metric, "source": src, "target": tgt, "drop": src - tgt}


def _check_labels(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return both label arrays as 1-D ints, or raise if they differ in length or leave range(k)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape or len(y_true) == 0:
        raise ValueError(
            "y_true and y_pred must be non-empty 1-D arrays of one length, "
            f"got {y_true.shape} and {y_pred.shape}"
        )
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{name} must hold integer class indices, got dtype {labels.dtype}")
        if labels.min() < 0 or labels.max() >= k:
            raise ValueError(f"{name} holds class indices outside 0..{k - 1} ({k} classes)")
    return y_true, y_pred


def _summarise(values: list[float]) -> dict[str, Any]:
    """``{mean, std, values}`` with the sample standard deviation (0.0 for one value)."""
    array = np.asarray(values, dtype=float)
    std = float(np.std(array, ddof=1)) if len(array) > 1 else 0.0
    return {"mean": float(np.mean(array)), "std": std, "values": [float(v) for v in array]}


def _metrics_from_confusion(confusion: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """:func:`fold_metrics` of the (true, predicted) pairs that a K x K count matrix describes."""
    true_index, pred_index = np.indices(confusion.shape).reshape(2, -1)
    counts = confusion.ravel()
    return fold_metrics(np.repeat(true_index, counts), np.repeat(pred_index, counts), classes)


def _metric_value(result: dict[str, Any], metric: str) -> float:
    """The value of ``metric`` in a fold result, or its mean in an aggregate."""
    if metric not in result:
        known = [k for k in SCALAR_METRICS if k in result]
        raise KeyError(f"result has no metric `{metric}`; it has {known}")
    value = result[metric]
    return float(value["mean"] if isinstance(value, dict) else value)
