"""Face preprocessing: detect or locate the face, crop or align, resize, cache, show.

- :mod:`~ferbench.preprocess.faces`: one image -> face box -> crop (Haar, landmarks, centre).
- :mod:`~ferbench.preprocess.align`: one image -> eye centres -> face warped onto a template.
- :mod:`~ferbench.preprocess.sheet`: contact sheets of preprocessed faces per class.
- :mod:`~ferbench.preprocess.cache`: cache keys and atomic ``.npz`` files.
- :mod:`~ferbench.preprocess.pipeline`: samples of a dataset -> :class:`PreprocessResult`.
"""

from ferbench.preprocess.align import Template, align_face, find_eyes, landmark_eyes
from ferbench.preprocess.cache import PREPROCESS_VERSION
from ferbench.preprocess.faces import center_box, crop_face, detect_face, landmark_box
from ferbench.preprocess.pipeline import (
    PreprocessResult,
    preprocess_samples,
)

__all__ = [
    "PREPROCESS_VERSION",
    "PreprocessResult",
    "Template",
    "align_face",
    "center_box",
    "crop_face",
    "detect_face",
    "find_eyes",
    "landmark_eyes",
    "landmark_box",
    "preprocess_samples",
]
