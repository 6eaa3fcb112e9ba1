"""Training engine: the trainer, objectives (losses), augmentations and input preparation.

- :mod:`~ferbench.training.trainer`: :func:`fit`, :func:`predict_proba`, :func:`seed_everything`,
  :func:`teacher_forward`.
- :mod:`~ferbench.training.objectives`: losses, registered by card name (:func:`register_objective`).
- :mod:`~ferbench.training.augment`: batched on-device augmentations (:func:`register_augmentation`).
- :mod:`~ferbench.training.inputs`: uint8 faces -> normalised float batches.
- :mod:`~ferbench.training.stacked`: :func:`fit_stacked`, several folds' models at once (vmap).
"""

from ferbench.training.augment import Augmenter, register_augmentation
from ferbench.training.objectives import Objective, register_objective
from ferbench.training.stacked import can_stack, fit_stacked
from ferbench.training.trainer import fit, learning_rate, predict_proba, seed_everything, teacher_forward

__all__ = [
    "Augmenter",
    "Objective",
    "can_stack",
    "fit",
    "fit_stacked",
    "learning_rate",
    "predict_proba",
    "register_augmentation",
    "register_objective",
    "seed_everything",
    "teacher_forward",
]
