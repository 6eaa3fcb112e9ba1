"""Models from outside ferbench: plug-in packages, factory strings and timm architectures.

A card's ``model`` (see :mod:`ferbench.cards`) is resolved by :func:`model_factory`:

- a registered name (``emotionnet_nano_b``), built-in or registered by a plug-in package;
- ``timm/<architecture>`` (``timm/resnet18``): ``timm.create_model(architecture,
  pretrained=False, num_classes=K, in_chans=C, **kwargs)``;
- a factory string ``package.module:callable`` or ``path/to/file.py:callable`` (written as
  ``factory:`` in a card), called like a registered factory.

Plug-in packages declare an entry point in the group ``ferbench.models`` whose value names a
callable taking no arguments; ferbench calls it once, the first time it looks a model up, and
it registers its models with :func:`ferbench.models.register_model`. The entry point's name is
only a label for error messages.

:func:`build_model` builds a card's model and checks the model contract (registry docstring):
a ``torch.nn.Module`` mapping a ``2 x C x H x W`` probe batch to ``2 x K`` logits, or a
classical estimator with ``fit`` and ``predict_proba``. Every failure raises
:class:`PluginError` naming the card file and the factory.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from functools import partial
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ferbench.cards import Adam, HFlip, InputSpec, ModelCard, Recipe
from ferbench.errors import FerbenchError, did_you_mean
from ferbench.models.registry import create_model

ENTRY_POINT_GROUP = "ferbench.models"
TIMM_PREFIX = "timm/"
TIMM_SIDE = 64
"""Default input side (pixels) of a card made for ``timm/<architecture>``."""

ModelFactory = Callable[..., Any]
"""``fn(num_classes, in_chans, input_size=(H, W), **kwargs)`` -> model."""


class PluginError(FerbenchError):
    """A model from outside ferbench cannot be loaded, or breaks the model contract."""


# ----------------------------------------------------------------------------- entry points

_scanned = False


def load_plugins() -> None:
    """Call the register function of every installed ``ferbench.models`` entry point, once per process.

    Called by the registry before any lookup (``ferbench.models.registry._import_builtin_models``).
    """
    global _scanned
    if _scanned:
        return
    _scanned = True  # before calling plug-ins: a register function may itself look models up
    for point in entry_points(group=ENTRY_POINT_GROUP):
        _call_entry_point(point)


def _call_entry_point(point: EntryPoint) -> None:
    origin = f"plug-in entry point `{point.name} = {point.value}` (group {ENTRY_POINT_GROUP})"
    if point.dist is not None:
        origin += f" of {point.dist.name} {point.dist.version}"
    try:
        register = point.load()
    except Exception as err:  # an entry point can fail to import in any way
        raise PluginError(f"{origin} cannot be loaded: {type(err).__name__}: {err}") from err
    if not callable(register):
        raise PluginError(f"{origin} names a {type(register).__name__}; it must name a function "
                          "taking no arguments that calls ferbench.models.register_model")
    try:
        register()
    except Exception as err:
        raise PluginError(f"{origin} failed while registering its models: {type(err).__name__}: {err}") from err


# ----------------------------------------------------------------------------- factory strings


def is_factory(model: str) -> bool:
    """True for a factory string (``module:callable`` or ``file.py:callable``), not a model name."""
    return ":" in model


def load_factory(spec: str, card_file: Path | None = None) -> ModelFactory:
    """The callable a factory string names (``card_file``, if any, is named in errors).

    A relative ``.py`` path is relative to the working directory; :func:`ferbench.cards.load_card`
    has already made a card's path absolute (relative to the card file).

    Raises:
        PluginError: malformed string, missing module or file, missing or non-callable attribute.
    """
    where = f"{card_file}: " if card_file else ""
    target, _, attribute = spec.rpartition(":")
    if not target or not attribute.isidentifier():
        raise PluginError(f"{where}factory `{spec}`: expected `package.module:callable` or `path/to/file.py:callable`")
    if target.endswith(".py"):
        module = _import_file(Path(target).expanduser().resolve(), f"{where}factory `{spec}`")
    else:
        try:
            module = importlib.import_module(target)
        except Exception as err:
            raise PluginError(f"{where}factory `{spec}`: cannot import module `{target}` "
                              f"({type(err).__name__}: {err})") from err
    factory = getattr(module, attribute, None)
    if factory is None:
        public = [name for name in vars(module) if not name.startswith("_")]
        raise PluginError(f"{where}factory `{spec}`: module `{module.__name__}` has no attribute "
                          f"`{attribute}`{did_you_mean(attribute, public)}")
    if not callable(factory):
        raise PluginError(f"{where}factory `{spec}`: `{attribute}` is a {type(factory).__name__}, not a callable")
    return factory


def _import_file(path: Path, what: str) -> Any:
    """Import a Python file as a module named after its path (imported once per process)."""
    if not path.is_file():
        raise PluginError(f"{what}: file {path} not found")
    stem, digest = re.sub(r"\W", "_", path.stem), hashlib.sha1(str(path).encode()).hexdigest()[:8]
    name = f"ferbench_factory_{stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before executing: dataclasses and pickle look the module up
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise PluginError(f"{what}: importing {path} failed ({type(err).__name__}: {err})") from err
    return module


# ----------------------------------------------------------------------------- timm


def timm_architecture(model: str) -> str:
    """``timm/resnet18`` -> ``resnet18``, checked against timm's list (with a suggestion)."""
    import timm

    architecture = model.removeprefix(TIMM_PREFIX)
    if not timm.is_model(architecture):
        suggestion = did_you_mean(architecture, timm.list_models())
        raise PluginError(f"unknown timm architecture `{architecture}`{suggestion}; "
                          "`python -c 'import timm; print(timm.list_models())'` lists them")
    return architecture


def timm_card(spec: str) -> ModelCard:
    """The default card of ``timm/<architecture>[@<side>]``: 3 x side x side input (side 64 unless
    given), ``unit`` scaling, 30 epochs of Adam (lr 1e-3, batch 32) with cross-entropy and
    horizontal flips. Named ``timm-<architecture>[-<side>]`` (lowercase, other characters ``_``)."""
    model, _, side_text = spec.partition("@")
    if side_text and not (side_text.isdigit() and int(side_text) > 0):
        raise PluginError(f"`{spec}`: expected timm/<architecture> or timm/<architecture>@<side in pixels>, "
                          "e.g. timm/resnet18@112")
    architecture = timm_architecture(model)
    side = int(side_text or TIMM_SIDE)
    name = re.sub(r"[^a-z0-9_\-]", "_", f"timm-{architecture}{'-' + side_text if side_text else ''}".lower())
    recipe = Recipe(epochs=30, batch_size=32, optimizer=Adam(name="adam", lr=1e-3), augment=(HFlip(name="hflip"),))
    return ModelCard(name=name, model=f"{TIMM_PREFIX}{architecture}",
                     input=InputSpec(channels=3, size=(side, side), normalise="unit"), recipe=recipe,
                     notes="default card for a timm architecture, made on the fly (ferbench.plugins.timm_card)")


def _timm_factory(architecture: str, num_classes: int, in_chans: int, input_size: tuple[int, int],
                  **kwargs: Any) -> nn.Module:
    import timm

    # input_size is not passed: most timm architectures adapt to any size; fixed-size ones
    # (ViT) take ``img_size`` from the card's kwargs.
    return timm.create_model(architecture, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


# ----------------------------------------------------------------------------- building


def model_factory(model: str, card_file: Path | None = None) -> ModelFactory:
    """The factory of a card's ``model``: a factory string, ``timm/<architecture>`` or a registered name."""
    if is_factory(model):
        return load_factory(model, card_file)
    if model.startswith(TIMM_PREFIX):
        return partial(_timm_factory, timm_architecture(model))
    return partial(create_model, model)


def build_model(card: ModelCard, num_classes: int) -> Any:
    """The card's untrained model for ``num_classes`` classes (a registered model, ``timm/<architecture>``
    or a factory string: :func:`model_factory`), checked against the model contract."""
    build = model_factory(card.model, card.source_file)
    model = build(num_classes=num_classes, in_chans=card.input.channels, input_size=tuple(card.input.size),
                  **card.kwargs)
    check_model(model, card, num_classes)
    return model


def check_model(model: Any, card: ModelCard, num_classes: int) -> None:
    """Raise :class:`PluginError` unless ``model`` keeps the contract: a module whose eval-mode
    forward maps a zero ``2 x C x H x W`` batch (the card's input) to ``2 x num_classes``, or an
    object with ``fit`` and ``predict_proba``. The module's mode and RNG state are left unchanged."""
    what = f"{card.source_file or 'card ' + card.name}: model `{card.model}`"
    if not isinstance(model, nn.Module):
        if callable(getattr(model, "fit", None)) and callable(getattr(model, "predict_proba", None)):
            return
        raise PluginError(f"{what} built a {type(model).__name__}: expected a torch.nn.Module or an "
                          "object with fit() and predict_proba()")
    probe = torch.zeros(2, card.input.channels, *card.input.size)
    was_training = model.training
    try:
        with torch.no_grad():
            out = model.eval()(probe)
    except Exception as err:
        raise PluginError(f"{what} fails on a probe batch of shape {tuple(probe.shape)}: "
                          f"{type(err).__name__}: {err}") from err
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise PluginError(f"{what} maps a probe batch of shape {tuple(probe.shape)} to {got}; "
                          f"expected logits of shape (2, {num_classes}) (batch x classes)")
