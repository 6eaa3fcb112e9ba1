"""MMI Facial Expression Database: posed onset-apex-offset sessions with XML metadata.

Assumed layout of a web download (``Sessions/`` may sit up to two levels below the root)::

    Sessions/<session id>/S001-001.avi             one video per session (frames: see below)
    Sessions/<session id>/S001-001.xml             metadata: <Metatag Name="Emotion" Value="4"/>
    Sessions/<session id>/S001-001-oao_aucs.xml    optional FACS action units (not read)
    Sessions/<session id>/session.xml              optional: <session><subject id=../><track view=../>

Seen in public scripts that prepare real downloads (Yuedong Chen's MMI preparation at
github.com/donydchen; scripts that read ``-oao_aucs.xml`` and ``<track view>`` of
``session.xml``): this folder layout; the Emotion Metatag in ``<video stem>.xml``; codes 1-6 =
anger disgust fear happy sadness surprise; the subject as the stem's part before ``-``.
Unverified ([check]): a Metatag in ``session.xml`` (read as a fallback); Emotion values other
than 1-6 (they occur, the scripts drop them; here label None, code kept); the ``view`` codes
(0 frontal, 1 profile, 2 dual view, as the scripts suggest: one keeps views 0 and 2 and cuts
the frontal half out of dual views); sessions shipping still images instead of a video (each
image is a sample, frame = its position in name order). Glasses: the database records
whether the subject wears glasses, but no public script reads it, so the field is a guess
([check]): a ``<Metatag Name="Glasses" Value="yes"/>`` (yes/no, true/false or 1/0) like the
Emotion one; a copy that spells it otherwise cannot use the ``glasses`` option.

Options select sessions (ED²L (002) keeps the 209 front-view sequences, C-SPP (004) removes
those with glasses): ``view`` front (code 0), profile (1), dual (2) or any (default);
``glasses`` exclude, only or any (default). A session that lacks the metadata an option
asks for is an error, not silently kept or dropped.

Samples: one per video frame; path = the video, index = frame = the 0-based frame number,
sequence = session id, label from the Emotion code (None for sessions without one, e.g.
action-unit-only sessions). attrs: ``session`` (id), ``view`` (track view code or None),
``glasses`` (True, False or None when not recorded).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from ferbench.data.base import DatasetLoader, LoaderOptions, Sample, read_image_file
from ferbench.data.loaders.common import (
    absolute_root,
    find_dir,
    is_image,
    labels_of,
    list_files,
    sorted_samples,
    subfolders,
)
from ferbench.data.registry import register_dataset
from ferbench.errors import DataError, DatasetNotFound

EMOTION_CODES = {"1": "anger", "2": "disgust", "3": "fear", "4": "happy", "5": "sadness", "6": "surprise"}
VIEW_CODES = {"front": "0", "profile": "1", "dual": "2"}
GLASSES_VALUES = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}
VIDEO_SUFFIXES = (".avi",)
SESSION_XML = "session.xml"
SUBJECT_STEM = re.compile(r"(S\d+)-.*", re.IGNORECASE)
EXPECTED = (
    "a `Sessions/` folder of session folders, each holding `S001-001.avi` and its metadata "
    "`S001-001.xml` (at most 2 folder levels below the root)"
)


class MmiOptions(LoaderOptions):
    """Which sessions to read: by camera view, and by whether the subject wears glasses."""

    view: Literal["front", "profile", "dual", "any"] = "any"
    glasses: Literal["exclude", "only", "any"] = "any"


@register_dataset("mmi")
class Mmi(DatasetLoader):
    """MMI: every frame of every selected session video."""

    labels = labels_of(EMOTION_CODES)
    sequential = True
    peak_frame = "middle"  # onset-apex-offset: `peak` / `last_n` would pick the offset frames
    has_subjects = True
    options_model = MmiOptions

    def load(self, root: Path, options: MmiOptions) -> list[Sample]:
        root = absolute_root(self.name, root, EXPECTED)
        sessions = find_dir(self.name, root, lambda d: d.name == "Sessions", "`Sessions/` folder")
        folders = [] if sessions is None else subfolders(sessions)
        samples = [s for f in folders for s in self._session(f, options)]
        if not samples:
            if folders and (options.view, options.glasses) != ("any", "any"):
                raise DataError(sessions, f"none of the {len(folders)} sessions has view: {options.view} "
                                          f"and glasses: {options.glasses}")
            raise DatasetNotFound(self.name, root if sessions is None else sessions, EXPECTED)
        return sorted_samples(samples)

    def read(self, sample: Sample) -> np.ndarray:
        """The image, or for a video sample frame ``sample.index`` (H x W x 3 BGR uint8)."""
        if sample.index is None:
            return read_image_file(sample.path)
        return read_video_frame(Path(sample.path), sample.index)

    def _session(self, folder: Path, options: MmiOptions) -> Iterator[Sample]:
        """The session's samples, none if the options leave it out."""
        files = list_files(folder)
        videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
        images = [p for p in files if is_image(p)]
        if len(videos) > 1:
            raise DataError(folder, f"session holds {len(videos)} videos, expected one")
        if not videos and not images:
            raise DataError(folder, "session holds neither an .avi video nor images")
        metadata = [parse_xml(p) for p in _metadata_files(files)]
        code = _emotion_code(metadata)
        label = None if code is None else EMOTION_CODES.get(code)
        subject = _subject(videos[0] if videos else images[0], metadata)
        view = _first_attr(metadata, "track", "view")
        glasses = _glasses(metadata)
        if not _selected(folder, options, view, glasses):
            return
        if videos:  # (file, index in the file, frame number)
            frames = [(videos[0], i, i) for i in range(count_frames(videos[0]))]
        else:
            frames = [(path, None, i) for i, path in enumerate(images)]
        for path, index, frame in frames:
            yield Sample(
                dataset=self.name, path=str(path), subject=subject, label=label, code=code,
                sequence=folder.name, frame=frame, index=index,
                attrs={"session": folder.name, "view": view, "glasses": glasses},
            )


def _metadata_files(files: list[Path]) -> list[Path]:
    """The session's XML files except FACS codings, ``session.xml`` last."""
    xmls = [p for p in files if p.suffix.lower() == ".xml" and not p.stem.lower().endswith("-oao_aucs")]
    return sorted(xmls, key=lambda p: (p.name.lower() == SESSION_XML, p.name))


def parse_xml(path: Path) -> tuple[Path, ET.Element]:
    """``(path, root element)`` of an XML file; DataError if it does not parse."""
    try:
        return path, ET.parse(path).getroot()
    except ET.ParseError as error:
        raise DataError(path, f"not valid XML ({error})") from None


def _emotion_code(metadata: list[tuple[Path, ET.Element]]) -> str | None:
    """The first ``<Metatag Name="Emotion" Value="N"/>`` value as a string of an int, or None."""
    for path, root in metadata:
        for tag in root.iter("Metatag"):
            if tag.get("Name") == "Emotion":
                value = (tag.get("Value") or "").strip()
                if not value.isdigit():
                    raise DataError(path, f"Emotion Metatag value {value!r} is not an integer code")
                return str(int(value))
    return None


def _glasses(metadata: list[tuple[Path, ET.Element]]) -> bool | None:
    """Whether the subject wears glasses, from a ``<Metatag Name="Glasses">``; None if not recorded."""
    for path, root in metadata:
        for tag in root.iter("Metatag"):
            if tag.get("Name") == "Glasses":
                value = (tag.get("Value") or "").strip()
                if value.lower() not in GLASSES_VALUES:
                    raise DataError(path, f"Glasses Metatag value {value!r} is not one of yes, no, true, false, 1, 0")
                return GLASSES_VALUES[value.lower()]
    return None


def _selected(folder: Path, options: MmiOptions, view: str | None, glasses: bool | None) -> bool:
    """True if the session passes the ``view`` and ``glasses`` options; DataError if it lacks
    the metadata one of them needs."""
    if options.view != "any":
        if view is None:
            raise DataError(folder, f"session has no <track view=...> (in session.xml), needed by view: {options.view}")
        if view != VIEW_CODES[options.view]:
            return False
    if options.glasses != "any":
        if glasses is None:
            raise DataError(folder, 'session has no <Metatag Name="Glasses">, needed by glasses: '
                                    f"{options.glasses}")
        if glasses != (options.glasses == "only"):
            return False
    return True


def _first_attr(metadata: list[tuple[Path, ET.Element]], tag: str, attr: str) -> str | None:
    """The first value of ``<tag attr=...>`` in the metadata files, or None."""
    for _, root in metadata:
        for element in root.iter(tag):
            if element.get(attr):
                return element.get(attr)
    return None


def _subject(media: Path, metadata: list[tuple[Path, ET.Element]]) -> str:
    """``S001`` from a media name ``S001-001.avi``, else ``<subject id>`` of the metadata."""
    match = SUBJECT_STEM.fullmatch(media.stem)
    subject = match[1].upper() if match else _first_attr(metadata, "subject", "id")
    if subject is None:
        raise DataError(media, "cannot tell the subject: the name is not `S001-...` and no <subject id> is given")
    return subject


def count_frames(video: Path) -> int:
    """Number of frames of a video (decoding it when the container does not say)."""
    capture = cv2.VideoCapture(str(video))
    try:
        if not capture.isOpened():
            raise DataError(video, "OpenCV cannot open this video")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if count <= 0:
            count = 0
            while capture.grab():
                count += 1
    finally:
        capture.release()
    if count == 0:
        raise DataError(video, "video holds no frames")
    return count


def read_video_frame(video: Path, index: int) -> np.ndarray:
    """Frame ``index`` (0-based) of a video as H x W x 3 BGR uint8; DataError if unreadable."""
    capture = cv2.VideoCapture(str(video))
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = capture.read()
    finally:
        capture.release()
    if not ok or image is None:
        raise DataError(video, f"cannot decode frame {index}")
    return image
