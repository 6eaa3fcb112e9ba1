"""The side's eye prior: eye centres of pre-cropped faces pulled toward where the side's crops put them.

Pre-cropped images of one dataset side come from one cropping process, so their true eye
positions, as fractions of the crop, may vary little, while the eye cascade's error on a small
crop (:data:`NOISE_PX`) is of the same order; the side's own spread decides how far each face
moves (on crops placed as a detector places them, hardly: benchmarks/README.md). Each face's eyes found by the cascade are written as
four numbers (:func:`to_params`): midpoint x / W, midpoint y / H, eye distance / W and tilt
(radians); each is taken as truth plus noise. Per component k, the side's robust variance
``V_k`` (the median absolute deviation about the median, scaled to a normal sd, squared) estimates
the true spread plus the noise; the noise model gives face i's noise variance ``s_ik``, so the
true spread is ``t_k = max(V_k - mean_i s_ik, 0)`` and face i's estimate moves from its value
toward the side's median by the fraction ``w_ik = s_ik / (s_ik + t_k)`` (empirical Bayes, the
James-Stein positive part).

Guarantees of :func:`shrink` (pure numpy, deterministic, independent of the order of the faces):
with zero noise nothing moves; a component whose side spread is no larger than its noise lands
on the side's median for every face; each weight lies in [0, 1] and only moves a face toward the
median along its own component; fewer than :data:`MIN_IMAGES` faces are returned unchanged.
Eyes are N x 2 x 2 float64 pixel arrays (image-left eye first, ``(x, y)``), sizes N x 2 (W, H).
"""

from __future__ import annotations

from typing import Any

import numpy as np

NOISE_PX = np.array([0.15, 0.21, 0.25, 0.20])
"""The eye cascade's error sd on clean crops, source pixels: midpoint x, midpoint y, eye distance,
and tilt times the eye distance (the tilt's sd in radians is this over the eye distance in
pixels). Measured on 300 CK+48 twin crops (eyes 14-19 px apart; crops placed with a detector's
jitter): ``benchmarks/eye_prior_twins.py --calibrate --faces 300 --seed 11`` gives 0.15, 0.21,
0.25, 0.20. On the noisier FER2013 and RAF-DB twins the error is 1.5-4x larger (0.21-0.54 /
0.48-0.94 / 0.39-0.97 / 0.45-0.85): the model is a lower bound there, which only moves their
faces less (a smaller noise variance gives a smaller weight)."""
CROP_CLOSER_PX = 0.15
"""On crops the cascade's eye centres sit this many source pixels farther apart than the true
ones; measured as :data:`NOISE_PX` (300 twin crops per layout): CK+48 0.15, FER2013 0.20, RAF-DB
0.28; the smallest is taken, so no crop layout is over-corrected. (Their common height has no
bias of one sign: CK+48 0.08 px below the truth, FER2013 0.28 above, RAF-DB 0.13 above, so none
is taken off.)"""
MIN_IMAGES = 10
"""Fewer faces than this do not estimate a side's spread: :func:`shrink` leaves them as they are."""
COMPONENTS = ("x", "y", "distance", "tilt")
"""The names of the four components of :func:`to_params`, in order (keys of the report's weights)."""


def to_params(eyes: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """N x 4: midpoint x / W, midpoint y / H, eye distance / W, tilt (radians, + when the right eye is lower)."""
    eyes, sizes = np.asarray(eyes, np.float64), np.asarray(sizes, np.float64)
    middle, span = eyes.mean(axis=1), eyes[:, 1] - eyes[:, 0]
    distance = np.hypot(span[:, 0], span[:, 1])
    return np.column_stack([middle / sizes, distance / sizes[:, 0], np.arctan2(span[:, 1], span[:, 0])])


def from_params(params: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_params`: N x 2 x 2 eye centres in pixels."""
    params, sizes = np.asarray(params, np.float64), np.asarray(sizes, np.float64)
    middle = params[:, :2] * sizes
    half = (params[:, 2] * sizes[:, 0] / 2)[:, None] * np.column_stack([np.cos(params[:, 3]), np.sin(params[:, 3])])
    return np.stack([middle - half, middle + half], axis=1)


def noise_variance(eyes: np.ndarray, sizes: np.ndarray, noise_px: np.ndarray = NOISE_PX) -> np.ndarray:
    """N x 4 noise variances of :func:`to_params`' components under the model ``noise_px``
    (:data:`NOISE_PX`: pixels, the tilt's divided by each face's eye distance in pixels)."""
    sizes = np.asarray(sizes, np.float64)
    distance = np.maximum(to_params(eyes, sizes)[:, 2] * sizes[:, 0], 1e-6)
    scale = np.column_stack([sizes[:, 0], sizes[:, 1], sizes[:, 0], distance])
    return (np.asarray(noise_px, np.float64) / scale) ** 2


def shrink(eyes: np.ndarray, sizes: np.ndarray, noise_px: np.ndarray = NOISE_PX) -> tuple[np.ndarray, dict[str, Any]]:
    """Each face's eyes moved toward the side's median by the empirical-Bayes weights (module docstring).

    Returns the new eyes (N x 2 x 2 pixels) and a report: ``applied``, ``images``, and when
    applied ``centre`` (the side's median of the four components), ``weight`` (the mean weight
    per component, by :data:`COMPONENTS` name) and ``true_sd`` (the estimated true spread per
    component, the units of :func:`to_params`).
    """
    eyes = np.asarray(eyes, np.float64)
    if len(eyes) < MIN_IMAGES:
        return eyes.copy(), {"applied": False, "images": len(eyes)}
    params = to_params(eyes, sizes)
    noise = noise_variance(eyes, sizes, noise_px)
    centre = np.median(params, axis=0)
    spread = (1.4826 * np.median(np.abs(params - centre), axis=0)) ** 2
    truth = np.maximum(spread - noise.mean(axis=0), 0.0)
    total = noise + truth
    weight = np.divide(noise, total, out=np.zeros_like(noise), where=noise > 0)
    moved = from_params(params - weight * (params - centre), sizes)
    return moved, {
        "applied": True, "images": len(eyes), "centre": np.round(centre, 4).tolist(),
        "weight": {name: round(float(w), 3) for name, w in zip(COMPONENTS, weight.mean(axis=0))},
        "true_sd": np.round(np.sqrt(truth), 4).tolist(),
    }


def correct_crop_bias(eyes: np.ndarray) -> np.ndarray:
    """Eyes found by the cascade on a crop (N x 2 x 2 pixels) moved :data:`CROP_CLOSER_PX` closer
    together along the line between them."""
    eyes = np.asarray(eyes, np.float64)
    span = eyes[:, 1] - eyes[:, 0]
    unit = span / np.maximum(np.linalg.norm(span, axis=1, keepdims=True), 1e-6)
    step = (CROP_CLOSER_PX / 2) * unit
    return np.stack([eyes[:, 0] + step, eyes[:, 1] - step], axis=1)
