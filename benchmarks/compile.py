"""``torch.compile`` and ``channels_last`` against eager for the training step of small models on a CPU.

One training step = forward, cross-entropy, backward and an Adam step on a fixed float batch
(the card's batch size and input size), the step ``ferbench.training.fit`` repeats. Each round
builds every variant from the same seed, runs ``--warmup`` steps of each (compilation happens
there; reported apart, in wall-clock seconds), then ``--steps`` steps with the variants
interleaved step by step, so load from other processes hits them alike; a variant's time is its fastest step
over all rounds (the median is printed too). ``--clock cpu`` times steps in CPU seconds of
this process (``time.process_time``) instead of wall-clock seconds: with ``--threads 1`` that
is the work a step costs, barely moved by other processes sharing the cores. Also checks
determinism: every round must end with the same weights for a variant.

    .venv/bin/python benchmarks/compile.py [--models microexpnet_xxs:84:64,...] [--variants channels_last]
                                           [--threads 1 --clock cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ferbench.models import create_model
from ferbench.training import seed_everything

MODELS = "microexpnet_xxs:84:64,lopes_cnn:48:128,emotionnet_nano_b:48:32"  # name:input side:batch size
VARIANTS = ("eager", "channels_last", "compile", "compile+channels_last")


def build(name: str, variant: str) -> torch.nn.Module:
    seed_everything(0)
    model = create_model(name, num_classes=7, in_chans=1).train()
    if "channels_last" in variant:
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if variant.startswith("compile") else model


def training_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, channels_last: bool,
                  clock: Callable[[], float]) -> Callable[[], float]:
    """A function running one training step on (``x``, ``y``) and returning its seconds on ``clock``."""
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> float:
        start = clock()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        return clock() - start

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--variants", default=",".join(VARIANTS[1:]), help="comma-separated; eager always runs")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    variants = ("eager", *(v for v in VARIANTS[1:] if v in args.variants.split(",")))
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    for spec in args.models.split(","):
        name, side, batch = spec.split(":")
        g = torch.Generator().manual_seed(0)
        x = torch.rand(int(batch), 1, int(side), int(side), generator=g)
        y = torch.randint(0, 7, (int(batch),), generator=g)
        times: dict[str, list[float]] = {v: [] for v in variants}
        warm: dict[str, float] = {}
        weights: dict[str, list[dict[str, torch.Tensor]]] = {v: [] for v in variants}
        for _ in range(args.rounds):
            models = {v: build(name, v) for v in variants}
            steps = {v: training_step(models[v], x, y, "channels_last" in v, clock) for v in variants}
            for v in variants:  # wall-clock seconds: compilation also runs in worker processes
                start = time.perf_counter()
                for _ in range(args.warmup):
                    steps[v]()
                warm.setdefault(v, time.perf_counter() - start)
            for _ in range(args.steps):
                for v in variants:
                    times[v].append(steps[v]())
            for v in variants:
                weights[v].append({k: t.detach().clone() for k, t in models[v].state_dict().items()})
        same = {v: all(torch.equal(w[0][k], other[k]) for other in w[1:] for k in w[0]) for v, w in weights.items()}
        best = {v: min(t) for v, t in times.items()}
        print(f"{name} 1x{side}x{side} batch {batch}, {args.threads} threads, {args.clock} clock, "
              f"{args.rounds} rounds x {args.steps} interleaved steps")
        for v in variants:
            print(f"  {v:22s} fastest {1000 * best[v]:8.1f} ms/step (median {1000 * statistics.median(times[v]):8.1f})"
                  f"  speed-up {best['eager'] / best[v]:5.2f}x  first {args.warmup} steps {warm[v]:6.1f} s  "
                  f"rerun identical {same[v]}")


if __name__ == "__main__":
    main()
