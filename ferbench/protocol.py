"""Protocol files: schema, includes, dataset roots, fingerprint, and errors that point at a key.

A protocol YAML pins down which images, labels, classes, frames, folds and preprocessing a
benchmark uses. :func:`load_protocol` turns one into a frozen :class:`Protocol` in four steps:

1. read the file and its ``include:`` parents (parents merged first, child keys win), keeping
   for every key path the file and line that wrote it;
2. resolve every ``dataset`` block: registry name, root (``--synthetic``, then ``--root``, then
   the file; ``${env:VAR}``, ``~``, relative to the working directory) and loader options
   (checked by the loader's ``options_model``, defaults filled in);
3. validate the structure with the pydantic models below;
4. check the rules that span several keys or need the registry (classes each side can produce,
   frame rules needing sequences, subject splits needing subjects).

Every problem raises :class:`~ferbench.errors.ProtocolError` with the file and 1-based line that
wrote the offending key (a parent file for an inherited key), its key path, and a suggestion
when a valid key or value is close. Numbers are strict (``StrictInt``, ``StrictFloat``): YAML
``true``/``false`` are refused where a number belongs, instead of counting as 1 and 0.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictFloat, StrictInt, ValidationError, field_validator

from ferbench.data.registry import get_dataset
from ferbench.errors import ProtocolError, UnknownName, did_you_mean
from ferbench.labels import check_class_set

KeyPath = tuple[Union[str, int], ...]
"""A key path in a protocol mapping, e.g. ``("cross_dataset", "train", 0, "dataset")``."""

SYNTHETIC = "synthetic"
"""The ``root`` value that selects a dataset's synthetic twin (``synthetic:<shape>`` picks a shape)."""

_ENV_VAR = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


# ----------------------------------------------------------------------------- schema


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Spec):
    """One dataset: registry name, root folder (absolute after loading, or ``synthetic``) and
    loader options (after loading: every option of the loader's ``options_model``)."""

    name: str
    root: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        return is_synthetic(self.root)

    def loader_options(self) -> BaseModel:
        """The options as an instance of the registered loader's ``options_model``."""
        return get_dataset(self.name).options_model.model_validate(self.options)


def is_synthetic(root: str | None) -> bool:
    """True for a root naming the synthetic twin: ``synthetic`` or ``synthetic:<shape>``."""
    return root is not None and (root == SYNTHETIC or root.startswith(SYNTHETIC + ":"))


class FramesSpec(_Spec):
    """Which frames of each sequence are used (``peak`` is a sequence's last frame).

    ``first_as_neutral`` adds each sequence's first frame as neutral: from labelled sequences
    only (``labelled``) or from all of them (``all``). ``intensities`` keeps samples whose
    ``attrs["intensity"]`` is listed.
    """

    select: Literal["all", "last_n", "middle_n", "peak"] = "all"
    n: StrictInt | None = Field(None, ge=1, validate_default=True)
    first_as_neutral: Literal["none", "labelled", "all"] = "none"
    intensities: tuple[StrictInt, ...] | None = None

    @field_validator("n")
    @classmethod
    def _n_matches_select(cls, n: int | None, info: Any) -> int | None:
        select = info.data.get("select")  # absent when `select` itself was invalid
        takes_n = select in ("last_n", "middle_n")
        if takes_n and n is None:
            raise ValueError(f"`n` is required when select is `{select}`")
        if select is not None and not takes_n and n is not None:
            raise ValueError(f"`n` is only allowed with select `last_n` or `middle_n`, not `{select}`")
        return n


class SubjectKFold(_Spec):
    """k folds of whole subjects: sorted subject i goes to fold i mod k (``ascending_round_robin``),
    the sorted subjects are cut into k contiguous blocks (``ascending_blocks``), or stratified groups."""

    type: Literal["subject_kfold"]
    k: StrictInt = Field(ge=2)
    assign: Literal["ascending_round_robin", "ascending_blocks", "stratified_group"] = "ascending_round_robin"
    seed: StrictInt = 0


class RandomKFold(_Spec):
    """k folds of images, ignoring subjects (not subject-independent)."""

    type: Literal["random_kfold"]
    k: StrictInt = Field(ge=2)
    seed: StrictInt = 0
    stratified: bool = True


class LosoSplit(_Spec):
    """Leave one subject out."""

    type: Literal["loso"]


class OfficialSplit(_Spec):
    """The dataset's own partition, by values of ``Sample.attrs["usage"]``."""

    type: Literal["official"]
    train: tuple[str, ...] = Field(min_length=1)
    validation: tuple[str, ...] = ()
    test: tuple[str, ...] = Field(min_length=1)


class FoldFileSplit(_Spec):
    """Test folds listed in a file, written relative to the protocol file that sets it
    (absolute after loading); ``by`` says whether it lists subjects or sample keys."""

    type: Literal["fold_file"]
    file: str
    by: Literal["subject", "sample"]


SplitSpec = Annotated[
    Union[SubjectKFold, RandomKFold, LosoSplit, OfficialSplit, FoldFileSplit],
    Field(discriminator="type"),
]


def needs_subjects(split: SplitSpec) -> bool:
    """True when ``split`` keeps every subject's images in one fold (subject-independent)."""
    return split.type in ("subject_kfold", "loso") or (split.type == "fold_file" and split.by == "subject")


class CrossSide(_Spec):
    """One side of a cross-dataset protocol: a dataset and its frame rule."""

    dataset: DatasetSpec
    frames: FramesSpec = FramesSpec()


class CrossDatasetSpec(_Spec):
    """Train on the source side(s), test on another dataset.

    ``fold_models``: every fold model of the source ``split`` is evaluated on the whole target
    and the results are averaged; ``all_source``: one model trained on all source data.
    """

    train: tuple[CrossSide, ...] = Field(min_length=1)
    test: CrossSide
    evaluate: Literal["fold_models", "all_source"]


class PreprocessSpec(_Spec):
    """Face detection and cropping, shared by every side of the protocol.

    ``face: auto`` uses the dataset's landmarks when it ships them, Haar otherwise, none for
    pre-cropped datasets. ``margin`` is the fraction of the face box added on each side,
    ``size`` the stored crop [H, W] in pixels, ``min_face`` the Haar minimum face side as a
    fraction of the image's short side.
    """

    face: Literal["auto", "haar", "landmarks", "none"] = "auto"
    margin: StrictFloat = Field(0.2, ge=0)
    grayscale: bool = True
    size: tuple[Annotated[StrictInt, Field(ge=1)], Annotated[StrictInt, Field(ge=1)]] = (128, 128)
    min_face: StrictFloat = Field(0.15, gt=0, le=1)
    on_no_face: Literal["center_crop", "fail", "skip"] = "center_crop"


class MetricsSpec(_Spec):
    """The metric that ranks models and the metrics reported."""

    primary: Literal["accuracy", "macro_f1", "uar"] = "accuracy"
    report: tuple[Literal["accuracy", "macro_f1", "weighted_f1", "uar"], ...] = (
        "accuracy", "macro_f1", "weighted_f1", "uar",
    )


class SideSpec(NamedTuple):
    """A dataset a protocol reads, so that within- and cross-dataset code looks the same.

    ``role`` is ``within`` (folds of one dataset), ``train`` or ``test`` (cross-dataset);
    ``path`` is the key path holding this side's ``dataset`` and ``frames`` keys
    (``()`` within-dataset, ``("cross_dataset", "train", 0)`` for the first source).
    """

    role: Literal["within", "train", "test"]
    dataset: DatasetSpec
    frames: FramesSpec
    path: KeyPath


class Protocol(_Spec):
    """A validated, fully resolved protocol (see the module docstring and ``protocols/``)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    version: StrictInt = Field(ge=1)
    description: str | None = None
    papers: tuple[str, ...] = ()
    dataset: DatasetSpec | None = None
    classes: tuple[str, ...]
    frames: FramesSpec = FramesSpec()
    split: SplitSpec | None = None
    cross_dataset: CrossDatasetSpec | None = None
    preprocess: PreprocessSpec = PreprocessSpec()
    on_unreadable: Literal["fail", "skip"] = "fail"
    metrics: MetricsSpec = MetricsSpec()

    _source_file: Path | None = PrivateAttr(None)

    @field_validator("classes")
    @classmethod
    def _canonical_classes(cls, classes: tuple[str, ...]) -> tuple[str, ...]:
        try:
            return check_class_set(classes)
        except UnknownName as err:
            raise ValueError(str(err)) from None

    @property
    def source_file(self) -> Path | None:
        """The protocol file this was loaded from (``None`` when built in code)."""
        return self._source_file

    def sides(self) -> list[SideSpec]:
        """The datasets this protocol reads: one ``within`` side, or ``train`` sides and a ``test`` side."""
        cross = self.cross_dataset
        if cross is None:
            assert self.dataset is not None  # guaranteed by load_protocol
            return [SideSpec("within", self.dataset, self.frames, ())]
        train = [SideSpec("train", s.dataset, s.frames, ("cross_dataset", "train", i)) for i, s in enumerate(cross.train)]
        return [*train, SideSpec("test", cross.test.dataset, cross.test.frames, ("cross_dataset", "test"))]

    def resolved_dict(self) -> dict[str, Any]:
        """The resolved protocol as plain JSON-able values (for ``protocol.resolved.yaml``)."""
        return self.model_dump(mode="json")

    @property
    def fingerprint(self) -> str:
        """16 hex digits of sha256 over the resolved protocol, minus what cannot change results.

        Left out: description, papers, ``metrics`` (which metric ranks and which are reported
        changes no job's result; every metric is computed) and where the data lies (a real
        dataset root counts only as ``real``; a synthetic one is kept). A fold file counts by
        its content, not its path. What the data holds is :func:`ferbench.pipeline.data_fingerprint`.
        """
        payload = self.model_dump(mode="json", exclude={"description", "papers", "metrics"})
        for _, spec in _dataset_blocks(payload):
            spec["root"] = spec["root"] if is_synthetic(spec["root"]) else "real"
        if isinstance(self.split, FoldFileSplit):
            payload["split"]["file"] = hashlib.sha256(Path(self.split.file).read_bytes()).hexdigest()
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- loading


def load_protocol(path: str | Path, roots: dict[str, str] | None = None, synthetic: bool = False,
                  require_roots: bool = True) -> Protocol:
    """Read, merge, resolve and validate a protocol file.

    Args:
        path: the protocol YAML.
        roots: dataset name -> root folder; wins over the file's ``dataset.root``.
        synthetic: read every dataset from its synthetic twin (root ``synthetic``).
        require_roots: when False, an unset ``${env:VAR}`` root is kept as written instead of
            being an error (``ferbench validate`` checks a file without the data at hand).

    Raises:
        ProtocolError: naming the file, line and key at fault.
        UnknownName: a ``roots`` key that is not a registered dataset.
    """
    roots = roots or {}
    for name in roots:
        get_dataset(name)
    path = Path(path).resolve()
    if not path.is_file():
        raise ProtocolError(path, "protocol file not found")
    raw, marks = _read_with_includes(path)
    where = _Locator(path, marks)
    _resolve_datasets(raw, where, roots, synthetic, require_roots)
    _resolve_fold_file(raw, where)
    try:
        protocol = Protocol.model_validate(raw)
    except ValidationError as err:
        raise _translate(err, Protocol, (), where) from None
    _check_consistency(protocol, where)
    protocol._source_file = path
    return protocol


class _Locator:
    """Which file and 1-based line wrote each key path of the merged protocol."""

    def __init__(self, file: Path, marks: dict[KeyPath, tuple[Path, int]]):
        self.file, self.marks = file, marks

    def find(self, path: KeyPath) -> tuple[Path, int | None]:
        """File and line of ``path``, or of its nearest written ancestor (for a missing key)."""
        for n in range(len(path), 0, -1):
            if path[:n] in self.marks:
                return self.marks[path[:n]]
        return self.file, None

    def error(self, path: KeyPath, problem: str) -> ProtocolError:
        file, line = self.find(path)
        return ProtocolError(file, problem, key=_dotted(path), line=line)


def _dotted(path: KeyPath) -> str:
    """``("cross_dataset", "train", 0, "dataset")`` -> ``cross_dataset.train[0].dataset``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _read_yaml(file: Path) -> tuple[dict[str, Any], dict[KeyPath, tuple[Path, int]]]:
    """Parse one YAML file into a mapping plus the (file, line) of every key path in it."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as err:
        raise ProtocolError(file, f"cannot read the file: {err}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        raise ProtocolError(file, f"invalid YAML: {problem}", line=mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ProtocolError(file, "a protocol file must be a YAML mapping (`key: value` lines)")
    marks: dict[KeyPath, tuple[Path, int]] = {}
    _record_marks(node, (), file, marks)
    return data, marks


def _record_marks(node: yaml.Node, path: KeyPath, file: Path, marks: dict[KeyPath, tuple[Path, int]]) -> None:
    """Store the line of every mapping key and list item under ``node``; refuse duplicate keys."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, key_node.value)
            if child in marks:
                raise ProtocolError(file, f"duplicate key `{key_node.value}`", _dotted(child), key_node.start_mark.line + 1)
            marks[child] = (file, key_node.start_mark.line + 1)
            _record_marks(value_node, child, file, marks)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            marks[(*path, i)] = (file, item.start_mark.line + 1)
            _record_marks(item, (*path, i), file, marks)


def _read_with_includes(file: Path, chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], dict[KeyPath, tuple[Path, int]]]:
    """Read ``file`` merged over its ``include:`` parents (recursively, left to right)."""
    data, marks = _read_yaml(file)
    where = _Locator(file, marks)
    includes = data.pop("include", None) or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(name, str) for name in includes):
        raise where.error(("include",), "`include` must be a list of file paths")
    chain = (*chain, file)
    merged: dict[str, Any] = {}
    merged_marks: dict[KeyPath, tuple[Path, int]] = {}
    for i, name in enumerate(includes):
        parent = (file.parent / name).resolve()
        if parent in chain:
            names = " -> ".join(os.path.relpath(p, chain[0].parent) for p in (*chain, parent))
            raise where.error(("include", i), f"include cycle: {names}")
        if not parent.is_file():
            raise where.error(("include", i), f"included file not found: {parent}")
        parent_data, parent_marks = _read_with_includes(parent, chain)
        merged = _deep_merge(merged, parent_data)
        merged_marks.update(parent_marks)
    return _deep_merge(merged, data), {**merged_marks, **marks}


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key, anything else (lists too) is replaced.

    A mapping that changes its ``type`` (``split: {type: random_kfold}`` over a subject_kfold
    split) replaces the old one: options of the old type do not carry over.
    """
    out = copy.deepcopy(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict) and value.get("type", old.get("type")) == old.get("type"):
            out[key] = _deep_merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# ----------------------------------------------------------------------------- dataset blocks


def _dataset_blocks(raw: dict[str, Any]) -> list[tuple[KeyPath, dict[str, Any]]]:
    """Every ``dataset`` mapping of a protocol dict (raw or dumped), with its key path."""
    found: list[tuple[KeyPath, Any]] = [(("dataset",), raw.get("dataset"))]
    cross = raw.get("cross_dataset")
    if isinstance(cross, dict):
        train = cross.get("train")
        for i, side in enumerate(train if isinstance(train, list) else []):
            if isinstance(side, dict):
                found.append((("cross_dataset", "train", i, "dataset"), side.get("dataset")))
        if isinstance(cross.get("test"), dict):
            found.append((("cross_dataset", "test", "dataset"), cross["test"].get("dataset")))
    return [(path, spec) for path, spec in found if isinstance(spec, dict)]


def _resolve_datasets(raw: dict[str, Any], where: _Locator, roots: dict[str, str], synthetic: bool,
                      require_roots: bool = True) -> None:
    """Check each dataset block's name, resolve its root and fill in its options (in place)."""
    for path, spec in _dataset_blocks(raw):
        name = spec.get("name")
        if not isinstance(name, str):
            continue  # reported by schema validation
        try:
            loader = get_dataset(name)
        except UnknownName as err:
            raise where.error((*path, "name"), str(err)) from None
        spec["root"] = _resolve_root(spec.get("root"), name, (*path, "root"), where, roots, synthetic, require_roots)
        try:
            options = loader.options_model.model_validate(spec.get("options") or {})
        except ValidationError as err:
            raise _translate(err, loader.options_model, (*path, "options"), where) from None
        spec["options"] = options.model_dump(mode="json")


def _resolve_root(root: Any, name: str, key: KeyPath, where: _Locator,
                  roots: dict[str, str], synthetic: bool, require_roots: bool = True) -> Any:
    """The root to read dataset ``name`` from: ``--synthetic``, else ``--root``, else the file's."""
    if synthetic:
        return SYNTHETIC
    root = roots.get(name, root)
    if not isinstance(root, str) or is_synthetic(root):
        return root  # None, a synthetic twin, or a wrong type that schema validation reports

    def env_value(match: re.Match[str]) -> str:
        value = os.environ.get(match.group(1))
        if not value and not require_roots:
            return match.group(0)
        if not value:
            raise where.error(key, f"environment variable `{match.group(1)}` is not set; set it, "
                                   f"or pass `--root {name}=PATH` or `--synthetic`")
        return value

    return str(Path(_ENV_VAR.sub(env_value, root)).expanduser().absolute())


def _resolve_fold_file(raw: dict[str, Any], where: _Locator) -> None:
    """Make ``split.file`` absolute, relative to the file that wrote it, and check it exists."""
    split = raw.get("split")
    if not (isinstance(split, dict) and split.get("type") == "fold_file" and isinstance(split.get("file"), str)):
        return
    key = ("split", "file")
    file = (where.find(key)[0].parent / split["file"]).resolve()
    if not file.is_file():
        raise where.error(key, f"fold file not found: {file}")
    split["file"] = str(file)


# ----------------------------------------------------------------------------- pydantic errors


def _translate(err: ValidationError, model: type[BaseModel], prefix: KeyPath, where: _Locator) -> ProtocolError:
    """The first error of ``err`` (raised validating ``model`` at ``prefix``) as a ProtocolError.

    Unknown keys come first: a misspelt required key (``clases:``) then reads as a typo, with a
    suggestion, rather than as a missing key."""
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
    path, holder, leaf = _key_path(errors[0]["loc"], model)
    path, problem = _describe(errors[0], path, holder, leaf)
    if len(errors) > 1:
        problem += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return where.error((*prefix, *path), problem)


def _key_path(loc: tuple[Any, ...], model: type[BaseModel]) -> tuple[KeyPath, type[BaseModel] | None, Any]:
    """Follow a pydantic error location through the schema.

    Returns the key path (pydantic adds a tagged union's tag to the location; it is not a key),
    the model holding the last key, and the type expected at the location.
    """
    path: list[str | int] = []
    holder: type[BaseModel] | None = None
    tp: Any = model
    for part in loc:
        tp = _strip(tp)
        members = _union_members(tp)
        if members:
            tp = next((m for m in members if part in _tags(m)), None)
            continue
        path.append(part)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            holder = tp
            field = tp.model_fields.get(part)
            tp = field.annotation if field else None
        else:
            holder, args = None, get_args(tp)
            tp = args[-1] if get_origin(tp) is dict else (args[0] if args else None)
    return tuple(path), holder, _strip(tp)


def _strip(tp: Any) -> Any:
    """``X`` from ``Annotated[X, ...]`` and from ``X | None``."""
    while True:
        if get_origin(tp) is Annotated:
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


# ----------------------------------------------------------------------------- cross-key rules


def _check_consistency(protocol: Protocol, where: _Locator) -> None:
    """Rules that span several keys or need the dataset registry."""
    cross = protocol.cross_dataset
    if cross is None and protocol.dataset is None:
        raise where.error(("dataset",), "required key `dataset` is missing (or give `cross_dataset`)")
    if cross is not None and protocol.dataset is not None:
        raise where.error(("dataset",), "`dataset` is not allowed with `cross_dataset`; "
                                        "name the datasets under cross_dataset.train and cross_dataset.test")
    if cross is not None and "frames" in protocol.model_fields_set:
        raise where.error(("frames",), "top-level `frames` is not allowed with `cross_dataset`; "
                                       "set `frames` on each train and test side")
    if protocol.split is None and not (cross is not None and cross.evaluate == "all_source"):
        raise where.error(("split",), "required key `split` is missing"
                                      + (" (only `evaluate: all_source` may omit it)" if cross else ""))
    for side in protocol.sides():
        _check_side(protocol, side, where)


def _check_side(protocol: Protocol, side: SideSpec, where: _Locator) -> None:
    """Check one side against its loader's ``labels``, ``sequential`` and ``has_subjects``."""
    loader = get_dataset(side.dataset.name)
    frames = side.frames
    what = f"dataset `{loader.name}`" if side.role == "within" else f"the {side.role} side (dataset `{loader.name}`)"
    if not loader.sequential:
        if frames.select in ("last_n", "middle_n"):
            raise where.error((*side.path, "frames", "select"), f"`{frames.select}` needs image sequences; {what} has stills")
        if frames.first_as_neutral != "none":
            raise where.error((*side.path, "frames", "first_as_neutral"), f"needs image sequences; {what} has stills")
    if frames.first_as_neutral != "none" and "neutral" not in protocol.classes:
        raise where.error((*side.path, "frames", "first_as_neutral"),
                          "first frames are labelled `neutral`, but `neutral` is not in classes")
    if loader.labels:  # a loader that cannot know its labels up front (generic folders) declares none
        producible = set(loader.labels) | ({"neutral"} if frames.first_as_neutral != "none" else set())
        for label in protocol.classes:
            if label not in producible:
                raise where.error(("classes",), f"class `{label}` cannot come from {what}, "
                                                f"which has only {', '.join(sorted(producible))}")
    split = protocol.split
    if side.role != "test" and split is not None and needs_subjects(split) and not loader.has_subjects:
        raise where.error(("split", "type"), f"split `{split.type}` needs subject identities, which {what} lacks; "
                                             "use `official` or `random_kfold`")
