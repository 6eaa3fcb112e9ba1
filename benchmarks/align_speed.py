"""How long ``face: align`` takes against the Haar crop, cold, and where the time goes.

    .venv/bin/python benchmarks/align_speed.py [--shape paper|small] [--repeats 2] [--profile 200]

The image set is the one of ``benchmarks/alignment.py`` (all six-class CK+48 twin crops and
JAFFE twin frames: 927 + 183 at ``--shape paper``). Each repeat preprocesses the whole set once
with the Haar crop and once with eye alignment, alternating (the machine may be shared: both
see the same load), each into a fresh cache folder, and prints seconds per 1,000 images and
their ratio. ``--profile N`` then times the stages of alignment on the first N images of each
side in one thread (``cv2.setNumThreads(1)``): reading, the face search, the eye search, the
warp and the report's eye check (one call over all the side's outputs, as the pipeline makes it:
it searches at most ``pipeline.EYE_CHECK_IMAGES`` of them), in seconds per 1,000 images.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from alignment import SETTINGS, cold_seconds, load
from ferbench.preprocess import align, faces, pipeline


def profile(data, n: int) -> None:
    """Per-stage seconds per 1,000 images of alignment on the first ``n`` images of each side."""
    cv2.setNumThreads(1)
    pipeline.WORKERS = 1  # the eye check's pool too
    settings = data.protocol.preprocess
    template = align.Template((int(settings.size[0]), int(settings.size[1])), settings.eye_distance,
                              settings.eye_height)
    for side in (data.sources[0], data.target):
        stages = dict.fromkeys(("read", "face search", "eye search", "warp", "eye check"), 0.0)
        samples, outputs = side.samples[:n], []
        for sample in samples:
            clock = time.perf_counter()
            image = side.loader.read(sample)
            gray = faces.to_gray(image)
            stages["read"] += time.perf_counter() - clock
            clock = time.perf_counter()
            box = (faces.detect_face(gray, settings.min_face, align.FACE_SEARCH_SIDE)
                   or (0, 0, gray.shape[1], gray.shape[0]))
            stages["face search"] += time.perf_counter() - clock
            clock = time.perf_counter()
            eyes = align.haar_eyes(gray, box)
            stages["eye search"] += time.perf_counter() - clock
            if eyes is None:
                eyes = align.face_box_eyes(box)
            clock = time.perf_counter()
            outputs.append(align.align_face(image, eyes, template, settings.grayscale))
            stages["warp"] += time.perf_counter() - clock
        clock = time.perf_counter()
        pipeline.eye_spread(np.stack(outputs), settings.eye_distance)  # as the pipeline calls it
        stages["eye check"] = time.perf_counter() - clock
        per_1000 = {name: round(1000 * seconds / len(samples), 2) for name, seconds in stages.items()}
        print(f"  {side.dataset} ({len(samples)} images, one thread), s per 1,000: {per_1000}, "
              f"total {sum(per_1000.values()):.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="paper", choices=("paper", "small"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--profile", type=int, default=200, help="images per side to profile (0: none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = {label: load(args.shape, folder, label) for label in SETTINGS}
        count = sum(len(side.samples) for side in data["eye alignment"].all_sides())
        for repeat in range(args.repeats):
            seconds = {label: cold_seconds(load(args.shape, folder, label), folder / f"{repeat}-{k}")
                       for k, label in enumerate(SETTINGS)}
            per_1000 = {label: 1000 * s / count for label, s in seconds.items()}
            print(f"repeat {repeat + 1}: {count} images, s per 1,000: haar crop {per_1000['haar crop']:.2f}, "
                  f"eye alignment {per_1000['eye alignment']:.2f} (ratio "
                  f"{seconds['eye alignment'] / seconds['haar crop']:.2f})", flush=True)
        if args.profile:
            profile(data["eye alignment"], args.profile)


if __name__ == "__main__":
    main()
