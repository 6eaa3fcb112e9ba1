"""Every shipped protocol validates, selects the paper's counts on its paper-shaped twin,
and every subject-independent one is leakage-free with the exact DeRL fold membership."""

from pathlib import Path

import pytest

from ferbench.errors import FerbenchError
from ferbench.pipeline import describe, load_protocol_data
from ferbench.protocol import load_protocol
from ferbench.splits import natural_key

PROTOCOLS = sorted((Path(__file__).parents[1] / "protocols").glob("*.yaml"))


def inspect(name: str, root: str = "synthetic", dataset: str | None = None) -> dict:
    path = Path(__file__).parents[1] / "protocols" / f"{name}.yaml"
    protocol = load_protocol(path, require_roots=False)
    roots = {side.dataset.name: root for side in protocol.sides()}
    if dataset:
        roots = {dataset: root}
    return describe(load_protocol_data(load_protocol(path, roots=roots)))


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.stem)
def test_shipped_protocol_validates(path):
    protocol = load_protocol(path, require_roots=False)
    assert protocol.id == path.stem
    assert protocol.description


# (protocol, total, subjects) on the paper-shaped CK+ twin; totals from REFERENCE.md / the papers.
CKPLUS_COUNTS = [
    ("ckplus_7cls_si", 981, 118),
    ("ckplus_6cls_si", 927, 106),
    ("ckplus_6cls_si8", 927, 106),
    ("ckplus_8cls_si", 1574, 123),
    ("ckplus_8cls_random", 1574, 123),
    ("ckplus_miao_6_last", 309, 106),
    ("ckplus_miao_7n_last", 327, 118),
    ("ckplus_miao_7c_last", 636, 118),
    ("ckplus_miao_8_last", 654, 118),
    ("ckplus_miao_6_last3", 927, 106),
    ("ckplus_miao_7n_last3", 981, 118),
    ("ckplus_miao_7c_last3", 1254, 118),
    ("ckplus_miao_8_last3", 1308, 118),
]


@pytest.mark.parametrize("name,total,subjects", CKPLUS_COUNTS)
def test_ckplus_counts_on_paper_twin(name, total, subjects):
    info = inspect(name)
    assert info["synthetic"] is True
    assert (info["total"], info["subjects"]) == (total, subjects)
    assert sum(f["test"] for f in info["folds"]) == total  # folds partition the samples
    assert info["leakage"] is (not info["subject_independent"])


def test_ckplus_7cls_per_class_counts():
    info = inspect("ckplus_7cls_si")
    assert info["per_class"] == {"anger": 135, "contempt": 54, "disgust": 177, "fear": 75,
                                 "happy": 207, "sadness": 84, "surprise": 249}


def test_ckplus_8cls_neutral_is_first_frame_of_all_593_sequences():
    info = inspect("ckplus_8cls_si")
    assert info["per_class"]["neutral"] == 593
    assert info["sequences"] == 593


def test_derl_fold_membership_on_paper_twin():
    path = Path(__file__).parents[1] / "protocols" / "ckplus_7cls_si.yaml"
    data = load_protocol_data(load_protocol(path, synthetic=True))
    subjects = sorted({s.subject for s in data.samples}, key=natural_key)
    for fold in data.folds():
        assert {data.samples[i].subject for i in fold.test} == set(subjects[fold.index::10])


def test_jaffe_counts_on_paper_twin():
    assert inspect("jaffe_7cls_loso")["per_class"] == {"neutral": 30, "anger": 30, "disgust": 29, "fear": 32,
                                                        "happy": 31, "sadness": 31, "surprise": 30}
    six = inspect("jaffe_6cls_loso")
    assert (six["total"], six["subjects"], len(six["folds"]), six["leakage"]) == (183, 10, 10, False)


def test_oulu_casia_counts_on_paper_twin():
    info = inspect("oulu_casia_6cls_si")
    assert (info["total"], info["subjects"], info["leakage"]) == (1440, 80, False)
    assert set(info["per_class"].values()) == {240}


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.stem)
def test_every_protocol_runs_on_small_twin_without_leakage(path):
    protocol = load_protocol(path, require_roots=False)
    info = inspect(path.stem, root="synthetic:small")
    assert info["total"] > 0
    if protocol.split is not None:
        assert all(f["test"] > 0 for f in info["folds"])
    if protocol.cross_dataset is not None:
        assert info["target"]["total"] > 0 and all(info["target"]["per_class"].values())
    if protocol.split is not None and protocol.split.type in ("subject_kfold", "loso"):
        assert info["leakage"] is False


def test_ck48_layout_gives_981_and_refuses_first_frames(tmp_path):
    from ferbench.synth import write_twin

    root = write_twin("ckplus48", tmp_path / "ck48", seed=0, shape="paper")
    info = inspect("ckplus_7cls_si", root=str(root))
    assert (info["total"], info["subjects"]) == (981, 118)
    with pytest.raises(FerbenchError, match="CK\\+48"):
        inspect("ckplus_8cls_si", root=str(root))
