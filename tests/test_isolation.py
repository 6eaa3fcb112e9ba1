"""Every job path refuses a fold whose training and test images overlap: one job in this
process, stacked jobs, ``--jobs 2`` processes and a Dask cluster all check the fold they are
given (by subject for subject-independent protocols, by image for every protocol)."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ferbench import executors
from ferbench.cards import load_card
from ferbench.errors import SplitError
from ferbench.executors import DaskExecutor, ProcessExecutor, SequentialExecutor
from ferbench.jobs import Job, check_job_isolation
from ferbench.pipeline import attach_images, load_protocol_data
from ferbench.protocol import RandomKFold, load_protocol
from ferbench.splits import Fold, check_isolation

PROTOCOL = Path(__file__).parents[1] / "protocols" / "ckplus_7cls_si.yaml"
CARD = """\
name: tiny
model: microexpnet_xxs
input: {channels: 1, size: [48, 48], normalise: minus_one_one}
recipe:
  epochs: 1
  batch_size: 32
  optimizer: {name: adam, lr: 1.0e-3}
  objective: {name: cross_entropy}
"""
NO_VALIDATION = np.array([], dtype=int)


@pytest.fixture(scope="module")
def data():
    protocol = load_protocol(PROTOCOL, roots={"ckplus": "synthetic:small"})
    return attach_images(load_protocol_data(protocol), progress=False)


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    path = tmp_path_factory.mktemp("cards") / "tiny.yaml"
    path.write_text(CARD)
    return load_card(path)


def subject_leak(data, index: int = 0) -> Fold:
    """Fold 0 with one test image moved to training: its subject, who has more test images,
    is now on both sides, though no image is."""
    fold = data.folds()[0]
    subjects = np.array([s.subject for s in data.samples], dtype=object)
    moved = next(i for i in fold.test if (subjects[fold.test] == subjects[i]).sum() > 1)
    return Fold(index, np.sort(np.append(fold.train, moved)), fold.test[fold.test != moved], NO_VALIDATION)


def jobs(data, card, folds) -> list[Job]:
    return [Job(card, 0, fold, {}) for fold in folds]


def test_the_leaking_fold_shares_a_subject_but_no_image(data):
    fold = subject_leak(data)
    assert not set(fold.train) & set(fold.test)
    subjects = [s.subject for s in data.samples]
    assert {subjects[i] for i in fold.train} & {subjects[i] for i in fold.test}


def test_one_job_in_this_process_refuses_a_shared_subject(data, card):
    with pytest.raises(SplitError, match="fold 0: subjects on both sides"):
        list(SequentialExecutor(stack_folds=False).run(data, jobs(data, card, [subject_leak(data)]), "cpu"))


def test_stacked_jobs_refuse_a_shared_subject(data, card, monkeypatch):
    def one_by_one(*args, **kwargs):
        raise AssertionError("the jobs were not stacked")

    monkeypatch.setattr(executors, "compute_job", one_by_one)
    folds = [data.folds()[1], subject_leak(data, index=0)]  # the first of the stack is clean
    with pytest.raises(SplitError, match="fold 0: subjects on both sides"):
        list(SequentialExecutor(stack_folds=True).run(data, jobs(data, card, folds), "cpu"))


def test_local_processes_refuse_a_shared_subject(data, card):
    with pytest.raises(SplitError, match="fold 0: subjects on both sides"):
        list(ProcessExecutor(2, threads=1).run(data, jobs(data, card, [subject_leak(data)]), "cpu"))


def test_a_dask_cluster_refuses_a_shared_subject(data, card):
    import distributed

    with distributed.LocalCluster(host="127.0.0.1", n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with pytest.raises(SplitError, match="fold 0: subjects on both sides"):
            list(DaskExecutor(cluster.scheduler_address).run(data, jobs(data, card, [subject_leak(data)]), "cpu"))


def test_a_random_split_may_share_subjects_but_never_an_image(data, card):
    random = replace(data, protocol=data.protocol.model_copy(update={"split": RandomKFold(type="random_kfold", k=5)}))
    check_job_isolation(random, jobs(data, card, [subject_leak(data)])[0])  # the same subject on both sides is fine
    fold = data.folds()[0]
    shared = Fold(0, np.sort(np.append(fold.train, fold.test[:2])), fold.test, NO_VALIDATION)
    with pytest.raises(SplitError, match="fold 0: 2 test images are also training images"):
        list(SequentialExecutor(stack_folds=False).run(random, jobs(data, card, [shared]), "cpu"))


def test_validation_and_target_images_count_as_training_and_test():
    keys = ["a", "b", "c", "d"]
    clean = Fold(3, np.array([0, 1]), np.array([3]), np.array([2]))
    check_isolation(clean, keys, ["s1", "s1", "s2", "s3"])
    with pytest.raises(SplitError, match="fold 3: 1 test images are also training images"):
        check_isolation(Fold(3, np.array([0, 1]), np.array([3]), np.array([3])), keys)
    with pytest.raises(SplitError, match="subjects on both sides"):
        check_isolation(clean, keys, ["s1", "s1", "s3", "s3"])  # a validation subject is tested
    with pytest.raises(SplitError, match=r"e\.g\. \['b'\]"):
        check_isolation(clean, keys, other_test_keys=["b", "x"])  # a target image was trained on
    same_file = ["a", "a", "c", "d"]  # one image listed twice, once in training and once in test
    with pytest.raises(SplitError, match="training images"):
        check_isolation(Fold(0, np.array([0, 2]), np.array([1, 3]), NO_VALIDATION), same_file)
