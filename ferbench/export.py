"""ONNX: export a trained model, check it against PyTorch, and run it with ONNX Runtime.

:func:`export_onnx` uses the TorchScript-based exporter (``dynamo=False``: the dynamo exporter
needs ``onnxscript``) at opset 17, with input ``input`` (``B x C x H x W`` float32, normalised
as the card says) and output ``logits`` (``B x K``), the batch axis dynamic. The file carries
the card and the label order as metadata (key ``ferbench``), so ``ferbench evaluate`` and
``ferbench predict`` need neither.

:class:`OnnxModule` runs an ONNX file with ONNX Runtime on the CPU behind the ``nn.Module``
interface, so the trainer's ``predict_proba`` and the timing functions of :mod:`ferbench.speed`
take it like any network. Needs the ``onnx`` and ``onnxruntime`` packages (extra ``onnx``).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ferbench.cards import ModelCard
from ferbench.errors import DataError, FerbenchError
from ferbench.protocol import PreprocessSpec
from ferbench.speed import QUICK, Shape, measure_latency

OPSET = 17
METADATA_KEY = "ferbench"
TOLERANCE = 1e-4
"""Largest absolute logit difference between PyTorch and ONNX Runtime that :func:`export_onnx` accepts."""


def _onnx_modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise FerbenchError(f"ONNX support needs the packages onnx and onnxruntime ({err}); "
                            "install them with `pip install ferbench[onnx]`") from err
    return onnx, onnxruntime


class OnnxModule(nn.Module):
    """An ONNX file run by ONNX Runtime on the CPU with ``threads`` intra-op threads (and one
    inter-op thread). ``forward`` takes a float tensor ``B x C x H x W`` on any device and returns
    the first output as float32 on that device. Holds no torch parameters."""

    def __init__(self, path: str | Path, threads: int = 1):
        super().__init__()
        onnx, ort = _onnx_modules()
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(self.path, "ONNX file not found")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise DataError(self.path, f"ONNX Runtime cannot load this file ({err})") from err
        self.input_name = self.session.get_inputs()[0].name
        graph = onnx.load(str(self.path), load_external_data=False)
        self.n_parameters = sum(int(np.prod(t.dims)) for t in graph.graph.initializer)
        """Number of weights stored in the file (its initializers)."""

    @property
    def metadata(self) -> dict[str, Any]:
        """What :func:`export_onnx` stored (``card``, ``labels``, ``preprocess``), or ``{}`` for a foreign file."""
        text = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        return json.loads(text) if text else {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (out, *_) = self.session.run(None, {self.input_name: x.detach().float().cpu().numpy()})
        return torch.from_numpy(out).float().to(x.device)


def export_onnx(model: nn.Module, card: ModelCard, path: str | Path, labels: tuple[str, ...] | None = None,
                preprocess: PreprocessSpec | None = None) -> float:
    """Write ``model`` (built from ``card``; moved to the CPU, eval mode) to ``path`` as ONNX with
    ``card``, ``labels`` and ``preprocess`` (the face crop it was trained on) as metadata, and return
    the largest absolute difference of its logits from PyTorch's on a random batch of 3 (a batch
    size other than the traced 1, so the dynamic axis is checked too).

    Raises:
        FerbenchError: a classical model, or ONNX Runtime disagreeing by more than :data:`TOLERANCE`.
    """
    onnx, _ = _onnx_modules()
    if not isinstance(model, nn.Module):
        raise FerbenchError(f"model `{card.model}` of card `{card.name}` is not a neural network; only "
                            "torch modules export to ONNX")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    shape = (card.input.channels, *card.input.size)
    staging = path.with_name(f".{path.name}.partial")  # only a checked file reaches ``path``
    try:
        with warnings.catch_warnings():
            # The exporter's own deprecation notices; and tracer warnings about spatial sizes, which the
            # card fixes (only the batch axis is dynamic, checked below with a batch of 3).
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(model, (torch.zeros(1, *shape),), str(staging), dynamo=False, opset_version=OPSET,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        graph = onnx.load(str(staging))
        metadata = {"card": card.resolved_dict(), "labels": list(labels) if labels else None,
                    "preprocess": preprocess.model_dump(mode="json") if preprocess else None}
        graph.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata))
        onnx.save(graph, str(staging))
        difference = max_difference(model, OnnxModule(staging), shape)
        if difference > TOLERANCE:
            raise FerbenchError(f"{path}: ONNX Runtime's logits differ from PyTorch's by {difference:.2e} "
                                f"(more than {TOLERANCE:g})")
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    return difference


def max_difference(model: nn.Module, onnx_model: OnnxModule, input_shape: Shape, batch: int = 3) -> float:
    """Largest absolute difference between the two models' outputs on a fixed random ``batch``."""
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((batch, *input_shape), dtype=np.float32))
    with torch.no_grad():
        return float((model.cpu().eval()(x) - onnx_model(x)).abs().max())


def onnx_latency(model: nn.Module, card: ModelCard, threads: int = 1, quick: bool = False) -> dict[str, Any]:
    """Batch-1 CPU latency of ``model`` exported to ONNX and run by ONNX Runtime with ``threads``
    intra-op threads: the result of :func:`ferbench.speed.measure_latency` (same warm-up and
    repeats as PyTorch's, ``QUICK`` counts when ``quick``) plus ``max_abs_diff`` from PyTorch."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        difference = export_onnx(model, card, path)
        counts = QUICK["latency"] if quick else {}
        shape = (card.input.channels, *card.input.size)
        latency = measure_latency(OnnxModule(path, threads), shape, "cpu", threads=threads, **counts)
    return {**latency, "max_abs_diff": difference}
