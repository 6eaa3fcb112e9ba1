"""ONNX export (checked against PyTorch), ONNX Runtime timing, ``ferbench speed`` and ``ferbench predict``."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from ferbench.cards import load_card
from ferbench.checkpoints import load_trained_model
from ferbench.cli import app
from ferbench.errors import FerbenchError
from ferbench.export import OnnxModule, export_onnx, onnx_latency
from ferbench.pipeline import attach_images, load_protocol_data
from ferbench.models.build import build_model
from ferbench.data.base import read_image_file
from ferbench.errors import UnknownName
from ferbench.predict import describe_face, predict_paths, prepare_face
from ferbench.preprocess import align, eye_prior, landmark_box, landmark_eyes, preprocess_samples
from ferbench.protocol import load_protocol
from ferbench.synth.face import random_faces
from ferbench.synth.layouts import truth_faces
from ferbench.runner import RunOptions, run_card
from helpers import CLASSES7, REPO, TINY_PLUGIN_CARD
from test_preprocess import FakeLoader, write

CARD = TINY_PLUGIN_CARD


@pytest.fixture(scope="module")
def data():
    protocol = load_protocol(REPO / "protocols" / "ckplus_7cls_si.yaml", roots={"ckplus": "synthetic:small"})
    return attach_images(load_protocol_data(protocol), progress=False)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    """A run of a tiny plug-in model on fold 0 of ckplus_7cls_si (small twin); returns its directory."""
    folder = tmp_path_factory.mktemp("trained")
    (folder / "tiny_plugin.yaml").write_text(CARD)
    run_card(data, data.folds(), load_card(folder / "tiny_plugin.yaml"),
             RunOptions(out=folder / "runs", folds=[0], progress=False, speed=False))
    return folder / "runs" / "ckplus_7cls_si" / "tiny_plugin"


@pytest.fixture(scope="module")
def onnx_file(run, tmp_path_factory) -> tuple[Path, str]:
    """``ferbench export`` of the run's fold-0 model: (the ONNX file, the command's output)."""
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    result = CliRunner().invoke(app, ["export", str(run.parents[2] / "tiny_plugin.yaml"),
                                      "--checkpoint", str(run / "seed0" / "fold0" / "model.pt"), "--onnx", str(path)])
    assert result.exit_code == 0, result.output
    return path, result.output


# ----------------------------------------------------------------------------- export


def test_export_matches_pytorch_with_a_dynamic_batch_and_records_card_and_labels(run, onnx_file):
    path, output = onnx_file
    difference = float(re.search(r"max abs logit difference (\S+)", output).group(1))
    assert difference < 1e-4
    onnx_model, torch_model = OnnxModule(path), load_trained_model(run / "seed0" / "fold0" / "model.pt").model
    x = torch.randn(5, 1, 48, 48)
    with torch.no_grad():
        assert onnx_model(x).shape == (5, 7)
        assert (onnx_model(x) - torch_model(x)).abs().max() < 1e-4
    metadata = onnx_model.metadata
    assert metadata["labels"] == list(CLASSES7)
    assert metadata["card"]["name"] == "tiny_plugin" and metadata["preprocess"]["margin"] == 0.1


def test_onnx_checkpoint_evaluates_like_the_state_dict(run, data, onnx_file):
    onnx_trained = load_trained_model(onnx_file[0])  # card and labels from the file's metadata
    assert (onnx_trained.kind, onnx_trained.card.name, onnx_trained.labels) == ("onnx", "tiny_plugin", CLASSES7)
    state_dict = load_trained_model(run / "seed0" / "fold0" / "model.pt")
    assert np.allclose(onnx_trained.predict_proba(data.images), state_dict.predict_proba(data.images), atol=1e-5)


def test_export_errors(run, tmp_path):
    with pytest.raises(FerbenchError, match="only torch modules export to ONNX"):
        export_onnx(build_model(load_card("lbp_svm"), 7), load_card("lbp_svm"), tmp_path / "svm.onnx")
    result = CliRunner().invoke(app, ["export", str(run.parents[2] / "tiny_plugin.yaml"), "--checkpoint",
                                      str(tmp_path / "missing.pt"), "--onnx", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2 and "checkpoint file not found" in result.output


# ----------------------------------------------------------------------------- speed


def test_onnx_runtime_latency_uses_the_speed_method(run):
    card = load_card(run.parents[2] / "tiny_plugin.yaml")
    latency = onnx_latency(build_model(card, 7), card, quick=True)
    assert (latency["threads"], latency["batch_size"], latency["repeats"], latency["device"]) == (1, 1, 5, "cpu")
    assert latency["median_ms"] > 0 and latency["max_abs_diff"] < 1e-4


def test_speed_command_lists_pytorch_and_onnx_runtime(run):
    result = CliRunner().invoke(app, ["speed", "--models", f"{run.parents[2] / 'tiny_plugin.yaml'},lbp_svm",
                                      "--onnx", "--quick", "--classes", "5"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("tiny_plugin"))
    name, params, mib, macs, cpu_ms, ort_ms = row.split()
    assert int(params) == 23863 - 2 * (64 + 1) and float(cpu_ms) > 0 and float(ort_ms) > 0  # 5 classes, not 7
    assert "not timed" in result.output and "lbp_svm" in result.output


# ----------------------------------------------------------------------------- predict


def test_predict_on_a_stored_crop_reproduces_the_run(run, data, tmp_path):
    i = int(data.folds()[0].test[0])
    cv2.imwrite(str(tmp_path / "crop.png"), data.images[i])
    trained = load_trained_model(run / "seed0" / "fold0" / "model.pt")
    (result,) = predict_paths([tmp_path / "crop.png"], trained, face="none")
    assert result.box == (0, 0, 128, 128)
    expected = pd.read_csv(run / "seed0" / "fold0" / "predictions.csv").set_index("path").loc[data.keys()[i]]
    assert np.allclose([result.probabilities[c] for c in CLASSES7], [expected[f"p_{c}"] for c in CLASSES7], atol=2e-6)
    assert result.top[0] == expected["predicted"]


def test_predict_finds_faces_and_annotates(run, data, tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    sample = data.samples[0]
    frame = cv2.imread(sample.path, cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(folder / "face.png"), frame)
    cv2.imwrite(str(folder / "blank.png"), np.full((120, 160), 128, np.uint8))
    result = CliRunner().invoke(app, ["predict", str(folder), "--checkpoint", str(run / "seed0" / "fold0" / "model.pt"),
                                      "--annotate", str(tmp_path / "annotated")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == ("face: haar (as trained: the protocol's face method is auto; margin 0.1, minimum face 0.15, "
                        "crop 128x128 gray)")  # ckplus_7cls_si crops landmark boxes; pictures have none
    assert "no face" in next(line for line in lines if "blank.png" in line)
    face_row = next(line for line in lines if "face.png" in line).split()
    assert face_row[1] == "haar"
    x, y, w, h = map(int, face_row[2:6])
    assert face_row[6] in CLASSES7
    lx, ly, lw, lh = landmark_box(data.sources[0].loader.landmarks(sample))  # the face the twin drew
    overlap = max(0, min(x + w, lx + lw) - max(x, lx)) * max(0, min(y + h, ly + lh) - max(y, ly))
    assert overlap / (w * h + lw * lh - overlap) > 0.5
    for name, picture in (("face", frame), ("blank", None)):
        drawn = cv2.imread(str(tmp_path / "annotated" / f"{name}.png"))
        assert drawn.ndim == 3 and (picture is None or drawn.shape[:2] == picture.shape[:2])


def test_predict_video_every_nth_frame(run, data, tmp_path):
    crop = cv2.cvtColor(data.images[0], cv2.COLOR_GRAY2BGR)
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, crop.shape[1::-1])
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG video")
    for _ in range(5):
        writer.write(crop)
    writer.release()
    trained = load_trained_model(run / "seed0" / "fold0" / "model.pt")
    results = predict_paths([tmp_path / "clip.avi"], trained, face="none", every=2, annotate=tmp_path / "out")
    assert [r.source.rsplit("#", 1)[1] for r in results] == ["0", "2", "4"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"clip_frame00000{k}.png" for k in (0, 2, 4)]


# ----------------------------------------------------------------------------- predict --face align

ALIGNED = load_protocol(REPO / "protocols" / "jaffe_6cls_loso.yaml", roots={"jaffe": "synthetic:small"}).preprocess


@pytest.fixture(scope="module")
def aligned_onnx(run, tmp_path_factory) -> Path:
    """The run's fold-0 model exported as if trained under jaffe_6cls_loso's eye alignment (the
    ONNX metadata records that protocol's preprocessing)."""
    trained = load_trained_model(run / "seed0" / "fold0" / "model.pt")
    path = tmp_path_factory.mktemp("aligned") / "aligned.onnx"
    export_onnx(trained.model, trained.card, path, trained.labels, ALIGNED)
    return path


def test_predict_aligns_a_face_exactly_as_the_protocol_pipeline(aligned_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("FERBENCH_CACHE", str(tmp_path / "cache"))
    image, landmarks, _, _ = next(random_faces("jaffe", 1, seed=0))  # a 256 x 256 frame: Haar eyes, no landmarks
    sample = write(tmp_path, "face.png", image)
    pipeline = preprocess_samples(FakeLoader(), [sample], ALIGNED, progress=False)
    assert pipeline.report["methods"] == {"landmarks": 0, "eyes": 1, "face_box": 0, "mean": 0}

    prepared = prepare_face(read_image_file(sample.path), ALIGNED, "align")
    assert prepared.method == "eyes" and prepared.box is None
    assert prepared.image.shape == (128, 128) and np.array_equal(prepared.image, pipeline.images[0])
    truth = landmark_eyes(landmarks)  # the eyes the twin drew
    assert np.abs(np.array(prepared.eyes) - truth).max() < 0.05 * np.linalg.norm(truth[1] - truth[0])

    trained = load_trained_model(aligned_onnx)
    assert trained.preprocess.face == "align"
    result = CliRunner().invoke(app, ["predict", sample.path, "--checkpoint", str(aligned_onnx)])  # --face auto
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == ("face: align (as trained: the protocol's face method is align; template 128x128 gray, "
                        "eye distance 0.38, eye height 0.33)")
    row = next(line for line in lines if "face.png" in line).split()
    assert row[1] == "eyes"
    assert [tuple(map(float, eye.split(","))) for eye in row[2:4]] == [
        (round(x, 1), round(y, 1)) for x, y in prepared.eyes]
    expected = trained.predict_proba(pipeline.images, "cpu")[0]
    assert [float(p) for p in row[6:]] == [round(float(p), 3) for p in expected]
    assert row[4] == CLASSES7[int(np.argmax(expected))]


def test_predict_corrects_a_crops_cascade_eyes_as_training_does():
    (crop, _), = truth_faces("ckplus48", 1, seed=5)  # a 48 px face crop: the eye cascade's eyes
    eyes, method = align.find_eyes(crop, ALIGNED.min_face, precropped=True)
    prepared = prepare_face(crop, ALIGNED, "align")
    corrected = eye_prior.correct_crop_bias(eyes[None])[0]
    assert method == prepared.method == "eyes"
    assert np.allclose(prepared.eyes, corrected) and not np.allclose(prepared.eyes, eyes)
    assert np.array_equal(prepared.image, align.align_face(crop, corrected, align.Template(
        ALIGNED.size, ALIGNED.eye_distance, ALIGNED.eye_height), ALIGNED.grayscale))


def test_predict_align_without_a_face(aligned_onnx, tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    cv2.imwrite(str(folder / "frame.png"), np.full((200, 240), 90, np.uint8))  # a large picture without a face
    cv2.imwrite(str(folder / "crop.png"), np.full((48, 48), 128, np.uint8))  # a small one: taken as a face crop
    result = CliRunner().invoke(app, ["predict", str(folder), "--checkpoint", str(aligned_onnx), "--face", "align",
                                      "--annotate", str(tmp_path / "annotated")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("face: align (as asked; template 128x128 gray")
    assert next(line for line in lines if "frame.png" in line).split()[1:5] == ["no", "face", "-", "-"]
    crop_row = next(line for line in lines if "crop.png" in line).split()
    # the template's own eye fractions on 48 px: x = 48 * (0.5 -+ 0.19) - 0.5 * 48 / 128, y = 48 * 0.33 - 0.5 * 48 / 128
    assert crop_row[1:4] == ["mean", "14.7,15.7", "32.9,15.7"] and crop_row[4] in CLASSES7
    trained = load_trained_model(aligned_onnx)
    (crop,) = predict_paths([folder / "crop.png"], trained)
    assert np.allclose(list(crop.probabilities.values()),
                       trained.predict_proba(np.full((1, 128, 128), 128, np.uint8))[0], atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "annotated").iterdir()) == ["crop.png", "frame.png"]


def test_predict_aligns_video_frames(aligned_onnx, tmp_path):
    image, landmarks, _, _ = next(random_faces("jaffe", 1, seed=0))
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, image.shape[1::-1])
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG video")
    for _ in range(3):
        writer.write(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    writer.release()
    results = predict_paths([tmp_path / "clip.avi"], load_trained_model(aligned_onnx))  # as trained: align
    truth = landmark_eyes(landmarks)
    assert [r.method for r in results] == ["eyes"] * 3
    for r in results:
        assert np.abs(np.array(r.eyes) - truth).max() < 0.05 * np.linalg.norm(truth[1] - truth[0])


def test_predict_face_must_be_a_known_method(run, tmp_path):
    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((64, 64), np.uint8))
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "x.png"), "--checkpoint",
                                      str(run / "seed0" / "fold0" / "model.pt"), "--face", "eyes"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == "error: --face eyes: choose one of auto, align, haar, none"
    with pytest.raises(UnknownName, match="known: align, auto, haar, none"):
        predict_paths([tmp_path / "x.png"], load_trained_model(run / "seed0" / "fold0" / "model.pt"), face="landmarks")


def test_predict_auto_without_a_recorded_preprocessing_is_haar_at_the_card_input(run, tmp_path):
    (tmp_path / "model.pt").write_bytes((run / "seed0" / "fold0" / "model.pt").read_bytes())  # outside its run
    trained = load_trained_model(tmp_path / "model.pt", run.parents[2] / "tiny_plugin.yaml", CLASSES7)
    assert trained.preprocess is None
    assert describe_face("auto", trained) == ("face: haar (the default: the checkpoint records no preprocessing; "
                                              "margin 0.2, minimum face 0.15, crop 48x48 gray)")
