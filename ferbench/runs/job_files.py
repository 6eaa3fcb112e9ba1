"""What a job of a run directory holds besides ``metrics.json`` and ``DONE`` (see :mod:`ferbench.runs`):
the contents of its ``predictions*.csv``, ``confusion*.csv`` and ``model.pt`` / ``model.pkl``
files, and its trained model loaded back.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ferbench.cards import ModelCard
from ferbench.models.checkpoint import load_weights
from ferbench.models.build import build_model
from ferbench.runs import RunDir


def predictions_csv(samples: list, keys: Sequence[str], y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray,
                    classes: list[str]) -> str:
    """CSV text: path, subject, true and predicted class, then ``p_<class>`` probabilities.

    ``path`` is each sample's key relative to its dataset root (``keys``, one per sample, from
    :meth:`~ferbench.pipeline.ProtocolData.keys`), so runs on copies of a dataset in different
    places write the same file."""
    frame = pd.DataFrame({
        "path": list(keys),
        "subject": [s.subject for s in samples],
        "true": [classes[i] for i in y_true],
        "predicted": [classes[i] for i in y_pred],
    })
    for k, name in enumerate(classes):
        frame[f"p_{name}"] = np.round(probs[:, k], 6)
    return frame.to_csv(index=False)


def confusion_csv(confusion: Any, classes: list[str]) -> str:
    """CSV text of a K x K confusion matrix (rows true, columns predicted), labelled by class."""
    return pd.DataFrame(confusion, index=classes, columns=classes).to_csv()


def model_file(model: Any) -> dict[str, bytes]:
    """``model.pt`` (state dict) for a torch model, ``model.pkl`` for a classical one."""
    if not isinstance(model, torch.nn.Module):
        return {"model.pkl": pickle.dumps(model)}
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return {"model.pt": buffer.getvalue()}


def load_job_model(run: RunDir, card: ModelCard, num_classes: int, seed: int, fold: int) -> Any:
    """The model a finished job trained, from its ``model.pt`` (state dict) or ``model.pkl``."""
    job_dir = run.job_dir(seed, fold)
    if (job_dir / "model.pkl").is_file():
        return pickle.loads((job_dir / "model.pkl").read_bytes())
    return load_weights(build_model(card, num_classes), job_dir / "model.pt").eval()


def history_csv(history: Sequence[Mapping[str, float]]) -> str:
    """CSV text of a training history, one row per epoch (:func:`~ferbench.training.trainer.epoch_record`):
    ``epoch, loss, lr[, val_accuracy], seconds``."""
    return pd.DataFrame(list(history)).to_csv(index=False)
