"""The command line: synth, inspect --json, validate errors, bad --root values."""

import json
from pathlib import Path

from typer.testing import CliRunner

from ferbench.cli import app

PROTOCOLS = Path(__file__).parents[1] / "protocols"
runner = CliRunner()


def test_synth_writes_a_layout(tmp_path):
    result = runner.invoke(app, ["synth", "jaffe", str(tmp_path / "j"), "--shape", "small", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "j").glob("*.tiff"))) > 0


def test_inspect_json_has_the_documented_keys():
    result = runner.invoke(app, ["inspect", str(PROTOCOLS / "jaffe_6cls_loso.yaml"), "--root", "jaffe=synthetic:small",
                                 "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert {"total", "per_class", "subjects", "folds", "leakage"} <= set(info)
    assert info["total"] == sum(info["per_class"].values())
    assert info["subjects"] == len(info["folds"]) == 10  # leave one subject out
    assert all(set(f) >= {"train", "test"} and f["train"] + f["test"] == info["total"] for f in info["folds"])
    assert info["leakage"] is False


def test_validate_points_at_the_file_line_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nversion: 1\ndataset: {name: jaffe, root: /x}\nclasses: [anger, happy]\n"
                   "split: {type: subject_kfol, k: 2}\n")
    result = runner.invoke(app, ["validate", str(PROTOCOLS / "ckplus_7cls_si.yaml"), str(bad)])
    assert result.exit_code == 2
    assert "ok" in result.output and "ckplus_7cls_si" in result.output
    assert f"{bad}:5" in result.output and "subject_kfold" in result.output


def test_bad_root_option_is_rejected():
    result = runner.invoke(app, ["inspect", str(PROTOCOLS / "jaffe_6cls_loso.yaml"), "--root", "jaffe"])
    assert result.exit_code != 0
    assert "NAME=PATH" in result.output


def test_missing_dataset_names_the_path_tried(tmp_path):
    result = runner.invoke(app, ["inspect", str(PROTOCOLS / "jaffe_6cls_loso.yaml"), "--root",
                                 f"jaffe={tmp_path / 'nowhere'}"])
    assert result.exit_code == 2
    assert "nowhere" in result.output and "--root jaffe=" in result.output


def test_models_json_lists_every_registered_model_with_paper_counts():
    from ferbench.models import list_models

    result = runner.invoke(app, ["models", "--classes", "8", "--json"])
    assert result.exit_code == 0, result.output
    entries = {e["name"]: e for e in json.loads(result.output)}
    assert sorted(entries) == list_models()
    assert {n: entries[n]["params"] for n in ("microexpnet_m", "microexpnet_s", "microexpnet_xs", "microexpnet_xxs")} \
        == {"microexpnet_m": 900_920, "microexpnet_s": 232_184, "microexpnet_xs": 120_728, "microexpnet_xxs": 65_000}
    assert entries["ed2l"]["input_size"] == [1, 112, 96]
    assert entries["hog_svm"]["params"] == 8 * (900 + 1)  # 900 HOG features at 48 x 48, one vector per class
    seven = {e["name"]: e["params"] for e in json.loads(runner.invoke(app, ["models", "--json"]).output)}
    assert seven["emotionnet_nano_a"] == 231_992 and seven["emotionnet_nano_b"] == 135_876
    table = runner.invoke(app, ["models"])
    assert table.exit_code == 0 and "mobilenetv1_centerloss" in table.output and "1x112x96" in table.output


def test_run_rejects_an_unknown_memory_format(tmp_path):
    result = runner.invoke(app, ["run", str(PROTOCOLS / "jaffe_6cls_loso.yaml"), "--root", "jaffe=synthetic:small",
                                 "--models", "lbp_svm", "--memory-format", "nhwc", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "error: --memory-format nhwc: choose auto, contiguous or channels_last" in result.output
    assert not (tmp_path / "jaffe_6cls_loso").exists()


def test_run_rejects_a_dask_executor_without_a_scheduler(tmp_path):
    result = runner.invoke(app, ["run", str(PROTOCOLS / "jaffe_6cls_loso.yaml"), "--root", "jaffe=synthetic:small",
                                 "--models", "lbp_svm", "--executor", "dask", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "--executor dask needs --scheduler" in result.output
    assert not (tmp_path / "jaffe_6cls_loso").exists()  # refused before anything ran
