"""The generic layout: ``<label>/<subject>_<n>.png`` class folders and a ``manifest.csv``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ferbench.labels import CANONICAL
from ferbench.synth.identity import stream
from ferbench.synth.layouts.common import _write_text, layout
from ferbench.synth.layouts.stills import STUDIOS, Still, _write_all_stills
from ferbench.synth.plans import check_shape

@layout("generic")
def write_generic(out_dir: Path, shape: str, seed: int, workers: int = 1) -> Path:
    """``<label>/<subject>_<n>.png`` (112x112 face crops, all 8 labels) and ``manifest.csv``."""
    subjects, repeats = (20, 2) if check_shape(shape) == "paper" else (6, 1)
    stills = {}
    for subject in (f"P{i:02d}" for i in range(1, subjects + 1)):
        stills[subject] = [Still(f"{label}/{subject}_{n}.png", label,
                                 stream(seed, "generic", subject, label, n).uniform(0.7, 1.0))
                           for label in CANONICAL for n in range(1, repeats + 1)]
    _write_all_stills(out_dir, seed, "generic", STUDIOS["generic"], stills, workers)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["path", "label", "subject"])
    writer.writerows(sorted((st.path, st.expression, subject) for subject, items in stills.items() for st in items))
    _write_text(out_dir / "manifest.csv", text.getvalue())
    return out_dir
