"""Split rules: scikit-learn-style splitters plus the leakage check every run goes through.

Each splitter has one method, ``split(X, y, groups)``, yielding ``(train, test)`` index arrays
(``X`` is only used for its length; ``groups`` holds subject ids). :func:`make_folds` turns a
protocol's ``split`` block into a list of :class:`Fold` and, for every subject-independent
rule, *asserts* that no subject is on both sides (:func:`assert_no_leakage`); every job checks
its own fold again before it trains (:func:`check_isolation`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sklearn.model_selection import KFold, LeaveOneGroupOut, StratifiedGroupKFold, StratifiedKFold

from ferbench.data.base import Sample
from ferbench.errors import SplitError
from ferbench.protocol import SplitSpec

@dataclass(frozen=True)
class Fold:
    """One fold: sorted index arrays into the selected samples (``validation`` may be empty)."""

    index: int
    train: np.ndarray
    test: np.ndarray
    validation: np.ndarray


def natural_key(text: str) -> list:
    """Sort key that orders embedded numbers numerically (``S5`` < ``S10``; ``S005`` < ``S010``)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(text))]


class _AscendingSubjectKFold:
    """Subject-independent k-fold over the subject ids in ascending order; a subclass's
    :meth:`_fold_of` gives each subject its test fold."""

    def __init__(self, n_splits: int):
        self.n_splits = n_splits

    def split(self, X: Sequence, y: Sequence | None, groups: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        groups = np.asarray(groups, dtype=object)
        subjects = sorted(set(groups.tolist()), key=natural_key)
        if len(subjects) < self.n_splits:
            raise SplitError(f"{len(subjects)} subjects cannot fill {self.n_splits} subject-independent folds")
        fold_of = self._fold_of(subjects)
        assigned = np.array([fold_of[g] for g in groups])
        for k in range(self.n_splits):
            yield np.flatnonzero(assigned != k), np.flatnonzero(assigned == k)

    def _fold_of(self, subjects: list[str]) -> dict[str, int]:
        """Subject -> test fold, for the subjects in ascending order."""
        raise NotImplementedError


class AscendingRoundRobinKFold(_AscendingSubjectKFold):
    """Subject-independent k-fold by ascending subject ID (the DeRL rule).

    Sort the distinct subject ids (numbers inside ids compare numerically); the subject at
    sorted position ``i`` goes to test fold ``i mod k``. Every sample of a subject is in that
    subject's fold, so no subject is ever on both sides. Needs at least ``k`` subjects.
    """

    def _fold_of(self, subjects: list[str]) -> dict[str, int]:
        return {subject: i % self.n_splits for i, subject in enumerate(subjects)}


class AscendingBlocksKFold(_AscendingSubjectKFold):
    """Subject-independent k-fold by contiguous blocks of ascending subject ID (the ED²L rule).

    Sort the distinct subject ids as :class:`AscendingRoundRobinKFold` does and cut the sorted
    list into ``k`` contiguous blocks; block ``f`` is test fold ``f``. Block sizes are those of
    ``numpy.array_split``: with ``n`` subjects, the first ``n mod k`` blocks hold
    ``n // k + 1`` subjects and the others ``n // k`` (118 CK+ subjects in 10 blocks: 12 x 8,
    then 11 x 2). Every sample of a subject is in that subject's block. Needs at least ``k``
    subjects.
    """

    def _fold_of(self, subjects: list[str]) -> dict[str, int]:
        blocks = np.array_split(np.arange(len(subjects)), self.n_splits)
        return {subjects[i]: k for k, block in enumerate(blocks) for i in block}


class UsageSplit:
    """The official split of a dataset that ships one (FER2013 ``Usage``, RAF-DB train/test).

    One fold: train = samples whose ``usage`` is in ``train``; test = in ``test``;
    validation = in ``validation``. Samples with another usage are unused.
    """

    def __init__(self, train: Sequence[str], test: Sequence[str], validation: Sequence[str] = ()):
        self.train, self.test, self.validation = set(train), set(test), set(validation)

    def split(self, X: Sequence, y: Sequence | None, groups: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        usage = np.asarray(groups, dtype=object)
        yield (np.flatnonzero(np.isin(usage, list(self.train))), np.flatnonzero(np.isin(usage, list(self.test))))

    def validation_indices(self, groups: Sequence[str]) -> np.ndarray:
        return np.flatnonzero(np.isin(np.asarray(groups, dtype=object), list(self.validation)))


class ListedFolds:
    """Folds read from a file: each fold lists its *test* subjects (or sample keys).

    Every value in ``groups`` must be listed in exactly one fold, so the folds partition the
    samples; train is everything outside the test fold.
    """

    def __init__(self, test_lists: Sequence[Sequence[str]], source: str = "fold file"):
        self.test_lists, self.source = [list(map(str, t)) for t in test_lists], source

    def split(self, X: Sequence, y: Sequence | None, groups: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        groups = np.asarray([str(g) for g in groups], dtype=object)
        fold_of: dict[str, int] = {}
        for k, members in enumerate(self.test_lists):
            for member in members:
                if member in fold_of:
                    raise SplitError(f"{self.source}: `{member}` is listed in folds {fold_of[member]} and {k}")
                fold_of[member] = k
        missing = sorted(set(groups.tolist()) - set(fold_of), key=natural_key)
        if missing:
            raise SplitError(f"{self.source}: {len(missing)} present in the data but in no fold, e.g. {missing[:5]}")
        assigned = np.array([fold_of[g] for g in groups])
        for k in range(len(self.test_lists)):
            yield np.flatnonzero(assigned != k), np.flatnonzero(assigned == k)


def read_fold_file(path: Path) -> list[list[str]]:
    """Read ``{"folds": [[...], ...]}`` (YAML or JSON) or a CSV ``fold,member`` table."""
    if not path.is_file():
        raise SplitError(f"fold file {path} does not exist")
    if path.suffix.lower() == ".csv":
        folds: dict[int, list[str]] = {}
        for line_no, line in enumerate(path.read_text().splitlines()[1:], start=2):
            if line.strip():
                fold, _, member = line.partition(",")
                if not fold.strip().isdigit() or not member.strip():
                    raise SplitError(f"{path}:{line_no}: expected `fold,member`, got `{line}`")
                folds.setdefault(int(fold), []).append(member.strip())
        return [folds[k] for k in sorted(folds)]
    data = json.loads(path.read_text()) if path.suffix.lower() == ".json" else yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("folds"), list):
        raise SplitError(f"{path}: expected a mapping with a `folds` list of lists")
    return [list(f) for f in data["folds"]]


def assert_no_leakage(folds: Sequence[Fold], subjects: Sequence[str | None]) -> None:
    """Raise :class:`SplitError` if any subject has samples on both sides of any fold."""
    subjects = np.asarray(subjects, dtype=object)
    for fold in folds:
        shared = (set(subjects[fold.train].tolist()) | set(subjects[fold.validation].tolist())) & set(subjects[fold.test].tolist())
        if shared:
            raise SplitError(f"fold {fold.index}: subjects on both sides (leakage): {sorted(map(str, shared))[:10]}")


def check_isolation(fold: Fold, keys: Sequence[str], subjects: Sequence[str | None] | None = None,
                    other_test_keys: Sequence[str] = ()) -> None:
    """Raise :class:`SplitError` when a test image of ``fold`` is also one of its training or
    validation images, or, given ``subjects`` (for subject-independent splits), when a subject
    has images on both sides.

    ``keys`` and ``subjects`` hold one entry per sample the fold's indices point into
    (:attr:`Sample.key`); ``other_test_keys`` are the keys of further test images (the target
    of a cross-dataset protocol)."""
    keys = np.asarray(keys, dtype=object)
    trained = set(keys[fold.train].tolist()) | set(keys[fold.validation].tolist())
    shared = trained & (set(keys[fold.test].tolist()) | set(other_test_keys))
    if shared:
        raise SplitError(f"fold {fold.index}: {len(shared)} test images are also training images (leakage), "
                         f"e.g. {sorted(shared)[:3]}")
    if subjects is not None:
        assert_no_leakage([fold], subjects)


def subject_overlap(folds: Sequence[Fold], subjects: Sequence[str | None]) -> bool | None:
    """True when some fold has a subject in both train and test (expected for random splits);
    None (not applicable) when some sample has no subject identity (FER2013, RAF-DB)."""
    if any(s is None for s in subjects):
        return None
    try:
        assert_no_leakage(folds, subjects)
    except SplitError:
        return True
    return False


def make_folds(split: SplitSpec, samples: Sequence[Sample], y: np.ndarray, base_dir: Path | None = None) -> list[Fold]:
    """Build the folds of a protocol ``split`` block over the selected ``samples``.

    ``y`` are the class indices. Subject-independent rules (``split.subject_independent``:
    ``subject_kfold``, ``loso``, fold files by subject) are checked with :func:`assert_no_leakage`;
    every rule is checked for empty test folds.
    """
    n = len(samples)
    X = np.zeros(n)
    subjects = [s.subject for s in samples]
    kind = split.type
    if split.subject_independent:
        if any(s is None for s in subjects):
            raise SplitError(f"split `{kind}` needs subject identities, but this dataset has none; "
                             "use `official` or `random_kfold`")
    validation: np.ndarray = np.array([], dtype=int)
    if kind == "subject_kfold":
        if split.assign == "ascending_round_robin":
            splitter: Any = AscendingRoundRobinKFold(split.k)
        elif split.assign == "ascending_blocks":
            splitter = AscendingBlocksKFold(split.k)
        else:
            splitter = StratifiedGroupKFold(n_splits=split.k, shuffle=True, random_state=split.seed)
        pairs = list(_sklearn_split(splitter, X, y, subjects, split.k))
    elif kind == "random_kfold":
        cls = StratifiedKFold if split.stratified else KFold
        pairs = list(_sklearn_split(cls(n_splits=split.k, shuffle=True, random_state=split.seed), X, y, None, split.k))
    elif kind == "loso":
        pairs = list(LeaveOneGroupOut().split(X, y, subjects))
    elif kind == "official":
        usage = [s.attrs.get("usage") for s in samples]
        splitter = UsageSplit(split.train, split.test, split.validation or ())
        pairs = list(splitter.split(X, y, usage))
        validation = splitter.validation_indices(usage)
    elif kind == "fold_file":
        path = Path(split.file) if base_dir is None else base_dir / split.file
        groups = subjects if split.by == "subject" else [s.key for s in samples]
        pairs = list(ListedFolds(read_fold_file(path), source=str(path)).split(X, y, groups))
    else:
        raise SplitError(f"unknown split type `{kind}`")
    folds = [Fold(k, np.sort(tr), np.sort(te), validation) for k, (tr, te) in enumerate(pairs)]
    for fold in folds:
        if len(fold.test) == 0:
            raise SplitError(f"split `{kind}`: fold {fold.index} has no test sample")
        if len(fold.train) == 0:
            raise SplitError(f"split `{kind}`: fold {fold.index} has no training sample")
    if split.subject_independent:
        assert_no_leakage(folds, subjects)
    return folds


def _sklearn_split(splitter: Any, X: np.ndarray, y: np.ndarray, groups: Any, k: int) -> Iterator:
    """Run a splitter, turning scikit-learn's too-few-members errors into a SplitError."""
    try:
        yield from splitter.split(X, y, groups)
    except ValueError as exc:
        raise SplitError(f"cannot make {k} folds: {exc}") from exc
