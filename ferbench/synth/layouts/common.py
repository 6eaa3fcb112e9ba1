"""One writer per dataset layout: synthetic faces stored exactly as the real dataset ships.

Every writer has the signature ``write_<layout>(out_dir, shape, seed, workers=1) -> root``
and is registered in :data:`WRITERS` under the layout name. ``root`` is the folder a loader
should be pointed at. Pictures are drawn by :func:`ferbench.synth.face.render_face`; every
subject, sequence and image draws from its own random stream, so the files do not depend on
``workers`` (subjects are spread over that many processes).

Where a ``paper`` shape departs from the real set (to keep disk and time reasonable):
CK+ sequences have 6-10 frames (real: 10-60); Oulu-CASIA 6-10 frames, VL camera and Strong
illumination only; FER2013 and RAF-DB write 1/10 of the rows (2871/359/359 and 1227/307) with
the real class proportions; KDEF only the straight view; pictures are smaller than the real
ones (BU-3DFE 192x192 gray, NimStim 240x192 gray, KDEF 381x281, MMI 360x288 videos of 9-15
frames); RAF-DB only aligned faces; MMI only sessions with an Emotion label, front or profile view
(no dual view).
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ferbench.errors import DataError, UnknownName
from ferbench.labels import CANONICAL
from ferbench.synth.face import colorize, crop_points, eye_centres, face_crop, render_face
from ferbench.synth.identity import Identity, Lighting, sample_identity, stream
from ferbench.synth.plans import (
    JAFFE_CODES,
    MMI_EMOTIONS,
    CkSequence,
    CkSubject,
    MmiSession,
    check_shape,
    draw_labels,
    plan_ckplus,
    plan_jaffe,
    plan_mmi,
)

LayoutWriter = Callable[..., Path]
WRITERS: dict[str, LayoutWriter] = {}

# fast PNG: zlib level 1, SUB filter, RLE strategy (deterministic, ~3 ms for 640x490)
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB,
              cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def layout(name: str) -> Callable[[LayoutWriter], LayoutWriter]:
    """Decorator registering a writer under ``name``."""

    def register(writer: LayoutWriter) -> LayoutWriter:
        WRITERS[name] = writer
        return writer

    return register


# --------------------------------------------------------------------------- CK+ and CK+48


@layout("ckplus")
def write_ckplus(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """``cohn-kanade-images/``, ``Emotion/`` and ``Landmarks/`` of every planned sequence."""
    plan = plan_ckplus(shape, seed)
    _run([partial(_write_ck_subject, out_dir, seed, s) for s in _largest_first(plan)], workers)
    return out_dir


@layout("ckplus48")
def write_ckplus48(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """48x48 crops of the last 3 frames of each labelled sequence, in class folders."""
    plan = [replace(s, sequences=tuple(q for q in s.sequences if q.labelled)) for s in plan_ckplus(shape, seed)]
    _run([partial(_write_ck48_subject, out_dir, seed, s) for s in _largest_first(plan) if s.sequences], workers)
    return out_dir


def _ck_identity(seed: int, subject: CkSubject) -> Identity:
    return sample_identity("ck", stream(seed, "ckplus", subject.name), key=subject.name)


def _ck_frames(seed: int, subject: CkSubject, last: int | None = None
               ) -> Iterator[tuple[CkSequence, int, np.ndarray, np.ndarray]]:
    """(sequence, frame number, gray image, landmarks) of a subject's frames (only the ``last`` n)."""
    identity = _ck_identity(seed, subject)
    for seq in subject.sequences:
        first = 0 if last is None else max(0, seq.frames - last)
        for k in range(first, seq.frames):
            rng = stream(seed, "ckplus", subject.name, seq.number, k)
            image, landmarks = render_face(identity, seq.expression, seq.peak * ramp(k, seq.frames), subject.size, rng)
            yield seq, k + 1, image, landmarks


def _write_ck_subject(root: Path, seed: int, subject: CkSubject) -> None:
    tint = _ck_identity(seed, subject).tint
    for seq, frame, image, landmarks in _ck_frames(seed, subject):
        folder = Path(subject.name, f"{seq.number:03d}")
        stem = f"{subject.name}_{seq.number:03d}_{frame:08d}"
        _write_image(root / "cohn-kanade-images" / folder / f"{stem}.png",
                     colorize(image, tint) if subject.colour else image)
        _write_text(root / "Landmarks" / folder / f"{stem}_landmarks.txt",
                    "".join(f"{x:16.7e}{y:16.7e}\n" for x, y in landmarks))
        if seq.labelled and frame == seq.frames:
            code = float(CANONICAL.index(seq.expression))
            _write_text(root / "Emotion" / folder / f"{stem}_emotion.txt", f"{code:16.7e}\n")


def _write_ck48_subject(root: Path, seed: int, subject: CkSubject) -> None:
    for seq, frame, image, landmarks in _ck_frames(seed, subject, last=3):
        stem = f"{subject.name}_{seq.number:03d}_{frame:08d}"
        _write_image(root / seq.expression / f"{stem}.png", _ck48_crop(image, landmarks)[0])


def _ck48_crop(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tight CK+48 crop (eyebrows to chin, 5% margin, 48x48) and its eye centres."""
    return face_crop(image, landmarks, 48, margin=0.05), crop_points(eye_centres(landmarks), landmarks, 48, 0.05)


# --------------------------------------------------------------------------- still pictures of subjects


@dataclass(frozen=True)
class Still:
    """One picture of a subject: file path relative to the root, expression and intensity."""

    path: str
    expression: str
    intensity: float


@dataclass(frozen=True)
class Studio:
    """How a still-image dataset was photographed.

    ``framing`` (face width fraction, centre x, centre y) replaces the population's framing;
    ``background`` its background grey; ``crop`` stores a square face crop of that side.
    """

    population: str
    size: tuple[int, int]
    colour: bool = False
    framing: tuple[float, float, float] | None = None
    background: float | None = None
    crop: int | None = None


STUDIOS: dict[str, Studio] = {
    "jaffe": Studio("jaffe", (256, 256)),
    "generic": Studio("ck", (256, 256), crop=112),
    "bu3dfe": Studio("ck", (192, 192), framing=(0.62, 0.5, 0.54), background=12.0),
    "nimstim": Studio("ck", (240, 192), framing=(0.55, 0.5, 0.5), background=225.0),
    "kdef": Studio("ck", (381, 281), colour=True, framing=(0.55, 0.5, 0.45)),
}


def _write_all_stills(root: Path, seed: int, dataset: str, studio: Studio, stills: dict[str, list[Still]],
                      workers: int) -> None:
    jobs = [partial(_write_subject_stills, root, seed, dataset, studio, s, items) for s, items in stills.items()]
    _run(jobs, workers)


def _write_subject_stills(root: Path, seed: int, dataset: str, studio: Studio, subject: str,
                          stills: list[Still]) -> None:
    identity = _studio_identity(seed, dataset, studio, subject)
    for still in stills:
        _write_image(root / still.path, _still_picture(seed, dataset, studio, identity, still)[0])


def _studio_identity(seed: int, dataset: str, studio: Studio, subject: str) -> Identity:
    identity = sample_identity(studio.population, stream(seed, dataset, subject), key=subject)
    if studio.framing is not None:
        frac, cx, cy = studio.framing
        identity = replace(identity, face_frac=frac, center=(cx, cy))
    if studio.background is not None:
        identity = replace(identity, background=studio.background)
    return identity


def _still_picture(seed: int, dataset: str, studio: Studio, identity: Identity, still: Still
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One still as the studio stores it (gray, or BGR when ``colour``) and its eye centres."""
    image, landmarks = render_face(identity, still.expression, still.intensity, studio.size,
                                   stream(seed, dataset, still.path))
    eyes = eye_centres(landmarks)
    if studio.crop is not None:
        eyes = crop_points(eyes, landmarks, studio.crop, 0.2)
        image = face_crop(image, landmarks, studio.crop, margin=0.2)
    return (colorize(image, identity.tint) if studio.colour else image), eyes


# --------------------------------------------------------------------------- JAFFE


@layout("jaffe")
def write_jaffe(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """One flat folder of 256x256 gray TIFFs ``KA.AN1.39.tiff`` (population ``jaffe``)."""
    stills: dict[str, list[Still]] = {}
    for im in plan_jaffe(shape, seed):
        intensity = stream(seed, "jaffe", im.name, "intensity").uniform(0.85, 1.0)
        stills.setdefault(im.subject, []).append(Still(im.name, JAFFE_CODES[im.code], intensity))
    _write_all_stills(out_dir, seed, "jaffe", STUDIOS["jaffe"], stills, workers)
    return out_dir


# --------------------------------------------------------------------------- Oulu-CASIA

OULU_FOLDERS = {"anger": "Anger", "disgust": "Disgust", "fear": "Fear", "happy": "Happiness",
                "sadness": "Sadness", "surprise": "Surprise"}


@layout("oulu_casia")
def write_oulu_casia(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """``OriginalImg/VL/Strong/P001/Anger/000.jpeg`` (320x240 colour) and the same 128x128 face
    crops under both cropped copies, ``PreProcess_Img/VL_Acropped/Strong/`` and
    ``Oulu_CASIA_VL_Cropped/Strong/``: 80 subjects (small: 10) x 6 sequences of 6-10 frames."""
    subjects = [f"P{i:03d}" for i in range(1, (80 if check_shape(shape) == "paper" else 10) + 1)]
    _run([partial(_write_oulu_subject, out_dir, seed, s) for s in subjects], workers)
    return out_dir


OULU_CROPPED = ("PreProcess_Img/VL_Acropped/Strong", "Oulu_CASIA_VL_Cropped/Strong")


def _write_oulu_subject(root: Path, seed: int, subject: str) -> None:
    identity = sample_identity("ck", stream(seed, "oulu_casia", subject), key=subject)
    rng = stream(seed, "oulu_casia", subject, "frames")
    for expression, folder in OULU_FOLDERS.items():
        frames = int(rng.integers(6, 11))
        for k in range(frames):
            frame_rng = stream(seed, "oulu_casia", subject, folder, k)
            image, landmarks = render_face(identity, expression, ramp(k, frames), (240, 320), frame_rng)
            picture = colorize(image, identity.tint)
            name = Path(subject, folder, f"{k:03d}.jpeg")
            _write_image(root / "OriginalImg/VL/Strong" / name, picture)
            crop = face_crop(picture, landmarks, 128, margin=0.1)
            for top in OULU_CROPPED:
                _write_image(root / top / name, crop)


# --------------------------------------------------------------------------- MMI

MMI_SIZE = (288, 360)  # (height, width): half the real 720x576
MMI_FPS = 25.0
MMI_METADATA = """<?xml version="1.0" encoding="utf-8"?>
<Metadata>
  <Metatag Name="Emotion" Value="{code}"/>
  <Metatag Name="Glasses" Value="{glasses}"/>
</Metadata>
"""
MMI_SESSION = """<?xml version="1.0" encoding="utf-8"?>
<session sessionId="{session}">
  <subject id="{subject}"/>
  <track id="0" view="{view}" type="Video" filename="{stem}.avi"/>
</session>
"""
MMI_PROFILE_WIDTH = 0.55  # a profile frame: the front view squeezed to this width (no head turn is drawn)


@layout("mmi")
def write_mmi(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """``Sessions/<n>/S001-<n>.avi`` (MJPG, 360x288 colour, 25 fps), its metadata ``S001-<n>.xml``
    (``<Metatag Name="Emotion" Value="1-6"/>`` and ``Name="Glasses" Value="yes|no"``) and
    ``session.xml`` (subject, track view 0 front or 1 profile): neutral -> apex in the middle ->
    neutral. Subjects with glasses wear them in every frame; a profile video shows the face
    squeezed sideways. Paper: 32 subjects, 236 sessions, 209 front-view, 125 of the 21
    subjects without glasses; small: 12, 84, 72, 63 of 9."""
    sessions: dict[str, list[MmiSession]] = {}
    for session in plan_mmi(shape, seed):
        sessions.setdefault(session.subject, []).append(session)
    _run([partial(_write_mmi_subject, out_dir, seed, s, items) for s, items in sessions.items()], workers)
    return out_dir


def _write_mmi_subject(root: Path, seed: int, subject: str, sessions: list[MmiSession]) -> None:
    identity = replace(sample_identity("ck", stream(seed, "mmi", subject), key=subject), glasses=sessions[0].glasses)
    for session in sessions:
        folder = root / "Sessions" / str(session.session)
        frames = []
        for k in range(session.frames):
            intensity = session.peak * apex(k, session.frames)
            rng = stream(seed, "mmi", session.session, k)
            image, _ = render_face(identity, session.expression, intensity, MMI_SIZE, rng)
            frame = colorize(image, identity.tint)
            frames.append(frame if session.view == "0" else _squeezed(frame, MMI_PROFILE_WIDTH))
        _write_video(folder / f"{session.stem}.avi", frames, MMI_FPS)
        _write_text(folder / f"{session.stem}.xml", MMI_METADATA.format(
            code=MMI_EMOTIONS.index(session.expression) + 1, glasses="yes" if session.glasses else "no"))
        _write_text(folder / "session.xml", MMI_SESSION.format(session=session.session, subject=subject,
                                                              view=session.view, stem=session.stem))


def _squeezed(picture: np.ndarray, width: float) -> np.ndarray:
    """``picture`` squeezed horizontally to ``width`` (a fraction) of its width and centred,
    its edge columns repeated over the freed sides."""
    height, full = picture.shape[:2]
    narrow = cv2.resize(picture, (round(full * width), height), interpolation=cv2.INTER_AREA)
    left = (full - narrow.shape[1]) // 2
    return cv2.copyMakeBorder(narrow, 0, 0, left, full - narrow.shape[1] - left, cv2.BORDER_REPLICATE)


# --------------------------------------------------------------------------- FER2013

FER_CODES = ("anger", "disgust", "fear", "happy", "sadness", "surprise", "neutral")  # csv code = index
FER_FOLDERS = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
               "sadness": "sad", "surprise": "surprise", "neutral": "neutral"}
FER_PROPORTIONS = {"anger": 4953, "disgust": 547, "fear": 5121, "happy": 8989,
                   "sadness": 6077, "surprise": 4002, "neutral": 6198}  # the real 35,887 rows
FER_SPLITS = {"paper": {"Training": 2871, "PublicTest": 359, "PrivateTest": 359},  # 1/10 of the real set
              "small": {"Training": 300, "PublicTest": 60, "PrivateTest": 60}}


@layout("fer2013")
def write_fer2013(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """``fer2013/fer2013.csv`` (emotion,pixels,Usage); returns the folder holding the csv."""
    root = out_dir / "fer2013"
    lines = ["emotion,pixels,Usage\n"]
    for usage, label, _, face in _fer_faces(shape, seed, workers):
        lines.append(f"{FER_CODES.index(label)},{' '.join(map(str, face.ravel().tolist()))},{usage}\n")
    _write_text(root / "fer2013.csv", "".join(lines))
    return root


@layout("fer2013_folders")
def write_fer2013_folders(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """``train/<class>/Training_<id>.jpg`` and ``test/<class>/{PublicTest,PrivateTest}_<id>.jpg``."""
    for usage, label, image_id, face in _fer_faces(shape, seed, workers):
        split = "train" if usage == "Training" else "test"
        _write_image(out_dir / split / FER_FOLDERS[label] / f"{usage}_{image_id}.jpg", face)
    return out_dir


def _fer_faces(shape: str, seed: int, workers: int) -> list[tuple[str, str, int, np.ndarray]]:
    """(usage, label, image id, 48x48 face) of every row, Training first."""
    rows = []
    for usage, n in FER_SPLITS[check_shape(shape)].items():
        rng = stream(seed, "fer2013", usage)
        ids = 10_000_000 + np.cumsum(rng.integers(1, 5000, n))
        rows += [(usage, label, int(i)) for label, i in zip(draw_labels(rng, n, FER_PROPORTIONS), ids)]
    faces = _wild_faces(seed, "fer2013", [(f"{u}{i}", label) for u, label, i in rows], 48, workers)
    return [(*row, face) for row, face in zip(rows, faces)]


def _wild_faces(seed: int, dataset: str, items: list[tuple[str, str]], side: int, workers: int) -> list[np.ndarray]:
    """In-the-wild-like face crops (``side`` px) of fresh identities, one per (key, label)."""
    chunks = [items[k:k + 250] for k in range(0, len(items), 250)]
    return [face for chunk in _run([partial(_wild_chunk, seed, dataset, c, side) for c in chunks], workers)
            for face in chunk]


def _wild_chunk(seed: int, dataset: str, items: list[tuple[str, str]], side: int) -> list[np.ndarray]:
    return [_wild_face(seed, dataset, key, label, side)[0] for key, label in items]


def _wild_face(seed: int, dataset: str, key: str, label: str, side: int) -> tuple[np.ndarray, np.ndarray]:
    """An in-the-wild-like crop (``side`` px: loose, off-centre, mixed populations and light)
    and its eye centres."""
    rng = stream(seed, dataset, key)
    identity = sample_identity("jaffe" if rng.random() < 0.25 else "ck", rng, key=key)
    lighting = Lighting(direction=rng.uniform(-1, 1), strength=rng.uniform(0.0, 0.3),
                        contrast=rng.uniform(0.7, 1.2), brightness=rng.uniform(-25, 25),
                        noise=rng.uniform(1.0, 3.0))
    intensity = 0.0 if label == "neutral" else rng.uniform(0.5, 1.0)
    image, landmarks = render_face(identity, label, intensity, (128, 128), rng, lighting)
    shift = rng.normal(0.0, 0.04, 2) * np.ptp(landmarks[:, 0])
    margin = rng.uniform(0.0, 0.2)
    eyes = crop_points(eye_centres(landmarks), landmarks + shift, side, margin)
    return face_crop(image, landmarks + shift, side, margin), eyes


# --------------------------------------------------------------------------- generic class folders


@layout("generic")
def write_generic(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """``<label>/<subject>_<n>.png`` (112x112 face crops, all 8 labels) and ``manifest.csv``."""
    subjects, repeats = (20, 2) if check_shape(shape) == "paper" else (6, 1)
    stills = {}
    for subject in (f"P{i:02d}" for i in range(1, subjects + 1)):
        stills[subject] = [Still(f"{label}/{subject}_{n}.png", label,
                                 stream(seed, "generic", subject, label, n).uniform(0.7, 1.0))
                           for label in CANONICAL for n in range(1, repeats + 1)]
    _write_all_stills(out_dir, seed, "generic", STUDIOS["generic"], stills, workers)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["path", "label", "subject"])
    writer.writerows(sorted((st.path, st.expression, subject) for subject, items in stills.items() for st in items))
    _write_text(out_dir / "manifest.csv", text.getvalue())
    return out_dir


# --------------------------------------------------------------------------- BU-3DFE, NimStim, KDEF, RAF-DB

BU_CODES = {"AN": "anger", "DI": "disgust", "FE": "fear", "HA": "happy", "SA": "sadness", "SU": "surprise"}
BU_ETHNICITIES = {"WH": 51, "AE": 24, "BL": 9, "LA": 8, "IN": 6, "AM": 2}  # rough real proportions


@layout("bu3dfe")
def write_bu3dfe(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """``F0001/F0001_AN04WH_F2D.bmp``: 56 F + 44 M subjects (small 5 + 5), 6 expressions x
    intensities 01-04 plus ``NE00``; 192x192 gray frontal textures on a dark background."""
    women, men = (56, 44) if check_shape(shape) == "paper" else (5, 5)
    names = [f"F{i:04d}" for i in range(1, women + 1)] + [f"M{i:04d}" for i in range(1, men + 1)]
    stills = {}
    for subject in names:
        ethnicity = draw_labels(stream(seed, "bu3dfe", subject, "ethnicity"), 1, BU_ETHNICITIES)[0]
        items = [Still(f"{subject}/{subject}_NE00{ethnicity}_F2D.bmp", "neutral", 0.0)]
        items += [Still(f"{subject}/{subject}_{code}{level:02d}{ethnicity}_F2D.bmp", label, level / 4)
                  for code, label in BU_CODES.items() for level in range(1, 5)]
        stills[subject] = items
    _write_all_stills(out_dir, seed, "bu3dfe", STUDIOS["bu3dfe"],
                      stills, workers)
    return out_dir


NIMSTIM_CODES = {"AN": "anger", "CA": "neutral", "DI": "disgust", "FE": "fear", "HA": "happy",
                 "NE": "neutral", "SA": "sadness", "SP": "surprise"}  # calm is drawn as a relaxed neutral


@layout("nimstim")
def write_nimstim(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """Flat folder of ``01F_HA_O.bmp`` (240x192 gray): 43 actors and 646 images (small: 8
    actors, all 16 code x mouth pairs). Mouth ``O`` (open) is drawn at full intensity, ``C`` at 0.6."""
    actors, drop = (43, 43 * 16 - 646) if check_shape(shape) == "paper" else (8, 0)
    rng = stream(seed, "nimstim-plan")
    names = [f"{i:02d}{'F' if rng.random() < 0.42 else 'M'}" for i in range(1, actors + 1)]
    pairs = [(name, code, mouth) for name in names for code in NIMSTIM_CODES for mouth in "OC"]
    dropped = set(rng.choice(len(pairs), drop, replace=False).tolist())
    stills: dict[str, list[Still]] = {}
    for k, (name, code, mouth) in enumerate(pairs):
        if k not in dropped:
            stills.setdefault(name, []).append(
                Still(f"{name}_{code}_{mouth}.bmp", NIMSTIM_CODES[code], 1.0 if mouth == "O" else 0.6))
    _write_all_stills(out_dir, seed, "nimstim", STUDIOS["nimstim"],
                      stills, workers)
    return out_dir


KDEF_CODES = {"AF": "fear", "AN": "anger", "DI": "disgust", "HA": "happy", "NE": "neutral", "SA": "sadness",
              "SU": "surprise"}


@layout("kdef")
def write_kdef(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """``KDEF/AF01/AF01ANS.JPG``: sessions A and B of 35 women and 35 men (small 5 + 5), the 7
    expressions in the straight view ``S`` only (381x281 colour); returns the ``KDEF/`` folder."""
    ids = 35 if check_shape(shape) == "paper" else 5
    stills: dict[str, list[Still]] = {}
    for sex in "FM":
        for i in range(1, ids + 1):
            subject = f"{sex}{i:02d}"
            stills[subject] = [Still(f"KDEF/{session}{subject}/{session}{subject}{code}S.JPG", label,
                                     stream(seed, "kdef", subject, session, code).uniform(0.8, 1.0))
                               for session in "AB" for code, label in KDEF_CODES.items()]
    _write_all_stills(out_dir, seed, "kdef", STUDIOS["kdef"],
                      stills, workers)
    return out_dir / "KDEF"


RAF_CODES = {"surprise": 1, "fear": 2, "disgust": 3, "happy": 4, "sadness": 5, "anger": 6, "neutral": 7}
RAF_PROPORTIONS = {"surprise": 1619, "fear": 355, "disgust": 877, "happy": 5957, "sadness": 2460,
                   "anger": 867, "neutral": 3204}  # the real 15,339 images
RAF_SPLITS = {"paper": {"train": 1227, "test": 307}, "small": {"train": 200, "test": 50}}  # paper: 1/10


@layout("rafdb")
def write_rafdb(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """``basic/Image/aligned/train_00001_aligned.jpg`` (100x100 colour face crops) and
    ``basic/EmoLabel/list_patition_label.txt``; returns the folder holding ``basic/``."""
    rows = []
    for usage, n in RAF_SPLITS[check_shape(shape)].items():
        labels = draw_labels(stream(seed, "rafdb", usage), n, RAF_PROPORTIONS)
        rows += [(f"{usage}_{k:05d}", label) for k, label in enumerate(labels, start=1)]
    for (name, _), face in zip(rows, _wild_faces(seed, "rafdb", rows, 100, workers)):
        _write_image(out_dir / "basic/Image/aligned" / f"{name}_aligned.jpg", colorize(face, (0.9, 1.0, 1.1)))
    _write_text(out_dir / "basic/EmoLabel/list_patition_label.txt",
                "".join(f"{name}.jpg {RAF_CODES[label]}\n" for name, label in rows))
    return out_dir


# --------------------------------------------------------------------------- helpers


def ramp(k: int, frames: int) -> float:
    """Intensity of frame ``k`` (0-based) of an onset-to-peak sequence: 0 first, 1 last, smooth."""
    return _smoothstep(k / max(frames - 1, 1))


def apex(k: int, frames: int) -> float:
    """Intensity of frame ``k`` (0-based) of an onset-apex-offset sequence: 0 first and last,
    1 over the middle quarter (the apex), smooth in between."""
    rise = 1 - abs(2 * k / max(frames - 1, 1) - 1)  # 0 at the ends, 1 at the middle frame
    return _smoothstep(min(1.0, rise / 0.75))


def _smoothstep(x: float) -> float:
    return x * x * (3 - 2 * x)


def _largest_first(plan: list[CkSubject]) -> list[CkSubject]:
    """Subjects ordered by frame count, largest first (keeps worker processes evenly busy)."""
    return sorted(plan, key=lambda s: -sum(q.frames for q in s.sequences))


def _run(jobs: list[Callable[[], Any]], workers: int) -> list[Any]:
    """Results of ``jobs`` in order, computed in ``workers`` processes (in this one if 1).

    Workers are spawned, not forked: a fork of a process whose OpenCV (or torch) thread pool
    is running can deadlock. Workers exit a fraction of a second after this process dies, however it dies.
    """
    if workers <= 1 or len(jobs) <= 1 or multiprocessing.current_process().daemon:  # daemons cannot fork
        return [job() for job in jobs]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)) as pool:
        return list(pool.map(_call, jobs))


def _start_worker(parent: int) -> None:
    """Set up a worker: one OpenCV thread, and an exit as soon as process ``parent`` is gone
    (a parent killed with SIGKILL cannot stop its workers; they would go on writing files)."""
    cv2.setNumThreads(1)
    threading.Thread(target=_exit_with, args=(parent,), name="exit-with-parent", daemon=True).start()


def _exit_with(parent: int) -> None:
    """Poll every 0.1 s whether this process still has ``parent`` as its parent; exit when not."""
    while os.getppid() == parent:
        time.sleep(0.1)
    os._exit(1)


def _call(job: Callable[[], Any]) -> Any:
    return job()


def _write_image(path: Path, image: np.ndarray) -> None:
    """Encode by suffix (PNG with :data:`PNG_PARAMS`) and write, creating folders."""
    params = PNG_PARAMS if path.suffix == ".png" else []
    ok, data = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise DataError(path, f"OpenCV could not encode a {image.shape} image as {path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.tobytes())


def _write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """Write H x W x 3 BGR frames as a Motion-JPEG ``.avi`` (OpenCV's built-in encoder), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    try:
        if not writer.isOpened():
            raise DataError(path, "OpenCV cannot write a Motion-JPEG video here")
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --------------------------------------------------------------------------- ground truth for tests

TRUTH_LAYOUTS = ("ckplus", "ckplus48", "jaffe", "bu3dfe", "nimstim", "kdef", "generic", "fer2013", "rafdb")


def truth_faces(layout: str, n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` pictures of fresh subjects drawn as the ``layout`` writer draws them, each with its
    true eye centres (2 x 2 pixels, image-left eye first; the means of landmarks 36-41, 42-47).

    For tests and benchmarks of face alignment: the written twins do not store eye positions
    (the real datasets do not either). Layouts: :data:`TRUTH_LAYOUTS`.
    """
    if layout not in TRUTH_LAYOUTS:
        raise UnknownName("layout with ground-truth eyes", layout, TRUTH_LAYOUTS)
    faces = []
    for k in range(n):
        rng = stream(seed, "truth", layout, k)
        label = CANONICAL[int(rng.integers(len(CANONICAL)))]
        key = f"{layout}-truth-{k}"
        if layout in ("fer2013", "rafdb"):
            face, eyes = _wild_face(seed, layout, key, label, 48 if layout == "fer2013" else 100)
            faces.append((colorize(face, (0.9, 1.0, 1.1)) if layout == "rafdb" else face, eyes))
        elif layout in ("ckplus", "ckplus48"):
            identity = sample_identity("ck", rng, key=key)
            image, landmarks = render_face(identity, label, float(rng.uniform(0.6, 1.0)), (490, 640), rng)
            faces.append(_ck48_crop(image, landmarks) if layout == "ckplus48" else (image, eye_centres(landmarks)))
        else:
            studio = STUDIOS[layout]
            still = Still(key, label, float(rng.uniform(0.7, 1.0)))
            faces.append(_still_picture(seed, layout, studio, _studio_identity(seed, layout, studio, key), still))
    return faces
