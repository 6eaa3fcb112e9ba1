"""K folds trained one by one (``ferbench.training.fit``) vs all at once (``fit_stacked``).

Same card, models, data, seeds and device for both; rounds alternate (one-by-one, then
stacked) so warm-up and machine noise hit both alike, and the fastest round of each counts.
Folds differ slightly in size (``--images`` minus 3 per fold index), as cross-validation folds
do, so the stacked path pads and masks. Prints training images/s of both, their ratio, and the
largest weight difference between the two results (float noise, see ferbench.training.stacked).

    .venv/bin/python benchmarks/fold_batching.py                          # cuda if available, else cpu
    .venv/bin/python benchmarks/fold_batching.py --device cuda --folds 10 --epochs 3
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fold_batching.py --device cpu --folds 2 --images 64 \\
        --epochs 1 --rounds 1 --threads 1                                 # a quick check that it runs

Default: the bundled ``emotionnet_nano_b`` card (48x48, batch 32, Adam, four augmentations) with
its epochs cut to ``--epochs``, 900 random 64x64 uint8 images per fold, 7 classes, K = 4.
"""

from __future__ import annotations

import argparse
import time

import torch

from ferbench.cards import load_card
from ferbench.models.build import build_model
from ferbench.training import fit, seed_everything
from ferbench.training.stacked import fit_stacked, stack_refusal


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_folds(k: int, images: int, side: int, classes: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``k`` folds of random uint8 ``side`` x ``side`` faces; fold i has ``images - 3 i`` of them."""
    g = torch.Generator().manual_seed(0)
    folds = []
    for i in range(k):
        n = max(2, images - 3 * i)
        folds.append((torch.randint(0, 256, (n, side, side), generator=g, dtype=torch.uint8),
                      torch.randint(0, classes, (n,), generator=g)))
    return folds


def time_folds(card, folds: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device, classes: int,
               rounds: int, teachers: list | None = None) -> dict:
    """Training images/s of the folds one by one and stacked (fastest of ``rounds`` alternating
    rounds), their ratio and the largest weight difference; a card the stacked trainer refuses
    gets ``refused`` (the reason) and the one-by-one figure only. A distilling card needs
    ``teachers``, one per fold (``fit``'s ``teacher``), the same in both paths."""
    seeds = list(range(len(folds)))

    def models() -> list[torch.nn.Module]:
        built = []
        for seed in seeds:
            seed_everything(seed)
            built.append(build_model(card, classes))
        return built

    reason = stack_refusal(models()[0], card, device)
    one_by_one_runs, stacked_runs = [], []
    for _ in range(rounds):
        fresh = models()
        synchronize(device)
        start = time.perf_counter()
        reference = [fit(m, card, *fold, device, seed, teacher, progress=False)
                     for m, fold, seed, teacher in zip(fresh, folds, seeds, teachers or [None] * len(folds))]
        synchronize(device)
        one_by_one_runs.append(time.perf_counter() - start)
        if reason is not None:
            continue
        fresh = models()
        synchronize(device)
        start = time.perf_counter()
        stacked = fit_stacked(fresh, card, folds, device, seeds, teachers=teachers)
        synchronize(device)
        stacked_runs.append(time.perf_counter() - start)
    seen = sum(len(images) for images, _ in folds) * card.recipe.repeats * card.recipe.epochs
    result = {"card": card.name, "folds": len(folds), "epochs": card.recipe.epochs,
              "one_by_one_img_s": seen / min(one_by_one_runs), "refused": reason}
    if reason is None:
        result["stacked_img_s"] = seen / min(stacked_runs)
        result["speedup"] = min(one_by_one_runs) / min(stacked_runs)
        result["largest_weight_difference"] = max(
            (a - b).abs().max().item() for ref, ours in zip(reference, stacked)
            for a, b in zip(ref.state_dict().values(), ours.state_dict().values()))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--card", default="emotionnet_nano_b", help="bundled card name or path to a card file")
    parser.add_argument("--folds", type=int, default=4, help="K, the number of models trained")
    parser.add_argument("--images", type=int, default=900, help="training images of fold 0 (fold k: 3k fewer)")
    parser.add_argument("--side", type=int, default=64, help="side of the stored uint8 faces, in pixels")
    parser.add_argument("--classes", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="alternating repetitions; the fastest of each counts")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    card = load_card(args.card).with_epochs(args.epochs)
    folds = random_folds(args.folds, args.images, args.side, args.classes)
    result = time_folds(card, folds, device, args.classes, args.rounds)
    if result["refused"] is not None:
        raise SystemExit(f"card `{card.name}` cannot be stacked: {result['refused']}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"card {card.name} ({card.model} at {card.input.channels}x{card.input.size[0]}x{card.input.size[1]}, "
          f"batch {card.recipe.batch_size}), K={args.folds} folds of {len(folds[-1][0])}-{len(folds[0][0])} images "
          f"x {card.recipe.epochs} epochs, {name}, best of {args.rounds} alternating rounds")
    print(f"one by one {result['one_by_one_img_s']:9.1f} img/s   stacked {result['stacked_img_s']:9.1f} img/s   "
          f"ratio {result['speedup']:.2f}x   largest weight difference {result['largest_weight_difference']:.2e}")


if __name__ == "__main__":
    main()
