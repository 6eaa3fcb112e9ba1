"""MicroExpNet students (paper 000, Cugu et al.): conv1 -> conv2 -> fc1 -> fc2 with TF 'SAME' padding.

Layers at the default 1 x 84 x 84 input (p12): conv1 16@8x8 stride 2 (84 -> 42), ReLU, maxpool
2x2/2 (-> 21), conv2 32@4x4 stride 2 (-> 11), ReLU, maxpool 2x2/2 (-> 6), flatten 6x6x32 = 1152,
fc1 (ReLU, dropout 0.5), fc2. Padding is TensorFlow's 'SAME' (output = ceil(input / stride),
the odd padding pixel on the bottom/right), as in the authors' TensorFlow release. Xavier-uniform
weights, zero biases.

Pooling candidates (paper Table II) and the fc1 width. §IV-A ("we did two modifications") keeps
the candidates comparable in size: adding the pool after conv1 lowers conv1's stride from 4 to 2,
and adding the pool after conv2 makes fc1 three times wider. The registered widths (M 768,
S 192, XS 96, XXS 48) are those of the final p12 net, so the candidates without the conv2 pool
use a third of them:

    pooling  conv1 stride  pool1  pool2  fc1 width  flatten at 84 x 84
    v        4             -      -      w / 3      11 x 11 x 32 = 3872
    p1       2             yes    -      w / 3      11 x 11 x 32 = 3872
    p2       4             -      yes    w          6 x 6 x 32 = 1152
    p12      2             yes    yes    w          6 x 6 x 32 = 1152

Every candidate has a total stride of 8 (no pool2) or 16, so the flattened side is
ceil(H / stride) for any input size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ferbench.errors import UnknownName
from ferbench.models.registry import register_model

# pooling candidate -> (pool after conv1, pool after conv2)
POOLINGS: dict[str, tuple[bool, bool]] = {
    "v": (False, False),
    "p1": (True, False),
    "p2": (False, True),
    "p12": (True, True),
}

FC1_WIDTHS = {"m": 768, "s": 192, "xs": 96, "xxs": 48}  # p12 widths (paper Table I)


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad B x C x H x W like TensorFlow 'SAME': output side ceil(side / stride), extra pixel bottom/right."""
    pads: list[int] = []
    for side in (x.shape[-1], x.shape[-2]):  # F.pad lists the last dimension first
        total = max((math.ceil(side / stride) - 1) * stride + kernel - side, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


class Conv2dSame(nn.Conv2d):
    """Square-kernel convolution with TensorFlow 'SAME' padding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(pad_same(x, self.kernel_size[0], self.stride[0]))


class MaxPool2dSame(nn.MaxPool2d):
    """Square max pooling with TensorFlow 'SAME' padding (padded cells never win)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(pad_same(x, self.kernel_size, self.stride, value=-math.inf))


class MicroExpNet(nn.Module):
    """Two conv + two fc layers; ``fc1_width`` is the p12 width (see the module docstring)."""

    def __init__(
        self,
        num_classes: int,
        fc1_width: int,
        pooling: str = "p12",
        in_chans: int = 1,
        input_size: tuple[int, int] = (84, 84),
        dropout: float = 0.5,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise UnknownName("pooling", pooling, POOLINGS)
        pool1, pool2 = POOLINGS[pooling]
        layers: list[nn.Module] = [Conv2dSame(in_chans, 16, 8, stride=2 if pool1 else 4), nn.ReLU()]
        if pool1:
            layers.append(MaxPool2dSame(2, 2))
        layers += [Conv2dSame(16, 32, 4, stride=2), nn.ReLU()]
        if pool2:
            layers.append(MaxPool2dSame(2, 2))
        self.features = nn.Sequential(*layers, nn.Flatten())

        total_stride = 16 if pool2 else 8
        flat = 32 * math.ceil(input_size[0] / total_stride) * math.ceil(input_size[1] / total_stride)
        width = fc1_width if pool2 else fc1_width // 3
        self.fc1 = nn.Linear(flat, width)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(width, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x C x H x W -> logits B x K."""
        return self.fc2(self.dropout(F.relu(self.fc1(self.features(x)))))


def _register(size: str) -> None:
    @register_model(f"microexpnet_{size}", input_size=(1, 84, 84), family="microexpnet", paper="000",
                    cpu_channels_last=True)
    def factory(
        num_classes: int, in_chans: int = 1, input_size: tuple[int, int] = (84, 84), pooling: str = "p12"
    ) -> MicroExpNet:
        return MicroExpNet(num_classes, FC1_WIDTHS[size], pooling, in_chans, input_size)


for _size in FC1_WIDTHS:
    _register(_size)
