"""The model registry: baseline architectures looked up by name, as timm looks up models.

Model contract
--------------
Every neural model is an ``nn.Module`` built by ``create_model(name, num_classes, ...)``
(timm and factory models: by :func:`ferbench.models.build.build_model`, which checks the first
two points below on a probe batch for every card).

- Input: float32 tensor ``B x C x H x W``, already normalised by the trainer as the card's
  ``input.normalise`` says (the model does no scaling of its own). ``C, H, W`` default to the
  registered ``input_size``.
- ``forward(x)`` returns logits ``B x K`` (K = ``num_classes``), not probabilities.
- Models whose loss needs features (center loss: ``mobilenetv1_centerloss``) also expose
  ``forward_features(x) -> B x D`` and ``forward_head(features) -> B x K``, with
  ``forward(x) == forward_head(forward_features(x))``.
- ED²L (``ed2l``, ``ed2l_baseline``) exposes ``forward_parts(x) -> dict`` with ``cos``
  (``B x K`` cosine similarities of the distilling branch's normalised classifier) and, for
  ``ed2l`` only, ``feat_p`` (``B x 256`` dispelling-branch feature); a ``dispeller``
  submodule (``nn.Linear(256, K)``, ``ed2l`` only) and the AM-softmax attributes ``scale``
  (s = 30) and ``margin`` (m = 0.35). ``forward(x) == scale * cos`` (no margin at prediction).
- Losses (KD, center loss, AM-softmax margin, the dispelling pair) live in ``ferbench.training``;
  models only expose the parts those losses need.

Classical models (``lbp_svm``, ``hog_svm``) are not modules: they offer
``fit(images uint8 N x H x W, labels int N) -> self``, ``predict_proba(images) -> N x K``,
``num_classes`` and ``n_parameters`` (see :mod:`ferbench.models.classical`).

Factories
---------
``@register_model(name, input_size=(C, H, W), family=..., paper=...)`` decorates
``fn(num_classes, in_chans=C, input_size=(H, W), **kwargs)``. ``input_sizes`` lists every
size the model is declared (and tested) for; the first one is the default.
``cpu_channels_last=True`` marks a model whose training step on a CPU is clearly faster with
``torch.channels_last`` weights and activations (measured with ``benchmarks/compile.py``): the
trainer then uses that memory format on CPUs unless told otherwise
(:func:`ferbench.training.trainer.training_memory_format`).

Plug-ins: installed packages register models from a ``ferbench.models`` entry point (a
function taking no arguments that calls :func:`register_model`), loaded once by the registry
(:mod:`ferbench.plugins`). A card can also name ``timm/<architecture>`` or a factory string
instead of a registered model (see :mod:`ferbench.models.build` and ``docs/plugins.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ferbench.registry import MODELS

Size3 = tuple[int, int, int]
ModelFactory = Callable[..., Any]


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model: its family, source paper, declared input sizes and
    whether it trains in ``channels_last`` on a CPU by default."""

    name: str
    family: str
    paper: str
    input_size: Size3  # default (C, H, W)
    input_sizes: tuple[Size3, ...]  # all declared sizes, default first
    cpu_channels_last: bool = False


def register_model(
    name: str,
    input_size: Size3,
    family: str,
    paper: str,
    input_sizes: Sequence[Size3] | None = None,
    cpu_channels_last: bool = False,
) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: register a model factory under ``name``.

    ``input_sizes`` (optional) lists extra declared sizes; ``input_size`` is always first.
    ``cpu_channels_last``: train in ``torch.channels_last`` on a CPU (see the module docstring).
    """

    def decorate(fn: ModelFactory) -> ModelFactory:
        default = tuple(input_size)
        extra = tuple(tuple(size) for size in input_sizes or () if tuple(size) != default)
        info = ModelInfo(name, family, paper, default, (default, *extra),  # type: ignore[arg-type]
                         cpu_channels_last)
        MODELS.add(name, (fn, info))
        return fn

    return decorate


def create_model(
    name: str,
    num_classes: int,
    in_chans: int | None = None,
    input_size: tuple[int, int] | None = None,
    **kwargs: Any,
) -> Any:
    """Build the registered model ``name`` for ``num_classes`` classes (a card's model, whatever
    its kind: :func:`ferbench.models.build.build_model`).

    ``in_chans`` and ``input_size`` ((H, W) in pixels) default to the registered size;
    ``kwargs`` go to the factory (e.g. ``pooling`` for MicroExpNet, ``checkpoint_path``).
    """
    fn, info = MODELS.get(name)
    channels, height, width = info.input_size
    return fn(
        num_classes=num_classes,
        in_chans=channels if in_chans is None else in_chans,
        input_size=(height, width) if input_size is None else tuple(input_size),
        **kwargs,
    )


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return MODELS.names()


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; raise :class:`UnknownName` with a suggestion."""
    return MODELS.get(name)[1]
