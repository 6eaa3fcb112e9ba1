"""Every shipped protocol validates, selects the paper's counts on its paper-shaped twin,
and every subject-independent one is leakage-free with the exact DeRL or ED²L fold membership."""

from collections import Counter
from pathlib import Path

import pytest

from ferbench.data.registry import get_dataset
from ferbench.errors import FerbenchError
from ferbench.pipeline import describe, load_protocol_data
from ferbench.protocol import load_protocol
from ferbench.splits import natural_key
from ferbench.synth.plans import plan_mmi

PROTOCOLS = sorted((Path(__file__).parents[1] / "protocols").glob("*.yaml"))


def inspect(name: str, root: str = "synthetic", dataset: str | None = None, **shapes: str) -> dict:
    """``ferbench inspect`` of a shipped protocol: every dataset at ``root`` (only ``dataset`` if
    given), except those named in ``shapes`` (dataset name -> twin root, e.g. ``synthetic:small``)."""
    path = Path(__file__).parents[1] / "protocols" / f"{name}.yaml"
    protocol = load_protocol(path, require_roots=False)
    roots = {side.dataset.name: root for side in protocol.sides()}
    if dataset:
        roots = {dataset: root}
    return describe(load_protocol_data(load_protocol(path, roots={**roots, **shapes})))


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.stem)
def test_shipped_protocol_validates(path):
    protocol = load_protocol(path, require_roots=False)
    assert protocol.id == path.stem
    assert protocol.description


# (protocol, total, subjects) on the paper-shaped CK+ twin; totals from REFERENCE.md / the papers.
CKPLUS_COUNTS = [
    ("ckplus_7cls_si", 981, 118),
    ("ckplus_7cls_si_ed2l", 981, 118),
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


def test_ed2l_first_fold_presents_six_expressions_on_paper_twin():
    # ED²L (002) l.212: "the subjects in the first fold only present six expressions"
    path = Path(__file__).parents[1] / "protocols" / "ckplus_7cls_si_ed2l.yaml"
    data = load_protocol_data(load_protocol(path, synthetic=True))
    subjects = sorted({s.subject for s in data.samples}, key=natural_key)
    folds = data.folds()
    blocks = [sorted({data.samples[i].subject for i in f.test}, key=natural_key) for f in folds]
    assert [len(b) for b in blocks] == [12] * 8 + [11] * 2 and sum(blocks, []) == subjects  # contiguous
    assert (blocks[0][0], blocks[0][-1]) == ("S005", "S037")
    first = {data.samples[i].label for i in folds[0].test}
    assert first == {"anger", "disgust", "fear", "happy", "sadness", "surprise"}
    # the DeRL round robin cannot give that: every one of its folds holds contempt
    derl = inspect("ckplus_7cls_si")
    assert all(f["test_per_class"]["contempt"] > 0 for f in derl["folds"])
    assert sum(f["test"] for f in inspect("ckplus_7cls_si_ed2l")["folds"]) == 981


def test_jaffe_counts_on_paper_twin():
    assert inspect("jaffe_7cls_loso")["per_class"] == {"neutral": 30, "anger": 30, "disgust": 29, "fear": 32,
                                                        "happy": 31, "sadness": 31, "surprise": 30}
    six = inspect("jaffe_6cls_loso")
    assert (six["total"], six["subjects"], len(six["folds"]), six["leakage"]) == (183, 10, 10, False)


def test_oulu_casia_counts_on_paper_twin():
    info = inspect("oulu_casia_6cls_si")
    assert (info["total"], info["subjects"], info["leakage"]) == (1440, 80, False)
    assert set(info["per_class"].values()) == {240}
    # ED²L's setup: the same images, 80 sorted subjects in 10 contiguous blocks of 8
    ed2l = inspect("oulu_casia_6cls_si_ed2l")
    assert (ed2l["total"], ed2l["per_class"], ed2l["leakage"]) == (1440, info["per_class"], False)
    assert [f["test_subjects"] for f in ed2l["folds"]] == [8] * 10
    path = Path(__file__).parents[1] / "protocols" / "oulu_casia_6cls_si_ed2l.yaml"
    data = load_protocol_data(load_protocol(path, synthetic=True))
    subjects = sorted({s.subject for s in data.samples}, key=natural_key)
    for fold in data.folds():
        assert {data.samples[i].subject for i in fold.test} == set(subjects[8 * fold.index:8 * fold.index + 8])


def test_mmi_counts_on_paper_twin():
    # ED²L: 209 front-view sequences of 32 subjects (of 236), three middle frames each
    ed2l = inspect("mmi_6cls_ed2l")
    assert (ed2l["total"], ed2l["subjects"], ed2l["sequences"]) == (627, 32, 209)
    assert len(ed2l["folds"]) == 10 and ed2l["leakage"] is False
    front = Counter(s.expression for s in plan_mmi("paper", 0) if s.view == "0")
    assert ed2l["per_class"] == {label: 3 * n for label, n in front.items()}
    assert [f["test_subjects"] for f in ed2l["folds"]] == [4, 4] + [3] * 8  # 32 sorted subjects, contiguous
    # C-SPP: the 125 glasses-free sequences of 21 people, two frames each
    cspp = inspect("mmi_6cls_cspp")
    assert (cspp["total"], cspp["subjects"], cspp["sequences"]) == (250, 21, 125)
    assert len(cspp["folds"]) == 7 and cspp["leakage"] is False


def test_bu3dfe_counts_on_paper_twin():
    info = inspect("bu3dfe_6cls_si")
    assert (info["total"], info["subjects"], info["leakage"]) == (1200, 100, False)
    assert set(info["per_class"].values()) == {200}
    assert [f["test_subjects"] for f in info["folds"]] == [10] * 10


def test_cross_dataset_counts_on_paper_twins():
    # C-SPP: the 8 fold models of CK+ (927 images, 106 subjects) evaluated on MMI (2 frames x 125)
    mmi = inspect("cross_ckplus_mmi_cspp")
    assert (mmi["total"], mmi["subjects"], len(mmi["folds"]), mmi["leakage"]) == (927, 106, 8, False)
    assert mmi["target"]["total"] == 250
    oulu = inspect("cross_ckplus_oulu_casia")
    assert (oulu["total"], oulu["target"]["total"], len(oulu["folds"])) == (927, 1440, 1)
    # FER2013 (small twin) -> CK+: last 3 of the 309 non-contempt + 327 first frames as neutral
    fer = inspect("cross_fer2013_ckplus", fer2013="synthetic:small")
    assert fer["target"]["total"] == 1254 and fer["target"]["per_class"]["neutral"] == 327


def test_fer2013_cross_side_trains_on_training_rows_only():
    info = inspect("cross_fer2013_jaffe", root="synthetic:small")
    (fold,) = info["folds"]  # the official split gives one model, evaluated on the whole target
    assert (fold["train"], fold["validation"], fold["test"]) == (300, 60, 60)  # Training / PublicTest / PrivateTest
    assert info["target"]["dataset"] == "jaffe" and info["target"]["total"] == inspect(
        "jaffe_7cls_loso", root="synthetic:small")["total"]


def test_still_image_protocols_on_small_twins():
    # small twins: KDEF 10 subjects x 2 sessions x 7 straight-view images; NimStim 8 actors x
    # 6 codes x 2 mouths (no calm, no neutral); RAF-DB 200 train / 50 test rows
    kdef = inspect("kdef_7cls_si", root="synthetic:small")
    assert (kdef["total"], kdef["subjects"], set(kdef["per_class"].values())) == (140, 10, {20})
    nimstim = inspect("nimstim_6cls_si8", root="synthetic:small")
    assert (nimstim["total"], nimstim["subjects"], len(nimstim["folds"])) == (96, 8, 8)
    rafdb = inspect("rafdb_7cls_official", root="synthetic:small")
    assert [(f["train"], f["test"]) for f in rafdb["folds"]] == [(200, 50)]
    assert rafdb["leakage"] is None  # no subject identities: not applicable


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
    identified = all(get_dataset(side.dataset.name).has_subjects for side in protocol.sides() if side.role != "test")
    assert (info["leakage"] is None) == (not identified)  # FER2013, RAF-DB: not applicable


def test_ck48_layout_gives_981_and_refuses_first_frames(tmp_path):
    from ferbench.synth import write_twin

    root = write_twin("ckplus48", tmp_path / "ck48", seed=0, shape="paper")
    info = inspect("ckplus_7cls_si", root=str(root))
    assert (info["total"], info["subjects"]) == (981, 118)
    with pytest.raises(FerbenchError, match="CK\\+48"):
        inspect("ckplus_8cls_si", root=str(root))


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.stem)
def test_every_protocol_trains_and_scores_on_small_twin(path, tmp_path):
    """One fold of a fast classical baseline through the whole runner, on every shipped protocol."""
    from ferbench.cards import load_card
    from ferbench.pipeline import attach_images
    from ferbench.runner import RunOptions, run_card

    protocol = load_protocol(path, require_roots=False)
    roots = {side.dataset.name: "synthetic:small" for side in protocol.sides()}
    data = attach_images(load_protocol_data(load_protocol(path, roots=roots)), progress=False)
    options = RunOptions(out=tmp_path, folds=[0], progress=False, speed=False)
    summary = run_card(data, data.folds(), load_card("lbp_svm"), options)
    assert summary["jobs_done"] == 1 and summary["synthetic"] is True
    assert 0.0 <= summary["metrics"]["accuracy"]["mean"] <= 1.0
    assert summary["classes"] == list(protocol.classes)
