"""uint8 face crops -> the float batch a network takes: channels, size, intensity scaling.

Everything runs batched on the tensor's device. Colour becomes gray by ITU-R BT.601 luminance
(as OpenCV's ``cvtColor``); gray becomes 3 channels by repetition. Resizing is bilinear, with
antialiasing when shrinking.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LUMINANCE = (0.299, 0.587, 0.114)
"""ITU-R BT.601 weights of R, G, B."""


def to_float_nchw(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``N x H x W`` or ``N x H x W x 3`` -> float32 ``N x C x H x W`` in [0, 255]."""
    if images.ndim == 3:
        return images[:, None].float()
    if images.ndim == 4 and images.shape[-1] == 3:
        return images.permute(0, 3, 1, 2).float()
    raise ValueError(f"expected images N x H x W or N x H x W x 3, got shape {tuple(images.shape)}")


def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """``N x C x H x W`` -> ``N x channels x H x W`` (1 <-> 3 by luminance or repetition)."""
    have = x.shape[1]
    if have == channels:
        return x
    if have == 3 and channels == 1:
        weights = torch.tensor(LUMINANCE, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * weights).sum(dim=1, keepdim=True)
    if have == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    raise ValueError(f"cannot convert {have} channels to {channels}")


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``N x C x H x W`` to ``size`` (H, W); antialiased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrinking)


def normalise(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Scale [0, 255] intensities: ``unit`` -> [0, 1], ``minus_one_one`` -> [-1, 1], ``standardize`` ->
    per image zero mean and unit standard deviation (the deviation floored at 1/sqrt(pixels),
    as ``tf.image.per_image_standardization``)."""
    if mode == "unit":
        return x / 255.0
    if mode == "minus_one_one":
        return x / 127.5 - 1.0
    if mode == "standardize":
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True, correction=0)
        return (x - mean) / std.clamp_min(x[0].numel() ** -0.5)
    raise ValueError(f"unknown normalisation `{mode}`")


def prepare(images: torch.Tensor, size: tuple[int, int], channels: int, mode: str) -> torch.Tensor:
    """uint8 images -> float32 ``N x channels x H x W`` at ``size``, normalised by ``mode``."""
    x = to_float_nchw(images)
    if channels == 1:  # convert before resizing: fewer channels to resample
        return normalise(resize(match_channels(x, 1), size), mode)
    return normalise(match_channels(resize(x, size), channels), mode)


def resize_uint8(images: torch.Tensor, size: tuple[int, int], channels: int) -> torch.Tensor:
    """uint8 images -> uint8 ``N x H x W`` (1 channel) or ``N x H x W x 3`` at ``size`` (for classical models)."""
    x = resize(match_channels(to_float_nchw(images), channels), size).round().clamp(0, 255).to(torch.uint8)
    return x[:, 0] if channels == 1 else x.permute(0, 2, 3, 1)
