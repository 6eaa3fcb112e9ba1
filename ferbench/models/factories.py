"""Model factories by name: registered models, factory strings and timm architectures.

A card's ``model`` (see :mod:`ferbench.cards`) is resolved by :func:`model_factory`:

- a registered name (``emotionnet_nano_b``), built-in or registered by a plug-in package;
- ``timm/<architecture>`` (``timm/resnet18``): ``timm.create_model(architecture,
  pretrained=False, num_classes=K, in_chans=C, **kwargs)``;
- a factory string ``package.module:callable`` or ``path/to/file.py:callable`` (written as
  ``factory:`` in a card), called like a registered factory.

Every failure raises :class:`~ferbench.errors.PluginError` naming the card file (when given) and
the factory. Building a card's model and checking the model contract: :mod:`ferbench.models.build`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from torch import nn

from ferbench.errors import PluginError, did_you_mean
from ferbench.models.registry import create_model

TIMM_PREFIX = "timm/"

ModelFactory = Callable[..., Any]
"""``fn(num_classes, in_chans, input_size=(H, W), **kwargs)`` -> model."""


def model_factory(model: str, card_file: Path | None = None) -> ModelFactory:
    """The factory of a card's ``model``: a factory string, ``timm/<architecture>`` or a registered name."""
    if is_factory(model):
        return load_factory(model, card_file)
    if model.startswith(TIMM_PREFIX):
        return partial(_timm_factory, timm_architecture(model))
    return partial(create_model, model)


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


def _timm_factory(architecture: str, num_classes: int, in_chans: int, input_size: tuple[int, int],
                  **kwargs: Any) -> nn.Module:
    import timm

    # input_size is not passed: most timm architectures adapt to any size; fixed-size ones
    # (ViT) take ``img_size`` from the card's kwargs.
    return timm.create_model(architecture, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)
