"""Model cards: the bundled baselines load, errors point at file, line and key, copies and fingerprints."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferbench.cards import BASELINES_ENV, MultiStep, Step, card_names, list_cards, load_card
from ferbench.errors import CardError, UnknownName
from ferbench.models.build import check_constructor

BASELINES = Path(__file__).resolve().parents[1] / "baselines"

MODELS = {
    "microexpnet_m", "microexpnet_s", "microexpnet_xs", "microexpnet_xxs", "inception_v3_teacher",
    "emotionnet_nano_a", "emotionnet_nano_b", "ed2l", "ed2l_baseline", "mobilenetv1_centerloss",
    "lopes_cnn", "lopes_cnn_3x3", "plain7cnn", "plain8cnn", "cspp", "lbp_svm", "hog_svm",
}
KD_CARDS = {f"microexpnet_{size}_kd" for size in ("m", "s", "xs", "xxs")}
PROTOCOLS = {
    "ckplus_7cls_si", "ckplus_6cls_si", "ckplus_8cls_si", "ckplus_8cls_random", "ckplus_6cls_si8",
    "ckplus_7cls_si_ed2l", "oulu_casia_6cls_si_ed2l",
    *(f"ckplus_miao_{c}_{s}" for c in ("6", "7n", "7c", "8") for s in ("last", "last3")),
    "jaffe_7cls_loso", "jaffe_6cls_loso", "jaffe_7cls_random5", "oulu_casia_6cls_si", "mmi_6cls_ed2l",
    "mmi_6cls_cspp", "bu3dfe_6cls_si", "nimstim_6cls_si8", "cross_ckplus_jaffe_cspp", "cross_ckplus_mmi_cspp",
    "cross_ckplus_nimstim_cspp", "cross_ckplus_jaffe_miao", "cross_jaffe_ckplus_miao",
}

CARD = """\
name: tiny
model: tiny_cnn
input: {channels: 1, size: [16, 16]}
recipe:
  epochs: 10
  batch_size: 8
  optimizer: {name: adam, lr: 1.0e-3}
  schedule: {name: multistep, milestones: [4, 8], factors: [0.1, 0.01]}
  augment:
    - {name: rotate, degrees: 10}
citation: "someone"
notes: "a note"
"""


def write_card(folder: Path, text: str = CARD, name: str = "tiny") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def error_of(folder: Path, old: str, new: str) -> CardError:
    path = write_card(folder, CARD.replace(old, new))
    with pytest.raises(CardError) as caught:
        load_card(path)
    return caught.value


# ----------------------------------------------------------------------------- bundled cards


def test_every_baseline_has_a_card():
    assert set(card_names()) == {path.stem for path in BASELINES.glob("*.yaml")} == MODELS | KD_CARDS


@pytest.mark.parametrize("path", sorted(BASELINES.glob("*.yaml")), ids=lambda p: p.stem)
def test_baseline_card_loads(path: Path):
    card = load_card(path)
    assert card.name == path.stem
    assert card.source_file == path
    assert card.citation and card.notes
    assert {r.protocol for r in card.reported} <= PROTOCOLS
    classical = card.model in ("lbp_svm", "hog_svm")
    assert (card.recipe is None) == classical
    assert (card.reported == ()) == classical


@pytest.mark.parametrize("name", sorted(KD_CARDS))
def test_kd_cards_distil_from_a_teacher_card_that_normalises_alike(name: str):
    card = load_card(name)
    teacher = load_card(card.teacher)
    assert card.teacher == "inception_v3_teacher"
    assert teacher.input.normalise == card.input.normalise
    assert card.recipe.objective.lambda_ == 0.5
    assert card.temperature_sweep == (2, 4, 8, 16, 20, 32, 64)


def test_baseline_recipes_carry_the_paper_numbers():
    nano = load_card("emotionnet_nano_a").recipe
    assert nano.schedule == MultiStep(name="multistep", milestones=(81, 121, 161, 181), factors=(0.1, 0.01, 0.001, 0.0005))
    miao = load_card("mobilenetv1_centerloss").recipe
    assert (miao.optimizer.lr, miao.optimizer.momentum, miao.optimizer.weight_decay) == (0.045, 0.9, 4e-5)
    assert (miao.schedule.step_size, miao.schedule.gamma) == (15, 0.94)
    assert (miao.objective.lambda_, miao.objective.alpha) == (0.001, 0.001)
    cspp = load_card("cspp").recipe
    assert (cspp.optimizer.lr, cspp.batch_size, cspp.epochs, cspp.objective.confidence) == (0.0009, 128, 50, 0.9)
    ed2l = load_card("ed2l").recipe
    assert (ed2l.optimizer.weight_decay, ed2l.objective.lambda_t, ed2l.objective.lambda_p) == (5e-4, 1.0, 10.0)
    micro = load_card("microexpnet_xxs").recipe
    assert len(micro.crop.offsets) == 8 and (micro.epochs, micro.optimizer.lr) == (3000, 1e-4)


# How each paper's number was aggregated (see baselines/README.md): card -> {protocol: (aggregation,
# correct, total)}; cards not listed report fold means only (MicroExpNet 000 l.85, EmotionNet Nano
# 001 l.119).
POOLED_CKPLUS6 = {"lopes_cnn": (876, 927), "lopes_cnn_3x3": (None, None), "plain7cnn": (885, 927),
                  "plain8cnn": (878, 927)}
AGGREGATIONS = {
    "cspp": {"ckplus_6cls_si8": ("pooled", 903, 927), "jaffe_6cls_loso": ("pooled", 126, 183),
             "mmi_6cls_cspp": ("pooled", 148, 250), "nimstim_6cls_si8": ("pooled", 409, 491),
             **{f"cross_ckplus_{t}_cspp": ("fold_mean", None, None) for t in ("jaffe", "mmi", "nimstim")}},
    **{card: {"ckplus_6cls_si8": ("pooled", *counts)} for card, counts in POOLED_CKPLUS6.items()},
    "ed2l": {"ckplus_7cls_si_ed2l": ("pooled", 945, 981), "mmi_6cls_ed2l": ("pooled", 456, 627),
             "bu3dfe_6cls_si": ("pooled", 1054, 1200), "oulu_casia_6cls_si_ed2l": ("pooled", 1227, 1440)},
    "ed2l_baseline": {"ckplus_7cls_si_ed2l": ("pooled", 924, 981), "mmi_6cls_ed2l": ("pooled", 393, 627),
                      "bu3dfe_6cls_si": ("pooled", 1032, 1200), "oulu_casia_6cls_si_ed2l": ("pooled", 1209, 1440)},
    "mobilenetv1_centerloss": {
        "jaffe_7cls_random5": ("single_split", 40, 42), "ckplus_miao_7n_last": ("single_split", 61, 65),
        "ckplus_miao_8_last": ("single_split", 124, 130), "cross_jaffe_ckplus_miao": ("single_split", 224, 309),
        "cross_ckplus_jaffe_miao": ("single_split", 92, 183),
        **{f"ckplus_miao_{c}": ("single_split", None, None)
           for c in ("6_last", "7c_last", "6_last3", "7n_last3", "7c_last3", "8_last3")}},
}


@pytest.mark.parametrize("card", sorted(MODELS | KD_CARDS))
def test_every_reported_number_states_its_aggregation(card: str):
    got = {r.protocol: (r.aggregation, r.correct, r.total) for r in load_card(card).reported}
    expected = AGGREGATIONS.get(card) or {protocol: ("fold_mean", None, None) for protocol in got}
    assert got == expected


def test_a_reported_count_must_give_the_reported_value(tmp_path: Path):
    entry = "reported: [{protocol: ckplus_7cls_si, value: 95.24, aggregation: single_split, %s}]\n"
    assert load_card(write_card(tmp_path, CARD + entry % "correct: 40, total: 42")).reported[0].total == 42
    for counts, message in (("correct: 41, total: 42", "41/42 = 97.619% does not round to value 95.24"),
                            ("correct: 40", "give `correct` and `total` together"),
                            ("note: x", None)):
        text = CARD + entry % counts
        if message is None:  # no counts: fine; no aggregation: refused
            assert load_card(write_card(tmp_path, text)).reported[0].correct is None
            text = text.replace("aggregation: single_split, ", "")
            message = "aggregation"
        with pytest.raises(CardError, match=message) as caught:
            load_card(write_card(tmp_path, text))
        assert caught.value.key.startswith("reported[0]")


# ----------------------------------------------------------------------------- loading and errors


def test_bare_names_are_looked_up_in_the_baselines_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_card(tmp_path)
    monkeypatch.setenv(BASELINES_ENV, str(tmp_path))
    assert card_names() == ["tiny"]
    assert [c.name for c in list_cards()] == ["tiny"]
    assert load_card("tiny").model == "tiny_cnn"
    with pytest.raises(UnknownName, match="did you mean `tiny`"):
        load_card("tine")


def test_unknown_key_names_file_line_and_key_with_a_suggestion(tmp_path: Path):
    err = error_of(tmp_path, "lr: 1.0e-3", "lrr: 1.0e-3")
    assert Path(err.file).name == "tiny.yaml" and err.line == 7
    assert err.key == "recipe.optimizer"
    assert "unknown key `lrr`" in str(err) and "did you mean `lr`" in str(err)

    err = error_of(tmp_path, "citation:", "citatoin:")
    assert (err.key, err.line) == ("citatoin", 11)
    assert "did you mean `citation`" in str(err)


def test_a_misspelt_required_key_reads_as_a_typo(tmp_path: Path):
    err = error_of(tmp_path, "batch_size", "batchsize")
    assert err.key == "recipe.batchsize" and "did you mean `batch_size`" in str(err)


def test_unknown_names_get_suggestions(tmp_path: Path):
    err = error_of(tmp_path, "name: adam", "name: adm")
    assert err.key == "recipe.optimizer" and "unknown optimizer `adm` (did you mean `adam`?)" in str(err)
    err = error_of(tmp_path, "name: rotate", "name: rotat")
    assert err.key == "recipe.augment[0]" and "did you mean `rotate`" in str(err)


def test_cross_key_rules(tmp_path: Path):
    err = error_of(tmp_path, "citation:", "  tta: ten_crop\ncitation:")
    assert err.key == "recipe.tta" and "lacks" in str(err)
    err = error_of(tmp_path, "factors: [0.1, 0.01]", "factors: [0.1]")
    assert err.key == "recipe.schedule" and "2 milestones but 1 factors" in str(err)
    err = error_of(tmp_path, "    - {name: rotate, degrees: 10}",
                   "    - {name: rotate, degrees: 10}\n    - {name: ten_crop, crop: 8, from: 16}")
    assert err.key == "recipe.augment[1]" and "must come first" in str(err)
    err = error_of(tmp_path, "citation:", "temperature_sweep: [2, 4]\ncitation:")
    assert err.key == "temperature_sweep"
    err = error_of(tmp_path, "name: tiny", "name: other")
    assert err.key == "name" and "file name `tiny`" in str(err)


def test_init_checkpoint_is_resolved_next_to_the_card(tmp_path: Path):
    card = load_card(write_card(tmp_path, CARD.replace("citation:", "  init_checkpoint: weights/start.pt\ncitation:")))
    assert card.recipe.init_checkpoint == str(tmp_path.resolve() / "weights" / "start.pt")


# ----------------------------------------------------------------------------- copies and fingerprints


def test_with_epochs_scales_the_schedule_and_leaves_the_original(tmp_path: Path):
    card = load_card(write_card(tmp_path))
    short = card.with_epochs(5)
    assert short.recipe.epochs == 5 and short.recipe.schedule.milestones == (2, 4)
    assert card.recipe.epochs == 10 and card.recipe.schedule.milestones == (4, 8)
    assert short.fingerprint != card.fingerprint
    assert short.source_file == card.source_file
    assert card.with_epochs(1).recipe.schedule.milestones == (1, 1)  # a milestone never falls before epoch 1
    nano = load_card("emotionnet_nano_a").with_epochs(20)
    assert nano.recipe.schedule.milestones == (8, 12, 16, 18)
    miao = load_card("mobilenetv1_centerloss")
    assert miao.with_epochs(60).recipe.schedule == Step(name="step", step_size=30, gamma=0.94)


def test_with_repeats_changes_only_the_passes_per_epoch(tmp_path: Path):
    card = load_card(write_card(tmp_path))
    fewer = card.with_repeats(3)
    assert fewer.recipe.repeats == 3 and card.recipe.repeats == 1
    assert fewer.recipe.model_copy(update={"repeats": 1}) == card.recipe
    assert fewer.fingerprint != card.fingerprint
    with pytest.raises(ValueError, match="at least 1"):
        card.with_repeats(0)


def test_with_temperature_only_for_distillation():
    card = load_card("microexpnet_xxs_kd").with_temperature(32)
    assert card.recipe.objective.temperature == 32.0
    assert card.fingerprint != load_card("microexpnet_xxs_kd").fingerprint
    with pytest.raises(ValueError, match="does not distil"):
        load_card("microexpnet_xxs").with_temperature(32)


def test_fingerprint_follows_the_recipe_not_the_prose(tmp_path: Path):
    base = load_card(write_card(tmp_path)).fingerprint
    assert load_card(write_card(tmp_path, CARD.replace("1.0e-3", "2.0e-3"))).fingerprint != base
    prose = CARD.replace('"a note"', '"another note"').replace('"someone"', '"someone else"')
    prose += "reported: [{protocol: ckplus_7cls_si, value: 50.0, aggregation: fold_mean}]\n"
    assert load_card(write_card(tmp_path, prose)).fingerprint == base


def test_resolved_dict_fills_defaults_and_keeps_yaml_key_names():
    resolved = load_card("microexpnet_xxs_kd").resolved_dict()
    assert resolved["recipe"]["objective"]["lambda"] == 0.5
    assert resolved["recipe"]["augment"][0]["from"] == [256, 256]
    assert resolved["recipe"]["augment"][0]["crop"] == [224, 224]
    assert resolved["recipe"]["optimizer"]["weight_decay"] == 0.0
    assert load_card(load_card("microexpnet_xxs_kd").source_file) == load_card("microexpnet_xxs_kd")


@pytest.mark.parametrize(("old", "new", "key", "problem"), [
    ("epochs: 10", "epochs: true", "recipe.epochs", "expected an integer, got `true`"),
    ("batch_size: 8", "batch_size: false", "recipe.batch_size", "expected an integer, got `false`"),
    ("lr: 1.0e-3", "lr: true", "recipe.optimizer.lr", "expected a number, got `true`"),
    ("channels: 1", "channels: true", "input.channels", "expected a number, got `true`"),
    ("size: [16, 16]", "size: [true, 16]", "input.size[0]", "expected an integer, got `true`"),
    ("degrees: 10", "degrees: true", "recipe.augment[0].degrees", "expected a number, got `true`"),
    ("milestones: [4, 8]", "milestones: [4, true]", "recipe.schedule.milestones[1]", "expected an integer, got `true`"),
])
def test_a_boolean_is_no_number_in_a_card(tmp_path: Path, old: str, new: str, key: str, problem: str):
    """YAML `true` would otherwise count as 1 (`recipe.epochs: true` meant one epoch)."""
    err = error_of(tmp_path, old, new)
    line = 1 + next(i for i, text in enumerate(CARD.splitlines()) if old in text)
    assert str(err) == f"{tmp_path / 'tiny.yaml'}:{line}: {key}: {problem}"


def test_check_constructor_names_a_misspelt_kwarg_at_its_line(tmp_path: Path):
    text = (BASELINES / "microexpnet_xxs.yaml").read_text()
    assert "kwargs: {pooling: p12}" in text
    path = write_card(tmp_path, text.replace("kwargs: {pooling: p12}", "kwargs: {poolng: p12}"), "microexpnet_xxs")
    line = 1 + text.splitlines().index("kwargs: {pooling: p12}")
    card = load_card(path)  # the schema cannot know the constructor's keywords
    with pytest.raises(CardError) as caught:
        check_constructor(card, 7)
    assert str(caught.value) == f"{path}:{line}: kwargs.poolng: model `microexpnet_xxs` takes no keyword `poolng`"
    check_constructor(load_card("microexpnet_xxs"), 7)  # the bundled card builds
