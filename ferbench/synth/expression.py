"""FACS-like expressions: action-unit recipes and the 68 landmarks they move.

Each canonical label is a recipe of action units (AUs) at full intensity, after the
prototypes of Ekman and Friesen's EMFACS (happy = AU6+12+25, surprise = AU1+2+5+26, ...).
An expression at intensity ``t`` activates every AU of its recipe at ``t`` x recipe weight x
the subject's expressiveness x its personal AU gain, so ``t = 0`` is the neutral face and a
CK+-like sequence is a ramp of ``t`` from 0 (onset) to the peak.

Landmarks follow the iBUG-68 order (0-16 jaw, 17-21 and 22-26 brows, 27-35 nose, 36-41 and
42-47 eyes, 48-59 outer lips, 60-67 inner lips), image-left side first, in face units
(see :mod:`ferbench.synth.identity`).
"""

from __future__ import annotations

import numpy as np

from ferbench.errors import UnknownName
from ferbench.labels import CANONICAL
from ferbench.synth.identity import Identity

#: AU weights at full intensity for each canonical label.
RECIPES: dict[str, dict[str, float]] = {
    "neutral": {},
    "anger": {"AU4": 1.0, "AU5": 0.4, "AU7": 0.9, "AU23": 1.0, "AU24": 0.7},
    "contempt": {"AU14": 1.0},
    "disgust": {"AU4": 0.5, "AU9": 1.0, "AU10": 0.7, "AU15": 0.5, "AU17": 0.6},
    "fear": {"AU1": 0.9, "AU2": 0.6, "AU4": 0.7, "AU5": 1.0, "AU20": 1.0, "AU25": 1.0, "AU26": 0.4},
    "happy": {"AU6": 0.9, "AU12": 1.0, "AU25": 0.7},
    "sadness": {"AU1": 1.0, "AU4": 0.6, "AU15": 1.0, "AU17": 0.7},
    "surprise": {"AU1": 1.0, "AU2": 1.0, "AU5": 0.9, "AU25": 0.8, "AU26": 0.8, "AU27": 0.3},
}

# Landmark moves of each AU at activation 1: (indices, outward dx, dy) in face units.
# "Outward" is away from the vertical midline, so one entry moves both sides symmetrically.
_EYE_UPPER, _EYE_LOWER = (37, 38, 43, 44), (40, 41, 46, 47)
_CORNERS = (48, 54, 60, 64)
_UPPER_LIP, _LOWER_LIP = (49, 50, 51, 52, 53), (55, 56, 57, 58, 59)
_INNER_UPPER, _INNER_LOWER = (61, 62, 63), (65, 66, 67)
_MOVES: dict[str, list[tuple[tuple[int, ...], float, float]]] = {
    "AU1": [((21, 22), -0.01, -0.1), ((20, 23), 0, -0.085), ((19, 24), 0, -0.06),
            ((18, 25), 0, -0.035), ((17, 26), 0, -0.015)],
    "AU2": [((17, 26), 0, -0.11), ((18, 25), 0, -0.1), ((19, 24), 0, -0.07),
            ((20, 23), 0, -0.035), ((21, 22), 0, -0.01)],
    "AU4": [((21, 22), -0.035, 0.07), ((20, 23), -0.025, 0.06), ((19, 24), -0.01, 0.045),
            ((18, 25), 0, 0.03), ((17, 26), 0, 0.02), (_EYE_UPPER, 0, 0.012)],
    "AU5": [(_EYE_UPPER, 0, -0.045), ((36, 39, 42, 45), 0, -0.005)],
    "AU6": [(_EYE_LOWER, 0, -0.03), ((36, 45), -0.005, -0.012), ((37, 44), 0, 0.008)],
    "AU7": [(_EYE_LOWER, 0, -0.028), (_EYE_UPPER, 0, 0.012)],
    "AU9": [((31, 35), 0.015, -0.05), ((32, 34), 0, -0.04), ((33,), 0, -0.03), ((30,), 0, -0.02),
            ((29,), 0, -0.01), ((49, 53), 0, -0.04), ((50, 51, 52), 0, -0.05),
            (_INNER_UPPER, 0, -0.03), ((21, 22), 0, 0.03), ((20, 23), 0, 0.02)],
    "AU10": [((49, 53), 0, -0.05), ((50, 51, 52), 0, -0.07), (_INNER_UPPER, 0, -0.05),
             ((48, 54), 0, -0.01), ((31, 35), 0, -0.015)],
    "AU12": [(_CORNERS, 0.08, -0.09), ((49, 53), 0.04, -0.045), ((55, 59), 0.04, -0.04),
             ((61, 63), 0.03, -0.03), ((65, 67), 0.03, -0.025)],
    "AU15": [(_CORNERS, -0.01, 0.07), ((49, 53), 0, 0.02), ((55, 59), 0, 0.035), ((65, 67), 0, 0.03)],
    "AU17": [(_LOWER_LIP, 0, -0.03), ((57,), 0, -0.008), (_INNER_LOWER, 0, -0.03),
             ((7, 8, 9), 0, -0.025), ((50, 51, 52), 0, -0.01), (_CORNERS, 0, 0.015)],
    "AU20": [(_CORNERS, 0.09, 0.015), ((49, 53, 55, 59), 0.045, 0), ((50, 52), 0.015, 0),
             ((56, 57, 58), 0, -0.01), ((50, 51, 52), 0, 0.008)],
    "AU23": [(_CORNERS, -0.035, 0), ((49, 53, 55, 59), -0.015, 0), (_UPPER_LIP, 0, 0.02),
             (_LOWER_LIP, 0, -0.02)],
    "AU24": [(_UPPER_LIP, 0, 0.025), (_LOWER_LIP, 0, -0.025), (_CORNERS, -0.015, 0)],
    "AU25": [(_INNER_UPPER, 0, -0.02), ((50, 51, 52), 0, -0.012), (_INNER_LOWER, 0, 0.03),
             ((55, 59), 0, 0.025), ((56, 57, 58), 0, 0.03)],
    "AU26": [(_INNER_LOWER, 0, 0.12), ((56, 57, 58), 0, 0.12), ((55, 59), 0, 0.09),
             (_CORNERS, -0.01, 0.025), (_INNER_UPPER, 0, -0.01), ((8,), 0, 0.13),
             ((7, 9), 0, 0.12), ((6, 10), 0, 0.095), ((5, 11), 0, 0.065), ((4, 12), 0, 0.035),
             ((3, 13), 0, 0.012)],
}
_MOVES["AU27"] = [(idx, dx * 1.9 - (0.02 if idx == _CORNERS else 0), dy * 1.9) for idx, dx, dy in _MOVES["AU26"]]
# Symmetric landmark pairs (image-left, image-right): the left one is built, the right mirrored.
_PAIRS = [(i, 26 - (i - 17)) for i in range(17, 22)] + [(31, 35), (32, 34)] + [
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
    (48, 54), (49, 53), (50, 52), (59, 55), (58, 56), (60, 64), (61, 63), (67, 65),
]
_MIRROR = {a: b for pair in _PAIRS for a, b in (pair, pair[::-1])}
# AU14 (dimpler) is unilateral: it moves the mouth corner on the subject's contempt side only
# (given here for the image-right side, mirrored for the left).
_AU14_RIGHT = [((54, 64), 0.05, -0.055), ((53, 55), 0.02, -0.02), ((63, 65), 0.015, -0.015)]


def action_units(identity: Identity, expression: str, intensity: float) -> dict[str, float]:
    """AU activations (0 to ~1.3) of ``expression`` at ``intensity`` in [0, 1] for this subject.

    Intensity 1 is the subject's own peak: recipe weight x ``expressiveness`` x AU gain.
    """
    if expression not in RECIPES:
        raise UnknownName("expression", expression, CANONICAL)
    t = float(np.clip(intensity, 0.0, 1.0)) * identity.expressiveness
    return {au: min(w * t * identity.gain(au), 1.3) for au, w in RECIPES[expression].items()}


def neutral_points(identity: Identity) -> np.ndarray:
    """The subject's 68 neutral landmarks, shape (68, 2), face units."""
    p = np.zeros((68, 2), np.float64)
    # jaw: an ellipse below the ear line that narrows towards the chin
    y0 = identity.eye_y + 0.04
    phi = np.linspace(0.0, np.pi, 17)
    width = 1.0 - (1.0 - identity.jaw) * np.sin(phi) ** 2 * 0.75
    p[0:17, 0] = -np.cos(phi) * width
    p[0:17, 1] = y0 + (identity.aspect - y0) * np.sin(phi)
    # image-left brow (outer to inner) and eye, mirrored below
    cx, ey, ew, eh = -identity.eye_spacing, identity.eye_y, identity.eye_width, identity.eye_open
    t = (np.arange(5) + 0.3) / 4.6
    p[17:22, 0] = cx + ew * (-1.3 + 2.35 * np.arange(5) / 4)
    p[17:22, 1] = ey - identity.brow_gap - identity.brow_arch * np.sin(np.pi * t)
    p[36:42] = [(cx - ew, ey + 0.01), (cx - 0.35 * ew, ey - eh), (cx + 0.3 * ew, ey - 0.95 * eh),
                (cx + ew, ey + 0.005), (cx + 0.3 * ew, ey + 0.75 * eh), (cx - 0.35 * ew, ey + 0.75 * eh)]
    # nose: bridge 27-30 down to the tip, nostril base 31-35
    ny, nw = identity.nose_y, identity.nose_width
    p[27:31, 1] = ey + (ny - 0.06 - ey) * np.arange(4) / 3
    p[31:34] = [(-nw, ny - 0.04), (-0.5 * nw, ny - 0.005), (0.0, ny)]
    # mouth: outer lip 48-59, inner lip 60-67 (closed: the inner lips meet on the lip line)
    my, mw, lt = identity.mouth_y, identity.mouth_width, identity.lip_thickness
    ut = 0.9 * lt
    p[48:52] = [(-mw, my), (-0.55 * mw, my - 0.8 * ut), (-0.18 * mw, my - 1.05 * ut), (0.0, my - 0.9 * ut)]
    p[57:60] = [(0.0, my + 1.15 * lt), (-0.2 * mw, my + 1.12 * lt), (-0.55 * mw, my + 0.95 * lt)]
    p[60:63] = [(-0.88 * mw, my), (-0.35 * mw, my - 0.005), (0.0, my - 0.005)]
    p[66:68] = [(0.0, my + 0.005), (-0.35 * mw, my + 0.005)]
    for left, right in _PAIRS:
        p[right] = (-p[left][0], p[left][1])
    return p


def face_points(identity: Identity, aus: dict[str, float]) -> np.ndarray:
    """The 68 landmarks, shape (68, 2), face units, of the subject showing ``aus``."""
    p = neutral_points(identity)
    outward = np.sign(np.where(np.abs(p[:, 0]) < 1e-6, 0.0, p[:, 0]))
    for au, a in aus.items():
        moves = _MOVES[au] if au != "AU14" else [
            (idx if identity.contempt_side > 0 else tuple(_MIRROR[i] for i in idx), dx, dy)
            for idx, dx, dy in _AU14_RIGHT
        ]
        for idx, dx, dy in moves:
            for i in idx:
                p[i] += (a * dx * outward[i], a * dy)
    _keep_lips_ordered(p)
    return p


def _keep_lips_ordered(p: np.ndarray) -> None:
    """Stop lips crossing: inner lower lip below the inner upper, outer lips outside the inner."""
    for up, low in ((61, 67), (62, 66), (63, 65)):
        p[low, 1] = max(p[low, 1], p[up, 1])
    for outer, inner in ((50, 61), (51, 62), (52, 63)):
        p[outer, 1] = min(p[outer, 1], p[inner, 1] - 0.02)
    for outer, inner in ((56, 65), (57, 66), (58, 67)):
        p[outer, 1] = max(p[outer, 1], p[inner, 1] + 0.025)
