"""TinyFerCNN: three conv-BN-ReLU-pool blocks, global average pooling and a linear classifier.

Input ``B x C x H x W`` (any size of at least 8 x 8), normalised by ferbench as the card says;
output logits ``B x K``. ``forward_features`` (``B x 64``) and ``forward_head`` let the
``center_loss`` objective train it as well.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2))


class TinyFerCNN(nn.Module):
    """About 24 k parameters for 7 classes."""

    def __init__(self, num_classes: int, in_chans: int = 1, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(_block(in_chans, width), _block(width, 2 * width), _block(2 * width, 4 * width),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def tiny_fer_cnn(num_classes: int, in_chans: int = 1, input_size: tuple[int, int] = (48, 48),
                 width: int = 16) -> TinyFerCNN:
    """The ferbench factory: ``input_size`` (H, W) is accepted and unused (the network pools globally)."""
    return TinyFerCNN(num_classes, in_chans, width)
