"""MMI: ``Sessions/<n>/`` Motion-JPEG videos with their metadata and ``session.xml``."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from ferbench.synth.face import colorize, eye_centres, render_face
from ferbench.synth.identity import Identity, sample_identity, stream
from ferbench.synth.layouts.common import _run, _write_text, _write_video, apex, layout
from ferbench.synth.plans import MMI_EMOTIONS, MmiSession, plan_mmi

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
            frames.append(mmi_frame(identity, session.expression, intensity, session.view, rng)[0])
        _write_video(folder / f"{session.stem}.avi", frames, MMI_FPS)
        _write_text(folder / f"{session.stem}.xml", MMI_METADATA.format(
            code=MMI_EMOTIONS.index(session.expression) + 1, glasses="yes" if session.glasses else "no"))
        _write_text(folder / "session.xml", MMI_SESSION.format(session=session.session, subject=subject,
                                                              view=session.view, stem=session.stem))


def mmi_frame(identity: Identity, expression: str, intensity: float, view: str,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One 360x288 colour video frame (``view`` "0" front, "1" profile: squeezed, see
    :func:`_squeezed`) and its drawn eye centres (2 x 2 px, image-left eye first)."""
    image, landmarks = render_face(identity, expression, intensity, MMI_SIZE, rng)
    frame, eyes = colorize(image, identity.tint), eye_centres(landmarks)
    return (frame, eyes) if view == "0" else _squeezed(frame, eyes, MMI_PROFILE_WIDTH)


def _squeezed(picture: np.ndarray, points: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """``picture`` squeezed horizontally to ``width`` (a fraction) of its width and centred, its
    edge columns repeated over the freed sides, and where ``points`` (N x 2 px) land in it."""
    height, full = picture.shape[:2]
    narrow = cv2.resize(picture, (round(full * width), height), interpolation=cv2.INTER_AREA)
    left = (full - narrow.shape[1]) // 2
    moved = points.copy()
    moved[:, 0] = (points[:, 0] + 0.5) * narrow.shape[1] / full - 0.5 + left
    return cv2.copyMakeBorder(narrow, 0, 0, left, full - narrow.shape[1] - left, cv2.BORDER_REPLICATE), moved
