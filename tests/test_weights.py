"""The one weight loader (ferbench.models.checkpoint.load_weights): exact fits, and what it refuses or skips."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from ferbench.errors import DataError
from ferbench.models.checkpoint import load_weights


class TinyCNN(nn.Module):
    """A 1-channel conv and a linear head: tensors conv.weight, conv.bias, fc.weight, fc.bias."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4, num_classes)


def _bytes(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def test_an_exact_fit_loads_every_tensor_from_a_file_or_bytes(tmp_path: Path):
    torch.manual_seed(0)
    source = TinyCNN(num_classes=2)
    torch.save(source.state_dict(), tmp_path / "model.pt")
    for checkpoint in (tmp_path / "model.pt", _bytes(source.state_dict())):
        torch.manual_seed(1)
        target = TinyCNN(num_classes=2)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing skipped, nothing kept fresh: no warning
            assert load_weights(target, checkpoint) is target
        for name, tensor in source.state_dict().items():
            assert torch.equal(target.state_dict()[name], tensor)


def test_a_checkpoint_that_does_not_fit_is_refused_naming_its_origin_and_keys(tmp_path: Path):
    seven = TinyCNN(num_classes=7).state_dict()
    target = TinyCNN(num_classes=2)
    before = {name: tensor.clone() for name, tensor in target.state_dict().items()}
    with pytest.raises(DataError, match=r"^the teacher model of seed0/fold1: does not fit the model: "
                                        r"2 misshapen keys \(fc\.weight, fc\.bias\)$"):
        load_weights(target, _bytes(seven), origin="the teacher model of seed0/fold1")
    extra = {**TinyCNN(num_classes=2).state_dict(), "extra.weight": torch.zeros(3)}
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(DataError, match=r"extra\.pt: does not fit card `x`: 1 unexpected keys \(extra\.weight\)$"):
        load_weights(target, tmp_path / "extra.pt", fits="card `x`")
    without_head = {k: v for k, v in extra.items() if not k.startswith(("fc.", "extra."))}
    with pytest.raises(DataError, match=r"2 missing keys \(fc\.weight, fc\.bias\)$"):
        load_weights(target, _bytes(without_head))
    assert all(torch.equal(target.state_dict()[name], tensor) for name, tensor in before.items())  # refused: untouched


def test_keep_fresh_skips_what_does_not_fit_with_a_warning_and_refuses_a_checkpoint_with_nothing_that_fits():
    torch.manual_seed(0)
    source = TinyCNN(num_classes=7).state_dict()
    target = TinyCNN(num_classes=2)
    head = target.fc.weight.clone()
    with pytest.warns(UserWarning, match=r"2 model tensors keep their initialisation \(fc\.bias, fc\.weight\); "
                                         r"3 checkpoint tensors do not fit the model \(fc\.weight, fc\.bias, extra\)"):
        load_weights(target, _bytes({**source, "extra": torch.zeros(1)}), keep_fresh=lambda key: True)
    assert torch.equal(target.conv.weight, source["conv.weight"]) and torch.equal(target.fc.weight, head)
    with pytest.raises(DataError, match="no tensor of this checkpoint fits the model"):
        load_weights(target, _bytes({"other.weight": torch.zeros(1)}), keep_fresh=lambda key: True)
