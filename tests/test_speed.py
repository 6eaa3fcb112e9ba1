"""Size and MAC counts of tiny known models, and the shape (not the values) of timing results."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ferbench.speed import (
    count_macs,
    count_parameters,
    measure_latency,
    measure_throughput,
    model_size_mb,
    speed_report,
)

TIMING_KEYS = {"warmup", "repeats", "threads", "batch_size", "device"}


class Classical:
    """A stand-in for a classical model (say an SVM with 1000 coefficients) over 3 classes."""

    n_parameters = 1000

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return np.full((len(images), 3), 1 / 3)


class Failing(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


def tiny_cnn() -> nn.Module:
    """1x8x8 input -> conv 3x3 (4 maps of 6x6) -> batch norm -> ReLU -> linear to 3 classes."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
    )


def test_parameter_count_and_size_of_a_linear_layer():
    model = nn.Linear(10, 5)  # 10*5 weights + 5 biases
    assert count_parameters(model) == 55
    assert model_size_mb(model) == pytest.approx(55 * 4 / 2**20)


def test_parameter_count_includes_frozen_parameters_but_not_buffers():
    model = tiny_cnn()
    model[0].requires_grad_(False)
    # conv 4*1*3*3 + 4, batch norm 4 + 4 (running stats are buffers), linear 144*3 + 3
    assert count_parameters(model) == 40 + 8 + 435


def test_macs_of_a_linear_layer_and_a_convolution():
    assert count_macs(nn.Linear(10, 5), (10,)) == 10 * 5
    # 4 filters of 3x3x1, each applied at 6x6 output positions of an 8x8 image
    assert count_macs(nn.Conv2d(1, 4, 3), (1, 8, 8)) == 4 * 9 * 36


def test_macs_of_a_small_network_add_up_and_leave_the_model_in_train_mode():
    model = tiny_cnn().train()
    assert count_macs(model, (1, 8, 8)) == 4 * 9 * 36 + 144 * 3
    assert all(module.training for module in model.modules())


def test_latency_result_states_its_settings_and_restores_threads_and_mode():
    model = tiny_cnn().train()
    model[1].eval()  # a module frozen in eval mode must stay so
    before = torch.get_num_threads()
    result = measure_latency(model, (1, 8, 8), threads=1, warmup=1, repeats=3)
    assert torch.get_num_threads() == before
    assert set(result) == {"median_ms", "p90_ms", "mean_ms"} | TIMING_KEYS
    settings = [result[key] for key in ("threads", "warmup", "repeats", "batch_size")]
    assert settings == [1, 1, 3, 1]
    assert result["device"] == "cpu"
    assert 0 < result["median_ms"] <= result["p90_ms"]
    assert result["mean_ms"] > 0
    assert [m.training for m in model.modules()] == [True, True, False, True, True, True]


def test_threads_are_restored_when_the_forward_pass_fails():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="boom"):
        measure_latency(Failing(), (1, 8, 8), threads=before + 1, warmup=0, repeats=1)
    assert torch.get_num_threads() == before


def test_throughput_keeps_the_batch_size_asked_for():
    result = measure_throughput(tiny_cnn(), (1, 8, 8), batch_size=7, warmup=0, repeats=2, threads=1)
    assert set(result) == {"images_per_s", "batch_ms"} | TIMING_KEYS
    assert result["batch_size"] == 7
    assert result["images_per_s"] > 0


def test_bad_timing_settings_are_refused():
    with pytest.raises(ValueError, match="repeats=0"):
        measure_latency(tiny_cnn(), (1, 8, 8), repeats=0)


def test_quick_speed_report_of_a_torch_model():
    report = speed_report(tiny_cnn(), (1, 8, 8), device="cpu", quick=True)
    assert report["params"] == 483
    assert report["size_mb"] == pytest.approx(483 * 4 / 2**20)
    assert report["macs"] == 4 * 9 * 36 + 144 * 3
    assert report["quick"] is True
    assert any("quick" in note for note in report["notes"])
    assert report["cpu"]["latency"]["threads"] == 1
    assert report["cpu"]["latency"]["batch_size"] == 1
    assert report["cpu"]["throughput"]["batch_size"] == 64
    assert report["cuda"] is None


def test_speed_report_of_a_classical_model():
    report = speed_report(Classical(), (1, 8, 8), device="cuda", quick=True)
    assert report["params"] == 1000
    assert report["size_mb"] == pytest.approx(8000 / 2**20)
    assert report["macs"] is None
    assert report["cpu"]["latency"]["median_ms"] > 0
    assert report["cuda"] is None
    assert any("classical" in note for note in report["notes"])


def test_something_that_is_no_model_is_refused():
    with pytest.raises(TypeError, match="predict_proba"):
        count_parameters(object())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_speed_report_measures_on_the_gpu_and_returns_the_model_to_the_cpu():
    model = tiny_cnn()
    report = speed_report(model, (1, 8, 8), device="cuda", quick=True)
    assert report["cuda"]["latency"]["device"] == "cuda"
    assert report["cuda"]["throughput"]["images_per_s"] > 0
    assert next(model.parameters()).device.type == "cpu"
