"""Cluster-bootstrap intervals against distributions enumerated by hand, and their properties."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ferbench.errors import DataError
from ferbench.intervals import (
    binomial_interval,
    bootstrap_intervals,
    resample_weights,
    unit_counts,
)
from ferbench.metrics import aggregate, fold_metrics
from ferbench.runs import RunDir
from ferbench.runs.summary import run_intervals

CLASSES = ["anger", "happy"]


def table(rows):
    """A predictions table from (subject, true, predicted) rows; paths are made unique."""
    return pd.DataFrame({
        "path": [f"img{i}.png" for i in range(len(rows))],
        "subject": [subject for subject, _, _ in rows],
        "true": [true for _, true, _ in rows],
        "predicted": [pred for _, _, pred in rows],
    })


def subject_rows(subject, correct, wrong):
    """``correct`` images of ``subject`` predicted right, ``wrong`` predicted wrong (all anger)."""
    return [(subject, "anger", "anger")] * correct + [(subject, "anger", "happy")] * wrong


def population_percentiles(outcomes, level=0.95):
    """The percentile interval of an enumerated, equally likely list of statistic values: for
    each tail q the smallest value whose cumulative probability reaches q."""
    values, counts = np.unique(np.asarray(outcomes, dtype=float), return_counts=True)
    cdf = np.cumsum(counts) / len(outcomes)
    return tuple(values[np.searchsorted(cdf, q)] for q in ((1 - level) / 2, (1 + level) / 2))


def test_pooled_interval_is_the_percentile_interval_of_the_enumerated_bootstrap():
    # four subjects (correct, wrong): a resample draws 4 subjects with replacement, and its
    # accuracy is sum correct / sum images of the drawn subjects
    sizes = {"s1": (1, 0), "s2": (1, 1), "s3": (0, 3), "s4": (2, 1)}
    rows = [row for subject, (c, w) in sizes.items() for row in subject_rows(subject, c, w)]
    data = unit_counts({(0, 0): table(rows)}, CLASSES)
    assert data.unit == "subject" and data.units == ["s1", "s2", "s3", "s4"]
    outcomes = [sum(sizes[s][0] for s in draw) / sum(sum(sizes[s]) for s in draw)
                for draw in itertools.product(sizes, repeat=4)]  # 256 equally likely draws
    # P(acc <= 1/11) = 5/256 < 2.5% <= P(acc <= 0.1) = 9/256; P(acc < 0.8) = 247/256 < 97.5%
    assert population_percentiles(outcomes) == (0.1, 0.8)
    result = bootstrap_intervals(data, resamples=20_000, seed=3)
    assert result["pooled"]["accuracy"] == {"low": pytest.approx(0.1), "high": pytest.approx(0.8)}
    assert (result["unit"], result["units"], result["resamples"], result["seed"], result["level"]) == \
        ("subject", 4, 20_000, 3, 0.95)


def test_fold_mean_resamples_within_each_fold():
    # fold 0: a (2/2 correct), b (0/2): fold accuracy 1, 1/2 or 0 with probabilities 1/4, 1/2, 1/4.
    # fold 1: c (1/1), d (1/1): always 1. Fold mean (x + 1) / 2 is 1, 0.75 or 0.5.
    fold0 = subject_rows("a", 2, 0) + subject_rows("b", 0, 2)
    fold1 = subject_rows("c", 1, 0) + subject_rows("d", 1, 0)
    data = unit_counts({(0, 0): table(fold0), (0, 1): table(fold1)}, CLASSES)
    result = bootstrap_intervals(data, resamples=4000, seed=0)
    assert result["stratified"] is True
    interval = result["fold_mean"]["accuracy"]
    assert (interval["low"], interval["high"]) == (0.5, 1.0)
    # stratified: every resample draws two units in each fold, never four from one fold
    weights = resample_weights(data.strata(), 4, 50, seed=0)
    by_unit = dict(zip(data.units, weights.T))
    assert np.all(by_unit["a"] + by_unit["b"] == 2) and np.all(by_unit["c"] + by_unit["d"] == 2)


def test_leave_one_subject_out_resamples_subjects_across_folds():
    # one subject per fold (LOSO): drawing within each fold would always redraw the same subject
    # (a zero-width interval); all subjects are drawn together. Subjects a, b right, c wrong:
    # fold-mean accuracy is the share of right subjects among the draws (jobs without a draw skipped).
    folds = {(0, k): table(subject_rows(s, *counts)) for k, (s, counts) in
             enumerate([("a", (2, 0)), ("b", (2, 0)), ("c", (0, 2))])}
    data = unit_counts(folds, CLASSES)
    assert data.strata() is None
    result = bootstrap_intervals(data, resamples=4000, seed=0)
    assert result["stratified"] is False
    assert (result["fold_mean"]["accuracy"]["low"], result["fold_mean"]["accuracy"]["high"]) == (0.0, 1.0)


def test_weights_are_seeded_and_recorded():
    a = resample_weights(None, 5, 10, seed=7)
    assert a.shape == (10, 5) and np.all(a.sum(axis=1) == 5)
    np.testing.assert_array_equal(a, resample_weights(None, 5, 10, seed=7))
    assert not np.array_equal(a, resample_weights(None, 5, 10, seed=8))


def test_clustering_by_subject_widens_the_interval_of_homogeneous_subjects():
    # 20 subjects of 10 images each, every subject all right (14) or all wrong (6): the images of
    # one subject carry one piece of evidence, not ten
    rows = [row for s in range(20) for row in subject_rows(f"s{s}", 10 * (s < 14), 10 * (s >= 14))]
    by_subject = bootstrap_intervals(unit_counts({(0, 0): table(rows)}, CLASSES))
    anonymous = table(rows).assign(subject="")
    by_image = bootstrap_intervals(unit_counts({(0, 0): anonymous}, CLASSES))
    assert (by_subject["unit"], by_image["unit"], by_image["units"]) == ("subject", "image", 200)

    def width(result):
        return result["pooled"]["accuracy"]["high"] - result["pooled"]["accuracy"]["low"]

    # binomial standard errors: sqrt(.7 * .3 / 20) = 0.102 vs sqrt(.7 * .3 / 200) = 0.032
    assert width(by_subject) > 2.5 * width(by_image)
    for result in (by_subject, by_image):
        assert result["pooled"]["accuracy"]["low"] < 0.7 < result["pooled"]["accuracy"]["high"]


def random_run(rng, folds=10, subjects_per_fold=12, images=150, classes=("a", "b", "c", "d", "e", "f", "g")):
    """Predictions of a subject-independent run: 80% right, subjects unique to their fold."""
    tables, results = {}, []
    for fold in range(folds):
        true = rng.integers(0, len(classes), images)
        pred = np.where(rng.random(images) < 0.8, true, rng.integers(0, len(classes), images))
        tables[(0, fold)] = pd.DataFrame({
            "path": [f"f{fold}/{i}.png" for i in range(images)],
            "subject": [f"S{fold}_{i % subjects_per_fold}" for i in range(images)],
            "true": [classes[i] for i in true], "predicted": [classes[i] for i in pred]})
        results.append(fold_metrics(true, pred, classes))
    return tables, aggregate(results), list(classes)


def test_intervals_contain_the_summary_numbers_and_take_under_a_second():
    tables, summary, classes = random_run(np.random.default_rng(1))  # 1,500 images, 120 subjects
    start = time.perf_counter()
    result = bootstrap_intervals(unit_counts(tables, classes))
    assert time.perf_counter() - start < 1.0
    assert (result["units"], result["stratified"]) == (120, True)
    for metric in ("accuracy", "macro_f1", "weighted_f1", "uar"):
        fold_mean, pooled = result["fold_mean"][metric], result["pooled"][metric]
        assert fold_mean["low"] < summary[metric]["mean"] < fold_mean["high"], metric
        assert pooled["low"] < summary["pooled"][metric] < pooled["high"], metric


def test_every_seed_shares_one_draw_of_subjects():
    tables, _, classes = random_run(np.random.default_rng(2), folds=3, images=40)
    one_seed = bootstrap_intervals(unit_counts(tables, classes))
    # a second seed with identical predictions: the seed-averaged statistic is unchanged per draw
    two_seeds = {**tables, **{(1, fold): t for (_, fold), t in tables.items()}}
    both = bootstrap_intervals(unit_counts(two_seeds, classes))
    # (independent draws per seed would average out and narrow the interval)
    for kind in ("fold_mean", "pooled"):
        for metric, interval in one_seed[kind].items():
            assert both[kind][metric] == pytest.approx(interval), (kind, metric)


def test_a_target_tested_by_every_fold_model_is_resampled_as_a_whole():
    rows = subject_rows("t1", 3, 1) + subject_rows("t2", 1, 1)
    data = unit_counts({(0, 0): table(rows), (0, 1): table(rows)}, CLASSES)
    assert data.strata() is None
    assert bootstrap_intervals(data, resamples=50)["stratified"] is False


def write_job(run, seed, fold, frame, name="predictions.csv"):
    job = run.job_dir(seed, fold)
    job.mkdir(parents=True, exist_ok=True)
    frame.to_csv(job / name, index=False)


def test_run_intervals_read_the_jobs_predictions(tmp_path):
    run = RunDir(tmp_path / "run")
    rows = subject_rows("s1", 3, 1) + subject_rows("s2", 2, 2)
    write_job(run, 0, 0, table(rows).assign(subject=""), "predictions_target.csv")  # no subjects
    result = run_intervals(run, [(0, 0)], "target", CLASSES, resamples=200, seed=5)
    assert (result["unit"], result["units"], result["seed"], result["resamples"]) == ("image", 8, 5, 200)
    assert run_intervals(run, [(0, 0)], "target", CLASSES, resamples=200, seed=5) == result
    with pytest.raises(DataError, match="predictions.csv: missing"):
        run_intervals(run, [(0, 0)], "test", CLASSES)
    write_job(run, 0, 1, table([("s3", "anger", "fear")]))
    with pytest.raises(DataError, match=r"\['fear'\] are not the protocol's"):
        run_intervals(run, [(0, 1)], "test", CLASSES)


def test_binomial_interval_is_clopper_pearson():
    # exact limits from the beta distribution: Beta(a/2; k, n-k+1) and Beta(1-a/2; k+1, n-k)
    got = binomial_interval(40, 42)
    assert got["low"] == pytest.approx(stats.beta.ppf(0.025, 40, 3))
    assert got["high"] == pytest.approx(stats.beta.ppf(0.975, 41, 2))
    assert got["low"] == pytest.approx(0.8384, abs=1e-4) and got["high"] == pytest.approx(0.9942, abs=1e-4)
    assert binomial_interval(42, 42)["high"] == 1.0
