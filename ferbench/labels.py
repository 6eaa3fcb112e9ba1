"""The canonical expression vocabulary and class-set handling.

Every dataset loader maps its own codes onto :data:`CANONICAL`; a protocol picks an ordered
subset of it (its *class set*), and a sample's class index is its label's position there.
"""

from __future__ import annotations

from collections.abc import Sequence

from ferbench.errors import UnknownName

CANONICAL: tuple[str, ...] = (
    "neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise",
)


def check_label(name: str) -> str:
    """Return ``name`` if it is canonical, else raise :class:`UnknownName` with a suggestion."""
    if name not in CANONICAL:
        raise UnknownName("class", name, CANONICAL)
    return name


def check_class_set(classes: Sequence[str]) -> tuple[str, ...]:
    """Validate an ordered class set: canonical names, no repeats, at least two."""
    for name in classes:
        check_label(name)
    if len(set(classes)) != len(classes):
        repeated = sorted({c for c in classes if list(classes).count(c) > 1})
        raise ValueError(f"class set repeats {repeated}")
    if len(classes) < 2:
        raise ValueError("a class set needs at least two classes")
    return tuple(classes)
