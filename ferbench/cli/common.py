"""What every ``ferbench`` command shares: the typer app, its error handling and option parsing.

A user's mistake ends a command with one line, ``error: ...``, and exit status 2: every
:class:`~ferbench.errors.FerbenchError` (bad options included, as
:class:`~ferbench.errors.OptionError`) and the OS errors a user can fix (disk full, read-only or
forbidden path, a file where a folder belongs) are caught in one place, :class:`Commands`. Any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from ferbench.errors import FerbenchError, OptionError, UnknownName, did_you_mean

if TYPE_CHECKING:
    from ferbench.protocol import Protocol
    from ferbench.splits import Fold

OS_PROBLEMS = {
    errno.ENOSPC: "disk full while writing {path}; finished jobs are kept, free some space and rerun to continue",
    errno.EROFS: "{path}: read-only file system",
    errno.EACCES: "{path}: permission denied",
    errno.EPERM: "{path}: operation not permitted",
    errno.ENOTDIR: "{path}: a folder on this path is a file",
    errno.EEXIST: "{path}: exists and is a file, not a folder",
    errno.EISDIR: "{path}: is a folder, not a file",
}
"""OS errors a user can fix, by errno, as the one line the CLI prints; other OS errors are bugs."""


def fail(error: Exception | str) -> None:
    """Print a ferbench error without a traceback and exit with status 2."""
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


class Commands(TyperGroup):
    """The command group: runs a command, turning a user's mistake into one line (module docstring)."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FerbenchError as err:
            fail(err)
        except OSError as err:
            if err.errno not in OS_PROBLEMS:
                raise
            fail(OS_PROBLEMS[err.errno].format(path=err.filename or "a file"))


app = typer.Typer(cls=Commands, add_completion=False, no_args_is_help=True,
                  help="ferbench: reproducible, leakage-checked benchmarks for facial expression recognition.")

RootOption = Annotated[Optional[list[str]], typer.Option("--root", help="Dataset root override NAME=PATH (repeatable).")]
SyntheticOption = Annotated[bool, typer.Option("--synthetic", help="Use the synthetic twin of every dataset.")]


def parse_roots(values: list[str] | None) -> dict[str, str]:
    """Turn ``["ckplus=/data/ck"]`` into ``{"ckplus": "/data/ck"}``."""
    roots: dict[str, str] = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise typer.BadParameter(f"`{value}`: expected NAME=PATH, e.g. ckplus=/data/CK+", param_hint="--root")
        roots[name] = path
    return roots


def load_protocols(files: list[Path], root: list[str] | None, synthetic: bool) -> list[Protocol]:
    """Load every protocol file with the ``--root`` overrides; a ``--root`` naming a dataset that
    none of them reads is an error (a misspelt name would otherwise be ignored)."""
    from ferbench.data.registry import dataset_names
    from ferbench.protocol import load_protocol

    roots = parse_roots(root)
    for name, path in roots.items():
        if name not in dataset_names():
            raise OptionError("--root", f"{name}={path}", str(UnknownName("dataset", name, dataset_names())))
    protocols = [load_protocol(file, roots=roots, synthetic=synthetic) for file in files]
    used = sorted({side.dataset.name for protocol in protocols for side in protocol.sides()})
    for name, path in roots.items():
        if name not in used:
            ids = ", ".join(f"`{protocol.id}`" for protocol in protocols)
            what = f"protocol {ids} reads" if len(protocols) == 1 else f"protocols {ids} read"
            raise OptionError("--root", f"{name}={path}", f"{what} no dataset `{name}`{did_you_mean(name, used)}; "
                                                           f"datasets read: {', '.join(used)}")
    return protocols


def parse_indices(text: str, option: str) -> list[int]:
    """``"0,3"`` -> ``[0, 3]``: non-negative integers, each given once (``--seeds``, ``--folds``)."""
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise OptionError(option, text, "expected comma-separated integers, e.g. 0,1,2") from None
    if not values:
        raise OptionError(option, text, "names no index; expected comma-separated integers, e.g. 0,1,2")
    if min(values) < 0:
        raise OptionError(option, text, f"{min(values)} is negative; indices count from 0")
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise OptionError(option, text, f"{repeated[0]} is given twice; give each once")
    return values


def parse_cards(text: str | None) -> list[str] | None:
    """The card names or paths of ``--models`` (None when not given; naming none is an error)."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise OptionError("--models", text, "names no model card; give card names or YAML paths, comma-separated")
    return names


def check_device(device: str) -> str:
    """``device`` when it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; OptionError otherwise."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise OptionError("--device", device, f"unknown device{did_you_mean(device, ['auto', 'cpu', 'cuda'])}; "
                                              "choose auto, cpu, cuda or cuda:N")
    return device


def writable_folder(path: Path, option: str) -> Path:
    """``path`` when it is, or can become, a folder this process may write into; OptionError otherwise."""
    absolute = path.absolute()
    existing = next(p for p in (absolute, *absolute.parents) if p.exists())
    if not existing.is_dir():
        raise OptionError(option, path, f"{existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OptionError(option, path, f"cannot write into {existing} (read-only or permission denied)")
    return path


def check_folds(selected: list[int] | None, folds: list[Fold], protocol_id: str) -> None:
    """Refuse a ``--folds`` index that ``folds`` (a protocol's folds) lacks."""
    indices = [fold.index for fold in folds]
    missing = [k for k in selected or [] if k not in indices]
    if missing:
        has = f"folds {indices[0]}-{indices[-1]}" if len(indices) > 1 else f"only fold {indices[0]}"
        raise OptionError("--folds", ",".join(map(str, selected)),
                          f"protocol `{protocol_id}` has no fold {missing[0]}; it has {has}")


def parse_labels(text: str | None) -> tuple[str, ...] | None:
    """``--labels a,b,c`` -> ``("a", "b", "c")``; None when not given."""
    return tuple(t.strip() for t in text.split(",") if t.strip()) if text else None
