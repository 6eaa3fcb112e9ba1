"""Cross-dataset accuracy on the twins with the Haar crop and with eye alignment, and what
aligning costs.

    .venv/bin/python benchmarks/alignment.py [--shape paper|small] [--epochs 8] [--cards hog_svm,lbp_svm]

The protocol is the C-SPP / Miao CK+ -> JAFFE setup on the synthetic twins, with the CK+ side
as the tight CK+48 crops (as on the real copy measured in issue #14): one model trained on all
six-class CK+48 crops, tested on the six-class JAFFE frames. It runs twice, once with the old
shared preprocessing (Haar face + 10% margin, centre crop when no face) and once with ``face:
align``; for each it prints the preprocessing report of both sides (methods, eye spread), the
seconds preprocessing took (nothing cached: a fresh cache folder), and the target accuracy of
HOG + SVM, LBP + SVM and MicroExpNet-XXS (the quick recipe of the learning test, ``--epochs``;
``--cards`` picks some of them).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ferbench.cards import load_card
from ferbench.jobs import train_model
from ferbench.pipeline import attach_images, load_protocol_data
from ferbench.protocol import load_protocol
from ferbench.training import predict_proba

PROTOCOL = """\
id: alignment_benchmark
version: 1
classes: [anger, disgust, fear, happy, sadness, surprise]
cross_dataset:
  train:
    - dataset: {{name: ckplus, root: "synthetic:{shape}", options: {{layout: ck48}}}}
      frames: {{select: all}}
  test:
    dataset: {{name: jaffe, root: "synthetic:{shape}"}}
    frames: {{select: all}}
  evaluate: all_source
preprocess: {preprocess}
"""
SETTINGS = {
    "haar crop": "{face: haar, margin: 0.1, grayscale: true, size: [128, 128], on_no_face: center_crop}",
    "eye alignment": "{face: align, eye_distance: 0.38, eye_height: 0.33, grayscale: true, size: [128, 128]}",
}
CARDS = ("hog_svm", "lbp_svm", "microexpnet_xxs")


def quick(name: str, epochs: int):
    """The bundled card; a neural one with the quick recipe of tests/test_baselines_learn.py
    (Adam lr 1e-3, constant rate, batch 32, 1 repeat, no augmentation) for ``epochs`` epochs."""
    card = load_card(name)
    if card.recipe is None:
        return card
    adam = load_card("emotionnet_nano_a").recipe.optimizer.model_copy(update={"lr": 1e-3, "eps": 1e-8})
    recipe = card.recipe.model_copy(update={
        "epochs": epochs, "repeats": 1, "batch_size": 32, "optimizer": adam,
        "schedule": load_card("microexpnet_xxs").recipe.schedule, "augment": (), "tta": "none"})
    return card.model_copy(update={"recipe": recipe})


def load(shape: str, folder: Path, label: str):
    """The protocol data of ``SETTINGS[label]`` (its YAML written to ``folder``; twins from
    $FERBENCH_CACHE)."""
    path = folder / f"{label.replace(' ', '_')}.yaml"
    path.write_text(PROTOCOL.format(shape=shape, preprocess=SETTINGS[label]))
    return load_protocol_data(load_protocol(path))


def cold_seconds(data, folder: Path) -> float:
    """Seconds :func:`attach_images` takes on ``data`` with an empty crop cache in ``folder``."""
    twins = os.environ.get("FERBENCH_CACHE")
    os.environ["FERBENCH_CACHE"] = str(folder)
    try:
        start = time.perf_counter()
        attach_images(data, progress=False)
        return time.perf_counter() - start
    finally:
        if twins is None:
            del os.environ["FERBENCH_CACHE"]
        else:
            os.environ["FERBENCH_CACHE"] = twins


def run(shape: str, epochs: int, folder: Path, cards: tuple[str, ...] = CARDS) -> None:
    torch.set_num_threads(2)
    cpu = torch.device("cpu")
    for label in SETTINGS:
        data = load(shape, folder, label)
        seconds = cold_seconds(data, folder / label.replace(" ", "_"))  # crops: fresh, timed
        source, target = data.sources[0], data.target
        print(f"\n## {label}: preprocessing {len(source.samples) + len(target.samples)} images took {seconds:.1f} s")
        for side in (source, target):
            report = side.preprocess_report
            print(f"  {side.role} {side.dataset}: methods {report['methods']}, detection rate "
                  f"{report['detection_rate']}, eyes found again {report['eyes_found_again']} of "
                  f"{report['eyes_checked']} checked, "
                  f"eye mean {report['eye_mean_px']}, eye spread {report['eye_spread_px']} px")
        for name in cards:
            card = quick(name, epochs)
            model = train_model(card, source.images, source.y, len(data.protocol.classes), 0, cpu)
            predicted = predict_proba(model, card, torch.from_numpy(target.images), cpu).argmax(dim=1).numpy()
            print(f"  {name}: target accuracy {100 * np.mean(predicted == target.y):.1f}% "
                  f"({len(target.y)} images)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="paper", choices=("paper", "small"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--cards", default=",".join(CARDS), help="comma-separated, of " + ", ".join(CARDS))
    args = parser.parse_args()
    cards = tuple(args.cards.split(","))
    if not set(cards) <= set(CARDS):
        parser.error(f"--cards: expected some of {', '.join(CARDS)}, got {args.cards}")
    with tempfile.TemporaryDirectory() as folder:
        run(args.shape, args.epochs, Path(folder), cards)


if __name__ == "__main__":
    main()
