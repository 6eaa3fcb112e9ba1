"""Sorting runs into boards: one per protocol id, one fingerprint ranked, paired tests between neighbours."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ferbench.leaderboard.catalogue import dataset_label
from ferbench.leaderboard.results import RunResult
from ferbench.metrics import paired_significance


@dataclass(frozen=True)
class Board:
    """The runs of one protocol id.

    Only runs of one fingerprint (:func:`chosen_fingerprint`) are ranked: ``ranked`` holds its
    complete runs, best primary-metric mean first; ``incomplete`` its runs with jobs missing;
    ``others`` every run with another fingerprint (a changed protocol, or the synthetic twin
    beside the real data), never ranked. ``versus_next[i]`` is
    :func:`ferbench.metrics.paired_significance` of ``ranked[i]`` against ``ranked[i + 1]``.
    """

    protocol_id: str
    fingerprint: str
    ranked: list[RunResult]
    incomplete: list[RunResult]
    others: list[RunResult]
    versus_next: list[dict[str, Any]]

    @property
    def reference(self) -> RunResult:
        """A run of the chosen fingerprint, whose resolved protocol describes the board."""
        return (self.ranked or self.incomplete)[0]

    def rank_of(self, i: int) -> int:
        """Competition rank of ``ranked[i]``: 1 + the number of runs with a strictly better mean."""
        run = self.ranked[i]
        return 1 + sum(other.mean(run.primary) > run.mean(run.primary) for other in self.ranked)


def build_boards(runs: Iterable[RunResult]) -> list[Board]:
    """One :class:`Board` per protocol id among ``runs``, sorted by id."""
    by_id: dict[str, list[RunResult]] = defaultdict(list)
    for run in runs:
        by_id[run.protocol_id].append(run)
    return [build_board(protocol_id, by_id[protocol_id]) for protocol_id in sorted(by_id)]


def build_board(protocol_id: str, runs: list[RunResult]) -> Board:
    """The :class:`Board` of the (non-empty) runs of one protocol id."""
    fingerprint = chosen_fingerprint(runs)
    chosen = [run for run in runs if run.fingerprint == fingerprint]
    ranked = sorted((run for run in chosen if run.rankable),
                    key=lambda run: (-run.mean(run.primary), run.model, str(run.path)))
    return Board(
        protocol_id=protocol_id,
        fingerprint=fingerprint,
        ranked=ranked,
        incomplete=sorted((run for run in chosen if not run.rankable), key=lambda run: run.model),
        others=sorted((run for run in runs if run.fingerprint != fingerprint),
                      key=lambda run: (run.fingerprint, run.model)),
        versus_next=[compare(a, b) for a, b in zip(ranked, ranked[1:])],
    )


def chosen_fingerprint(runs: list[RunResult]) -> str:
    """The fingerprint shared by most runs; among equally common ones, the one whose newest
    ``summary.json`` is newest."""
    counts = Counter(run.fingerprint for run in runs)
    newest = {fp: max(run.modified for run in runs if run.fingerprint == fp) for fp in counts}
    return max(counts, key=lambda fp: (counts[fp], newest[fp]))


def compare(a: RunResult, b: RunResult) -> dict[str, Any]:
    """Paired test of the primary metric of two runs over the (seed, fold) jobs both finished."""
    metric = a.primary
    scores_a, scores_b = a.job_scores(metric), b.job_scores(metric)
    shared = sorted(scores_a.keys() & scores_b.keys())
    return paired_significance([scores_a[job] for job in shared], [scores_b[job] for job in shared])


def sensitivity_groups(boards: Iterable[Board]) -> dict[str, list[Board]]:
    """Boards with ranked runs grouped by :func:`dataset_label`, keeping only datasets with at
    least two protocols (the variants to compare), each group sorted by protocol id."""
    groups: dict[str, list[Board]] = defaultdict(list)
    for board in boards:
        if board.ranked:
            groups[dataset_label(board.reference.protocol)].append(board)
    return {label: sorted(group, key=lambda b: b.protocol_id)
            for label, group in sorted(groups.items()) if len(group) >= 2}
