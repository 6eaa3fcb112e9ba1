"""The dataset registry: loaders looked up by name, as timm looks up models."""

from __future__ import annotations

from collections.abc import Callable

from ferbench.data.base import DatasetLoader
from ferbench.errors import UnknownName

_DATASETS: dict[str, type[DatasetLoader]] = {}


def register_dataset(name: str) -> Callable[[type[DatasetLoader]], type[DatasetLoader]]:
    """Class decorator: register a :class:`DatasetLoader` subclass under ``name``."""

    def decorate(cls: type[DatasetLoader]) -> type[DatasetLoader]:
        if name in _DATASETS:
            raise ValueError(f"dataset `{name}` registered twice")
        cls.name = name
        _DATASETS[name] = cls
        return cls

    return decorate


def get_dataset(name: str) -> DatasetLoader:
    """Return a new loader for ``name``; raise :class:`UnknownName` with a suggestion."""
    _import_builtin_loaders()
    if name not in _DATASETS:
        raise UnknownName("dataset", name, _DATASETS)
    return _DATASETS[name]()


def dataset_names() -> list[str]:
    """Registered dataset names, sorted."""
    _import_builtin_loaders()
    return sorted(_DATASETS)


def _import_builtin_loaders() -> None:
    import ferbench.data.loaders  # noqa: F401  (registers the built-in loaders)
