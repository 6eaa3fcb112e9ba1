"""The leaderboard: ranking, labels and paired tests on hand-made run directories, the protocol
catalogue, and one smoke test on a real run of the small synthetic twin."""

import json
import math
import os
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import beta
from scipy.stats import t as student_t
from typer.testing import CliRunner

from ferbench.cli import app
from ferbench.errors import DataError
from ferbench.leaderboard import build_boards, find_runs, write_leaderboard
from ferbench.leaderboard.ranking import BOOTSTRAP, BOOTSTRAP_RESAMPLES, CORRECTED_TTEST, MCNEMAR
from ferbench.leaderboard.significance import corrected_resampled_ttest, paired_bootstrap
from ferbench.runs import RunDir

PROTOCOLS = Path(__file__).parents[1] / "protocols"
CLASSES = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]
SPEED = {"params": 65000, "size_mb": 0.248, "macs": 2853200, "cpu": {"latency": {"median_ms": 0.6526}}}

# Ten folds of 90 training and 10 test images (folds.json). A beats B on each fold by 1..10 points:
# mean 0.055, sample variance 55/6 * 1e-4, and the corrected t = 0.055 / sqrt((1/10 + 10/90) * s^2).
A = [0.81, 0.82, 0.83, 0.84, 0.85, 0.86, 0.87, 0.88, 0.89, 0.90]  # 85.50 ± 3.03
B = [0.80] * 10  # 80.00 ± 0.00
C = [0.70, 0.82, 0.78, 0.82, 0.78, 0.82, 0.78, 0.82, 0.78, 0.82]  # 79.20 ± 3.79
A_VS_B_T = 0.055 / math.sqrt((1 / 10 + 10 / 90) * 55 / 6 * 1e-4)  # 3.9537


def stats(values):
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def make_run(out, protocol_id, model, scores, *, fingerprint="fp_a", complete=True, synthetic=False,
             dataset="ckplus", reported=(), source_scores=None, split=None, mtime=None, more_seeds=(),
             correct=None):
    """Write a run directory by hand: per-job metrics.json + DONE, folds.json (90 training and 10
    test images per fold), summary.json, run.json and the resolved protocol.

    ``scores`` are seed 0's per-fold scores, ``more_seeds`` those of seeds 1, 2, ...
    ``reported``: paper numbers (fold means) or whole ``reported`` entries.

    ``source_scores`` makes it a cross-dataset run (``dataset`` -> jaffe) whose fold scores sit
    under ``target`` and the source scores under ``source``. ``correct[fold]`` lists, per test
    image, whether seed 0's fold model got it right: written to the predictions file (images
    ``img<n>.png`` numbered on across folds; across datasets every fold scores the same target
    images ``t<i>.png``)."""
    root = out / protocol_id / model
    run = RunDir(root)
    card_fp = f"card-{model}"
    cross = source_scores is not None
    for seed, seed_scores in enumerate([scores, *more_seeds]):
        for fold, score in enumerate(seed_scores):
            result = {"seed": seed, "fold": fold, ("target" if cross else "test"): {"accuracy": score}}
            if cross:
                result["source"] = {"accuracy": source_scores[fold]}
            run.write_job(seed, fold, {"metrics.json": json.dumps(result).encode()}, f"job{seed}.{fold}-{fingerprint}")
            if correct is not None and seed == 0:
                first = 0 if cross else sum(map(len, correct[:fold]))
                paths = [f"{'t' if cross else 'img'}{first + i}.png" for i in range(len(correct[fold]))]
                write_predictions(run.job_dir(seed, fold) / ("predictions_target.csv" if cross else "predictions.csv"),
                                  paths, correct[fold])
    (root / "folds.json").write_text(json.dumps([{"fold": k, "train": 90, "test": 10} for k in range(len(scores))]))
    all_scores = [score for seed_scores in [scores, *more_seeds] for score in seed_scores]
    spec = {"name": dataset, "root": "synthetic:small" if synthetic else f"/data/{dataset}", "options": {}}
    frames = {"select": "last_n", "n": 3, "first_as_neutral": "none", "intensities": None}
    protocol = {
        "id": protocol_id, "version": 1, "description": f"hand-made {protocol_id}", "papers": ["Paper (000)"],
        "dataset": None if cross else spec, "classes": CLASSES, "frames": frames,
        "split": split or {"type": "subject_kfold", "k": 10, "assign": "ascending_round_robin", "seed": 0},
        "cross_dataset": {"train": [{"dataset": spec, "frames": frames}],
                          "test": {"dataset": {**spec, "name": "jaffe"},
                                   "frames": {**frames, "select": "all", "n": None}},
                          "evaluate": "fold_models"} if cross else None,
        "metrics": {"primary": "accuracy", "report": ["accuracy", "macro_f1", "weighted_f1", "uar"]},
    }
    header = {"protocol": protocol_id, "model": model, "fingerprint": fingerprint, "data_fingerprint": "data-fp",
              "card_fingerprint": card_fp, "deviations": {}, "teacher_card_fingerprint": None}
    summary = {
        **header, "classes": CLASSES, "synthetic": synthetic, "cross_dataset": cross,
        "jobs_done": len(all_scores), "jobs_total": 10, "complete": complete,
        "seeds": list(range(1 + len(more_seeds))),
        "jobs": [{"seed": seed, "fold": fold, "fingerprint": f"job{seed}.{fold}-{fingerprint}"}
                 for seed, seed_scores in enumerate([scores, *more_seeds]) for fold in range(len(seed_scores))],
        "reported": [{"protocol": protocol_id, "metric": "accuracy", "value": value, "aggregation": "fold_mean",
                      "note": "Table 1"} if isinstance(value, float) else value for value in reported],
        "metrics": {"accuracy": stats(all_scores), "macro_f1": stats(all_scores), "uar": stats(all_scores)},
        "params": SPEED["params"], "speed": SPEED,
    }
    if cross:
        source, target = statistics.fmean(source_scores), statistics.fmean(scores)
        summary["source_metrics"] = {"accuracy": stats(source_scores)}
        summary["drop"] = {"metric": "accuracy", "source": source, "target": target, "drop": source - target}
    run.write_header(header, {"protocol.resolved.yaml": yaml.safe_dump(protocol).encode()})
    (root / "env.json").write_text(json.dumps({"ferbench": "0.1.0"}))
    (root / ("confusion_target.png" if cross else "confusion.png")).write_bytes(b"not really a png")
    (root / "summary.json").write_text(json.dumps(summary))
    if mtime is not None:
        os.utime(root / "summary.json", (mtime, mtime))
    return root


def write_predictions(path, paths, correct):
    """A predictions.csv: true class anger; predicted anger when correct, happy otherwise."""
    rows = ["path,subject,true,predicted,p_anger,p_happy"]
    rows += [f"{p},S{i},anger,{'anger' if right else 'happy'},{0.9 if right else 0.1},{0.1 if right else 0.9}"
             for i, (p, right) in enumerate(zip(paths, correct))]
    path.write_text("\n".join(rows) + "\n")


def tables(text):
    """Every markdown table in ``text`` as a list of {header: cell} rows."""
    found, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif block:
            header, _separator, *body = block
            found.append([dict(zip(header, row)) for row in body])
            block = []
    return found


def section(page, heading):
    """The text under ``## heading`` up to the next ``## `` heading."""
    after = page.split(f"## {heading}", 1)[1]
    return after.split("\n## ", 1)[0]


@pytest.fixture
def board_runs(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "ckplus_7cls_si", "model_b", B)
    make_run(runs, "ckplus_7cls_si", "model_a", A, reported=[80.0])
    make_run(runs, "ckplus_7cls_si", "model_c", C, reported=[81.25])
    make_run(runs, "ckplus_7cls_si", "model_d", [0.99] * 3, complete=False)  # best mean, unfinished
    make_run(runs, "ckplus_7cls_si", "model_e", [0.95] * 10, fingerprint="fp_old")  # other protocol version
    return runs


def test_ranking_columns_paper_difference_and_links(board_runs, tmp_path):
    out = tmp_path / "leaderboards"
    written = write_leaderboard([board_runs], out)
    assert [p.name for p in written] == ["ckplus_7cls_si.md", "index.md", "sensitivity.md",
                                         "ckplus_7cls_si.html", "index.html", "sensitivity.html"]
    page = (out / "ckplus_7cls_si.md").read_text()
    ranking = tables(section(page, "Ranking"))[0]
    # a beats b and c significantly, b and c are not separated: they share ranks 2-3
    assert [(r["rank"], r["model"]) for r in ranking] == [("1", "model_a"), ("2-3", "model_b"), ("2-3", "model_c")]
    a, b, c = ranking
    assert (a["accuracy"], b["accuracy"], c["accuracy"]) == ("85.50 ± 3.03", "80.00 ± 0.00", "79.20 ± 3.79")
    assert (a["paper accuracy"], a["ours − paper"]) == ("80.00 (fold mean)", "+5.50")
    assert (c["paper accuracy"], c["ours − paper"]) == ("81.25 (fold mean)", "-2.05")
    assert a["train status"] == "cross-validated" and a["pooled accuracy"] == "-"  # no pooled numbers here
    assert (b["paper accuracy"], b["ours − paper"]) == ("-", "-")
    assert (a["folds × seeds"], a["params"], a["MB"], a["MACs"], a["CPU ms/image"]) == \
        ("10 × 1", "65,000", "0.25", "2.9M", "0.65")
    assert a["confusion"] == "[png](confusion/ckplus_7cls_si/model_a.png)"
    assert (out / "confusion/ckplus_7cls_si/model_a.png").read_bytes() == b"not really a png"  # a copy
    assert "Fingerprint:** `fp_a`" in page and "ferbench 0.1.0" in page
    assert "ckplus: real dataset" in page
    index = tables((out / "index.md").read_text())[0]
    assert index == [{
        "protocol": "[ckplus_7cls_si](ckplus_7cls_si.md)", "dataset": "ckplus", "data": "real",
        "fingerprint": "`fp_a`", "classes": "7", "split": "subject-independent 10-fold", "ranked": "3",
        "best": "model_a", "best score": "85.50 ± 3.03 (accuracy)", "incomplete": "1", "other fingerprints": "1"}]


def test_every_pair_gets_the_corrected_ttest_holm_adjusted(board_runs, tmp_path):
    [board] = build_boards(find_runs([board_runs]))
    a_b, a_c, b_c = board.comparisons[(0, 1)], board.comparisons[(0, 2)], board.comparisons[(1, 2)]
    assert list(board.comparisons) == [(0, 1), (0, 2), (1, 2)] and board.tested == 3
    assert (a_b.test, a_b.n, a_b.note) == (CORRECTED_TTEST, 10, "k=10, n_test/n_train=0.111")
    assert a_b.difference == pytest.approx(0.055)
    assert a_b.p_value == pytest.approx(2 * student_t.sf(A_VS_B_T, df=9), rel=1e-9)
    assert a_b.p_value == pytest.approx(0.0033361, rel=1e-4)
    assert (a_c.p_value, b_c.p_value) == (
        pytest.approx(corrected_resampled_ttest([x - y for x, y in zip(A, C)], 90, 10)[1], rel=1e-12),
        pytest.approx(corrected_resampled_ttest([x - y for x, y in zip(B, C)], 90, 10)[1], rel=1e-12))
    # Holm: a-b (smallest) x 3, a-c x 2, then b-c x 1; each at least the one before
    assert a_c.p_value < 0.005 < 0.5 < b_c.p_value
    assert a_b.p_adjusted == pytest.approx(3 * a_b.p_value, rel=1e-12)
    assert a_c.p_adjusted == pytest.approx(max(3 * a_b.p_value, 2 * a_c.p_value), rel=1e-12)
    assert b_c.p_adjusted == pytest.approx(b_c.p_value, rel=1e-12)
    assert (a_b.separated, a_c.separated, b_c.separated) == (True, True, False)
    assert board.rank_groups == ["1", "2-3", "2-3"]
    write_leaderboard([board_runs], tmp_path / "lb")
    page = (tmp_path / "lb" / "ckplus_7cls_si.md").read_text()
    ranking, pairwise = tables(section(page, "Ranking"))
    assert [r["vs next"] for r in ranking] == \
        [f"p={a_b.p_adjusted:.3g} * (n=10)", f"p={b_c.p_adjusted:.3g} (n=10)", "-"]
    assert ranking[0]["vs next"] == "p=0.01 * (n=10)"
    assert [(r["model"], r["vs"], r["test"], r["difference (points)"], r["separated"]) for r in pairwise] == [
        ("model_a", "model_b", CORRECTED_TTEST, "+5.50", "yes"),
        ("model_a", "model_c", CORRECTED_TTEST, "+6.30", "yes"),
        ("model_b", "model_c", CORRECTED_TTEST, "+0.80", "no")]
    assert pairwise[0]["p"] == "0.00334" and pairwise[0]["Holm p"] == "0.01"
    assert "corrected resampled t-test** (Nadeau & Bengio 2003)" in page
    assert "Holm-adjusted p < 0.05 over the board's 3 pairwise comparisons" in page
    assert "McNemar" not in page and "Wilcoxon" not in page


def test_jobs_without_a_matching_done_are_not_paired(board_runs):
    # model_b's fold 0 was restarted under another recipe and never finished: stale files, old DONE
    job = board_runs / "ckplus_7cls_si" / "model_b" / "seed0" / "fold0"
    (job / "DONE").write_text("0123456789abcdef\n")
    (job / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.0}}))
    [board] = build_boards(find_runs([board_runs]))
    # folds 1..9: differences 2..10 points, mean 0.06, variance 7.5e-4; t = 0.06 / sqrt((1/9 + 1/9) * 7.5e-4)
    a_b = board.comparisons[(0, 1)]
    assert a_b.n == 9
    assert a_b.p_value == pytest.approx(2 * student_t.sf(0.06 / math.sqrt(2 / 9 * 7.5e-4), df=8), rel=1e-9)


def test_seeds_are_averaged_within_a_fold_before_the_test(tmp_path):
    runs = tmp_path / "runs"
    # seeds 0 and 1 of model_s average to A on every fold: the test pairs 10 folds, not 20 jobs
    seed0 = [score - 0.02 for score in A]
    seed1 = [score + 0.02 for score in A]
    make_run(runs, "ckplus_7cls_si", "model_s", seed0, more_seeds=[seed1])
    make_run(runs, "ckplus_7cls_si", "model_b", B)
    [board] = build_boards(find_runs([runs]))
    [comparison] = board.comparisons.values()
    assert [run.model for run in board.ranked] == ["model_s", "model_b"]
    assert comparison.n == 10
    assert comparison.p_value == pytest.approx(2 * student_t.sf(A_VS_B_T, df=9), rel=1e-9)
    assert comparison.p_adjusted == comparison.p_value  # one comparison: Holm changes nothing


def test_an_evaluated_checkpoint_is_compared_by_mcnemar(tmp_path):
    runs = tmp_path / "runs"
    # 20 images, two folds of 10. kfold_x: wrong on images 0-2 (fold 0: 70 %, fold 1: 100 %).
    # kfold_y: wrong on images 0-5 (40 %, 100 %). The checkpoint, tested on all 20: wrong on image 5.
    x = [[i >= 3 for i in range(10)], [True] * 10]
    y = [[i >= 6 for i in range(10)], [True] * 10]
    checkpoint = [[i != 5 for i in range(20)]]
    make_run(runs, "ckplus_7cls_si", "kfold_x", [0.7, 1.0], correct=x)
    make_run(runs, "ckplus_7cls_si", "kfold_y", [0.4, 1.0], correct=y)
    root = make_run(runs, "ckplus_7cls_si", "checkpoint", [0.95], correct=checkpoint)
    summary = json.loads((root / "summary.json").read_text())
    (root / "summary.json").write_text(json.dumps({**summary, "evaluated": True, "jobs_total": 1}))
    [board] = build_boards(find_runs([runs]))
    assert [run.model for run in board.ranked] == ["checkpoint", "kfold_x", "kfold_y"]
    vs_x, vs_y, x_y = board.comparisons[(0, 1)], board.comparisons[(0, 2)], board.comparisons[(1, 2)]
    # checkpoint vs x: discordant images 0, 1, 2 (checkpoint right) and 5 (x right): 2 * P(X >= 3 | 4, 1/2) = 10/16
    assert (vs_x.test, vs_x.n, vs_x.note) == (MCNEMAR, 20, "discordant 3 vs 1")
    assert vs_x.p_value == pytest.approx(10 / 16, rel=1e-12) and vs_x.difference == pytest.approx(0.10)
    # checkpoint vs y: images 0-4 for the checkpoint, none for y: 2 / 2**5
    assert (vs_y.test, vs_y.note, vs_y.p_value) == (MCNEMAR, "discordant 5 vs 0", pytest.approx(2 / 32, rel=1e-12))
    assert (x_y.test, x_y.n) == (CORRECTED_TTEST, 2)  # the two cross-validated runs pair by fold
    assert vs_y.p_adjusted == pytest.approx(3 * 2 / 32, rel=1e-12)  # the smallest of three
    assert board.rank_groups == ["1-3", "1-3", "1-3"]
    write_leaderboard([runs], tmp_path / "lb")
    page = (tmp_path / "lb" / "ckplus_7cls_si.md").read_text()
    ranking, pairwise = tables(section(page, "Ranking"))
    assert ranking[0]["model"] == "checkpoint" and ranking[0]["deviations"].startswith("evaluated checkpoint")
    assert ranking[0]["vs next"] == "p=1 (n=20)"  # Holm: max(3 * 0.0625, 2 * 0.625) capped at 1
    assert [r["test"] for r in pairwise] == [MCNEMAR, MCNEMAR, CORRECTED_TTEST]
    assert "exact McNemar test**" in page and "corrected resampled t-test**" in page


def test_missing_predictions_are_a_one_line_error(board_runs, tmp_path):
    root = make_run(board_runs, "ckplus_7cls_si", "checkpoint", [0.9])  # no predictions.csv written
    summary = json.loads((root / "summary.json").read_text())
    (root / "summary.json").write_text(json.dumps({**summary, "evaluated": True, "jobs_total": 1}))
    result = CliRunner().invoke(app, ["leaderboard", str(board_runs), "--out", str(tmp_path / "lb")])
    assert result.exit_code == 2
    assert "checkpoint/seed0/fold0/predictions.csv: missing; every finished job writes one" in result.output


def test_incomplete_and_other_fingerprint_runs_are_listed_apart(board_runs, tmp_path):
    write_leaderboard([board_runs], tmp_path / "lb")
    page = (tmp_path / "lb" / "ckplus_7cls_si.md").read_text()
    ranked = [r["model"] for r in tables(section(page, "Ranking"))[0]]
    assert "model_d" not in ranked and "model_e" not in ranked
    [incomplete] = tables(section(page, "Incomplete runs"))[0]
    assert (incomplete["model"], incomplete["jobs done"], incomplete["primary metric so far"]) == \
        ("model_d", "3/10", "99.00 ± 0.00")
    other_section = section(page, "Runs of another protocol fingerprint")
    assert "not comparable" in other_section
    [other] = tables(other_section)[0]
    assert (other["model"], other["fingerprint"], other["state"]) == ("model_e", "`fp_old`", "complete")


def test_equally_common_fingerprints_rank_the_newest(tmp_path):
    runs = tmp_path / "runs"
    for model in ("m1", "m2"):  # read first
        make_run(runs, "ckplus_7cls_si", model, B, fingerprint="fp_old", mtime=1_000_000)
    for model in ("m3", "m4"):
        make_run(runs, "ckplus_7cls_si", model, A, fingerprint="fp_new", mtime=2_000_000)
    [board] = build_boards(find_runs([runs / "ckplus_7cls_si"]))  # a protocol folder works too
    assert board.fingerprint == "fp_new"
    assert [r.model for r in board.ranked] == ["m3", "m4"]
    assert [r.model for r in board.others] == ["m1", "m2"]
    assert board.rank_groups == ["1-2", "1-2"]  # equal means: no difference to test (p = 1)
    assert board.comparisons[(0, 1)].p_value == 1.0


def test_synthetic_runs_are_labelled_on_every_row(tmp_path):
    runs = tmp_path / "runs"
    for protocol_id in ("ckplus_7cls_si", "ckplus_8cls_random"):
        make_run(runs, protocol_id, "model_a", A, synthetic=True)
        make_run(runs, protocol_id, "model_b", B, synthetic=True)
    make_run(runs, "ckplus_7cls_si", "model_d", A[:2], synthetic=True, complete=False)
    make_run(runs, "jaffe_7cls_loso", "model_a", A, dataset="jaffe")  # real data: no label
    out = tmp_path / "lb"
    write_leaderboard([runs], out)
    page = (out / "ckplus_7cls_si.md").read_text()
    assert page.startswith("# ckplus_7cls_si (synthetic twin)")
    assert "synthetic twin (`synthetic:small`), generated faces, not the real dataset" in page
    for name in ("ckplus_7cls_si.md", "ckplus_8cls_random.md", "sensitivity.md"):
        rows = [row for table in tables((out / name).read_text()) for row in table]
        assert len(rows) >= 2 and all("synthetic" in " ".join(row.values()) for row in rows), name
    index = {row["dataset"]: row for row in tables((out / "index.md").read_text())[0]}
    assert index["ckplus"]["protocol"].endswith("(synthetic)") and index["ckplus"]["best"] == "model_a (synthetic)"
    assert index["jaffe"]["best"] == "model_a" and index["jaffe"]["data"] == "real"
    jaffe = (out / "jaffe_7cls_loso.md").read_text()
    assert "synthetic" not in jaffe


def test_cross_dataset_page_shows_source_target_and_drop(tmp_path):
    runs = tmp_path / "runs"
    # 100 target images, scored by each of the 10 fold models: x's fold models get images 0-59 right
    # (the last one 0-69), y's get images 0-49 right; the source scores are equal
    x_correct = [[i < (70 if fold == 9 else 60) for i in range(100)] for fold in range(10)]
    y_correct = [[i < 50 for i in range(100)] for _fold in range(10)]
    make_run(runs, "ckplus_to_jaffe", "model_x", [0.6] * 9 + [0.7], source_scores=[0.9] * 10, correct=x_correct)
    make_run(runs, "ckplus_to_jaffe", "model_y", [0.5] * 10, source_scores=[0.9] * 10, correct=y_correct)
    [board] = build_boards(find_runs([runs]))
    [comparison] = board.comparisons.values()
    # the 10 fold scores share the target images: the test resamples images, each image's score
    # being the fraction of fold models right on it (x: 1 on 0-59, 0.1 on 60-69), in path order
    index = sorted(range(100), key=lambda i: f"t{i}.png")
    x_per_image = np.array([1.0 if i < 60 else 0.1 if i < 70 else 0.0 for i in index])
    y_per_image = np.array([1.0 if i < 50 else 0.0 for i in index])
    assert (comparison.test, comparison.n) == (BOOTSTRAP, 100)
    assert comparison.difference == pytest.approx(0.11)
    assert comparison.p_value == paired_bootstrap(x_per_image, y_per_image, BOOTSTRAP_RESAMPLES, 0) < 0.01
    write_leaderboard([runs], tmp_path / "lb")
    page = (tmp_path / "lb" / "ckplus_to_jaffe.md").read_text()
    x, y = tables(section(page, "Ranking"))[0]
    assert (x["model"], x["source accuracy (in-domain)"], x["target accuracy"], x["drop (points)"]) == \
        ("model_x", "90.00 ± 0.00", "61.00 ± 3.16", "29.00")
    assert (y["model"], y["source accuracy (in-domain)"], y["target accuracy"], y["drop (points)"]) == \
        ("model_y", "90.00 ± 0.00", "50.00 ± 0.00", "40.00")
    assert x["vs next"] == f"p={comparison.p_value:.3g} * (n=100)"
    assert (x["rank"], y["rank"]) == ("1", "2")
    assert "**paired bootstrap** over the test images (10,000 resamples, seed 0)" in page
    assert x["confusion"] == "[png](confusion/ckplus_to_jaffe/model_x.png)"
    assert "ckplus -> jaffe" in (tmp_path / "lb" / "index.md").read_text()


def test_sensitivity_page_puts_one_model_per_row_and_one_protocol_per_column(tmp_path):
    runs = tmp_path / "runs"
    random10 = {"type": "random_kfold", "k": 10, "seed": 0, "stratified": True}
    make_run(runs, "ckplus_8cls_si", "model_a", B)
    make_run(runs, "ckplus_8cls_si", "model_b", C)
    make_run(runs, "ckplus_8cls_random", "model_a", A, split=random10)
    make_run(runs, "ckplus_8cls_random", "model_c", A, split=random10, complete=False)  # not shown
    make_run(runs, "jaffe_7cls_loso", "model_a", A, dataset="jaffe")  # one protocol only: no group
    write_leaderboard([runs], tmp_path / "lb")
    page = (tmp_path / "lb" / "sensitivity.md").read_text()
    assert "## jaffe" not in page and "memorisation" in page
    grid, legend = tables(section(page, "ckplus"))
    assert grid == [
        {"model": "model_a", "ckplus_8cls_random": "85.50 ± 3.03", "ckplus_8cls_si": "80.00 ± 0.00"},
        {"model": "model_b", "ckplus_8cls_random": "-", "ckplus_8cls_si": "79.20 ± 3.79"},
    ]
    assert [(r["protocol"], r["split"]) for r in legend] == [
        ("[ckplus_8cls_random](ckplus_8cls_random.md)", "random 10-fold (not subject-independent)"),
        ("[ckplus_8cls_si](ckplus_8cls_si.md)", "subject-independent 10-fold"),
    ]


def test_protocols_json_lists_every_shipped_file():
    result = CliRunner().invoke(app, ["protocols", "--json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert sorted(e["file"] for e in entries) == sorted(p.name for p in PROTOCOLS.glob("*.yaml"))
    by_id = {e["id"]: e for e in entries}
    assert len(by_id) == len(entries)
    si, random = by_id["ckplus_8cls_si"], by_id["ckplus_8cls_random"]
    assert si["datasets"] == ["ckplus"] and len(si["classes"]) == 8
    assert si["frames"] == "last 3 + first frame as neutral (all sequences)"
    assert (si["split"], random["split"]) == ("subject-independent 10-fold", "random 10-fold (not subject-independent)")
    assert random["papers"] == ["MicroExpNet (000) Table II"]


def test_protocols_folder_can_be_overridden(tmp_path, monkeypatch):
    (tmp_path / "mini.yaml").write_text(
        "id: mini\nversion: 1\ndataset: {name: jaffe, root: synthetic}\n"
        "classes: [anger, happy]\nsplit: {type: loso}\n")
    monkeypatch.setenv("FERBENCH_PROTOCOLS", str(tmp_path))
    result = CliRunner().invoke(app, ["protocols"])
    assert result.exit_code == 0, result.output
    assert "mini.yaml" in result.output and "leave-one-subject-out" in result.output
    assert "1 protocols in" in result.output


def test_leaderboard_command_reports_a_path_without_runs(tmp_path):
    result = CliRunner().invoke(app, ["leaderboard", str(tmp_path), "--out", str(tmp_path / "lb")])
    assert result.exit_code == 2
    assert "no summary.json found" in result.output


def test_a_real_run_renders(tmp_path):
    """End to end: a real one-fold, one-epoch run on the small CK+ twin, ranked by the CLI."""
    from ferbench.cards import load_card
    from ferbench.pipeline import attach_images, load_protocol_data
    from ferbench.protocol import load_protocol
    from ferbench.runner import RunOptions, run_card

    protocol = load_protocol(PROTOCOLS / "ckplus_7cls_si.yaml", roots={"ckplus": "synthetic:small"})
    data = attach_images(load_protocol_data(protocol), progress=False)
    card_file = tmp_path / "tiny_microexpnet.yaml"
    card_file.write_text(
        "name: tiny_microexpnet\nmodel: microexpnet_xxs\ninput: {channels: 1, size: [84, 84], normalise: unit}\n"
        "recipe: {epochs: 1, batch_size: 32, optimizer: {name: adam, lr: 1.0e-3}}\n"
        "reported: [{protocol: ckplus_7cls_si, metric: accuracy, value: 97.6, aggregation: fold_mean}]\n")
    # the run covers fold 0 only, so with this one-fold list it is complete and gets ranked
    summary = run_card(data, data.folds()[:1], load_card(card_file),
                       RunOptions(out=tmp_path / "runs", progress=False, speed=False))
    result = CliRunner().invoke(app, ["leaderboard", str(tmp_path / "runs"), "--out", str(tmp_path / "lb")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "lb" / "ckplus_7cls_si.md").read_text()
    [row] = tables(section(page, "Ranking"))[0]
    accuracy = summary["metrics"]["accuracy"]["mean"] * 100
    low, high = (summary["intervals"]["fold_mean"]["accuracy"][k] * 100 for k in ("low", "high"))
    assert low <= accuracy <= high
    assert row["model"] == "tiny_microexpnet (synthetic)"
    assert row["accuracy"] == f"{accuracy:.2f} ± 0.00 [{low:.2f}, {high:.2f}]" and row["folds × seeds"] == "1 × 1"
    assert row["pooled accuracy"].startswith(f"{summary['pooled']['accuracy'] * 100:.2f} [")
    assert row["ours − paper"] == f"{accuracy - 97.6:+.2f}" and row["train status"] == "cross-validated"
    assert "1000 resamples of test subjects within each fold, seed 0" in page
    assert row["vs next"] == "-" and row["params"] == f"{summary['params']:,}"
    link = row["confusion"].removeprefix("[png](").removesuffix(")")
    run_dir = tmp_path / "runs" / "ckplus_7cls_si" / "tiny_microexpnet"
    assert (tmp_path / "lb" / link).read_bytes() == (run_dir / "confusion.png").read_bytes()
    assert (tmp_path / "lb" / link).is_file()
    assert f"`{protocol.fingerprint}`" in page
    # the pictures and the hardest subjects, against the job's predictions.csv read here
    predictions = pd.read_csv(run_dir / "seed0" / "fold0" / "predictions.csv", dtype={"subject": str})
    by_subject = (predictions["true"] == predictions["predicted"]).groupby(predictions["subject"]).agg(["mean", "size"])
    expected = sorted((mean, subject, size) for subject, (mean, size) in by_subject.iterrows())[:5]
    hardest = tables(section(page, "Pictures"))[0]
    assert [(r["subject"], r["mean accuracy"], r["images"]) for r in hardest] == \
        [(subject, f"{mean * 100:.2f}", str(int(size))) for mean, subject, size in expected]
    for name in ("accuracy_params.png", "per_class_f1.png", "per_subject.png"):
        assert f"](plots/ckplus_7cls_si/{name})" in page and (tmp_path / "lb" / "plots" / "ckplus_7cls_si" / name).is_file()
    assert "accuracy_latency.png" not in page  # speed=False: no latency measured
    assert 'src="plots/ckplus_7cls_si/per_subject.png"' in (tmp_path / "lb" / "ckplus_7cls_si.html").read_text()


def test_paper_numbers_are_compared_as_the_paper_aggregated_them(tmp_path):
    runs = tmp_path / "runs"
    entry = {"protocol": "ckplus_7cls_si", "metric": "accuracy", "note": "Table 3"}
    pooled = {**entry, "value": 84.0, "aggregation": "pooled", "correct": 84, "total": 100}
    one_split = {**entry, "value": 95.24, "aggregation": "single_split", "correct": 40, "total": 42}
    unstated = {**entry, "value": 80.0}  # a summary from before `aggregation` existed
    roots = {"model_a": make_run(runs, "ckplus_7cls_si", "model_a", A, reported=[pooled]),
             "model_c": make_run(runs, "ckplus_7cls_si", "model_c", C, reported=[one_split]),
             "model_b": make_run(runs, "ckplus_7cls_si", "model_b", B, reported=[unstated])}
    summary = json.loads((roots["model_a"] / "summary.json").read_text())
    summary["pooled"] = {"accuracy": 0.86, "macro_f1": 0.8, "uar": 0.8125}
    summary["intervals"] = {
        "level": 0.95, "resamples": 1000, "seed": 0, "unit": "subject", "units": 118, "stratified": True,
        "fold_mean": {"accuracy": {"low": 0.831, "high": 0.879}},
        "pooled": {"accuracy": {"low": 0.84, "high": 0.88}, "uar": {"low": 0.79, "high": 0.83}}}
    (roots["model_a"] / "summary.json").write_text(json.dumps(summary))
    write_leaderboard([runs], tmp_path / "lb")
    page = (tmp_path / "lb" / "ckplus_7cls_si.md").read_text()
    a, b, c = tables(section(page, "Ranking"))[0]
    # pooled: our pooled 86.00 against the paper's pooled 84.00, not our fold mean 85.50
    assert (a["paper accuracy"], a["ours − paper"]) == ("84.00 (pooled, 84/100)", "+2.00")
    assert a["accuracy"] == "85.50 ± 3.03 [83.10, 87.90]" and a["macro-F1"] == "85.50 ± 3.03"
    assert (a["pooled accuracy"], a["pooled macro-F1"], a["pooled UAR"]) == \
        ("86.00 [84.00, 88.00]", "80.00", "81.25 [79.00, 83.00]")
    # one split: no difference; our fold range and mean, the paper's Clopper-Pearson interval
    low, high = beta.ppf(0.025, 40, 3) * 100, beta.ppf(0.975, 41, 2) * 100
    assert c["paper accuracy"] == f"95.24 (one split, 40/42 [{low:.2f}, {high:.2f}])" == \
        "95.24 (one split, 40/42 [83.84, 99.42])"
    assert c["ours − paper"] == "paper: one split; ours 70.00–82.00 over folds, mean 79.20"
    assert (b["paper accuracy"], b["ours − paper"]) == ("80.00 (aggregation not stated)", "-")
    assert "1000 resamples of test subjects within each fold, seed 0" in page


def test_every_row_carries_a_train_status(tmp_path):
    board_runs = tmp_path / "runs"
    per_fold = [[True] * 8 + [False] * 2] * 10  # predictions, so the checkpoint can be compared (McNemar)
    for model, scores in (("model_a", A), ("model_b", B), ("model_c", C)):
        make_run(board_runs, "ckplus_7cls_si", model, scores, correct=per_fold)
    make_run(board_runs, "ckplus_7cls_si", "model_d", [0.99] * 3, complete=False)
    recorded = board_runs / "ckplus_7cls_si" / "model_b" / "summary.json"
    recorded.write_text(json.dumps({**json.loads(recorded.read_text()), "train_status": "held-out target"}))
    evaluated = make_run(board_runs, "ckplus_7cls_si", "checkpoint", [0.5], correct=[[True, False] * 50])
    summary = json.loads((evaluated / "summary.json").read_text())
    (evaluated / "summary.json").write_text(json.dumps({**summary, "evaluated": True, "jobs_total": 1}))
    write_leaderboard([board_runs], tmp_path / "lb")
    page = (tmp_path / "lb" / "ckplus_7cls_si.md").read_text()
    status = {r["model"]: r["train status"] for r in tables(section(page, "Ranking"))[0]}
    # recorded, derived for a summary without one, and an evaluated checkpoint is external
    assert status == {"model_a": "cross-validated", "model_b": "held-out target", "model_c": "cross-validated",
                      "checkpoint": "external (training data unknown)"}
    [incomplete] = tables(section(page, "Incomplete runs"))[0]
    assert incomplete["train status"] == "cross-validated"
    [cross] = find_runs([make_run(tmp_path / "x", "ckplus_to_jaffe", "m", [0.5] * 10, source_scores=[0.9] * 10)])
    assert cross.train_status == "held-out target"


def test_skipped_files_are_listed_once_with_the_runs_that_dropped_them(board_runs, tmp_path):
    report = {"skipped_unreadable": [{"path": "S005/001/S005_001_00000011.png", "problem": "truncated PNG"}],
              "skipped_no_face": ["S010/002/S010_002_00000014.png"]}
    model_dir = board_runs / "ckplus_7cls_si"
    (model_dir / "model_a" / "preprocess.json").write_text(
        json.dumps([{"role": "test", "dataset": "ckplus", "report": report}]))
    (model_dir / "model_b" / "preprocess.json").write_text(
        json.dumps([{"role": "test", "dataset": "ckplus", "report": {**report, "skipped_no_face": []}}]))
    write_leaderboard([board_runs], tmp_path / "lb")
    skipped = section((tmp_path / "lb" / "ckplus_7cls_si.md").read_text(), "Skipped files")
    assert tables(skipped)[0] == [
        {"role": "test", "dataset": "ckplus", "file": "S005/001/S005_001_00000011.png", "reason": "truncated PNG",
         "runs": "model_a, model_b"},
        {"role": "test", "dataset": "ckplus", "file": "S010/002/S010_002_00000014.png", "reason": "no face found",
         "runs": "model_a"},
    ]
    assert "No `preprocess.json` (no record of skipped files): model_c, model_d, model_e." in skipped
    (model_dir / "model_a" / "preprocess.json").write_text(json.dumps({"skipped": []}))
    with pytest.raises(DataError, match="preprocess.json: expected a list"):
        write_leaderboard([board_runs], tmp_path / "lb")


def test_the_preprocessing_section_counts_the_fallback_images(board_runs, tmp_path):
    report = {"methods": {"landmarks": 0, "eyes": 7, "face_box": 1, "mean": 2}, "detection_rate": 0.7,
              "fallbacks": {"face_box": ["a.png"], "mean": ["b.png", "c.png"]}}
    for run in (board_runs / "ckplus_7cls_si").iterdir():
        (run / "preprocess.json").write_text(json.dumps([{"role": "test", "dataset": "ckplus", "report": report}]))
    write_leaderboard([board_runs], tmp_path / "lb")
    text = section((tmp_path / "lb" / "ckplus_7cls_si.md").read_text(), "Preprocessing")
    assert "3 images were framed by a fallback (face_box, mean, center_crop)" in text
    assert tables(text)[0][0]["detection rate"] == "70.0%"


def test_runs_without_skipped_files_say_so(board_runs, tmp_path):
    (board_runs / "ckplus_7cls_si" / "model_a" / "preprocess.json").write_text(
        json.dumps([{"role": "test", "dataset": "ckplus", "report": {"skipped_unreadable": [], "skipped_no_face": []}}]))
    write_leaderboard([board_runs], tmp_path / "lb")
    skipped = section((tmp_path / "lb" / "ckplus_7cls_si.md").read_text(), "Skipped files")
    assert "No run skipped a file." in skipped and "model_b, model_c" in skipped


@pytest.mark.parametrize("split, text", [
    ({"type": "subject_kfold", "k": 10}, "subject-independent 10-fold"),
    ({"type": "subject_kfold", "k": 5, "assign": "stratified_group"},
     "subject-independent 5-fold, stratified subject groups"),
    ({"type": "random_kfold", "k": 10}, "random 10-fold (not subject-independent)"),
    ({"type": "loso"}, "leave-one-subject-out"),
    ({"type": "official", "train": ["Training"], "test": ["PrivateTest"]}, "official split (train Training, test PrivateTest)"),
    ({"type": "fold_file", "file": "/f.yaml", "by": "subject"}, "fold file by subject (subject-independent)"),
    ({"type": "fold_file", "file": "/f.yaml", "by": "sample"}, "fold file by sample (not subject-independent)"),
])
def test_every_split_is_described_with_its_subject_independence(split, text):
    from ferbench.leaderboard.catalogue import describe_split

    assert describe_split({"split": split}) == text
