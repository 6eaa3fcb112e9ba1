"""Ground truth for tests: faces drawn as a layout writer draws them, with their true eye centres."""

from __future__ import annotations

import numpy as np

from ferbench.errors import UnknownName
from ferbench.labels import CANONICAL
from ferbench.synth.face import colorize, eye_centres, render_face
from ferbench.synth.identity import sample_identity, stream
from ferbench.synth.layouts.ckplus import _ck48_crop
from ferbench.synth.layouts.stills import STUDIOS, Still, _still_picture, _studio_identity
from ferbench.synth.layouts.wild import _wild_face

TRUTH_LAYOUTS = ("ckplus", "ckplus48", "jaffe", "bu3dfe", "nimstim", "kdef", "generic", "fer2013", "rafdb")
CROP_LAYOUTS = ("ckplus48", "fer2013", "rafdb", "generic")
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
        elif layout in ("ckplus", "ckplus48"):
            identity = sample_identity("ck", rng, key=key)
            image, landmarks = render_face(identity, label, float(rng.uniform(0.6, 1.0)), (490, 640), rng)
            faces.append(_ck48_crop(image, landmarks, rng) if layout == "ckplus48" else (image, eye_centres(landmarks)))
        else:
            studio = STUDIOS[layout]
            still = Still(key, label, float(rng.uniform(0.7, 1.0)))
            faces.append(_still_picture(seed, layout, studio, _studio_identity(seed, layout, studio, key), still))
    return faces
