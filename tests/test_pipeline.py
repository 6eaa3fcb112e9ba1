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


def load(tmp_path: Path, classes="happy, sadness", policy="fail", corrupt=None, face="none"):
    make_dataset(tmp_path / "data", corrupt)
    path = tmp_path / "p.yaml"
    text = PROTOCOL.format(root=tmp_path / "data", classes=classes, policy=policy)
    path.write_text(text.replace("face: none", f"face: {face}"))
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


def test_fallback_images_are_listed_by_root_relative_key(tmp_path):
    data = load(tmp_path, face="align")  # 20 x 20 uniform pictures: face crops without eyes
    report = attach_images(data, progress=False).sources[0].preprocess_report
    assert report["methods"]["mean"] == 8
    assert report["fallbacks"] == {"mean": sorted(f"s{s}_{label}.png" for s in range(4) for label in ("happy", "sadness"))}


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


@pytest.mark.parametrize("by, independent, leakage", [("subject", True, False), ("sample", False, True)])
def test_inspect_counts_a_fold_file_by_subject_as_subject_independent(tmp_path, by, independent, leakage):
    from ferbench.pipeline import describe

    make_dataset(tmp_path / "data")
    data_dir = tmp_path / "data"
    if by == "subject":
        folds = "folds: [[s0, s2], [s1, s3]]\n"
    else:  # the happy images of s0, s1 in one fold, everything else in the other: s0 and s1 on both sides
        others = [f"{data_dir}/s{s}_{label}.png" for s in range(4) for label in ("happy", "sadness")
                  if not (s < 2 and label == "happy")]
        folds = f"folds: [[{data_dir}/s0_happy.png, {data_dir}/s1_happy.png], [{', '.join(others)}]]\n"
    (tmp_path / "folds.yaml").write_text(folds)
    path = tmp_path / "p.yaml"
    path.write_text(PROTOCOL.format(root=data_dir, classes="happy, sadness", policy="fail").replace(
        "{type: subject_kfold, k: 2}", f"{{type: fold_file, file: folds.yaml, by: {by}}}"))
    info = describe(load_protocol_data(load_protocol(path)))
    assert info["split"] == "fold_file" and info["subject_independent"] is independent
    assert info["leakage"] is leakage
    assert [(f["train"], f["test"]) for f in info["folds"]] == ([(4, 4), (4, 4)] if by == "subject" else [(6, 2), (2, 6)])


def test_every_cache_user_reads_one_cache_folder(tmp_path, monkeypatch):
    """`FERBENCH_CACHE` names the cache folder; unset or empty, it is `~/.cache/ferbench`."""
    from ferbench import paths, pipeline
    from ferbench.preprocess.cache import cache_root

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    default = tmp_path / "home" / ".cache" / "ferbench"
    for value in (None, ""):
        if value is None:
            monkeypatch.delenv("FERBENCH_CACHE", raising=False)
        else:
            monkeypatch.setenv("FERBENCH_CACHE", value)
        assert paths.cache_dir() == pipeline.cache_dir() == cache_root() == default
    monkeypatch.setenv("FERBENCH_CACHE", str(tmp_path / "mine"))
    assert paths.cache_dir() == pipeline.cache_dir() == cache_root() == tmp_path / "mine"
    assert cache_root(tmp_path / "given") == tmp_path / "given"


def test_a_synthetic_twin_is_generated_in_the_default_cache_when_the_variable_is_empty(tmp_path, monkeypatch):
    from ferbench.synth import twin_root

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FERBENCH_CACHE", "")
    monkeypatch.chdir(tmp_path)
    root = twin_root("jaffe", shape="small")
    assert root.is_relative_to(tmp_path / "home" / ".cache" / "ferbench" / "synthetic")
    assert not (tmp_path / "synthetic").exists()  # an empty value is not the working directory
