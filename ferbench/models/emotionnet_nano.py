"""EmotionNet Nano-A / Nano-B (paper 001, Lee et al.), one graph parameterised by its widths.

Reconstruction (no official code): the densely summed graph below. ``c`` is a 3x3
convolution (padding 1) + ReLU, ``c_s2`` the same with stride 2, ``proj`` a 1x1 stride-2
convolution without ReLU; "+" is an elementwise sum; no BatchNorm. Input 1 x 48 x 48 (any size
works: both stride-2 paths give ceil(side / 2)). Weights start as Keras layers do (Glorot-uniform
weights, zero biases; the paper's schedule is the Keras ResNet example's): with PyTorch's default
initialisation this BatchNorm-free graph's summed activations shrink and it barely trains.

    stage 1 (48², width a):   x1 = c(in -> a);  x3 = c(c(x1 -> b1) -> a);  x5 = c(c(x1+x3 -> b2) -> a)
                              x7 = c(c(x1+x3+x5 -> b3) -> a)
                              x8 = c_s2(x1+x5+x7 -> B);  p1 = proj(x1+x3+x5 -> B)
    stage 2 (24², width B):   y1 = c(x8);  y3 = c(c(y1+p1 -> m1) -> B);  y5 = c(c(y1+y3 -> m2) -> B)
                              y6 = c_s2(y1+y3+y5+p1 -> C);  p2 = proj(y3+y5+p1+x8 -> D)
    stage 3 (12², width D):   z1 = c(y6 -> D);  z3 = c(c(z1+p2 -> n1) -> D);  z5 = c(c(z1+z3+p2 -> n2) -> D)
    head:                     global average pool of z1+z3+z5+p2 -> fc

With 7 classes: Nano-A 231,992 parameters, Nano-B 135,876 (paper: 232K and 136K).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ferbench.models.registry import register_model


@dataclass(frozen=True)
class NanoWidths:
    """Channel widths of the graph, named as in the module docstring."""

    a: int
    b: tuple[int, int, int]
    B: int
    m: tuple[int, int]
    C: int
    D: int
    n: tuple[int, int]


NANO_A = NanoWidths(a=14, b=(12, 10, 9), B=35, m=(24, 33), C=46, D=82, n=(50, 31))
NANO_B = NanoWidths(a=11, b=(9, 8, 7), B=26, m=(19, 26), C=35, D=63, n=(38, 24))


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=1), nn.ReLU(inplace=True))


def _pair(cin: int, mid: int, cout: int) -> nn.Sequential:
    """c(c(. -> mid) -> cout)."""
    return nn.Sequential(_conv(cin, mid), _conv(mid, cout))


class _Projection(nn.Conv2d):
    """A 1x1 convolution with stride 2, computed as a ``[..., ::2, ::2]`` subsample and a 1x1
    stride-1 convolution: the same numbers, and it avoids torch 2.14.1's channels_last CPU
    kernel for 1x1 stride-2 backward, which crashes with 2+ threads at odd batch sizes."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x[..., ::2, ::2])


def _proj(cin: int, cout: int) -> nn.Conv2d:
    return _Projection(cin, cout)


class EmotionNetNano(nn.Module):
    """The EmotionNet Nano graph for the given widths."""

    def __init__(self, num_classes: int, widths: NanoWidths, in_chans: int = 1):
        super().__init__()
        w = widths
        self.x1 = _conv(in_chans, w.a)
        self.x3 = _pair(w.a, w.b[0], w.a)
        self.x5 = _pair(w.a, w.b[1], w.a)
        self.x7 = _pair(w.a, w.b[2], w.a)
        self.x8 = _conv(w.a, w.B, stride=2)
        self.p1 = _proj(w.a, w.B)
        self.y1 = _conv(w.B, w.B)
        self.y3 = _pair(w.B, w.m[0], w.B)
        self.y5 = _pair(w.B, w.m[1], w.B)
        self.y6 = _conv(w.B, w.C, stride=2)
        self.p2 = _proj(w.B, w.D)
        self.z1 = _conv(w.C, w.D)
        self.z3 = _pair(w.D, w.n[0], w.D)
        self.z5 = _pair(w.D, w.n[1], w.D)
        self.fc = nn.Linear(w.D, num_classes)
        for layer in self.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x C x H x W -> logits B x K."""
        x1 = self.x1(x)
        x3 = self.x3(x1)
        x5 = self.x5(x1 + x3)
        x7 = self.x7(x1 + x3 + x5)
        x8 = self.x8(x1 + x5 + x7)
        p1 = self.p1(x1 + x3 + x5)
        y1 = self.y1(x8)
        y3 = self.y3(y1 + p1)
        y5 = self.y5(y1 + y3)
        y6 = self.y6(y1 + y3 + y5 + p1)
        p2 = self.p2(y3 + y5 + p1 + x8)
        z1 = self.z1(y6)
        z3 = self.z3(z1 + p2)
        z5 = self.z5(z1 + z3 + p2)
        return self.fc((z1 + z3 + z5 + p2).mean(dim=(2, 3)))


@register_model("emotionnet_nano_a", input_size=(1, 48, 48), family="emotionnet_nano", paper="001",
                cpu_channels_last=True)
def emotionnet_nano_a(
    num_classes: int, in_chans: int = 1, input_size: tuple[int, int] = (48, 48)
) -> EmotionNetNano:
    """Nano-A (231,992 parameters with 7 classes); ``input_size`` is informational."""
    return EmotionNetNano(num_classes, NANO_A, in_chans)


@register_model("emotionnet_nano_b", input_size=(1, 48, 48), family="emotionnet_nano", paper="001",
                cpu_channels_last=True)
def emotionnet_nano_b(
    num_classes: int, in_chans: int = 1, input_size: tuple[int, int] = (48, 48)
) -> EmotionNetNano:
    """Nano-B (135,876 parameters with 7 classes); ``input_size`` is informational."""
    return EmotionNetNano(num_classes, NANO_B, in_chans)
