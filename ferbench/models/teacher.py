"""Inception-v3 teacher for MicroExpNet's knowledge distillation (paper 000), built by timm.

Randomly initialised (``pretrained=False``: nothing is ever downloaded); ``checkpoint_path``
loads weights the user supplies (see :func:`ferbench.models.checkpoint.load_timm_checkpoint`).
Default input 3 x 299 x 299; 1-channel input is supported (a 3-channel checkpoint's first
convolution is then summed over channels).
"""

from __future__ import annotations

import timm
from torch import nn

from ferbench.models.checkpoint import load_timm_checkpoint
from ferbench.models.registry import register_model


@register_model(
    "inception_v3_teacher",
    input_size=(3, 299, 299),
    input_sizes=[(3, 299, 299), (1, 299, 299)],
    family="microexpnet",
    paper="000",
)
def inception_v3_teacher(
    num_classes: int,
    in_chans: int = 3,
    input_size: tuple[int, int] = (299, 299),
    checkpoint_path: str | None = None,
) -> nn.Module:
    """timm ``inception_v3`` (no auxiliary head); ``input_size`` is informational (any side >= 75 px)."""
    model = timm.create_model("inception_v3", pretrained=False, num_classes=num_classes, in_chans=in_chans)
    if checkpoint_path is not None:
        load_timm_checkpoint(model, checkpoint_path)
    return model
