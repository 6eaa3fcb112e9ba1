"""JAFFE: one flat folder of gray TIFFs named ``KA.AN1.39.tiff``."""

from __future__ import annotations

from pathlib import Path

from ferbench.synth.identity import stream
from ferbench.synth.layouts.common import layout
from ferbench.synth.layouts.stills import STUDIOS, Still, _write_all_stills
from ferbench.synth.plans import JAFFE_CODES, plan_jaffe

@layout("jaffe")
def write_jaffe(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """One flat folder of 256x256 gray TIFFs ``KA.AN1.39.tiff`` (population ``jaffe``)."""
    stills: dict[str, list[Still]] = {}
    for im in plan_jaffe(shape, seed):
        intensity = stream(seed, "jaffe", im.name, "intensity").uniform(0.85, 1.0)
        stills.setdefault(im.subject, []).append(Still(im.name, JAFFE_CODES[im.code], intensity))
    _write_all_stills(out_dir, seed, "jaffe", STUDIOS["jaffe"], stills, workers)
    return out_dir
