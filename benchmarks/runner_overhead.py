"""ferbench's training loop and latency timer against minimal hand-written PyTorch equivalents.

Measured in one run per model on the same data, epochs, batch size and thread count:

* training throughput (images/s): ``ferbench.training.fit`` with its defaults (uint8 crops
  prepared on the device, per-batch conversion, the card's optimiser and objective, the
  model's CPU memory format: ``channels_last`` for the models registered with
  ``cpu_channels_last``) vs a bare eager loop that converts the images to one contiguous float
  tensor once (timed: ``fit`` times its own preparation too) and trains on shuffled batches of
  it (Adam + cross-entropy);
* batch-1 latency: ``ferbench.speed.measure_latency`` vs a bare ``perf_counter`` loop.

    .venv/bin/python benchmarks/runner_overhead.py [--models microexpnet_xxs:84:64,...] [--epochs 2]
                                                   [--threads 1 --clock cpu]

``--clock cpu`` times training in CPU seconds of this process (``time.process_time``): with
``--threads 1`` the work done, barely moved by other processes sharing the cores.

Target (issue #15): ferbench's training throughput at least the bare loop's (ratio >= 1.0), aim
>= 1.3 for the tiny models; latency ratio near 1.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ferbench.cards import load_card
from ferbench.models import create_model
from ferbench.speed import measure_latency
from ferbench.training import fit, seed_everything
from ferbench.training.trainer import training_memory_format

MODELS = "microexpnet_xxs:84:64,lopes_cnn:48:128,emotionnet_nano_b:48:32"  # name:input side:batch size (the cards')

CARD = """
name: bench
model: {model}
input: {{channels: 1, size: [{size}, {size}], normalise: unit}}
recipe:
  epochs: {epochs}
  batch_size: {batch}
  optimizer: {{name: adam, lr: 1.0e-3}}
  objective: {{name: cross_entropy}}
"""


def bare_training(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int, size: int,
                  batch: int, clock: Callable[[], float]) -> float:
    """Seconds (on ``clock``) for a minimal loop: float data prepared once, shuffled batches, Adam + CE."""
    start = clock()
    x_all = F.interpolate(images[:, None].float(), size=(size, size), mode="bilinear", antialias=True) / 255.0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(epochs):
        for index in torch.randperm(len(x_all)).split(batch):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x_all[index]), labels[index]).backward()
            optimizer.step()
    return clock() - start


def bare_latency(model: torch.nn.Module, shape: tuple[int, ...], repeats: int) -> float:
    """Median ms of batch-1 forwards timed with perf_counter (after 10 warm-up passes)."""
    x = torch.randn(1, *shape)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 10):
            start = time.perf_counter()
            model(x)
            if i >= 10:
                times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def compare(name: str, size: int, batch: int, images: torch.Tensor, labels: torch.Tensor,
            args: argparse.Namespace, clock: Callable[[], float]) -> None:
    """Print ferbench vs bare training throughput and batch-1 latency of one model."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(CARD.format(model=name, size=size, epochs=args.epochs, batch=batch))
        card = load_card(path)
    ours_runs, bare_runs = [], []
    for _ in range(args.rounds):  # alternate, so warm-up and machine noise hit both alike
        seed_everything(0)
        model = create_model(name, num_classes=7, in_chans=1)
        start = clock()
        fit(model, card, images, labels, torch.device("cpu"), seed=0, progress=False)
        ours_runs.append(clock() - start)
        seed_everything(0)
        model = create_model(name, num_classes=7, in_chans=1)
        bare_runs.append(bare_training(model, images, labels, args.epochs, size, batch, clock))
    ours, bare = min(ours_runs), min(bare_runs)
    seen = len(images) * args.epochs
    model = create_model(name, num_classes=7, in_chans=1).eval()
    shape = (1, size, size)
    ours_lat, bare_lat = [], []
    for _ in range(args.rounds):
        ours_lat.append(measure_latency(model, shape, "cpu", threads=1, warmup=10, repeats=200)["median_ms"])
        torch.set_num_threads(1)
        bare_lat.append(bare_latency(model, shape, repeats=200))
        torch.set_num_threads(args.threads)
    ours_ms, bare_ms = min(ours_lat), min(bare_lat)
    print(f"model {name} at 1x{size}x{size}, {len(images)} images x {args.epochs} epochs, batch {batch}, "
          f"{args.threads} threads (training, {args.clock} clock, ferbench in {training_memory_format(card, 'cpu')}), "
          f"1 thread (latency), CPU, best of {args.rounds} alternating rounds")
    print(f"  training  ferbench {seen / ours:8.1f} img/s   bare loop {seen / bare:8.1f} img/s   "
          f"ratio {bare / ours:.3f}")
    print(f"  latency   ferbench {ours_ms:8.3f} ms      bare loop {bare_ms:8.3f} ms      ratio {bare_ms / ours_ms:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--rounds", type=int, default=3, help="alternating repetitions; the fastest of each counts")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (args.images, 128, 128), dtype=np.uint8))
    labels = torch.from_numpy(rng.integers(0, 7, args.images))
    for spec in args.models.split(","):
        name, size, batch = spec.split(":")
        compare(name, int(size), int(batch), images, labels, args, clock)


if __name__ == "__main__":
    main()
