"""ferbench's training loop and latency timer against minimal hand-written PyTorch equivalents.

Measured in one run on the same model, data, epochs, batch size and thread count:

* training throughput (images/s): ``ferbench.training.fit`` (uint8 crops on the device,
  per-batch conversion, the card's optimiser and objective) vs a bare loop over a
  pre-converted float tensor (Adam + cross-entropy, same batch order cost);
* batch-1 latency: ``ferbench.speed.measure_latency`` vs a bare ``perf_counter`` loop.

    .venv/bin/python benchmarks/runner_overhead.py [--model emotionnet_nano_b] [--epochs 3]

Target: the runner within 10% of the bare loop (ratio >= 0.9).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ferbench.cards import load_card
from ferbench.models import create_model
from ferbench.speed import measure_latency
from ferbench.training import fit, seed_everything

CARD = """
name: bench
model: {model}
input: {{channels: 1, size: [{size}, {size}], normalise: unit}}
recipe:
  epochs: {epochs}
  batch_size: 64
  optimizer: {{name: adam, lr: 1.0e-3}}
  objective: {{name: cross_entropy}}
"""


def bare_training(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int, size: int) -> float:
    """Seconds for a minimal loop: float data prepared once, shuffled batches, Adam + CE."""
    x_all = F.interpolate(images[:, None].float(), size=(size, size), mode="bilinear", antialias=True) / 255.0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        for index in torch.randperm(len(x_all)).split(64):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x_all[index]), labels[index]).backward()
            optimizer.step()
    return time.perf_counter() - start


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="emotionnet_nano_b")
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--images", type=int, default=900)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="alternating repetitions; the fastest of each counts")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (args.images, 128, 128), dtype=np.uint8))
    labels = torch.from_numpy(rng.integers(0, 7, args.images))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(CARD.format(model=args.model, size=args.size, epochs=args.epochs))
        card = load_card(path)
    ours_runs, bare_runs = [], []
    for _ in range(args.rounds):  # alternate, so warm-up and machine noise hit both alike
        seed_everything(0)
        model = create_model(args.model, num_classes=7, in_chans=1)
        start = time.perf_counter()
        fit(model, card, images, labels, torch.device("cpu"), seed=0, progress=False)
        ours_runs.append(time.perf_counter() - start)
        seed_everything(0)
        model = create_model(args.model, num_classes=7, in_chans=1)
        bare_runs.append(bare_training(model, images, labels, args.epochs, args.size))
    ours, bare = min(ours_runs), min(bare_runs)
    seen = args.images * args.epochs
    model = create_model(args.model, num_classes=7, in_chans=1).eval()
    shape = (1, args.size, args.size)
    ours_lat, bare_lat = [], []
    for _ in range(args.rounds):
        ours_lat.append(measure_latency(model, shape, "cpu", threads=1, warmup=10, repeats=200)["median_ms"])
        torch.set_num_threads(1)
        bare_lat.append(bare_latency(model, shape, repeats=200))
        torch.set_num_threads(args.threads)
    ours_ms, bare_ms = min(ours_lat), min(bare_lat)
    print(f"model {args.model} at 1x{args.size}x{args.size}, {args.images} images x {args.epochs} epochs, "
          f"batch 64, {args.threads} threads (training), 1 thread (latency), CPU, best of {args.rounds} alternating rounds")
    print(f"training  ferbench {seen / ours:8.1f} img/s   bare loop {seen / bare:8.1f} img/s   "
          f"ratio {bare / ours:.3f}")
    print(f"latency   ferbench {ours_ms:8.3f} ms      bare loop {bare_ms:8.3f} ms      ratio {bare_ms / ours_ms:.3f}")


if __name__ == "__main__":
    main()
