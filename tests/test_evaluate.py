"""``ferbench evaluate``: checkpoints of every kind, label mapping, run-directory output, errors."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from ferbench.cards import load_card
from ferbench.checkpoints import load_trained_model
from ferbench.cli import app
from ferbench.errors import DataError, FerbenchError, UnknownName
from ferbench.evaluate import LabelMapping, evaluate_checkpoint
from ferbench.pipeline import attach_images, load_protocol_data
from ferbench.protocol import load_protocol
from ferbench.runner import RunOptions, run_card
from helpers import CLASSES7, REPO, TINY_PLUGIN_CARD

PROTOCOLS = REPO / "protocols"
SMALL = {"ckplus": "synthetic:small", "jaffe": "synthetic:small"}
CARD = TINY_PLUGIN_CARD


def protocol_data(name: str):
    protocol = load_protocol(PROTOCOLS / f"{name}.yaml", roots=SMALL)
    return attach_images(load_protocol_data(protocol), progress=False)


@pytest.fixture(scope="module")
def data7():
    return protocol_data("ckplus_7cls_si")


@pytest.fixture(scope="module")
def run(data7, tmp_path_factory) -> Path:
    """A finished run (every fold) of a tiny plug-in model on ckplus_7cls_si (small twin); returns its directory."""
    folder = tmp_path_factory.mktemp("trained")
    (folder / "tiny_plugin.yaml").write_text(CARD)
    card = load_card(folder / "tiny_plugin.yaml")
    run_card(data7, data7.folds(), card, RunOptions(out=folder / "runs", progress=False, speed=False))
    return folder / "runs" / "ckplus_7cls_si" / "tiny_plugin"


def evaluate_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["evaluate", *args])
    return result.exit_code, result.output


def predictions(folder: Path, name: str = "predictions.csv", fold: int = 0) -> pd.DataFrame:
    return pd.read_csv(folder / "seed0" / f"fold{fold}" / name).set_index("path")


def job_metrics(folder: Path, fold: int) -> dict:
    return json.loads((folder / "seed0" / f"fold{fold}" / "metrics.json").read_text())


def trained_subjects(data, fold: int) -> set:
    """Subjects of the ckplus_7cls_si fold's training samples (what the run's fold model saw)."""
    return {data.samples[i].subject for i in data.folds()[fold].train}


def held_out_keys(data, subjects: set) -> list[str]:
    """Root-relative keys of ``data``'s samples whose subject is not in ``subjects``."""
    return sorted(key for s, key in zip(data.samples, data.keys()) if s.subject not in subjects)


def test_a_fold_model_is_scored_on_exactly_its_test_fold_and_reproduces_its_metrics(run, data7, tmp_path):
    code, output = evaluate_cli(str(PROTOCOLS / "ckplus_7cls_si.yaml"), "--root", "ckplus=synthetic:small",
                                "--checkpoint", str(run / "seed0" / "fold3" / "model.pt"), "--out", str(tmp_path))
    assert code == 0, output
    out = tmp_path / "ckplus_7cls_si" / "tiny_plugin"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluated"] is True and summary["complete"] is True and summary["jobs_done"] == 1
    assert summary["checkpoint"]["kind"] == "state_dict" and summary["params"] == 23863
    assert summary["label_mapping"] == {"model_labels": list(CLASSES7), "missing": [], "missing_samples": 0,
                                        "dropped": [], "dropped_mass": 0.0}
    fold3 = data7.folds()[3]
    test_subjects = {data7.samples[i].subject for i in fold3.test}
    assert summary["train_status"] == "cross-validated"
    assert summary["trained_in"] == {"run": str(run), "protocol": "ckplus_7cls_si", "same_protocol": True}
    assert [{k: v for k, v in job.items() if k not in ("checkpoint", "sha256")} for job in summary["held_out"]] == [
        {"seed": 0, "fold": 3, "scored": len(fold3.test), "removed": 120 - len(fold3.test),
         "removed_subjects": len({s.subject for s in data7.samples} - test_subjects)}]
    assert 0 < len(fold3.test) < 120
    # the very numbers of the run's own fold 3
    assert job_metrics(out, 3)["test"] == job_metrics(run, 3)["test"]
    assert summary["metrics"]["accuracy"]["mean"] == job_metrics(run, 3)["test"]["accuracy"]
    evaluated_fold = json.loads((out / "folds.json").read_text())
    assert [entry["fold"] for entry in evaluated_fold] == [3]
    assert evaluated_fold[0]["test_keys"] == json.loads((run / "folds.json").read_text())[3]["test_keys"] == \
        sorted(data7.keys()[i] for i in fold3.test)
    evaluated, trained = predictions(out, fold=3), predictions(run, fold=3)
    assert sorted(evaluated.index) == sorted(trained.index)
    columns = [f"p_{c}" for c in CLASSES7]
    assert np.allclose(evaluated.loc[trained.index, columns], trained[columns], atol=2e-6)
    assert (out / "confusion.png").is_file()
    table = next(line for line in output.splitlines() if line.startswith("| ckplus_7cls_si"))
    assert [cell.strip() for cell in table.strip("|").split("|")][2:3] == ["cross-validated"]
    assert f"{120 - len(fold3.test)} samples of" in output


def test_a_checkpoint_without_training_record_is_external_and_scored_on_everything(run, data7, tmp_path):
    copied = tmp_path / "copied.pt"
    shutil.copy(run / "seed0" / "fold0" / "model.pt", copied)  # outside its run: training data unknown
    code, output = evaluate_cli(str(PROTOCOLS / "ckplus_7cls_si.yaml"), "--root", "ckplus=synthetic:small",
                                "--checkpoint", str(copied), "--model", str(run.parents[2] / "tiny_plugin.yaml"),
                                "--labels", ",".join(CLASSES7), "--out", str(tmp_path / "out"))
    assert code == 0, output
    out = tmp_path / "out" / "ckplus_7cls_si" / "tiny_plugin"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_status"] == "external (training data unknown)" and summary["trained_in"] is None
    assert [(j["seed"], j["fold"], j["scored"], j["removed"]) for j in summary["held_out"]] == [(0, 0, 120, 0)]
    assert sum(map(sum, summary["confusion"])) == len(data7.samples) == 120  # every fold's test set
    assert len(predictions(out)) == 120
    assert "external (training data unknown)" in output and "training record" not in output


def test_a_trained_run_is_never_overwritten_but_can_sit_beside_its_evaluation(run):
    args = (str(PROTOCOLS / "ckplus_7cls_si.yaml"), "--root", "ckplus=synthetic:small",
            "--checkpoint", str(run / "seed0" / "fold0" / "model.pt"), "--out", str(run.parents[1]))
    code, output = evaluate_cli(*args)
    assert code == 2 and "holds a trained run" in output
    code, output = evaluate_cli(*args, "--name", "Tiny/Eval")
    assert code == 2 and "--name `Tiny/Eval`: String should match pattern" in output
    code, output = evaluate_cli(*args, "--name", "tiny_eval")
    assert code == 0, output
    assert json.loads((run.parent / "tiny_eval" / "summary.json").read_text())["evaluated"] is True
    assert json.loads((run / "summary.json").read_text()).get("evaluated") is None  # the trained run is untouched


def test_under_the_6_class_protocol_the_trained_subjects_are_removed_and_counted(run, data7, tmp_path):
    data6 = protocol_data("ckplus_6cls_si")
    trained = load_trained_model(run / "seed0" / "fold0" / "model.pt")
    summary = evaluate_checkpoint(data6, trained, tmp_path, device="cpu")
    subjects = trained_subjects(data7, 0)
    kept = held_out_keys(data6, subjects)
    removed = [s for s in data6.samples if s.subject in subjects]
    assert summary["train_status"] == "cross-validated" and summary["trained_in"]["same_protocol"] is False
    job = summary["held_out"][0]
    assert (job["fold"], job["scored"], job["removed"], job["removed_subjects"]) == (
        0, len(kept), len(removed), len({s.subject for s in removed}))
    assert len(kept) + len(removed) == len(data6.samples) and 0 < len(kept) < len(removed)
    written = predictions(tmp_path / "ckplus_6cls_si" / "tiny_plugin")
    assert sorted(written.index) == kept
    # exactly the run's fold-0 test images without the contempt ones
    fold0 = data7.folds()[0]
    assert kept == sorted(data7.keys()[i] for i in fold0.test if data7.samples[i].label != "contempt")
    mapping = summary["label_mapping"]
    assert (mapping["dropped"], mapping["missing"]) == (["contempt"], [])
    index = [data6.keys().index(key) for key in written.index]
    model_probs = trained.predict_proba(data6.images[index], "cpu")
    assert mapping["dropped_mass"] == pytest.approx(model_probs[:, 1].mean(), rel=1e-6)
    shared = model_probs[:, [0, 2, 3, 4, 5, 6]]
    assert [c for c in written.columns if c.startswith("p_")] == [f"p_{c}" for c in data6.protocol.classes]
    assert np.allclose(written.filter(like="p_").to_numpy(), shared / shared.sum(axis=1, keepdims=True), atol=2e-6)


def test_protocol_classes_the_model_lacks_fail_or_count_as_wrong(run, data7, tmp_path):
    data8 = protocol_data("ckplus_8cls_si")
    trained = load_trained_model(run / "seed0" / "fold0" / "model.pt")
    with pytest.raises(FerbenchError, match="no output for the protocol's classes neutral.*--allow-missing"):
        evaluate_checkpoint(data8, trained, tmp_path)
    summary = evaluate_checkpoint(data8, trained, tmp_path, device="cpu", allow_missing=True)
    neutral = data8.protocol.classes.index("neutral")
    held_out = np.array([s.subject not in trained_subjects(data7, 0) for s in data8.samples])
    y = data8.y[held_out]
    assert summary["held_out"][0]["scored"] == held_out.sum() < len(data8.samples)
    assert summary["label_mapping"]["missing"] == ["neutral"]
    assert summary["label_mapping"]["missing_samples"] == int((y == neutral).sum()) > 0
    written = predictions(tmp_path / "ckplus_8cls_si" / "tiny_plugin")
    assert (written["p_neutral"] == 0).all() and (written["predicted"] != "neutral").all()
    confusion = np.asarray(summary["confusion"])
    assert confusion[neutral, neutral] == 0 and confusion[neutral].sum() == (y == neutral).sum()


def test_cross_dataset_protocols_evaluate_the_whole_target_as_held_out(run, tmp_path):
    data = protocol_data("cross_ckplus_jaffe_miao")
    summary = evaluate_checkpoint(data, load_trained_model(run / "seed0" / "fold0" / "model.pt"), tmp_path,
                                  device="cpu")
    out = tmp_path / "cross_ckplus_jaffe_miao" / "tiny_plugin"
    assert summary["cross_dataset"] is True and summary["complete"] is True
    assert summary["train_status"] == "held-out target"
    assert (summary["held_out"][0]["scored"], summary["held_out"][0]["removed"]) == (len(data.target.samples), 0)
    assert len(predictions(out, "predictions_target.csv")) == len(data.target.samples)
    assert sum(map(sum, summary["confusion"])) == len(data.target.samples)
    assert not (out / "seed0" / "fold0" / "predictions.csv").exists()


def test_run_rescores_every_fold_model_on_its_own_test_fold(run, data7, tmp_path):
    code, output = evaluate_cli(str(PROTOCOLS / "ckplus_7cls_si.yaml"), "--root", "ckplus=synthetic:small",
                                "--run", str(run), "--out", str(tmp_path))
    assert code == 0, output
    out = tmp_path / "ckplus_7cls_si" / "tiny_plugin"
    summary, trained = json.loads((out / "summary.json").read_text()), json.loads((run / "summary.json").read_text())
    folds = data7.folds()
    assert summary["train_status"] == "cross-validated" and summary["complete"] is True
    assert summary["jobs_done"] == summary["jobs_total"] == len(folds) == 10
    assert [(j["fold"], j["scored"], j["removed"]) for j in summary["held_out"]] == [
        (f.index, len(f.test), 120 - len(f.test)) for f in folds]
    for fold in folds:
        assert job_metrics(out, fold.index)["test"] == job_metrics(run, fold.index)["test"]
    assert summary["metrics"] == trained["metrics"] and summary["confusion"] == trained["confusion"]
    assert "cross-validated" in output

    data6 = protocol_data("ckplus_6cls_si")  # the 7-class run's cross-validation, under the 6-class protocol
    code, output = evaluate_cli(str(PROTOCOLS / "ckplus_6cls_si.yaml"), "--root", "ckplus=synthetic:small",
                                "--run", str(run), "--out", str(tmp_path))
    assert code == 0, output
    out6 = tmp_path / "ckplus_6cls_si" / "tiny_plugin"
    summary = json.loads((out6 / "summary.json").read_text())
    for fold, job in zip(folds, summary["held_out"]):
        kept = held_out_keys(data6, trained_subjects(data7, fold.index))
        assert (job["fold"], job["scored"], job["removed"]) == (fold.index, len(kept), len(data6.samples) - len(kept))
        if kept:
            assert sorted(predictions(out6, fold=fold.index).index) == kept
        else:  # its test subjects showed only contempt: nothing held out under 6 classes, no job
            assert not (out6 / "seed0" / f"fold{fold.index}").exists()
    assert summary["jobs_done"] == summary["jobs_total"] == sum(1 for job in summary["held_out"] if job["scored"])
    assert sum(job["scored"] for job in summary["held_out"]) == len(data6.samples)  # each sample scored once
    assert sum(map(sum, summary["confusion"])) == len(data6.samples)


def test_run_refusals(run, tmp_path):
    protocol = str(PROTOCOLS / "ckplus_7cls_si.yaml")
    model = str(run / "seed0" / "fold0" / "model.pt")
    roots = ("--root", "ckplus=synthetic:small", "--out", str(tmp_path))
    code, output = evaluate_cli(protocol, *roots)
    assert code == 2 and "exactly one of --checkpoint FILE and --run RUN_DIR" in output
    code, output = evaluate_cli(protocol, *roots, "--run", str(run), "--checkpoint", model)
    assert code == 2 and "exactly one of --checkpoint FILE and --run RUN_DIR" in output
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run, unfinished)
    (unfinished / "seed0" / "fold4" / "DONE").unlink()
    code, output = evaluate_cli(protocol, *roots, "--run", str(unfinished))
    assert code == 2 and "not a finished run, job seed0/fold4 is not done" in output
    code, output = evaluate_cli(protocol, *roots, "--run", str(run / "seed0"))
    assert code == 2 and "not a run directory of `ferbench run` (no summary.json)" in output
    code, output = evaluate_cli(str(PROTOCOLS / "jaffe_7cls_loso.yaml"), "--root", "jaffe=synthetic:small",
                                "--out", str(tmp_path), "--run", str(run))
    assert code == 2 and "trained on ckplus (synthetic:small) but protocol jaffe_7cls_loso selects jaffe " \
                         "(synthetic:small)" in output
    code, output = evaluate_cli(protocol, *roots, "--checkpoint", model, "--name", "tiny_eval")
    assert code == 0, output
    evaluation = tmp_path / "ckplus_7cls_si" / "tiny_eval"
    code, output = evaluate_cli(protocol, *roots, "--run", str(evaluation))
    assert code == 2 and "an evaluation holds no models" in output
    code, output = evaluate_cli(protocol, *roots, "--checkpoint", str(run / "seed0" / "fold5" / "model.pt"),
                                "--name", "tiny_eval")
    assert code == 0, output  # the evaluation of fold 0 it replaces leaves no job behind
    assert sorted(p.name for p in evaluation.glob("seed*/fold*")) == ["fold5"]


def test_torchscript_checkpoint_with_card_and_labels(run, data7, tmp_path):
    trained = load_trained_model(run / "seed0" / "fold0" / "model.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices
        scripted = torch.jit.trace(trained.model, torch.zeros(1, 1, 48, 48))
        torch.jit.save(scripted, tmp_path / "scripted.pt")
    card = str(run.parents[2] / "tiny_plugin.yaml")
    with pytest.raises(FerbenchError, match="has 7 outputs but its label order names 6"):
        load_trained_model(tmp_path / "scripted.pt", card, CLASSES7[:6]).predict_proba(data7.images[:2])
    script = load_trained_model(tmp_path / "scripted.pt", card, CLASSES7)
    assert script.kind == "torchscript"
    assert np.allclose(script.predict_proba(data7.images), trained.predict_proba(data7.images), atol=1e-6)


def test_checkpoint_errors(run, tmp_path):
    state_dict = tmp_path / "copied.pt"
    shutil.copy(run / "seed0" / "fold0" / "model.pt", state_dict)  # outside its run: no card, no labels
    card = str(run.parents[2] / "tiny_plugin.yaml")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="checkpoint file not found"):
        load_trained_model(tmp_path / "missing.pt")
    with pytest.raises(FerbenchError, match="Pass --model CARD"):
        load_trained_model(state_dict)
    with pytest.raises(FerbenchError, match="label order is unknown; pass --labels"):
        load_trained_model(state_dict, card)
    with pytest.raises(DataError, match="does not fit card `tiny_plugin` built for 6 classes"):
        load_trained_model(state_dict, card, CLASSES7[:6])
    with pytest.raises(DataError, match="not a PyTorch state dict file"):
        load_trained_model(tmp_path / "garbage.pt", card, CLASSES7)
    with pytest.raises(UnknownName, match="did you mean `anger`"):
        load_trained_model(state_dict, card, ("angry", *CLASSES7[1:]))
    reordered = (CLASSES7[1], CLASSES7[0], *CLASSES7[2:])
    with pytest.raises(FerbenchError, match="contradicts the label order recorded"):
        load_trained_model(run / "seed0" / "fold0" / "model.pt", labels=reordered)
    assert load_trained_model(state_dict, card, reordered).labels == reordered  # nothing recorded to contradict


def test_label_mapping_arithmetic():
    mapping = LabelMapping(("happy", "anger", "neutral"), ("anger", "happy", "fear"))
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    assert np.allclose(mapping.apply(probs), [[0.375, 0.625, 0.0], [0.5, 0.5, 0.0]])
    assert mapping.report(probs, np.array([2, 0])) == {
        "model_labels": ["happy", "anger", "neutral"], "missing": ["fear"], "missing_samples": 1,
        "dropped": ["neutral"], "dropped_mass": pytest.approx(0.5)}
