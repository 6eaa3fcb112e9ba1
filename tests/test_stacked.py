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


class FeatureNet(TinyNet):
    """TinyNet with the center-loss contract: ``forward == forward_head(forward_features)``."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.norm(self.conv(x)))).flatten(1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(features)) + self.offset


def build(kind: str, seed: int) -> nn.Module:
    seed_everything(seed)
    if kind in ("tiny", "features"):
        return TinyNet() if kind == "tiny" else FeatureNet()
    extra = {"input_size": (16, 16)} if kind.startswith("ed2l") else {}  # ED²L's branches follow the input size
    return create_model(kind, num_classes=3, in_chans=1, **extra)


def teachers_for(seeds) -> list[nn.Module]:
    """One teacher per fold (a TinyNet with its own seed), as a distilling job gets its fold's."""
    return [build("tiny", 100 + seed).eval() for seed in seeds]


def assert_stacked_equals_fit(card: ModelCard, kind: str, rtol: float = 1e-5, atol: float = 1e-6,
                              probability_atol: float = 1e-5, distils: bool = False) -> list[nn.Module]:
    """Train SEEDS' folds one by one and stacked; compare weights, buffers and predictions.
    Returns the one-by-one models."""
    folds = make_folds()
    teachers = teachers_for(SEEDS) if distils else [None] * len(SEEDS)
    one_by_one = [fit(build(kind, seed), card, *fold, CPU, seed, teacher=teacher, progress=False)
                  for seed, fold, teacher in zip(SEEDS, folds, teachers)]
    stacked = fit_stacked([build(kind, seed) for seed in SEEDS], card, folds, CPU, list(SEEDS),
                          teachers=teachers if distils else None)
    probe = make_folds((12,), side=20)[0][0]
    for k, (ours, reference) in enumerate(zip(stacked, one_by_one)):
        assert not ours.training
        untrained = build(kind, SEEDS[k]).state_dict()
        assert any(not torch.equal(untrained[n], v) for n, v in reference.state_dict().items())  # it trained
        torch.testing.assert_close(ours.state_dict(), reference.state_dict(), rtol=rtol, atol=atol,
                                   msg=lambda m, k=k: f"fold {k}: {m}")
        torch.testing.assert_close(predict_proba(ours, card, probe, CPU), predict_proba(reference, card, probe, CPU),
                                   rtol=0, atol=probability_atol)
    return one_by_one


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


def test_center_loss_with_its_centre_update_equals_one_by_one_fit():
    # The centres are per-fold state moved after every step; they reach the weights through the
    # center-loss gradient (lambda 0.5) on the features. Another alpha gives other weights, far beyond the tolerance.
    sgd = {"name": "sgd", "lr": 0.05, "momentum": 0.9}
    card = make_card(optimizer=sgd, objective={"name": "center_loss", "lambda": 0.5, "alpha": 0.5})
    one_by_one = assert_stacked_equals_fit(card, "features")
    other_alpha = make_card(optimizer=sgd, objective={"name": "center_loss", "lambda": 0.5, "alpha": 1.0})
    moved = fit(build("features", SEEDS[0]), other_alpha, *make_folds()[0], CPU, SEEDS[0], progress=False)
    assert (moved.conv.weight - one_by_one[0].conv.weight).abs().max() > 1e-4  # 8e-4 seen; tolerance 1e-6


@pytest.mark.parametrize(("kind", "objective", "atol"), [
    ("ed2l_baseline", {"name": "am_softmax"}, 1e-5),
    # The dispeller is reached by the loss only. BatchNorm over 1 x 1 maps of 8 images and
    # lambda_p = 10 amplify float noise to 5e-4 of the weights' training displacement (~0.5),
    # 2e-4 absolute; a wrong or missing term moves them by whole steps.
    ("ed2l", {"name": "ed2l", "lambda_t": 1.0, "lambda_p": 10.0}, 1e-3),
])
def test_ed2l_objectives_equal_one_by_one_fit(kind, objective, atol):
    card = make_card(optimizer={"name": "sgd", "lr": 0.02, "momentum": 0.9}, objective=objective, epochs=1)
    one_by_one = assert_stacked_equals_fit(card, kind, rtol=1e-4, atol=atol, probability_atol=max(1e-4, atol))
    if kind == "ed2l":
        start = build(kind, SEEDS[0])
        assert not torch.equal(one_by_one[0].dispeller.weight, start.dispeller.weight)


def test_distillation_with_one_teacher_per_fold_equals_one_by_one_fit():
    # Each fold's teacher sees that fold's augmented batches, as fit's teacher does.
    card = make_card(optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9},
                     objective={"name": "distillation", "lambda": 0.7, "temperature": 4.0, "teacher": "t"})
    assert_stacked_equals_fit(card, "tiny", distils=True)
    with pytest.raises(ValueError, match="one teacher per model"):
        fit_stacked([build("tiny", s) for s in SEEDS[:2]], card, make_folds((10, 7)), CPU, list(SEEDS[:2]))


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
    for name, objective in [("mobilenetv1_centerloss", {"name": "center_loss", "lambda": 0.01, "alpha": 0.5}),
                            ("ed2l", {"name": "ed2l"}), ("ed2l_baseline", {"name": "am_softmax"}),
                            ("microexpnet_m", {"name": "distillation", "lambda": 0.5, "temperature": 8.0,
                                               "teacher": "inception_v3_teacher"})]:
        assert can_stack(create_model(name, num_classes=7), make_card(objective=objective)), name


@pytest.mark.parametrize(("model", "recipe", "message"), [
    (TinyNet, {"objective": {"name": "center_loss", "lambda": 0.1, "alpha": 0.5}},
     "objective `center_loss` needs forward_features"),
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
