"""The training engine: objectives against hand-computed values, augmentations, schedules, determinism, learning."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ferbench import registry
from ferbench.cards import ModelCard
from ferbench.errors import CardError, FerbenchError
from ferbench.models import create_model
from ferbench.spec import spec_name
from ferbench.training import Objective, fit, learning_rate, predict_proba, seed_everything, teacher_forward
from ferbench.training.augment import Augmentation, Augmenter, augmentation_names, build_augmentation, warp
from ferbench.training.inputs import LUMINANCE, prepare, resize_uint8
from ferbench.training.objectives import (
    am_softmax_loss,
    build_objective,
    center_loss,
    center_update,
    distillation_loss,
    ed2l_terms,
    objective_names,
    smoothed_targets,
)
from ferbench.training.trainer import (
    MEMORY_FORMAT_ENV,
    _ResidentImages,
    _StreamedImages,
    _training_images,
    load_init_checkpoint,
    memory_format_record,
    training_memory_format,
)

CPU = torch.device("cpu")


def make_card(input_size=(16, 16), channels=1, normalise="unit", **recipe: Any) -> ModelCard:
    """A card for the tiny test models; ``recipe`` overrides the defaults below."""
    base = {"epochs": 2, "batch_size": 8, "optimizer": {"name": "adam", "lr": 1e-2}}
    return ModelCard.model_validate({
        "name": "tiny", "model": "tiny",
        "input": {"channels": channels, "size": list(input_size), "normalise": normalise},
        "recipe": {**base, **recipe},
    })


class TinyCNN(nn.Module):
    """conv -> ReLU -> 4x4 average pool -> dropout -> linear; exposes the center-loss hooks too."""

    def __init__(self, num_classes: int = 2, in_chans: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(64, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.conv(x))).flatten(1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class FixedLogits(nn.Module):
    """Ignores its input and returns the same logits for every image."""

    def __init__(self, logits: list[float]):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor([logits]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1)


class TinyED2L(nn.Module):
    """ED²L's interface on linear layers: base -> (cosine branch, dispelling feature + dispeller)."""

    scale, margin = 30.0, 0.35

    def __init__(self, num_classes: int = 3, dim: int = 5):
        super().__init__()
        self.base = nn.Linear(4, dim)
        self.distilling = nn.Linear(dim, dim)
        self.classifier = nn.Parameter(torch.randn(num_classes, dim))
        self.dispelling = nn.Linear(dim, dim)
        self.dispeller = nn.Linear(dim, num_classes)

    def forward_parts(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = torch.tanh(self.base(x))
        cos = F.linear(F.normalize(self.distilling(shared)), F.normalize(self.classifier))
        return {"cos": cos, "feat_p": self.dispelling(shared)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.forward_parts(x)["cos"]


def left_right_images(n: int = 64, side: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy gray images whose left (class 0) or right (class 1) half is bright."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    images = torch.rand(n, side, side, generator=g) * 60
    bright = torch.zeros(n, side, side, dtype=torch.bool)
    bright[y == 0, :, : side // 2] = True
    bright[y == 1, :, side // 2:] = True
    return (images + bright * 150).to(torch.uint8), y


def seeded_fit(card: ModelCard, seed: int, images: torch.Tensor, labels: torch.Tensor) -> nn.Module:
    seed_everything(seed)
    model = TinyCNN(num_classes=2)
    return fit(model, card, images, labels, CPU, seed, progress=False)


# ----------------------------------------------------------------------------- objectives


def test_every_name_a_card_accepts_has_a_class_and_a_spec_answering_to_it():
    assert set(objective_names()) == {"cross_entropy", "label_smoothing", "center_loss", "distillation", "ed2l",
                                      "am_softmax"}
    assert set(augmentation_names()) == {"fixed_crops", "ten_crop", "random_area_crop", "hflip", "rotate", "shift",
                                         "zoom"}
    for entries, base in ((registry.OBJECTIVES, Objective), (registry.AUGMENTATIONS, Augmentation)):
        for name in entries.names():
            assert issubclass(entries.get(name), base) and spec_name(entries.spec(name)) == name


def test_a_card_can_select_an_objective_a_plug_in_registered(monkeypatch):
    from ferbench.training import objectives

    monkeypatch.setattr(objectives.OBJECTIVES, "_items", dict(objectives.OBJECTIVES._items))

    @objectives.register_objective("scaled_ce")
    class ScaledCrossEntropy(objectives.Objective):
        def loss(self, model, x, y, teacher_logits=None):
            return self.spec.scale * F.cross_entropy(model(x), y)

    card = make_card(objective={"name": "scaled_ce", "scale": 0.0})
    assert card.recipe.objective.scale == 0.0
    images, labels = left_right_images(16)
    seed_everything(0)
    initial = TinyCNN(num_classes=2)
    trained = fit(copy.deepcopy(initial), card, images, labels, CPU, 0, progress=False)
    # a zero-scaled loss gives zero gradients: Adam leaves the weights where they started
    assert all(torch.equal(a, b) for a, b in zip(initial.state_dict().values(), trained.state_dict().values()))
    with pytest.raises(Exception, match="unknown objective `scaled_cee`"):
        make_card(objective={"name": "scaled_cee"})


def test_cross_entropy_objective():
    model = FixedLogits([2.0, 0.0, 0.0])
    objective = build_objective(model, make_card().recipe.objective, 3)
    loss = objective.loss(model, torch.zeros(1, 1), torch.tensor([0]))
    assert loss.item() == pytest.approx(math.log(1 + 2 * math.exp(-2)))


def test_label_smoothing_targets_and_loss():
    targets = smoothed_targets(torch.tensor([1, 0]), 6, 0.9)
    assert torch.allclose(targets[0], torch.tensor([0.02, 0.9, 0.02, 0.02, 0.02, 0.02]))
    assert torch.allclose(targets.sum(1), torch.ones(2))
    model = FixedLogits([math.log(4), 0.0, 0.0])  # softmax 2/3, 1/6, 1/6
    spec = make_card(objective={"name": "label_smoothing", "confidence": 0.9}).recipe.objective
    loss = build_objective(model, spec, 3).loss(model, torch.zeros(1, 1), torch.tensor([0]))
    assert loss.item() == pytest.approx(-(0.9 * math.log(2 / 3) + 2 * 0.05 * math.log(1 / 6)))


def test_distillation_loss_has_no_t_squared_factor():
    v, z, y = torch.tensor([[0.0, math.log(3)]]), torch.tensor([[math.log(3), 0.0]]), torch.tensor([0])
    r = math.sqrt(3)  # softmax(z / 2) = (r, 1) / (r + 1), softmax(v / 2) = (1, r) / (r + 1)
    hard = -math.log(1 / 4)
    soft = -(r / (r + 1) * math.log(1 / (r + 1)) + 1 / (r + 1) * math.log(r / (r + 1)))
    assert distillation_loss(v, z, y, lam=0.5, temperature=2.0).item() == pytest.approx(0.5 * hard + 0.5 * soft)


def test_distillation_with_lambda_zero_is_plain_cross_entropy():
    g = torch.Generator().manual_seed(0)
    v, z, y = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g), torch.arange(8) % 5
    assert torch.equal(distillation_loss(v, z, y, lam=0.0, temperature=8.0), F.cross_entropy(v, y))


def test_center_loss_value_and_centre_update_follow_the_formulas():
    features = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([0, 0, 1])
    centres = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    assert center_loss(features, centres, y).item() == pytest.approx(0.5 * (1 + 9 + 2) / 3)
    # class 0: Δ = (2·c0 - f1 - f2) / 3 = (-4/3, 0); class 1: Δ = (c1 - f3) / 2 = (0.5, -0.5); class 2 unseen
    updated = center_update(centres, features, y, alpha=0.5)
    assert torch.allclose(updated, torch.tensor([[2 / 3, 0.0], [0.75, 1.25], [5.0, 5.0]]))


def test_center_loss_objective_updates_centres_after_the_step():
    torch.manual_seed(0)
    model = TinyCNN(num_classes=3).eval()
    spec = make_card(objective={"name": "center_loss", "lambda": 0.5, "alpha": 0.1}).recipe.objective
    objective = build_objective(model, spec, 3)
    x, y = torch.rand(4, 1, 16, 16), torch.tensor([0, 1, 1, 2])
    features = model.forward_features(x).detach()
    loss = objective.loss(model, x, y)
    expected = F.cross_entropy(model(x), y) + 0.5 * 0.5 * features.pow(2).sum(1).mean()  # centres start at 0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert objective.extra_parameters() == []
    objective.after_step()
    assert torch.allclose(objective.centres, center_update(torch.zeros(3, 64), features, y, 0.1))


def test_am_softmax_subtracts_the_margin_from_the_target_cosine():
    loss = am_softmax_loss(torch.tensor([[0.5, 0.2]]), torch.tensor([0]), scale=30.0, margin=0.35)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(30 * 0.2 - 30 * 0.15)))


def test_ed2l_losses_update_only_their_own_parts():
    torch.manual_seed(0)
    model = TinyED2L(num_classes=3)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    terms = ed2l_terms(model, x, y)
    base, dispeller = list(model.base.parameters()), list(model.dispeller.parameters())
    grads = torch.autograd.grad(terms["l_a"], base + dispeller, allow_unused=True, retain_graph=True)
    assert all(g is None or not g.any() for g in grads[:2])  # l_a: not the base net
    assert all(g is not None and g.any() for g in grads[2:])  # l_a: the dispeller
    grads = torch.autograd.grad(terms["l_p"], base + dispeller, allow_unused=True, retain_graph=True)
    assert all(g is not None and g.any() for g in grads[:2])  # l_p: the base net
    assert all(g is None or not g.any() for g in grads[2:])  # l_p: not the dispeller

    spec = make_card(objective={"name": "ed2l", "lambda_t": 1.0, "lambda_p": 10.0}).recipe.objective
    total = build_objective(model, spec, 3).loss(model, x, y)
    assert total.item() == pytest.approx((terms["l_t"] + 10 * (terms["l_a"] + terms["l_p"])).item(), rel=1e-6)


def test_ed2l_dispelling_loss_is_log_k_for_a_uniform_dispeller():
    model = TinyED2L(num_classes=3)
    nn.init.zeros_(model.dispeller.weight)
    nn.init.zeros_(model.dispeller.bias)
    terms = ed2l_terms(model, torch.randn(4, 4), torch.tensor([0, 1, 2, 0]))
    assert terms["l_p"].item() == pytest.approx(math.log(3))
    assert terms["l_a"].item() == pytest.approx(math.log(3))


def test_objective_needing_features_rejects_a_plain_model():
    card = make_card(objective={"name": "center_loss", "lambda": 0.001, "alpha": 0.001})
    images, labels = left_right_images(8)
    with pytest.raises(CardError, match="forward_features"):
        fit(FixedLogits([0.0, 0.0]), card, images, labels, CPU, 0, progress=False)


# ----------------------------------------------------------------------------- inputs and augmentations


def test_prepare_converts_channels_sizes_and_intensities():
    red = torch.zeros(2, 8, 8, 3, dtype=torch.uint8)
    red[..., 0] = 255
    gray = prepare(red, (4, 4), 1, "unit")
    assert gray.shape == (2, 1, 4, 4) and torch.allclose(gray, torch.full_like(gray, LUMINANCE[0]))
    ramp = torch.arange(64, dtype=torch.float32).view(1, 8, 8).mul(4).to(torch.uint8)
    three = prepare(ramp, (8, 8), 3, "minus_one_one")
    assert three.shape == (1, 3, 8, 8) and three.min() == -1 and torch.equal(three[:, 0], three[:, 2])
    standard = prepare(ramp, (8, 8), 1, "standardize")
    assert standard.mean().abs() < 1e-5 and standard.std(correction=0) == pytest.approx(1.0, abs=1e-5)
    assert resize_uint8(ramp, (4, 4), 1).shape == (1, 4, 4)


AUGMENTATIONS = [
    {"name": "rotate", "degrees": 15},
    {"name": "shift", "fraction": 0.2},
    {"name": "zoom", "range": [0.8, 1.2]},
    {"name": "random_area_crop", "area": [0.5, 1.0], "aspect": [0.75, 1.33]},
    {"name": "hflip"},
    {"name": "fixed_crops", "offsets": [[0, 0], [0, 5], [0, 32], [5, 0], [32, 0], [5, 5], [32, 32], [5, 32]],
     "crop": 224, "from": 256},
    {"name": "ten_crop", "crop": [14, 12], "from": [16, 14]},
]


@pytest.mark.parametrize("spec", AUGMENTATIONS, ids=lambda s: s["name"])
def test_augmentation_keeps_shape_and_follows_the_generator(spec: dict):
    card = make_card(input_size=(14, 12), augment=[spec])
    augmenter = Augmenter(card.recipe.augment, "none", (14, 12))
    x = torch.rand(16, 2, *augmenter.canvas_size, generator=torch.Generator().manual_seed(1))
    runs = [augmenter.train(x, torch.Generator().manual_seed(seed)) for seed in (0, 0, 1)]
    assert runs[0].shape == (16, 2, 14, 12)
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_zero_strength_affine_augmentations_are_the_identity():
    x = torch.rand(4, 1, 10, 12)
    specs = [{"name": "rotate", "degrees": 0}, {"name": "shift", "fraction": 0}, {"name": "zoom", "range": [1, 1]}]
    augmenter = Augmenter(make_card(input_size=(10, 12), augment=specs).recipe.augment, "none", (10, 12))
    assert torch.allclose(augmenter.train(x, torch.Generator().manual_seed(0)), x, atol=1e-5)


def test_warp_uses_centred_pixel_coordinates():
    x = torch.rand(2, 1, 6, 8)
    one_right = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]).expand(2, 3, 3)
    assert torch.allclose(warp(x, one_right)[..., :-1], x[..., 1:], atol=1e-5)  # output pixel j samples input j + 1


def test_consecutive_affine_steps_are_fused_into_one_resampling():
    specs = make_card(input_size=(10, 12), augment=[{"name": "shift", "fraction": 0.2},
                                                    {"name": "zoom", "range": [0.7, 1.3]}]).recipe.augment
    augmenter = Augmenter(specs, "none", (10, 12))
    x = torch.rand(4, 1, 10, 12)
    g = torch.Generator().manual_seed(0)
    shift, zoom = (step.matrix(4, (10, 12), g) for step in augmenter.steps)
    fused = augmenter.train(x, torch.Generator().manual_seed(0))
    assert torch.allclose(fused, warp(x, shift @ zoom), atol=1e-6)
    assert not torch.allclose(fused, warp(x, zoom), atol=1e-3)


def test_hflip_mirrors_by_indexing():
    flip = build_augmentation(make_card(augment=[{"name": "hflip", "p": 1.0}]).recipe.augment[0], (4, 4))
    x = torch.rand(3, 1, 4, 4)
    assert torch.equal(flip(x, torch.Generator()), x.flip(-1))


def test_fixed_crop_offsets_scale_to_the_canvas():
    crops = Augmenter(make_card(input_size=(84, 84), augment=[AUGMENTATIONS[5]]).recipe.augment, "fixed_crops", (84, 84))
    assert crops.canvas_size == (96, 96)  # 84 * 256 / 224
    # offsets 0, 5, 32 of a 256 face -> 0, 2 (1.875), 12 of the 96 canvas
    assert crops.crop.views == [(0, 0, False), (0, 2, False), (0, 12, False), (2, 0, False), (12, 0, False),
                                (2, 2, False), (12, 12, False), (2, 12, False)]
    x = torch.rand(5, 1, 96, 96)
    views = crops.test_views(x)
    assert len(views) == 8 and torch.equal(views[6], x[..., 12:, 12:])
    trained = crops.train(x, torch.Generator().manual_seed(0))  # every image gets one of the eight views
    assert all(any(torch.equal(trained[i], v[i]) for v in views) for i in range(5))


def test_ten_crop_views_are_corners_centre_and_mirrors():
    tens = Augmenter(make_card(input_size=(112, 96), augment=[{"name": "ten_crop", "crop": [112, 96], "from": [128, 110]}]
                               ).recipe.augment, "ten_crop", (112, 96))
    assert tens.canvas_size == (128, 110)
    x = torch.rand(2, 1, 128, 110)
    views = tens.test_views(x)
    assert len(views) == 10
    assert torch.equal(views[3], x[..., 16:, 14:]) and torch.equal(views[4], x[..., 8:120, 7:103])
    assert all(torch.equal(views[i + 5], views[i].flip(-1)) for i in range(5))


class RecordingModel(nn.Module):
    """Logits (mean, top-left pixel) of each image; remembers every batch it saw."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return self.weight * torch.stack([x.mean(dim=(1, 2, 3)), x[:, 0, 0, 0]], dim=1)


def test_fixed_crops_tta_averages_the_eight_views():
    card = make_card(input_size=(84, 84), augment=[AUGMENTATIONS[5]], tta="fixed_crops")
    images = (torch.rand(3, 96, 96) * 255).to(torch.uint8)
    model = RecordingModel()
    probs = predict_proba(model, card, images, CPU)
    assert len(model.seen) == 8 and all(v.shape == (3, 1, 84, 84) for v in model.seen)
    x = prepare(images, (96, 96), 1, "unit")
    views = Augmenter(card.recipe.augment, "fixed_crops", (84, 84)).test_views(x)
    expected = torch.stack([F.softmax(torch.stack([v.mean(dim=(1, 2, 3)), v[:, 0, 0, 0]], 1), 1) for v in views]).mean(0)
    assert torch.allclose(probs, expected, atol=1e-6)
    assert not torch.allclose(probs, F.softmax(model(views[0]), 1).detach(), atol=1e-4)  # not a single view


# ----------------------------------------------------------------------------- schedule, determinism, learning


def test_multistep_factors_apply_from_their_epochs():
    recipe = make_card(epochs=200, optimizer={"name": "adam", "lr": 1e-3},
                       schedule={"name": "multistep", "milestones": [81, 121, 161, 181],
                                 "factors": [0.1, 0.01, 0.001, 0.0005]}).recipe
    epochs = [0, 80, 81, 120, 121, 160, 161, 180, 181, 199]
    expected = [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5, 1e-6, 1e-6, 5e-7, 5e-7]
    assert [learning_rate(recipe, e) for e in epochs] == pytest.approx(expected)
    step = make_card(schedule={"name": "step", "step_size": 15, "gamma": 0.94}).recipe
    assert [learning_rate(step, e) for e in (0, 14, 15, 30)] == pytest.approx([1e-2, 1e-2, 0.94e-2, 0.94 ** 2 * 1e-2])


def test_fit_applies_the_schedule_per_epoch():
    # the rate drops to 0 from epoch 1 on: three epochs must leave the weights of one
    images, labels = left_right_images(16)
    frozen = {"name": "multistep", "milestones": [1], "factors": [0.0]}
    sgd = {"name": "sgd", "lr": 0.1}
    one = seeded_fit(make_card(epochs=1, optimizer=sgd, schedule=frozen), 0, images, labels)
    three = seeded_fit(make_card(epochs=3, optimizer=sgd, schedule=frozen), 0, images, labels)
    seed_everything(0)
    initial = TinyCNN(num_classes=2)
    assert all(torch.equal(a, b) for a, b in zip(one.state_dict().values(), three.state_dict().values()))
    assert not torch.equal(one.fc.weight, initial.fc.weight)  # epoch 0 did train


def test_same_seed_same_weights_other_seed_other_weights():
    images, labels = left_right_images(32)
    card = make_card(epochs=2, augment=[{"name": "rotate", "degrees": 10}, {"name": "zoom", "range": [0.9, 1.1]},
                                        {"name": "hflip"}])
    first, again, other = (seeded_fit(card, seed, images, labels).state_dict() for seed in (3, 3, 4))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_streaming_large_sets_gives_the_same_weights_as_resident(monkeypatch):
    # a set over the resident-size limit is prepared batch by batch: same numbers, less memory
    images, labels = left_right_images(32)
    card = make_card(epochs=2, augment=[{"name": "hflip"}])
    resident = seeded_fit(card, 1, images, labels).state_dict()
    monkeypatch.setenv("FERBENCH_RESIDENT_BYTES", "1")
    for workers in ("0", "2"):  # batches prepared in this process, or by 2 DataLoader workers
        monkeypatch.setenv("FERBENCH_LOADER_WORKERS", workers)
        streamed = seeded_fit(card, 1, images, labels).state_dict()
        assert all(torch.allclose(resident[k], streamed[k], atol=1e-6) for k in resident)


def test_sets_stream_only_above_the_resident_limit(monkeypatch):
    images, _ = left_right_images(4)
    prepared_bytes = 4 * 1 * 16 * 16 * 4  # 4 gray 16 x 16 float32 images
    monkeypatch.setenv("FERBENCH_RESIDENT_BYTES", str(prepared_bytes))
    assert isinstance(_training_images(images, (16, 16), make_card(), CPU), _ResidentImages)
    monkeypatch.setenv("FERBENCH_RESIDENT_BYTES", str(prepared_bytes - 1))
    assert isinstance(_training_images(images, (16, 16), make_card(), CPU), _StreamedImages)


def test_fit_seeds_its_own_randomness():
    # same initial weights, different global RNG state before fit: dropout and batches still agree
    images, labels = left_right_images(16)
    card = make_card(epochs=2, augment=[{"name": "hflip"}])
    seed_everything(0)
    initial = TinyCNN(num_classes=2)
    first = fit(copy.deepcopy(initial), card, images, labels, CPU, 5, progress=False)
    torch.rand(11)
    second = fit(copy.deepcopy(initial), card, images, labels, CPU, 5, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_tiny_cnn_learns_left_versus_right():
    images, labels = left_right_images(64)
    losses: list[float] = []
    seed_everything(0)
    model = fit(TinyCNN(num_classes=2), make_card(epochs=8, batch_size=16), images, labels, CPU, 0,
                progress=False, on_epoch_end=lambda epoch, loss: losses.append(loss))
    accuracy = (predict_proba(model, make_card(), images, CPU).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.9
    assert len(losses) == 8 and losses[-1] < losses[0]


def test_repeats_multiply_the_steps_of_an_epoch():
    images, labels = left_right_images(16)
    model = FixedLogits([0.0, 0.0])
    calls = []
    model.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    fit(model, make_card(epochs=1, batch_size=8, repeats=3), images, labels, CPU, 0, progress=False)
    assert sum(calls) - 2 == 48  # minus the two-image probe that reads the class count


def test_teacher_sees_the_student_batch_at_its_own_size(tmp_path: Path):
    student = make_card(input_size=(16, 16), objective={"name": "distillation", "lambda": 0.5, "temperature": 4,
                                                        "teacher": "big"})
    big = make_card(input_size=(24, 24), channels=3)
    shapes = []
    teacher = RecordingModel()
    teacher.register_forward_hook(lambda module, inputs, output: shapes.append(tuple(inputs[0].shape[1:])))
    images, labels = left_right_images(8)
    seed_everything(0)
    fit(TinyCNN(num_classes=2), student, images, labels, CPU, 0, teacher=teacher_forward(teacher, big, student),
        progress=False)
    assert set(shapes) == {(3, 24, 24)}
    with pytest.raises(CardError, match="normalise"):
        teacher_forward(teacher, make_card(normalise="standardize"), student)


class FakeClassical:
    """Records what a classical model is given; predicts the class frequencies."""

    def fit(self, images: np.ndarray, labels: np.ndarray) -> FakeClassical:
        self.images, self.prior = images, np.bincount(labels) / len(labels)
        return self

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return np.tile(self.prior, (len(images), 1))


def test_classical_models_get_uint8_faces_at_the_card_size():
    card = ModelCard.model_validate({"name": "svm", "model": "svm", "input": {"size": [8, 8]}})
    images, labels = left_right_images(10, side=16)
    model = fit(FakeClassical(), card, images, labels, CPU, 0)
    assert model.images.dtype == np.uint8 and model.images.shape == (10, 8, 8)
    assert torch.allclose(predict_proba(model, card, images[:2], CPU), torch.tensor([[0.5, 0.5]] * 2))


def test_init_checkpoint_copies_the_tensors_that_fit(tmp_path: Path):
    torch.manual_seed(0)
    source = TinyCNN(num_classes=7)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "start.pt")
    target = TinyCNN(num_classes=2)
    head = target.fc.weight.clone()
    with pytest.warns(UserWarning, match="keep their initialisation"):
        load_init_checkpoint(target, tmp_path / "start.pt")
    assert torch.equal(target.conv.weight, source.conv.weight)
    assert torch.equal(target.fc.weight, head)


def test_validation_selects_the_best_epoch_and_restores_its_weights():
    # labels of the validation set are flipped: the best validation epoch is the least trained one
    images, labels = left_right_images(32)
    card = make_card(epochs=4, optimizer={"name": "sgd", "lr": 0.05})
    seed_everything(0)
    initial = TinyCNN(num_classes=2)
    model = fit(copy.deepcopy(initial), card, images, labels, CPU, 0, progress=False)
    trained_accuracy = (predict_proba(model, card, images, CPU).argmax(1) == labels).float().mean().item()
    assert trained_accuracy > 0.9
    flipped = fit(copy.deepcopy(initial), card, images, labels, CPU, 0, progress=False,
                  validation=(images, 1 - labels))
    first_epoch = fit(copy.deepcopy(initial), make_card(epochs=1, optimizer={"name": "sgd", "lr": 0.05}),
                      images, labels, CPU, 0, progress=False)
    assert flipped.selected_epoch == 0
    assert all(torch.equal(a, b) for a, b in zip(flipped.state_dict().values(), first_epoch.state_dict().values()))
    kept = fit(copy.deepcopy(initial), card, images, labels, CPU, 0, progress=False, validation=(images, labels))
    kept_accuracy = (predict_proba(kept, card, images, CPU).argmax(1) == labels).float().mean().item()
    assert kept_accuracy >= trained_accuracy - 1e-9


# ----------------------------------------------------------------------------- memory format


def lopes_card(**recipe: Any) -> ModelCard:
    """The Lopes CNN (registered with ``cpu_channels_last``) at its declared 32 x 32 input."""
    return make_card(input_size=(32, 32), **recipe).model_copy(update={"model": "lopes_cnn"})


def test_memory_format_follows_the_registry_the_device_and_the_setting(monkeypatch):
    monkeypatch.delenv(MEMORY_FORMAT_ENV, raising=False)
    lopes, tiny, timm = lopes_card(), make_card(), make_card().model_copy(update={"model": "timm/resnet18"})
    assert training_memory_format(lopes, CPU) == "channels_last"
    assert training_memory_format(lopes, "cuda") == "contiguous"  # CUDA keeps its layout
    assert training_memory_format(tiny, CPU) == training_memory_format(timm, CPU) == "contiguous"  # unregistered
    assert memory_format_record(lopes) == {"setting": "auto", "cpu": "channels_last", "cuda": "contiguous"}
    monkeypatch.setenv(MEMORY_FORMAT_ENV, "contiguous")
    assert training_memory_format(lopes, CPU) == "contiguous"
    monkeypatch.setenv(MEMORY_FORMAT_ENV, "channels_last")
    assert training_memory_format(tiny, "cuda") == "channels_last"
    monkeypatch.setenv(MEMORY_FORMAT_ENV, "nhwc")
    with pytest.raises(FerbenchError, match=r"FERBENCH_MEMORY_FORMAT='nhwc': expected auto, contiguous or channels_last"):
        training_memory_format(lopes, CPU)


def test_channels_last_training_is_deterministic_and_agrees_with_contiguous_up_to_rounding(monkeypatch):
    images, labels = left_right_images(24, side=32)
    card = lopes_card(epochs=2, optimizer={"name": "sgd", "lr": 0.01}, augment=[{"name": "hflip"}])

    def trained(setting: str) -> tuple[nn.Module, torch.Tensor]:
        monkeypatch.setenv(MEMORY_FORMAT_ENV, setting)
        seed_everything(2)
        model = fit(create_model("lopes_cnn", 2, input_size=(32, 32)), card, images, labels, CPU, 2, progress=False)
        return model, predict_proba(model, card, images, CPU)

    (auto, auto_probs), (again, again_probs) = trained("auto"), trained("auto")
    plain, plain_probs = trained("contiguous")
    second_conv = lambda model: next(m.weight for m in model.modules() if isinstance(m, nn.Conv2d) and m.in_channels > 1)
    assert second_conv(auto).is_contiguous(memory_format=torch.channels_last) and not second_conv(auto).is_contiguous()
    assert second_conv(plain).is_contiguous()
    assert all(torch.equal(a, b) for a, b in zip(auto.state_dict().values(), again.state_dict().values()))
    assert torch.equal(auto_probs, again_probs)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(auto.state_dict().values(), plain.state_dict().values()))
    assert torch.allclose(auto_probs, plain_probs, atol=1e-4)
    # a contiguous copy of the trained weights (a reloaded checkpoint) predicts in the same format, bit for bit
    monkeypatch.setenv(MEMORY_FORMAT_ENV, "auto")
    reloaded = create_model("lopes_cnn", 2, input_size=(32, 32))
    reloaded.load_state_dict({k: v.contiguous() for k, v in auto.state_dict().items()})
    assert torch.equal(predict_proba(reloaded, card, images, CPU), auto_probs)


CHANNELS_LAST_CHECK = """
import torch, torch.nn.functional as F
from ferbench.models import create_model, list_models, model_info
torch.set_num_threads(2)
for name in (n for n in list_models() if model_info(n).cpu_channels_last):
    c, h, w = model_info(name).input_size
    for batch in (3, 17):  # odd sizes: where torch 2.14.1 crashes for EmotionNet Nano's 1x1 stride-2 convolutions
        torch.manual_seed(0)
        x, y = torch.rand(batch, c, h, w), torch.randint(0, 7, (batch,))
        plain = create_model(name, 7, c).eval()  # eval: no dropout, the same function in both formats
        fast = create_model(name, 7, c).eval()
        fast.load_state_dict(plain.state_dict())
        fast.to(memory_format=torch.channels_last)
        F.cross_entropy(plain(x), y).backward()
        F.cross_entropy(fast(x.contiguous(memory_format=torch.channels_last)), y).backward()
        for p, q in zip(plain.parameters(), fast.parameters()):
            assert (p.grad - q.grad).abs().max() <= 0.05 * p.grad.abs().max() + 1e-6, name
    print(name, flush=True)
"""


def test_every_model_marked_for_channels_last_trains_in_it_on_two_threads():
    # in a subprocess: a crash inside torch (as for EmotionNet Nano, see benchmarks/README.md) fails this test
    result = subprocess.run([sys.executable, "-c", CHANNELS_LAST_CHECK], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    checked = result.stdout.split()
    assert {"microexpnet_xxs", "lopes_cnn", "plain7cnn", "cspp", "emotionnet_nano_a", "emotionnet_nano_b"} <= set(checked)


def test_nanos_projection_is_a_stride_two_pointwise_convolution():
    from ferbench.models.emotionnet_nano import _proj

    projection, reference = _proj(11, 26), nn.Conv2d(11, 26, 1, stride=2)
    reference.load_state_dict(projection.state_dict())  # same parameter names and shapes
    for side in (12, 13):  # even and odd sizes give the same output size
        x = torch.randn(3, 11, side, side)
        assert torch.allclose(projection(x), reference(x), atol=1e-6)
