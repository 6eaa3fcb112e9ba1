"""Read checkpoint files (a PyTorch state dict, a pickled classical model) and load weights into
a model: :func:`load_weights` is the one weight loader (a run's job models, a distilling job's
teacher, ``ferbench evaluate``'s state dicts, a recipe's ``init_checkpoint``, the timm
``checkpoint_path`` of a model factory); never downloads. A file that holds something else is a
:class:`~ferbench.errors.DataError` naming it."""

from __future__ import annotations

import io
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from timm.models import adapt_input_conv
from torch import nn

from ferbench.errors import DataError


def read_state_dict(source: str | Path | bytes, origin: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The state dict in the file at ``source`` or in its bytes (a ``state_dict`` or ``model``
    wrapper is unwrapped); :class:`DataError` naming the file (``origin`` for bytes) when it is
    missing or holds something else."""
    if isinstance(source, bytes):
        path, stream = Path(origin or "checkpoint bytes"), io.BytesIO(source)
    else:
        path = stream = Path(source)
        if not path.is_file():
            raise DataError(path, "checkpoint file not found")
    try:
        state = torch.load(stream, map_location="cpu", weights_only=True)
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


def load_weights(model: nn.Module, source: str | Path | bytes, *, origin: str | Path | None = None,
                 fits: str = "the model", keep_fresh: Callable[[str], bool] | None = None,
                 first_conv: str | None = None) -> nn.Module:
    """Load the state dict in the file at ``source`` (or in its bytes, named ``origin``) into
    ``model`` in place and return ``model``: the one way ferbench loads weights.

    Every tensor of the model must come from the checkpoint under its name and shape, and every
    tensor of the checkpoint must have its place in the model, except tensors whose name
    ``keep_fresh`` accepts: the model's keep their initialisation when the checkpoint lacks them
    or holds them in another shape, and such checkpoint tensors are skipped (with a warning
    naming both). ``first_conv``, the weight of a first convolution trained on another channel
    count, is adapted with timm's ``adapt_input_conv`` (summed for 1 channel).

    Raises:
        DataError: naming the file: unreadable (see :func:`read_state_dict`), missing, unexpected
            or misshapen tensors (``does not fit <fits>: ...``), or no tensor that fits at all.
    """
    origin = origin or ("checkpoint bytes" if isinstance(source, bytes) else source)
    state = read_state_dict(source, origin)
    own = model.state_dict()
    if first_conv in state and first_conv in own and state[first_conv].shape[1] != own[first_conv].shape[1]:
        state[first_conv] = adapt_input_conv(own[first_conv].shape[1], state[first_conv],
                                             base_chans=state[first_conv].shape[1])
    optional = keep_fresh or (lambda key: False)
    skipped = [k for k in state if optional(k) and (k not in own or state[k].shape != own[k].shape)]
    state = {k: v for k, v in state.items() if k not in skipped}
    problems = {
        "misshapen": [k for k, v in state.items() if k in own and v.shape != own[k].shape],
        "missing": [k for k in own if k not in state and not optional(k)],
        "unexpected": [k for k in state if k not in own],
    }
    found = [f"{len(keys)} {kind} keys ({_names(keys, 3)})" for kind, keys in problems.items() if keys]
    if found:
        raise DataError(origin, f"does not fit {fits}: {'; '.join(found)}")
    if own and not state:
        raise DataError(origin, "no tensor of this checkpoint fits the model (names or shapes differ)")
    fresh = sorted(set(own) - set(state))
    if fresh or skipped:
        warnings.warn(f"{origin}: {len(fresh)} model tensors keep their initialisation ({_names(fresh, 5)}); "
                      f"{len(skipped)} checkpoint tensors do not fit the model ({_names(skipped, 5)})", stacklevel=2)
    model.load_state_dict(state, strict=False)  # only tensors keep_fresh accepts are absent
    return model


def _names(keys: list[str], shown: int) -> str:
    return f"{', '.join(keys[:shown])}{', ...' if len(keys) > shown else ''}" if keys else "none"


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
    """Load the state dict at ``path`` into the timm ``model`` in place (:func:`load_weights`).

    A first convolution trained on another channel count is adapted; classifier weights (timm's
    ``pretrained_cfg["classifier"]``) that the model lacks or that have another shape (e.g. 1000
    ImageNet classes) are skipped with a warning, leaving the model's fresh classifier. Any other
    missing, unexpected or misshapen key raises :class:`DataError` naming the file.
    """
    classifier = model.pretrained_cfg["classifier"] + "."
    load_weights(model, path, fits=f"`{model.pretrained_cfg['architecture']}`",
                 keep_fresh=lambda key: key.startswith(classifier),
                 first_conv=f"{model.pretrained_cfg['first_conv']}.weight")
