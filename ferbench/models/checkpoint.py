"""Read checkpoint files (a PyTorch state dict, a pickled classical model) and load user-supplied
weights into a timm model; never downloads. A file that holds something else is a
:class:`~ferbench.errors.DataError` naming it."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from timm.models import adapt_input_conv
from torch import nn

from ferbench.errors import DataError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in the file at ``path`` (a ``state_dict`` or ``model`` wrapper is
    unwrapped); :class:`DataError` naming the file when it is missing or holds something else."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a non-checkpoint file
        # torch's own message advises weights_only=False, which would run code from the file: not repeated
        if "Unsupported global" in str(err):
            raise DataError(path, "not a PyTorch state dict file: it holds pickled Python objects, not only tensors "
                                  "(a whole model saved with torch.save(model)?); save model.state_dict() "
                                  "or a TorchScript model instead") from None
        raise DataError(path, "not a PyTorch state dict file: truncated, or not written by torch.save") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise DataError(path, f"expected a state dict, found {type(state).__name__}")
    return state


def read_pickle(path: str | Path) -> Any:
    """The object pickled in the file at ``path`` (a classical model's ``model.pkl``); :class:`DataError`
    naming the file when it is truncated, not a pickle, or needs code this installation lacks.
    Unpickling runs code from the file: read only files you trust (such as your own runs)."""
    path = Path(path)
    try:
        return pickle.loads(path.read_bytes())
    except (pickle.UnpicklingError, EOFError, ValueError, IndexError):
        raise DataError(path, "truncated or not a pickle (a classical model's model.pkl, as `ferbench run` "
                              "writes it)") from None
    except (ImportError, AttributeError) as err:
        raise DataError(path, f"the pickle needs code this installation lacks: {err}") from None


def load_timm_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load the state dict at ``path`` into the timm ``model`` in place.

    The file holds a state dict, possibly wrapped under ``state_dict`` or ``model``. A first
    convolution trained on another channel count is adapted with timm's ``adapt_input_conv``
    (summed for 1 channel). Classifier weights (timm's ``pretrained_cfg["classifier"]``) that the
    model lacks or that have another shape (e.g. 1000 ImageNet classes) are skipped with a
    warning, leaving the model's fresh classifier. Any other missing, unexpected or misshapen
    key raises :class:`DataError` naming the file.
    """
    path = Path(path)
    state = read_state_dict(path)
    own = model.state_dict()
    stem = f"{model.pretrained_cfg['first_conv']}.weight"
    if stem in state and stem in own and state[stem].shape[1] != own[stem].shape[1]:
        state[stem] = adapt_input_conv(own[stem].shape[1], state[stem], base_chans=state[stem].shape[1])

    classifier = model.pretrained_cfg["classifier"] + "."
    skipped = [k for k in state if k.startswith(classifier) and (k not in own or state[k].shape != own[k].shape)]
    if skipped:
        warnings.warn(
            f"{path}: classifier weights {', '.join(skipped)} do not fit this model "
            f"(other class count or feature-only model); the classifier keeps its fresh initialisation",
            stacklevel=2,
        )
    state = {k: v for k, v in state.items() if k not in skipped}

    problems = {
        "misshapen": [k for k, v in state.items() if k in own and v.shape != own[k].shape],
        "missing": [k for k in own if k not in state and not k.startswith(classifier)],
        "unexpected": [k for k in state if k not in own],
    }
    found = [
        f"{len(keys)} {kind} keys ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
        for kind, keys in problems.items()
        if keys
    ]
    if found:
        raise DataError(path, f"does not fit `{model.pretrained_cfg['architecture']}`: {'; '.join(found)}")
    model.load_state_dict(state, strict=False)  # only the skipped classifier keys are absent
