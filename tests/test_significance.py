"""The significance tests, Holm's adjustment and rank groups against cases worked out by hand."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from ferbench.leaderboard.significance import (
    corrected_resampled_ttest,
    holm,
    mcnemar_exact,
    paired_bootstrap,
    rank_groups,
)

# Five folds, 80 training and 20 test images each; model A beats B by 1..5 points.
# mean d = 0.03, s^2 = (4 + 1 + 0 + 1 + 4) * 1e-4 / 4 = 2.5e-4, 1/k + n_test/n_train = 0.2 + 0.25 = 0.45,
# t = 0.03 / sqrt(0.45 * 2.5e-4) = 0.03 / 0.0106066 = 2 * sqrt(2).
# Student's t with 4 degrees of freedom: P(|T| <= t) = sin(q) * (1 + cos(q)^2 / 2), tan(q) = t / 2 = sqrt(2),
# so sin(q) = sqrt(2/3), cos(q)^2 = 1/3 and p = 1 - (7/6) * sqrt(2/3) = 0.0474207.
FIVE_FOLDS = [0.01, 0.02, 0.03, 0.04, 0.05]
FIVE_FOLDS_P = 1 - 7 / 6 * math.sqrt(2 / 3)


def test_corrected_ttest_on_five_folds_by_hand():
    t, p = corrected_resampled_ttest(FIVE_FOLDS, 80, 20)
    assert t == pytest.approx(2 * math.sqrt(2), rel=1e-12)
    assert p == pytest.approx(FIVE_FOLDS_P, rel=1e-9)
    assert FIVE_FOLDS_P == pytest.approx(0.0474207, abs=1e-7)
    # the plain paired t-test uses 1/k = 0.2 alone: its t is sqrt(0.45 / 0.2) = 1.5 times larger
    plain = stats.ttest_rel(np.array(FIVE_FOLDS), np.zeros(5))
    assert t == pytest.approx(plain.statistic / 1.5, rel=1e-12)
    assert p > plain.pvalue


def test_corrected_ttest_uses_the_mean_test_to_train_ratio_and_its_sign():
    # per-fold ratios 0.125, 0.375, 0.25, 0.25, 0.25: their mean is 0.25, as above
    t, p = corrected_resampled_ttest(FIVE_FOLDS, [80] * 5, [10, 30, 20, 20, 20])
    assert (t, p) == pytest.approx((2 * math.sqrt(2), FIVE_FOLDS_P), rel=1e-12)
    t_reversed, p_reversed = corrected_resampled_ttest([-d for d in FIVE_FOLDS], 80, 20)
    assert (t_reversed, p_reversed) == pytest.approx((-t, p), rel=1e-12)


def test_corrected_ttest_degenerate_cases():
    assert corrected_resampled_ttest([0.0, 0.0, 0.0], 90, 10) == (0.0, 1.0)
    assert corrected_resampled_ttest([0.02, 0.02, 0.02], 90, 10) == (math.inf, 0.0)
    assert corrected_resampled_ttest([-0.02, -0.02], 90, 10) == (-math.inf, 0.0)
    with pytest.raises(ValueError, match="at least two fold differences"):
        corrected_resampled_ttest([0.05], 90, 10)


def test_mcnemar_exact_by_hand():
    # 5 images both right, 1 only A right, 9 only B right: P(X <= 1 or X >= 9 | n = 10, 1/2)
    # = 2 * (1 + 10) / 2**10 = 22/1024
    a = [True] * 5 + [True] + [False] * 9
    b = [True] * 5 + [False] + [True] * 9
    assert mcnemar_exact(a, b) == pytest.approx(22 / 1024, rel=1e-12)
    assert mcnemar_exact(b, a) == pytest.approx(22 / 1024, rel=1e-12)
    # 6 discordant images, all for A: 2 / 2**6; images both got wrong do not count
    assert mcnemar_exact([True] * 6 + [False] * 4, [False] * 10) == pytest.approx(2 / 64, rel=1e-12)
    assert mcnemar_exact([True, False, True, False], [False, True, True, False]) == 1.0  # 1 vs 1
    assert mcnemar_exact([True, False], [True, False]) == 1.0  # no discordant image
    with pytest.raises(ValueError, match="one length"):
        mcnemar_exact([True, False], [True])


def test_paired_bootstrap_matches_the_exact_bootstrap_distribution():
    # d = (1, 0, 0.5), mean 0.5. All 27 equally likely resamples of 3 images: |mean* - 0.5| >= 0.5
    # only for (1, 1, 1) and (0, 0, 0), so the exact bootstrap p is 2/27.
    d = np.array([1.0, 0.0, 0.5])
    exact = np.mean([abs(d[list(draw)].mean() - 0.5) >= 0.5 - 1e-12
                     for draw in itertools.product(range(3), repeat=3)])
    assert exact == pytest.approx(2 / 27)
    p = paired_bootstrap(d, np.zeros(3), resamples=200_000, seed=1)
    assert p == pytest.approx(2 / 27, abs=0.003)  # standard error of the estimate ~ 0.0006


def test_paired_bootstrap_edge_cases_and_reproducibility():
    a = np.array([1.0, 0.9, 0.2, 0.7, 0.4, 1.0])
    b = np.array([0.8, 0.9, 0.3, 0.5, 0.4, 0.6])
    assert paired_bootstrap(a, b, resamples=999, seed=3) == paired_bootstrap(a, b, resamples=999, seed=3)
    assert paired_bootstrap(a, a, resamples=999) == 1.0  # no difference: every resample is as extreme
    # the same difference on every image: no resample strays from it, p = 1 / (B + 1)
    assert paired_bootstrap(b + 0.1, b, resamples=999) == pytest.approx(1 / 1000)
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap([1.0, 0.0], [1.0])


def test_holm_by_hand():
    # sorted: 0.005 * 4 = 0.02; 0.01 * 3 = 0.03; 0.03 * 2 = 0.06; 0.04 * 1 = 0.04 -> max(0.06, 0.04)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], rel=1e-12)
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.2]) == pytest.approx([0.2])
    assert len(holm([])) == 0


def test_rank_groups_span_the_models_a_test_cannot_separate():
    means = [0.9, 0.8, 0.7, 0.6]
    assert rank_groups(means, np.zeros((4, 4), dtype=bool)) == ["1-4"] * 4
    assert rank_groups(means, ~np.eye(4, dtype=bool)) == ["1", "2", "3", "4"]
    # separated pairs: (A, C), (A, D), (B, D).
    # A: 1 + 0 better, 4 - 2 worse (C, D) -> 1-2.  B: 1 + 0, 4 - 1 (D) -> 1-3.
    # C: 1 + 1 (A), 4 - 0 -> 2-4.                  D: 1 + 2 (A, B), 4 - 0 -> 3-4.
    separated = np.zeros((4, 4), dtype=bool)
    for i, j in [(0, 2), (0, 3), (1, 3)]:
        separated[i, j] = separated[j, i] = True
    assert rank_groups(means, separated) == ["1-2", "1-3", "2-4", "3-4"]
    # the labels follow the input order, not the sorted one
    assert rank_groups([0.6, 0.9, 0.8, 0.7], separated[[3, 0, 1, 2]][:, [3, 0, 1, 2]]) == \
        ["3-4", "1-2", "1-3", "2-4"]


def test_rank_groups_equal_means_never_separate():
    both = np.array([[False, True], [True, False]])
    assert rank_groups([0.8, 0.8], both) == ["1-2", "1-2"]
    with pytest.raises(ValueError, match="symmetric"):
        rank_groups([0.9, 0.8], np.array([[False, True], [False, False]]))
    with pytest.raises(ValueError, match=r"\(n, n\)"):
        rank_groups([0.9, 0.8, 0.7], both)
