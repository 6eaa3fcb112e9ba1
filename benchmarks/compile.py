"""``torch.compile`` and ``channels_last`` against eager for the training step of small models on a CPU.

One training step = forward, cross-entropy, backward and an Adam step on a fixed float batch
(the card's batch size and input size), the step ``ferbench.training.fit`` repeats. Each variant
runs ``--steps`` steps after ``--warmup`` untimed ones (compilation happens there in the first round and
is reported apart); variants alternate over ``--rounds`` rounds and the fastest round of each counts.
Also checks determinism: two compiled runs from the same seed must end with identical weights.

    .venv/bin/python benchmarks/compile.py [--models microexpnet_xxs:84:64,...] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from ferbench.models import create_model
from ferbench.training import seed_everything

MODELS = "microexpnet_xxs:84:64,emotionnet_nano_b:48:32,lopes_cnn:48:128"  # name:input side:batch size
VARIANTS = ("eager", "channels_last", "compile", "compile+channels_last")


def build(name: str, variant: str) -> torch.nn.Module:
    seed_everything(0)
    model = create_model(name, num_classes=7, in_chans=1).train()
    if "channels_last" in variant:
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if variant.startswith("compile") else model


def run_steps(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, warmup: int,
              channels_last: bool) -> tuple[float, float, dict[str, torch.Tensor]]:
    """(seconds of the warm-up steps, seconds per timed step, final weights)."""
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    start = time.perf_counter()
    for _ in range(warmup):
        step()
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    per_step = (time.perf_counter() - start) / steps
    return warm, per_step, {k: v.detach().clone() for k, v in model.state_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for spec in args.models.split(","):
        name, side, batch = spec.split(":")
        g = torch.Generator().manual_seed(0)
        x = torch.rand(int(batch), 1, int(side), int(side), generator=g)
        y = torch.randint(0, 7, (int(batch),), generator=g)
        best = {v: float("inf") for v in VARIANTS}
        warm = {}
        weights = {}
        for _ in range(args.rounds):
            for variant in VARIANTS:
                seconds, per_step, final = run_steps(build(name, variant), x, y, args.steps, args.warmup,
                                                     "channels_last" in variant)
                best[variant] = min(best[variant], per_step)
                warm.setdefault(variant, seconds)
                weights.setdefault(variant, []).append(final)
        same = {v: all(torch.equal(a[k], b[k]) for k in a) for v, (a, b, *_) in weights.items()}
        print(f"{name} 1x{side}x{side} batch {batch}, {args.threads} threads, best of {args.rounds} rounds")
        for variant in VARIANTS:
            print(f"  {variant:22s} {1000 * best[variant]:8.1f} ms/step  speed-up {best['eager'] / best[variant]:5.2f}x  "
                  f"first {args.warmup} steps {warm[variant]:6.1f} s  rerun identical {same[variant]}")


if __name__ == "__main__":
    main()
