"""Synthetic subjects: who a face belongs to, drawn from one of two populations.

An :class:`Identity` fixes everything about a subject that does not change with the
expression: face shape and feature geometry (in *face units*, where the half-width of the
face at the cheekbones is 1; y points down, the origin is the centre of the face oval),
grey levels, hair, glasses, how the face sits in the picture, and a personal expression
style (per-action-unit gains and a peak intensity).

Two populations give a real domain shift between the twins of different datasets:

* ``ck`` (CK+-like): wide spread of age, skin tone and hair; loose framing with background
  and shoulders (the face is about a third of the picture width); strong expressions.
* ``jaffe`` (JAFFE-like): narrower, longer faces, dark long hair, a narrow skin-tone range,
  side lighting at lower contrast, tight framing (the face is half the picture width) and
  subtler expressions.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from ferbench.errors import UnknownName

POPULATIONS: tuple[str, ...] = ("ck", "jaffe")
PICTURE_SIZES: dict[str, tuple[int, int]] = {"ck": (490, 640), "jaffe": (256, 256)}  # (height, width)

#: Action units an expression may use (see ``ferbench.synth.expression``).
ACTION_UNITS: tuple[str, ...] = (
    "AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12", "AU14",
    "AU15", "AU17", "AU20", "AU23", "AU24", "AU25", "AU26", "AU27",
)


def stream(seed: int, *names: object) -> np.random.Generator:
    """A random generator determined by ``seed`` and ``names`` alone (strings or ints).

    Every subject, sequence and frame gets its own stream, so the order or the process in
    which things are generated never changes what is generated.
    """
    words = [int(seed)] + [n if isinstance(n, int) else zlib.crc32(str(n).encode()) for n in names]
    return np.random.default_rng(np.random.SeedSequence(words))


@dataclass(frozen=True)
class Lighting:
    """How a picture is lit and exposed.

    Attributes:
        direction: horizontal light position, -1 (from the image's left) to 1 (right).
        strength: how much darker the far side of the face is (0 = flat light).
        contrast: grey-level contrast around mid-grey (1 = unchanged).
        brightness: grey levels added after the contrast.
        noise: standard deviation of the sensor noise in grey levels.
    """

    direction: float = 0.0
    strength: float = 0.12
    contrast: float = 1.0
    brightness: float = 0.0
    noise: float = 1.6


@dataclass(frozen=True)
class Identity:
    """One synthetic subject (lengths in face units, grey levels 0-255).

    Framing: ``face_frac`` is the face width (2 units) as a fraction of the picture width;
    ``center`` is the face-oval centre as fractions (x, y) of the picture size.
    """

    key: str
    population: str
    # shape of the head
    aspect: float          # chin y (face units below the oval centre)
    jaw: float             # jaw width near the chin relative to the cheek width
    head_top: float        # top of the skull (negative y)
    # features
    eye_y: float
    eye_spacing: float     # half the distance between the eye centres
    eye_width: float       # half width of an eye
    eye_open: float        # half height of an open eye
    brow_gap: float        # brow height above the eye centre
    brow_thickness: float
    brow_arch: float
    nose_y: float          # y of the nose base (subnasale)
    nose_width: float      # half width of the nostrils
    mouth_y: float
    mouth_width: float     # half width of the mouth
    lip_thickness: float
    # appearance
    skin: float
    hair: float
    hairline: float        # y where the hair meets the forehead
    hair_length: float     # 0 = short, 1 = down to the shoulders
    iris: float
    lips: float            # lip grey level relative to skin (< 1)
    background: float
    clothes: float
    glasses: bool
    age: float             # 0-1: strength of folds and wrinkles
    tint: tuple[float, float, float]  # B, G, R gains for colour pictures
    # framing and pose
    face_frac: float
    center: tuple[float, float]
    roll: float            # degrees
    # expression style
    expressiveness: float  # peak intensity this subject reaches (0-1)
    au_gains: tuple[tuple[str, float], ...]
    contempt_side: int     # -1 image left, +1 image right

    def gain(self, au: str) -> float:
        """This subject's personal gain for action unit ``au``."""
        return dict(self.au_gains)[au]


def default_lighting(population: str) -> Lighting:
    """Typical lighting of a population's pictures."""
    _check_population(population)
    if population == "jaffe":
        return Lighting(direction=-0.6, strength=0.22, contrast=0.8, brightness=8.0, noise=1.2)
    return Lighting()


def sample_identity(population: str, rng: np.random.Generator, key: str = "") -> Identity:
    """Draw one subject of ``population`` ("ck" or "jaffe") from ``rng``."""
    _check_population(population)
    u = rng.uniform
    jaffe = population == "jaffe"
    skin = u(150, 185) if jaffe else float(np.clip(rng.normal(165, 24), 105, 215))
    hair = u(12, 40) if jaffe else float(rng.choice([u(15, 50), u(50, 110), u(120, 190)], p=[0.55, 0.3, 0.15]))
    return Identity(
        key=key,
        population=population,
        aspect=u(1.02, 1.12) if jaffe else u(0.92, 1.05),
        jaw=u(0.52, 0.62) if jaffe else u(0.58, 0.74),
        head_top=u(-1.62, -1.5) if jaffe else u(-1.55, -1.4),
        eye_y=u(-0.3, -0.24),
        eye_spacing=u(0.37, 0.43),
        eye_width=u(0.15, 0.18) if jaffe else u(0.14, 0.18),
        eye_open=u(0.055, 0.07) if jaffe else u(0.05, 0.07),
        brow_gap=u(0.16, 0.2),
        brow_thickness=u(0.035, 0.05) if jaffe else u(0.04, 0.075),
        brow_arch=u(0.03, 0.06),
        nose_y=u(0.14, 0.2),
        nose_width=u(0.13, 0.16) if jaffe else u(0.14, 0.2),
        mouth_y=u(0.44, 0.5),
        mouth_width=u(0.24, 0.29) if jaffe else u(0.26, 0.34),
        lip_thickness=u(0.05, 0.07),
        skin=skin,
        hair=hair,
        hairline=u(-0.95, -0.8) if jaffe else u(-1.0, -0.78),
        hair_length=u(0.6, 1.0) if jaffe else float(rng.choice([u(0.0, 0.2), u(0.3, 1.0)], p=[0.6, 0.4])),
        iris=u(25, 45) if jaffe else u(30, 90),
        lips=u(0.68, 0.78),
        background=u(120, 160) if jaffe else u(60, 200),
        clothes=u(30, 200),
        glasses=False if jaffe else bool(rng.random() < 0.12),
        age=u(0.0, 0.3) if jaffe else u(0.0, 1.0),
        tint=(u(0.85, 0.95), u(0.95, 1.0), u(1.05, 1.15)),
        face_frac=u(0.48, 0.54) if jaffe else u(0.3, 0.38),
        center=(u(0.48, 0.52), u(0.52, 0.56)) if jaffe else (u(0.44, 0.56), u(0.44, 0.52)),
        roll=u(-2.5, 2.5) if jaffe else u(-4.0, 4.0),
        expressiveness=u(0.6, 0.8) if jaffe else u(0.8, 1.0),
        au_gains=tuple((au, round(u(0.7, 1.3), 4)) for au in ACTION_UNITS),
        contempt_side=int(rng.choice([-1, 1])),
    )


def _check_population(population: str) -> None:
    if population not in POPULATIONS:
        raise UnknownName("synthetic population", population, POPULATIONS)
