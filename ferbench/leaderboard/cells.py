"""Table cells of the leaderboard pages: one run's numbers, its paper's number and a pairwise
test, each formatted as the text a markdown table shows (percentages as in
:mod:`~ferbench.leaderboard.pages`: mean ± sample standard deviation, 95% interval in brackets)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tabulate import tabulate

import ferbench
from ferbench.intervals import binomial_interval
from ferbench.leaderboard.ranking import Comparison
from ferbench.leaderboard.results import RunResult
from ferbench.metrics import RankingMetric
from ferbench.report import format_mean_std

METRIC_NAMES: dict[RankingMetric, str] = {"accuracy": "accuracy", "macro_f1": "macro-F1", "uar": "UAR"}
AGGREGATION_NAMES = {"fold_mean": "fold mean", "pooled": "pooled", "single_split": "one split"}


def made_with(runs: Iterable[RunResult]) -> str:
    versions = sorted({run.ferbench_version or "unknown" for run in runs}) or ["-"]
    return f"**Runs made with:** ferbench {', '.join(versions)} (pages by ferbench {ferbench.__version__})"


def table(rows: list[list[str]], headers: list[str]) -> str:
    """A GitHub-markdown table; cells are shown exactly as given (no number re-formatting)."""
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def label(text: str, synthetic: bool) -> str:
    return f"{text} (synthetic)" if synthetic else text


def mean_std(run: RunResult, metric: str) -> str:
    entry = run.summary.get("metrics", {}).get(metric)
    return format_mean_std(entry) if entry else "-"


def with_interval(number: str, interval: dict[str, float] | None) -> str:
    """``85.50 ± 3.03 [83.10, 87.90]``: a number with its 95% interval (percent), when there is one."""
    return f"{number} [{interval['low'] * 100:.2f}, {interval['high'] * 100:.2f}]" if interval else number


def scores(run: RunResult) -> list[str]:
    """Within a dataset: accuracy, macro-F1, UAR (fold means), then the same three pooled. Across
    datasets: source and target accuracy, the drop, the target macro-F1 and UAR, then the three
    pooled target numbers. Each with its 95% interval where the summary has one."""
    fold_mean = {m: with_interval(mean_std(run, m), run.interval("fold_mean", m)) for m in METRIC_NAMES}
    pooled = [with_interval(f"{value * 100:.2f}", run.interval("pooled", m)) if value is not None else "-"
              for m, value in ((m, run.pooled(m)) for m in METRIC_NAMES)]
    own = [fold_mean["macro_f1"], fold_mean["uar"]]
    if not run.cross_dataset:
        return [fold_mean["accuracy"], *own, *pooled]
    source = run.summary.get("source_metrics", {}).get("accuracy")
    drop = run.summary.get("drop")
    return [format_mean_std(source) if source else "-", fold_mean["accuracy"],
            f"{drop['drop'] * 100:.2f}" if drop else "-", *own, *pooled]


def jobs_done(run: RunResult) -> str:
    return f"{run.summary.get('jobs_done', 0)}/{run.summary.get('jobs_total', '?')}"


def folds_seeds(run: RunResult) -> str:
    seeds = len(run.summary.get("seeds") or [0])
    return f"{run.summary['jobs_total'] // seeds} × {seeds}"


def size_speed(run: RunResult) -> list[str]:
    """Parameters, MiB, MACs (K/M/G = 10^3/10^6/10^9) and single-thread CPU median latency."""
    speed = run.summary.get("speed") or {}
    params = run.summary.get("params", speed.get("params"))
    latency = ((speed.get("cpu") or {}).get("latency") or {}).get("median_ms")
    return [f"{params:,}" if params is not None else "-",
            f"{speed['size_mb']:.2f}" if speed.get("size_mb") is not None else "-",
            si(speed["macs"]) if speed.get("macs") is not None else "-",
            f"{latency:.2f}" if latency is not None else "-"]


def si(count: int) -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if count >= factor:
            return f"{count / factor:.1f}{suffix}"
    return str(count)


def paper(run: RunResult) -> list[str]:
    """The paper's number for the primary metric (percent) and ours minus it (points), ours
    aggregated as the paper's: ``fold_mean`` our mean over jobs, ``pooled`` our pooled number;
    ``single_split``: no difference, our range over folds and mean instead."""
    entry = next((r for r in run.summary.get("reported", []) if r.get("metric") == run.primary), None)
    if entry is None or run.mean(run.primary) is None:
        return ["-", "-"]
    aggregation = entry.get("aggregation")
    if aggregation == "single_split":
        values = [v * 100 for v in run.summary["metrics"][run.primary]["values"]]
        return [paper_number(entry), f"paper: one split; ours {min(values):.2f}–{max(values):.2f} over "
                                      f"folds, mean {run.mean(run.primary) * 100:.2f}"]
    ours = {"fold_mean": run.mean(run.primary), "pooled": run.pooled(run.primary)}.get(aggregation)
    return [paper_number(entry), f"{ours * 100 - entry['value']:+.2f}" if ours is not None else "-"]


def paper_number(entry: dict[str, Any]) -> str:
    """``97.41 (pooled, 903/927)``; a one-split count also gets its 95% binomial interval."""
    how = AGGREGATION_NAMES.get(entry.get("aggregation"), "aggregation not stated")
    if entry.get("total"):
        how += f", {entry['correct']}/{entry['total']}"
        if entry.get("aggregation") == "single_split":
            how += with_interval("", binomial_interval(entry["correct"], entry["total"]))
    return f"{entry['value']:.2f} ({how})"


def significance(comparison: Comparison) -> str:
    """The Holm-adjusted p-value, * when the pair is separated, and the number of pairs."""
    if comparison.p_adjusted is None:
        return f"not tested ({comparison.note})"
    return f"p={comparison.p_adjusted:.3g}{' *' if comparison.separated else ''} (n={comparison.n})"


def deviations(run: RunResult) -> str:
    """``--epochs`` and the like; a ``ferbench evaluate`` run says it tested a given checkpoint."""
    deviations = [f"{key}={value}" for key, value in sorted((run.summary.get("deviations") or {}).items())]
    if run.summary.get("evaluated"):
        deviations.insert(0, "evaluated checkpoint (all test images pooled, not trained here)")
    return ", ".join(deviations) or "-"
