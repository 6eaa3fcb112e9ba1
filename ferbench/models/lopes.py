"""Lopes CNN, its 3x3 variant, Plain7CNN, Plain8CNN and C-SPP (paper 004, Li et al.).

All are one network, :class:`LopesNet`, described by a layer list: ``(kernel, maps)`` is a
convolution with 'same' padding + ReLU, ``POOL`` a 2x2/2 max pool. The head is
FC-256 + ReLU -> dropout 0.5 -> FC-K. Default input 1 x 48 x 48 (Lopes et al. used 32 x 32,
also declared for ``lopes_cnn``).

    lopes_cnn       5x5@32, pool, 7x7@64, pool                               flatten 12x12x64
    lopes_cnn_3x3   3x3@32, 3x3@32, pool, 3x3@64, 5x5@64, pool               flatten 12x12x64
    plain7cnn       lopes_cnn_3x3 + 3x3@128, 3x3@128, pool                   flatten 6x6x128
    plain8cnn       as plain7cnn with 7x7@64 -> three 3x3@64                 flatten 6x6x128
    cspp            lopes_cnn_3x3 + 3x3@128, 3x3@128; SPP(3,2,1) of the 2nd and of the last
                    conv outputs, concatenated: (32 + 128) x (9 + 4 + 1) = 2240 features

Layer count in the names: convolutions + the hidden FC-256 (the output FC is not counted):
Plain7CNN has 6 conv + 1 = 7, Plain8CNN 7 conv + 1 = 8.

Reconstruction (figures 2, 3 and 6 are not in the text): the C-SPP trunk is Plain7CNN's
convolutions; its SPP on the last conv output replaces Plain7CNN's last pool (at 48 x 48, SPP of
the 12 x 12 map equals SPP of the pooled 6 x 6 map of figure 5, as the bins nest). The "second
conv layer" is the second 3x3@32 convolution (48 x 48, before the first pool). SPP bins are
adaptive max pools, so C-SPP accepts any input size. Dropout placement (before the last FC only)
and ReLU after the hidden FC follow Lopes et al. Convolutions start from He initialisation
(normal, fan-in, zero biases; the paper names none; the FC layers keep PyTorch's default): with
PyTorch's default scale everywhere, the 6-7 BatchNorm-free ReLU convolutions of Plain7CNN and
Plain8CNN stayed on the majority class in 1 to 3 of 4 seeds of the short training in
``tests/test_baselines_learn.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ferbench.models.registry import register_model

POOL = "pool"
Layer = tuple[int, int] | str  # (kernel, maps) for a convolution, or POOL

LOPES: tuple[Layer, ...] = ((5, 32), POOL, (7, 64), POOL)
LOPES_3X3: tuple[Layer, ...] = ((3, 32), (3, 32), POOL, (3, 64), (5, 64), POOL)
PLAIN7: tuple[Layer, ...] = LOPES_3X3 + ((3, 128), (3, 128), POOL)
PLAIN8: tuple[Layer, ...] = ((3, 32), (3, 32), POOL, (3, 64), (3, 64), (3, 64), POOL, (3, 128), (3, 128), POOL)
CSPP: tuple[Layer, ...] = LOPES_3X3 + ((3, 128), (3, 128))
CSPP_TAPS = (2, 6)  # 1-based indices of the convolutions whose outputs feed the SPP modules


def conv_block(cin: int, cout: int, kernel: int) -> nn.Sequential:
    """Odd-kernel convolution with 'same' padding, then ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.ReLU(inplace=True))


class SpatialPyramidPool(nn.Module):
    """Max pool B x C x H x W to each level x level grid and concatenate: B x C·Σ level²."""

    def __init__(self, levels: Sequence[int] = (3, 2, 1)):
        super().__init__()
        self.levels = tuple(levels)

    def out_features(self, channels: int) -> int:
        return channels * sum(level * level for level in self.levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.adaptive_max_pool2d(x, level).flatten(1) for level in self.levels], dim=1)


class LopesNet(nn.Module):
    """Conv/pool layers from ``layers`` then the FC head; with ``spp_taps`` (1-based conv
    indices) the SPP of those conv outputs, concatenated, replaces the final flatten."""

    def __init__(
        self,
        num_classes: int,
        layers: Sequence[Layer],
        in_chans: int = 1,
        input_size: tuple[int, int] = (48, 48),
        spp_taps: Sequence[int] = (),
        hidden: int = 256,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.layers = nn.ModuleList()
        self.tap_layers: set[int] = set()  # indices into self.layers
        channels, tap_channels, convs = in_chans, 0, 0
        for layer in layers:
            if layer == POOL:
                self.layers.append(nn.MaxPool2d(2))
                continue
            kernel, maps = layer
            self.layers.append(conv_block(channels, maps, kernel))
            channels, convs = maps, convs + 1
            if convs in spp_taps:
                self.tap_layers.add(len(self.layers) - 1)
                tap_channels += maps

        self.spp = SpatialPyramidPool() if spp_taps else None
        if self.spp is not None:
            flat = self.spp.out_features(tap_channels)
        else:
            pools = sum(layer == POOL for layer in layers)
            height, width = input_size[0] >> pools, input_size[1] >> pools
            if min(height, width) < 1:
                raise ValueError(f"input {input_size} is too small for {pools} 2x2 poolings")
            flat = channels * height * width
        self.head = nn.Sequential(
            nn.Linear(flat, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
        )
        for module in self.modules():  # He initialisation for the convolutions (see the module docstring)
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x C x H x W -> logits B x K."""
        pyramids = []
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index in self.tap_layers:
                pyramids.append(self.spp(x))
        return self.head(torch.cat(pyramids, dim=1) if pyramids else x.flatten(1))


@register_model(
    "lopes_cnn", input_size=(1, 48, 48), input_sizes=[(1, 48, 48), (1, 32, 32)], family="lopes", paper="004",
    cpu_channels_last=True,
)
def lopes_cnn(num_classes: int, in_chans: int = 1, input_size: tuple[int, int] = (48, 48)) -> LopesNet:
    """Lopes et al.'s baseline CNN: 5x5@32, pool, 7x7@64, pool, FC-256, FC-K."""
    return LopesNet(num_classes, LOPES, in_chans, input_size)


@register_model("lopes_cnn_3x3", input_size=(1, 48, 48), family="lopes", paper="004", cpu_channels_last=True)
def lopes_cnn_3x3(num_classes: int, in_chans: int = 1, input_size: tuple[int, int] = (48, 48)) -> LopesNet:
    """Lopes CNN with 5x5 -> two 3x3 and 7x7 -> 3x3 + 5x5."""
    return LopesNet(num_classes, LOPES_3X3, in_chans, input_size)


@register_model("plain7cnn", input_size=(1, 48, 48), family="lopes", paper="004", cpu_channels_last=True)
def plain7cnn(num_classes: int, in_chans: int = 1, input_size: tuple[int, int] = (48, 48)) -> LopesNet:
    """The 3x3 variant + two 3x3@128 convolutions and a pool before the FC."""
    return LopesNet(num_classes, PLAIN7, in_chans, input_size)


@register_model("plain8cnn", input_size=(1, 48, 48), family="lopes", paper="004", cpu_channels_last=True)
def plain8cnn(num_classes: int, in_chans: int = 1, input_size: tuple[int, int] = (48, 48)) -> LopesNet:
    """Plain7CNN with the original 7x7 replaced by three 3x3 convolutions."""
    return LopesNet(num_classes, PLAIN8, in_chans, input_size)


@register_model("cspp", input_size=(1, 48, 48), family="lopes", paper="004", cpu_channels_last=True)
def cspp(num_classes: int, in_chans: int = 1, input_size: tuple[int, int] = (48, 48)) -> LopesNet:
    """Cross-connection + spatial pyramid pooling CNN (C-SPP)."""
    return LopesNet(num_classes, CSPP, in_chans, input_size, spp_taps=CSPP_TAPS)
