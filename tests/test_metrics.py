"""Metrics against confusion matrices worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from ferbench.metrics import (
    aggregate,
    cross_dataset_drop,
    fold_metrics,
    row_normalise,
    scores_from_confusions,
)

CLASSES = ["anger", "happy", "sadness"]
# 10 images: 4 anger, 3 happy, 3 sadness.
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 0, 0, 1, 1, 1, 0, 2, 2, 0])
# Confusion (rows true, columns predicted):
#            anger happy sadness   support
#   anger      3     1     0         4
#   happy      1     2     0         3
#   sadness    1     0     2         3
#   predicted  5     3     2
# accuracy = (3 + 2 + 2) / 10 = 0.7
# precision = TP / column: anger 3/5, happy 2/3, sadness 2/2 = 1
# recall    = TP / row:    anger 3/4, happy 2/3, sadness 2/3
# F1 = 2TP / (2TP + FP + FN): anger 6/9 = 2/3, happy 4/6 = 2/3, sadness 4/5
# macro F1    = (2/3 + 2/3 + 4/5) / 3 = 32/45
# weighted F1 = (4 * 2/3 + 3 * 2/3 + 3 * 4/5) / 10 = 53/75
# UAR         = (3/4 + 2/3 + 2/3) / 3 = 25/36


def test_fold_metrics_match_the_hand_computed_three_class_case():
    m = fold_metrics(Y_TRUE, Y_PRED, CLASSES)
    assert m["confusion"] == [[3, 1, 0], [1, 2, 0], [1, 0, 2]]
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["macro_f1"] == pytest.approx(32 / 45)
    assert m["weighted_f1"] == pytest.approx(53 / 75)
    assert m["uar"] == pytest.approx(25 / 36)
    assert m["n"] == 10
    assert m["classes"] == CLASSES
    assert m["absent_classes"] == []
    expected = {
        "anger": (3 / 5, 3 / 4, 2 / 3, 4),
        "happy": (2 / 3, 2 / 3, 2 / 3, 3),
        "sadness": (1.0, 2 / 3, 4 / 5, 3),
    }
    for label, (precision, recall, f1, support) in expected.items():
        got = m["per_class"][label]
        assert got["precision"] == pytest.approx(precision)
        assert got["recall"] == pytest.approx(recall)
        assert got["f1"] == pytest.approx(f1)
        assert got["support"] == support


def test_a_class_absent_from_the_fold_keeps_its_row_and_leaves_uar_and_macro_f1():
    # "surprise" (index 3) is neither true nor predicted in this fold.
    m = fold_metrics(Y_TRUE, Y_PRED, CLASSES + ["surprise"])
    assert m["confusion"] == [[3, 1, 0, 0], [1, 2, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert m["per_class"]["surprise"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["uar"] == pytest.approx(25 / 36)
    assert m["macro_f1"] == pytest.approx(32 / 45)
    assert m["weighted_f1"] == pytest.approx(53 / 75)
    assert m["absent_classes"] == ["surprise"]


def test_a_class_predicted_but_absent_is_left_out_of_macro_f1_and_uar():
    # DeRL fold 10 has no fear: one sadness image predicted as surprise, the absent class.
    # true 0 0 1 2, predicted 0 0 1 3.
    classes = ["anger", "happy", "sadness", "surprise"]
    m = fold_metrics(np.array([0, 0, 1, 2]), np.array([0, 0, 1, 3]), classes)
    assert m["absent_classes"] == ["surprise"]
    # recall: anger 1, happy 1, sadness 0 -> UAR over the 3 present classes = 2/3
    assert m["uar"] == pytest.approx(2 / 3)
    # F1 over the present classes: anger 1, happy 1, sadness 0 -> 2/3 (the wrong surprise
    # prediction still costs sadness its recall)
    assert m["macro_f1"] == pytest.approx(2 / 3)
    assert m["per_class"]["surprise"]["f1"] == 0.0
    assert m["per_class"]["surprise"]["precision"] == 0.0
    assert m["per_class"]["sadness"]["precision"] == 0.0  # never predicted: 0/0 -> 0
    assert m["confusion"][2] == [0, 0, 0, 1]


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        (np.array([0, 1]), np.array([0]), "one length"),
        (np.array([0, 3]), np.array([0, 1]), "outside 0..2"),
        (np.array([0.0, 1.0]), np.array([0, 1]), "integer class indices"),
        (np.array([], dtype=int), np.array([], dtype=int), "non-empty"),
    ],
)
def test_fold_metrics_rejects_bad_labels(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        fold_metrics(y_true, y_pred, CLASSES)


def test_aggregate_gives_mean_sample_std_summed_confusion_and_pooled_metrics():
    folds_true = [np.array([0, 1, 2, 2]), np.array([0, 0, 1, 2]), np.array([1, 1, 2, 0])]
    folds_pred = [np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2]), np.array([1, 0, 0, 0])]
    folds = [fold_metrics(t, p, CLASSES) for t, p in zip(folds_true, folds_pred)]
    summary = aggregate(folds)

    # fold accuracies 4/4, 3/4, 2/4: mean 0.75, sample variance ((.25)^2 + 0 + (.25)^2) / 2
    assert summary["accuracy"]["values"] == pytest.approx([1.0, 0.75, 0.5])
    assert summary["accuracy"]["mean"] == pytest.approx(0.75)
    assert summary["accuracy"]["std"] == pytest.approx(0.25)
    assert summary["n_folds"] == 3
    assert summary["classes"] == CLASSES
    assert summary["confusion"] == [[3, 1, 0], [1, 3, 0], [1, 0, 3]]

    pooled = fold_metrics(np.concatenate(folds_true), np.concatenate(folds_pred), CLASSES)
    assert summary["pooled"] == pooled
    assert pooled["accuracy"] == pytest.approx(9 / 12)


def test_pooled_macro_f1_and_uar_use_every_class_that_a_fold_lacks():
    # fold 0 has no sadness, fold 1 no anger; pooled, all three classes are present
    fold0 = fold_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), CLASSES)
    fold1 = fold_metrics(np.array([1, 2, 2, 2]), np.array([1, 2, 2, 0]), CLASSES)
    assert (fold0["absent_classes"], fold1["absent_classes"]) == (["sadness"], ["anger"])
    # fold 0 recall: anger 1/2, happy 2/2 -> UAR 3/4; F1: anger 2/3, happy 4/5 -> 11/15
    assert (fold0["uar"], fold0["macro_f1"]) == (pytest.approx(3 / 4), pytest.approx(11 / 15))
    # fold 1 recall: happy 1/1, sadness 2/3 -> 5/6; F1: happy 1, sadness 4/5 -> 9/10
    # (the wrong "anger" prediction is a false positive of an absent class: not averaged)
    assert (fold1["uar"], fold1["macro_f1"]) == (pytest.approx(5 / 6), pytest.approx(9 / 10))
    summary = aggregate([fold0, fold1])
    assert summary["uar"]["mean"] == pytest.approx((3 / 4 + 5 / 6) / 2)
    # pooled confusion [[1, 1, 0], [0, 3, 0], [1, 0, 2]]: recall 1/2, 1, 2/3 -> UAR 13/18;
    # F1 anger 2/4, happy 6/7, sadness 4/5 -> (1/2 + 6/7 + 4/5) / 3
    pooled = summary["pooled"]
    assert pooled["confusion"] == [[1, 1, 0], [0, 3, 0], [1, 0, 2]]
    assert pooled["absent_classes"] == []
    assert pooled["uar"] == pytest.approx(13 / 18)
    assert pooled["macro_f1"] == pytest.approx((1 / 2 + 6 / 7 + 4 / 5) / 3)


def test_scores_from_confusions_agree_with_fold_metrics():
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c", "d", "e"]
    cases = [(rng.integers(0, 3, 30), rng.integers(0, 5, 30)) for _ in range(20)]  # d, e absent
    cases += [(Y_TRUE, Y_PRED)]
    expected = [fold_metrics(t, p, classes) for t, p in cases]
    stacked = np.array([m["confusion"] for m in expected])  # (21, 5, 5) at once
    got = scores_from_confusions(stacked)
    for name in ("accuracy", "macro_f1", "weighted_f1", "uar"):
        np.testing.assert_allclose(got[name], [m[name] for m in expected], err_msg=name)
    assert np.isnan(scores_from_confusions(np.zeros((3, 3)))["accuracy"])  # no image: no number


def test_aggregate_of_one_fold_has_zero_std():
    summary = aggregate([fold_metrics(Y_TRUE, Y_PRED, CLASSES)])
    uar = pytest.approx(25 / 36)
    assert summary["uar"] == {"mean": uar, "std": 0.0, "values": [uar]}


def test_aggregate_refuses_folds_with_different_class_sets():
    a = fold_metrics(Y_TRUE, Y_PRED, CLASSES)
    b = fold_metrics(Y_TRUE, Y_PRED, ["anger", "happy", "surprise"])
    with pytest.raises(ValueError, match="fold result 1"):
        aggregate([a, b])


def test_row_normalise_makes_rows_sum_to_one_and_keeps_zero_rows_zero():
    rows = row_normalise([[3, 1, 0], [0, 0, 0], [1, 1, 2]])
    np.testing.assert_allclose(rows, [[0.75, 0.25, 0.0], [0.0, 0.0, 0.0], [0.25, 0.25, 0.5]])


def test_cross_dataset_drop_reads_means_or_plain_values():
    source = {"accuracy": {"mean": 0.95, "std": 0.02, "values": [0.93, 0.97]}}
    target = {"accuracy": 0.55}
    assert cross_dataset_drop(source, target) == {
        "metric": "accuracy", "source": 0.95, "target": 0.55, "drop": pytest.approx(0.40),
    }
    with pytest.raises(KeyError, match="uar"):
        cross_dataset_drop(source, target, metric="uar")
