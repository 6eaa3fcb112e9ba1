"""Eye alignment: the similarity warp, the eye finders, the pipeline's counts, on twin faces."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from typer.testing import CliRunner

from ferbench.cli import app
from ferbench.pipeline import attach_images, load_protocol_data
from ferbench.preprocess import align, pipeline, preprocess_samples
from ferbench.preprocess.sheet import contact_sheet
from ferbench.protocol import PreprocessSpec, load_protocol
from ferbench.runs.header import preprocess_images_csv
from ferbench.synth.face import face_crop, random_faces
from ferbench.synth.layouts import truth_faces
from ferbench.synth.layouts.truth import CROP_LAYOUTS
from test_preprocess import FakeLoader, Spec, write

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = align.Template((128, 128), 0.38, 0.33)


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("FERBENCH_CACHE", str(tmp_path / "cache"))


def test_template_points_are_symmetric_at_the_documented_fractions():
    # 0.38 * 128 = 48.64 px apart, centred on x = 63.5, at y = 0.33 * 128 - 0.5 = 41.74
    assert np.allclose(TEMPLATE.eyes(), [[63.5 - 24.32, 41.74], [63.5 + 24.32, 41.74]])


def test_similarity_maps_both_eyes_exactly_and_keeps_angles():
    eyes = np.array([[100.0, 80.0], [140.0, 110.0]])  # 50 px apart, tilted by atan(30/40)
    matrix = align.similarity(eyes, TEMPLATE.eyes())
    mapped = eyes @ matrix[:, :2].T + matrix[:, 2]
    assert np.allclose(mapped, TEMPLATE.eyes())
    linear = matrix[:, :2]
    scale = 48.64 / 50.0
    assert np.allclose(linear @ linear.T, scale**2 * np.eye(2))  # rotation times uniform scale
    assert np.isclose(np.degrees(np.arctan2(linear[1, 0], linear[0, 0])), -np.degrees(np.arctan2(30, 40)))


def test_landmark_eyes_are_the_means_of_the_eye_points_left_first():
    points = np.zeros((68, 2))
    points[36:42] = [[200, 50]] * 6
    points[42:48] = [[100, 60]] * 5 + [[106, 66]]
    assert np.allclose(align.landmark_eyes(points), [[101, 61], [200, 50]])
    with pytest.raises(ValueError, match="68 x 2"):
        align.landmark_eyes(points[:60])


def test_align_face_puts_marked_eyes_on_the_template():
    image = np.full((300, 400), 200, np.uint8)
    eyes = np.array([[150.0, 120.0], [250.0, 140.0]])
    for x, y in eyes:
        cv2.circle(image, (int(x), int(y)), 6, 0, -1)
    out = align.align_face(image, eyes, TEMPLATE, grayscale=True)
    assert out.shape == (128, 128) and out.dtype == np.uint8
    for x, y in TEMPLATE.eyes():  # the dark discs' centres land on the template points
        assert out[round(y), round(x)] < 60
    colour = align.align_face(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), eyes, TEMPLATE, grayscale=False)
    assert colour.shape == (128, 128, 3)


def _template_offsets(layout: str, n: int) -> tuple[list[np.ndarray | None], dict[str, int]]:
    """Per twin face: where its two true eye centres land minus the template's (2 x 2 output px)
    after alignment with the eyes ``find_eyes`` found (None where none), and the methods used."""
    offsets, methods = [], {}
    for image, truth in truth_faces(layout, n, seed=5):
        # as the pipeline takes them: their loaders flag the crop layouts (the generic one with
        # ``cropped: true``)
        precropped = layout in CROP_LAYOUTS
        eyes, method = align.find_eyes(image, 0.15, precropped)
        methods[method] = methods.get(method, 0) + 1
        if eyes is None:
            offsets.append(None)
            continue
        matrix = align.similarity(eyes, TEMPLATE.eyes())
        offsets.append(truth @ matrix[:, :2].T + matrix[:, 2] - TEMPLATE.eyes())
    return offsets, methods


def _template_errors(layout: str, n: int) -> tuple[np.ndarray, dict[str, int]]:
    """Per twin face: the larger distance (output px) of its two true eye centres from the
    template after alignment (inf where no eyes were found), and the methods used."""
    offsets, methods = _template_offsets(layout, n)
    errors = [np.inf if o is None else float(np.linalg.norm(o, axis=1).max()) for o in offsets]
    return np.array(errors), methods


# Measured on 100 faces per layout (seed 5): within 2 px / within 4 px at 128 px output (eye
# distance 48.6 px): ckplus 1.00/1.00, ckplus48 0.96/1.00, jaffe 1.00/1.00, bu3dfe 0.99/1.00,
# nimstim 0.96/0.98, kdef 0.95/1.00, generic 0.97/1.00 (searched as crops; as frames, without
# the loader's ``cropped: true``, 0.91/0.94: 6 crops show no Haar face); the low-resolution crops fer2013
# 0.50/0.85 and rafdb 0.68/0.96 (searched bicubically above 2x enlargement: align.BICUBIC_ABOVE);
# oulu_casia frames 0.97/0.99 (one without a Haar face), its 128-px crops 0.99/1.00, mmi front-view
# frames (a third with glasses) 0.97/1.00.
# CK+48 and FER2013 crops are framed as loosely as the real copies (Haar finds the face in ~74%
# of CK+48 twin crops as in 78% of the real ones; eyes about 16 and 15 px apart); on FER2013 and
# RAF-DB the eye cascade's own error (sd 0.5-1.0 source px) exceeds the 2 px target
# (benchmarks/README.md, "Face alignment"). The faces are seeded, so the checks below see the same
# 60 faces per layout every time (there: ckplus48 0.97, generic 0.97, kdef 0.93, nimstim 0.93
# with 2 faces without eyes, fer2013 0.48 / 0.85 within 4 px, rafdb 0.73 / 0.93, oulu_casia 0.98,
# its crops 1.00, mmi 0.98).
@pytest.mark.parametrize(("layout", "within_2px", "within_4px"), [
    ("ckplus", 0.95, 0.95), ("ckplus48", 0.93, 0.95), ("jaffe", 0.95, 0.95), ("bu3dfe", 0.95, 0.95),
    ("nimstim", 0.9, 0.95), ("kdef", 0.9, 0.95), ("generic", 0.95, 0.95),
    ("fer2013", 0.43, 0.8), ("rafdb", 0.68, 0.9),
    ("oulu_casia", 0.95, 0.95), ("oulu_casia_cropped", 0.95, 0.95), ("mmi", 0.95, 0.95),
])
def test_twin_eyes_land_near_the_template(layout, within_2px, within_4px):
    errors, methods = _template_errors(layout, 60)
    assert methods.get("eyes", 0) >= 54, methods  # the eye cascade finds a pair in 90% of the faces
    assert np.mean(errors <= 2) >= within_2px
    assert np.mean(errors <= 4) >= within_4px


@pytest.mark.parametrize("layout", ["ckplus48", "bu3dfe", "generic"])
def test_found_eyes_are_not_shifted_sideways(layout):
    # without the searches' shifts (align.EyeSearch.shift) the eyes land 0.57-0.81 px right of
    # the template on average on these 30 faces (measured), with them -0.06 to +0.20 px
    offsets, _ = _template_offsets(layout, 30)
    assert abs(np.mean([o[:, 0] for o in offsets if o is not None])) < 0.3


def test_landmark_alignment_puts_every_twin_eye_within_2px(tmp_path):
    samples, points = [], {}
    for k, (image, landmarks, _, _) in enumerate(random_faces("ck", 6, seed=2)):
        sample = write(tmp_path, f"f{k}.png", image)
        samples.append(sample)
        points[sample.path] = landmarks
    spec = Spec(face="align", size=(128, 128))
    result = preprocess_samples(FakeLoader(points), samples, spec, progress=False)
    assert result.report["methods"] == {"landmarks": 6, "eyes": 0, "face_box": 0, "mean": 0}
    assert result.report["detection_rate"] == 1.0
    # the eye cascade, run again on the aligned faces, finds the eyes close to the template
    assert result.report["eyes_found_again"] >= 5
    assert np.abs(np.array(result.report["eye_mean_px"]) - TEMPLATE.eyes()).max() < 3


def test_eye_check_searches_at_most_its_cap_of_evenly_spaced_images(monkeypatch):
    images = np.zeros((250, 16, 16), np.uint8)
    images[:, 0, 0] = np.arange(250)  # each image carries its index
    searched = []

    def found(gray, box, search):
        searched.append(int(gray[0, 0]))
        return np.array([[4.0, 5.0], [11.0, 5.0]])

    monkeypatch.setattr(align, "cascade_eyes", found)
    report = pipeline.eye_spread(images, 0.38)
    assert report["eyes_checked"] == report["eyes_found_again"] == pipeline.EYE_CHECK_IMAGES == 100
    order = sorted(searched)
    assert len(set(order)) == 100 and order[0] == 0 and order[-1] == 249
    assert set(np.diff(order)) <= {2, 3}  # evenly spaced: 249 / 99 = 2.5 apart
    assert report["eye_spread_px"] == 0.0 and report["eye_mean_px"] == [[4.0, 5.0], [11.0, 5.0]]
    searched.clear()
    assert pipeline.eye_spread(images[:7])["eyes_checked"] == 7 and sorted(searched) == list(range(7))


def test_align_counts_methods_and_falls_back_to_the_mean_eyes(tmp_path):
    image, landmarks, _, _ = next(random_faces("jaffe", 1, seed=0))
    crop = face_crop(image, landmarks, 48, 0.05)
    blank = np.full((48, 48), 128, np.uint8)  # a pre-cropped "face" without eyes
    frame = np.full((200, 200), 90, np.uint8)  # a full frame without a face
    samples = [write(tmp_path, "jaffe.png", image), write(tmp_path, "crop.png", crop),
               write(tmp_path, "blank.png", blank), write(tmp_path, "frame.png", frame)]
    result = preprocess_samples(FakeLoader(), samples, Spec(face="align", size=(64, 64)), progress=False)
    report = result.report
    assert report["methods"] == {"landmarks": 0, "eyes": 2, "face_box": 0, "mean": 2}
    assert report["no_face"] == {"align": 1}  # the frame; the blank crop is its own face
    assert report["detection_rate"] == 0.5
    assert report["fallbacks"] == {"mean": [samples[2].key, samples[3].key]}
    assert result.images.shape == (4, 64, 64)
    skipped = preprocess_samples(FakeLoader(), samples, Spec(face="align", size=(64, 64), on_no_face="skip"),
                                 progress=False)
    assert skipped.report["skipped_no_face"] == [samples[3].key] and skipped.kept.tolist() == [0, 1, 2]


def test_template_settings_are_in_the_schema_and_the_cache_key(tmp_path):
    spec = PreprocessSpec(face="align")
    assert (spec.eye_distance, spec.eye_height) == (0.38, 0.33)
    with pytest.raises(ValueError):
        PreprocessSpec(face="align", eye_distance=1.2)
    image, _, _, _ = next(random_faces("jaffe", 1, seed=0))
    samples = [write(tmp_path, "a.png", image)]
    first = preprocess_samples(FakeLoader(), samples, Spec(face="align"), progress=False)
    moved = preprocess_samples(FakeLoader(), samples, dataclasses.replace(Spec(face="align"), eye_height=0.4),
                               progress=False)
    assert not moved.from_cache and moved.cache_path != first.cache_path


def test_contact_sheet_rows_are_classes_and_cells_the_faces_scaled_up():
    faces = np.stack([np.full((48, 48), 10 * k, np.uint8) for k in range(5)])
    y = np.array([1, 0, 1, 1, 0])
    sheet = contact_sheet(faces, y, ["anger", "happy", "fear"], per_class=2)
    cell = 96 + 2  # 48 px faces scaled up x2 to reach 96, then a 2 px gap
    assert sheet.shape == (2 + 3 * cell, 150 + 2 + 2 * cell, 3)
    x0, y0 = 152, 2  # first face of row 0 (anger) is sample 1, the second sample 4
    assert (sheet[y0:y0 + 96, x0:x0 + 96] == 10).all()
    assert (sheet[y0:y0 + 96, x0 + cell:x0 + cell + 96] == 40).all()
    assert (sheet[y0 + cell:y0 + cell + 96, x0 + cell:x0 + cell + 96] == 20).all()  # happy: 0, 2 (3 cut)
    assert (sheet[y0 + 2 * cell:, 150:] == 255).all()  # fear has no images: a white row


def test_the_run_records_how_each_image_was_framed_and_its_eyes():
    protocol = load_protocol(REPO / "protocols" / "jaffe_6cls_loso.yaml", roots={"jaffe": "synthetic:small"})
    data = attach_images(load_protocol_data(protocol), progress=False)
    framed = pd.read_csv(io.BytesIO(preprocess_images_csv(data)))
    [side] = data.all_sides()
    assert framed["key"].tolist() == side.keys() and set(framed["role"]) == {"data"}
    assert framed["method"].value_counts().to_dict() == {m: n for m, n in side.preprocess_report["methods"].items() if n}
    eyes = framed[["left_eye_x", "left_eye_y", "right_eye_x", "right_eye_y"]].to_numpy().reshape(-1, 2, 2)
    np.testing.assert_allclose(eyes, side.eyes, atol=0.005)  # the eyes each frame was warped with
    assert (eyes[:, 0, 0] < eyes[:, 1, 0]).all() and ((eyes >= 0) & (eyes < 256)).all()  # left first, in the frame


def test_inspect_faces_writes_the_sheet_of_every_side(tmp_path):
    out = tmp_path / "faces.png"
    result = CliRunner().invoke(app, ["inspect", str(REPO / "protocols" / "jaffe_6cls_loso.yaml"),
                                      "--root", "jaffe=synthetic:small", "--faces", str(out)])
    assert result.exit_code == 0, result.output
    # JAFFE has no landmarks: every frame's eyes come from the eye cascade (or a fallback)
    summary = next(line for line in result.output.splitlines() if line.startswith("faces data jaffe: "))
    kept, total = map(int, re.match(r"faces data jaffe: (\d+) of (\d+) kept; ", summary).groups())
    assert kept == total > 0 and f"contact sheet: {out}" in result.output
    methods = dict(re.findall(r"(eyes|face_box|mean) (\d+)", summary))
    assert sum(map(int, methods.values())) == kept and "detection rate" in summary and "eye spread" in summary
    sheet = cv2.imread(str(out))
    # one side, titled, 8 px below it; 6 classes of 128 px faces, 8 per row (>= 8 per class here)
    assert sheet.shape == (28 + 2 + 6 * 130 + 8, 150 + 2 + 8 * 130, 3)
