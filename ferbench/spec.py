"""The spec layer shared by protocols (:mod:`ferbench.protocol`) and model cards (:mod:`ferbench.cards`).

- **Reading**: :func:`read_yaml` parses one YAML file into a mapping and the (file, 1-based line)
  of every key path in it, refusing duplicate keys; :func:`read_with_includes` merges a file
  over its ``include:`` parents (:func:`deep_merge`).
- **Schema**: :class:`StrictSpec` (unknown keys refused, frozen) is the base of every spec model;
  :class:`NamedSpec` is a member of a ``name``-tagged choice (``{name: adam, lr: 0.001}``), and
  :class:`NameChoice` makes such a choice from a registry (:mod:`ferbench.registry`), so that
  what a plug-in registers can be named in a card.
- **Errors**: :class:`Locator` turns a key path into a :class:`~ferbench.errors.SpecError`
  (``ProtocolError`` or ``CardError``) reading ``file:line: key: problem``; :func:`translate`
  does so for a pydantic ``ValidationError``, with a suggestion when a valid key or value is close.
"""

from __future__ import annotations

import copy
import os
import types
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, GetCoreSchemaHandler, StrictInt, ValidationError,
                      model_validator)
from pydantic.fields import FieldInfo
from pydantic_core import CoreSchema, core_schema

from ferbench.errors import SpecError, did_you_mean
from ferbench.registry import Registry

KeyPath = tuple[Union[str, int], ...]
"""A key path in a spec mapping, e.g. ``("cross_dataset", "train", 0, "dataset")``."""

Marks = dict[KeyPath, tuple[Path, int]]
"""Key path -> (file, 1-based line) that wrote it."""


# ----------------------------------------------------------------------------- schema

PositiveInt = Annotated[StrictInt, Field(ge=1)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
Size = tuple[PositiveInt, PositiveInt]
"""[H, W] in pixels."""


def _square(value: Any) -> Any:
    """``224`` -> ``[224, 224]``: a side given once means a square."""
    return [value, value] if isinstance(value, int) and not isinstance(value, bool) else value


SizeOrSide = Annotated[Size, BeforeValidator(_square)]
"""[H, W], or one side for a square."""


class StrictSpec(BaseModel):
    """Base of every spec model: unknown keys are errors, instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NamedSpec(StrictSpec):
    """A member of a ``name``-tagged choice (optimizer, schedule, objective, augmentation).

    Subclasses declare ``name: Literal["<their name>"]`` and their other keys."""

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        # pydantic's own extra-key error names neither the member nor its keys, so no suggestion.
        if isinstance(data, dict) and cls.model_config.get("extra") == "forbid":
            known = [field.alias or key for key, field in cls.model_fields.items()]
            for key in data:
                if key not in known:
                    raise ValueError(f"unknown key `{key}` for `{data.get('name')}`{did_you_mean(key, known)}; "
                                     f"allowed: {', '.join(known)}")
        return data


class OpenSpec(NamedSpec):
    """The spec of an entry a plug-in registered without one: any other keys are kept, as attributes."""

    model_config = ConfigDict(extra="allow")
    name: str


def spec_name(spec: type[NamedSpec]) -> str:
    """The name a :class:`NamedSpec` subclass answers to (its ``name`` literal)."""
    return get_args(spec.model_fields["name"].annotation)[0]


def entry_spec(name: str, spec: type[NamedSpec] | None) -> type[NamedSpec]:
    """The card spec to register with ``name``: ``spec``, whose ``name`` literal must be ``name``,
    or :class:`OpenSpec` when there is none."""
    if spec is None:
        return OpenSpec
    if spec_name(spec) != name:
        raise ValueError(f"spec {spec.__name__} answers to `{spec_name(spec)}`, not `{name}`")
    return spec


class NameChoice:
    """Annotation marker of a ``name``-tagged choice: ``Annotated[NamedSpec, NameChoice.registered(OBJECTIVES)]``.

    The mapping is validated by the spec of the member its ``name`` selects. The members are
    looked up at validation time, so a registry's choice includes what plug-ins registered."""

    def __init__(self, kind: str, members: Callable[[], dict[str, type[BaseModel]]]):
        self.kind, self.members = kind, members  # members(): name -> spec

    @classmethod
    def closed(cls, kind: str, *specs: type[NamedSpec]) -> NameChoice:
        """A choice among fixed ``specs`` (optimizers, schedules), in their order."""
        return cls(kind, lambda: {spec_name(spec): spec for spec in specs})

    @classmethod
    def registered(cls, registry: Registry[Any]) -> NameChoice:
        """A choice among the entries of ``registry`` and their specs."""
        return cls(registry.kind, lambda: {name: registry.spec(name) for name in registry.names()})

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(self.validate)

    def member(self, value: Any) -> type[BaseModel] | None:
        """The spec that ``value``'s ``name`` selects; ``None`` when it names no member."""
        name = value.get("name") if isinstance(value, dict) else getattr(value, "name", None)
        return self.members().get(name) if isinstance(name, str) else None

    def validate(self, value: Any) -> BaseModel:
        """``value`` as the spec its ``name`` selects (a spec instance of that member is kept)."""
        members = self.members()
        if isinstance(value, BaseModel) and type(value) is self.member(value):
            return value  # built in code
        names = ", ".join(members)
        if not isinstance(value, dict):
            raise ValueError(f"expected a mapping `{{name: ..., ...}}` naming one of {names}, got `{value}`")
        name = value.get("name")
        if name is None:
            raise ValueError(f"required key `name` is missing; choose one of {names}")
        if not isinstance(name, str) or name not in members:
            raise ValueError(f"unknown {self.kind} `{name}`{did_you_mean(name, members)}; choose one of {names}")
        return members[name].model_validate(value)


# ----------------------------------------------------------------------------- reading


def read_yaml(file: Path, error: type[SpecError]) -> tuple[dict[str, Any], Marks]:
    """Parse one YAML file into a mapping plus the (file, line) of every key path in it.

    Raises:
        error: an unreadable file, invalid YAML, a duplicate key, or a document that is no mapping.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as err:
        raise error(file, f"cannot read the file: {err}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        raise error(file, f"invalid YAML: {problem}", line=mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise error(file, f"a {error.kind} file must be a YAML mapping (`key: value` lines)")
    marks: Marks = {}
    _record_marks(node, (), file, marks, error)
    return data, marks


def _record_marks(node: yaml.Node, path: KeyPath, file: Path, marks: Marks, error: type[SpecError]) -> None:
    """Store the line of every mapping key and list item under ``node``; refuse duplicate keys."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, key_node.value)
            if child in marks:
                raise error(file, f"duplicate key `{key_node.value}`", dotted(child), key_node.start_mark.line + 1)
            marks[child] = (file, key_node.start_mark.line + 1)
            _record_marks(value_node, child, file, marks, error)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            marks[(*path, i)] = (file, item.start_mark.line + 1)
            _record_marks(item, (*path, i), file, marks, error)


def read_with_includes(file: Path, error: type[SpecError], chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], Marks]:
    """Read ``file`` merged over its ``include:`` parents (recursively, left to right; paths
    relative to the including file); marks name the file that wrote each key."""
    data, marks = read_yaml(file, error)
    where = Locator(file, marks, error)
    includes = data.pop("include", None) or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(name, str) for name in includes):
        raise where.error(("include",), "`include` must be a list of file paths")
    chain = (*chain, file)
    merged: dict[str, Any] = {}
    merged_marks: Marks = {}
    for i, name in enumerate(includes):
        parent = (file.parent / name).resolve()
        if parent in chain:
            names = " -> ".join(os.path.relpath(p, chain[0].parent) for p in (*chain, parent))
            raise where.error(("include", i), f"include cycle: {names}")
        if not parent.is_file():
            raise where.error(("include", i), f"included file not found: {parent}")
        parent_data, parent_marks = read_with_includes(parent, error, chain)
        merged = deep_merge(merged, parent_data)
        merged_marks.update(parent_marks)
    return deep_merge(merged, data), {**merged_marks, **marks}


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key, anything else (lists too) is replaced.

    A mapping that changes its ``type`` (``split: {type: random_kfold}`` over a subject_kfold
    split) replaces the old one: options of the old type do not carry over.
    """
    out = copy.deepcopy(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict) and value.get("type", old.get("type")) == old.get("type"):
            out[key] = deep_merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# ----------------------------------------------------------------------------- locating


def dotted(path: KeyPath) -> str:
    """``("cross_dataset", "train", 0, "dataset")`` -> ``cross_dataset.train[0].dataset``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


class Locator:
    """Which file and 1-based line wrote each key path of a (merged) spec; makes located errors."""

    def __init__(self, file: Path, marks: Marks, error: type[SpecError]):
        self.file, self.marks, self.error_class = file, marks, error

    def find(self, path: KeyPath) -> tuple[Path, int | None]:
        """File and line of ``path``, or of its nearest written ancestor (for a missing key)."""
        for n in range(len(path), 0, -1):
            if path[:n] in self.marks:
                return self.marks[path[:n]]
        return self.file, None

    def error(self, path: KeyPath, problem: str) -> SpecError:
        """The error for ``problem`` at ``path``, naming the file and line that wrote it."""
        file, line = self.find(path)
        return self.error_class(file, problem, key=dotted(path), line=line)


# ----------------------------------------------------------------------------- pydantic errors


def translate(err: ValidationError, model: type[BaseModel], prefix: KeyPath, where: Locator, data: Any) -> SpecError:
    """The first error of ``err`` (raised validating ``data`` as ``model`` at ``prefix``) as a
    located error.

    Unknown keys come first: a misspelt required key (``clases:``) then reads as a typo, with a
    suggestion, rather than as a missing key."""
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
    path, holder, leaf = _key_path(errors[0]["loc"], model, data)
    path, problem = _describe(errors[0], path, holder, leaf)
    if len(errors) > 1:
        problem += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return where.error((*prefix, *path), problem)


def _key_path(loc: tuple[Any, ...], model: type[BaseModel], data: Any) -> tuple[KeyPath, type[BaseModel] | None, Any]:
    """Follow a pydantic error location through the schema (and the data, for a :class:`NameChoice`).

    Returns the key path (pydantic adds a tagged union's tag to the location; it is not a key),
    the model holding the last key, and the type expected at the location.
    """
    path: list[str | int] = []
    holder: type[BaseModel] | None = None
    tp: Any = model
    for part in loc:
        tp = _strip(tp, data)
        members = _union_members(tp)
        if members:
            tp = next((m for m in members if part in _tags(m)), None)
            continue
        path.append(part)
        data = _child(data, part)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            holder = tp
            tp = _field_type(tp.model_fields.get(part))
        else:
            holder, args = None, get_args(tp)
            tp = args[-1] if get_origin(tp) is dict else (args[0] if args else None)
    return tuple(path), holder, _strip(tp, data)


def _field_type(field: FieldInfo | None) -> Any:
    """A field's annotation with its ``Annotated`` metadata, which pydantic keeps apart."""
    if field is None:
        return None
    return Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation


def _child(data: Any, part: str | int) -> Any:
    """``data[part]`` where it exists, else ``None``."""
    if isinstance(data, dict):
        return data.get(part)
    if isinstance(data, (list, tuple)) and isinstance(part, int) and 0 <= part < len(data):
        return data[part]
    return None


def _strip(tp: Any, data: Any) -> Any:
    """``X`` from ``Annotated[X, ...]`` and from ``X | None``; the selected spec of a :class:`NameChoice`."""
    while True:
        if get_origin(tp) is Annotated:
            choice = next((m for m in tp.__metadata__ if isinstance(m, NameChoice)), None)
            if choice is not None:
                return choice.member(data)
            tp = get_args(tp)[0]
            continue
        members = [a for a in _union_members(tp) if a is not type(None)]
        if len(members) == 1:
            tp = members[0]
            continue
        return tp


def _union_members(tp: Any) -> tuple[Any, ...]:
    return get_args(tp) if get_origin(tp) in (Union, types.UnionType) else ()


def _tags(member: Any) -> tuple[Any, ...]:
    """The ``type`` values a tagged-union member accepts (the only discriminator in the schema)."""
    if isinstance(member, type) and issubclass(member, BaseModel) and "type" in member.model_fields:
        return get_args(member.model_fields["type"].annotation)
    return ()


def _describe(error: dict[str, Any], path: KeyPath, holder: type[BaseModel] | None, leaf: Any) -> tuple[KeyPath, str]:
    """A readable problem for one pydantic error, and the key path to report it at."""
    kind, value = error["type"], error.get("input")
    key = path[-1] if path else ""
    if kind == "extra_forbidden":
        return path, f"unknown key `{key}`{did_you_mean(key, holder.model_fields if holder else ())}"
    if kind == "missing":
        return path, f"required key `{key}` is missing"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = [tag for member in _union_members(leaf) for tag in _tags(member)]
        if kind == "union_tag_not_found":
            return (*path, "type"), f"required key `type` is missing; choose one of {', '.join(tags)}"
        tag = error["ctx"]["tag"]
        return (*path, "type"), f"`{tag}` is not a valid {key} type{did_you_mean(tag, tags)}; choose one of {', '.join(tags)}"
    if kind == "literal_error":
        choices = [str(c) for c in get_args(leaf)]
        return path, f"`{value}` is not a valid value{did_you_mean(value, choices)}; choose one of {', '.join(choices)}"
    if kind == "value_error":
        return path, str(error["ctx"]["error"])
    if kind in ("int_type", "float_type") and isinstance(value, bool):
        return path, f"expected {'an integer' if kind == 'int_type' else 'a number'}, got `{str(value).lower()}`"
    got = f" (got `{value}`)" if isinstance(value, (str, int, float, bool)) else ""
    return path, f"{error['msg']}{got}"
