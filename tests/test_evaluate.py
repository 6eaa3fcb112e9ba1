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
from ferbench.cli import app
from ferbench.errors import DataError, FerbenchError, UnknownName
from ferbench.evaluate import LabelMapping, evaluate_checkpoint, load_trained_model
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
    """A run of a tiny plug-in model on fold 0 of ckplus_7cls_si (small twin); returns its directory."""
    folder = tmp_path_factory.mktemp("trained")
    (folder / "tiny_plugin.yaml").write_text(CARD)
    card = load_card(folder / "tiny_plugin.yaml")
    run_card(data7, data7.folds(), card, RunOptions(out=folder / "runs", folds=[0], progress=False, speed=False))
    return folder / "runs" / "ckplus_7cls_si" / "tiny_plugin"


def evaluate_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["evaluate", *args])
    return result.exit_code, result.output


def predictions(folder: Path, name: str = "predictions.csv") -> pd.DataFrame:
    return pd.read_csv(folder / "seed0" / "fold0" / name).set_index("path")


def test_state_dict_in_a_run_directory_needs_no_card_or_labels(run, data7, tmp_path):
    code, output = evaluate_cli(str(PROTOCOLS / "ckplus_7cls_si.yaml"), "--root", "ckplus=synthetic:small",
                                "--checkpoint", str(run / "seed0" / "fold0" / "model.pt"), "--out", str(tmp_path))
    assert code == 0, output
    out = tmp_path / "ckplus_7cls_si" / "tiny_plugin"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluated"] is True and summary["complete"] is True and summary["jobs_done"] == 1
    assert summary["checkpoint"]["kind"] == "state_dict" and summary["params"] == 23863
    assert summary["label_mapping"] == {"model_labels": list(CLASSES7), "missing": [], "missing_samples": 0,
                                        "dropped": [], "dropped_mass": 0.0}
    assert sum(map(sum, summary["confusion"])) == len(data7.samples) == 120  # every fold's test set
    assert (out / "confusion.png").is_file()
    fold0 = json.loads((out / "folds.json").read_text())[0]
    assert fold0["test_keys"] == sorted(s.relative_key(data7.sources[0].root) for s in data7.samples)
    assert {k: v for k, v in fold0.items() if not k.endswith("_keys")} | {"train_subjects": None} == {
        "fold": 0, "train": 0, "test": 120, "train_subjects": None,
        "test_subjects": sorted({str(s.subject) for s in data7.samples})}
    evaluated, trained = predictions(out), predictions(run)
    assert len(evaluated) == 120 and len(trained) == len(data7.folds()[0].test)
    # the same model on the same crops: the trained run's own fold-0 predictions are reproduced
    columns = [f"p_{c}" for c in CLASSES7]
    assert np.allclose(evaluated.loc[trained.index, columns], trained[columns], atol=2e-6)


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


def test_model_classes_the_protocol_lacks_are_dropped_and_renormalised(run, tmp_path):
    data6 = protocol_data("ckplus_6cls_si")
    trained = load_trained_model(run / "seed0" / "fold0" / "model.pt")
    summary = evaluate_checkpoint(data6, trained, tmp_path, device="cpu")
    mapping = summary["label_mapping"]
    assert (mapping["dropped"], mapping["missing"]) == (["contempt"], [])
    model_probs = trained.predict_proba(data6.images, "cpu")
    assert mapping["dropped_mass"] == pytest.approx(model_probs[:, 1].mean(), rel=1e-6)
    shared = model_probs[:, [0, 2, 3, 4, 5, 6]]
    written = predictions(tmp_path / "ckplus_6cls_si" / "tiny_plugin")
    assert [c for c in written.columns if c.startswith("p_")] == [f"p_{c}" for c in data6.protocol.classes]
    assert np.allclose(written.filter(like="p_").to_numpy(), shared / shared.sum(axis=1, keepdims=True), atol=2e-6)


def test_protocol_classes_the_model_lacks_fail_or_count_as_wrong(run, tmp_path):
    data8 = protocol_data("ckplus_8cls_si")
    trained = load_trained_model(run / "seed0" / "fold0" / "model.pt")
    with pytest.raises(FerbenchError, match="no output for the protocol's classes neutral.*--allow-missing"):
        evaluate_checkpoint(data8, trained, tmp_path)
    summary = evaluate_checkpoint(data8, trained, tmp_path, device="cpu", allow_missing=True)
    neutral = data8.protocol.classes.index("neutral")
    assert summary["label_mapping"]["missing"] == ["neutral"]
    assert summary["label_mapping"]["missing_samples"] == int((data8.y == neutral).sum()) > 0
    written = predictions(tmp_path / "ckplus_8cls_si" / "tiny_plugin")
    assert (written["p_neutral"] == 0).all() and (written["predicted"] != "neutral").all()
    confusion = np.asarray(summary["confusion"])
    assert confusion[neutral, neutral] == 0 and confusion[neutral].sum() == (data8.y == neutral).sum()


def test_cross_dataset_protocols_evaluate_the_whole_target(run, tmp_path):
    data = protocol_data("cross_ckplus_jaffe_miao")
    summary = evaluate_checkpoint(data, load_trained_model(run / "seed0" / "fold0" / "model.pt"), tmp_path,
                                  device="cpu")
    out = tmp_path / "cross_ckplus_jaffe_miao" / "tiny_plugin"
    assert summary["cross_dataset"] is True and summary["complete"] is True
    assert len(predictions(out, "predictions_target.csv")) == len(data.target.samples)
    assert sum(map(sum, summary["confusion"])) == len(data.target.samples)
    assert not (out / "seed0" / "fold0" / "predictions.csv").exists()


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
