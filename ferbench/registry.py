"""A named registry of classes, shared by datasets, objectives and augmentations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from ferbench.errors import UnknownName

T = TypeVar("T")


class Registry(Generic[T]):
    """Classes looked up by name; ``kind`` names them in errors ("dataset", "objective")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator registering the class under ``name`` (twice is an error)."""

        def decorate(cls: type[T]) -> type[T]:
            if name in self._items:
                raise ValueError(f"{self.kind} `{name}` registered twice")
            self._items[name] = cls
            return cls

        return decorate

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``; :class:`UnknownName` with a suggestion otherwise."""
        if name not in self._items:
            raise UnknownName(self.kind, name, self._items)
        return self._items[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)
