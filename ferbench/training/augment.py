"""Training augmentations and their card specs, batched on the device and driven by a ``torch.Generator``.

Each augmentation is registered with the spec of its card keys (:func:`register_augmentation`);
the card schema (:mod:`ferbench.cards`) validates every item of ``recipe.augment`` with the spec
registered under its ``name``, so a plug-in's augmentation is named in a card like a built-in
one. An augmentation is built from its spec and the network input size (H, W). All random draws come from the
generator passed in, so a seed fixes them. Three kinds:

- **crop views** (``fixed_crops``, ``ten_crop``): a list of fixed views (top, left, mirrored)
  of a *canvas* larger than the input. The batch is resized to the canvas once
  (``canvas = input x from / crop``, rounded); a view is then an exact slice of input size.
  Offsets written for a ``from``-sized face (MicroExpNet: 256) are scaled to the canvas and
  rounded, so they keep their proportion whatever size the protocol stores faces at. Training
  draws one view per image; test-time augmentation averages all views. At most one crop
  augmentation per card, and it comes first.
- **affine** (``rotate``, ``shift``, ``zoom``, ``random_area_crop``): a random affine map per
  image. Consecutive affine steps are multiplied into one map and resampled once
  (``grid_sample``, bilinear, edge pixels repeated as Keras' ``fill_mode='nearest'``).
- **pixel** (``hflip``): mirrors a random subset by indexing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, StrictFloat, model_validator

from ferbench.registry import AUGMENTATIONS
from ferbench.spec import NamedSpec, NonNegativeInt, SizeOrSide, entry_spec

Size = tuple[int, int]
View = tuple[int, int, bool]  # top, left (canvas pixels), mirrored


def register_augmentation(name: str, spec: type[NamedSpec] | None = None) -> Callable[[type[Augmentation]], type[Augmentation]]:
    """Class decorator: register an :class:`Augmentation` subclass under ``name`` with ``spec``,
    the :class:`~ferbench.spec.NamedSpec` of its card keys (``name: Literal[name]``). Without a
    spec the card's other keys are kept unchecked, as attributes of ``self.spec``."""
    return AUGMENTATIONS.register(name, entry_spec(name, spec))


def augmentation_names() -> list[str]:
    """Registered augmentation names, sorted."""
    return AUGMENTATIONS.names()


def build_augmentation(spec: NamedSpec, input_size: Size) -> Augmentation:
    """The augmentation a card spec describes, for network input ``input_size`` (H, W)."""
    return AUGMENTATIONS.get(spec.name)(spec, tuple(input_size))


class Augmentation:
    """One step: ``step(x, generator)`` randomly transforms a float batch ``N x C x H x W``.

    ``outcomes`` is how many different images the step can make of one image (None: a
    continuous draw, unbounded); a plug-in that does not say is taken as unbounded."""

    outcomes: int | None = None

    def __init__(self, spec: NamedSpec, input_size: Size):
        self.spec, self.input_size = spec, input_size

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` draws from U[low, high) on the generator's device."""
    return low + (high - low) * torch.rand(n, generator=generator, device=generator.device)


# ----------------------------------------------------------------------------- crop views


class CropViews(Augmentation):
    """Fixed views of a canvas; ``views`` lists them as (top, left, mirrored) in canvas pixels."""

    views: list[View]

    def __init__(self, spec: FixedCrops | TenCrop, input_size: Size):
        super().__init__(spec, input_size)
        self.canvas_size: Size = tuple(round(i * f / c) for i, f, c in zip(input_size, spec.from_, spec.crop))

    @property
    def outcomes(self) -> int:
        return len(self.views)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One view per image, drawn uniformly."""
        table = torch.tensor(self.views, device=x.device)
        choice = torch.randint(len(self.views), (len(x),), generator=generator, device=generator.device)
        top, left, mirrored = table[choice.to(x.device)].unbind(1)
        out = crop_each(x, top, left, self.input_size)
        return torch.where(mirrored.bool().view(-1, 1, 1, 1), out.flip(-1), out)

    def all_views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every view of every image: a list of ``N x C x h x w`` batches."""
        return [self._view(x, view) for view in self.views]

    def center(self, x: torch.Tensor) -> torch.Tensor:
        """The centre crop (the single view when a card asks for no test-time augmentation)."""
        return self._view(x, ((self.canvas_size[0] - self.input_size[0]) // 2,
                              (self.canvas_size[1] - self.input_size[1]) // 2, False))

    def _view(self, x: torch.Tensor, view: View) -> torch.Tensor:
        top, left, mirrored = view
        out = x[..., top:top + self.input_size[0], left:left + self.input_size[1]]
        return out.flip(-1) if mirrored else out


def crop_each(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: Size) -> torch.Tensor:
    """Crop image i of ``x`` (N x C x H x W) at (``top[i]``, ``left[i]``) to ``size``, by indexing."""
    rows = top[:, None] + torch.arange(size[0], device=x.device)  # N x h
    cols = left[:, None] + torch.arange(size[1], device=x.device)  # N x w
    batch = torch.arange(len(x), device=x.device)[:, None, None]
    return x.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


class FixedCrops(NamedSpec):
    """Crops of side ``crop`` at ``offsets`` [top, left] of a ``from``-sized face (MicroExpNet)."""

    name: Literal["fixed_crops"]
    offsets: tuple[tuple[NonNegativeInt, NonNegativeInt], ...] = Field(min_length=1)
    crop: SizeOrSide
    from_: SizeOrSide = Field(alias="from")

    @model_validator(mode="after")
    def _inside(self) -> FixedCrops:
        for top, left in self.offsets:
            if top + self.crop[0] > self.from_[0] or left + self.crop[1] > self.from_[1]:
                raise ValueError(f"offset [{top}, {left}] puts a {list(self.crop)} crop outside the {list(self.from_)} face")
        return self


@register_augmentation("fixed_crops", FixedCrops)
class FixedCropViews(CropViews):
    """MicroExpNet's crops at fixed offsets; offsets scale from the ``from`` face to the canvas."""

    def __init__(self, spec: FixedCrops, input_size: Size):
        super().__init__(spec, input_size)
        (canvas_h, canvas_w), (h, w) = self.canvas_size, input_size
        self.views = [
            (min(round(top * canvas_h / spec.from_[0]), canvas_h - h),
             min(round(left * canvas_w / spec.from_[1]), canvas_w - w), False)
            for top, left in spec.offsets
        ]


class TenCrop(NamedSpec):
    """The 4 corner crops and the centre crop of side ``crop`` of a ``from``-sized face, and their mirrors (ED²L)."""

    name: Literal["ten_crop"]
    crop: SizeOrSide
    from_: SizeOrSide = Field(alias="from")

    @model_validator(mode="after")
    def _inside(self) -> TenCrop:
        if self.crop[0] > self.from_[0] or self.crop[1] > self.from_[1]:
            raise ValueError(f"crop {list(self.crop)} is larger than the {list(self.from_)} face")
        return self


@register_augmentation("ten_crop", TenCrop)
class TenCropViews(CropViews):
    """ED²L's ten views: four corners and the centre, each also mirrored."""

    def __init__(self, spec: TenCrop, input_size: Size):
        super().__init__(spec, input_size)
        down, right = self.canvas_size[0] - input_size[0], self.canvas_size[1] - input_size[1]
        corners = [(0, 0), (0, right), (down, 0), (down, right), (down // 2, right // 2)]
        self.views = [(top, left, mirrored) for mirrored in (False, True) for top, left in corners]


# ----------------------------------------------------------------------------- affine


class AffineAugmentation(Augmentation):
    """A random affine map per image, as ``N x 3 x 3`` matrices taking output pixel coordinates
    (origin at the image centre) to the input coordinates sampled there."""

    def matrix(self, n: int, size: Size, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return warp(x, self.matrix(len(x), tuple(x.shape[-2:]), generator))


def affine(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor,
           tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """``N x 3 x 3`` matrices [[a, b, tx], [c, d, ty], [0, 0, 1]] from length-N tensors."""
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([a, b, tx, c, d, ty, zero, zero, one], dim=1).view(-1, 3, 3)


def warp(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Resample ``x`` (N x C x H x W) through ``matrix`` (N x 3 x 3, centred pixel coordinates)."""
    h, w = x.shape[-2:]
    to_pixels = torch.diag(torch.tensor([w / 2, h / 2, 1.0], dtype=x.dtype, device=x.device))
    to_unit = torch.diag(torch.tensor([2 / w, 2 / h, 1.0], dtype=x.dtype, device=x.device))
    theta = (to_unit @ matrix.to(x.device, x.dtype) @ to_pixels)[:, :2]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Rotate(NamedSpec):
    """A rotation drawn uniformly from [-degrees, degrees]."""

    name: Literal["rotate"]
    degrees: StrictFloat = Field(ge=0)


@register_augmentation("rotate", Rotate)
class RandomRotate(AffineAugmentation):
    spec: Rotate

    def matrix(self, n: int, size: Size, generator: torch.Generator) -> torch.Tensor:
        angle = torch.deg2rad(_uniform(n, -self.spec.degrees, self.spec.degrees, generator))
        cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
        return affine(cos, -sin, sin, cos, zero, zero)


class Shift(NamedSpec):
    """A shift drawn uniformly from [-fraction, fraction] of the width and, independently, of the height."""

    name: Literal["shift"]
    fraction: StrictFloat = Field(ge=0, lt=1)


@register_augmentation("shift", Shift)
class RandomShift(AffineAugmentation):
    spec: Shift

    def matrix(self, n: int, size: Size, generator: torch.Generator) -> torch.Tensor:
        f = self.spec.fraction
        tx, ty = _uniform(n, -f, f, generator) * size[1], _uniform(n, -f, f, generator) * size[0]
        one, zero = torch.ones_like(tx), torch.zeros_like(tx)
        return affine(one, zero, zero, one, tx, ty)


class Zoom(NamedSpec):
    """Scale factors drawn uniformly from ``range``, independently per axis (as Keras); < 1 zooms in."""

    name: Literal["zoom"]
    range: tuple[Annotated[StrictFloat, Field(gt=0)], Annotated[StrictFloat, Field(gt=0)]]


@register_augmentation("zoom", Zoom)
class RandomZoom(AffineAugmentation):
    spec: Zoom

    def matrix(self, n: int, size: Size, generator: torch.Generator) -> torch.Tensor:
        zx, zy = _uniform(n, *self.spec.range, generator), _uniform(n, *self.spec.range, generator)
        zero = torch.zeros_like(zx)
        return affine(zx, zero, zero, zy, zero, zero)


class RandomAreaCrop(NamedSpec):
    """A random box covering a fraction ``area`` of the face, of aspect (width / height) in ``aspect``."""

    name: Literal["random_area_crop"]
    area: tuple[Annotated[StrictFloat, Field(gt=0, le=1)], Annotated[StrictFloat, Field(gt=0, le=1)]]
    aspect: tuple[Annotated[StrictFloat, Field(gt=0)], Annotated[StrictFloat, Field(gt=0)]] = (1.0, 1.0)


@register_augmentation("random_area_crop", RandomAreaCrop)
class RandomAreaCropping(AffineAugmentation):
    """A box of area fraction a ~ U(area) and aspect r ~ U(aspect) (width fraction sqrt(a r),
    height fraction sqrt(a / r), each at most 1) at a uniform position, resized to the input."""

    spec: RandomAreaCrop

    def matrix(self, n: int, size: Size, generator: torch.Generator) -> torch.Tensor:
        area, aspect = _uniform(n, *self.spec.area, generator), _uniform(n, *self.spec.aspect, generator)
        bw, bh = (area * aspect).sqrt().clamp(max=1), (area / aspect).sqrt().clamp(max=1)
        tx = _uniform(n, -1, 1, generator) * (1 - bw) * size[1] / 2
        ty = _uniform(n, -1, 1, generator) * (1 - bh) * size[0] / 2
        zero = torch.zeros_like(bw)
        return affine(bw, zero, zero, bh, tx, ty)


# ----------------------------------------------------------------------------- pixel


class HFlip(NamedSpec):
    name: Literal["hflip"]
    p: StrictFloat = Field(0.5, ge=0, le=1)


@register_augmentation("hflip", HFlip)
class RandomHFlip(Augmentation):
    spec: HFlip
    outcomes = 2

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        flip = torch.rand(len(x), generator=generator, device=generator.device) < self.spec.p
        return torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)


# ----------------------------------------------------------------------------- pipeline


class Augmenter:
    """A card's augmentations in order, for network input ``input_size`` (H, W).

    Batches enter at :attr:`canvas_size` (the input size unless a crop augmentation needs a
    larger canvas) and leave at the input size.
    """

    def __init__(self, specs: Sequence[NamedSpec], tta: str, input_size: Size):
        self.steps = [build_augmentation(spec, input_size) for spec in specs]
        crops = [step for step in self.steps if isinstance(step, CropViews)]
        self.crop: CropViews | None = crops[0] if crops else None
        self.tta = tta
        self.canvas_size: Size = self.crop.canvas_size if self.crop else tuple(input_size)

    @property
    def views_per_image(self) -> int | None:
        """How many different training images the steps can make of one image (the product of
        their ``outcomes``; 1 without augmentation), None when some step draws continuously."""
        product = 1
        for step in self.steps:
            if step.outcomes is None:
                return None
            product *= step.outcomes
        return product

    def train(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A random augmentation of the batch (consecutive affine steps resampled once)."""
        pending: torch.Tensor | None = None  # product of the affine maps not yet applied
        for step in self.steps:
            if isinstance(step, AffineAugmentation):
                m = step.matrix(len(x), tuple(x.shape[-2:]), generator)
                pending = m if pending is None else pending @ m
                continue
            if pending is not None:
                x, pending = warp(x, pending), None
            x = step(x, generator)
        return x if pending is None else warp(x, pending)

    def test_views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The views whose predictions are averaged at test time: all crop views when ``tta``
        names the crop augmentation, else its centre crop, else the batch itself."""
        if self.crop is None:
            return [x]
        return self.crop.all_views(x) if self.tta != "none" else [self.crop.center(x)]
