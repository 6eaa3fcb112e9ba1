"""Confusion pictures, result tables and atomic writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from ferbench import io as ferbench_io
from ferbench.errors import UnknownName
from ferbench.io import atomic_write_json, atomic_write_text
from ferbench.report import format_mean_std, plot_confusion, results_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLASSES = ["anger", "happy", "sadness"]


def test_plot_confusion_writes_a_png_and_no_temporary_file(tmp_path):
    confusion = [[42, 3, 0], [1, 20, 4], [0, 0, 0]]
    path = plot_confusion(confusion, CLASSES, tmp_path / "plots" / "confusion.png", "tiny test")
    data = path.read_bytes()
    assert path == tmp_path / "plots" / "confusion.png"
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000
    assert [p.name for p in path.parent.iterdir()] == ["confusion.png"]


def test_plot_confusion_refuses_a_matrix_that_does_not_match_the_classes(tmp_path):
    with pytest.raises(ValueError, match="2 classes"):
        plot_confusion(np.zeros((3, 3), dtype=int), ["anger", "happy"], tmp_path / "c.png", "x")


def test_format_mean_std_in_percent():
    assert format_mean_std({"mean": 0.976, "std": 0.012}) == "97.60 ± 1.20"
    assert format_mean_std({"mean": 0.5, "std": 0.0}, scale=1, digits=3) == "0.500 ± 0.000"


def test_results_table_formats_aggregates_and_missing_values():
    rows = [
        {"model": "nano-a", "accuracy": {"mean": 0.976, "std": 0.012}, "params": 231992},
        {"model": "svm", "accuracy": {"mean": 0.8, "std": 0.05}, "params": None},
    ]
    table = results_table(rows, ["model", "accuracy", "params"])
    assert table.splitlines() == [
        "| model   | accuracy     |   params |",
        "|---------|--------------|----------|",
        "| nano-a  | 97.60 ± 1.20 |   231992 |",
        "| svm     | 80.00 ± 5.00 |        - |",
    ]
    simple = results_table(rows, ["model", "accuracy"], fmt="simple")
    assert simple.splitlines()[1].startswith("-------  ")
    with pytest.raises(UnknownName, match="did you mean `github`"):
        results_table(rows, ["model"], fmt="githb")


def test_atomic_json_writes_nan_and_numpy_values_as_plain_json(tmp_path):
    obj = {"acc": np.float32(0.5), "p": np.nan, "cm": np.array([[1, 2], [3, 4]]), "inf": -np.inf}
    path = atomic_write_json(tmp_path / "m.json", obj)
    text = path.read_text()
    assert json.loads(text) == {"acc": 0.5, "p": None, "cm": [[1, 2], [3, 4]], "inf": None}
    assert text.startswith('{\n  "acc": 0.5,')  # indent 2, insertion order
    assert os.listdir(tmp_path) == ["m.json"]


def test_a_failed_atomic_write_leaves_the_old_file_intact_and_no_temporary(tmp_path, monkeypatch):
    path = atomic_write_text(tmp_path / "summary.json", "old")

    def failing_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(ferbench_io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["summary.json"]
