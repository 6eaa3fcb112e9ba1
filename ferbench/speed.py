"""Model size and speed: parameters, MiB, MACs, latency and throughput.

Timing follows timm's benchmark script: untimed warm-up passes, then ``repeats`` timed forward
passes (``time.perf_counter``; on CUDA synchronised before and after each pass) in eval mode under
``torch.inference_mode``. Every result states its warm-up, repeats, threads, batch size and
device; the batch size asked for is the batch size measured. Models are left as found (device and
train/eval flags restored) and so is torch's thread count.

Two kinds of model are measured:

- a ``torch.nn.Module``, fed float32 batches of shape ``(batch, C, H, W)``;
- a classical model (not a module) with ``predict_proba(images)`` and an ``n_parameters``
  attribute, fed gray uint8 batches of shape ``(batch, H, W)`` (the preprocessed pixels). Its size counts
  8 bytes per parameter (float64 coefficients), it has no MAC count, and it runs on the CPU
  only; torch's thread setting does not bind the BLAS threads it may use.
"""

from __future__ import annotations

import itertools
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

Shape = tuple[int, ...]
"""One input without the batch dimension, normally (channels, height, width)."""

QUICK = {"latency": {"warmup": 2, "repeats": 5}, "throughput": {"warmup": 1, "repeats": 2}}
"""Warm-up and repeat counts of ``speed_report(quick=True)``; otherwise the functions' defaults."""


def count_parameters(model: Any) -> int:
    """Number of parameters, trainable or frozen (buffers such as BatchNorm statistics excluded).

    For a classical model, its ``n_parameters``.
    """
    if _is_classical(model):
        return int(model.n_parameters)
    return sum(p.numel() for p in model.parameters())


def model_size_mb(model: Any) -> float:
    """Size of the parameters in MiB (2**20 bytes): 4 bytes each (float32) for a torch model,
    whatever its current dtype; 8 bytes each (float64) for a classical model."""
    bytes_per_parameter = 8 if _is_classical(model) else 4
    return count_parameters(model) * bytes_per_parameter / 2**20


def count_macs(model: Any, input_shape: Shape) -> int | None:
    """Multiply-accumulates of one forward pass on one image (batch 1), in eval mode, no grad.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` (MACs = FLOPs / 2), which covers
    matrix products, convolutions and attention, not element-wise operations (activations,
    normalisation, pooling). None for a classical model.
    """
    if _is_classical(model):
        return None
    device = _device_of(model)
    counter = FlopCounterMode(display=False)
    with _eval_on(model, device), torch.no_grad(), counter:
        model(torch.zeros((1, *input_shape), device=device))
    return counter.get_total_flops() // 2


def measure_latency(
    model: Any,
    input_shape: Shape,
    device: str = "cpu",
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 100,
    batch_size: int = 1,
) -> dict[str, Any]:
    """Time of one forward pass on a batch, in ms: median, 90th percentile and mean.

    Runs under ``threads`` torch CPU threads (restored afterwards). Returns ``{median_ms, p90_ms,
    mean_ms, warmup, repeats, threads, batch_size, device}``.
    """
    seconds = _time_passes(model, input_shape, device, threads, warmup, repeats, batch_size)
    milliseconds = seconds * 1000
    return {
        "median_ms": float(np.median(milliseconds)),
        "p90_ms": float(np.percentile(milliseconds, 90)),
        "mean_ms": float(np.mean(milliseconds)),
        **_settings(device, threads, warmup, repeats, batch_size),
    }


def measure_throughput(
    model: Any,
    input_shape: Shape,
    device: str = "cpu",
    batch_size: int = 64,
    warmup: int = 3,
    repeats: int = 20,
    threads: int | None = None,
) -> dict[str, Any]:
    """Images per second over ``repeats`` timed batches (batch_size x repeats / total time).

    ``threads`` None keeps torch's current CPU thread count (reported). Returns ``{images_per_s,
    batch_ms, warmup, repeats, threads, batch_size, device}``, ``batch_ms`` the mean per batch.
    """
    threads = torch.get_num_threads() if threads is None else threads
    seconds = _time_passes(model, input_shape, device, threads, warmup, repeats, batch_size)
    return {
        "images_per_s": float(batch_size * repeats / seconds.sum()),
        "batch_ms": float(seconds.mean() * 1000),
        **_settings(device, threads, warmup, repeats, batch_size),
    }


def speed_report(
    model: Any, input_shape: Shape, device: str = "cpu", quick: bool = False
) -> dict[str, Any]:
    """Parameters, MiB, MACs, single-thread CPU latency and CPU throughput, plus CUDA latency and
    throughput when ``device`` is a CUDA device that is available (otherwise ``cuda`` is None and
    ``notes`` says why). ``quick`` uses few repeats (tests, smoke runs) and is recorded."""
    counts = QUICK if quick else {"latency": {}, "throughput": {}}
    notes: list[str] = []
    report: dict[str, Any] = {
        "params": count_parameters(model),
        "size_mb": model_size_mb(model),
        "macs": count_macs(model, input_shape),
        "input_shape": list(input_shape),
        "quick": quick,
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": {
            "latency": measure_latency(model, input_shape, "cpu", threads=1, **counts["latency"]),
            "throughput": measure_throughput(model, input_shape, "cpu", **counts["throughput"]),
        },
        "cuda": None,
        "notes": notes,
    }
    if quick:
        notes.append("quick: few warm-up passes and repeats; timings are rough")
    if torch.device(device).type == "cuda":
        if _is_classical(model):
            notes.append("classical model: measured on the CPU only")
        elif not torch.cuda.is_available():
            notes.append(f"device {device} asked for but CUDA is not available")
        else:
            report["cuda"] = {
                "name": torch.cuda.get_device_name(torch.device(device)),
                "latency": measure_latency(model, input_shape, device, **counts["latency"]),
                "throughput": measure_throughput(
                    model, input_shape, device, **counts["throughput"]
                ),
            }
    return report


def _is_classical(model: Any) -> bool:
    """True for a classical model; raise TypeError for something that is neither kind."""
    if isinstance(model, nn.Module):
        return False
    if hasattr(model, "predict_proba") and hasattr(model, "n_parameters"):
        return True
    raise TypeError(
        f"cannot measure a {type(model).__name__}: expected a torch.nn.Module or an object "
        "with predict_proba() and n_parameters"
    )


def _settings(
    device: str, threads: int, warmup: int, repeats: int, batch_size: int
) -> dict[str, Any]:
    """The measurement settings every timing result carries."""
    return {
        "warmup": warmup,
        "repeats": repeats,
        "threads": threads,
        "batch_size": batch_size,
        "device": str(device),
    }


def _time_passes(
    model: Any,
    input_shape: Shape,
    device: str,
    threads: int,
    warmup: int,
    repeats: int,
    batch_size: int,
) -> np.ndarray:
    """Seconds of each of ``repeats`` timed forward passes, after ``warmup`` untimed ones."""
    if warmup < 0 or repeats < 1 or batch_size < 1 or threads < 1:
        raise ValueError(
            f"need warmup >= 0, repeats >= 1, batch_size >= 1 and threads >= 1, got "
            f"warmup={warmup}, repeats={repeats}, batch_size={batch_size}, threads={threads}"
        )
    target = torch.device(device)
    synchronise = torch.cuda.synchronize if target.type == "cuda" else (lambda _device: None)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with _forward_pass(model, input_shape, batch_size, target) as run:
            for _ in range(warmup):
                run()
            seconds = np.empty(repeats)
            for i in range(repeats):
                synchronise(target)
                start = time.perf_counter()
                run()
                synchronise(target)
                seconds[i] = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous_threads)
    return seconds


@contextmanager
def _forward_pass(
    model: Any, input_shape: Shape, batch_size: int, device: torch.device
) -> Iterator[Callable[[], Any]]:
    """Yield a function running one forward pass on a fixed random batch on ``device``."""
    generator = np.random.default_rng(0)
    if _is_classical(model):
        if device.type != "cpu":
            raise ValueError(f"a classical model runs on the CPU only, not on {device}")
        # classical models take gray uint8 images, N x H x W (the channel axis is dropped)
        images = generator.integers(0, 256, (batch_size, *input_shape[-2:]), dtype=np.uint8)
        yield lambda: model.predict_proba(images)
        return
    shape = (batch_size, *input_shape)
    batch = torch.from_numpy(generator.standard_normal(shape, dtype=np.float32))
    with _eval_on(model, device), torch.inference_mode():
        batch = batch.to(device)
        yield lambda: model(batch)


@contextmanager
def _eval_on(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Put ``model`` in eval mode on ``device``; restore its device and each module's mode after."""
    home = _device_of(model)
    modes = {module: module.training for module in model.modules()}
    model.eval().to(device)
    try:
        yield
    finally:
        model.to(home)
        for module, training in modes.items():
            module.training = training


def _device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model holding neither)."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return torch.device("cpu") if first is None else first.device
