"""Where the true eyes land after ``face: align``, at the pipeline level, before and after the side's eye prior.

    PYTHONPATH=. .venv/bin/python benchmarks/eye_prior_twins.py [--faces 100] [--seed 5] [--layouts ckplus48 ...]
    PYTHONPATH=. .venv/bin/python benchmarks/eye_prior_twins.py --calibrate --faces 300 --seed 11

For each layout, ``--faces`` twin faces with known eyes (:func:`ferbench.synth.layouts.truth_faces`)
are written as PNG files to a temporary folder, flagged as face crops as their loaders flag them
(``Sample.attrs["cropped"]``), and preprocessed as one side by :func:`preprocess_samples` with
``face: align`` at 128 x 128 (the default template, eye distance 48.6 px). The true eyes are
mapped with the similarity the pipeline used (from ``PreprocessResult.eyes``); the error of a face
is the larger distance of its two eyes from the template's, output pixels. "Before" is the
pipeline without the prior: the cascade's eyes as :func:`~ferbench.preprocess.align.find_eyes`
returns them, the mean eye fractions of those for faces without any (what the pipeline did
up to PREPROCESS_VERSION 3). Prints per layout the share of faces within 2 / 4 px before and
after, the methods, and the prior's weights per component.

``--calibrate`` prints instead what ``eye_prior``'s constants are measured from: per layout, the
cascade's error (found - true, source pixels) in each component of ``eye_prior.to_params`` (the
tilt's times the eye distance), sd and mean, on the faces where ``find_eyes`` used the cascade.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
from tabulate import tabulate

from ferbench.data.base import DatasetLoader, Sample
from ferbench.preprocess import align, eye_prior, preprocess_samples
from ferbench.protocol import PreprocessSpec
from ferbench.synth.layouts.truth import CROP_LAYOUTS, TRUTH_LAYOUTS, truth_faces

SPEC = PreprocessSpec(face="align", size=(128, 128))


class FolderLoader(DatasetLoader):
    """Reads the written twin files; no landmarks (the twins' loaders give none for these layouts)."""

    name = "twins"

    def load(self, root, options):  # the samples are made by :func:`write_twins`
        return []


def write_twins(layout: str, n: int, seed: int, folder: Path) -> tuple[list[Sample], np.ndarray]:
    """The twin faces of ``layout`` as PNG files in ``folder``: their samples, and their true eyes (n x 2 x 2)."""
    samples, truths = [], []
    for k, (image, truth) in enumerate(truth_faces(layout, n, seed)):
        path = folder / f"{layout}-{k}.png"
        cv2.imwrite(str(path), image)
        samples.append(Sample("twins", str(path), subject=None, label="happy", code="happy",
                              attrs={"cropped": layout in CROP_LAYOUTS}))
        truths.append(truth)
    return samples, np.stack(truths)


def landing_errors(eyes: np.ndarray, truths: np.ndarray, template: align.Template) -> np.ndarray:
    """Per face: the larger distance (output px) of its true eyes (N x 2 x 2) from ``template``'s
    after the similarity that maps ``eyes`` (N x 2 x 2, the ones the warp used) onto it."""
    target = template.eyes()
    errors = []
    for used, truth in zip(eyes, truths):
        matrix = align.similarity(used, target)
        errors.append(float(np.linalg.norm(truth @ matrix[:, :2].T + matrix[:, 2] - target, axis=1).max()))
    return np.array(errors)


def before_eyes(samples: list[Sample], precropped: bool) -> np.ndarray:
    """The eyes the pipeline warped with before the prior: ``find_eyes``' own, else the mean
    eye fractions of the found ones (N x 2 x 2 pixels)."""
    images = [FolderLoader().read(s) for s in samples]
    found = [align.find_eyes(image, SPEC.min_face, precropped)[0] for image in images]
    sizes = np.array([(image.shape[1], image.shape[0]) for image in images], np.float64)
    fractions = [eyes / size for eyes, size in zip(found, sizes) if eyes is not None]
    mean = np.mean(fractions, axis=0)
    return np.stack([eyes if eyes is not None else mean * size for eyes, size in zip(found, sizes)])


def measure(layout: str, n: int, seed: int, folder: Path) -> dict:
    """Errors (output px, per face) before and after, and the pipeline's report, for one layout."""
    samples, truths = write_twins(layout, n, seed, folder)
    result = preprocess_samples(FolderLoader(), samples, SPEC, cache_dir=folder / "cache", progress=False)
    assert result.kept.tolist() == list(range(n)), "every twin face is kept"
    template = align.Template(SPEC.size, SPEC.eye_distance, SPEC.eye_height)
    return {"before": landing_errors(before_eyes(samples, layout in CROP_LAYOUTS), truths, template),
            "after": landing_errors(result.eyes, truths, template), "report": result.report}


def calibrate(layout: str, n: int, seed: int) -> list[str]:
    """Table cells: faces with cascade eyes, then sd and mean of the cascade's error per component
    (source pixels; the tilt's times the true eye distance in pixels)."""
    found, truths, sizes = [], [], []
    for image, truth in truth_faces(layout, n, seed):
        eyes, method = align.find_eyes(image, SPEC.min_face, layout in CROP_LAYOUTS)
        if method == "eyes":
            found.append(eyes)
            truths.append(truth)
            sizes.append((image.shape[1], image.shape[0]))
    sizes = np.array(sizes, np.float64)
    true = eye_prior.to_params(np.stack(truths), sizes)
    scale = np.column_stack([sizes[:, 0], sizes[:, 1], sizes[:, 0], true[:, 2] * sizes[:, 0]])
    error = (eye_prior.to_params(np.stack(found), sizes) - true) * scale
    return [str(len(found)), *(f"{sd:.2f} / {mean:+.2f}" for sd, mean in zip(error.std(axis=0), error.mean(axis=0)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100, help="faces per layout")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--layouts", nargs="+", default=list(CROP_LAYOUTS), choices=TRUTH_LAYOUTS)
    parser.add_argument("--calibrate", action="store_true", help="print the cascade's error per component")
    args = parser.parse_args()
    if args.calibrate:
        print(tabulate([[layout, *calibrate(layout, args.faces, args.seed)] for layout in args.layouts],
                       tablefmt="github", headers=["layout", "cascade eyes", *(
                           f"{name} sd / mean px" for name in eye_prior.COMPONENTS)]))
        return
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for layout in args.layouts:
            out = measure(layout, args.faces, args.seed, Path(folder))
            prior = out["report"]["eye_prior"]
            weights = " ".join(f"{k} {w:.2f}" for k, w in prior["weight"].items()) if prior["applied"] else "-"
            rows.append([layout, " ".join(f"{m} {c}" for m, c in out["report"]["methods"].items() if c),
                         *(f"{(out[w] <= 2).mean():.2f} / {(out[w] <= 4).mean():.2f}" for w in ("before", "after")),
                         prior["images"], weights])
    print(tabulate(rows, tablefmt="github", headers=[
        "layout", "methods", "before: <= 2 / 4 px", "after: <= 2 / 4 px", "prior images", "prior weights"]))


if __name__ == "__main__":
    main()
