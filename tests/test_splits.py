"""Split rules: exact DeRL and ED²L fold membership, partitions, leakage detection, official splits."""

import numpy as np
import pytest
from pydantic import TypeAdapter

from ferbench.data.base import Sample
from ferbench.errors import SplitError
from ferbench.protocol import SplitSpec
from ferbench.splits import (
    AscendingBlocksKFold,
    AscendingRoundRobinKFold,
    Fold,
    assert_no_leakage,
    make_folds,
    natural_key,
    subject_overlap,
)


def _samples(subjects, labels=None, usage=None, dataset="d"):
    labels = labels or ["happy"] * len(subjects)
    return [
        Sample(dataset, f"/x/{i}.png", subj, lab, None, attrs={"usage": usage[i]} if usage else {})
        for i, (subj, lab) in enumerate(zip(subjects, labels))
    ]


def _split(**kw):
    """A protocol ``split`` block (default: subject_kfold, k 3, ascending round robin)."""
    if kw.setdefault("type", "subject_kfold") == "subject_kfold":
        kw.setdefault("k", 3)
    return TypeAdapter(SplitSpec).validate_python(kw)


def test_derl_rule_assigns_sorted_subjects_round_robin():
    # Subjects deliberately out of order, with numeric ids of different widths.
    subjects = ["S010", "S005", "S011", "S014", "S022", "S026", "S034", "S037", "S042", "S044", "S045"]
    groups = [s for s in subjects for _ in range(2)]
    folds = list(AscendingRoundRobinKFold(3).split(groups, None, groups))
    test_subjects = [sorted({groups[i] for i in test}) for _, test in folds]
    # sorted: S005 S010 S011 S014 S022 S026 S034 S037 S042 S044 S045 -> positions mod 3
    assert test_subjects == [
        ["S005", "S014", "S034", "S044"],
        ["S010", "S022", "S037", "S045"],
        ["S011", "S026", "S042"],
    ]


def test_ed2l_rule_cuts_sorted_subjects_into_contiguous_blocks():
    subjects = ["S010", "S005", "S011", "S014", "S022", "S026", "S034", "S037", "S042", "S044", "S045"]
    groups = [s for s in subjects for _ in range(2)]
    folds = list(AscendingBlocksKFold(3).split(groups, None, groups))
    test_subjects = [sorted({groups[i] for i in test}, key=natural_key) for _, test in folds]
    # 11 subjects in 3 blocks: 11 mod 3 = 2 blocks of 4, then one of 3
    assert test_subjects == [
        ["S005", "S010", "S011", "S014"],
        ["S022", "S026", "S034", "S037"],
        ["S042", "S044", "S045"],
    ]
    for train, test in folds:  # each subject's samples stay together; train is the rest
        assert sorted(np.concatenate([train, test]).tolist()) == list(range(22))


def test_ed2l_block_sizes_for_118_subjects():
    groups = [f"S{i:03d}" for i in range(5, 123)]
    sizes = [len(test) for _, test in AscendingBlocksKFold(10).split(groups, None, groups)]
    assert sizes == [12] * 8 + [11] * 2
    with pytest.raises(SplitError, match="3 subjects cannot fill 4"):
        list(AscendingBlocksKFold(4).split(["A", "B", "C"], None, ["A", "B", "C"]))


def test_natural_key_orders_numbers_numerically():
    assert sorted(["S10", "S9", "S100"], key=natural_key) == ["S9", "S10", "S100"]


def test_subject_kfold_partitions_and_never_leaks():
    rng = np.random.default_rng(0)
    subjects = [f"S{rng.integers(1, 40):03d}" for _ in range(300)]
    labels = list(rng.choice(["anger", "happy", "fear"], size=300))
    samples = _samples(subjects, labels)
    y = np.array([["anger", "happy", "fear"].index(l) for l in labels])
    for assign in ("ascending_round_robin", "ascending_blocks", "stratified_group"):
        folds = make_folds(_split(k=5, assign=assign), samples, y)
        tests = np.concatenate([f.test for f in folds])
        assert sorted(tests.tolist()) == list(range(300))  # every sample tested exactly once
        for f in folds:
            assert not {subjects[i] for i in f.train} & {subjects[i] for i in f.test}
            assert len(f.train) + len(f.test) == 300


def test_leakage_is_detected():
    subjects = np.array(["A", "A", "B", "B"])
    bad = [Fold(0, np.array([0, 2]), np.array([1, 3]), np.array([], dtype=int))]
    with pytest.raises(SplitError, match="leakage"):
        assert_no_leakage(bad, subjects)


def test_subject_overlap_is_not_applicable_without_subjects():
    fold = Fold(0, np.array([0, 1]), np.array([2, 3]), np.array([], dtype=int))
    assert subject_overlap([fold], ["A", "A", "A", "B"]) is True
    assert subject_overlap([fold], ["A", "A", "B", "B"]) is False
    assert subject_overlap([fold], [None] * 4) is None


def test_random_kfold_is_stratified_and_seeded():
    labels = ["anger"] * 20 + ["happy"] * 10
    samples = _samples([f"S{i % 3}" for i in range(30)], labels)
    y = np.array([0] * 20 + [1] * 10)
    a = make_folds(_split(type="random_kfold", k=5, seed=1), samples, y)
    b = make_folds(_split(type="random_kfold", k=5, seed=1), samples, y)
    c = make_folds(_split(type="random_kfold", k=5, seed=2), samples, y)
    assert all(np.array_equal(f.test, g.test) for f, g in zip(a, b))
    assert any(not np.array_equal(f.test, g.test) for f, g in zip(a, c))
    for f in a:
        assert np.bincount(y[f.test]).tolist() == [4, 2]


def test_loso_one_subject_per_fold():
    samples = _samples(["KA", "KA", "KL", "NA", "NA", "NA"])
    folds = make_folds(_split(type="loso"), samples, np.zeros(6, dtype=int))
    assert [[samples[i].subject for i in f.test] for f in folds] == [["KA", "KA"], ["KL"], ["NA", "NA", "NA"]]


def test_official_split_uses_usage():
    usage = ["Training", "Training", "PublicTest", "PrivateTest", "PrivateTest"]
    samples = _samples([None] * 5, usage=usage)
    folds = make_folds(_split(type="official", train=["Training"], test=["PrivateTest"], validation=["PublicTest"]),
                       samples, np.zeros(5, dtype=int))
    assert len(folds) == 1
    assert folds[0].train.tolist() == [0, 1]
    assert folds[0].test.tolist() == [3, 4]
    assert folds[0].validation.tolist() == [2]


def test_subject_split_without_subjects_is_refused():
    with pytest.raises(SplitError, match="subject identities"):
        make_folds(_split(), _samples([None] * 6), np.zeros(6, dtype=int))


def test_too_few_subjects_is_an_error():
    with pytest.raises(SplitError, match="2 subjects cannot fill 3"):
        make_folds(_split(k=3), _samples(["A", "B", "A"]), np.zeros(3, dtype=int))


def test_fold_file_by_subject(tmp_path):
    (tmp_path / "folds.yaml").write_text("folds:\n  - [A, C]\n  - [B]\n")
    samples = _samples(["A", "B", "C", "B"])
    folds = make_folds(_split(type="fold_file", file="folds.yaml", by="subject"), samples,
                       np.zeros(4, dtype=int), base_dir=tmp_path)
    assert [f.test.tolist() for f in folds] == [[0, 2], [1, 3]]


def test_fold_file_missing_subject_is_an_error(tmp_path):
    (tmp_path / "folds.yaml").write_text("folds:\n  - [A]\n  - [B]\n")
    with pytest.raises(SplitError, match="in no fold"):
        make_folds(_split(type="fold_file", file="folds.yaml", by="subject"), _samples(["A", "B", "C"]),
                   np.zeros(3, dtype=int), base_dir=tmp_path)


def test_fold_file_by_subject_needs_subjects_and_by_sample_does_not(tmp_path):
    (tmp_path / "folds.yaml").write_text("folds:\n  - [/x/0.png, /x/2.png]\n  - [/x/1.png]\n")
    samples = _samples([None] * 3)
    folds = make_folds(_split(type="fold_file", file="folds.yaml", by="sample"), samples,
                       np.zeros(3, dtype=int), base_dir=tmp_path)
    assert [f.test.tolist() for f in folds] == [[0, 2], [1]]
    with pytest.raises(SplitError, match="`fold_file` needs subject identities"):
        make_folds(_split(type="fold_file", file="folds.yaml", by="subject"), samples,
                   np.zeros(3, dtype=int), base_dir=tmp_path)
