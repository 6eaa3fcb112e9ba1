"""Exceptions ferbench raises for bad input, each naming the file or key at fault."""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Iterable
from pathlib import Path


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean `x`?)' for the closest choice, or '' when nothing is close."""
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean `{match[0]}`?)" if match else ""


class FerbenchError(Exception):
    """Base class of every error ferbench raises on purpose (the CLI prints these without a traceback)."""


class DatasetNotFound(FerbenchError):
    """The dataset root does not hold the expected layout."""

    def __init__(self, dataset: str, tried: Path | str, expected: str):
        self.dataset, self.tried = dataset, Path(tried)
        super().__init__(
            f"dataset `{dataset}` not found at {tried}: expected {expected}. "
            f"Point ferbench at your copy with `--root {dataset}=/path/to/{dataset}` "
            f"(or `dataset.root` in the protocol), or use `--synthetic` for the synthetic twin."
        )


class DataError(FerbenchError):
    """A file of a dataset is unreadable or holds something unexpected (corrupt image, unknown code)."""

    def __init__(self, path: Path | str, problem: str):
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path}: {problem}")


class UnknownName(FerbenchError):
    """A name (dataset, class, model, split type, ...) that is not registered."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]):
        choices = sorted(choices)
        self.kind, self.name = kind, name
        super().__init__(
            f"unknown {kind} `{name}`{did_you_mean(name, choices)}; known: {', '.join(choices)}"
        )


class OptionError(FerbenchError):
    """A command-line option has a value ferbench cannot use; the message names the option."""

    def __init__(self, option: str, value: object, problem: str):
        self.option, self.value, self.problem = option, value, problem
        super().__init__(f"{option} {shlex.quote(str(value))}: {problem}")


class SpecError(FerbenchError):
    """A spec file (protocol or model card) is invalid; the message reads ``file:line: key: problem``."""

    kind = "spec"
    """What kind of file this is about; ``<kind>`` stands for the file of a spec built in code."""

    def __init__(self, file: Path | str | None, problem: str, key: str = "", line: int | None = None):
        self.file, self.key, self.line, self.problem = file, key, line, problem
        where = str(file) if file else f"<{self.kind}>"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {key + ': ' if key else ''}{problem}")


class ProtocolError(SpecError):
    """A protocol file is invalid; the message names the file, line and key path."""

    kind = "protocol"


class CardError(SpecError):
    """A model card is invalid; the message names the card file, line and key path."""

    kind = "model card"


class PluginError(FerbenchError):
    """A model or other entry from outside ferbench cannot be loaded, or breaks its contract."""


class SplitError(FerbenchError):
    """A split cannot be made as asked (too few subjects, an empty test fold, leakage)."""
