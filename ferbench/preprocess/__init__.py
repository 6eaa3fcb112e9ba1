"""Face preprocessing: detect or locate the face, crop, resize, cache.

- :mod:`~ferbench.preprocess.faces`: one image -> face box -> crop (Haar, landmarks, centre).
- :mod:`~ferbench.preprocess.cache`: cache keys and atomic ``.npz`` files.
- :mod:`~ferbench.preprocess.pipeline`: samples of a dataset -> :class:`PreprocessResult`.
"""

from ferbench.preprocess.cache import PREPROCESS_VERSION
from ferbench.preprocess.faces import center_box, crop_face, detect_face, landmark_box
from ferbench.preprocess.pipeline import (
    PreprocessResult,
    PreprocessSpecLike,
    preprocess_samples,
)

__all__ = [
    "PREPROCESS_VERSION",
    "PreprocessResult",
    "PreprocessSpecLike",
    "center_box",
    "crop_face",
    "detect_face",
    "landmark_box",
    "preprocess_samples",
]
