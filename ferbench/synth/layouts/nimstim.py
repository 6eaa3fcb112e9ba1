"""NimStim: one flat folder of ``01F_HA_O.bmp`` pictures."""

from __future__ import annotations

from pathlib import Path

from ferbench.synth.identity import stream
from ferbench.synth.layouts.common import layout
from ferbench.synth.layouts.stills import STUDIOS, Still, _write_all_stills
from ferbench.synth.plans import check_shape

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
