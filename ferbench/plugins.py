"""Plug-in discovery: the installed packages that add models, objectives or augmentations.

A plug-in package declares an entry point in the group ``ferbench.models`` whose value names a
callable taking no arguments; ferbench calls it once per process, the first time any registry
(:mod:`ferbench.registry`) is looked up, and it registers its entries with
:func:`ferbench.models.register_model`, :func:`ferbench.training.register_objective` or
:func:`ferbench.training.register_augmentation`. The entry point's name is only a label for
error messages. See ``docs/plugins.md``.

This module is a leaf: it imports nothing of ferbench but its errors, so that every registry can
call it.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from ferbench.errors import PluginError

ENTRY_POINT_GROUP = "ferbench.models"

_scanned = False


def load_plugins() -> None:
    """Call the register function of every installed ``ferbench.models`` entry point, once per process.

    Raises:
        PluginError: an entry point that cannot be loaded, names no function, or fails while registering.
    """
    global _scanned
    if _scanned:
        return
    _scanned = True  # before calling plug-ins: a register function may itself look entries up
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
