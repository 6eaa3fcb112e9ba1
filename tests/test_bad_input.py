"""A user's mistake gets one line, ``error: ...`` naming the option, file or key, and exit status 2;
nothing is silently accepted and no traceback is shown. A real bug keeps its traceback.

Each test runs the command line on the bad input; runs use the small synthetic JAFFE twin and the
classical ``lbp_svm`` card, the cheapest to train.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import ferbench.io
from ferbench.cli import app
from ferbench.errors import DataError
from ferbench.leaderboard.results import load_run
from ferbench.runs import RunDir
from helpers import REPO

JAFFE = str(REPO / "protocols" / "jaffe_6cls_loso.yaml")
SMALL = ["--root", "jaffe=synthetic:small"]
runner = CliRunner()


def fails(args: list[str], message: str) -> str:
    """Run ``ferbench args``; assert exit status 2 and ``message`` in one ``error:`` line; return it."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.output, result.exception)
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert "Traceback" not in result.output
    return errors[0]


def run_jaffe(out: Path, *extra: str) -> list[str]:
    return ["run", JAFFE, *SMALL, "--models", "lbp_svm", "--no-speed", "--out", str(out), *extra]


@pytest.fixture
def no_preprocessing(monkeypatch):
    """Fail the test if the command gets as far as preprocessing the images."""
    def refuse(*args, **kwargs):
        raise AssertionError("preprocessing started: the bad input was not caught up front")

    monkeypatch.setattr("ferbench.pipeline.attach_images", refuse)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished ``lbp_svm`` run of fold 0 of jaffe_6cls_loso (small twin); returns its directory."""
    out = tmp_path_factory.mktemp("runs")
    result = runner.invoke(app, run_jaffe(out, "--folds", "0"))
    assert result.exit_code == 0, result.output
    return out / "jaffe_6cls_loso" / "lbp_svm"


# ----------------------------------------------------------------------------- run options


@pytest.mark.parametrize(("extra", "message"), [
    (["--folds", "99"], "--folds 99: protocol `jaffe_6cls_loso` has no fold 99; it has folds 0-9"),
    (["--folds", "-1"], "--folds -1: -1 is negative; indices count from 0"),
    (["--folds", "0,x"], "--folds 0,x: expected comma-separated integers"),
    (["--folds", ""], "--folds '': names no index"),
    (["--seeds", "0,0"], "--seeds 0,0: 0 is given twice; give each once"),
    (["--models", ""], "--models '': names no model card"),
    (["--models", " , "], "--models ' , ': names no model card"),
    (["--device", "gpu"], "--device gpu: unknown device (did you mean `cpu`?); choose auto, cpu, cuda or cuda:N"),
    (["--root", "ckplus=/data/ck"], "--root ckplus=/data/ck: protocol `jaffe_6cls_loso` reads no dataset `ckplus`; "
                                    "datasets read: jaffe"),
    (["--root", "jafe=/data/jaffe"], "--root jafe=/data/jaffe: unknown dataset `jafe` (did you mean `jaffe`?)"),
])
def test_bad_run_option_is_one_line_before_any_work(tmp_path, no_preprocessing, extra, message):
    fails(run_jaffe(tmp_path / "out", *extra), message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("option", "value"), [("--epochs", "0"), ("--epochs", "-1"), ("--repeats", "0")])
def test_epochs_and_repeats_must_be_positive(tmp_path, no_preprocessing, option, value):
    result = runner.invoke(app, run_jaffe(tmp_path / "out", option, value))
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output
    assert "greater than or equal to 1" in result.output and "Traceback" not in result.output


def test_out_that_is_a_file_is_named(tmp_path, no_preprocessing):
    (tmp_path / "results").write_text("not a folder")
    fails(run_jaffe(tmp_path / "results"), f"--out {tmp_path / 'results'}: {tmp_path / 'results'} is a file, not a folder")
    fails(run_jaffe(tmp_path / "results" / "deeper"), f"{tmp_path / 'results'} is a file, not a folder")


def test_out_that_is_read_only_is_named(tmp_path, no_preprocessing, monkeypatch):
    # os.access is the check: tests may run as root, who may write anywhere
    monkeypatch.setattr("ferbench.cli.common.os.access", lambda path, mode: Path(path) != tmp_path)
    fails(run_jaffe(tmp_path / "new"), f"--out {tmp_path / 'new'}: cannot write into {tmp_path} "
                                       "(read-only or permission denied)")


# ----------------------------------------------------------------------------- protocol and card files


PROTOCOL = """\
id: mine
version: 1
dataset: {name: jaffe, root: synthetic:small}
classes: [anger, happy]
frames: {select: all}
split: {type: subject_kfold, k: 2}
"""


def test_a_boolean_where_a_number_belongs_is_named(tmp_path):
    protocol = tmp_path / "mine.yaml"
    protocol.write_text(PROTOCOL.replace("k: 2", "k: true"))
    fails(["validate", str(protocol)], f"{protocol}:6: split.k: expected an integer, got `true`")
    ckplus = REPO / "protocols" / "ckplus_7cls_si.yaml"
    protocol.write_text(f"include: {ckplus}\nframes: {{select: last_n, n: true}}\n")
    fails(["validate", str(protocol)], f"{protocol}:2: frames.n: expected an integer, got `true`")


def test_a_misspelt_top_level_key_is_named_with_a_suggestion(tmp_path):
    protocol = tmp_path / "mine.yaml"
    protocol.write_text(PROTOCOL.replace("classes:", "clases:"))
    fails(["validate", str(protocol)], f"{protocol}:4: clases: unknown key `clases` (did you mean `classes`?)")


def test_a_boolean_in_a_card_is_named(tmp_path, no_preprocessing):
    card = tmp_path / "lopes_cnn.yaml"
    lines = (REPO / "baselines" / "lopes_cnn.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(lines) if text.strip().startswith("epochs:"))
    lines[line] = "  epochs: true"
    card.write_text("\n".join(lines) + "\n")
    fails(run_jaffe(tmp_path / "out", "--models", str(card)),
          f"{card}:{line + 1}: recipe.epochs: expected an integer, got `true`")


def test_a_misspelt_card_kwarg_fails_before_preprocessing(tmp_path, no_preprocessing):
    card = tmp_path / "microexpnet_xxs.yaml"
    text = (REPO / "baselines" / "microexpnet_xxs.yaml").read_text()
    card.write_text(text.replace("kwargs: {pooling: p12}", "kwargs: {poolng: p12}"))
    line = 1 + text.splitlines().index("kwargs: {pooling: p12}")
    fails(run_jaffe(tmp_path / "out", "--models", str(card)),
          f"{card}:{line}: kwargs.poolng: model `microexpnet_xxs` takes no keyword `poolng`")
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- dataset files


def test_binary_emotion_label_file_is_named(tmp_path):
    root = tmp_path / "ck"
    assert runner.invoke(app, ["synth", "ckplus", str(root), "--shape", "small"]).exit_code == 0
    label = sorted(root.rglob("*_emotion.txt"))[0]
    label.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xd8")
    fails(["inspect", str(REPO / "protocols" / "ckplus_7cls_si.yaml"), "--root", f"ckplus={root}"],
          f"{label}: not a text label file")


def write_generic(tmp_path: Path, manifest: bytes) -> Path:
    """A generic dataset of 4 images (2 happy, 2 sadness; subjects p1..p4) listed in ``manifest``."""
    import cv2
    import numpy as np

    root = tmp_path / "faces"
    for name in ("a", "b", "c", "d"):
        (root / "img").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "img" / f"{name}.png"), np.zeros((8, 8), np.uint8))
    (root / "list.csv").write_bytes(manifest)
    protocol = tmp_path / "faces.yaml"
    protocol.write_text(f"id: faces\nversion: 1\ndataset: {{name: generic, root: {root}, options: {{manifest: list.csv}}}}\n"
                        "classes: [happy, sadness]\nsplit: {type: subject_kfold, k: 2}\n")
    return protocol


MANIFEST = "path,label,subject\nimg/a.png,happy,p1\nimg/b.png,happy,p2\nimg/c.png,sad,p3\nimg/d.png,sad,p4\n"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_manifest_with_a_byte_order_mark_loads(tmp_path, encoding):
    protocol = write_generic(tmp_path, MANIFEST.encode(encoding))
    result = runner.invoke(app, ["inspect", str(protocol), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert (info["total"], info["per_class"], info["subjects"]) == (4, {"happy": 2, "sadness": 2}, 4)


def test_manifest_that_is_no_utf8_is_named(tmp_path):
    protocol = write_generic(tmp_path, MANIFEST.replace("sad", "träurig").encode("latin-1"))
    fails(["inspect", str(protocol)], f"{tmp_path / 'faces' / 'list.csv'}: not a UTF-8 text file")


# ----------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_truncated_model_pkl_is_named(tmp_path, command):
    checkpoint = tmp_path / "model.pkl"
    checkpoint.write_bytes(pickle.dumps({"weights": list(range(100))})[:40])
    target = [str(tmp_path / "face.png")] if command == "predict" else [JAFFE, *SMALL]
    fails([command, *target, "--checkpoint", str(checkpoint), "--model", "lbp_svm", "--labels", "anger,happy"],
          f"{checkpoint}: truncated or not a pickle")
    checkpoint.write_bytes(pickle.dumps({"weights": [1, 2]}))
    fails([command, *target, "--checkpoint", str(checkpoint), "--model", "lbp_svm", "--labels", "anger,happy"],
          f"{checkpoint}: holds a dict, not a classical model with predict_proba()")


def test_random_bytes_pt_is_named_without_torch_advice(tmp_path):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(os.urandom(4096))
    line = fails(["predict", str(tmp_path / "face.png"), "--checkpoint", str(checkpoint), "--model", "microexpnet_xxs",
                  "--labels", "anger,happy"], f"{checkpoint}: not a PyTorch state dict")
    assert "weights_only" not in line
    torch.save(torch.nn.Linear(2, 2), checkpoint)  # a whole module, not its state dict
    line = fails(["predict", str(tmp_path / "face.png"), "--checkpoint", str(checkpoint), "--model", "microexpnet_xxs",
                  "--labels", "anger,happy"], f"{checkpoint}: not a PyTorch state dict file: it holds pickled Python "
                                              "objects, not only tensors (a whole model saved with torch.save(model)?)")
    assert "weights_only" not in line


# ----------------------------------------------------------------------------- full disk, leaderboard, bugs


def test_full_disk_names_the_file_and_keeps_finished_jobs(tmp_path, monkeypatch):
    real_replace = os.replace

    def replace(source, target):
        if "fold1" in str(target):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write() raises it: no file name
        real_replace(source, target)

    monkeypatch.setattr(ferbench.io.os, "replace", replace)
    line = fails(run_jaffe(tmp_path, "--folds", "0,1"), "disk full while writing ")
    run = tmp_path / "jaffe_6cls_loso" / "lbp_svm"
    assert str(run / "seed0" / "fold1") in line and "finished jobs are kept" in line
    assert (run / "seed0" / "fold0" / "DONE").is_file() and not (run / "seed0" / "fold1" / "DONE").exists()


@pytest.mark.parametrize(("key", "value", "message"), [
    ("metrics", {"accuracy": {"mean": "high", "std": 0.0}}, '`metrics.accuracy.mean`: expected a number, got "high"'),
    ("complete", "yes", '`complete`: expected true or false, got "yes"'),
    ("jobs_total", "10", '`jobs_total`: expected an integer, got "10"'),
    ("seeds", ["0"], '`seeds.0`: expected an integer, got "0"'),
    ("model", None, "`model`: expected a string, got null"),
])
def test_leaderboard_names_a_wrong_typed_summary_value(finished_run, tmp_path, key, value, message):
    run = tmp_path / "runs" / "jaffe_6cls_loso" / "lbp_svm"
    shutil.copytree(finished_run, run)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, key: value}))
    fails(["leaderboard", str(tmp_path / "runs"), "--out", str(tmp_path / "pages")],
          f"{run / 'summary.json'}: {message}")


def test_leaderboard_names_a_wrong_typed_fold_score(finished_run, tmp_path):
    run = tmp_path / "runs" / "jaffe_6cls_loso" / "lbp_svm"
    shutil.copytree(finished_run, run)
    metrics_file = run / "seed0" / "fold0" / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    metrics["test"]["accuracy"] = "0.9"
    done = json.loads((metrics_file.parent / "DONE").read_text())  # a job that verifies, with a bad value
    files = {name: (metrics_file.parent / name).read_bytes() for name in done["files"]}
    RunDir(run).write_job(0, 0, {**files, "metrics.json": json.dumps(metrics).encode()}, done["fingerprint"],
                          done["inputs"])
    # only complete runs are paired fold by fold, so the scores are read here directly
    with pytest.raises(DataError) as caught:
        load_run(run).job_scores("accuracy")
    assert str(caught.value) == f'{metrics_file}: `test.accuracy`: expected a number, got "0.9"'


def test_leaderboard_out_that_is_a_file_is_named(finished_run, tmp_path):
    (tmp_path / "pages").write_text("")
    fails(["leaderboard", str(finished_run), "--out", str(tmp_path / "pages")], f"{tmp_path / 'pages'} is a file")


@pytest.mark.parametrize("error", [KeyError("metrics"), OSError(errno.EIO, "Input/output error")])
def test_a_real_bug_keeps_its_traceback(finished_run, tmp_path, monkeypatch, error):
    def broken(*args):
        raise error

    monkeypatch.setattr("ferbench.leaderboard.write_leaderboard", broken)
    result = runner.invoke(app, ["leaderboard", str(finished_run), "--out", str(tmp_path / "pages")])
    assert result.exit_code == 1 and result.exception is error
    assert "error: " not in result.output


@pytest.mark.parametrize("command", ["inspect", "evaluate"])
def test_inspect_and_evaluate_refuse_an_unused_root_and_a_bad_device(command, tmp_path):
    protocol = str(REPO / "protocols" / "jaffe_6cls_loso.yaml")
    extra = ["--checkpoint", str(tmp_path / "model.pt")] if command == "evaluate" else []
    roots = ["--root", "jaffe=synthetic:small", "--root", "ckplus=/data/ck"]
    fails([command, protocol, *roots, *extra], "--root ckplus=/data/ck: protocol `jaffe_6cls_loso` reads no dataset")
    if command == "evaluate":
        fails([command, protocol, *roots[:2], *extra, "--device", "gpu"], "--device gpu")
