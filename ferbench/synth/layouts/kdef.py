"""KDEF: ``KDEF/AF01/AF01ANS.JPG``, one folder per session and subject."""

from __future__ import annotations

from pathlib import Path

from ferbench.synth.identity import stream
from ferbench.synth.layouts.common import layout
from ferbench.synth.layouts.stills import STUDIOS, Still, _write_all_stills
from ferbench.synth.plans import check_shape

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
