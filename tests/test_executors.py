"""Executors: local processes and a Dask cluster give the run directory a sequential run gives;
a distilling card's teacher trains per fold on that fold's training data only, before its student."""

import hashlib
import json
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ferbench import jobs
from ferbench.cards import load_card
from ferbench.errors import FerbenchError
from ferbench.executors import DaskExecutor, ProcessExecutor, SequentialExecutor, make_executor, worker_devices
from ferbench.pipeline import attach_images, load_protocol_data
from ferbench.protocol import load_protocol
from ferbench.runner import RunOptions, run_cards

PROTOCOL = Path(__file__).parents[1] / "protocols" / "ckplus_7cls_si.yaml"
CARD = """\
name: {name}
model: microexpnet_xxs
input: {{channels: 1, size: [48, 48], normalise: minus_one_one}}
recipe:
  epochs: 1
  batch_size: 32
  optimizer: {{name: adam, lr: 1.0e-3}}
  objective: {objective}
"""
JOB_FILES = ("metrics.json", "predictions.csv", "confusion.csv", "model.pt", "DONE")


@pytest.fixture(scope="module")
def data():
    protocol = load_protocol(PROTOCOL, roots={"ckplus": "synthetic:small"})
    return attach_images(load_protocol_data(protocol), progress=False)


@pytest.fixture(scope="module")
def cards(tmp_path_factory):
    """A tiny teacher, a student distilling from it, and a plain card."""
    folder = tmp_path_factory.mktemp("cards")
    texts = {
        "tiny_teacher": CARD.format(name="tiny_teacher", objective="{name: cross_entropy}"),
        "tiny_student": CARD.format(name="tiny_student", objective=f"{{name: distillation, lambda: 0.5, temperature: "
                                                                   f"4, teacher: {folder / 'tiny_teacher.yaml'}}}"),
        "tiny_plain": CARD.format(name="tiny_plain", objective="{name: label_smoothing, confidence: 0.9}"),
    }
    for name, text in texts.items():
        (folder / f"{name}.yaml").write_text(text)
    return [load_card(folder / f"{name}.yaml") for name in ("tiny_student", "tiny_plain")]


def run(data, cards, out, executor=None, **kw):
    options = RunOptions(out=out, folds=[0, 1], seeds=[0, 1], progress=False, speed=False, **kw)
    return run_cards(data, data.folds(), cards, options, executor)


@contextmanager
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def job_files(out: Path) -> dict[str, object]:
    """Every job file under a run root (``DONE`` included), by relative path: bytes, or for
    ``model.pt`` the weights as lists (its zip archive holds a random serialisation id), for
    ``history.csv`` its columns but the wall-clock ``seconds``, and for ``DONE`` its record with
    the history's hash checked against the file and left out (it covers those seconds)."""
    files = {}
    for path in sorted(out.rglob("seed*/fold*/*")):
        if path.name == "model.pt":
            files[str(path.relative_to(out))] = {k: v.tolist() for k, v in torch.load(path, weights_only=True).items()}
        elif path.name == "history.csv":
            files[str(path.relative_to(out))] = pd.read_csv(path).drop(columns="seconds").to_dict("list")
        elif path.name == "DONE":
            done = json.loads(path.read_text())
            history = path.parent / "history.csv"
            assert done["files"].pop("history.csv") == hashlib.sha256(history.read_bytes()).hexdigest()
            files[str(path.relative_to(out))] = done
        elif path.is_file():
            files[str(path.relative_to(out))] = path.read_bytes()
    return files


@pytest.fixture(scope="module")
def sequential(data, cards, tmp_path_factory):
    """The reference run: one job after another, one torch thread (as each worker below uses;
    CPU float sums depend on the thread count). Also returns the training images and labels
    each job fit its model on, in job order."""
    out = tmp_path_factory.mktemp("sequential")
    seen = []
    original = jobs.train_model

    def recording(card, images, y, *args, **kwargs):
        seen.append((images.copy(), y.copy()))
        return original(card, images, y, *args, **kwargs)

    with one_thread(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(jobs, "train_model", recording)
        run(data, cards, out)
    return out, seen


def test_teacher_trains_per_fold_on_the_students_training_data_first(data, sequential):
    out, seen = sequential
    runs = out / "ckplus_7cls_si"
    assert sorted(p.name for p in runs.iterdir()) == ["tiny_plain", "tiny_student", "tiny_teacher"]
    for seed in (0, 1):
        for fold in (0, 1):
            assert (runs / "tiny_teacher" / f"seed{seed}" / f"fold{fold}" / "DONE").is_file()
    # 4 teacher jobs come first, then 4 student and 4 plain jobs; every one fits on its fold's training set
    folds = data.folds()
    expected_teacher = [folds[k].train for s in (0, 1) for k in (0, 1)]
    assert len(seen) == 12
    for (images, y), want in zip(seen[:4], expected_teacher):
        assert np.array_equal(images, data.images[want]) and np.array_equal(y, data.y[want])
    for images, y in seen:
        [k] = [k for k in (0, 1) if np.array_equal(images, data.images[folds[k].train])]
        assert np.array_equal(y, data.y[folds[k].train])
        assert len(images) == len(data.samples) - len(folds[k].test)


def test_two_local_processes_write_the_same_files_as_one_process(data, cards, sequential, tmp_path):
    out, _ = sequential
    summaries = run(data, cards, tmp_path, ProcessExecutor(2, threads=1))
    assert job_files(tmp_path) == job_files(out)
    assert [s["jobs_done"] for s in summaries] == [4, 4]


def test_a_dask_cluster_writes_the_same_files_as_one_process(data, cards, sequential, tmp_path):
    import distributed

    out, _ = sequential
    with distributed.LocalCluster(host="127.0.0.1", n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        run(data, cards, tmp_path, DaskExecutor(cluster.scheduler_address))
    assert job_files(tmp_path) == job_files(out)


def test_finished_jobs_are_skipped_by_any_executor(data, cards, sequential, tmp_path, monkeypatch):
    out, _ = sequential
    shutil.copytree(out, tmp_path, dirs_exist_ok=True)
    (tmp_path / "ckplus_7cls_si" / "tiny_plain" / "seed1" / "fold1" / "DONE").unlink()
    computed = []
    original = SequentialExecutor.run

    def recording(self, data, jobs, device):
        computed.extend(job.key for job in jobs)
        return original(self, data, jobs, device)

    monkeypatch.setattr(SequentialExecutor, "run", recording)
    with one_thread():
        run(data, cards, tmp_path)
    assert computed == [("tiny_plain", 1, 1)]
    assert job_files(tmp_path) == job_files(out)


def test_executor_options_are_checked():
    assert isinstance(make_executor("local", 1), SequentialExecutor)
    assert isinstance(make_executor("local", 3), ProcessExecutor)
    with pytest.raises(FerbenchError, match="--scheduler"):
        make_executor("dask")
    with pytest.raises(FerbenchError, match="--scheduler is for --executor dask"):
        make_executor("local", 2, "tcp://127.0.0.1:8786")
    with pytest.raises(FerbenchError, match="unknown --executor `ray`"):
        make_executor("ray")
    assert worker_devices("cpu", 3) == ["cpu", "cpu", "cpu"]


def test_unreachable_scheduler_is_a_clear_error(data, cards, tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FerbenchError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"):
        run(data, cards, tmp_path, DaskExecutor(f"tcp://127.0.0.1:{port}", timeout="2s"))


def nano_card(folder: Path, name: str, objective: str):
    """An EmotionNet Nano-B card (no dropout: stacked equals one by one up to float noise)."""
    path = folder / f"{name}.yaml"
    path.write_text(CARD.format(name=name, objective=objective).replace("microexpnet_xxs", "emotionnet_nano_b"))
    return load_card(path)


def assert_stacked_run_matches_one_by_one(data, card, tmp_path, monkeypatch, names: dict[str, float]) -> list[int]:
    """Run ``card`` stacked and one by one; each job's predictions of the cards ``names`` agree
    up to float noise (name -> absolute tolerance). Returns the sizes of the stacks trained."""
    import ferbench.executors as executors

    groups = []
    real = executors.compute_jobs_stacked
    monkeypatch.setattr(executors, "compute_jobs_stacked",
                        lambda data, jobs, device: groups.append(len(jobs)) or real(data, jobs, device))
    run(data, [card], tmp_path / "stacked", SequentialExecutor(stack_folds=True))
    run(data, [card], tmp_path / "single", SequentialExecutor(stack_folds=False))
    for name, atol in names.items():
        for job in ("seed0/fold0", "seed0/fold1", "seed1/fold0", "seed1/fold1"):
            read = lambda out: pd.read_csv(tmp_path / out / "ckplus_7cls_si" / name / job / "predictions.csv")
            stacked, single = read("stacked"), read("single")
            assert stacked["path"].tolist() == single["path"].tolist()
            np.testing.assert_allclose(stacked.filter(like="p_").to_numpy(), single.filter(like="p_").to_numpy(),
                                       atol=atol, err_msg=f"{name} {job}")
    return groups


def test_stacked_fold_training_in_the_runner_matches_one_by_one(data, tmp_path, monkeypatch):
    card = nano_card(tmp_path, "nano", "{name: cross_entropy}")
    groups = assert_stacked_run_matches_one_by_one(data, card, tmp_path, monkeypatch, {"nano": 1e-4})
    assert groups == [4]  # 2 seeds x 2 folds in one stack


def test_a_distilling_card_stacks_with_each_folds_teacher(data, tmp_path, monkeypatch):
    nano_card(tmp_path, "nano_teacher", "{name: cross_entropy}")
    student = nano_card(tmp_path, "nano_student", "{name: distillation, lambda: 0.7, temperature: 4, "
                                                  f"teacher: {tmp_path / 'nano_teacher.yaml'}}}")
    # The students learn from teachers that already differ by float noise (1e-4), so theirs is larger.
    groups = assert_stacked_run_matches_one_by_one(data, student, tmp_path, monkeypatch,
                                                   {"nano_teacher": 1e-4, "nano_student": 1e-3})
    assert groups == [4, 4]  # the 4 teachers in one stack, then their 4 students


def test_a_dropout_model_stacked_in_the_runner_is_identical_on_rerun(data, tmp_path):
    from ferbench.executors import make_executor

    path = tmp_path / "xxs.yaml"
    path.write_text(CARD.format(name="xxs", objective="{name: cross_entropy}"))  # MicroExpNet-XXS: dropout 0.5
    card = load_card(path)
    executor = make_executor("local", 1, None, stack=True)
    assert isinstance(executor, SequentialExecutor) and executor.stack_folds is True
    with pytest.raises(FerbenchError, match="--stack .* --jobs"):
        make_executor("local", 2, None, stack=True)
    run(data, [card], tmp_path / "first", executor)
    run(data, [card], tmp_path / "again", make_executor("local", 1, None, stack=True))
    for job in ("seed0/fold0", "seed1/fold1"):
        read = lambda out: (tmp_path / out / "ckplus_7cls_si" / "xxs" / job / "predictions.csv").read_bytes()
        assert read("first") == read("again")
