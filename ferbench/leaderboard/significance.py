"""Paired significance tests between two models, Holm's correction and rank groups.

Pure functions on arrays; nothing here reads a run directory (see
:mod:`ferbench.leaderboard.ranking` for which test a pair of runs gets). Every p-value is
two-sided and tests "the two models are equally good".

- :func:`corrected_resampled_ttest`: per-fold score differences of a cross-validation (k-fold,
  leave-one-subject-out). Folds share most of their training data, so their scores are not
  independent and a plain paired t-test is anti-conservative; Nadeau & Bengio (2003) multiply
  the variance of the mean difference by ``1/k + n_test/n_train`` instead of ``1/k``.
- :func:`mcnemar_exact`: one fixed test set on which each model made exactly one prediction per
  image (an official split, one model trained on all source data, an evaluated checkpoint).
- :func:`paired_bootstrap`: one fixed test set on which a model's per-image score is a fraction
  (the mean correctness of several models, e.g. every fold model of a cross-dataset protocol
  scored on the same target images, or several seeds).
- :func:`holm`: adjusts the p-values of all the comparisons on one page for multiplicity.
- :func:`rank_groups`: rank ranges ("1-3") that only separate models the tests separate.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

# Resampled means farther from the observed one than this (relative) slack below |mean| count as
# "at least as extreme": resampled means of fractions that are equal on paper differ in the last bits.
_BOOTSTRAP_SLACK = 1e-12


def corrected_resampled_ttest(differences: ArrayLike, n_train: ArrayLike, n_test: ArrayLike) -> tuple[float, float]:
    """Nadeau & Bengio's (2003) corrected resampled t-test of per-fold score differences.

    Args:
        differences: shape (k,), k >= 2: model A's score minus model B's on each fold (both
            models trained and tested on the same folds; several seeds already averaged).
        n_train, n_test: the number of training and test samples, one per fold (shape (k,)) or
            one for all folds; the correction uses the mean over folds of ``n_test / n_train``.

    Returns:
        ``(t, p)``: ``t = mean / sqrt((1/k + mean(n_test/n_train)) * s^2)`` with ``s^2`` the
        sample variance (ddof 1) of the differences, and the two-sided p-value of Student's t
        with k - 1 degrees of freedom (``scipy.stats.t``). All differences zero: ``(0.0, 1.0)``;
        equal non-zero differences (``s = 0``): ``(±inf, 0.0)``.

    Assumes the per-fold differences are normally distributed around the true difference, with
    the fold-to-fold correlation that the correction term accounts for.
    """
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or len(d) < 2:
        raise ValueError(f"the corrected t-test needs a 1-D array of at least two fold differences, "
                         f"got shape {d.shape}")
    ratio = np.broadcast_to(np.asarray(n_test, dtype=float) / np.asarray(n_train, dtype=float), d.shape)
    k, mean, variance = len(d), float(d.mean()), float(d.var(ddof=1))
    if variance == 0.0:
        return (0.0, 1.0) if mean == 0.0 else (float(np.copysign(np.inf, mean)), 0.0)
    t = mean / np.sqrt((1 / k + float(ratio.mean())) * variance)
    return float(t), float(2 * stats.t.sf(abs(t), df=k - 1))


def mcnemar_exact(correct_a: ArrayLike, correct_b: ArrayLike) -> float:
    """Exact McNemar test of two models' per-image correctness on one test set.

    Args:
        correct_a, correct_b: shape (n,), booleans: whether model A (B) classified image i correctly.

    Returns:
        The two-sided p-value: of the discordant images (one model right, the other wrong), the
        count where A is right is Binomial(discordant, 1/2) under the null hypothesis
        (``scipy.stats.binomtest``). No discordant image: 1.0.

    Assumes the images are independent draws from the population of test images.
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"McNemar's test needs two 1-D arrays of one length, got shapes {a.shape} and {b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def paired_bootstrap(scores_a: ArrayLike, scores_b: ArrayLike, resamples: int = 10_000, seed: int = 0) -> float:
    """Paired bootstrap test of the difference between two models' mean per-image scores.

    Args:
        scores_a, scores_b: shape (n,), each image's score under model A (B), e.g. the fraction
            of A's fold models that classified it correctly.
        resamples: bootstrap resamples B; seed: the NumPy generator's seed (the p-value is
            reproducible).

    Returns:
        ``(1 + #{b : |mean*_b - mean| >= |mean|}) / (B + 1)``, where ``mean`` is the mean of
        ``d = scores_a - scores_b`` and ``mean*_b`` the mean of ``d`` over n images drawn with
        replacement: the resampled means, shifted to centre 0, stand for the null
        distribution of the mean difference. A mean difference of 0 gives 1.0.

    Assumes the images are independent draws from the population of test images.
    """
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or len(a) == 0:
        raise ValueError(f"the paired bootstrap needs two non-empty 1-D arrays of one length, "
                         f"got shapes {a.shape} and {b.shape}")
    d = a - b
    observed = float(d.mean())
    threshold = abs(observed) * (1 - _BOOTSTRAP_SLACK)
    rng = np.random.default_rng(seed)
    extreme, chunk = 0, max(1, 2_000_000 // len(d))  # resample in chunks of ~2M drawn indices
    for start in range(0, resamples, chunk):
        means = d[rng.integers(len(d), size=(min(chunk, resamples - start), len(d)))].mean(axis=1)
        extreme += int(np.sum(np.abs(means - observed) >= threshold))
    return (1 + extreme) / (resamples + 1)


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Holm's (1979) step-down adjustment of m p-values for the family-wise error rate.

    Sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted value of ``p_(i)`` is
    ``max_{j <= i} min(1, (m - j + 1) * p_(j))``; rejecting where the adjusted p-value is below
    alpha keeps the chance of any false rejection among the m at most alpha. Returns shape (m,)
    in the input order.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"holm needs a 1-D array of p-values, got shape {p.shape}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted


def rank_groups(means: ArrayLike, significant: ArrayLike) -> list[str]:
    """Rank ranges of n models from their means and which pairs a test separates.

    Args:
        means: shape (n,), each model's score (higher is better).
        significant: shape (n, n), symmetric booleans: ``significant[i, j]`` when the test
            separates models i and j (e.g. Holm-adjusted p < 0.05); the diagonal is ignored.

    Returns:
        One label per model, in the input order: model i ranks from ``1 + (models with a higher
        mean that differ significantly from i)`` to ``n - (models with a lower mean that differ
        significantly from i)``; ``"2"`` when both ends agree, ``"1-3"`` otherwise. Models
        that no test separates share one range, all models separated from all others get
        1, 2, ..., n; equal means never separate two models.
    """
    scores = np.asarray(means, dtype=float)
    separated = np.asarray(significant, dtype=bool)
    n = len(scores)
    if scores.ndim != 1 or separated.shape != (n, n):
        raise ValueError(f"rank_groups needs means of shape (n,) and an (n, n) matrix, "
                         f"got {scores.shape} and {separated.shape}")
    if not np.array_equal(separated, separated.T):
        raise ValueError("the matrix of significant pairs must be symmetric")
    labels = []
    for i in range(n):
        better = int(np.sum(separated[i] & (scores > scores[i])))
        worse = int(np.sum(separated[i] & (scores < scores[i])))
        best, worst = 1 + better, n - worse
        labels.append(str(best) if best == worst else f"{best}-{worst}")
    return labels
