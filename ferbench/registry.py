"""Named registries: datasets, models, objectives and augmentations, looked up as timm looks up models.

Every registry knows the module whose import registers ferbench's own entries (``builtins``,
named as a string: that module imports the registry) and imports it before the first entry is
added or looked up, so a plug-in cannot take a built-in name. A lookup also runs plug-in
discovery (:func:`ferbench.plugins.load_plugins`, once per process). An entry may carry its
card spec (a pydantic model: objectives and augmentations), which
:class:`ferbench.spec.NameChoice` validates a card's ``{name: ..., ...}`` mapping with.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ferbench.errors import UnknownName
from ferbench.plugins import load_plugins

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered thing and its card spec (``None`` for registries without specs)."""

    item: T
    spec: type[Any] | None


class Registry(Generic[T]):
    """Things of one ``kind`` ("dataset", "objective") by name; errors suggest a close name."""

    def __init__(self, kind: str, builtins: str):
        self.kind, self.builtins = kind, builtins
        self._items: dict[str, Entry[T]] = {}

    def add(self, name: str, item: T, spec: type[Any] | None = None) -> None:
        """Register ``item`` (with its card ``spec``, if any) under ``name``; twice is an error."""
        importlib.import_module(self.builtins)  # returns at once while the built-ins register themselves
        if name in self._items:
            raise ValueError(f"{self.kind} `{name}` registered twice")
        self._items[name] = Entry(item, spec)

    def register(self, name: str, spec: type[Any] | None = None) -> Callable[[T], T]:
        """Decorator form of :meth:`add`; returns the decorated class or function unchanged."""

        def decorate(item: T) -> T:
            self.add(name, item, spec)
            return item

        return decorate

    def get(self, name: str) -> T:
        """The thing registered as ``name``; :class:`UnknownName` with a suggestion otherwise."""
        return self._entry(name).item

    def spec(self, name: str) -> type[Any] | None:
        """The card spec registered with ``name``; :class:`UnknownName` with a suggestion otherwise."""
        return self._entry(name).spec

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._load()
        return sorted(self._items)

    def _entry(self, name: str) -> Entry[T]:
        self._load()
        if name not in self._items:
            raise UnknownName(self.kind, name, self._items)
        return self._items[name]

    def _load(self) -> None:
        importlib.import_module(self.builtins)
        load_plugins()


# The registries of ferbench. Entries are typed ``Any``: the registered classes live in modules above this one.
DATASETS: Registry[Any] = Registry("dataset", builtins="ferbench.data.loaders")
"""Dataset loader classes (:func:`ferbench.data.register_dataset`)."""

MODELS: Registry[Any] = Registry("model", builtins="ferbench.models")
"""Model factories and their :class:`~ferbench.models.registry.ModelInfo` (:func:`ferbench.models.register_model`)."""

OBJECTIVES: Registry[Any] = Registry("objective", builtins="ferbench.training.objectives")
"""Objective classes and their card specs (:func:`ferbench.training.register_objective`)."""

AUGMENTATIONS: Registry[Any] = Registry("augmentation", builtins="ferbench.training.augment")
"""Augmentation classes and their card specs (:func:`ferbench.training.register_augmentation`)."""
