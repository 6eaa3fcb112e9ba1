"""The leaderboard's pictures: the Pareto front, per-class F1, the hardest subjects (hand-computed),
and the pictures and tables a protocol page shows for hand-made runs."""

import json
import math

import numpy as np
import pytest
from test_leaderboard import SPEED, make_run, section, tables

from ferbench.errors import DataError
from ferbench.leaderboard import build_boards, find_runs, write_leaderboard
from ferbench.leaderboard.plots import draw_board, hardest_subjects, pareto_front, per_class_f1
from ferbench.report import plot_confusion

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Three folds of 10 test images; in fold k the first five are subject S{2k+1}, the last five S{2k+2}.
# model_a: S1 5/5, S2 0/5, S3 5/5, S4 5/5, S5 3/5, S6 5/5 (fold scores 0.5, 1.0, 0.8)
# model_b: S1 5/5, S2 1/5, S3 0/5, S4 5/5, S5 5/5, S6 5/5 (fold scores 0.6, 0.5, 1.0)
CORRECT_A = [[True] * 5 + [False] * 5, [True] * 10, [True, True, True, False, False] + [True] * 5]
CORRECT_B = [[True] * 5 + [True, False, False, False, False], [False] * 5 + [True] * 5, [True] * 10]
CONFUSION = [[3, 1, 0, 0, 0, 0, 0], [0, 2, 0, 0, 0, 0, 0]] + [[0] * 7] * 4 + [[0, 0, 0, 0, 0, 0, 4]]


def write_subject_predictions(root, correct):
    """Replace seed 0's predictions of each fold with rows naming the subjects described above."""
    for fold, rights in enumerate(correct):
        rows = ["path,subject,true,predicted"]
        rows += [f"f{fold}_{i}.png,S{2 * fold + 1 + i // 5},anger,{'anger' if right else 'happy'}"
                 for i, right in enumerate(rights)]
        (root / "seed0" / f"fold{fold}" / "predictions.csv").write_text("\n".join(rows) + "\n")


def patch_summary(root, **entries):
    summary = json.loads((root / "summary.json").read_text())
    (root / "summary.json").write_text(json.dumps({**summary, **entries}))


def real_confusion_pictures(runs):
    """Replace the hand-made runs' placeholder confusion files with real PNGs."""
    for picture in [*runs.glob("*/*/confusion.png"), *runs.glob("*/*/confusion_target.png")]:
        plot_confusion(np.eye(2, dtype=int), ["anger", "happy"], picture, title=picture.parent.name)


@pytest.fixture
def subject_runs(tmp_path):
    """Two complete runs of a subject-independent protocol with per-subject predictions, confusions,
    intervals and different speeds."""
    runs = tmp_path / "runs"
    a = make_run(runs, "ckplus_7cls_si", "model_a", [0.5, 1.0, 0.8], correct=CORRECT_A)
    b = make_run(runs, "ckplus_7cls_si", "model_b", [0.6, 0.5, 1.0], correct=CORRECT_B)
    write_subject_predictions(a, CORRECT_A)
    write_subject_predictions(b, CORRECT_B)
    intervals = {"resamples": 1000, "seed": 0, "unit": "subject", "stratified": True,
                 "fold_mean": {"accuracy": {"low": 0.6, "high": 0.9}}}
    patch_summary(a, confusion=CONFUSION, intervals=intervals)
    patch_summary(b, confusion=CONFUSION, params=1_000_000,
                  speed={**SPEED, "cpu": {"latency": {"median_ms": 5.0, "batch_size": 1, "threads": 1}}})
    return runs


def test_pareto_front_keeps_the_models_nothing_beats_on_both():
    # (cost, score): (3, 60) is beaten by (2, 70); the two (2, 70) tie and neither beats the other
    costs, scores = [1, 2, 3, 4, 2], [50, 70, 60, 80, 70]
    assert pareto_front(costs, scores) == [0, 1, 4, 3]
    assert pareto_front([5, 1], [90, 90]) == [1]  # as good and cheaper dominates
    assert pareto_front([1], [10]) == [0]


def test_per_class_f1_from_summed_counts():
    # anger: 2*3 / (4 + 3); contempt: 2*2 / (2 + 3); disgust: never true nor predicted
    f1 = per_class_f1([[3, 1, 0], [0, 2, 0], [0, 0, 0]])
    assert f1[:2] == pytest.approx([6 / 7, 0.8]) and math.isnan(f1[2])


def test_hardest_subjects_lowest_mean_then_name():
    counts = [{"S1": (5, 5), "S2": (0, 5), "S3": (5, 5), "S4": (5, 5), "S5": (3, 5), "S6": (5, 5)},
              {"S1": (5, 5), "S2": (1, 5), "S3": (0, 5), "S4": (5, 5), "S5": (5, 5), "S6": (5, 5)}]
    hardest = hardest_subjects(counts)
    # means: S2 0.1, S3 0.5, S5 0.8, then S1, S4, S6 tie at 1.0: by name
    assert [(h.subject, h.mean) for h in hardest] == [("S2", pytest.approx(0.1)), ("S3", 0.5),
                                                      ("S5", pytest.approx(0.8)), ("S1", 1.0), ("S4", 1.0)]
    assert hardest[0].accuracy == [0.0, 0.2] and hardest[0].images == 5
    # a subject one model never tested: the mean of the others
    [only] = hardest_subjects([{"S9": (1, 4)}, {}], n=1)
    assert (only.subject, only.mean, only.accuracy) == ("S9", 0.25, [0.25, None])


def test_subject_counts_come_from_the_predictions(subject_runs):
    [board] = build_boards(find_runs([subject_runs]))
    a, b = board.ranked
    assert a.model == "model_a" and a.subject_independent
    assert a.subject_correctness() == {"S1": (5, 5), "S2": (0, 5), "S3": (5, 5), "S4": (5, 5), "S5": (3, 5),
                                       "S6": (5, 5)}
    assert b.subject_correctness()["S2"] == (1, 5) and b.subject_correctness()["S3"] == (0, 5)


def test_a_protocol_page_shows_the_pictures_and_the_hardest_subjects(subject_runs, tmp_path):
    out = tmp_path / "lb"
    write_leaderboard([subject_runs], out)
    plots = out / "plots" / "ckplus_7cls_si"
    names = ["accuracy_latency.png", "accuracy_params.png", "per_class_f1.png", "per_subject.png"]
    assert sorted(p.name for p in plots.iterdir()) == names
    assert all((plots / name).read_bytes().startswith(PNG_SIGNATURE) for name in names)
    page = (out / "ckplus_7cls_si.md").read_text()
    pictures = section(page, "Pictures")
    for name in names:
        assert f"](plots/ckplus_7cls_si/{name})" in pictures
    assert "### source vs target accuracy" not in pictures  # within one dataset
    [hardest] = tables(pictures)
    assert hardest == [
        {"subject": "S2", "mean accuracy": "10.00", "images": "5", "model_a": "0.00", "model_b": "20.00"},
        {"subject": "S3", "mean accuracy": "50.00", "images": "5", "model_a": "100.00", "model_b": "0.00"},
        {"subject": "S5", "mean accuracy": "80.00", "images": "5", "model_a": "60.00", "model_b": "100.00"},
        {"subject": "S1", "mean accuracy": "100.00", "images": "5", "model_a": "100.00", "model_b": "100.00"},
        {"subject": "S4", "mean accuracy": "100.00", "images": "5", "model_a": "100.00", "model_b": "100.00"}]
    confusions = section(page, "Confusion matrices")
    assert "![model_a](confusion/ckplus_7cls_si/model_a.png)" in confusions
    assert "![model_b](confusion/ckplus_7cls_si/model_b.png)" in confusions


def test_pictures_are_the_same_bytes_for_the_same_runs(subject_runs, tmp_path):
    [board] = build_boards(find_runs([subject_runs]))
    first = draw_board(board, tmp_path / "one")
    second = draw_board(board, tmp_path / "two")
    assert [p.title for p in first.pictures] == ["accuracy vs CPU latency", "accuracy vs parameters",
                                                 "per-class F1", "accuracy per test subject"]
    assert [p.path.read_bytes() for p in first.pictures] == [p.path.read_bytes() for p in second.pictures]


def test_no_per_subject_view_for_a_random_split_or_without_predictions(tmp_path):
    runs = tmp_path / "runs"
    random10 = {"type": "random_kfold", "k": 10, "seed": 0, "stratified": True}
    root = make_run(runs, "ckplus_7cls_random", "model_a", [0.5, 1.0, 0.8], correct=CORRECT_A, split=random10)
    write_subject_predictions(root, CORRECT_A)
    make_run(runs, "ckplus_7cls_si", "model_p", [0.5, 1.0, 0.8], correct=CORRECT_A)
    make_run(runs, "ckplus_7cls_si", "model_q", [0.5, 0.5, 0.5])  # no predictions written
    out = tmp_path / "lb"
    write_leaderboard([runs], out)
    random_page = (out / "ckplus_7cls_random.md").read_text()
    assert "accuracy per test subject" not in random_page and "hardest" not in random_page
    assert not (out / "plots" / "ckplus_7cls_random" / "per_subject.png").exists()
    # no confusion in these summaries: no per-class heatmap
    assert not (out / "plots" / "ckplus_7cls_random" / "per_class_f1.png").exists()
    si_page = (out / "ckplus_7cls_si.md").read_text()
    assert "Not in the per-subject view (a finished job without predictions): model_q." in si_page
    [hardest] = tables(section(si_page, "Pictures"))
    assert list(hardest[0]) == ["subject", "mean accuracy", "images", "model_p"]


def test_a_cross_dataset_page_plots_source_against_target(tmp_path):
    runs = tmp_path / "runs"
    # ten target images t0..t9 of subjects S0..S9, scored by each of the ten fold models:
    # model_x gets t0-t5 right, model_y t0-t4
    make_run(runs, "ckplus_to_jaffe", "model_x", [0.6] * 10, source_scores=[0.9] * 10,
             correct=[[i < 6 for i in range(10)]] * 10)
    make_run(runs, "ckplus_to_jaffe", "model_y", [0.5] * 10, source_scores=[0.8] * 10,
             correct=[[i < 5 for i in range(10)]] * 10)
    [board] = build_boards(find_runs([runs]))
    drawn = draw_board(board, tmp_path / "plots")
    assert [p.title for p in drawn.pictures] == ["accuracy vs CPU latency", "accuracy vs parameters",
                                                 "source vs target accuracy", "accuracy per test subject"]
    assert all(p.path.read_bytes().startswith(PNG_SIGNATURE) for p in drawn.pictures)
    # the target's people were never trained on: S6-S9 wrong for both, S5 right for model_x only
    assert [(h.subject, h.mean, h.images) for h in drawn.hardest] == \
        [("S6", 0.0, 10), ("S7", 0.0, 10), ("S8", 0.0, 10), ("S9", 0.0, 10), ("S5", 0.5, 10)]


def test_predictions_without_a_subject_column_are_named(subject_runs, tmp_path):
    predictions = subject_runs / "ckplus_7cls_si" / "model_b" / "seed0" / "fold1" / "predictions.csv"
    predictions.write_text("path,true,predicted\nf1_0.png,anger,anger\n")
    with pytest.raises(DataError, match=r"model_b/seed0/fold1/predictions.csv: no `subject` column"):
        write_leaderboard([subject_runs], tmp_path / "lb")
