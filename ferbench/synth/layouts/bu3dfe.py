"""BU-3DFE: ``F0001/F0001_AN04WH_F2D.bmp`` frontal textures, one folder per subject."""

from __future__ import annotations

from pathlib import Path

from ferbench.synth.identity import stream
from ferbench.synth.layouts.common import layout
from ferbench.synth.layouts.stills import STUDIOS, Still, _write_all_stills
from ferbench.synth.plans import check_shape, draw_labels

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
