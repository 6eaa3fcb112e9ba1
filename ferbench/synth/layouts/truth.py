"""Ground truth for tests: faces drawn as a layout writer draws them, with their true eye centres."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ferbench.errors import UnknownName
from ferbench.labels import CANONICAL
from ferbench.synth.face import colorize, crop_points, eye_centres, face_crop, render_face
from ferbench.synth.identity import sample_identity, stream
from ferbench.synth.layouts.ckplus import _ck48_crop
from ferbench.synth.layouts.mmi import mmi_frame
from ferbench.synth.layouts.oulu_casia import OULU_CROP_MARGIN, OULU_CROP_SIDE, oulu_frame
from ferbench.synth.layouts.stills import STUDIOS, Still, _still_picture, _studio_identity
from ferbench.synth.layouts.wild import _wild_face

TRUTH_LAYOUTS = ("ckplus", "ckplus48", "jaffe", "bu3dfe", "nimstim", "kdef", "generic", "fer2013", "rafdb",
                 "oulu_casia", "oulu_casia_cropped", "mmi")
CROP_LAYOUTS = ("ckplus48", "fer2013", "rafdb", "generic", "oulu_casia_cropped")
"""The layouts of face crops, which their loaders flag as such (``Sample.attrs["cropped"]``; the
generic loader with its option ``cropped: true``): face alignment searches their whole picture."""


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
        elif layout in ("oulu_casia", "oulu_casia_cropped"):
            picture, landmarks = oulu_frame(sample_identity("ck", rng, key=key), label, float(rng.uniform(0.6, 1.0)), rng)
            eyes = eye_centres(landmarks)
            faces.append((picture, eyes) if layout == "oulu_casia" else
                         (face_crop(picture, landmarks, OULU_CROP_SIDE, OULU_CROP_MARGIN),
                          crop_points(eyes, landmarks, OULU_CROP_SIDE, OULU_CROP_MARGIN)))
        elif layout == "mmi":  # front views (a profile shows one eye); 11 of plan_mmi's 32 subjects wear glasses
            identity = replace(sample_identity("ck", rng, key=key), glasses=bool(rng.random() < 11 / 32))
            faces.append(mmi_frame(identity, label, float(rng.uniform(0.6, 1.0)), "0", rng))
        elif layout in ("ckplus", "ckplus48"):
            identity = sample_identity("ck", rng, key=key)
            image, landmarks = render_face(identity, label, float(rng.uniform(0.6, 1.0)), (490, 640), rng)
            faces.append(_ck48_crop(image, landmarks, rng) if layout == "ckplus48" else (image, eye_centres(landmarks)))
        else:
            studio = STUDIOS[layout]
            still = Still(key, label, float(rng.uniform(0.7, 1.0)))
            faces.append(_still_picture(seed, layout, studio, _studio_identity(seed, layout, studio, key), still))
    return faces
