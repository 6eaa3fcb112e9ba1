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


def assert_stacked_equals_fit(card: ModelCard, kind: str, rtol: float = 1e-5, atol: float = 1e-6) -> None:
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
                                   rtol=0, atol=1e-5)


def test_sgd_with_momentum_and_weight_decay_equals_one_by_one_fit():
    # SGD is linear in the gradient: any error in the padding or the loss normalisation shows.
    card = make_card(optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
                     schedule={"name": "step", "step_size": 1, "gamma": 0.5})
    assert_stacked_equals_fit(card, "emotionnet_nano_b")


@pytest.mark.parametrize(("eps", "atol"), [(1e-3, 1e-5), (1e-8, 1e-3)])
def test_adam_with_weight_decay_equals_one_by_one_fit(eps, atol):
    # Adam divides by sqrt(v) + eps: a gradient element near eps (dead ReLU units) turns float
    # noise (the batched kernels sum in another order) into weight differences of a fraction
    # of one step, hence tolerances of 1/1000 (eps 1e-3) and 1/10 (default eps) of one step
    # (lr). A masking error moves weights by whole steps: the fold of 9 images runs out of
    # batches after one step per epoch, and stepping it on a zero gradient would still move it.
    card = make_card(optimizer={"name": "adam", "lr": 1e-2, "eps": eps, "weight_decay": 1e-3})
    assert_stacked_equals_fit(card, "emotionnet_nano_b", atol=atol)


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


def test_bundled_models_are_stackable_only_without_dropout_or_batchnorm():
    card = make_card(input_size=(48, 48))
    assert can_stack(create_model("emotionnet_nano_a", num_classes=7), card)
    assert can_stack(create_model("emotionnet_nano_b", num_classes=7), card)
    reason = stack_refusal(create_model("microexpnet_xs", num_classes=7), card)
    assert reason is not None and "Dropout" in reason


@pytest.mark.parametrize(("model", "recipe", "message"), [
    (lambda: TinyNet(dropout=0.2), {}, "Dropout"),
    (lambda: TinyNet(batchnorm=True), {}, "BatchNorm"),
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
