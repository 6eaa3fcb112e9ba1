"""The planner: exact job / pass / step counts, teachers counted once, and the run's confirmation gate."""

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from ferbench.cards import load_card
from ferbench.cli import app
from ferbench.models.build import build_model
from ferbench.planner import Calibration, job_counts, plan_protocol, totals
from ferbench.speed import count_macs
from ferbench.training.trainer import _batches

from helpers import TINY_PLUGIN_CARD

PROTOCOLS = Path(__file__).parents[1] / "protocols"
runner = CliRunner()


def _card(tmp_path, epochs=3, batch_size=4, repeats=2):
    path = tmp_path / "tiny_plugin.yaml"
    path.write_text(TINY_PLUGIN_CARD.replace("epochs: 1", f"epochs: {epochs}\n  repeats: {repeats}")
                    .replace("batch_size: 16", f"batch_size: {batch_size}"))
    return load_card(path)


def test_counts_equal_what_the_trainer_batches(tmp_path):
    card = _card(tmp_path)
    sizes = [9, 10, 5]
    passes, steps = job_counts(card, sizes)
    expected_passes = expected_steps = 0
    for n in sizes:  # the trainer's own batching, one epoch, times the epochs
        batches = _batches(n, card.recipe, torch.Generator().manual_seed(0))
        expected_passes += sum(len(b) for b in batches) * card.recipe.epochs
        expected_steps += len(batches) * card.recipe.epochs
    assert (passes, steps) == (expected_passes, expected_steps) == (3 * (18 + 20 + 10), 3 * (5 + 5 + 3))
    single = _card(tmp_path, epochs=1, repeats=1)  # 9 images in batches of 4: the last image is dropped
    assert job_counts(single, [9]) == (8, 2)
    assert job_counts(load_card("hog_svm"), [9, 10]) == (19, 0)


def test_a_distilling_cards_teacher_is_planned_once_with_the_same_budget():
    cards = [load_card("microexpnet_xxs_kd"), load_card("microexpnet_s_kd")]
    shorten = lambda card: card.with_epochs(2)  # noqa: E731 - what --epochs 2 does to every card
    rows = plan_protocol("p", [100, 90], cards, 2, 7, None, shorten)
    assert [r.model for r in rows] == ["inception_v3_teacher", "microexpnet_xxs_kd", "microexpnet_s_kd"]
    assert rows[0].role == "teacher of microexpnet_xxs_kd"
    assert all(r.jobs == 4 and r.epochs == 2 for r in rows)  # 2 folds x 2 seeds, teachers per (seed, fold)
    assert rows[1].image_passes == 2 * 2 * 8 * (100 + 90)  # seeds x epochs x repeats x images
    teacher, student = (2 * count_macs(build_model(c, 7), (c.input.channels, *c.input.size))
                        for c in (load_card("inception_v3_teacher"), cards[0]))
    assert rows[0].train_flops == 3 * teacher * rows[0].image_passes  # forward + backward (2x forward)
    assert rows[1].teacher_passes == 2 * (100 + 90) * 8  # each (image, crop) once per job: 8 fixed crops
    assert rows[1].train_flops == 3 * student * rows[1].image_passes + teacher * rows[1].teacher_passes
    assert totals(rows)["seconds"] is None and totals(rows)["jobs"] == 12


def test_calibration_is_cached_per_device(tmp_path):
    card = _card(tmp_path, epochs=1, repeats=1)
    first = Calibration(torch.device("cpu"), (48, 48), 3, tmp_path)
    seconds = first.seconds_per_pass(card)
    assert seconds > 0 and first.path.is_file()
    again = Calibration(torch.device("cpu"), (48, 48), 3, tmp_path)
    assert again._cache == first._cache and again.seconds_per_pass(card) == seconds


def test_plan_json_counts_every_fold_and_seed(tmp_path):
    card = _card(tmp_path)
    result = runner.invoke(app, ["plan", str(PROTOCOLS / "jaffe_6cls_loso.yaml"), "--root", "jaffe=synthetic:small",
                                 "--models", str(tmp_path / "tiny_plugin.yaml"), "--seeds", "0,1", "--epochs", "2",
                                 "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    (row,) = plan["rows"]
    assert row["jobs"] == 20 and row["epochs"] == 2  # 10 LOSO folds x 2 seeds
    assert row["seconds"] > 0 and plan["total"]["seconds"] == row["seconds"]
    assert row["image_passes"] == job_counts(card.with_epochs(2), [row["images_per_epoch"] / 2] * 20)[0]


def test_run_over_the_threshold_needs_yes(tmp_path, monkeypatch):
    _card(tmp_path, epochs=1, repeats=1)
    args = ["run", str(PROTOCOLS / "jaffe_6cls_loso.yaml"), "--root", "jaffe=synthetic:small", "--models",
            str(tmp_path / "tiny_plugin.yaml"), "--folds", "0", "--out", str(tmp_path / "runs"), "--no-speed"]
    monkeypatch.setenv("FERBENCH_CONFIRM_HOURS", "1e-9")
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "pass --yes" in refused.output
    assert not (tmp_path / "runs" / "jaffe_6cls_loso" / "tiny_plugin" / "seed0" / "fold0" / "DONE").exists()
    started = runner.invoke(app, [*args, "--yes"])
    assert started.exit_code == 0, started.output
    assert "plan jaffe_6cls_loso: 1 jobs" in started.output
    assert (tmp_path / "runs" / "jaffe_6cls_loso" / "tiny_plugin" / "seed0" / "fold0" / "DONE").is_file()
    again = runner.invoke(app, args)  # nothing left to train: no estimate, no question
    assert again.exit_code == 0 and "plan jaffe_6cls_loso" not in again.output
    monkeypatch.setenv("FERBENCH_CONFIRM_HOURS", "two")
    bad = runner.invoke(app, args)
    assert bad.exit_code == 2 and "$FERBENCH_CONFIRM_HOURS='two': expected a positive number of hours" in bad.output


def test_the_device_check_script_runs_its_reduced_cpu_version(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "device_check.json"
    script = Path(__file__).parents[1] / "benchmarks" / "device_check.py"
    done = subprocess.run([sys.executable, str(script), "--device", "cpu", "--reduced", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert set(report) >= {"device", "stacked", "bare_loop", "autocast", "plan"}
    assert set(report["stacked"]) == {"microexpnet_xxs", "emotionnet_nano_b", "lopes_cnn"}
    assert report["stacked"]["emotionnet_nano_b"]["refused"] is None  # no dropout / BatchNorm: stackable
    assert report["plan"]["total"]["jobs"] == 40  # 4 cards x the 10 folds of ckplus_7cls_si
    objectives = report["objectives"]
    assert {name: entry["card"] for name, entry in objectives.items()} == {
        "center_loss": "mobilenetv1_centerloss", "am_softmax": "ed2l_baseline", "ed2l": "ed2l",
        "distillation": "microexpnet_xxs_kd"}
    for entry in objectives.values():  # every stateful objective stacks; folds of 6 and 3 images at batch 4
        assert entry["refused"] is None and entry["stacked_img_s"] > 0 and entry["one_by_one_img_s"] > 0
        assert (entry["batch_size"], entry["steps_one_by_one"], entry["steps_stacked"]) == (4, 2 + 1, 2)
    assert objectives["distillation"]["teacher"] == "microexpnet_xxs" and objectives["ed2l"]["teacher"] is None
    assert list(report["section_seconds"]) == ["stacked", "bare_loop", "plan", "objectives"]
