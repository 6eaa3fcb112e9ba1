"""The shipped protocols, and one-line descriptions of a protocol's datasets, frames and split.

The describers take a resolved protocol as plain values (``Protocol.resolved_dict()``, the
content of a run's ``protocol.resolved.yaml``), so ``ferbench protocols`` and the leaderboard
pages describe a protocol in the same words.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

import ferbench
from ferbench.protocol import (
    FoldFileSplit,
    LosoSplit,
    OfficialSplit,
    RandomKFold,
    SplitSpec,
    SubjectKFold,
    is_synthetic,
    load_protocol,
    side_blocks,
)

PROTOCOLS_ENV = "FERBENCH_PROTOCOLS"


def protocols_dir() -> Path:
    """The folder of shipped protocols: ``$FERBENCH_PROTOCOLS``, else ``<repository>/protocols``."""
    override = os.environ.get(PROTOCOLS_ENV)
    return Path(override).expanduser() if override else Path(ferbench.__file__).resolve().parents[1] / "protocols"


def catalogue(folder: Path | None = None) -> list[dict[str, Any]]:
    """One entry per ``*.yaml`` file directly in ``folder`` (default :func:`protocols_dir`), by
    file name: ``id, file, dataset`` (:func:`dataset_label`), ``datasets`` (names), ``classes,
    frames, split, papers, fingerprint``.

    Raises:
        ProtocolError: a file that does not load (``load_protocol`` with ``require_roots=False``).
    """
    folder = folder or protocols_dir()
    entries = []
    for path in sorted(folder.glob("*.yaml")):
        protocol = load_protocol(path, require_roots=False)
        resolved = protocol.resolved_dict()
        entries.append({
            "id": protocol.id,
            "file": path.name,
            "dataset": dataset_label(resolved),
            "datasets": dataset_names(resolved),
            "classes": list(protocol.classes),
            "frames": describe_frames(resolved),
            "split": describe_split(resolved),
            "papers": list(protocol.papers),
            "fingerprint": protocol.fingerprint,
        })
    return entries


def _dataset_specs(protocol: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``dataset`` blocks of a resolved protocol: source side(s) first, target last."""
    return [side["dataset"] for _, side in side_blocks(protocol)]


def dataset_names(protocol: dict[str, Any]) -> list[str]:
    """Registry names of the datasets a resolved protocol reads (cross-dataset: sources, then target)."""
    return [spec["name"] for spec in _dataset_specs(protocol)]


def dataset_label(protocol: dict[str, Any]) -> str:
    """``ckplus`` within a dataset; ``ckplus -> jaffe`` across datasets (sources joined by ``+``)."""
    names = dataset_names(protocol)
    return " -> ".join(["+".join(names[:-1]), names[-1]]) if protocol.get("cross_dataset") else names[0]


def describe_data(protocol: dict[str, Any]) -> str:
    """Where a resolved protocol's images came from, e.g. ``ckplus: synthetic twin (synthetic:small)``."""
    parts = []
    for spec in _dataset_specs(protocol):
        root = spec.get("root")
        source = f"synthetic twin (`{root}`), generated faces, not the real dataset" if is_synthetic(root) \
            else "real dataset"
        parts.append(f"{spec['name']}: {source}")
    return "; ".join(parts)


def describe_frames(protocol: dict[str, Any]) -> str:
    """The frame rule of each side, e.g. ``last 3 + first frame as neutral (all sequences)``."""
    texts = [_frames_text(side.get("frames") or {}) for _, side in side_blocks(protocol)]
    return texts[0] if len(set(texts)) == 1 else " -> ".join(texts)


def _frames_text(frames: dict[str, Any]) -> str:
    select, n = frames.get("select", "all"), frames.get("n")
    text = {"all": "all", "peak": "peak frame", "last_n": f"last {n}", "middle_n": f"middle {n}"}[select]
    neutral = frames.get("first_as_neutral", "none")
    if neutral != "none":
        text += f" + first frame as neutral ({'labelled' if neutral == 'labelled' else 'all'} sequences)"
    if frames.get("intensities"):
        text += f", intensities {','.join(str(i) for i in frames['intensities'])}"
    return text


def describe_split(protocol: dict[str, Any]) -> str:
    """The split in words, saying whether it is subject-independent, e.g. ``random 10-fold (not
    subject-independent)``; cross-dataset protocols add the target and how it is evaluated."""
    split = protocol.get("split")
    text = _split_text(split) if split else "all source data"
    cross = protocol.get("cross_dataset")
    if cross:
        *sources, target = dataset_names(protocol)
        text = f"train on {'+'.join(sources)} ({text}), test on all of {target} ({cross['evaluate']})"
    return text


def _split_text(split: dict[str, Any]) -> str:
    spec = TypeAdapter(SplitSpec).validate_python(split)
    independence = "subject-independent" if spec.subject_independent else "not subject-independent"
    if isinstance(spec, SubjectKFold):
        how = ", stratified subject groups" if spec.assign == "stratified_group" else ""
        return f"{independence} {spec.k}-fold{how}"
    if isinstance(spec, RandomKFold):
        return f"random {spec.k}-fold ({independence})"
    if isinstance(spec, LosoSplit):
        return "leave-one-subject-out"
    if isinstance(spec, OfficialSplit):
        return f"official split (train {'+'.join(spec.train)}, test {'+'.join(spec.test)})"
    assert isinstance(spec, FoldFileSplit)
    return f"fold file by {spec.by} ({independence})"
