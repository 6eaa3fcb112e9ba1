"""The runner: output schema, resume after a crash, determinism, and train/test isolation."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ferbench.jobs as jobs
from ferbench.cards import load_card
from ferbench.pipeline import attach_images, load_protocol_data
from ferbench.protocol import load_protocol
from ferbench.runner import RunOptions, run_card
from ferbench.runs import HEADER_KEYS, TRAIN_CROSS_VALIDATED, TRAIN_HELD_OUT_TARGET

from helpers import tiny_microexpnet_card

PROTOCOL = Path(__file__).parents[1] / "protocols" / "ckplus_7cls_si.yaml"



@pytest.fixture(scope="module")
def data():
    protocol = load_protocol(PROTOCOL, roots={"ckplus": "synthetic:small"})
    return attach_images(load_protocol_data(protocol), progress=False)


def tiny_card(tmp_path, lr="1.0e-3"):
    path = tmp_path / f"lr{lr}" / "tiny_microexpnet.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(tiny_microexpnet_card(2, lr))
    return load_card(path)


def count_fits(monkeypatch):
    calls = []
    real_fit = jobs.fit

    def counting_fit(model, card, images, labels, *args, **kwargs):
        calls.append((card.name, images.clone(), labels.clone()))
        return real_fit(model, card, images, labels, *args, **kwargs)

    monkeypatch.setattr(jobs, "fit", counting_fit)
    return calls


def options(out, **kw):
    return RunOptions(out=out, folds=kw.pop("folds", [0, 1]), progress=False, speed=kw.pop("speed", False), **kw)


def test_outputs_follow_the_documented_schema(data, tmp_path):
    card = tiny_card(tmp_path)
    summary = run_card(data, data.folds(), card, options(tmp_path / "runs", speed=True))
    run = tmp_path / "runs" / "ckplus_7cls_si" / "tiny_microexpnet"
    for name in ("run.json", "protocol.resolved.yaml", "card.resolved.yaml", "env.json", "folds.json",
                 "preprocess.json", "preprocess_images.csv", "summary.json", "speed.json", "confusion.png"):
        assert (run / name).is_file(), name
    framed = pd.read_csv(run / "preprocess_images.csv", keep_default_na=False)
    assert framed["key"].tolist() == data.keys()  # every kept image, in sample order
    assert framed["label"].tolist() == [data.protocol.classes[k] for k in data.y]
    [report] = json.loads((run / "preprocess.json").read_text())
    assert framed["method"].value_counts().to_dict() == {m: n for m, n in report["report"]["methods"].items() if n}
    assert (framed["left_eye_x"] == "").all()  # no eyes outside face: align
    for fold in (0, 1):
        job = run / "seed0" / f"fold{fold}"
        for name in ("metrics.json", "predictions.csv", "confusion.csv", "model.pt", "DONE"):
            assert (job / name).is_file(), name
        predictions = pd.read_csv(job / "predictions.csv")
        assert list(predictions.columns[:4]) == ["path", "subject", "true", "predicted"]
        assert [c for c in predictions.columns if c.startswith("p_")] == [f"p_{c}" for c in data.protocol.classes]
        assert len(predictions) == len(data.folds()[fold].test)
        assert predictions["path"].tolist() == [data.keys()[i] for i in data.folds()[fold].test]  # root-relative
        assert np.allclose(predictions.filter(like="p_").sum(axis=1), 1.0, atol=1e-4)
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    for key in ("protocol", "fingerprint", "model", "classes", "metrics", "confusion", "params", "complete"):
        assert key in on_disk, key
    assert on_disk["complete"] is False and on_disk["jobs_done"] == 2 and on_disk["jobs_total"] == 10
    assert [(job["seed"], job["fold"]) for job in on_disk["jobs"]] == [(0, 0), (0, 1)]
    assert on_disk["train_status"] == TRAIN_CROSS_VALIDATED
    header = json.loads((run / "run.json").read_text())
    assert {key: header[key] for key in HEADER_KEYS} == {key: on_disk[key] for key in HEADER_KEYS}
    assert set(on_disk["metrics"]) >= {"accuracy", "macro_f1", "uar"}
    assert np.asarray(on_disk["confusion"]).sum() == sum(len(data.folds()[k].test) for k in (0, 1))
    folds = json.loads((run / "folds.json").read_text())
    assert not set(folds[0]["train_subjects"]) & set(folds[0]["test_subjects"])


def test_resume_skips_finished_folds_and_redoes_unfinished(data, tmp_path, monkeypatch):
    calls = count_fits(monkeypatch)
    card = tiny_card(tmp_path)
    out = tmp_path / "runs"
    run_card(data, data.folds(), card, options(out))
    assert len(calls) == 2
    # simulate a crash inside fold 1: its files may exist, but DONE was never written
    (out / "ckplus_7cls_si" / "tiny_microexpnet" / "seed0" / "fold1" / "DONE").unlink()
    run_card(data, data.folds(), card, options(out))
    assert len(calls) == 3  # only fold 1 again
    run_card(data, data.folds(), card, options(out))
    assert len(calls) == 3  # nothing left to do
    run_card(data, data.folds(), tiny_card(tmp_path, lr="2.0e-3"), options(out))
    assert len(calls) == 5  # a changed recipe never reuses stale folds


def test_epochs_and_repeats_are_trained_and_recorded_as_deviations(data, tmp_path, monkeypatch):
    monkeypatch.delenv("FERBENCH_MEMORY_FORMAT", raising=False)
    trained = []
    real_fit = jobs.fit
    monkeypatch.setattr(jobs, "fit", lambda model, card, *a, **kw: trained.append(card) or real_fit(model, card, *a, **kw))
    summary = run_card(data, data.folds(), tiny_card(tmp_path), options(tmp_path / "runs", folds=[0], epochs=1, repeats=2))
    assert summary["deviations"] == {"epochs": 1, "repeats": 2}
    assert (trained[0].recipe.epochs, trained[0].recipe.repeats) == (1, 2)
    env = json.loads((tmp_path / "runs" / "ckplus_7cls_si" / "tiny_microexpnet" / "env.json").read_text())
    assert env["deviations"] == {"epochs": 1, "repeats": 2}
    assert env["memory_format"] == {"setting": "auto", "cpu": "channels_last", "cuda": "contiguous"}  # MicroExpNet
    classical = run_card(data, data.folds(), load_card("lbp_svm"), options(tmp_path / "runs", folds=[0], repeats=2))
    assert classical["deviations"] == {}  # a classical card has no recipe to shorten


def test_same_seed_gives_same_predictions(data, tmp_path):
    card = tiny_card(tmp_path)
    for out in ("a", "b"):
        run_card(data, data.folds(), card, options(tmp_path / out, folds=[0]))
    read = lambda out: (tmp_path / out / "ckplus_7cls_si" / "tiny_microexpnet" / "seed0" / "fold0" / "predictions.csv").read_text()
    assert read("a") == read("b")
    run_card(data, data.folds(), card, options(tmp_path / "c", folds=[0], seeds=[1]))
    other = (tmp_path / "c" / "ckplus_7cls_si" / "tiny_microexpnet" / "seed1" / "fold0" / "predictions.csv").read_text()
    assert other != read("a")


def test_no_test_fold_image_reaches_the_optimiser(data, tmp_path, monkeypatch):
    calls = count_fits(monkeypatch)
    run_card(data, data.folds(), tiny_card(tmp_path), options(tmp_path / "runs"))
    digest = lambda row: hashlib.sha1(np.ascontiguousarray(row).tobytes()).hexdigest()
    for (_, images, labels), fold in zip(calls, data.folds()[:2]):
        seen = {digest(row) for row in images.numpy()}
        assert seen == {digest(data.images[i]) for i in fold.train}
        assert not seen & {digest(data.images[i]) for i in fold.test}
        assert labels.tolist() == data.y[fold.train].tolist()
        train_subjects = {data.samples[i].subject for i in fold.train}
        assert not train_subjects & {data.samples[i].subject for i in fold.test}


def test_classical_card_runs_and_reports_speed(data, tmp_path):
    summary = run_card(data, data.folds(), load_card("lbp_svm"), options(tmp_path / "runs", speed=True, folds=[0]))
    assert summary["jobs_done"] == 1
    assert summary["speed"]["params"] > 0
    assert 0.0 <= summary["metrics"]["accuracy"]["mean"] <= 1.0


def test_cross_dataset_reports_source_target_and_drop(tmp_path):
    path = PROTOCOL.parent / "cross_ckplus_jaffe_cspp.yaml"
    protocol = load_protocol(path, roots={"ckplus": "synthetic:small", "jaffe": "synthetic:small"})
    data = attach_images(load_protocol_data(protocol), progress=False)
    summary = run_card(data, data.folds(), load_card("lbp_svm"), options(tmp_path / "runs", folds=[0, 1]))
    job = tmp_path / "runs" / "cross_ckplus_jaffe_cspp" / "lbp_svm" / "seed0" / "fold0"
    per_fold = json.loads((job / "metrics.json").read_text())
    assert per_fold["source"]["n"] == len(data.folds()[0].test)
    assert per_fold["target"]["n"] == len(data.target.samples)  # every fold model sees the whole target
    assert len(pd.read_csv(job / "predictions_target.csv")) == len(data.target.samples)
    assert summary["cross_dataset"] is True and summary["train_status"] == TRAIN_HELD_OUT_TARGET
    source, target = summary["source_metrics"]["accuracy"]["mean"], summary["metrics"]["accuracy"]["mean"]
    assert summary["drop"]["drop"] == pytest.approx(source - target)


def test_official_split_selects_on_validation_never_on_test(tmp_path, monkeypatch):
    path = PROTOCOL.parent / "fer2013_official.yaml"
    data = attach_images(load_protocol_data(load_protocol(path, roots={"fer2013": "synthetic:small"})), progress=False)
    (fold,) = data.folds()
    usage = [s.attrs["usage"] for s in data.samples]
    seen = {}
    real_fit = jobs.fit

    def spy(model, card, images, labels, *args, validation=None, **kwargs):
        seen["validation"] = validation
        return real_fit(model, card, images, labels, *args, validation=validation, **kwargs)

    monkeypatch.setattr(jobs, "fit", spy)
    card = tiny_card(tmp_path)
    run_card(data, [fold], card, options(tmp_path / "runs", folds=[0]))
    assert {usage[i] for i in fold.validation} == {"PublicTest"}
    assert {usage[i] for i in fold.test} == {"PrivateTest"}
    assert seen["validation"][1].tolist() == data.y[fold.validation].tolist()
    metrics = json.loads((tmp_path / "runs" / "fer2013_official" / "tiny_microexpnet" / "seed0" / "fold0"
                          / "metrics.json").read_text())
    assert 0 <= metrics["selected_epoch"] < 2
