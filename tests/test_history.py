"""Training history: what ``fit`` and ``fit_stacked`` record per epoch, the job's ``history.csv``
(hashed in ``DONE``, rewritten with its job) and the run's ``curves.png`` (drawn from the jobs the
summary aggregates, never from a stale one)."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import pandas as pd
import pytest

import ferbench.report as report
from ferbench.cards import load_card
from ferbench.jobs import history_csv
from ferbench.pipeline import attach_images, load_protocol_data
from ferbench.protocol import load_protocol
from ferbench.runner import RunOptions, run_card
from ferbench.runs import RunDir, sha256_file
from ferbench.training import fit, fit_stacked, learning_rate, predict_proba, seed_everything

from helpers import tiny_microexpnet_card
from test_stacked import SEEDS, TinyNet, make_folds
from test_stacked import make_card as make_stacked_card
from test_training import CPU, TinyCNN, left_right_images, make_card

PROTOCOL = Path(__file__).parents[1] / "protocols" / "ckplus_7cls_si.yaml"


def test_fit_records_loss_rate_and_seconds_per_epoch():
    images, labels = left_right_images(32)
    card = make_card(epochs=3, schedule={"name": "multistep", "milestones": [1, 2], "factors": [0.5, 0.1]})
    seen = []
    seed_everything(0)
    model = fit(TinyCNN(), card, images, labels, CPU, 0, progress=False,
                on_epoch_end=lambda epoch, loss: seen.append((epoch, loss)))
    history = model.training_history
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert [(row["epoch"], row["loss"]) for row in history] == seen  # the same mean loss the callback sees
    assert [row["lr"] for row in history] == pytest.approx([1e-2, 0.5e-2, 0.1e-2])
    assert [row["lr"] for row in history] == [learning_rate(card.recipe, e) for e in range(3)]
    assert all(row["seconds"] >= 0 for row in history)
    assert all("val_accuracy" not in row for row in history)  # no validation set, no column
    assert list(pd.read_csv(io.StringIO(history_csv(history))).columns) == ["epoch", "loss", "lr",
                                                                                     "seconds"]


def test_validation_accuracy_is_recorded_per_epoch_and_the_selected_epoch_is_its_best():
    images, labels = left_right_images(32)
    held_out = left_right_images(32, seed=1)
    sgd = {"name": "sgd", "lr": 0.02}
    seed_everything(0)
    initial = TinyCNN()
    model = fit(copy.deepcopy(initial), make_card(epochs=4, optimizer=sgd), images, labels, CPU, 0, progress=False,
                validation=held_out)
    accuracies = [row["val_accuracy"] for row in model.training_history]
    # epoch e's accuracy is that of the model trained for e + 1 epochs (a constant rate: the same steps)
    for epoch, recorded in enumerate(accuracies):
        card = make_card(epochs=epoch + 1, optimizer=sgd)
        shorter = fit(copy.deepcopy(initial), card, images, labels, CPU, 0, progress=False)
        scored = (predict_proba(shorter, card, held_out[0], CPU).argmax(1) == held_out[1]).float().mean().item()
        assert recorded == pytest.approx(scored), epoch
    assert len(set(accuracies)) > 1  # it learns, so the column is not constant
    assert model.selected_epoch == accuracies.index(max(accuracies))
    frame = pd.read_csv(io.StringIO(history_csv(model.training_history)))
    assert list(frame.columns) == ["epoch", "loss", "lr", "val_accuracy", "seconds"]
    assert frame["val_accuracy"].tolist() == pytest.approx(accuracies)


def test_stacked_models_carry_their_own_history_matching_fit():
    card = make_stacked_card(epochs=3)
    folds = make_folds()
    stacked = fit_stacked([_tiny(seed) for seed in SEEDS], card, folds, CPU, list(SEEDS))
    for seed, fold, model in zip(SEEDS, folds, stacked):
        alone = fit(_tiny(seed), card, *fold, CPU, seed, progress=False).training_history
        ours = model.training_history
        assert [row["epoch"] for row in ours] == [0, 1, 2]
        assert [row["lr"] for row in ours] == [row["lr"] for row in alone]
        assert [row["loss"] for row in ours] == pytest.approx([row["loss"] for row in alone], rel=1e-4)
    losses = [[row["loss"] for row in model.training_history] for model in stacked]
    assert losses[0] != losses[1]  # each model's own folds, not one shared mean
    assert [row["seconds"] for row in stacked[0].training_history] == [row["seconds"] for row in
                                                                       stacked[1].training_history]


def _tiny(seed: int) -> TinyNet:
    seed_everything(seed)
    return TinyNet()


# ----------------------------------------------------------------------------- run directories


@pytest.fixture(scope="module")
def data():
    protocol = load_protocol(PROTOCOL, roots={"ckplus": "synthetic:small"})
    return attach_images(load_protocol_data(protocol), progress=False)


def tiny_card(tmp_path: Path, lr: str = "1.0e-3"):
    path = tmp_path / f"lr{lr}" / "tiny_microexpnet.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(tiny_microexpnet_card(3, lr, "{name: multistep, milestones: [1, 2], factors: [0.5, 0.1]}"))
    return load_card(path)


def options(out: Path, folds: list[int]) -> RunOptions:
    return RunOptions(out=out, folds=folds, progress=False, speed=False)


def drawn_jobs(monkeypatch) -> list[list[str]]:
    """Record the job labels of every curves plot the runner draws."""
    drawn: list[list[str]] = []
    real = report.plot_training_curves

    def recording(histories, path, title):
        drawn.append(sorted(histories))
        return real(histories, path, title)

    monkeypatch.setattr(report, "plot_training_curves", recording)
    return drawn


def test_each_job_writes_its_history_with_its_files_and_the_run_draws_curves(data, tmp_path, monkeypatch):
    drawn = drawn_jobs(monkeypatch)
    card = tiny_card(tmp_path)
    run_card(data, data.folds(), card, options(tmp_path / "runs", [0, 1]))
    run = RunDir(tmp_path / "runs" / "ckplus_7cls_si" / "tiny_microexpnet")
    for fold in (0, 1):
        job = run.job_dir(0, fold)
        history = pd.read_csv(job / "history.csv")
        assert history["epoch"].tolist() == [0, 1, 2]
        assert history["lr"].tolist() == pytest.approx([1e-3, 0.5e-3, 0.1e-3])
        assert (history["loss"] > 0).all() and (history["seconds"] > 0).all()
        assert "val_accuracy" not in history  # CK+ has no validation set
        done = json.loads((job / "DONE").read_text())
        assert done["files"]["history.csv"] == sha256_file(job / "history.csv")
    assert (run.root / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn == [["seed0 fold0", "seed0 fold1"]]


def test_resume_keeps_history_and_curves_consistent(data, tmp_path, monkeypatch):
    out = tmp_path / "runs"
    run = RunDir(out / "ckplus_7cls_si" / "tiny_microexpnet")
    run_card(data, data.folds(), tiny_card(tmp_path), options(out, [0, 1]))
    fold1 = run.job_dir(0, 1) / "history.csv"
    edited = pd.read_csv(fold1)
    losses = edited["loss"].tolist()
    edited.loc[0, "loss"] = 99.0
    edited.to_csv(fold1, index=False)  # an edited history: the job is redone
    assert run.check_job(0, 1, json.loads((run.job_dir(0, 1) / "DONE").read_text())["fingerprint"]) == \
        "history.csv does not match DONE"
    drawn = drawn_jobs(monkeypatch)
    run_card(data, data.folds(), tiny_card(tmp_path), options(out, [0, 1]))
    assert pd.read_csv(fold1)["loss"].tolist() == losses  # rewritten by the redone job (same seed, same losses)
    assert drawn == [["seed0 fold0", "seed0 fold1"]]
    # a changed recipe, rerun on fold 0 only: the summary aggregates that job alone, and so do the curves
    run_card(data, data.folds(), tiny_card(tmp_path, lr="2.0e-3"), options(out, [0]))
    summary = json.loads((run.root / "summary.json").read_text())
    assert [(job["seed"], job["fold"]) for job in summary["jobs"]] == [(0, 0)]
    assert drawn[-1] == ["seed0 fold0"]


def test_classical_models_write_no_history_and_a_stale_curves_picture_goes(data, tmp_path):
    out = tmp_path / "runs"
    run = RunDir(out / "ckplus_7cls_si" / "lbp_svm")
    run.root.mkdir(parents=True)
    (run.root / "curves.png").write_bytes(b"stale")
    run_card(data, data.folds(), load_card("lbp_svm"), options(out, [0]))
    assert (run.job_dir(0, 0) / "metrics.json").is_file()
    assert not (run.job_dir(0, 0) / "history.csv").exists()
    assert not (run.root / "curves.png").exists()
