"""ED²L, expression distilling and dispelling learning (paper 002, Bai et al., Table 1).

Every 3x3 convolution (padding 1, no bias) is followed by BatchNorm and PReLU. A residual unit
is x + [conv; conv](x). A stage is a stride-2 convolution followed by residual units.

    base net:            stage(32, 1 unit) -> stage(64, 2 units) -> stage(128, 4 units)
    distilling branch:   stage(256, 1 unit) -> flatten -> FC-256 = f_t -> cosine classifier (K)
    dispelling branch:   stage(256, 1 unit) -> flatten -> FC-256 = f_p;  dispeller Linear(256, K)

Input 1 x 112 x 96; each stage halves the side (ceil), so the branches flatten
256 x ceil(H/16) x ceil(W/16) = 256 x 7 x 6 at the default size.
The cosine classifier is the additive-margin softmax head: cos = normalise(f_t) · normalise(W)ᵀ,
no bias; the margin m is applied by the training loss only, prediction is ``scale * cos``.
``ed2l_baseline`` is the same network without the dispelling branch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ferbench.models.registry import register_model

FEATURE_DIM = 256


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.PReLU(cout)
    )


class ResidualUnit(nn.Module):
    """x + [3x3 conv-BN-PReLU; 3x3 conv-BN-PReLU](x), channels unchanged."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(channels, channels), _conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _stage(cin: int, cout: int, units: int) -> nn.Sequential:
    return nn.Sequential(_conv_bn(cin, cout, stride=2), *(ResidualUnit(cout) for _ in range(units)))


def _branch(input_size: tuple[int, int]) -> nn.Sequential:
    """[3x3, 256] stride 2 + 1 residual unit + FC-256, on the base net's 128 maps."""
    flat = FEATURE_DIM * math.ceil(input_size[0] / 16) * math.ceil(input_size[1] / 16)
    return nn.Sequential(_stage(128, FEATURE_DIM, 1), nn.Flatten(), nn.Linear(flat, FEATURE_DIM))


class CosineClassifier(nn.Module):
    """Cosine similarities between normalised features and normalised class weights (no bias)."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """B x D -> B x K cosines in [-1, 1]."""
        return F.linear(F.normalize(features, dim=1), F.normalize(self.weight, dim=1))


class ED2L(nn.Module):
    """Base net + distilling branch (+ dispelling branch and dispeller when ``dispelling``)."""

    def __init__(
        self,
        num_classes: int,
        in_chans: int = 1,
        input_size: tuple[int, int] = (112, 96),
        dispelling: bool = True,
        scale: float = 30.0,
        margin: float = 0.35,
    ):
        super().__init__()
        self.scale, self.margin = scale, margin
        self.base = nn.Sequential(_stage(in_chans, 32, 1), _stage(32, 64, 2), _stage(64, 128, 4))
        self.distilling = _branch(input_size)
        self.classifier = CosineClassifier(FEATURE_DIM, num_classes)
        self.dispelling = _branch(input_size) if dispelling else None
        self.dispeller = nn.Linear(FEATURE_DIM, num_classes) if dispelling else None

    def forward_parts(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``cos`` (B x K) and, with the dispelling branch, ``feat_p`` (B x 256) for the losses."""
        shared = self.base(x)
        parts = {"cos": self.classifier(self.distilling(shared))}
        if self.dispelling is not None:
            parts["feat_p"] = self.dispelling(shared)
        return parts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Prediction logits ``scale * cos`` (B x K) from the distilling branch only."""
        return self.scale * self.classifier(self.distilling(self.base(x)))


@register_model("ed2l", input_size=(1, 112, 96), family="ed2l", paper="002")
def ed2l(num_classes: int, in_chans: int = 1, input_size: tuple[int, int] = (112, 96)) -> ED2L:
    """Full ED²L with distilling and dispelling branches."""
    return ED2L(num_classes, in_chans, input_size, dispelling=True)


@register_model("ed2l_baseline", input_size=(1, 112, 96), family="ed2l", paper="002")
def ed2l_baseline(num_classes: int, in_chans: int = 1, input_size: tuple[int, int] = (112, 96)) -> ED2L:
    """The paper's baseline: ED²L without the dispelling branch."""
    return ED2L(num_classes, in_chans, input_size, dispelling=False)
