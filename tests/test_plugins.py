"""Plug-ins: entry points (models, augmentations), factory strings, timm names, and the model contract checks."""

from __future__ import annotations

import importlib
import json
import os
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # timm must never reach the network

import pytest
import torch
from typer.testing import CliRunner

import ferbench.plugins as plugins
from ferbench import registry
from ferbench.cards import load_card
from ferbench.cli import app
from ferbench.errors import CardError, PluginError
from ferbench.models import list_models
from ferbench.models.build import build_model
from ferbench.training import fit

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "ferbench-example-plugin"
EXAMPLE_SRC = EXAMPLE / "src"
EXAMPLE_CARD = EXAMPLE_SRC / "ferbench_example_plugin" / "cards" / "tiny_fer_cnn.yaml"
PROTOCOL = REPO / "protocols" / "ckplus_7cls_si.yaml"
FOLD0_TEST = 18  # test images of fold 0 of ckplus_7cls_si on the small twin

CARD = """\
name: {name}
{builder}
input: {{channels: 1, size: [24, 24]}}
recipe:
  epochs: 1
  batch_size: 8
  optimizer: {{name: adam, lr: 1.0e-3}}
"""


@pytest.fixture
def fresh_registry(monkeypatch):
    """Registry copies and a plug-in scan that runs again; all restored after the test."""
    for reg in (registry.DATASETS, registry.MODELS, registry.OBJECTIVES, registry.AUGMENTATIONS):
        importlib.import_module(reg.builtins)  # the built-ins go into the real registry first
        monkeypatch.setattr(reg, "_items", dict(reg._items))
    monkeypatch.setattr(plugins, "_scanned", False)


def install(monkeypatch, *points: EntryPoint) -> None:
    """Pretend these entry points are installed (the example's source folder goes on sys.path)."""
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    monkeypatch.setattr(plugins, "entry_points", lambda group: [p for p in points if p.group == group])


def entry_point(value: str, name: str = "example") -> EntryPoint:
    return EntryPoint(name=name, value=value, group=plugins.ENTRY_POINT_GROUP)


def write_card(folder: Path, builder: str, name: str = "plug", objective: str = "{name: cross_entropy}") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(CARD.format(name=name, builder=builder) + f"  objective: {objective}\n")
    return path


# ----------------------------------------------------------------------------- entry points


def test_example_pyproject_declares_the_entry_point():
    text = (EXAMPLE / "pyproject.toml").read_text()
    assert '[project.entry-points."ferbench.models"]\nexample = "ferbench_example_plugin:register"' in text


def test_entry_point_plugin_runs_through_ferbench_run(fresh_registry, monkeypatch, tmp_path):
    install(monkeypatch, entry_point("ferbench_example_plugin:register"))
    assert "tiny_fer_cnn" in list_models()
    result = CliRunner().invoke(app, [
        "run", str(PROTOCOL), "--root", "ckplus=synthetic:small", "--folds", "0", "--epochs", "1",
        "--models", str(EXAMPLE_CARD), "--out", str(tmp_path), "--no-speed"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "ckplus_7cls_si" / "tiny_fer_cnn"
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["architecture"], summary["jobs_done"], summary["params"]) == ("tiny_fer_cnn", 1, 23863)
    assert len((run / "seed0" / "fold0" / "predictions.csv").read_text().splitlines()) == 1 + FOLD0_TEST
    assert (run / "seed0" / "fold0" / "model.pt").is_file()


def test_pip_installed_example_package_registers_its_model(fresh_registry, monkeypatch, tmp_path):
    """A real install of examples/ferbench-example-plugin: its metadata carries the entry point."""
    import shutil
    import subprocess
    import sys
    from importlib.metadata import distributions

    source, target = tmp_path / "source", tmp_path / "site"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))  # builds write here
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True)
    (dist,) = [d for d in distributions(path=[str(target)]) if d.metadata["Name"] == "ferbench-example-plugin"]
    points = [p for p in dist.entry_points if p.group == plugins.ENTRY_POINT_GROUP]
    assert [(p.name, p.value) for p in points] == [("example", "ferbench_example_plugin:register")]
    monkeypatch.syspath_prepend(str(target))
    monkeypatch.setattr(plugins, "entry_points", lambda group: [p for p in points if p.group == group])
    assert "tiny_fer_cnn" in list_models()
    assert (target / "ferbench_example_plugin" / "cards" / "tiny_fer_cnn.yaml").is_file()


def test_entry_points_are_called_once(fresh_registry, monkeypatch):
    install(monkeypatch, entry_point("ferbench_example_plugin:register"))
    list_models()
    list_models()  # a second registration would raise "registered twice"
    assert list_models().count("tiny_fer_cnn") == 1


@pytest.mark.parametrize("value, message", [
    ("no_such_plugin:register", "cannot be loaded: ModuleNotFoundError"),
    ("ferbench.plugins:ENTRY_POINT_GROUP", "names a str; it must name a function"),
    ("ferbench.models.lopes:lopes_cnn", "failed while registering its models: TypeError"),
])
def test_broken_entry_points_name_themselves(fresh_registry, monkeypatch, value, message):
    install(monkeypatch, entry_point(value, name="broken"))
    with pytest.raises(PluginError, match=f"`broken = {value}`.*{message}"):
        list_models()


def test_an_entry_point_cannot_take_a_builtin_name(fresh_registry, monkeypatch, tmp_path):
    (tmp_path / "clash.py").write_text(textwrap.dedent("""
        from ferbench.models import register_model
        def register():
            register_model("lopes_cnn", input_size=(1, 48, 48), family="x", paper="x")(lambda **kw: None)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    install(monkeypatch, entry_point("clash:register"))
    with pytest.raises(PluginError, match="model `lopes_cnn` registered twice"):
        list_models()


INVERT_PLUGIN = """
import torch
from typing import Literal
from pydantic import Field, StrictFloat

from ferbench.spec import NamedSpec
from ferbench.training import register_augmentation
from ferbench.training.augment import Augmentation

BATCHES = []  # shape of every batch the augmentation saw


class Invert(NamedSpec):
    name: Literal["invert"]
    p: StrictFloat = Field(ge=0, le=1)
    mode: Literal["all", "dark"] = "all"


class RandomInvert(Augmentation):
    def __call__(self, x, generator):
        BATCHES.append(tuple(x.shape))
        chosen = torch.rand(len(x), generator=generator, device=generator.device) < self.spec.p
        return torch.where(chosen.view(-1, 1, 1, 1), 1 - x, x)


def register():
    register_augmentation("invert", Invert)(RandomInvert)
"""


def test_a_card_selects_an_augmentation_a_plug_in_registered_with_its_spec(fresh_registry, monkeypatch, tmp_path):
    (tmp_path / "invert_plugin.py").write_text(INVERT_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    install(monkeypatch, entry_point("invert_plugin:register"))
    import invert_plugin

    def card_with(augment: str) -> Path:
        path = write_card(tmp_path, "factory: ferbench_example_plugin.model:tiny_fer_cnn")
        path.write_text(path.read_text() + f"  augment: [{augment}]\n")
        return path

    card = load_card(card_with("{name: hflip}, {name: invert, p: 1.0}"))
    assert [type(spec).__name__ for spec in card.recipe.augment] == ["HFlip", "Invert"]
    assert (card.recipe.augment[1].p, card.recipe.augment[1].mode) == (1.0, "all")
    assert card.resolved_dict()["recipe"]["augment"][1] == {"name": "invert", "p": 1.0, "mode": "all"}
    images = torch.randint(0, 256, (16, 24, 24), dtype=torch.uint8)
    fit(build_model(card, 3), card, images, torch.arange(16) % 3, torch.device("cpu"), seed=0, progress=False)
    assert invert_plugin.BATCHES == [(8, 1, 24, 24)] * 2  # 16 images, batch 8, one epoch

    for augment, key, problem in [
        ("{name: invrt, p: 1.0}", "recipe.augment[0]", "unknown augmentation `invrt` (did you mean `invert`?)"),
        ("{name: invert, pp: 1.0}", "recipe.augment[0]", "unknown key `pp` for `invert` (did you mean `p`?)"),
        ("{name: invert, p: 2.0}", "recipe.augment[0].p", "Input should be less than or equal to 1 (got `2.0`)"),
        ("{name: invert, p: 1.0, mode: drak}", "recipe.augment[0].mode",
         "`drak` is not a valid value (did you mean `dark`?); choose one of all, dark"),
    ]:
        with pytest.raises(CardError) as caught:
            load_card(card_with(augment))
        assert (caught.value.key, caught.value.line) == (key, 9)
        assert problem in caught.value.problem


# ----------------------------------------------------------------------------- factory strings


def test_factory_from_a_module_and_from_a_file_relative_to_the_card(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    by_module = load_card(write_card(tmp_path, "factory: ferbench_example_plugin.model:tiny_fer_cnn"))
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "mine.py").write_text(textwrap.dedent("""
        from torch import nn
        def build(num_classes, in_chans, input_size, hidden=8):
            h, w = input_size
            return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * h * w, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
    """))
    (tmp_path / "cards").mkdir()
    by_file = load_card(write_card(tmp_path / "cards", "factory: ../nets/mine.py:build\nkwargs: {hidden: 5}"))
    assert by_file.model == f"{(tmp_path / 'nets' / 'mine.py').resolve()}:build"
    assert by_file.resolved_dict()["model"] == by_file.model  # run directories keep the absolute path
    assert type(build_model(by_module, 7)).__name__ == "TinyFerCNN"
    model = build_model(by_file, 7)
    assert [m.out_features for m in model if isinstance(m, torch.nn.Linear)] == [5, 7]


def test_model_and_factory_are_alternatives_and_a_factory_names_a_callable(tmp_path):
    with pytest.raises(CardError, match="`model` and `factory` are alternatives"):
        load_card(write_card(tmp_path, "model: lopes_cnn\nfactory: a.b:c"))
    with pytest.raises(CardError, match="factory `nets.py`: expected `package.module:callable` or `path/to/file.py:callable`"):
        load_card(write_card(tmp_path, "factory: nets.py"))


@pytest.mark.parametrize("factory, message", [
    ("no_such_package.nets:build", "cannot import module `no_such_package.nets`"),
    ("ferbench_example_plugin.model:tiny_fer_cn", "has no attribute `tiny_fer_cn` \\(did you mean `tiny_fer_cnn`\\?\\)"),
    ("missing.py:build", "missing.py not found"),
    ("ferbench.models.factories:TIMM_PREFIX", "`TIMM_PREFIX` is a str, not a callable"),
    ("broken.py:build", "importing .*broken.py failed \\(NameError"),
    ("wrong.py:returns_dict", "built a dict: expected a torch.nn.Module or an object with fit\\(\\) and predict_proba\\(\\)"),
    ("wrong.py:too_many_outputs", "maps a probe batch of shape \\(2, 1, 24, 24\\) to \\(2, 8\\); expected logits of shape \\(2, 7\\)"),
    ("wrong.py:wants_colour", "fails on a probe batch of shape \\(2, 1, 24, 24\\): RuntimeError"),
])
def test_bad_factories_fail_with_the_card_file_and_the_reason(monkeypatch, tmp_path, factory, message):
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    (tmp_path / "broken.py").write_text("undefined_name\n")
    (tmp_path / "wrong.py").write_text(textwrap.dedent("""
        from torch import nn
        def returns_dict(num_classes, **kw):
            return {}
        def too_many_outputs(num_classes, in_chans, input_size):
            return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * input_size[0] * input_size[1], num_classes + 1))
        def wants_colour(num_classes, in_chans, input_size):
            return nn.Conv2d(3, num_classes, 1)
    """))
    path = write_card(tmp_path, f"factory: {factory}")
    with pytest.raises(PluginError, match=message) as caught:
        build_model(load_card(path), 7)
    assert str(path) in str(caught.value)


def test_plugin_model_with_features_trains_with_center_loss(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    card = load_card(write_card(tmp_path, "factory: ferbench_example_plugin.model:tiny_fer_cnn",
                                objective="{name: center_loss, lambda: 0.01, alpha: 0.5}"))
    model = build_model(card, 3)
    before = model.classifier.weight.detach().clone()
    images = torch.randint(0, 256, (16, 24, 24), dtype=torch.uint8)
    fit(model, card, images, torch.arange(16) % 3, torch.device("cpu"), seed=0, progress=False)
    assert not torch.equal(before, model.classifier.weight)


# ----------------------------------------------------------------------------- timm


def test_timm_default_card_and_size_suffix():
    card = load_card("timm/resnet18")
    assert (card.name, card.model, card.input.channels, card.input.size) == ("timm-resnet18", "timm/resnet18", 3, (64, 64))
    recipe = card.recipe
    assert (recipe.epochs, recipe.batch_size, recipe.optimizer.name, recipe.optimizer.lr) == (30, 32, "adam", 1e-3)
    assert (recipe.objective.name, [a.name for a in recipe.augment]) == ("cross_entropy", ["hflip"])
    sized = load_card("timm/resnet18@112")
    assert (sized.name, sized.input.size) == ("timm-resnet18-112", (112, 112))


@pytest.mark.parametrize("name, message", [
    ("timm/resnet18x", "unknown timm architecture `resnet18x` \\(did you mean `resnet18`\\?\\)"),
    ("timm/resnet18@big", "expected timm/<architecture> or timm/<architecture>@<side in pixels>"),
    ("timm/resnet18@0", "expected timm/<architecture>"),
])
def test_bad_timm_names(name, message):
    with pytest.raises(PluginError, match=message):
        load_card(name)


def test_timm_architecture_in_a_card_gets_channels_classes_and_kwargs(tmp_path):
    path = write_card(tmp_path, "model: timm/test_vit\nkwargs: {img_size: 32}")
    path.write_text(path.read_text().replace("[24, 24]", "[32, 32]"))
    model = build_model(load_card(path), 5)
    assert model(torch.zeros(3, 1, 32, 32)).shape == (3, 5)


def test_timm_name_runs_through_ferbench_run(tmp_path):
    result = CliRunner().invoke(app, [
        "run", str(PROTOCOL), "--root", "ckplus=synthetic:small", "--folds", "0", "--epochs", "1",
        "--models", "timm/test_resnet@32", "--out", str(tmp_path), "--no-speed"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "ckplus_7cls_si" / "timm-test_resnet-32" / "summary.json").read_text())
    assert (summary["architecture"], summary["jobs_done"]) == ("timm/test_resnet", 1)
    assert sum(map(sum, summary["confusion"])) == FOLD0_TEST
