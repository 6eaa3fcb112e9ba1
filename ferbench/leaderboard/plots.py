"""Pictures of a protocol page, drawn from the board's ranked runs (nothing is re-run).

- **accuracy vs cost**: the primary metric (fold mean, %, with its 95% cluster-bootstrap
  interval as the error bar where the summary records one) against single-thread CPU latency
  per image (ms) and against the parameter count (log axis). The Pareto front, the models no
  other model beats on both (a higher or equal metric at a lower or equal cost, better on one),
  is drawn as a step line: the best metric reachable within each cost.
- **source vs target** (cross-dataset protocols): in-domain source accuracy against target
  accuracy (both fold means, %), with the no-drop diagonal.
- **per-class F1**: a models x classes heatmap of each class's F1 from the run's summed
  confusion matrix (``summary.json`` ``confusion``: every job's test predictions pooled, rows
  true), 2 TP / (2 TP + FP + FN); blank where a class was neither present nor predicted.
- **per-subject accuracy** (subject-independent protocols: every test subject unseen in
  training): each model's accuracy on each test subject, from the jobs' ``predictions.csv``
  (each image counted once per job that tested it), as a box plot with the subjects as dots,
  and the hardest subjects: the lowest mean of the models' accuracies, ties by name.

Every picture is a PNG of a fixed size (in inches, at :data:`DPI`), rendered with the Agg
canvas (no display needed) and written atomically; models appear in ranking order and classes
in protocol order, so the same runs give the same files.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from statistics import fmean

import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ferbench.io import atomic_write_bytes
from ferbench.leaderboard.ranking import Board
from ferbench.leaderboard.results import RunResult

DPI = 120
HARDEST = 5  # subjects listed in the hardest-subjects table


@dataclass(frozen=True)
class Picture:
    """A written picture, a short ``title`` (e.g. ``accuracy vs CPU latency``) and a ``caption``
    saying what it shows."""

    path: Path
    title: str
    caption: str


@dataclass(frozen=True)
class HardSubject:
    """One test subject of the hardest-subjects table: ``mean`` is the unweighted mean over the
    models of each model's accuracy on the subject (a fraction); ``accuracy[i]`` is the i-th
    ranked model's (None when it never tested the subject); ``images`` the subject's test
    predictions per model (the most any model made)."""

    subject: str
    mean: float
    accuracy: list[float | None]
    images: int


@dataclass(frozen=True)
class BoardPictures:
    """Everything :func:`draw_board` made for one board: the pictures in page order (accuracy
    vs latency, vs parameters, source vs target, per-class F1, per-subject accuracy, each only
    where the runs hold its data), the ranked models the per-subject view covers
    (``subject_models``, in ranking order; the others lack predictions) and their
    :data:`HARDEST` hardest subjects (both empty for a protocol that is not subject-independent)."""

    pictures: list[Picture]
    subject_models: list[str]
    hardest: list[HardSubject]


def draw_board(board: Board, folder: Path) -> BoardPictures:
    """Draw the pictures of the ranked runs of ``board`` (it must have some) into ``folder``:
    ``accuracy_latency.png``, ``accuracy_params.png``, ``source_target.png``,
    ``per_class_f1.png`` and ``per_subject.png``."""
    runs = board.ranked
    metric = runs[0].primary
    name = f"{board.protocol_id}{' (synthetic twin)' if runs[0].synthetic else ''}"
    pictures = []
    latencies, params = [latency_ms(run) for run in runs], [parameters(run) for run in runs]
    if any(value is not None for value in latencies):
        pictures.append(cost_plot(runs, latencies, metric, _latency_label(runs), False, name,
                                  f"{metric} vs CPU latency", folder / "accuracy_latency.png"))
    if any(value is not None for value in params):
        pictures.append(cost_plot(runs, params, metric, "parameters (log scale)", True, name,
                                  f"{metric} vs parameters", folder / "accuracy_params.png"))
    if runs[0].cross_dataset:
        pictures.append(source_target_plot(runs, name, folder / "source_target.png"))
    if any(run.summary.get("confusion") for run in runs):
        pictures.append(per_class_plot(runs, name, folder / "per_class_f1.png"))
    subject_runs = [run for run in runs if run.subject_independent and run.has_predictions]
    counts = [run.subject_correctness() for run in subject_runs]
    if not any(counts):
        return BoardPictures(pictures, [], [])
    pictures.append(per_subject_plot(subject_runs, counts, name, folder / "per_subject.png"))
    return BoardPictures(pictures, [run.model for run in subject_runs], hardest_subjects(counts))


# ----------------------------------------------------------------------------- numbers


def latency_ms(run: RunResult) -> float | None:
    """Median CPU latency of one forward pass (ms) from the run's speed record (batch 1, one
    thread, unless the record says otherwise)."""
    return _cpu_latency(run).get("median_ms")


def _cpu_latency(run: RunResult) -> dict[str, Any]:
    return ((run.summary.get("speed") or {}).get("cpu") or {}).get("latency") or {}


def _latency_label(runs: list[RunResult]) -> str:
    """The latency axis label, with the batch size and threads of the measurements."""
    settings = sorted({(record.get("batch_size", 1), record.get("threads", 1))
                       for record in map(_cpu_latency, runs) if record.get("median_ms") is not None})
    how = "; ".join(f"batch {batch}, {threads} thread{'s' if threads != 1 else ''}" for batch, threads in settings)
    return f"median CPU latency per forward pass (ms; {how})"


def parameters(run: RunResult) -> int | None:
    """The model's parameter count (``summary.json`` ``params``, else the speed record's)."""
    return run.summary.get("params", (run.summary.get("speed") or {}).get("params"))


def pareto_front(costs: list[float], scores: list[float]) -> list[int]:
    """Indices of the points no other point dominates (a cost at most as high and a score at
    least as high, strictly better in one), by ascending cost (then descending score)."""
    points = list(zip(costs, scores))
    front = [i for i, (cost, score) in enumerate(points)
             if not any(c <= cost and s >= score and (c, s) != (cost, score) for c, s in points)]
    return sorted(front, key=lambda i: (costs[i], -scores[i]))


def per_class_f1(confusion: np.ndarray) -> np.ndarray:
    """Each class's F1 from a K x K confusion (counts, rows true): 2 TP / (row + column sum);
    NaN for a class with no test image that was never predicted. Shape (K,)."""
    counts = np.asarray(confusion, dtype=float)
    denominator = counts.sum(axis=0) + counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * np.diagonal(counts) / denominator, np.nan)


def hardest_subjects(counts: list[dict[str, tuple[int, int]]], n: int = HARDEST) -> list[HardSubject]:
    """The ``n`` subjects with the lowest mean accuracy over the models that tested them, ties by
    name; ``counts[i]`` is the i-th model's ``subject -> (correct, predicted)``."""
    subjects = sorted({subject for by_subject in counts for subject in by_subject})
    rows = []
    for subject in subjects:
        accuracy = [c[subject][0] / c[subject][1] if subject in c else None for c in counts]
        rows.append(HardSubject(subject, fmean(a for a in accuracy if a is not None), accuracy,
                                max(c[subject][1] for c in counts if subject in c)))
    return sorted(rows, key=lambda row: (row.mean, row.subject))[:n]


# ----------------------------------------------------------------------------- pictures


def cost_plot(runs: list[RunResult], costs: list[float | None], metric: str, cost_label: str, log: bool,
              name: str, title: str, path: Path) -> Picture:
    """The primary metric (%) of each run with a known cost against it, with the interval as
    error bar, each point labelled with its model, and the Pareto front as a step line."""
    shown = [(run, cost) for run, cost in zip(runs, costs) if cost is not None]
    x = [float(cost) for _, cost in shown]
    y = [run.mean(metric) * 100 for run, _ in shown]
    figure, axes = _figure(7.0, 4.5)
    axes.errorbar(x, y, yerr=_error_bars([run for run, _ in shown], metric), fmt="o", color="tab:blue",
                  ecolor="0.6", capsize=3, label="model (bar: 95% bootstrap interval)")
    front = pareto_front(x, y)
    axes.step([x[i] for i in front], [y[i] for i in front], where="post", color="tab:red", linewidth=1.2,
              label="Pareto front")
    for i, (run, _) in enumerate(shown):
        axes.annotate(run.model, (x[i], y[i]), textcoords="offset points", xytext=(5, 4), fontsize=8,
                      fontweight="bold" if i in front else "normal")
    if log:
        axes.set_xscale("log")
    axes.set_xlabel(cost_label)
    axes.set_ylabel(f"{metric} (%)")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    return _save(figure, axes, name, title, path,
                 f"{metric} (fold mean) against {cost_label}; the Pareto front (no other model is both better "
                 "and cheaper) in red, its models in bold")


def source_target_plot(runs: list[RunResult], name: str, path: Path) -> Picture:
    """In-domain source accuracy against target accuracy (%) per run, on 0-100 axes, with the
    diagonal where the target is as good as the source."""
    shown = [run for run in runs if (run.summary.get("source_metrics") or {}).get("accuracy")]
    x = [run.summary["source_metrics"]["accuracy"]["mean"] * 100 for run in shown]
    y = [run.mean("accuracy") * 100 for run in shown]
    figure, axes = _figure(5.5, 5.0)
    axes.plot([0, 100], [0, 100], linestyle="--", color="0.6", linewidth=1, label="no drop")
    axes.errorbar(x, y, yerr=_error_bars(shown, "accuracy"), fmt="o", color="tab:blue", ecolor="0.6", capsize=3,
                  label="model (bar: 95% bootstrap interval)")
    for run, xi, yi in zip(shown, x, y):
        axes.annotate(run.model, (xi, yi), textcoords="offset points", xytext=(5, 4), fontsize=8)
    axes.set(xlim=(0, 100), ylim=(0, 100), xlabel="source accuracy, in-domain (%)", ylabel="target accuracy (%)")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    return _save(figure, axes, name, "source vs target accuracy", path,
                 "in-domain source accuracy against target accuracy (fold means); below the diagonal a model "
                 "loses accuracy on the target")


def per_class_plot(runs: list[RunResult], name: str, path: Path) -> Picture:
    """Heatmap of :func:`per_class_f1` of each run's summed confusion, models x classes; runs
    without a confusion in their summary are left out (the caption names them)."""
    shown = [run for run in runs if run.summary.get("confusion")]
    classes = list(shown[0].summary["classes"])
    f1 = np.array([per_class_f1(run.summary["confusion"]) for run in shown])
    figure, axes = _figure(2.5 + 0.9 * len(classes), 1.6 + 0.45 * len(shown))
    sns.heatmap(f1, ax=axes, annot=True, fmt=".2f", cmap="Blues", vmin=0.0, vmax=1.0, xticklabels=classes,
                yticklabels=[run.model for run in shown], annot_kws={"fontsize": 8}, cbar_kws={"label": "F1"})
    axes.tick_params(axis="y", labelrotation=0)
    axes.set_xlabel("class")
    missing = [run.model for run in runs if not run.summary.get("confusion")]
    return _save(figure, axes, name, "per-class F1", path,
                 "each class's F1 over every job's test predictions pooled (the summed confusion matrix)"
                 + (f"; no confusion matrix in the summary of {', '.join(missing)}" if missing else ""))


def per_subject_plot(runs: list[RunResult], counts: list[dict[str, tuple[int, int]]], name: str,
                     path: Path) -> Picture:
    """Each model's accuracy (%) on each test subject: a box per model (quartiles, whiskers to
    1.5 IQR), the subjects as dots with a fixed-seed horizontal jitter."""
    accuracy = [[correct / total * 100 for _subject, (correct, total) in sorted(by_subject.items())]
                for by_subject in counts]
    figure, axes = _figure(2.5 + 1.1 * len(runs), 4.5)
    positions = np.arange(1, len(runs) + 1)
    axes.boxplot(accuracy, positions=positions, widths=0.5, showfliers=False,
                 medianprops={"color": "tab:red"})
    jitter = np.random.default_rng(0)
    for position, values in zip(positions, accuracy):
        axes.scatter(position + jitter.uniform(-0.18, 0.18, len(values)), values, s=10, color="tab:blue",
                     alpha=0.6, zorder=3)
    axes.set_xticks(positions, [run.model for run in runs], rotation=20, ha="right")
    axes.set(ylim=(-2, 102), ylabel="accuracy on the subject's test images (%)")
    axes.grid(True, axis="y", alpha=0.3)
    return _save(figure, axes, name, "accuracy per test subject", path,
                 "each model's accuracy on each test subject's images (one dot per subject), from the jobs' "
                 "predictions")


def _error_bars(runs: list[RunResult], metric: str) -> np.ndarray:
    """Shape (2, N): mean minus low and high minus mean of each run's ``fold_mean`` interval (%);
    zero for a run without one."""
    bars = np.zeros((2, len(runs)))
    for i, run in enumerate(runs):
        interval = run.interval("fold_mean", metric)
        if interval:
            mean = run.mean(metric)
            bars[:, i] = [max(mean - interval["low"], 0) * 100, max(interval["high"] - mean, 0) * 100]
    return bars


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure of ``width`` x ``height`` inches on the Agg canvas, with one set of axes."""
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure: Figure, axes: Axes, name: str, title: str, path: Path, caption: str) -> Picture:
    """Title (``<name>: <title>``), lay out and write ``figure`` as a PNG (no software tag, so
    the bytes depend only on the picture); return it as a :class:`Picture`."""
    axes.set_title(f"{name}: {title}", fontsize=10)
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=DPI, metadata={"Software": None})
    return Picture(atomic_write_bytes(path, png.getvalue()), title, caption)
