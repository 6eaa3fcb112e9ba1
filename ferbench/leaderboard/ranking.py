"""Sorting runs into boards: one per protocol id, one fingerprint ranked, every pair of ranked
runs tested, and rank groups from the tests.

Which test a pair of ranked runs gets (:func:`compare_all`):

- Both **cross-validated** within one dataset (k-fold or leave-one-subject-out, two or more
  folds; not an evaluated checkpoint): the corrected resampled t-test
  (:func:`~ferbench.leaderboard.significance.corrected_resampled_ttest`) of the primary metric
  over the folds both runs finished. Each fold's score is first averaged over the run's seeds
  (seeds of one fold are not independent replicates); ``n_train``/``n_test`` come from
  ``folds.json``. One fingerprint means one set of folds, so the folds pair up by index.
- Otherwise both were scored on **one fixed test set** (one official split, a cross-dataset
  target, an evaluated checkpoint): per-image correctness from the jobs' predictions, matched
  by image path. When each run made exactly one prediction of every shared image, the exact
  McNemar test; when a run made several (every fold model of a cross-dataset protocol scores
  the same target images; several seeds), the paired bootstrap of each image's fraction of
  correct predictions. Both compare accuracy, whatever the primary metric.

All p-values of a board are Holm-adjusted together; a pair is separated when its adjusted
p-value is below :data:`SIGNIFICANCE_LEVEL`, and :func:`~ferbench.leaderboard.significance.rank_groups`
turns the separated pairs into rank ranges.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from statistics import fmean

import numpy as np

from ferbench.leaderboard.catalogue import dataset_label
from ferbench.leaderboard.results import RunResult
from ferbench.leaderboard.significance import (
    corrected_resampled_ttest,
    holm,
    mcnemar_exact,
    paired_bootstrap,
    rank_groups,
)

SIGNIFICANCE_LEVEL = 0.05  # family-wise, over all the pairs of one board (Holm)
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0

CORRECTED_TTEST = "corrected t-test"
MCNEMAR = "McNemar"
BOOTSTRAP = "bootstrap"


@dataclass(frozen=True)
class Comparison:
    """The paired test of a better-ranked run against a worse-ranked one.

    ``test`` is :data:`CORRECTED_TTEST`, :data:`MCNEMAR`, :data:`BOOTSTRAP` or None (nothing to
    test; ``note`` says why). ``n``: the folds or images paired. ``difference``: the mean score
    of the better run minus the worse one's over them (a fraction; accuracy for the per-image
    tests). ``p_value``: the test's two-sided p-value; ``p_adjusted``: Holm-adjusted over the
    board. ``note``: the test's details (folds and n_test/n_train, discordant images, resamples).
    """

    test: str | None
    n: int
    difference: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    note: str = ""

    @property
    def separated(self) -> bool:
        """The adjusted p-value is below :data:`SIGNIFICANCE_LEVEL`."""
        return self.p_adjusted is not None and self.p_adjusted < SIGNIFICANCE_LEVEL


@dataclass(frozen=True)
class Board:
    """The runs of one protocol id.

    Only runs of one fingerprint (:func:`chosen_fingerprint`) are ranked: ``ranked`` holds its
    complete runs, best primary-metric mean first; ``incomplete`` its runs with jobs missing;
    ``others`` every run with another fingerprint (a changed protocol, or the synthetic twin
    beside the real data), never ranked. ``comparisons[(i, j)]`` (i < j) is the paired test of
    ``ranked[i]`` against ``ranked[j]`` (:func:`compare_all`, Holm-adjusted p-values), and
    ``rank_groups[i]`` the rank range of ``ranked[i]`` (``"1"``, ``"2-4"``).
    """

    protocol_id: str
    fingerprint: str
    ranked: list[RunResult]
    incomplete: list[RunResult]
    others: list[RunResult]
    comparisons: dict[tuple[int, int], Comparison]
    rank_groups: list[str]

    @property
    def reference(self) -> RunResult:
        """A run of the chosen fingerprint, whose resolved protocol describes the board."""
        return (self.ranked or self.incomplete)[0]

    @property
    def versus_next(self) -> list[Comparison]:
        """``ranked[i]`` against ``ranked[i + 1]``, for each i."""
        return [self.comparisons[(i, i + 1)] for i in range(len(self.ranked) - 1)]

    @property
    def tested(self) -> int:
        """The number of comparisons the Holm adjustment covers."""
        return sum(c.p_value is not None for c in self.comparisons.values())


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
    comparisons = compare_all(ranked)
    separated = np.zeros((len(ranked), len(ranked)), dtype=bool)
    for (i, j), comparison in comparisons.items():
        separated[i, j] = separated[j, i] = comparison.separated
    return Board(
        protocol_id=protocol_id,
        fingerprint=fingerprint,
        ranked=ranked,
        incomplete=sorted((run for run in chosen if not run.rankable), key=lambda run: run.model),
        others=sorted((run for run in runs if run.fingerprint != fingerprint),
                      key=lambda run: (run.fingerprint, run.model)),
        comparisons=comparisons,
        rank_groups=rank_groups([run.mean(run.primary) for run in ranked], separated),
    )


def chosen_fingerprint(runs: list[RunResult]) -> str:
    """The fingerprint shared by most runs; among equally common ones, the one whose newest
    ``summary.json`` is newest."""
    counts = Counter(run.fingerprint for run in runs)
    newest = {fp: max(run.modified for run in runs if run.fingerprint == fp) for fp in counts}
    return max(counts, key=lambda fp: (counts[fp], newest[fp]))


def compare_all(ranked: list[RunResult]) -> dict[tuple[int, int], Comparison]:
    """The paired test of every pair ``(i, j)``, i < j, of ``ranked`` (see the module docstring
    for which), the p-values Holm-adjusted over all the pairs that were tested. Predictions are
    read only for the runs of a per-image pair."""
    folds = [fold_scores(run) for run in ranked]
    sizes = [run.fold_sizes() if scores else None for run, scores in zip(ranked, folds)]
    pairs = [(i, j) for i in range(len(ranked)) for j in range(i + 1, len(ranked))]
    per_image = {k for i, j in pairs if not (folds[i] and folds[j]) for k in (i, j)}
    images = {k: ranked[k].image_correctness() for k in per_image}
    raw = {(i, j): compare_folds(folds[i], folds[j], sizes[i]) if folds[i] and folds[j]
           else compare_images(images[i], images[j]) for i, j in pairs}
    tested = [pair for pair, comparison in raw.items() if comparison.p_value is not None]
    adjusted = holm([raw[pair].p_value for pair in tested])
    return raw | {pair: replace(raw[pair], p_adjusted=float(p)) for pair, p in zip(tested, adjusted)}


def fold_scores(run: RunResult) -> dict[int, float] | None:
    """``fold -> primary metric averaged over the run's seeds``, for a run cross-validated within
    one dataset on two or more folds; None for any other run (it is compared per image)."""
    if run.cross_dataset or run.summary.get("evaluated"):
        return None
    by_fold: dict[int, list[float]] = defaultdict(list)
    for (_seed, fold), score in run.job_scores(run.primary).items():
        by_fold[fold].append(score)
    return {fold: fmean(scores) for fold, scores in sorted(by_fold.items())} if len(by_fold) >= 2 else None


def compare_folds(scores_a: dict[int, float], scores_b: dict[int, float],
                  sizes: dict[int, tuple[int, int]]) -> Comparison:
    """Corrected resampled t-test of two runs' :func:`fold_scores` over the folds both finished;
    ``sizes`` is ``fold -> (n_train, n_test)`` (:meth:`RunResult.fold_sizes`)."""
    shared = sorted(scores_a.keys() & scores_b.keys())
    if len(shared) < 2:
        return Comparison(None, len(shared), note="fewer than two folds finished by both")
    differences = [scores_a[k] - scores_b[k] for k in shared]
    n_train, n_test = [sizes[k][0] for k in shared], [sizes[k][1] for k in shared]
    _t, p = corrected_resampled_ttest(differences, n_train, n_test)
    ratio = fmean(test / train for train, test in zip(n_train, n_test))
    return Comparison(CORRECTED_TTEST, len(shared), fmean(differences), p,
                      note=f"k={len(shared)}, n_test/n_train={ratio:.3f}")


def compare_images(correct_a: dict[str, list[bool]], correct_b: dict[str, list[bool]]) -> Comparison:
    """Per-image test of two runs' :meth:`RunResult.image_correctness` over the images both
    predicted, in path order: exact McNemar when each made one prediction per image, else the
    paired bootstrap of each image's fraction of correct predictions."""
    shared = sorted(correct_a.keys() & correct_b.keys())
    if not shared:
        return Comparison(None, 0, note="no test image predicted by both")
    if all(len(correct_a[path]) == len(correct_b[path]) == 1 for path in shared):
        a = np.array([correct_a[path][0] for path in shared])
        b = np.array([correct_b[path][0] for path in shared])
        return Comparison(MCNEMAR, len(shared), float(a.mean() - b.mean()), mcnemar_exact(a, b),
                          note=f"discordant {int(np.sum(a & ~b))} vs {int(np.sum(~a & b))}")
    scores_a = np.array([fmean(correct_a[path]) for path in shared])
    scores_b = np.array([fmean(correct_b[path]) for path in shared])
    return Comparison(BOOTSTRAP, len(shared), float(scores_a.mean() - scores_b.mean()),
                      paired_bootstrap(scores_a, scores_b, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED),
                      note=f"{BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}")


def sensitivity_groups(boards: Iterable[Board]) -> dict[str, list[Board]]:
    """Boards with ranked runs grouped by :func:`dataset_label`, keeping only datasets with at
    least two protocols (the variants to compare), each group sorted by protocol id."""
    groups: dict[str, list[Board]] = defaultdict(list)
    for board in boards:
        if board.ranked:
            groups[dataset_label(board.reference.protocol)].append(board)
    return {label: sorted(group, key=lambda b: b.protocol_id)
            for label, group in sorted(groups.items()) if len(group) >= 2}
