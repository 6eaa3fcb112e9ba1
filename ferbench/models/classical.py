"""Classical baselines: hand-crafted LBP or HOG features + a linear SVM (not nn.Modules).

Features, from a grayscale uint8 image H x W (default 48 x 48; 64 x 64 also declared):

- ``lbp_svm``: scikit-image ``local_binary_pattern`` (P = 8, R = 1, 'uniform': 10 codes), split
  into a 6 x 6 grid of cells (``np.array_split``, so any size works), one normalised 10-bin
  histogram per cell, concatenated: 360 features.
- ``hog_svm``: scikit-image ``hog`` with 9 orientations, 8 x 8-pixel cells, 2 x 2-cell blocks,
  L2-Hys block normalisation: 900 features at 48 x 48, 1764 at 64 x 64.

Classifier: features standardised (mean 0, variance 1, fitted on the training set), then
scikit-learn ``LinearSVC`` (one-vs-rest, C = 1, squared hinge, ``random_state=0``): liblinear is
deterministic and fast. ``predict_proba`` is the softmax of the SVM decision values (for two
seen classes, of (0, d)): a monotone confidence, not a calibrated probability. Classes absent
from the training labels get probability 0. ``n_parameters`` counts the SVM's learned
coefficients and intercepts (not the scaler's statistics).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import softmax
from skimage.feature import hog, local_binary_pattern
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from ferbench.models.registry import register_model

FeatureFn = Callable[[np.ndarray], np.ndarray]  # uint8 H x W -> float vector


def lbp_features(image: np.ndarray, grid: int = 6, points: int = 8, radius: int = 1) -> np.ndarray:
    """Uniform LBP histograms of a grid x grid cell split, each normalised to sum 1, concatenated."""
    codes = local_binary_pattern(image, points, radius, method="uniform").astype(np.int64)
    bins = points + 2  # 'uniform' codes are 0 .. P + 1
    cells = [cell for band in np.array_split(codes, grid, axis=0) for cell in np.array_split(band, grid, axis=1)]
    return np.concatenate([np.bincount(cell.ravel(), minlength=bins) / cell.size for cell in cells])


def hog_features(image: np.ndarray) -> np.ndarray:
    """HOG: 9 orientations, 8 x 8-pixel cells, 2 x 2-cell blocks, L2-Hys."""
    return hog(image, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys")


class FeatureSVM:
    """A feature extractor followed by a standardised linear SVM over ``num_classes`` classes."""

    def __init__(self, num_classes: int, features: FeatureFn, input_size: tuple[int, int], svm_c: float = 1.0):
        self.num_classes = num_classes
        self.features = features
        self.input_size = tuple(input_size)
        self.svm_c = svm_c
        self.pipeline: Pipeline | None = None

    def fit(self, images: np.ndarray, labels: np.ndarray) -> FeatureSVM:
        """Fit on uint8 images N x H x W and integer labels N in [0, num_classes)."""
        labels = np.asarray(labels)
        if labels.shape != (len(images),):
            raise ValueError(f"expected {len(images)} labels, got shape {labels.shape}")
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(f"labels must lie in [0, {self.num_classes}), got {labels.min()}..{labels.max()}")
        if len(np.unique(labels)) < 2:
            raise ValueError(f"an SVM needs at least 2 classes in the training labels, got {np.unique(labels)}")
        svm = LinearSVC(C=self.svm_c, random_state=0, max_iter=10_000)
        self.pipeline = make_pipeline(StandardScaler(), svm).fit(self._extract(images), labels)
        return self

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Softmax of the decision values, N x num_classes (see the module docstring)."""
        if self.pipeline is None:
            raise RuntimeError("call fit() before predict_proba()")
        scores = self.pipeline.decision_function(self._extract(images))
        if scores.ndim == 1:  # two seen classes: one score, positive for the second
            scores = np.stack([np.zeros_like(scores), scores], axis=1)
        full = np.full((len(scores), self.num_classes), -np.inf)
        full[:, self.pipeline.classes_] = scores
        return softmax(full, axis=1)

    @property
    def n_parameters(self) -> int:
        """Learned SVM coefficients + intercepts (0 before fit)."""
        if self.pipeline is None:
            return 0
        svm = self.pipeline[-1]
        return int(svm.coef_.size + svm.intercept_.size)

    @property
    def n_parameters_all_classes(self) -> int:
        """The coefficients + intercepts a fit on all ``num_classes`` classes learns (one weight
        vector and bias per class; a single one for two classes), known before fit."""
        dim = len(self.features(np.zeros(self.input_size, dtype=np.uint8)))
        rows = 1 if self.num_classes == 2 else self.num_classes
        return rows * (dim + 1)

    def _extract(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 3 or images.dtype != np.uint8 or images.shape[1:] != self.input_size:
            raise ValueError(
                f"expected uint8 images N x {self.input_size[0]} x {self.input_size[1]}, "
                f"got {images.dtype} {images.shape}"
            )
        return np.stack([self.features(image) for image in images])


def _grayscale_only(in_chans: int) -> None:
    if in_chans != 1:
        raise ValueError(f"classical models take grayscale images (in_chans=1), got in_chans={in_chans}")


@register_model(
    "lbp_svm", input_size=(1, 48, 48), input_sizes=[(1, 48, 48), (1, 64, 64)], family="classical", paper="-"
)
def lbp_svm(
    num_classes: int, in_chans: int = 1, input_size: tuple[int, int] = (48, 48), svm_c: float = 1.0
) -> FeatureSVM:
    """Uniform LBP 6 x 6-cell histograms + linear SVM."""
    _grayscale_only(in_chans)
    return FeatureSVM(num_classes, lbp_features, input_size, svm_c)


@register_model(
    "hog_svm", input_size=(1, 48, 48), input_sizes=[(1, 48, 48), (1, 64, 64)], family="classical", paper="-"
)
def hog_svm(
    num_classes: int, in_chans: int = 1, input_size: tuple[int, int] = (48, 48), svm_c: float = 1.0
) -> FeatureSVM:
    """HOG (8 x 8 cells, 2 x 2 blocks, 9 bins) + linear SVM."""
    _grayscale_only(in_chans)
    return FeatureSVM(num_classes, hog_features, input_size, svm_c)
