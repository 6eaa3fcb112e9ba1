"""Protocol files: loading, includes, roots, fingerprints and errors that point at the key."""

from pathlib import Path
from typing import Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ferbench.data import registry
from ferbench.data.base import DatasetLoader
from ferbench.errors import ProtocolError, UnknownName
from ferbench.labels import CANONICAL
from ferbench.leaderboard.cells import METRIC_NAMES
from ferbench.metrics import SCALAR_METRICS, fold_metrics
from ferbench.protocol import (
    FoldFileSplit,
    LosoSplit,
    MetricsSpec,
    OfficialSplit,
    RandomKFold,
    SubjectKFold,
    load_protocol,
    side_blocks,
)


class FakeSeqOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    layout: Literal["auto", "full", "ck48"] = "auto"


class FakeSeq(DatasetLoader):
    """CK+-like: sequences, subjects, every canonical label, a `layout` option."""

    labels = CANONICAL
    sequential = True
    options_model = FakeSeqOptions

    def load(self, root, options):
        return []


class FakeStill(DatasetLoader):
    """JAFFE-like: still images, no contempt."""

    labels = ("neutral", "anger", "disgust", "fear", "happy", "sadness", "surprise")

    def load(self, root, options):
        return []


class FakeAnonymous(FakeStill):
    """FER2013-like: no subject identities."""

    has_subjects = False


@pytest.fixture(autouse=True)
def fake_datasets(monkeypatch):
    """Register the fake loaders in a copy of the registry, dropped after each test."""
    registry.dataset_names()  # import the built-in loaders into the real registry first
    monkeypatch.setattr(registry.DATASETS, "_items", dict(registry.DATASETS._items))
    registry.register_dataset("fake_seq")(FakeSeq)
    registry.register_dataset("fake_still")(FakeStill)
    registry.register_dataset("fake_anon")(FakeAnonymous)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.lstrip("\n"))
    return path


VALID = """
id: seq_7cls_si
version: 2
description: seven classes, last three frames
papers: [EmotionNet Nano (001)]
dataset:
  name: fake_seq
  root: data/ck
classes: [anger, contempt, disgust, fear, happy, sadness, surprise]
frames: {select: last_n, n: 3}
split: {type: subject_kfold, k: 10}
metrics: {primary: uar}
"""

CROSS = """
id: seq_to_still
version: 1
classes: [anger, disgust, fear, happy, sadness, surprise]
cross_dataset:
  train:
    - dataset: {name: fake_seq, root: /data/ck}
      frames: {select: last_n, n: 3}
  test:
    dataset: {name: fake_still, root: /data/still}
  evaluate: fold_models
split: {type: subject_kfold, k: 8}
"""


def expect_error(path: Path, **kwargs) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        load_protocol(path, **kwargs)
    return info.value


def test_valid_protocol_loads_with_defaults_filled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = load_protocol(write(tmp_path / "p.yaml", VALID))
    assert (p.id, p.version, p.papers) == ("seq_7cls_si", 2, ("EmotionNet Nano (001)",))
    assert p.classes == ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
    assert (p.frames.select, p.frames.n, p.frames.first_as_neutral) == ("last_n", 3, "none")
    assert p.split == SubjectKFold(type="subject_kfold", k=10, assign="ascending_round_robin", seed=0)
    assert p.dataset.root == str(tmp_path / "data" / "ck")  # relative to the working directory
    assert p.dataset.options == {"layout": "auto"}  # the loader's defaults
    assert p.preprocess.size == (128, 128) and p.preprocess.face == "auto" and p.preprocess.margin == 0.2
    assert p.metrics.primary == "uar" and p.on_unreadable == "fail"
    assert p.source_file == tmp_path / "p.yaml"
    assert [(s.role, s.dataset.name, s.frames.n, s.path) for s in p.sides()] == [("within", "fake_seq", 3, ())]
    with pytest.raises(ValidationError):
        p.id = "other"  # frozen


def test_resolved_dict_reloads_to_the_same_protocol(tmp_path):
    p = load_protocol(write(tmp_path / "p.yaml", VALID))
    again = load_protocol(write(tmp_path / "resolved.yaml", yaml.safe_dump(p.resolved_dict())))
    assert again.resolved_dict() == p.resolved_dict() and again.fingerprint == p.fingerprint


def test_include_child_wins_deep_merge_and_lists_replaced(tmp_path):
    write(tmp_path / "_base" / "seq.yaml", """
dataset: {name: fake_seq, root: /data/ck, options: {layout: full}}
classes: [anger, happy, surprise]
preprocess: {margin: 0.1, size: [64, 64], face: haar}
split: {type: subject_kfold, k: 10, assign: stratified_group}
""")
    child = write(tmp_path / "p.yaml", """
id: child
version: 1
include: [_base/seq.yaml]
classes: [happy, sadness]
preprocess: {margin: 0.3}
split: {k: 5}
""")
    p = load_protocol(child)
    assert p.classes == ("happy", "sadness")  # list replaced, not appended
    assert (p.preprocess.margin, p.preprocess.size, p.preprocess.face) == (0.3, (64, 64), "haar")
    assert (p.split.type, p.split.k, p.split.assign) == ("subject_kfold", 5, "stratified_group")
    assert p.dataset.options == {"layout": "full"} and p.dataset.root == "/data/ck"
    # a block that changes its `type` starts afresh: subject_kfold's options do not leak in
    write(child, child.read_text().replace("split: {k: 5}", "split: {type: random_kfold, k: 4}"))
    assert load_protocol(child).split == RandomKFold(type="random_kfold", k=4, seed=0, stratified=True)


def test_two_parents_merge_left_to_right_and_nested_includes(tmp_path):
    write(tmp_path / "_base" / "root.yaml", "version: 7\npreprocess: {grayscale: false, margin: 0.5}\n")
    write(tmp_path / "_base" / "first.yaml", "include: root.yaml\nmetrics: {primary: macro_f1}\npreprocess: {margin: 0.4}\n")
    write(tmp_path / "other" / "second.yaml", "metrics: {primary: uar}\ndataset: {name: fake_seq}\n")
    child = write(tmp_path / "p.yaml", """
id: two
include: [_base/first.yaml, other/second.yaml]
classes: [anger, happy]
split: {type: loso}
""")
    p = load_protocol(child)
    assert p.version == 7  # from root.yaml, included by first.yaml relative to itself
    assert p.preprocess.grayscale is False and p.preprocess.margin == 0.4
    assert p.metrics.primary == "uar"  # the second parent wins over the first
    assert p.dataset.name == "fake_seq" and p.dataset.root is None


def test_include_cycle_names_the_chain(tmp_path):
    write(tmp_path / "a.yaml", "id: a\nversion: 1\ninclude: [b.yaml]\n")
    write(tmp_path / "b.yaml", "classes: [anger, happy]\ninclude:\n  - a.yaml\n")
    err = expect_error(tmp_path / "a.yaml")
    assert "include cycle: a.yaml -> b.yaml -> a.yaml" in str(err)
    assert (err.file, err.line, err.key) == (tmp_path / "b.yaml", 3, "include[0]")


def test_missing_file_and_missing_include_are_named(tmp_path):
    assert "protocol file not found" in str(expect_error(tmp_path / "nope.yaml"))
    err = expect_error(write(tmp_path / "p.yaml", "id: x\nversion: 1\ninclude: [_base/gone.yaml]\n"))
    assert "included file not found" in str(err) and "gone.yaml" in str(err) and err.line == 3


def test_yaml_syntax_error_reports_its_line(tmp_path):
    err = expect_error(write(tmp_path / "p.yaml", "id: x\nversion: 1\nclasses: [anger, happy\nsplit: 3\n"))
    assert "invalid YAML" in str(err) and err.line == 4


def test_unknown_top_level_key_suggests_and_points_at_line(tmp_path):
    path = write(tmp_path / "p.yaml", VALID.replace("split:", "splt:"))
    err = expect_error(path)
    assert (err.file, err.key, err.line) == (tmp_path / "p.yaml", "splt", 10)
    assert "unknown key `splt` (did you mean `split`?)" in str(err)


def test_split_type_typo_suggests_and_points_at_line(tmp_path):
    path = write(tmp_path / "p.yaml", VALID.replace("split: {type: subject_kfold, k: 10}",
                                                    "split:\n  k: 10\n  type: subject_kfol"))
    err = expect_error(path)
    assert (err.key, err.line) == ("split.type", 12)
    assert "`subject_kfol` is not a valid split type (did you mean `subject_kfold`?)" in str(err)


def test_split_option_errors_point_inside_the_chosen_type(tmp_path):
    err = expect_error(write(tmp_path / "p.yaml", VALID.replace("k: 10", "k: 10, sed: 3")))
    assert err.key == "split.sed" and "did you mean `seed`" in str(err) and err.line == 10
    err = expect_error(write(tmp_path / "p.yaml", VALID.replace("k: 10", "k: 1")))
    assert err.key == "split.k" and "greater than or equal to 2" in str(err)


def test_unknown_class_name_is_reported_at_classes(tmp_path):
    err = expect_error(write(tmp_path / "p.yaml", VALID.replace("happy", "hapy")))
    assert (err.key, err.line) == ("classes", 8) and "did you mean `happy`" in str(err)


def test_bad_value_of_a_literal_suggests(tmp_path):
    err = expect_error(write(tmp_path / "p.yaml", VALID.replace("primary: uar", "primary: macro_f")))
    assert (err.key, err.line) == ("metrics.primary", 11) and "did you mean `macro_f1`" in str(err)


def test_bad_dataset_name_suggests_a_registered_one(tmp_path):
    err = expect_error(write(tmp_path / "p.yaml", VALID.replace("name: fake_seq", "name: fake_sq")))
    assert (err.key, err.line) == ("dataset.name", 6) and "did you mean `fake_seq`" in str(err)


def test_unknown_dataset_option_is_reported_at_the_option(tmp_path):
    path = write(tmp_path / "p.yaml", VALID.replace("  root: data/ck", "  root: data/ck\n  options:\n    lyout: full"))
    err = expect_error(path)
    assert (err.key, err.line) == ("dataset.options.lyout", 9)
    assert "unknown key `lyout` (did you mean `layout`?)" in str(err)
    bad_value = write(tmp_path / "q.yaml", VALID.replace("  root: data/ck", "  root: data/ck\n  options: {layout: ck49}"))
    err = expect_error(bad_value)
    assert err.key == "dataset.options.layout" and "did you mean `ck48`" in str(err)


def test_inherited_bad_key_is_reported_against_the_parent(tmp_path):
    parent = write(tmp_path / "_base" / "seq.yaml", "dataset: {name: fake_seq}\npreprocess:\n  marginn: 0.3\n")
    child = write(tmp_path / "p.yaml", "id: x\nversion: 1\ninclude: [_base/seq.yaml]\nclasses: [anger, happy]\n"
                                       "split: {type: loso}\n")
    err = expect_error(child)
    assert (err.file, err.line, err.key) == (parent, 3, "preprocess.marginn")
    assert "did you mean `margin`" in str(err)
    # a key the child overrides is reported against the child, even though the parent has it too
    write(parent, "dataset: {name: fake_seq}\npreprocess:\n  margin: 0.3\n")
    write(child, child.read_text() + "preprocess: {margin: -1}\n")
    err = expect_error(child)
    assert (err.file, err.line, err.key) == (child, 6, "preprocess.margin")
    assert "greater than or equal to 0" in str(err)


def test_env_expansion_and_unset_variable(tmp_path, monkeypatch):
    path = write(tmp_path / "p.yaml", VALID.replace("root: data/ck", "root: ${env:FAKE_DATA}/ck"))
    monkeypatch.setenv("FAKE_DATA", str(tmp_path / "store"))
    assert load_protocol(path).dataset.root == str(tmp_path / "store" / "ck")
    monkeypatch.delenv("FAKE_DATA")
    err = expect_error(path)
    assert (err.key, err.line) == ("dataset.root", 7) and "`FAKE_DATA` is not set" in str(err)
    # an unset variable is fine when the command line says where the data is
    assert load_protocol(path, roots={"fake_seq": "/elsewhere"}).dataset.root == "/elsewhere"
    assert load_protocol(path, synthetic=True).dataset.root == "synthetic"


def test_home_directory_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    p = load_protocol(write(tmp_path / "p.yaml", VALID.replace("root: data/ck", "root: ~/ck")))
    assert p.dataset.root == str(tmp_path / "ck")


def test_cli_root_beats_the_file_and_must_name_a_dataset(tmp_path):
    path = write(tmp_path / "p.yaml", CROSS)
    p = load_protocol(path, roots={"fake_still": "/mnt/still"})
    assert [s.dataset.root for s in p.sides()] == ["/data/ck", "/mnt/still"]
    with pytest.raises(UnknownName, match="did you mean `fake_still`"):
        load_protocol(path, roots={"fake_stil": "/mnt/still"})


def test_synthetic_flag_sets_every_root_and_changes_the_fingerprint(tmp_path):
    path = write(tmp_path / "p.yaml", CROSS)
    real, synthetic = load_protocol(path), load_protocol(path, synthetic=True)
    assert [s.dataset.root for s in synthetic.sides()] == ["synthetic", "synthetic"]
    assert all(s.dataset.synthetic for s in synthetic.sides())
    assert real.fingerprint != synthetic.fingerprint
    small = load_protocol(path, roots={"fake_seq": "synthetic:small", "fake_still": "synthetic"})
    assert [s.dataset.root for s in small.sides()] == ["synthetic:small", "synthetic"]
    assert small.fingerprint not in (real.fingerprint, synthetic.fingerprint)


def test_fingerprint_ignores_locations_and_prose_but_not_the_protocol(tmp_path):
    def fingerprint(text, **kwargs):
        return load_protocol(write(tmp_path / "p.yaml", text), **kwargs).fingerprint

    base = fingerprint(VALID)
    assert len(base) == 16 and int(base, 16) >= 0
    assert fingerprint(VALID, roots={"fake_seq": "/somewhere/else"}) == base
    assert fingerprint(VALID.replace("seven classes", "7 cls").replace("Nano (001)", "Nano")) == base
    assert fingerprint(VALID.replace("k: 10", "k: 10, seed: 0")) == base  # the default, written out
    assert fingerprint(VALID.replace("  root: data/ck\n", "  root: data/ck\n  options: {layout: auto}\n")) == base
    changed = [VALID.replace("contempt, ", ""), VALID.replace("n: 3", "n: 2"),
               VALID.replace("k: 10", "k: 10, seed: 1"), VALID.replace("version: 2", "version: 3"),
               VALID.replace("split: {", "preprocess: {size: [64, 64]}\nsplit: {")]
    prints = [fingerprint(text) for text in changed]
    assert base not in prints and len(set(prints)) == len(prints)


def test_fold_file_is_relative_to_the_file_that_names_it_and_fingerprinted_by_content(tmp_path):
    folds = write(tmp_path / "_base" / "folds.txt", "S1 S2\nS3\n")
    write(tmp_path / "_base" / "seq.yaml", "split: {type: fold_file, file: folds.txt, by: subject}\n")
    path = write(tmp_path / "p.yaml", VALID.replace("split: {type: subject_kfold, k: 10}", "include: [_base/seq.yaml]"))
    p = load_protocol(path)
    assert p.split == FoldFileSplit(type="fold_file", file=str(folds), by="subject")
    before = p.fingerprint
    folds.write_text("S1\nS2 S3\n")
    assert load_protocol(path).fingerprint != before
    folds.unlink()
    err = expect_error(path)
    assert err.key == "split.file" and err.file == tmp_path / "_base" / "seq.yaml" and err.line == 1


def test_cross_dataset_loads_and_checks_classes_per_side(tmp_path):
    p = load_protocol(write(tmp_path / "p.yaml", CROSS))
    assert [(s.role, s.dataset.name, s.frames.select) for s in p.sides()] == [
        ("train", "fake_seq", "last_n"), ("test", "fake_still", "all")]
    assert p.sides()[0].path == ("cross_dataset", "train", 0)
    err = expect_error(write(tmp_path / "p.yaml", CROSS.replace("[anger,", "[anger, contempt,")))
    assert (err.key, err.line) == ("classes", 3)
    assert "class `contempt` cannot come from the test side (dataset `fake_still`)" in str(err)


def test_cross_dataset_split_rules(tmp_path):
    err = expect_error(write(tmp_path / "p.yaml", CROSS.replace("split: {type: subject_kfold, k: 8}\n", "")))
    assert err.key == "split" and "all_source" in str(err)
    no_split = CROSS.replace("fold_models", "all_source").replace("split: {type: subject_kfold, k: 8}\n", "")
    assert load_protocol(write(tmp_path / "p.yaml", no_split)).split is None
    err = expect_error(write(tmp_path / "p.yaml", CROSS + "dataset: {name: fake_seq}\n"))
    assert err.key == "dataset" and err.line == 12


def test_n_is_required_for_last_n_and_forbidden_for_all(tmp_path):
    err = expect_error(write(tmp_path / "p.yaml", VALID.replace("frames: {select: last_n, n: 3}", "frames: {select: last_n}")))
    assert (err.key, err.line) == ("frames.n", 9) and "`n` is required when select is `last_n`" in str(err)
    err = expect_error(write(tmp_path / "p.yaml", VALID.replace("select: last_n", "select: all")))
    assert err.key == "frames.n" and "only allowed with select" in str(err)


def test_dataset_capabilities_are_checked_up_front(tmp_path):
    still = VALID.replace("fake_seq", "fake_still").replace("contempt, ", "")
    err = expect_error(write(tmp_path / "p.yaml", still))
    assert err.key == "frames.select" and "needs image sequences" in str(err)
    anonymous = still.replace("fake_still", "fake_anon").replace("frames: {select: last_n, n: 3}\n", "")
    err = expect_error(write(tmp_path / "p.yaml", anonymous))
    assert err.key == "split.type" and "needs subject identities" in str(err)
    neutral = VALID.replace("n: 3}", "n: 3, first_as_neutral: labelled}")
    err = expect_error(write(tmp_path / "p.yaml", neutral))
    assert err.key == "frames.first_as_neutral" and "`neutral` is not in classes" in str(err)


def test_missing_required_key_and_duplicate_key(tmp_path):
    err = expect_error(write(tmp_path / "p.yaml", VALID.replace("version: 2\n", "")))
    assert err.key == "version" and "required key `version` is missing" in str(err)
    err = expect_error(write(tmp_path / "p.yaml", VALID + "classes: [anger, happy]\n"))
    assert (err.key, err.line) == ("classes", 12) and "duplicate key" in str(err)


def test_a_misspelt_required_top_level_key_reads_as_a_typo(tmp_path):
    err = expect_error(write(tmp_path / "p.yaml", VALID.replace("classes:", "clases:")))
    assert (err.key, err.line) == ("clases", 8)
    assert "unknown key `clases` (did you mean `classes`?)" in str(err)


@pytest.mark.parametrize(("old", "new", "key", "line"), [
    ("n: 3}", "n: true}", "frames.n", 9),
    ("version: 2", "version: true", "version", 2),
    ("k: 10}", "k: true}", "split.k", 10),
    ("k: 10}", "k: 10, seed: false}", "split.seed", 10),
    ("n: 3}", "n: 3, intensities: [1, true]}", "frames.intensities[1]", 9),
    ("metrics:", "preprocess: {margin: true}\nmetrics:", "preprocess.margin", 11),
    ("metrics:", "preprocess: {min_face: true}\nmetrics:", "preprocess.min_face", 11),
    ("metrics:", "preprocess: {size: [true, 64]}\nmetrics:", "preprocess.size[0]", 11),
])
def test_a_boolean_is_no_number(tmp_path, old, new, key, line):
    """YAML `true` would otherwise count as 1 (`frames.n: true` meant one frame)."""
    err = expect_error(write(tmp_path / "p.yaml", VALID.replace(old, new)))
    assert (err.key, err.line) == (key, line)
    assert "got `true`" in str(err) or "got `false`" in str(err)
    assert str(err).startswith(f"{tmp_path / 'p.yaml'}:{line}: {key}: expected ")


def test_integers_count_where_a_number_is_expected(tmp_path):
    text = VALID.replace("metrics:", "preprocess: {margin: 0, min_face: 1}\nmetrics:")
    preprocess = load_protocol(write(tmp_path / "p.yaml", text)).preprocess
    assert (preprocess.margin, preprocess.min_face) == (0.0, 1.0)


@pytest.mark.parametrize("split, independent", [
    (SubjectKFold(type="subject_kfold", k=10), True),
    (SubjectKFold(type="subject_kfold", k=5, assign="stratified_group"), True),
    (LosoSplit(type="loso"), True),
    (FoldFileSplit(type="fold_file", file="f.yaml", by="subject"), True),
    (FoldFileSplit(type="fold_file", file="f.yaml", by="sample"), False),
    (RandomKFold(type="random_kfold", k=10), False),
    (OfficialSplit(type="official", train=("Training",), test=("PrivateTest",)), False),
])
def test_subject_independence_is_a_property_of_the_split(split, independent):
    assert split.subject_independent is independent


def test_a_protocol_is_subject_independent_by_its_split(tmp_path):
    folds = write(tmp_path / "folds.yaml", "folds: [[S1], [S2]]\n")
    assert load_protocol(write(tmp_path / "p.yaml", VALID)).subject_independent
    by_sample = VALID.replace("{type: subject_kfold, k: 10}", f"{{type: fold_file, file: {folds}, by: sample}}")
    assert not load_protocol(write(tmp_path / "p.yaml", by_sample)).subject_independent
    no_split = CROSS.replace("fold_models", "all_source").replace("split: {type: subject_kfold, k: 8}\n", "")
    assert not load_protocol(write(tmp_path / "p.yaml", no_split)).subject_independent


def test_a_fold_file_by_subject_needs_subject_identities(tmp_path):
    folds = write(tmp_path / "folds.yaml", "folds: [[S1], [S2]]\n")
    anonymous = VALID.replace("fake_seq", "fake_anon").replace("contempt, ", "").replace(
        "frames: {select: last_n, n: 3}", "frames: {select: all}")
    by = "split: {{type: fold_file, file: {folds}, by: {by}}}"
    err = expect_error(write(tmp_path / "p.yaml", anonymous.replace("split: {type: subject_kfold, k: 10}",
                                                                     by.format(folds=folds, by="subject"))))
    assert err.key == "split.type" and "needs subject identities" in str(err)
    load_protocol(write(tmp_path / "p.yaml", anonymous.replace("split: {type: subject_kfold, k: 10}",
                                                               by.format(folds=folds, by="sample"))))


def test_side_blocks_of_a_dict_are_the_sides_of_the_protocol(tmp_path):
    two_sources = CROSS.replace("  test:\n", "    - dataset: {name: fake_still, root: /data/other}\n  test:\n")
    for text in (VALID, two_sources):
        p = load_protocol(write(tmp_path / "p.yaml", text))
        blocks = side_blocks(p.resolved_dict())
        assert [path for path, _ in blocks] == [side.path for side in p.sides()]
        assert [(block["dataset"], block.get("frames")) for _, block in blocks] == \
               [(side.dataset.model_dump(mode="json"), side.frames.model_dump(mode="json")) for side in p.sides()]
    assert [path for path, _ in blocks] == [("cross_dataset", "train", 0), ("cross_dataset", "train", 1),
                                            ("cross_dataset", "test")]


def test_metric_names_are_those_every_fold_result_holds():
    result = fold_metrics([0, 1, 1], [0, 1, 0], ["happy", "sadness"])
    assert [name for name in result if name in SCALAR_METRICS] == list(SCALAR_METRICS)
    assert MetricsSpec().report == SCALAR_METRICS
    ranking = MetricsSpec.model_fields["primary"].annotation.__args__
    assert set(ranking) < set(SCALAR_METRICS) and set(METRIC_NAMES) == set(ranking)
