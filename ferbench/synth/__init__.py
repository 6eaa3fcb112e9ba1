"""Procedural synthetic faces written in the on-disk layouts of real FER datasets.

``render_face`` draws one face; ``write_twin`` writes a whole dataset twin; ``twin_root``
returns a cached one. See :mod:`ferbench.synth.layouts` for the layouts.
"""

from ferbench.synth.face import face_crop, random_faces, render_face
from ferbench.synth.identity import POPULATIONS, Identity, Lighting, sample_identity
from ferbench.synth.twins import GENERATOR_VERSION, LAYOUTS, twin_root, write_twin

__all__ = [
    "GENERATOR_VERSION", "LAYOUTS", "POPULATIONS", "Identity", "Lighting",
    "face_crop", "random_faces", "render_face", "sample_identity", "twin_root", "write_twin",
]
