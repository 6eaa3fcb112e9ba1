"""Render one synthetic grey face with its 68 landmarks.

The picture is built from smooth shapes, like a quick charcoal sketch: a textured
background with shoulders and hair (cached per subject and picture size), a blurred skin
oval with soft shading (eye sockets, nose sides, cheeks, expression folds and wrinkles),
sharp features drawn on top (brows, eyes with iris and lashes, nostrils, lips, open mouth
and teeth, glasses), a light blur and sensor noise. Every feature is drawn from the same 68
landmarks that are returned, so a landmark-based cropper sees what is drawn.

Measured with OpenCV's ``haarcascade_frontalface_default.xml`` (``detectMultiScale(gray,
1.1, 5, minSize=short side / 5)``) on :func:`random_faces` (fresh subjects, random expression
and intensity), 400 frames per population (seeds 0 and 1): the face is found in 99.75% of
``ck`` frames (640x490) and 100% of ``jaffe`` frames (256x256); also in 99% of Oulu-CASIA
and CK+ twin frames and 100% of KDEF, NimStim, BU-3DFE and JAFFE twin pictures. A 640x490
frame takes about 4 ms to render (``benchmarks/synth_speed.py``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ferbench.labels import CANONICAL
from ferbench.synth.expression import action_units, face_points
from ferbench.synth.identity import (
    ACTION_UNITS,
    PICTURE_SIZES,
    Identity,
    Lighting,
    default_lighting,
    sample_identity,
    stream,
)

_SHIFT = 4  # sub-pixel bits of cv2 drawing coordinates
_WORK_UNIT = 50  # faces are drawn at >= this many pixels per face unit, then scaled up


@dataclass(frozen=True)
class _Pose:
    """Maps face units to pixels of some canvas: scale ``unit``, rotation ``roll``, centre."""

    cx: float
    cy: float
    unit: float   # pixels per face unit
    roll: float   # radians

    def px(self, points: np.ndarray) -> np.ndarray:
        """Face-unit points (N, 2) -> pixel points (N, 2)."""
        c, s = np.cos(self.roll) * self.unit, np.sin(self.roll) * self.unit
        return np.asarray(points, np.float64) @ np.array([[c, s], [-s, c]]) + (self.cx, self.cy)

    def moved(self, dx: float, dy: float, scale: float = 1.0) -> _Pose:
        """The same pose on a canvas cut at (dx, dy) and resized by ``scale`` (cv2 pixel centres)."""
        return _Pose((self.cx - dx + 0.5) * scale - 0.5, (self.cy - dy + 0.5) * scale - 0.5,
                     self.unit * scale, self.roll)


def render_face(
    identity: Identity,
    expression: str,
    intensity: float,
    size: tuple[int, int] = (490, 640),
    rng: np.random.Generator | None = None,
    lighting: Lighting | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``identity`` showing ``expression`` at ``intensity`` (0 = neutral, 1 = peak).

    Args:
        size: picture (height, width) in pixels; the face is framed by the identity.
        rng: source of per-frame variation (head jitter, sensor noise).
        lighting: defaults to the population's lighting.

    Returns:
        (image, landmarks): uint8 gray picture of shape ``size``; float32 (68, 2) landmark
        (x, y) pixel coordinates in iBUG-68 order.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    lighting = lighting or default_lighting(identity.population)
    aus = action_units(identity, expression, intensity)
    pose = _frame_pose(identity, size, rng)
    points = face_points(identity, aus)
    landmarks = pose.px(points)

    raw, finished = _scene(identity, size, lighting)
    # draw at about _WORK_UNIT pixels per face unit: an integer factor f below the output
    f = max(1, int(pose.unit // _WORK_UNIT))
    x0, y0, x1, y1 = _face_box(identity, pose, size, f)
    roi = raw[y0:y1, x0:x1]
    if f > 1:
        roi = cv2.resize(roi, ((x1 - x0) // f, (y1 - y0) // f), interpolation=cv2.INTER_AREA)
    else:
        roi = roi.copy()
    _draw_face(roi, identity, aus, points, pose.moved(x0, y0, 1.0 / f), lighting)
    if f > 1:
        roi = cv2.resize(roi, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    image = finished.copy()
    gain, offset = _exposure(lighting)
    image[y0:y1, x0:x1] = cv2.addWeighted(roi, gain, _noise(roi.shape, rng), lighting.noise, offset, dtype=cv2.CV_8U)
    return image, landmarks.astype(np.float32)


def random_faces(population: str, n: int, seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray, str, float]]:
    """``n`` frames of fresh subjects of ``population`` at their usual picture size, each with a
    random expression and intensity: yields (image, landmarks, expression, intensity)."""
    for k in range(n):
        rng = stream(seed, "random-faces", population, k)
        identity = sample_identity(population, rng, key=f"{population}{k}")
        expression, intensity = CANONICAL[int(rng.integers(len(CANONICAL)))], float(rng.uniform(0, 1))
        image, landmarks = render_face(identity, expression, intensity, PICTURE_SIZES[population], rng)
        yield image, landmarks, expression, intensity


def colorize(gray: np.ndarray, tint: tuple[float, float, float]) -> np.ndarray:
    """A 3-channel BGR version of a gray picture with per-channel gains ``tint`` (B, G, R)."""
    bgr = gray[:, :, None].astype(np.float32) * np.asarray(tint, np.float32)
    return np.clip(bgr, 0, 255).astype(np.uint8)


def face_crop(image: np.ndarray, landmarks: np.ndarray, size: int, margin: float = 0.1) -> np.ndarray:
    """Square crop around the landmarks' bounding box, widened by ``margin`` per side, resized.

    Parts outside the picture are filled by replicating its border. Returns ``size`` x ``size``.
    """
    return square_crop(image, _crop_square(landmarks, margin), size)


def crop_points(points: np.ndarray, landmarks: np.ndarray, size: int, margin: float = 0.1) -> np.ndarray:
    """Where picture ``points`` (N, 2) land in ``face_crop(image, landmarks, size, margin)``."""
    return square_points(points, _crop_square(landmarks, margin), size)


def square_crop(image: np.ndarray, square: tuple[int, int, int], size: int) -> np.ndarray:
    """The pixel ``square`` (x0, y0, side) of ``image`` resized (INTER_AREA) to ``size`` x ``size``;
    parts outside the picture are filled by replicating its border."""
    x0, y0, s = square
    pad = max(0, -x0, -y0, x0 + s - image.shape[1], y0 + s - image.shape[0])
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else image
    crop = padded[y0 + pad:y0 + pad + s, x0 + pad:x0 + pad + s]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def square_points(points: np.ndarray, square: tuple[int, int, int], size: int) -> np.ndarray:
    """Where picture ``points`` (N, 2) land in ``square_crop(image, square, size)``."""
    x0, y0, s = square
    return (np.asarray(points, np.float64) + 0.5 - (x0, y0)) * (size / s) - 0.5


def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """The drawn eye centres (2, 2): means of landmarks 36-41 (image left) and 42-47."""
    return np.stack([landmarks[36:42].mean(0), landmarks[42:48].mean(0)]).astype(np.float64)


def _crop_square(landmarks: np.ndarray, margin: float) -> tuple[int, int, int]:
    """(x0, y0, side) in pixels of :func:`face_crop`'s square."""
    lo, hi = landmarks.min(0), landmarks.max(0)
    centre, side = (lo + hi) / 2, float((hi - lo).max()) * (1 + 2 * margin)
    x0, y0 = (int(round(v)) for v in centre - side / 2)
    return x0, y0, max(int(round(side)), 1)


# --------------------------------------------------------------------------- framing


def _base_pose(identity: Identity, size: tuple[int, int]) -> _Pose:
    """Where the identity's face sits in a picture of ``size`` (height, width)."""
    height, width = size
    return _Pose(identity.center[0] * width, identity.center[1] * height, identity.face_frac * width / 2,
                 np.deg2rad(identity.roll))


def _frame_pose(identity: Identity, size: tuple[int, int], rng: np.random.Generator) -> _Pose:
    """The identity's framing plus a small per-frame head jitter."""
    pose = _base_pose(identity, size)
    jx, jy = rng.normal(0.0, 0.006, 2) * pose.unit
    return _Pose(pose.cx + jx, pose.cy + jy, pose.unit, pose.roll + np.deg2rad(rng.normal(0.0, 0.3)))


def _face_box(identity: Identity, pose: _Pose, size: tuple[int, int], f: int) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1) holding the head, clipped to the picture, sides divisible by f."""
    corners = pose.px(np.array([[-1.5, identity.head_top - 0.15], [1.5, identity.head_top - 0.15],
                                [-1.5, identity.aspect + 0.5], [1.5, identity.aspect + 0.5]]))
    (x0, y0), (x1, y1) = np.floor(corners.min(0)), np.ceil(corners.max(0))
    height, width = size
    x0, y0, x1, y1 = max(int(x0), 0), max(int(y0), 0), min(int(x1), width), min(int(y1), height)
    return x0, y0, x1 - (x1 - x0) % f, y1 - (y1 - y0) % f


def _head_outline(identity: Identity, points: np.ndarray) -> np.ndarray:
    """Face-unit polygon of the face: the jaw landmarks closed by an arc over the skull."""
    y0 = points[0, 1]
    theta = np.linspace(0.0, np.pi, 15)[1:-1]
    arc = np.stack([np.cos(theta) * (1.0 - 0.06 * np.sin(theta)), y0 - (y0 - identity.head_top) * np.sin(theta)], 1)
    return np.concatenate([points[0:17], arc])


# --------------------------------------------------------------------------- the scene


@lru_cache(maxsize=8)
def _scene(identity: Identity, size: tuple[int, int], lighting: Lighting) -> tuple[np.ndarray, np.ndarray]:
    """Background, shoulders, neck and back hair: (raw float32, exposed uint8) pictures.

    Sensor noise is added to the face box only (a noise-free background keeps PNGs small).
    """
    height, width = size
    rng = np.random.default_rng(zlib.crc32(repr(identity).encode()))
    pose = _base_pose(identity, size)
    plain = identity.population == "jaffe"
    img = np.full(size, identity.background, np.float32)
    for cells, amplitude in ((4, 10 if plain else 24), (14, 4 if plain else 8)):
        grid = rng.normal(0.0, amplitude, (cells, cells)).astype(np.float32)
        img += cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    img += np.linspace(-8, 8, height, dtype=np.float32)[:, None]
    # back hair, neck, shoulders: soft shapes in face units
    hair_w, hair_low = 1.1 + 0.1 * identity.hair_length, 0.2 + 1.3 * identity.hair_length
    back_hair = np.concatenate([
        _ellipse_points(0.0, identity.eye_y, hair_w, identity.eye_y - identity.head_top + 0.08, np.pi, 2 * np.pi),
        [[hair_w, hair_low], [0.7, hair_low + 0.1], [-0.7, hair_low + 0.1], [-hair_w, hair_low]],
    ])
    layers = [
        (back_hair, identity.hair),
        (np.array([[-0.42, 0.3], [0.42, 0.3], [0.48, 3.0], [-0.48, 3.0]]), 0.78 * identity.skin),
        (_ellipse_points(0.0, identity.aspect + 1.55, 2.4, 1.0, 0, 2 * np.pi), identity.clothes),
    ]
    for polygon, value in layers:
        _soft_fill(img, pose.px(polygon), value, sigma=0.03 * pose.unit)
    gain, offset = _exposure(lighting)
    return img, np.clip(img * gain + offset, 0, 255).astype(np.uint8)


def _exposure(lighting: Lighting) -> tuple[float, float]:
    """(gain, offset) turning drawn grey levels into exposed ones: contrast around mid-grey."""
    return lighting.contrast, 128.0 * (1.0 - lighting.contrast) + lighting.brightness


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    return np.random.default_rng(0).standard_normal(1 << 21, dtype=np.float32)


def _noise(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Unit Gaussian noise of ``shape``: a slice of a fixed bank at an offset drawn from ``rng``."""
    bank, size = _noise_bank(), int(np.prod(shape))
    if size > bank.size:
        return rng.standard_normal(shape, dtype=np.float32)
    start = int(rng.integers(0, bank.size - size + 1))
    return bank[start:start + size].reshape(shape)


# --------------------------------------------------------------------------- the face


def _draw_face(roi: np.ndarray, ident: Identity, aus: dict[str, float], points: np.ndarray,
               pose: _Pose, lighting: Lighting) -> None:
    """Draw skin, shading, hair and features into ``roi`` (float32, modified in place)."""
    lm = pose.px(points)
    shade = _shading(roi.shape, ident, aus, points, pose, lighting)
    _soft_fill(roi, pose.px(_head_outline(ident, points)), ident.skin * shade, sigma=0.02 * pose.unit)
    _draw_front_hair(roi, ident, pose)
    _draw_brows(roi, ident, lm, pose.unit)
    for eye in (lm[36:42], lm[42:48]):
        _draw_eye(roi, ident, eye, pose.unit)
    for i, angle in ((32, 20), (34, -20)):
        nostril = lm[i] + (0.0, -0.012 * pose.unit)
        cv2.ellipse(roi, _fix(nostril), _fix((0.035 * pose.unit, 0.017 * pose.unit)), angle, 0, 360,
                    0.4 * ident.skin, -1, cv2.LINE_8, _SHIFT)
    _draw_mouth(roi, ident, lm, pose.unit)
    if ident.glasses:
        _draw_glasses(roi, ident, points, pose)
    sigma = max(0.6, 0.009 * pose.unit)
    cv2.GaussianBlur(roi, (0, 0), sigma, dst=roi)


def _shading(shape: tuple[int, ...], ident: Identity, aus: dict[str, float], points: np.ndarray,
             pose: _Pose, lighting: Lighting) -> np.ndarray:
    """Multiplicative skin shading (1 = unshaded) of the ROI, drawn at low resolution.

    Darkens the face border and the far side from the light, eye sockets, nose sides, the
    shadows under nose and lower lip, and the folds and wrinkles the active AUs make.
    """
    factor = max(1, int(pose.unit // 20))
    small = (shape[0] // factor + 1, shape[1] // factor + 1)
    low = pose.moved(0, 0, 1.0 / factor)
    # face-unit coordinates of every low-res pixel (undo the pose)
    ys, xs = np.mgrid[0:small[0], 0:small[1]].astype(np.float32)
    c, s = np.cos(low.roll), np.sin(low.roll)
    u = (c * (xs - low.cx) + s * (ys - low.cy)) / low.unit
    v = (-s * (xs - low.cx) + c * (ys - low.cy)) / low.unit
    r2 = u ** 2 + ((v - 0.05) / 1.25) ** 2
    shade = (1.0 - 0.3 * np.clip(r2, 0, 1.2) ** 2) * (1.0 + lighting.strength * lighting.direction * u)

    dark = np.zeros(small, np.float32)  # > 0 darkens, < 0 lightens
    a = dict.fromkeys(ACTION_UNITS, 0.0) | aus  # activation of every AU, 0 if inactive
    p = points
    age = ident.age
    for side in (-1, 1):
        eye = p[36:42] if side < 0 else p[42:48]
        ecx, ecy = eye[:, 0].mean(), eye[:, 1].mean()
        _ellipse(dark, low, (ecx, ecy - 0.04), (ident.eye_width * 1.45, ident.eye_open * 2.6 + 0.03), 0.2)
        _line(dark, low, [(side * 0.07, ident.eye_y + 0.06), (side * ident.nose_width * 0.85, p[31, 1] - 0.04)],
              0.05, 0.12)
        _ellipse(dark, low, (side * 0.5, ident.nose_y - 0.03), (0.2, 0.14), -0.03 - 0.05 * a["AU6"])
        corner, wing = p[48 if side < 0 else 54], p[31 if side < 0 else 35]
        fold = 0.05 + 0.08 * age + 0.3 * max(a["AU12"], 0.8 * a["AU10"], 0.6 * a["AU9"])
        if ident.contempt_side == side:
            fold += 0.15 * a["AU14"]
            _ellipse(dark, low, (corner[0] + side * 0.05, corner[1] - 0.01), (0.025, 0.035), 0.3 * a["AU14"])
        _line(dark, low, [wing + (side * 0.05, -0.01), wing + (side * 0.1, 0.12), corner + (side * 0.06, 0.02)],
              0.035, fold)
        _line(dark, low, [corner + (side * 0.02, 0.03), corner + (side * 0.05, 0.15)], 0.03,
              0.2 * a["AU15"] + 0.06 * age)
    brow_y = p[17:27, 1].min()
    for k in range(3):
        _line(dark, low, [(-0.45, brow_y - 0.1 - 0.08 * k), (0.0, brow_y - 0.13 - 0.08 * k),
                          (0.45, brow_y - 0.1 - 0.08 * k)], 0.02, 0.18 * max(a["AU1"], a["AU2"]) + 0.05 * age)
    for side in (-1, 1):
        _line(dark, low, [(side * 0.05, p[21, 1] - 0.06), (side * 0.035, p[21, 1] + 0.07)], 0.025, 0.3 * a["AU4"])
    for k in range(2):
        y = p[27, 1] + 0.03 + 0.04 * k
        _line(dark, low, [(-0.07, y), (0.07, y - 0.01)], 0.02, 0.25 * a["AU9"])
    _ellipse(dark, low, (0.0, ident.nose_y + 0.035), (ident.nose_width * 0.8, 0.028), 0.16)
    _ellipse(dark, low, (0.0, p[57, 1] + 0.05), (ident.mouth_width * 0.55, 0.035), 0.14)
    _ellipse(dark, low, (0.0, p[8, 1] - 0.12), (0.12, 0.06), 0.12 * a["AU17"])
    _line(dark, low, [p[27], p[30]], 0.05, -0.07)
    _ellipse(dark, low, (0.0, p[19, 1] - 0.25), (0.3, 0.15), -0.05)
    cv2.GaussianBlur(dark, (0, 0), max(0.5, 0.03 * low.unit), dst=dark)
    shade = shade * (1.0 - dark)
    return cv2.resize(shade, (small[1] * factor, small[0] * factor), interpolation=cv2.INTER_LINEAR)[
        :shape[0], :shape[1]]


def _draw_front_hair(roi: np.ndarray, ident: Identity, pose: _Pose) -> None:
    """Hair over the forehead down to the hairline, and side locks for long hair."""
    x = np.linspace(-1.08, 1.08, 13)
    hairline = np.stack([x, ident.hairline + 0.4 * (np.abs(x) / 1.08) ** 2.5], 1)
    top = _ellipse_points(0.0, ident.eye_y, 1.08, ident.eye_y - ident.head_top + 0.05, 2 * np.pi, np.pi)
    _soft_fill(roi, pose.px(np.concatenate([hairline, top])), ident.hair, sigma=0.015 * pose.unit)
    if ident.hair_length > 0.3:
        low = ident.eye_y + 0.5 * ident.hair_length
        for side in (-1, 1):
            lock = np.array([[1.1, ident.hairline + 0.3], [0.93, ident.eye_y - 0.1], [0.96, low],
                             [1.12, low + 0.1]]) * (side, 1)
            _soft_fill(roi, pose.px(lock), ident.hair, sigma=0.015 * pose.unit)


def _draw_brows(roi: np.ndarray, ident: Identity, lm: np.ndarray, unit: float) -> None:
    value = 0.6 * min(ident.hair, 0.5 * ident.skin) + 0.16 * ident.skin
    taper = np.linspace(0.55, 1.0, 5)[:, None] * ident.brow_thickness * unit * np.array([0.0, 0.5])
    for brow in (lm[17:22], lm[26:21:-1]):  # outer -> inner, both sides
        polygon = np.concatenate([brow - taper, (brow + taper)[::-1]])
        cv2.fillPoly(roi, [_fix(polygon)], value, cv2.LINE_8, _SHIFT)


def _draw_eye(roi: np.ndarray, ident: Identity, eye: np.ndarray, unit: float) -> None:
    """Sclera, iris and pupil clipped to the lids, then lash line and lower lid."""
    sclera = min(215.0, 0.5 * ident.skin + 95)
    centre = (eye[0] + eye[3]) / 2
    iris_r = 0.062 * unit
    x0, y0 = np.floor(eye.min(0) - 2).astype(int)
    x1, y1 = np.ceil(eye.max(0) + 2).astype(int)
    x0, y0 = max(x0, 0), max(y0, 0)
    patch = roi[y0:y1, x0:x1]
    if patch.size == 0:
        return
    mask = np.zeros(patch.shape, np.uint8)
    cv2.fillPoly(mask, [_fix(eye - (x0, y0))], 255, cv2.LINE_AA, _SHIFT)
    layer = np.full(patch.shape, sclera, np.float32)
    c = centre - (x0, y0)
    cv2.circle(layer, _fix(c), int(iris_r * 16), ident.iris, -1, cv2.LINE_8, _SHIFT)
    cv2.circle(layer, _fix(c), int(iris_r * 7), 12.0, -1, cv2.LINE_8, _SHIFT)
    cv2.circle(layer, _fix(c + (0.3 * iris_r, -0.35 * iris_r)), int(iris_r * 3), 235.0, -1, cv2.LINE_8, _SHIFT)
    alpha = mask.astype(np.float32) / 255.0
    patch += alpha * (layer - patch)
    lash = max(1, int(round(0.022 * unit)))
    cv2.polylines(roi, [_fix(eye[0:4])], False, 0.22 * ident.skin, lash, cv2.LINE_8, _SHIFT)
    cv2.polylines(roi, [_fix(eye[[3, 4, 5, 0]])], False, 0.65 * ident.skin, max(1, lash // 2), cv2.LINE_8, _SHIFT)
    crease = eye[0:4] + (0.0, -0.035 * unit)
    cv2.polylines(roi, [_fix(crease)], False, 0.7 * ident.skin, max(1, lash // 2), cv2.LINE_8, _SHIFT)


def _draw_mouth(roi: np.ndarray, ident: Identity, lm: np.ndarray, unit: float) -> None:
    """Lips; when open, the dark mouth with the upper teeth; when closed, the lip line."""
    lips = ident.lips * ident.skin
    cv2.fillPoly(roi, [_fix(lm[48:60])], lips, cv2.LINE_8, _SHIFT)
    upper = np.concatenate([lm[48:55], lm[[64, 63, 62, 61, 60]]])
    cv2.fillPoly(roi, [_fix(upper)], 0.9 * lips, cv2.LINE_8, _SHIFT)
    inner = lm[60:68]
    gap = (lm[[67, 66, 65], 1] - lm[[61, 62, 63], 1]).max()
    if gap > 0.012 * unit:
        x0, y0 = np.floor(inner.min(0) - 2).astype(int)
        x1, y1 = np.ceil(inner.max(0) + 2).astype(int)
        x0, y0 = max(x0, 0), max(y0, 0)
        patch = roi[y0:y1, x0:x1]
        mask = np.zeros(patch.shape, np.uint8)
        cv2.fillPoly(mask, [_fix(inner - (x0, y0))], 255, cv2.LINE_AA, _SHIFT)
        layer = np.full(patch.shape, 28.0, np.float32)
        teeth_line = lm[60:65] - (x0, y0)
        teeth = np.concatenate([teeth_line, (teeth_line + (0.0, 0.05 * unit))[::-1]])
        cv2.fillPoly(layer, [_fix(teeth)], min(210.0, ident.skin + 35), cv2.LINE_8, _SHIFT)
        alpha = mask.astype(np.float32) / 255.0
        patch += alpha * (layer - patch)
    else:
        line = max(1, int(round(0.012 * unit)))
        cv2.polylines(roi, [_fix(lm[60:65])], False, 0.45 * ident.skin, line, cv2.LINE_8, _SHIFT)


def _draw_glasses(roi: np.ndarray, ident: Identity, points: np.ndarray, pose: _Pose) -> None:
    thickness = max(1, int(round(0.02 * pose.unit)))
    rims = []
    for eye in (points[36:42], points[42:48]):
        cx, cy = eye[:, 0].mean(), ident.eye_y
        rims.append(_ellipse_points(cx, cy, ident.eye_width * 1.6, ident.eye_open * 2.2 + 0.04, 0, 2 * np.pi))
    for rim in rims:
        cv2.polylines(roi, [_fix(pose.px(rim))], True, 35.0, thickness, cv2.LINE_8, _SHIFT)
    bridge = pose.px([[-ident.eye_spacing + ident.eye_width * 1.6, ident.eye_y - 0.02],
                      [0.0, ident.eye_y - 0.05], [ident.eye_spacing - ident.eye_width * 1.6, ident.eye_y - 0.02]])
    cv2.polylines(roi, [_fix(bridge)], False, 35.0, thickness, cv2.LINE_8, _SHIFT)


# --------------------------------------------------------------------------- drawing helpers


def _fix(points) -> np.ndarray | tuple:
    """Pixel coordinates as cv2 fixed-point integers (``_SHIFT`` fractional bits)."""
    arr = np.round(np.asarray(points, np.float64) * (1 << _SHIFT)).astype(np.int32)
    return tuple(int(v) for v in arr) if arr.ndim == 1 else arr


def _ellipse_points(cx: float, cy: float, ax: float, ay: float, start: float, stop: float, n: int = 24) -> np.ndarray:
    t = np.linspace(start, stop, n)
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], 1)


def _soft_fill(img: np.ndarray, polygon: np.ndarray, value, sigma: float) -> None:
    """Blend ``value`` (a number or an image like ``img``) into ``img`` inside a blurred polygon."""
    sigma = max(sigma, 0.5)
    margin = int(np.ceil(3 * sigma)) + 1
    (x0, y0), (x1, y1) = np.floor(polygon.min(0)).astype(int) - margin, np.ceil(polygon.max(0)).astype(int) + margin
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, img.shape[1]), min(y1, img.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    part = img[y0:y1, x0:x1]
    mask = np.zeros(part.shape, np.float32)
    cv2.fillPoly(mask, [_fix(polygon - (x0, y0))], 1.0, cv2.LINE_8, _SHIFT)
    cv2.GaussianBlur(mask, (0, 0), sigma, dst=mask)
    if not np.isscalar(value):
        value = value[y0:y1, x0:x1]
    part += mask * (value - part)


def _ellipse(canvas: np.ndarray, pose: _Pose, centre, axes, value: float) -> None:
    """Filled face-unit ellipse (centre, half axes) of ``value`` on a shading canvas."""
    if value:
        cv2.ellipse(canvas, _fix(pose.px([centre])[0]), _fix(np.asarray(axes) * pose.unit),
                    np.rad2deg(pose.roll), 0, 360, float(value), -1, cv2.LINE_8, _SHIFT)


def _line(canvas: np.ndarray, pose: _Pose, points, width: float, value: float) -> None:
    """Face-unit polyline of ``width`` face units and ``value`` on a shading canvas."""
    if value:
        thickness = max(1, int(round(width * pose.unit)))
        cv2.polylines(canvas, [_fix(pose.px(np.asarray(points, np.float64)))], False, float(value),
                      thickness, cv2.LINE_8, _SHIFT)
