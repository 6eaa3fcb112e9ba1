"""Frame selection: which images of a dataset a protocol uses, and with which label.

Loaders yield every image; this module applies the protocol's ``frames`` rule:

* sequences (CK+, Oulu-CASIA, MMI): ``last_n`` / ``peak`` (= last 1) / ``middle_n`` / ``all``
  frames of each *labelled* sequence carry the sequence's label; ``first_as_neutral`` adds the
  first (onset) frame as ``neutral`` from labelled sequences only (Miao et al.) or from all
  sequences (MicroExpNet). ``peak`` / ``last_n`` need onset-to-peak sequences (the loader's
  ``peak_frame == "last"``; MMI runs onset-apex-offset and is refused) and, where the loader
  records the frame its label file names (CK+ ``attrs["labelled_frame"]``), that frame must be
  the sequence's last one;
* still images (JAFFE, BU-3DFE, ...): every labelled image (``all`` or ``peak``), optionally
  filtered by ``intensities`` (BU-3DFE levels 1-4; neutral is level 0).

Frames of unlabelled sequences are dropped unless they become first-frame neutrals.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from ferbench.data.base import Sample
from ferbench.errors import DataError, FerbenchError
from ferbench.protocol import FramesSpec

NEUTRAL_ROLE = "first_as_neutral"


def select_frames(samples: Sequence[Sample], rule: FramesSpec, sequential: bool,
                  peak_frame: str = "last") -> list[Sample]:
    """Apply ``rule`` to a loader's samples; return the selected samples, labels final.

    ``sequential`` says whether the dataset comes as sequences (``DatasetLoader.sequential``),
    ``peak_frame`` where their peak lies (``DatasetLoader.peak_frame``). A first-frame neutral
    is a copy of the first frame with ``label="neutral"`` and
    ``attrs["frame_role"] == "first_as_neutral"``. Order: sequences in loader order, the
    neutral frame first within its sequence.
    """
    if sequential:
        _check_layout_has_frames(samples, rule)
        _check_peak_is_last(samples, rule, peak_frame)
        return _select_from_sequences(samples, rule)
    if rule.select in ("last_n", "middle_n") or rule.first_as_neutral != "none":
        raise FerbenchError(
            f"frames: `{rule.select}`/first_as_neutral=`{rule.first_as_neutral}` need image sequences, "
            "but this dataset holds still images; use `select: all`"
        )
    kept = [s for s in samples if s.label is not None]
    if rule.intensities is not None:
        kept = [s for s in kept if _intensity(s) in set(rule.intensities)]
    return kept


def _select_from_sequences(samples: Sequence[Sample], rule: FramesSpec) -> list[Sample]:
    sequences: dict[tuple, list[Sample]] = defaultdict(list)
    for sample in samples:
        sequences[(sample.subject, sample.sequence)].append(sample)
    selected: list[Sample] = []
    for frames in sequences.values():
        frames.sort(key=lambda s: (s.frame if s.frame is not None else -1, s.key))
        labelled = frames[-1].label is not None
        picked = _pick(frames, rule) if labelled else []
        if rule.first_as_neutral == "all" or (rule.first_as_neutral == "labelled" and labelled):
            first = frames[0]
            if first in picked:
                raise DataError(first.path, f"sequence has {len(frames)} frames: its first frame would be "
                                "both the neutral frame and an expression frame")
            selected.append(replace(first, label="neutral", attrs={**first.attrs, "frame_role": NEUTRAL_ROLE}))
        selected.extend(picked)
    if rule.intensities is not None:
        selected = [s for s in selected if _intensity(s) in set(rule.intensities)]
    return selected


def _pick(frames: list[Sample], rule: FramesSpec) -> list[Sample]:
    """The expression frames of one labelled sequence (sorted by frame number)."""
    if rule.select == "all":
        return list(frames)
    if rule.select == "peak":
        return _check_labelled_frame_is_last(frames)[-1:]
    n = int(rule.n or 0)
    if len(frames) < n:
        raise DataError(frames[-1].path, f"sequence has {len(frames)} frames, fewer than the {n} the protocol selects")
    if rule.select == "last_n":
        return _check_labelled_frame_is_last(frames)[-n:]
    if rule.select == "middle_n":
        start = (len(frames) - n) // 2
        return frames[start:start + n]
    raise ValueError(f"unknown frame selection `{rule.select}`")


def _check_peak_is_last(samples: Sequence[Sample], rule: FramesSpec, peak_frame: str) -> None:
    """Refuse ``peak`` / ``last_n`` for onset-apex-offset sequences, whose last frames are neutral again."""
    if peak_frame != "last" and rule.select in ("peak", "last_n"):
        dataset = samples[0].dataset if samples else "this dataset"
        raise FerbenchError(
            f"frames: `{rule.select}` takes the last frames of each sequence, but `{dataset}` sequences run "
            f"onset-apex-offset (the apex lies in the {peak_frame}, the last frames are neutral again); "
            "use `select: middle_n` (ED²L: n 3, the three middle frames)"
        )


def _check_labelled_frame_is_last(frames: list[Sample]) -> list[Sample]:
    """Return ``frames`` (one sorted sequence) if the frame its label file names is the last one."""
    last = frames[-1]
    named = last.attrs.get("labelled_frame")
    if named is not None and named != last.frame:
        raise FerbenchError(
            f"sequence {last.subject}/{last.sequence}: its label file names frame {named}, but the last frame "
            f"is {last.frame}; `peak`/`last_n` would take frames after the labelled peak. Check the copy "
            f"(frames beyond the labelled one?) or use `select: all` or `middle_n`"
        )
    return frames


def _check_layout_has_frames(samples: Sequence[Sample], rule: FramesSpec) -> None:
    """CK+48 ships only the last 3 frames of labelled sequences: refuse rules needing others."""
    if not any(s.attrs.get("layout") == "ck48" for s in samples[:1]):
        return
    wanted_last_3 = (rule.select == "last_n" and rule.n == 3) or rule.select == "all"
    if not wanted_last_3 or rule.first_as_neutral != "none":
        raise FerbenchError(
            "the CK+ copy at this root is the CK+48 crop distribution, which holds only the last 3 frames "
            f"of each labelled sequence; this protocol asks for frames `{rule.select}`"
            f"{'' if rule.n is None else f' (n={rule.n})'} with first_as_neutral=`{rule.first_as_neutral}`. "
            "Point the ckplus root at the full CK+ layout (cohn-kanade-images/ + Emotion/)."
        )


def _intensity(sample: Sample) -> int:
    if "intensity" not in sample.attrs:
        raise DataError(sample.path, "frames.intensities is set but the loader gives this image no intensity")
    return int(sample.attrs["intensity"])
