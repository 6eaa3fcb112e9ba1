"""Time the synthetic twins and measure how often OpenCV's Haar cascade finds their faces.

Prints, per layout: seconds to write the twin (paper shape by default), files and megabytes;
then the Haar detection rate on random frames of each population and on CK+48 twin crops.

    .venv/bin/python benchmarks/synth_speed.py                      # every layout, paper shape
    .venv/bin/python benchmarks/synth_speed.py ckplus jaffe --shape small --haar 200
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
from tabulate import tabulate

from ferbench.synth import LAYOUTS, POPULATIONS, write_twin
from ferbench.preprocess.faces import detect_face
from ferbench.synth.face import random_faces
from ferbench.synth.layouts import truth_faces


def time_layout(layout: str, shape: str, workers: int | None) -> list[object]:
    """[layout, seconds, files, MB] of one twin written into a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_twin(layout, Path(tmp), shape=shape, workers=workers)
        seconds = time.perf_counter() - start
        files = [p for p in Path(tmp).rglob("*") if p.is_file()]
        megabytes = sum(p.stat().st_size for p in files) / 1e6
    return [layout, round(seconds, 1), len(files), round(megabytes, 1)]


def haar_rate(population: str, frames: int, seed: int = 0) -> float:
    """Fraction of ``random_faces`` frames in which the frontal-face cascade finds a face."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    found = 0
    for image, _, _, _ in random_faces(population, frames, seed):
        side = min(image.shape[:2]) // 5
        found += len(cascade.detectMultiScale(image, 1.1, 5, minSize=(side, side))) > 0
    return found / frames


def ck48_haar_rate(crops: int, seed: int = 0) -> float:
    """Fraction of CK+48 twin crops (``truth_faces``) in which ``detect_face`` finds a face, as
    the cross-dataset preprocessing runs it (min_face 0.15); 78% on the real copy."""
    return sum(detect_face(crop, 0.15) is not None for crop, _ in truth_faces("ckplus48", crops, seed)) / crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layouts", nargs="*", metavar="LAYOUT", help=f"default: all of {', '.join(LAYOUTS)}")
    parser.add_argument("--shape", default="paper", choices=("paper", "small"))
    parser.add_argument("--workers", type=int, default=None, help="processes (default: up to 2)")
    parser.add_argument("--haar", type=int, default=200, help="frames per population (0 to skip)")
    args = parser.parse_args()
    rows = [time_layout(layout, args.shape, args.workers) for layout in args.layouts or LAYOUTS]
    print(tabulate(rows, headers=["layout", "seconds", "files", "MB"]))
    if args.haar:
        rates = [[p, args.haar, f"{100 * haar_rate(p, args.haar):.1f}%"] for p in POPULATIONS]
        rates.append(["ckplus48 crops", args.haar, f"{100 * ck48_haar_rate(args.haar):.1f}%"])
        print(tabulate(rates, headers=["population", "frames", "Haar detection"]))


if __name__ == "__main__":
    main()
