"""Human-readable outputs: confusion-matrix pictures, training curves and result tables."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tabulate import tabulate

from ferbench.errors import UnknownName
from ferbench.io import atomic_write_bytes
from ferbench.metrics import row_normalise
from ferbench.runs import RunDir

TABLE_FORMATS: tuple[str, ...] = ("github", "simple")


def plot_confusion(
    confusion: np.ndarray | Sequence[Sequence[int]],
    classes: Sequence[str],
    path: Path | str,
    title: str,
) -> Path:
    """Draw a K x K confusion matrix (counts; rows true, columns predicted) as a 150 dpi PNG.

    Cell colours are the row-normalised fractions (0 to 1); each cell reads "fraction\\n(count)",
    e.g. "0.93\\n(42)". Rendered with the Agg canvas (no display needed) and written atomically.
    """
    counts = np.asarray(confusion, dtype=np.int64)
    if counts.shape != (len(classes), len(classes)):
        raise ValueError(f"confusion of shape {counts.shape} does not match {len(classes)} classes")
    fractions = row_normalise(counts)
    cells = [
        [f"{fraction:.2f}\n({count})" for fraction, count in zip(fraction_row, count_row)]
        for fraction_row, count_row in zip(fractions, counts)
    ]

    side = 2.0 + 0.8 * len(classes)
    figure = Figure(figsize=(side + 1.0, side))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    sns.heatmap(
        fractions,
        ax=axes,
        annot=np.array(cells),
        fmt="",
        cmap="Blues",
        vmin=0.0,
        vmax=1.0,
        square=True,
        xticklabels=list(classes),
        yticklabels=list(classes),
        annot_kws={"fontsize": 8},
    )
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.tick_params(axis="y", labelrotation=0)
    axes.set_title(title)
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=150)
    return atomic_write_bytes(path, png.getvalue())


CURVES_FILE = "curves.png"
LOG_LOSS_SPAN = 10.0
"""Training curves plot the loss on a log scale when its largest value is this many times its smallest."""
MAX_LEGEND = 20
"""Training curves name their lines (jobs) in a legend up to this many."""


def plot_training_curves(histories: Mapping[str, pd.DataFrame], path: Path | str, title: str) -> Path:
    """Draw training histories (label, e.g. "seed0 fold1" -> ``history.csv`` frame) as a PNG.

    One line per history (named in a legend for up to :data:`MAX_LEGEND`): mean training loss
    per epoch (log scale when it spans a factor of :data:`LOG_LOSS_SPAN` or more) and, in a
    second panel when any history has it, validation accuracy in percent. Written atomically
    at 150 dpi.
    """
    if not histories:
        raise ValueError("plot_training_curves needs at least one history")
    frame = pd.concat([history.assign(job=label) for label, history in histories.items()], ignore_index=True)
    with_validation = "val_accuracy" in frame and frame["val_accuracy"].notna().any()
    figure = Figure(figsize=(11.0 if with_validation else 6.5, 4.0))
    FigureCanvasAgg(figure)
    loss_axes, *others = figure.subplots(1, 2 if with_validation else 1, squeeze=False)[0]
    sns.lineplot(frame, x="epoch", y="loss", hue="job", marker="o", markersize=3, ax=loss_axes)
    loss = frame["loss"]
    if loss.min() > 0 and loss.max() >= LOG_LOSS_SPAN * loss.min():
        loss_axes.set_yscale("log")
    loss_axes.set_ylabel("mean training loss")
    if with_validation:
        sns.lineplot(frame.assign(val_accuracy=frame["val_accuracy"] * 100), x="epoch", y="val_accuracy", hue="job",
                     marker="o", markersize=3, ax=others[0], legend=False)
        others[0].set_ylabel("validation accuracy (%)")
    if len(histories) <= MAX_LEGEND:
        loss_axes.legend(fontsize=7, ncols=2 if len(histories) > 6 else 1)
    else:
        loss_axes.get_legend().remove()
    figure.suptitle(title)
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=150)
    return atomic_write_bytes(path, png.getvalue())


def write_run_curves(run: RunDir, jobs: Sequence[Mapping[str, Any]], title: str) -> Path | None:
    """Draw ``curves.png`` of a run from the ``history.csv`` of ``jobs`` (``summary.json``
    ``jobs``: ``seed``, ``fold``) and return its path; jobs without a history (classical
    models) are left out. With no history at all, a ``curves.png`` left from before is removed
    (it would show jobs the summary no longer aggregates) and None is returned."""
    histories = {}
    for job in jobs:
        history = run.job_dir(job["seed"], job["fold"]) / "history.csv"
        if history.is_file():
            histories[f"seed{job['seed']} fold{job['fold']}"] = pd.read_csv(history)
    path = run.root / CURVES_FILE
    if not histories:
        path.unlink(missing_ok=True)
        return None
    return plot_training_curves(histories, path, title)


def format_mean_std(d: dict[str, float], scale: float = 100, digits: int = 2) -> str:
    """``{mean, std}`` as "mean ± std", both times ``scale`` (100: fractions to percent)."""
    return f"{d['mean'] * scale:.{digits}f} ± {d['std'] * scale:.{digits}f}"


def results_table(
    rows: list[dict[str, Any]],
    columns: list[str],
    fmt: Literal["github", "simple"] = "github",
) -> str:
    """A text table of ``rows`` with one column per key in ``columns``, via tabulate.

    A ``{mean, std}`` cell (an :func:`ferbench.metrics.aggregate` entry) is shown in percent with
    :func:`format_mean_std`; a missing key or None shows as "-".
    """
    if fmt not in TABLE_FORMATS:
        raise UnknownName("table format", fmt, TABLE_FORMATS)
    body = [[_cell(row.get(column)) for column in columns] for row in rows]
    return tabulate(body, headers=columns, tablefmt=fmt, missingval="-")


def _cell(value: Any) -> Any:
    """A table cell: mean ± std for aggregate entries, the value itself otherwise."""
    if isinstance(value, dict) and {"mean", "std"} <= value.keys():
        return format_mean_std(value)
    return value
