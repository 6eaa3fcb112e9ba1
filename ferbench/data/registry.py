"""The dataset registry: loaders looked up by name, as timm looks up models."""

from __future__ import annotations

from collections.abc import Callable

from ferbench.data.base import DatasetLoader
from ferbench.registry import DATASETS


def register_dataset(name: str) -> Callable[[type[DatasetLoader]], type[DatasetLoader]]:
    """Class decorator: register a :class:`DatasetLoader` subclass under ``name`` (sets ``cls.name``)."""

    def decorate(cls: type[DatasetLoader]) -> type[DatasetLoader]:
        cls.name = name
        return DATASETS.register(name)(cls)

    return decorate


def get_dataset(name: str) -> DatasetLoader:
    """Return a new loader for ``name``; raise :class:`UnknownName` with a suggestion."""
    return DATASETS.get(name)()


def dataset_names() -> list[str]:
    """Registered dataset names, sorted."""
    return DATASETS.names()
