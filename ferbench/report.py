"""Human-readable outputs: confusion-matrix pictures and result tables."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tabulate import tabulate

from ferbench.errors import UnknownName
from ferbench.io import atomic_write_bytes
from ferbench.metrics import row_normalise

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
