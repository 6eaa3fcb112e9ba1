"""Protocol -> samples -> crops -> folds on a hand-made generic dataset: bad input is reported
with the file or key at fault, and skipped images never shift labels or folds."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from ferbench.errors import DataError, FerbenchError
from ferbench.pipeline import attach_images, load_protocol_data
from ferbench.protocol import load_protocol

PROTOCOL = """
id: generic_test
version: 1
description: hand-made
dataset:
  name: generic
  root: {root}
  options: {{manifest: manifest.csv}}
classes: [{classes}]
split: {{type: subject_kfold, k: 2}}
preprocess: {{face: none, size: [16, 16]}}
on_unreadable: {policy}
"""


def make_dataset(root: Path, corrupt: str | None = None) -> None:
    """4 subjects x (happy, sadness) images; the image of ``corrupt`` is garbage bytes."""
    root.mkdir(parents=True, exist_ok=True)
    rows = ["path,label,subject"]
    for s in range(4):
        for label, value in (("happy", 200), ("sadness", 50)):
            name = f"s{s}_{label}.png"
            cv2.imwrite(str(root / name), np.full((20, 20), value + s, np.uint8))
            rows.append(f"{name},{label},s{s}")
    if corrupt:
        (root / corrupt).write_bytes(b"not an image")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")


def load(tmp_path: Path, classes="happy, sadness", policy="fail", corrupt=None):
    make_dataset(tmp_path / "data", corrupt)
    path = tmp_path / "p.yaml"
    path.write_text(PROTOCOL.format(root=tmp_path / "data", classes=classes, policy=policy))
    return load_protocol_data(load_protocol(path))


def test_selection_labels_and_crops(tmp_path):
    data = attach_images(load(tmp_path), progress=False)
    assert len(data.samples) == 8 and data.y.tolist().count(0) == 4
    assert data.images.shape == (8, 16, 16) and data.images.dtype == np.uint8
    for sample, label, image in zip(data.samples, data.y, data.images):
        expected = (200 if label == 0 else 50) + int(sample.subject[1])
        assert int(np.median(image)) == expected  # the crop belongs to its own label and subject


def test_class_without_samples_is_an_error(tmp_path):
    with pytest.raises(FerbenchError, match=r"\['fear'\] have no samples"):
        load(tmp_path, classes="happy, sadness, fear")


def test_corrupt_image_fails_by_default_naming_the_file(tmp_path):
    with pytest.raises(DataError, match="s1_happy.png"):
        attach_images(load(tmp_path, corrupt="s1_happy.png"), progress=False)


def test_skip_policy_drops_the_image_and_keeps_labels_aligned(tmp_path):
    data = attach_images(load(tmp_path, policy="skip", corrupt="s1_happy.png"), progress=False)
    assert len(data.samples) == len(data.y) == len(data.images) == 7
    assert "s1_happy.png" not in {Path(s.path).name for s in data.samples}
    skipped = data.sources[0].preprocess_report["skipped_unreadable"]
    assert [Path(item["path"]).name for item in skipped] == ["s1_happy.png"]
    for sample, label, image in zip(data.samples, data.y, data.images):
        assert int(np.median(image)) == (200 if label == 0 else 50) + int(sample.subject[1])
    folds = data.folds()
    assert sum(len(f.test) for f in folds) == 7


JAFFE_SKIP = """
id: jaffe_skip_test
version: 1
description: a JAFFE twin copy with one corrupt image, skipped
dataset: {{name: jaffe, root: {root}}}
classes: [anger, disgust, fear, happy, sadness, surprise]
split: {{type: subject_kfold, k: 3, assign: ascending_blocks}}
preprocess: {{face: auto, size: [32, 32]}}
on_unreadable: skip
"""


def test_inspect_shows_the_folds_a_run_trains_on(tmp_path):
    """One corrupt image under ``on_unreadable: skip``: `inspect` applies the skip as `run` does."""
    import json
    import shutil

    from typer.testing import CliRunner

    from ferbench.cli import app
    from ferbench.pipeline import describe
    from ferbench.synth import twin_root

    root = tmp_path / "jaffe"
    shutil.copytree(twin_root("jaffe", shape="small"), root)
    corrupt = next(p for p in sorted(root.glob("*.tiff")) if ".NE" not in p.name)
    corrupt.write_bytes(b"not an image")
    protocol = tmp_path / "p.yaml"
    protocol.write_text(JAFFE_SKIP.format(root=root))
    before_skips = describe(load_protocol_data(load_protocol(protocol)))

    cli = CliRunner()
    inspected = cli.invoke(app, ["inspect", str(protocol), "--json"])
    assert inspected.exit_code == 0, inspected.output
    info = json.loads(inspected.output)
    ran = cli.invoke(app, ["run", str(protocol), "--models", "lbp_svm", "--out", str(tmp_path / "runs"),
                           "--folds", "0", "--no-speed"])
    assert ran.exit_code == 0, ran.output
    (folds_file,) = (tmp_path / "runs").rglob("folds.json")
    run_folds = json.loads(folds_file.read_text())

    assert info["total"] == before_skips["total"] - 1
    assert [(f["train"], f["test"]) for f in info["folds"]] == [(f["train"], f["test"]) for f in run_folds]
    assert [f["test_subjects"] for f in info["folds"]] == [len(f["test_subjects"]) for f in run_folds]
    # the fold holding the corrupt image's subject is one image smaller than before the skip
    shrunk = [k for k, (a, b) in enumerate(zip(before_skips["folds"], info["folds"])) if a["test"] != b["test"]]
    assert len(shrunk) == 1 and corrupt.name[:2] in run_folds[shrunk[0]]["test_subjects"]


def test_leakage_is_not_applicable_without_subject_identities():
    from typer.testing import CliRunner

    from ferbench.cli import app
    from ferbench.pipeline import describe

    path = Path(__file__).parents[1] / "protocols" / "rafdb_7cls_official.yaml"
    info = describe(load_protocol_data(load_protocol(path, roots={"rafdb": "synthetic:small"})))
    assert info["leakage"] is None and info["subjects"] == 0
    text = CliRunner().invoke(app, ["inspect", str(path), "--root", "rafdb=synthetic:small"])
    assert text.exit_code == 0, text.output
    assert "leakage check: not applicable (no subject identities)" in text.output
