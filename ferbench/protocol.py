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

Every problem raises :class:`~ferbench.errors.ProtocolError` (located by :mod:`ferbench.spec`)
with the file and 1-based line that wrote the offending key (a parent file for an inherited key), its key path, and a suggestion
when a valid key or value is close. Numbers are strict (``StrictInt``, ``StrictFloat``): YAML
``true``/``false`` are refused where a number belongs, instead of counting as 1 and 0.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Union

from pydantic import BaseModel, Field, PrivateAttr, StrictFloat, StrictInt, ValidationError, field_validator

from ferbench.data.registry import get_dataset
from ferbench.errors import ProtocolError, UnknownName
from ferbench.labels import check_class_set
from ferbench.metrics import SCALAR_METRICS, MetricName, RankingMetric
from ferbench.spec import KeyPath, Locator, read_with_includes, translate
from ferbench.spec import StrictSpec as _Spec

SYNTHETIC = "synthetic"
"""The ``root`` value that selects a dataset's synthetic twin (``synthetic:<shape>`` picks a shape)."""

_ENV_VAR = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


# ----------------------------------------------------------------------------- schema


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


class _Split(_Spec):
    """What every ``split`` rule answers."""

    @property
    def subject_independent(self) -> bool:
        """True when the rule keeps every subject's images in one fold (needs subject identities)."""
        return False


class SubjectKFold(_Split):
    """k folds of whole subjects: sorted subject i goes to fold i mod k (``ascending_round_robin``),
    the sorted subjects are cut into k contiguous blocks (``ascending_blocks``), or stratified groups."""

    type: Literal["subject_kfold"]
    k: StrictInt = Field(ge=2)
    assign: Literal["ascending_round_robin", "ascending_blocks", "stratified_group"] = "ascending_round_robin"
    seed: StrictInt = 0

    @property
    def subject_independent(self) -> bool:
        return True


class RandomKFold(_Split):
    """k folds of images, ignoring subjects (not subject-independent)."""

    type: Literal["random_kfold"]
    k: StrictInt = Field(ge=2)
    seed: StrictInt = 0
    stratified: bool = True


class LosoSplit(_Split):
    """Leave one subject out."""

    type: Literal["loso"]

    @property
    def subject_independent(self) -> bool:
        return True


class OfficialSplit(_Split):
    """The dataset's own partition, by values of ``Sample.attrs["usage"]``."""

    type: Literal["official"]
    train: tuple[str, ...] = Field(min_length=1)
    validation: tuple[str, ...] = ()
    test: tuple[str, ...] = Field(min_length=1)


class FoldFileSplit(_Split):
    """Test folds listed in a file, written relative to the protocol file that sets it
    (absolute after loading); ``by`` says whether it lists subjects or sample keys."""

    type: Literal["fold_file"]
    file: str
    by: Literal["subject", "sample"]

    @property
    def subject_independent(self) -> bool:
        return self.by == "subject"


SplitSpec = Annotated[
    Union[SubjectKFold, RandomKFold, LosoSplit, OfficialSplit, FoldFileSplit],
    Field(discriminator="type"),
]


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
    fraction of the image's short side. ``face: align`` finds the eye centres (landmarks, else
    Haar eyes in the Haar face box) and warps them by a similarity transform onto fixed points:
    ``eye_distance`` apart (fraction of W) at ``eye_height`` from the top (fraction of H); it
    ignores ``margin``. The defaults (0.38, 0.33) fit the face from the eyebrows to the chin.
    """

    face: Literal["align", "auto", "haar", "landmarks", "none"] = "auto"
    margin: StrictFloat = Field(0.2, ge=0)
    grayscale: bool = True
    size: tuple[Annotated[StrictInt, Field(ge=1)], Annotated[StrictInt, Field(ge=1)]] = (128, 128)
    min_face: StrictFloat = Field(0.15, gt=0, le=1)
    on_no_face: Literal["center_crop", "fail", "skip"] = "center_crop"
    eye_distance: StrictFloat = Field(0.38, gt=0, lt=1)
    eye_height: StrictFloat = Field(0.33, gt=0, lt=1)


class MetricsSpec(_Spec):
    """The metric that ranks models and the metrics reported."""

    primary: RankingMetric = "accuracy"
    report: tuple[MetricName, ...] = SCALAR_METRICS


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

    @property
    def subject_independent(self) -> bool:
        """True when the protocol's ``split`` keeps every subject's images in one fold."""
        return self.split is not None and self.split.subject_independent

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
    raw, marks = read_with_includes(path, ProtocolError)
    where = Locator(path, marks, ProtocolError)
    _resolve_datasets(raw, where, roots, synthetic, require_roots)
    _resolve_fold_file(raw, where)
    try:
        protocol = Protocol.model_validate(raw)
    except ValidationError as err:
        raise translate(err, Protocol, (), where, raw) from None
    _check_consistency(protocol, where)
    protocol._source_file = path
    return protocol


# ----------------------------------------------------------------------------- dataset blocks


def side_blocks(raw: dict[str, Any]) -> list[tuple[KeyPath, dict[str, Any]]]:
    """Every side of a protocol dict (raw, or dumped by :meth:`Protocol.resolved_dict`) with its
    key path: the mapping that holds a ``dataset`` mapping and its ``frames``, i.e. the protocol
    itself (path ``()``) within a dataset, each ``cross_dataset.train`` item, then
    ``cross_dataset.test``. On a validated protocol these are the blocks of :meth:`Protocol.sides`."""
    found: list[tuple[KeyPath, Any]] = [((), raw)]
    cross = raw.get("cross_dataset")
    if isinstance(cross, dict):
        train = cross.get("train")
        found += [(("cross_dataset", "train", i), side) for i, side in enumerate(train if isinstance(train, list) else [])]
        found.append((("cross_dataset", "test"), cross.get("test")))
    return [(path, side) for path, side in found if isinstance(side, dict) and isinstance(side.get("dataset"), dict)]


def _dataset_blocks(raw: dict[str, Any]) -> list[tuple[KeyPath, dict[str, Any]]]:
    """Every ``dataset`` mapping of a protocol dict (raw or dumped), with its key path."""
    return [((*path, "dataset"), side["dataset"]) for path, side in side_blocks(raw)]


def _resolve_datasets(raw: dict[str, Any], where: Locator, roots: dict[str, str], synthetic: bool,
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
            raise translate(err, loader.options_model, (*path, "options"), where, spec.get("options")) from None
        spec["options"] = options.model_dump(mode="json")


def _resolve_root(root: Any, name: str, key: KeyPath, where: Locator,
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


def _resolve_fold_file(raw: dict[str, Any], where: Locator) -> None:
    """Make ``split.file`` absolute, relative to the file that wrote it, and check it exists."""
    split = raw.get("split")
    if not (isinstance(split, dict) and split.get("type") == "fold_file" and isinstance(split.get("file"), str)):
        return
    key = ("split", "file")
    file = (where.find(key)[0].parent / split["file"]).resolve()
    if not file.is_file():
        raise where.error(key, f"fold file not found: {file}")
    split["file"] = str(file)


# ----------------------------------------------------------------------------- cross-key rules


def _check_consistency(protocol: Protocol, where: Locator) -> None:
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


def _check_side(protocol: Protocol, side: SideSpec, where: Locator) -> None:
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
    if side.role != "test" and split is not None and split.subject_independent and not loader.has_subjects:
        raise where.error(("split", "type"), f"split `{split.type}` needs subject identities, which {what} lacks; "
                                             "use `official` or `random_kfold`")
