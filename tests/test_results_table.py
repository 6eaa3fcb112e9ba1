"""``ferbench results``: one tidy row per (protocol, model, seed, fold, side) of verified jobs."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ferbench.cards import load_card
from ferbench.cli import app
from ferbench.errors import FerbenchError
from ferbench.pipeline import attach_images, load_protocol_data
from ferbench.protocol import load_protocol
from ferbench.results_table import results_frame, write_results
from ferbench.runner import RunOptions, run_card
from ferbench.runs import TRAIN_CROSS_VALIDATED, TRAIN_HELD_OUT_TARGET

from helpers import tiny_microexpnet_card

PROTOCOLS = Path(__file__).parents[1] / "protocols"
runner = CliRunner()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two runs: a neural card on CK+ (folds 0 and 1, ``--epochs 1``) and LBP + SVM from CK+ to
    JAFFE (fold 0: a source and a target side)."""
    out = tmp_path_factory.mktemp("results") / "runs"
    card_file = out.parent / "tiny_microexpnet.yaml"
    card_file.write_text(tiny_microexpnet_card(3))
    within = load_protocol(PROTOCOLS / "ckplus_7cls_si.yaml", roots={"ckplus": "synthetic:small"})
    data = attach_images(load_protocol_data(within), progress=False)
    run_card(data, data.folds(), load_card(card_file),
             RunOptions(out=out, folds=[0, 1], epochs=1, progress=False, speed=False))
    cross = load_protocol(PROTOCOLS / "cross_ckplus_jaffe_cspp.yaml",
                          roots={"ckplus": "synthetic:small", "jaffe": "synthetic:small"})
    data = attach_images(load_protocol_data(cross), progress=False)
    run_card(data, data.folds(), load_card("lbp_svm"), RunOptions(out=out, folds=[0], progress=False, speed=False))
    return out


def job_dir(out: Path, protocol: str, model: str, fold: int) -> Path:
    return out / protocol / model / "seed0" / f"fold{fold}"


def test_one_row_per_job_and_side_with_its_metrics_and_provenance(runs):
    frame = results_frame([runs])
    keys = list(frame[["protocol", "model", "seed", "fold", "side"]].itertuples(index=False, name=None))
    assert keys == [("ckplus_7cls_si", "tiny_microexpnet", 0, 0, "test"),
                    ("ckplus_7cls_si", "tiny_microexpnet", 0, 1, "test"),
                    ("cross_ckplus_jaffe_cspp", "lbp_svm", 0, 0, "source"),
                    ("cross_ckplus_jaffe_cspp", "lbp_svm", 0, 0, "target")]
    for row in frame.itertuples(index=False):
        job = job_dir(runs, row.protocol, row.model, row.fold)
        metrics = json.loads((job / "metrics.json").read_text())[row.side]
        summary = json.loads((job.parents[1] / "summary.json").read_text())
        done = json.loads((job / "DONE").read_text())
        predictions = pd.read_csv(job / ("predictions_target.csv" if row.side == "target" else "predictions.csv"))
        # accuracy recomputed from the job's own predictions, not copied from the summary
        assert row.accuracy == pytest.approx((predictions["true"] == predictions["predicted"]).mean())
        assert row.n == len(predictions)
        assert (row.macro_f1, row.weighted_f1, row.uar) == (metrics["macro_f1"], metrics["weighted_f1"], metrics["uar"])
        assert row.absent_classes == ";".join(metrics["absent_classes"])
        for label, entry in metrics["per_class"].items():
            assert getattr(row, f"recall_{label}") == entry["recall"]
            assert getattr(row, f"support_{label}") == (predictions["true"] == label).sum()
        assert (row.fingerprint, row.data_fingerprint, row.card_fingerprint) == \
            (summary["fingerprint"], summary["data_fingerprint"], summary["card_fingerprint"])
        assert row.job_fingerprint == done["fingerprint"]
        assert row.run == str(job.parents[1].resolve())
    tiny, cross = frame[frame["model"] == "tiny_microexpnet"], frame[frame["model"] == "lbp_svm"]
    assert (tiny["train_status"] == TRAIN_CROSS_VALIDATED).all() and not tiny["cross_dataset"].any()
    assert (cross["train_status"] == TRAIN_HELD_OUT_TARGET).all() and cross["cross_dataset"].all()
    assert frame["synthetic"].all() and not frame["evaluated"].any()
    assert tiny["deviation_epochs"].tolist() == [1, 1]  # --epochs 1; the classical card has no deviation
    assert cross["deviation_epochs"].isna().all()
    assert frame["selected_epoch"].isna().all()  # no validation set in either protocol
    assert frame.columns[-1] == "run"


def test_only_verified_jobs_the_summary_aggregates_are_rows(runs, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    edited = job_dir(copy, "ckplus_7cls_si", "tiny_microexpnet", 1) / "metrics.json"
    edited.write_text(edited.read_text().replace('"accuracy"', '"accuracy" ', 1))  # no longer what DONE hashes
    stray = job_dir(copy, "ckplus_7cls_si", "tiny_microexpnet", 2)  # a job the summary does not list
    shutil.copytree(job_dir(copy, "ckplus_7cls_si", "tiny_microexpnet", 0), stray)
    frame = results_frame([copy / "ckplus_7cls_si"])
    assert frame[["model", "fold"]].values.tolist() == [["tiny_microexpnet", 0]]


def test_csv_and_parquet_round_trip(runs, tmp_path):
    frame = results_frame([runs])
    write_results(frame, tmp_path / "r.csv", "csv")
    back = pd.read_csv(tmp_path / "r.csv", keep_default_na=False, na_values=[""])
    assert back.shape == frame.shape and list(back.columns) == list(frame.columns)
    assert back["accuracy"].tolist() == frame["accuracy"].tolist()
    write_results(frame, tmp_path / "r.parquet", "parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "r.parquet"), frame)


def test_parquet_without_pyarrow_is_a_one_line_error(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    with pytest.raises(FerbenchError, match=r"--parquet needs pyarrow: pip install 'ferbench\[parquet\]'"):
        write_results(results_frame([runs]), tmp_path / "r.parquet", "parquet")
    assert not (tmp_path / "r.parquet").exists()


def test_results_command(runs, tmp_path):
    shown = runner.invoke(app, ["results", str(runs)])
    assert shown.exit_code == 0, shown.output
    assert "tiny_microexpnet" in shown.output and "target" in shown.output and "4 rows from 2 runs" in shown.output
    written = runner.invoke(app, ["results", str(runs / "ckplus_7cls_si"), "--csv", str(tmp_path / "t.csv")])
    assert written.exit_code == 0, written.output
    assert len(pd.read_csv(tmp_path / "t.csv")) == 2 and "wrote 2 rows (1 run, " in written.output
    both = runner.invoke(app, ["results", str(runs), "--csv", "a.csv", "--parquet", "b.parquet"])
    assert both.exit_code == 2 and "give one of --csv and --parquet" in both.output
    missing = runner.invoke(app, ["results", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no such run directory" in missing.output
