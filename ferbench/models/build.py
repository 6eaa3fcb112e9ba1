"""A card's untrained model, built by its factory and checked against the model contract.

:func:`build_model` resolves the card's ``model`` (:func:`ferbench.models.factories.model_factory`),
calls the factory with the card's input and ``kwargs``, and checks the model contract
(:mod:`ferbench.models.registry` docstring): a ``torch.nn.Module`` mapping a ``2 x C x H x W``
probe batch to ``2 x K`` logits, or a classical estimator with ``fit`` and ``predict_proba``.
Every failure raises :class:`~ferbench.errors.PluginError` naming the card file and the factory.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from ferbench.cards import ModelCard
from ferbench.errors import CardError, PluginError
from ferbench.models.factories import model_factory
from ferbench.spec import Locator, read_yaml


def build_model(card: ModelCard, num_classes: int) -> Any:
    """The card's untrained model for ``num_classes`` classes, checked against the model contract."""
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


def check_constructor(card: ModelCard, num_classes: int) -> None:
    """Build ``card``'s untrained model once on the CPU, so that a keyword in ``kwargs`` the model's
    constructor does not take fails before any work, naming the card file, line and keyword.

    Raises:
        CardError: the constructor rejects a keyword of ``kwargs``.
        PluginError: the model breaks the model contract (see :func:`check_model`).
    """
    try:
        build_model(card, num_classes)
    except TypeError as err:
        match = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        if match is None or match[1] not in card.kwargs:
            raise  # not a misspelt keyword: a bug, shown with its traceback
        problem = f"model `{card.model}` takes no keyword `{match[1]}`"
        if card.source_file is None:
            raise CardError(f"card `{card.name}`", problem, key=f"kwargs.{match[1]}") from None
        marks = read_yaml(card.source_file, CardError)[1]
        raise Locator(card.source_file, marks, CardError).error(("kwargs", match[1]), problem) from None
