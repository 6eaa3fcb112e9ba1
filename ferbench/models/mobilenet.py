"""MobileNet V1 with a center-loss feature (paper 003, Miao et al.).

timm ``mobilenetv1_100`` (width 1.0, ``pretrained=False``) as a feature extractor ending in
global average pooling (B x 1024), then dropout 0.5 and a linear classifier. About 3.2M
parameters (3,206,400 in the 1-channel backbone + 1025·K in the classifier). Default input
1 x 48 x 48 (the paper scales it to [-1, 1]; that is the trainer's job); 3 x 48 x 48 also works.
``checkpoint_path`` loads a backbone state dict the user supplies (e.g. ImageNet or FER2013
weights; a classifier in the file is skipped, a 3-channel stem is summed for 1-channel input).
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from ferbench.models.checkpoint import load_timm_checkpoint
from ferbench.models.registry import register_model


class MobileNetCenterLoss(nn.Module):
    """MobileNet V1 backbone -> pooled feature -> dropout -> linear logits."""

    def __init__(
        self, num_classes: int, in_chans: int = 1, dropout: float = 0.5, checkpoint_path: str | None = None
    ):
        super().__init__()
        self.backbone = timm.create_model(
            "mobilenetv1_100", pretrained=False, num_classes=0, in_chans=in_chans
        )
        if checkpoint_path is not None:
            load_timm_checkpoint(self.backbone, checkpoint_path)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """B x C x H x W -> pooled features B x 1024 (the center-loss feature)."""
        return self.backbone(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """B x 1024 -> logits B x K."""
        return self.head(self.dropout(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model(
    "mobilenetv1_centerloss",
    input_size=(1, 48, 48),
    input_sizes=[(1, 48, 48), (3, 48, 48)],
    family="mobilenet",
    paper="003",
)
def mobilenetv1_centerloss(
    num_classes: int,
    in_chans: int = 1,
    input_size: tuple[int, int] = (48, 48),
    checkpoint_path: str | None = None,
) -> MobileNetCenterLoss:
    """``input_size`` is informational (global pooling accepts any size)."""
    return MobileNetCenterLoss(num_classes, in_chans, checkpoint_path=checkpoint_path)
