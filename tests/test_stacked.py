"""Stacked training of several folds at once equals training them one by one with ``fit``."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ferbench.cards import ModelCard
from ferbench.models import create_model
from ferbench.training import fit, predict_proba, seed_everything
from ferbench.training.stacked import can_stack, fit_stacked, stack_refusal

CPU = torch.device("cpu")
SIZES = (30, 21, 9)  # with batch 8: 4, 3 and 1 batches per epoch (9 = 8 + a dropped batch of 1)
SEEDS = (3, 4, 5)

torch.set_num_threads(1)


def make_card(input_size=(16, 16), model: str = "tiny", **recipe: Any) -> ModelCard:
    """A card as tests/test_training.py builds them; ``recipe`` overrides the defaults below."""
    base = {"epochs": 2, "batch_size": 8, "optimizer": {"name": "adam", "lr": 1e-2},
            "augment": [{"name": "shift", "fraction": 0.1}, {"name": "hflip"}]}
    return ModelCard.model_validate({
        "name": "tiny", "model": model,
        "input": {"channels": 1, "size": list(input_size), "normalise": "unit"},
        "recipe": {**base, **recipe},
    })


class TinyNet(nn.Module):
    """conv -> ReLU -> 4x4 average pool -> linear, plus a frozen and an unused parameter
    (``fit``'s optimiser never touches either, even with weight decay)."""

    def __init__(self, num_classes: int = 3, dropout: float = 0.0, batchnorm: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4) if batchnorm else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(64, num_classes)
        self.offset = nn.Parameter(torch.randn(num_classes), requires_grad=False)
        self.unused = nn.Parameter(torch.randn(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.pool(F.relu(self.norm(self.conv(x)))).flatten(1)
        return self.fc(self.drop(features)) + self.offset


def make_folds(sizes=SIZES, side: int = 20) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random uint8 images (stored larger than the input, so they are resized) and 3 classes."""
    g = torch.Generator().manual_seed(0)
    return [(torch.randint(0, 256, (n, side, side), generator=g, dtype=torch.uint8),
             torch.randint(0, 3, (n,), generator=g)) for n in sizes]


def build(kind: str, seed: int) -> nn.Module:
    seed_everything(seed)
    return TinyNet() if kind == "tiny" else create_model(kind, num_classes=3, in_chans=1)


def assert_stacked_equals_fit(card: ModelCard, kind: str, rtol: float = 1e-5, atol: float = 1e-6,
                              probability_atol: float = 1e-5) -> None:
    folds = make_folds()
    one_by_one = [fit(build(kind, seed), card, *fold, CPU, seed, progress=False) for seed, fold in zip(SEEDS, folds)]
    stacked = fit_stacked([build(kind, seed) for seed in SEEDS], card, folds, CPU, list(SEEDS))
    probe = make_folds((12,), side=20)[0][0]
    for k, (ours, reference) in enumerate(zip(stacked, one_by_one)):
        assert not ours.training
        untrained = build(kind, SEEDS[k]).state_dict()
        assert any(not torch.equal(untrained[n], v) for n, v in reference.state_dict().items())  # it trained
        torch.testing.assert_close(ours.state_dict(), reference.state_dict(), rtol=rtol, atol=atol,
                                   msg=lambda m, k=k: f"fold {k}: {m}")
        torch.testing.assert_close(predict_proba(ours, card, probe, CPU), predict_proba(reference, card, probe, CPU),
                                   rtol=0, atol=probability_atol)


def test_sgd_with_momentum_and_weight_decay_equals_one_by_one_fit():
    # SGD is linear in the gradient: any error in the padding or the loss normalisation shows.
    card = make_card(optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
                     schedule={"name": "step", "step_size": 1, "gamma": 0.5})
    assert_stacked_equals_fit(card, "emotionnet_nano_b")


@pytest.mark.parametrize(("eps", "atol"), [(1e-3, 1e-5), (1e-8, 3e-3)])
def test_adam_with_weight_decay_equals_one_by_one_fit(eps, atol):
    # Adam divides by sqrt(v) + eps: a gradient element near eps (dead ReLU units) turns float
    # noise (the batched kernels sum in another order) into weight differences of a fraction
    # of one step, hence tolerances of 1/1000 (eps 1e-3) and 3/10 (default eps) of one step
    # (lr; 0.12 of a step was seen on one CPU). A masking error moves weights by whole steps: the fold of 9 images runs out of
    # batches after one step per epoch, and stepping it on a zero gradient would still move it.
    card = make_card(optimizer={"name": "adam", "lr": 1e-2, "eps": eps, "weight_decay": 1e-3})
    assert_stacked_equals_fit(card, "emotionnet_nano_b", atol=atol, probability_atol=max(1e-5, atol / 3))


def test_adamw_label_smoothing_and_repeats_equal_one_by_one_fit():
    card = make_card(optimizer={"name": "adamw", "lr": 1e-2, "eps": 1e-3, "weight_decay": 0.1},
                     objective={"name": "label_smoothing", "confidence": 0.8}, repeats=2)
    assert_stacked_equals_fit(card, "tiny")


def test_frozen_and_unused_parameters_stay_as_fit_leaves_them():
    card = make_card(optimizer={"name": "sgd", "lr": 0.1, "weight_decay": 0.5}, augment=[])
    folds = make_folds((10, 7))
    models = fit_stacked([build("tiny", seed) for seed in SEEDS[:2]], card, folds, CPU, list(SEEDS[:2]))
    for model, seed in zip(models, SEEDS):
        start = build("tiny", seed)
        assert torch.equal(model.offset, start.offset) and torch.equal(model.unused, start.unused)
        assert not torch.equal(model.fc.weight, start.fc.weight)


def test_batchnorm_trains_stacked_as_one_by_one_running_statistics_included():
    # Folds of 30, 21 and 9 images in batches of 8 end their epochs on batches of 6, 5 and 8
    # images: those train in separate groups, never padded, so batch statistics are the fold's own.
    card = make_card(optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9})
    build_bn = lambda seed: (seed_everything(seed), TinyNet(batchnorm=True))[1]  # noqa: E731
    folds = make_folds()
    one_by_one = [fit(build_bn(seed), card, *fold, CPU, seed, progress=False) for seed, fold in zip(SEEDS, folds)]
    stacked = fit_stacked([build_bn(seed) for seed in SEEDS], card, folds, CPU, list(SEEDS))
    for ours, reference, seed in zip(stacked, one_by_one, SEEDS):
        assert not torch.equal(reference.norm.running_mean, build_bn(seed).norm.running_mean)  # statistics moved
        assert int(ours.norm.num_batches_tracked) == int(reference.norm.num_batches_tracked)
        torch.testing.assert_close(ours.state_dict(), reference.state_dict(), rtol=1e-5, atol=1e-6)


def learnable_folds(sizes, side: int = 20) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """3 classes told apart by which third of the image is bright, plus noise."""
    g = torch.Generator().manual_seed(1)
    folds = []
    for n in sizes:
        y = torch.arange(n) % 3
        images = torch.randint(0, 90, (n, side, side), generator=g)
        for k in range(3):
            images[y == k, :, k * side // 3:(k + 1) * side // 3] += 150
        folds.append((images.clamp(0, 255).to(torch.uint8), y))
    return folds


def test_dropout_stacked_is_deterministic_and_learns_as_well_as_one_by_one():
    # Each stacked model draws its own dropout masks (vmap randomness="different"), not the masks
    # fit draws: not equal to one-by-one training, but identical on a rerun and as accurate.
    card = make_card(epochs=20, optimizer={"name": "adam", "lr": 1e-2}, augment=[])
    build_drop = lambda seed: (seed_everything(seed), TinyNet(dropout=0.5))[1]  # noqa: E731
    folds, (test_x, test_y) = learnable_folds(SIZES), learnable_folds((60,))[0]
    runs = [fit_stacked([build_drop(seed) for seed in SEEDS], card, folds, CPU, list(SEEDS)) for _ in range(2)]
    for first, again in zip(*runs):
        torch.testing.assert_close(first.state_dict(), again.state_dict(), rtol=0, atol=0)
    one_by_one = [fit(build_drop(seed), card, *fold, CPU, seed, progress=False) for seed, fold in zip(SEEDS, folds)]
    assert any(not torch.equal(a.fc.weight, b.fc.weight) for a, b in zip(runs[0], one_by_one))

    def accuracy(model):
        return (predict_proba(model, card, test_x, CPU).argmax(1) == test_y).float().mean().item()

    for ours, reference in zip(runs[0], one_by_one):  # chance is 1/3
        assert accuracy(reference) >= 0.9 and accuracy(ours) >= 0.9


def test_bundled_models_with_dropout_or_batchnorm_stack():
    card = make_card(input_size=(48, 48))
    for name in ("emotionnet_nano_a", "emotionnet_nano_b", "microexpnet_xs", "lopes_cnn", "cspp"):
        assert can_stack(create_model(name, num_classes=7), card), name


@pytest.mark.parametrize(("model", "recipe", "message"), [
    (TinyNet, {"objective": {"name": "center_loss", "lambda": 0.1, "alpha": 0.5}}, "objective `center_loss`"),
])
def test_unsupported_models_and_objectives_are_refused_with_the_reason(model, recipe, message):
    card = make_card(**recipe)
    assert not can_stack(model(), card)
    with pytest.raises(ValueError, match=message):
        fit_stacked([model(), model()], card, make_folds((10, 7)), CPU, [0, 1])


def test_inconsistent_arguments_are_refused():
    card = make_card()
    with pytest.raises(ValueError, match="K >= 1"):
        fit_stacked([TinyNet()], card, make_folds((10, 7)), CPU, [0, 1])
    with pytest.raises(ValueError, match=r"models\[1\] differs"):
        fit_stacked([TinyNet(), TinyNet(num_classes=4)], card, make_folds((10, 7)), CPU, [0, 1])
    with pytest.raises(ValueError, match=r"folds\[1\]"):
        fit_stacked([TinyNet(), TinyNet()], card, make_folds((10, 0)), CPU, [0, 1])
    assert "not a neural network" in stack_refusal(object(), card)
