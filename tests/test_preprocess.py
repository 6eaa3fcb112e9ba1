"""Face preprocessing: crops, landmark boxes, method choice, policies and the on-disk cache."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferbench.data.base import DatasetLoader, Sample
from ferbench.errors import DataError, FerbenchError, UnknownName
from ferbench.preprocess import crop_face, detect_face, faces, landmark_box, preprocess_samples


@dataclasses.dataclass(frozen=True)
class Spec:
    face: str = "auto"
    margin: float = 0.0
    grayscale: bool = True
    size: tuple[int, int] = (32, 32)
    min_face: float = 0.1
    on_no_face: str = "center_crop"
    eye_distance: float = 0.38
    eye_height: float = 0.33


class FakeLoader(DatasetLoader):
    """Reads image files written by the tests; landmarks come from a dict keyed by path."""

    name = "fake"

    def __init__(self, landmarks: dict[str, np.ndarray] | None = None):
        self.points = landmarks or {}
        self.reads: list[str] = []  # list.append is atomic under the pool's threads

    def load(self, root, options):  # not used here
        return []

    def read(self, sample: Sample) -> np.ndarray:
        self.reads.append(sample.path)
        return super().read(sample)

    def landmarks(self, sample: Sample) -> np.ndarray | None:
        return self.points.get(sample.path)


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """Never touch ~/.cache: the default cache root points into the test's tmp_path."""
    monkeypatch.setenv("FERBENCH_CACHE", str(tmp_path / "cache"))


def write(tmp_path: Path, name: str, image: np.ndarray, **attrs) -> Sample:
    path = tmp_path / name
    assert cv2.imwrite(str(path), image)
    return Sample("fake", str(path), subject="S1", label="happy", code="5", attrs=attrs)


def square_on_black(shape: tuple[int, ...], x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    image = np.zeros(shape, np.uint8)
    image[y0:y1, x0:x1] = 255
    return image


def face_points(left: float, right: float, brow: float, chin: float) -> np.ndarray:
    """68 points: jaw 0-16 from (left, brow) down to the chin and up to (right, brow), brows at ``brow``."""
    points = np.zeros((68, 2))
    t = np.linspace(0, np.pi, 17)
    points[:17] = np.stack([(left + right) / 2 - (right - left) / 2 * np.cos(t), brow + (chin - brow) * np.sin(t)], 1)
    points[17:27] = np.stack([np.linspace(left + 10, right - 10, 10), np.full(10, brow)], 1)
    points[27:] = [(left + right) / 2, (brow + chin) / 2]  # nose, eyes, mouth: inside, unused
    return points


# --- one image ------------------------------------------------------------------------------


def test_crop_with_margin_pads_outside_the_image_by_edge_replication():
    image = square_on_black((100, 100), 60, 60, 100, 100)  # white square at the bottom-right edge
    crop = crop_face(image, (60, 60, 40, 40), margin=0.25, size=(60, 60), grayscale=True)
    # crop spans 50..109 both ways: 10 black columns/rows, then 40 white + 10 replicated white
    assert crop.shape == (60, 60) and crop.dtype == np.uint8
    assert (crop[:10, :] == 0).all() and (crop[:, :10] == 0).all()
    assert (crop[10:, 10:] == 255).all()
    assert crop.mean() == pytest.approx(255 * (50 / 60) ** 2)


def test_crop_grows_to_the_output_aspect_ratio_and_converts_bgr_to_rgb():
    rows = np.repeat(np.arange(100, dtype=np.uint8)[:, None], 100, axis=1)  # pixel value = row
    tall = crop_face(rows, (40, 40, 20, 20), margin=0.0, size=(40, 20), grayscale=True)
    np.testing.assert_array_equal(tall[:, 0], np.arange(30, 70))  # height grew 20 -> 40 about the centre

    blue = np.zeros((50, 50, 3), np.uint8)
    blue[..., 0] = 200  # BGR blue
    rgb = crop_face(blue, (10, 10, 30, 30), margin=0.1, size=(16, 16), grayscale=False)
    assert rgb.shape == (16, 16, 3)
    assert (rgb[..., 2] == 200).all() and (rgb[..., :2] == 0).all()

    outside = crop_face(rows, (300, 300, 10, 10), margin=0.0, size=(8, 8), grayscale=True)
    assert (outside == 99).all()  # nothing but the replicated bottom edge


def test_landmark_box_spans_jaw_and_brows_plus_forehead():
    box = landmark_box(face_points(left=10, right=90, brow=40, chin=100))
    assert box == (10, 40 - round(faces.FOREHEAD * 60), 80, 60 + round(faces.FOREHEAD * 60))
    with pytest.raises(ValueError, match="68 x 2"):
        landmark_box(np.zeros((5, 2)))


def test_haar_finds_nothing_in_images_without_a_face():
    rng = np.random.default_rng(0)
    blank = np.full((120, 120), 128, np.uint8)
    noise = rng.integers(0, 256, (120, 160), dtype=np.uint8)
    shapes = cv2.circle(square_on_black((120, 120), 20, 20, 60, 60), (80, 80), 25, 180, -1)
    for image in (blank, noise, shapes):
        assert detect_face(image, 0.1) is None


def test_missing_haar_cascade_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(cv2.data, "haarcascades", str(tmp_path) + "/")
    monkeypatch.setattr(faces, "_local", threading.local())
    with pytest.raises(FerbenchError, match="haarcascade_frontalface_default.xml"):
        detect_face(np.zeros((50, 50), np.uint8), 0.1)


# --- samples -> array ---------------------------------------------------------------------------


def test_auto_uses_landmarks_then_small_or_cropped_images_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(faces, "detect_face", lambda *a: pytest.fail("auto must not run Haar here"))
    big = write(tmp_path, "big.png", square_on_black((200, 200), 50, 50, 150, 150))
    half = square_on_black((48, 48), 0, 0, 24, 48)  # left half white
    small = write(tmp_path, "small.png", half)
    flagged = write(tmp_path, "flagged.png", cv2.resize(half, (200, 200)), cropped=True)
    # box from the points: x 50..150, brows at 70 -> top 70 - 0.25 * 80 = 50, chin 150
    loader = FakeLoader({big.path: face_points(left=50, right=150, brow=70, chin=150)})

    result = preprocess_samples(loader, [big, small, flagged], Spec(), progress=False)

    assert result.report["methods"] == {"landmarks": 1, "haar": 0, "center_crop": 0, "none": 2}
    assert result.report["detection_rate"] == 1.0
    assert (result.images[0] == 255).all()  # the landmark box is exactly the white square
    for whole in result.images[1:]:
        assert (whole[:, :15] == 255).all() and (whole[:, 17:] == 0).all()


@pytest.mark.parametrize("grayscale, shape", [(True, (6, 24, 20)), (False, (6, 24, 20, 3))])
def test_output_shape_dtype_and_order(tmp_path, grayscale, shape):
    levels = [10, 60, 110, 160, 210, 250]
    samples = [write(tmp_path, f"{v}.png", np.full((48, 48), v, np.uint8)) for v in levels]
    spec = Spec(grayscale=grayscale, size=(24, 20))

    result = preprocess_samples(FakeLoader(), samples, spec, progress=False)

    assert result.images.shape == shape and result.images.dtype == np.uint8
    assert [int(image.mean()) for image in result.images] == levels
    np.testing.assert_array_equal(result.kept, np.arange(6))
    empty = preprocess_samples(FakeLoader(), [], spec, progress=False)
    assert empty.images.shape == (0, *shape[1:])


def test_second_call_reads_the_cache_without_detecting(tmp_path, monkeypatch):
    samples = [write(tmp_path, f"{i}.png", np.full((100, 120), 40 * i, np.uint8)) for i in range(3)]
    monkeypatch.setattr(faces, "detect_face", lambda gray, min_face: (20, 20, 50, 50))
    loader, spec = FakeLoader(), Spec(face="haar", margin=0.1)
    first = preprocess_samples(loader, samples, spec, progress=False)
    assert not first.from_cache and len(loader.reads) == 3
    assert first.cache_path.parent == tmp_path / "cache" / "preprocessed"  # $FERBENCH_CACHE
    assert first.report["methods"]["haar"] == 3

    monkeypatch.setattr(faces, "detect_face", lambda *a: pytest.fail("detector called on a cache hit"))
    second = preprocess_samples(loader, samples, spec, progress=False)

    assert second.from_cache and second.cache_path == first.cache_path
    assert len(loader.reads) == 3  # no image read either
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.kept, first.kept)
    assert second.report == first.report


def test_changed_spec_or_file_misses_the_cache(tmp_path):
    samples = [write(tmp_path, "a.png", np.full((48, 48), 90, np.uint8))]
    loader = FakeLoader()
    first = preprocess_samples(loader, samples, Spec(size=(32, 32)), progress=False)
    resized = preprocess_samples(loader, samples, Spec(size=(24, 24)), progress=False)
    assert not resized.from_cache and resized.cache_path != first.cache_path
    assert resized.images.shape == (1, 24, 24)

    write(tmp_path, "a.png", np.full((40, 40), 90, np.uint8))  # same name, new content
    rewritten = preprocess_samples(loader, samples, Spec(size=(32, 32)), progress=False)
    assert not rewritten.from_cache and rewritten.cache_path != first.cache_path


def test_the_loaders_crop_flag_is_in_the_cache_key(tmp_path, monkeypatch):
    """The same file read as a photograph and as a face crop (``attrs["cropped"]``, e.g. the generic
    loader's ``cropped: true``) is preprocessed differently, so the flag must miss the cache."""
    photo_sample = write(tmp_path, "a.png", np.full((120, 120), 90, np.uint8))
    monkeypatch.setattr(faces, "detect_face", lambda gray, min_face: (30, 30, 60, 60))
    loader = FakeLoader()
    photo = preprocess_samples(loader, [photo_sample], Spec(), progress=False)
    crop_sample = dataclasses.replace(photo_sample, attrs={"cropped": True})
    crop = preprocess_samples(loader, [crop_sample], Spec(), progress=False)
    assert not crop.from_cache and crop.cache_path != photo.cache_path
    assert (photo.report["methods"]["haar"], crop.report["methods"]["none"]) == (1, 1)


def test_cache_write_is_atomic_and_a_corrupt_cache_is_recomputed(tmp_path, monkeypatch):
    samples = [write(tmp_path, "a.png", np.full((48, 48), 77, np.uint8))]
    loader, folder = FakeLoader(), tmp_path / "cache" / "preprocessed"

    def crash_midway(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(np, "savez", crash_midway)
        with pytest.raises(OSError, match="disk full"):
            preprocess_samples(loader, samples, Spec(), progress=False)
    assert list(folder.iterdir()) == []  # neither a partial .npz nor a stray temp file

    computed = preprocess_samples(loader, samples, Spec(), progress=False)
    assert not computed.from_cache and len(loader.reads) == 2
    assert [p.name for p in folder.iterdir()] == [computed.cache_path.name]

    computed.cache_path.write_bytes(b"not a zip file")
    again = preprocess_samples(loader, samples, Spec(), progress=False)
    assert not again.from_cache and len(loader.reads) == 3
    assert (again.images == 77).all()
    assert preprocess_samples(loader, samples, Spec(), progress=False).from_cache  # rewritten


def test_unreadable_image_fails_naming_the_file_or_is_skipped(tmp_path):
    good = [write(tmp_path, f"{i}.png", np.full((48, 48), 50, np.uint8)) for i in range(2)]
    (tmp_path / "broken.png").write_bytes(b"this is not a png")
    broken = dataclasses.replace(good[0], path=str(tmp_path / "broken.png"))
    samples = [good[0], broken, good[1]]

    with pytest.raises(DataError, match="broken.png"):
        preprocess_samples(FakeLoader(), samples, Spec(), progress=False)

    result = preprocess_samples(FakeLoader(), samples, Spec(), on_unreadable="skip", progress=False)
    np.testing.assert_array_equal(result.kept, [0, 2])
    assert len(result.images) == 2
    [skipped] = result.report["skipped_unreadable"]
    assert skipped["path"] == broken.path and "decode" in skipped["problem"]


def test_no_face_policies(tmp_path):
    # real Haar on faceless images; the centre crop of a 60 x 100 image is columns 20..79
    blank = write(tmp_path, "blank.png", square_on_black((60, 100), 20, 0, 80, 60))
    other = write(tmp_path, "other.png", np.zeros((60, 100), np.uint8))
    samples = [blank, other]

    with pytest.raises(DataError, match="blank.png.*no face"):
        preprocess_samples(FakeLoader(), samples, Spec(face="haar", on_no_face="fail"), progress=False)

    skipped = preprocess_samples(FakeLoader(), samples, Spec(face="haar", on_no_face="skip"), progress=False)
    assert skipped.images.shape == (0, 32, 32) and skipped.report["skipped_no_face"] == [blank.path, other.path]

    centred = preprocess_samples(FakeLoader(), samples, Spec(face="haar"), progress=False)
    assert centred.report["methods"]["center_crop"] == 2 and centred.report["no_face"] == {"haar": 2}
    assert centred.report["fallbacks"] == {"center_crop": [blank.path, other.path]}
    assert skipped.report["fallbacks"] == {}
    assert centred.report["detection_rate"] == 0.0
    assert (centred.images[0] == 255).all()


def test_detection_rate_and_missing_landmarks(tmp_path, monkeypatch):
    monkeypatch.setattr(faces, "detect_face", lambda gray, mf: (0, 0, 20, 20) if gray.max() else None)
    levels = (0, 0, 200, 200)
    samples = [write(tmp_path, f"{i}.png", np.full((100, 100), v, np.uint8)) for i, v in enumerate(levels)]
    haar = preprocess_samples(FakeLoader(), samples, Spec(face="haar"), progress=False)
    assert haar.report["detection_rate"] == 0.5
    assert haar.report["methods"] == {"landmarks": 0, "haar": 2, "center_crop": 2, "none": 0}

    loader = FakeLoader({samples[2].path: face_points(10, 90, 30, 90)})
    marks = preprocess_samples(loader, samples, Spec(face="landmarks", on_no_face="skip"), progress=False)
    np.testing.assert_array_equal(marks.kept, [2])
    assert marks.report["no_face"] == {"landmarks": 3}


def test_unknown_settings_are_named():
    with pytest.raises(UnknownName, match="face method `mtcnn`"):
        preprocess_samples(FakeLoader(), [], Spec(face="mtcnn"), progress=False)
    with pytest.raises(UnknownName, match="on_unreadable"):
        preprocess_samples(FakeLoader(), [], Spec(), on_unreadable="ignore", progress=False)
