"""Dataset loaders against hand-written fixtures in each dataset's real file-name format.

Every fixture is built in tmp_path from tiny 8x8 images. The documented code tables are
spelled out here (not imported from the loaders), so a wrong map in a loader fails a test.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferbench.data import Sample, get_dataset
from ferbench.errors import DataError, DatasetNotFound

CKPLUS_CODES = {
    "0": "neutral", "1": "anger", "2": "contempt", "3": "disgust",
    "4": "fear", "5": "happy", "6": "sadness", "7": "surprise",
}
JAFFE_CODES = {
    "AN": "anger", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral", "SA": "sadness", "SU": "surprise",
}
OULU_EXPRESSIONS = {
    "Anger": "anger", "Disgust": "disgust", "Fear": "fear",
    "Happiness": "happy", "Sadness": "sadness", "Surprise": "surprise",
}
MMI_CODES = {"1": "anger", "2": "disgust", "3": "fear", "4": "happy", "5": "sadness", "6": "surprise"}
BU3DFE_CODES = JAFFE_CODES
NIMSTIM_CODES = {
    "AN": "anger", "CA": None, "DI": "disgust", "FE": "fear",
    "HA": "happy", "NE": "neutral", "SA": "sadness", "SP": "surprise",
}
FER_CSV_CODES = {
    "0": "anger", "1": "disgust", "2": "fear", "3": "happy", "4": "sadness", "5": "surprise", "6": "neutral",
}
FER_FOLDERS = {
    "angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happy",
    "neutral": "neutral", "sad": "sadness", "surprise": "surprise",
}
KDEF_CODES = {
    "AF": "fear", "AN": "anger", "DI": "disgust", "HA": "happy", "NE": "neutral", "SA": "sadness", "SU": "surprise",
}
RAFDB_CODES = {"1": "surprise", "2": "fear", "3": "disgust", "4": "happy", "5": "sadness", "6": "anger", "7": "neutral"}


# ---------------------------------------------------------------- helpers


def write_image(path: Path, value: int = 0) -> Path:
    """A real 8x8 grey image file (format from the suffix: PNG, TIFF, BMP, JPEG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((8, 8), value, np.uint8)), path
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(name: str, root: Path, **options: object) -> list[Sample]:
    loader = get_dataset(name)
    return loader.load(root, loader.options_model(**options))


def facts(sample: Sample) -> tuple:
    """What a loader says about one image, attrs included."""
    return sample.subject, sample.sequence, sample.frame, sample.label, sample.code, dict(sample.attrs)


def by_file(samples: list[Sample]) -> dict[str, Sample]:
    return {Path(s.path).name: s for s in samples}


def assert_sorted(samples: list[Sample]) -> None:
    keys = [(s.subject or "", s.sequence or "", -1 if s.frame is None else s.frame, s.path) for s in samples]
    assert keys == sorted(keys)


# ---------------------------------------------------------------- CK+


def make_ckplus(root: Path) -> Path:
    """Sequences S005/001..008 (2 frames each, Emotion code = sequence - 1, peak frame 2),
    unlabelled S010/001 (frames 9 and 10), one landmarks file, and OS clutter."""
    for code in CKPLUS_CODES:
        sequence = f"{int(code) + 1:03d}"
        for frame in (1, 2):
            write_image(root / "cohn-kanade-images" / "S005" / sequence / f"S005_{sequence}_{frame:08d}.png")
        emotion_file = root / "Emotion" / "S005" / sequence / f"S005_{sequence}_00000002_emotion.txt"
        write_text(emotion_file, f"   {int(code):.7e}\n")  # "   3.0000000e+00"
    for frame in (9, 10):
        write_image(root / "cohn-kanade-images" / "S010" / "001" / f"S010_001_{frame:08d}.png")
    write_text(root / "cohn-kanade-images" / "S010" / "001" / ".DS_Store", "junk")
    points = "".join(f"   {x:.7e}   {x + 0.5:.7e}\n" for x in range(68))
    write_text(root / "Landmarks" / "S005" / "001" / "S005_001_00000001_landmarks.txt", points)
    return root


def test_ckplus_full_layout_yields_every_frame_with_the_sequence_label(tmp_path: Path) -> None:
    samples = load("ckplus", make_ckplus(tmp_path))
    assert len(samples) == 8 * 2 + 2
    assert_sorted(samples)
    files = by_file(samples)
    landmarks = str(tmp_path / "Landmarks" / "S005" / "001" / "S005_001_00000001_landmarks.txt")
    assert facts(files["S005_004_00000002.png"]) == (
        "S005", "004", 2, "disgust", "3", {"layout": "full", "labelled_frame": 2, "landmarks_file": None}
    )
    assert facts(files["S005_001_00000001.png"]) == (
        "S005", "001", 1, "neutral", "0", {"layout": "full", "labelled_frame": 2, "landmarks_file": landmarks}
    )
    assert facts(files["S010_001_00000010.png"]) == (
        "S010", "001", 10, None, None, {"layout": "full", "labelled_frame": None, "landmarks_file": None}
    )
    assert {s.sequence: s.label for s in samples if s.subject == "S005"} == {
        f"{int(code) + 1:03d}": label for code, label in CKPLUS_CODES.items()
    }
    assert all(Path(s.path).is_absolute() and s.dataset == "ckplus" for s in samples)


def test_ckplus_landmarks_are_68_points_or_none(tmp_path: Path) -> None:
    loader = get_dataset("ckplus")
    files = by_file(loader.load(make_ckplus(tmp_path), loader.options_model()))
    points = loader.landmarks(files["S005_001_00000001.png"])
    assert points is not None and points.shape == (68, 2)
    assert points[10].tolist() == [10.0, 10.5]
    assert loader.landmarks(files["S005_001_00000002.png"]) is None
    write_text(Path(files["S005_001_00000001.png"].attrs["landmarks_file"]), "1.0 2.0\n" * 67)
    with pytest.raises(DataError, match="S005_001_00000001_landmarks.txt.*68"):
        loader.landmarks(files["S005_001_00000001.png"])


def test_ckplus_finds_folders_unpacked_one_level_deeper(tmp_path: Path) -> None:
    flat = load("ckplus", make_ckplus(tmp_path / "flat"))
    staging, nested = make_ckplus(tmp_path / "staging"), tmp_path / "nested"
    (nested / "extended-cohn-kanade-images").mkdir(parents=True)
    (nested / "Emotion_labels").mkdir()
    (staging / "cohn-kanade-images").rename(nested / "extended-cohn-kanade-images" / "cohn-kanade-images")
    (staging / "Emotion").rename(nested / "Emotion_labels" / "Emotion")
    assert [facts(s)[:5] for s in load("ckplus", nested)] == [facts(s)[:5] for s in flat]


@pytest.mark.parametrize(
    ("content", "problem"),
    [("   9.0000000e+00\n", "unknown CK\\+ emotion code `9`"), ("happy\n", "expected one number")],
)
def test_ckplus_bad_emotion_file_is_named(tmp_path: Path, content: str, problem: str) -> None:
    root = make_ckplus(tmp_path)
    write_text(root / "Emotion" / "S005" / "002" / "S005_002_00000002_emotion.txt", content)
    with pytest.raises(DataError, match=f"S005_002_00000002_emotion.txt: {problem}"):
        load("ckplus", root)


def test_ckplus_binary_emotion_file_is_named(tmp_path: Path) -> None:
    root = make_ckplus(tmp_path)
    (root / "Emotion" / "S005" / "002" / "S005_002_00000002_emotion.txt").write_bytes(b"\x89PNG\r\n\x1a\n\xff\x00")
    with pytest.raises(DataError, match="S005_002_00000002_emotion.txt: not a text label file"):
        load("ckplus", root)


def test_ckplus_emotion_file_naming_a_missing_frame_is_an_error(tmp_path: Path) -> None:
    root = make_ckplus(tmp_path)
    (root / "Emotion" / "S005" / "002" / "S005_002_00000002_emotion.txt").rename(
        root / "Emotion" / "S005" / "002" / "S005_002_00000007_emotion.txt"
    )
    with pytest.raises(DataError, match="S005_002_00000007_emotion.txt: names frame 7"):
        load("ckplus", root)


def test_ckplus_image_name_that_does_not_parse_is_an_error(tmp_path: Path) -> None:
    root = make_ckplus(tmp_path)
    write_image(root / "cohn-kanade-images" / "S005" / "001" / "frame_0003.png")
    with pytest.raises(DataError, match="frame_0003.png: file name does not follow"):
        load("ckplus", root)


def make_ck48(root: Path) -> Path:
    for i, label in enumerate(("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")):
        for frame in (15, 16, 17):
            write_image(root / label / f"S{10 + i:03d}_004_{frame:08d}.png")
    return root


def test_ckplus_auto_detects_ck48_and_parses_names(tmp_path: Path) -> None:
    samples = load("ckplus", make_ck48(tmp_path))
    assert len(samples) == 21
    assert_sorted(samples)
    assert facts(by_file(samples)["S012_004_00000017.png"]) == (
        "S012", "004", 17, "disgust", "disgust", {"layout": "ck48", "cropped": True}
    )
    assert all(s.code == s.label for s in samples) and len({s.label for s in samples}) == 7
    assert load("ckplus", tmp_path, layout="ck48") == samples


def test_ckplus_auto_detects_full_layout(tmp_path: Path) -> None:
    samples = load("ckplus", make_ckplus(tmp_path), layout="auto")
    assert {s.attrs["layout"] for s in samples} == {"full"}
    with pytest.raises(DatasetNotFound, match="CK\\+48 class folders"):
        load("ckplus", tmp_path, layout="ck48")


def test_ckplus_ck48_unknown_and_empty_class_folders(tmp_path: Path) -> None:
    root = make_ck48(tmp_path)
    (root / "anger").rename(root / "angry")
    with pytest.raises(DataError, match="angry: unknown CK\\+48 class folder `angry` \\(did you mean `anger`\\?\\)"):
        load("ckplus", root)
    (root / "angry").rename(root / "anger")
    for image in (root / "fear").iterdir():
        image.unlink()
    with pytest.raises(DataError, match="fear: class folder holds no images"):
        load("ckplus", root)


def test_ckplus_not_found_names_the_path_and_both_layouts(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFound) as error:
        load("ckplus", tmp_path)
    assert str(tmp_path) in str(error.value)
    assert "cohn-kanade-images" in str(error.value) and "CK+48" in str(error.value)
    with pytest.raises(DatasetNotFound, match="cohn-kanade-images"):
        load("ckplus", make_ck48(tmp_path / "ck48"), layout="full")


# ---------------------------------------------------------------- JAFFE


def make_jaffe(root: Path) -> Path:
    for i, code in enumerate(JAFFE_CODES):
        write_image(root / f"KA.{code}1.{30 + i}.tiff")
    write_image(root / "KL.HA2.40.TIF")
    write_text(root / "README", "The JAFFE images may be used only for non-commercial research.")
    write_text(root / ".DS_Store", "junk")
    return root


def test_jaffe_codes_subjects_and_attrs(tmp_path: Path) -> None:
    loader = get_dataset("jaffe")
    samples = loader.load(make_jaffe(tmp_path), loader.options_model())
    assert len(samples) == 8
    assert_sorted(samples)
    files = by_file(samples)
    assert facts(files["KA.AN1.30.tiff"]) == ("KA", None, None, "anger", "AN", {"repetition": 1, "image_id": 30})
    assert facts(files["KL.HA2.40.TIF"]) == ("KL", None, None, "happy", "HA", {"repetition": 2, "image_id": 40})
    assert {s.code: s.label for s in samples} == JAFFE_CODES
    image = loader.read(files["KA.AN1.30.tiff"])
    assert image.shape == (8, 8) and image.dtype == np.uint8


def test_jaffe_root_may_be_the_parent_of_jaffedbase(tmp_path: Path) -> None:
    make_jaffe(tmp_path / "jaffedbase")
    assert [s.path for s in load("jaffe", tmp_path)] == [s.path for s in load("jaffe", tmp_path / "jaffedbase")]


def test_jaffe_corrupt_name_is_an_error(tmp_path: Path) -> None:
    write_image(make_jaffe(tmp_path) / "KA-AN1-39.tiff")
    with pytest.raises(DataError, match="KA-AN1-39.tiff: file name does not follow the JAFFE pattern"):
        load("jaffe", tmp_path)


# ---------------------------------------------------------------- Oulu-CASIA


def make_oulu(root: Path, top: Path) -> Path:
    for i, expression in enumerate(OULU_EXPRESSIONS):
        for frame in range(3):
            write_image(root / top / f"P{i % 2 + 1:03d}" / expression / f"{frame:03d}.jpeg")
    return root


def test_oulu_casia_sequences_frames_and_labels(tmp_path: Path) -> None:
    samples = load("oulu_casia", make_oulu(tmp_path, Path("OriginalImg", "VL", "Strong")))
    assert len(samples) == 18
    assert_sorted(samples)
    sample = next(s for s in samples if s.subject == "P002" and s.sequence == "Happiness" and s.frame == 2)
    assert facts(sample) == (
        "P002", "Happiness", 2, "happy", "Happiness", {"camera": "VL", "illumination": "Strong", "cropped": False}
    )
    assert {s.code: s.label for s in samples} == OULU_EXPRESSIONS


def test_oulu_casia_options_pick_camera_illumination_and_crops(tmp_path: Path) -> None:
    make_oulu(tmp_path, Path("OriginalImg", "NI", "Dark"))
    make_oulu(tmp_path, Path("Oulu_CASIA_VL_Cropped", "Weak"))
    dark = load("oulu_casia", tmp_path, camera="NI", illumination="Dark")
    assert {s.attrs["camera"] for s in dark} == {"NI"} and all("/NI/Dark/" in s.path for s in dark)
    cropped = load("oulu_casia", tmp_path, illumination="Weak", cropped=True)
    assert len(cropped) == 18 and all("Oulu_CASIA_VL_Cropped/Weak/" in s.path for s in cropped)
    with pytest.raises(DatasetNotFound, match="OriginalImg/VL/Strong"):
        load("oulu_casia", tmp_path)


def test_oulu_casia_reads_the_preprocess_img_crops(tmp_path: Path) -> None:
    # the dataset's own crops, as public preparation scripts read them
    make_oulu(tmp_path, Path("PreProcess_Img", "VL_Acropped", "Strong"))
    make_oulu(tmp_path, Path("PreProcess_Img", "NI_Acropped", "Dark"))
    samples = load("oulu_casia", tmp_path, cropped=True)
    assert len(samples) == 18 and all("/PreProcess_Img/VL_Acropped/Strong/P00" in s.path for s in samples)
    sample = next(s for s in samples if s.subject == "P001" and s.sequence == "Anger" and s.frame == 1)
    assert facts(sample) == (
        "P001", "Anger", 1, "anger", "Anger", {"camera": "VL", "illumination": "Strong", "cropped": True}
    )
    assert Path(sample.path).relative_to(tmp_path).as_posix() == "PreProcess_Img/VL_Acropped/Strong/P001/Anger/001.jpeg"
    infrared = load("oulu_casia", tmp_path, camera="NI", illumination="Dark", cropped=True)
    assert len(infrared) == 18 and all("/PreProcess_Img/NI_Acropped/Dark/" in s.path for s in infrared)
    with pytest.raises(DatasetNotFound, match="PreProcess_Img/VL_Acropped/Weak/P001/Anger/000.jpeg` or "
                                              "`Oulu_CASIA_VL_Cropped/Weak/P001"):
        load("oulu_casia", tmp_path, illumination="Weak", cropped=True)


def test_oulu_casia_auto_prefers_preprocess_img_over_the_other_cropped_copy(tmp_path: Path) -> None:
    make_oulu(tmp_path / "data", Path("Oulu_CASIA_VL_Cropped", "Strong"))
    only_other = load("oulu_casia", tmp_path, cropped=True)  # found 1 level below the root
    assert len(only_other) == 18 and all("/Oulu_CASIA_VL_Cropped/Strong/" in s.path for s in only_other)
    make_oulu(tmp_path / "data", Path("PreProcess_Img", "VL_Acropped", "Strong"))
    write_image(tmp_path / "data/PreProcess_Img/VL_Acropped/Strong/P003/Anger/000.jpeg")
    both = load("oulu_casia", tmp_path, cropped=True)
    assert len(both) == 19 and all("/PreProcess_Img/" in s.path for s in both)
    chosen = load("oulu_casia", tmp_path, cropped=True, cropped_copy="oulu_casia_cropped")
    assert [s.path for s in chosen] == [s.path for s in only_other]
    with pytest.raises(ValueError, match="cropped_copy: preprocess_img needs cropped: true"):
        load("oulu_casia", tmp_path, cropped_copy="preprocess_img")


def test_oulu_casia_unknown_expression_folder_suggests_the_right_one(tmp_path: Path) -> None:
    root = make_oulu(tmp_path, Path("OriginalImg", "VL", "Strong"))
    write_image(root / "OriginalImg" / "VL" / "Strong" / "P001" / "Suprise" / "000.jpeg")
    with pytest.raises(DataError, match="P001/Suprise: unknown Oulu-CASIA expression folder .*did you mean `Surprise`"):
        load("oulu_casia", root)


# ---------------------------------------------------------------- MMI


def write_video(path: Path, frames: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (16, 16), False)
    for i in range(frames):
        writer.write(np.full((16, 16), 40 * i, np.uint8))
    writer.release()
    return path


def make_mmi(root: Path) -> Path:
    """Sessions 101-106 with Emotion codes 1-6, session 107 without an Emotion Metatag."""
    for i, code in enumerate([*MMI_CODES, None]):
        folder = root / "Sessions" / str(101 + i)
        stem = f"S{i % 2 + 1:03d}-{101 + i:03d}"
        write_video(folder / f"{stem}.avi", 3)
        metatag = "" if code is None else f'<Metatag Name="Emotion" Value="{code}"/>'
        write_text(folder / f"{stem}.xml", f'<Metadata><Metatag Name="Gender" Value="Male"/>{metatag}</Metadata>')
        write_text(folder / "session.xml", f'<session sessionId="{101 + i}"><track view="0" type="Video"/></session>')
    return root


def test_mmi_sessions_become_frame_samples_of_the_video(tmp_path: Path) -> None:
    loader = get_dataset("mmi")
    samples = loader.load(make_mmi(tmp_path), loader.options_model())
    assert len(samples) == 7 * 3
    assert_sorted(samples)
    sample = next(s for s in samples if s.sequence == "104" and s.frame == 2)
    assert facts(sample) == ("S002", "104", 2, "happy", "4", {"session": "104", "view": "0", "glasses": None})
    assert sample.index == 2 and sample.path.endswith("S002-104.avi")
    assert {s.code: s.label for s in samples if s.code} == MMI_CODES
    assert {(s.label, s.code) for s in samples if s.sequence == "107"} == {(None, None)}
    frame = loader.read(sample)
    assert frame.shape == (16, 16, 3) and abs(float(frame.mean()) - 80) < 8


def make_mmi_views(root: Path) -> Path:
    """Sessions 201-206 of S001 (201-203) and S002 (204-206): (view, glasses) per session."""
    sessions = {201: ("0", "no"), 202: ("1", "no"), 203: ("2", "No"), 204: ("0", "yes"), 205: ("1", "1"),
                206: ("0", "true")}
    for number, (view, glasses) in sessions.items():
        folder = root / "Sessions" / str(number)
        stem = f"S00{1 + (number > 203)}-{number}"
        write_video(folder / f"{stem}.avi", 2)
        write_text(folder / f"{stem}.xml", f'<Metadata><Metatag Name="Emotion" Value="{number % 6 + 1}"/>'
                                           f'<Metatag Name="Glasses" Value="{glasses}"/></Metadata>')
        write_text(folder / "session.xml", f'<session sessionId="{number}"><subject id="{stem[:4]}"/>'
                                           f'<track id="0" view="{view}" type="Video"/></session>')
    return root


@pytest.mark.parametrize("options, sessions", [
    ({}, {"201", "202", "203", "204", "205", "206"}),
    ({"view": "front"}, {"201", "204", "206"}),
    ({"view": "profile"}, {"202", "205"}),
    ({"view": "dual"}, {"203"}),
    ({"glasses": "exclude"}, {"201", "202", "203"}),
    ({"glasses": "only"}, {"204", "205", "206"}),
    ({"view": "front", "glasses": "exclude"}, {"201"}),
])
def test_mmi_view_and_glasses_options_select_sessions(tmp_path: Path, options: dict, sessions: set) -> None:
    samples = load("mmi", make_mmi_views(tmp_path), **options)
    assert {s.sequence for s in samples} == sessions and len(samples) == 2 * len(sessions)
    glasses = {s.sequence: s.attrs["glasses"] for s in samples}
    assert all(glasses[n] is (n >= "204") for n in sessions)


def test_mmi_options_need_their_metadata(tmp_path: Path) -> None:
    root = make_mmi(tmp_path)  # session.xml with view 0, metadata without a Glasses Metatag
    assert len(load("mmi", root, view="front")) == 7 * 3
    with pytest.raises(DataError, match="Sessions: none of the 7 sessions has view: dual and glasses: any"):
        load("mmi", root, view="dual")
    with pytest.raises(DataError, match='Sessions/101: session has no <Metatag Name="Glasses">, needed by glasses: ex'):
        load("mmi", root, glasses="exclude")
    (root / "Sessions" / "101" / "session.xml").unlink()
    with pytest.raises(DataError, match="Sessions/101: session has no <track view=...> .*needed by view: profile"):
        load("mmi", root, view="profile")


def test_mmi_glasses_value_must_be_yes_or_no(tmp_path: Path) -> None:
    root = make_mmi_views(tmp_path)
    write_text(root / "Sessions" / "201" / "S001-201.xml",
               '<Metadata><Metatag Name="Emotion" Value="1"/><Metatag Name="Glasses" Value="maybe"/></Metadata>')
    with pytest.raises(DataError, match="S001-201.xml: Glasses Metatag value 'maybe' is not one of yes, no"):
        load("mmi", root, glasses="only")


def test_mmi_non_numeric_emotion_value_is_an_error(tmp_path: Path) -> None:
    root = make_mmi(tmp_path)
    metadata = '<Metadata><Metatag Name="Emotion" Value="angry"/></Metadata>'
    write_text(root / "Sessions" / "101" / "S001-101.xml", metadata)
    with pytest.raises(DataError, match="S001-101.xml: Emotion Metatag value 'angry'"):
        load("mmi", root)


# ---------------------------------------------------------------- BU-3DFE


def make_bu3dfe(root: Path) -> Path:
    for code in BU3DFE_CODES:
        intensity = "00" if code == "NE" else "04"
        write_image(root / "F0001" / f"F0001_{code}{intensity}WH_F2D.bmp")
    write_image(root / "F0001" / "F0001_AN04WH_F3D.bmp")
    write_text(root / "F0001" / "F0001_AN04WH_F3D.wrl", "#VRML V2.0 utf8")
    write_image(root / "M0002_HA03AE_F2D.bmp")
    return root


def test_bu3dfe_textures_intensity_and_ethnicity(tmp_path: Path) -> None:
    samples = load("bu3dfe", make_bu3dfe(tmp_path))
    assert len(samples) == 8
    files = by_file(samples)
    assert facts(files["F0001_AN04WH_F2D.bmp"]) == (
        "F0001", None, None, "anger", "AN", {"intensity": 4, "ethnicity": "WH"}
    )
    assert facts(files["F0001_NE00WH_F2D.bmp"])[3:] == ("neutral", "NE", {"intensity": 0, "ethnicity": "WH"})
    assert facts(files["M0002_HA03AE_F2D.bmp"])[3:] == ("happy", "HA", {"intensity": 3, "ethnicity": "AE"})
    assert files["M0002_HA03AE_F2D.bmp"].subject == "M0002"
    assert {s.code: s.label for s in samples} == BU3DFE_CODES


@pytest.mark.parametrize("name", ["F0001_AN4WH_F2D.bmp", "F0001_NE02WH_F2D.bmp", "F0001_XX01WH_F2D.bmp"])
def test_bu3dfe_bad_texture_names_are_errors(tmp_path: Path, name: str) -> None:
    write_image(make_bu3dfe(tmp_path) / "F0001" / name)
    with pytest.raises(DataError, match=name):
        load("bu3dfe", tmp_path)


# ---------------------------------------------------------------- NimStim


def make_nimstim(root: Path) -> Path:
    for code in NIMSTIM_CODES:
        write_image(root / f"01F_{code}_O.bmp")
    write_image(root / "02m_sp_c.BMP")
    write_image(root / "03F_HA_X_2.jpg")
    write_text(root / "Thumbs.db", "junk")
    return root


def test_nimstim_codes_actors_and_mouth(tmp_path: Path) -> None:
    samples = load("nimstim", make_nimstim(tmp_path))
    assert len(samples) == 10
    files = by_file(samples)
    assert facts(files["01F_HA_O.bmp"]) == ("01F", None, None, "happy", "HA", {"mouth": "O"})
    assert facts(files["02m_sp_c.BMP"]) == ("02M", None, None, "surprise", "SP", {"mouth": "C"})
    assert facts(files["03F_HA_X_2.jpg"]) == ("03F", None, None, "happy", "HA", {"mouth": "X"})
    assert {s.code: s.label for s in samples} == NIMSTIM_CODES
    calm = by_file(load("nimstim", tmp_path, calm_as_neutral=True))["01F_CA_O.bmp"]
    assert (calm.label, calm.code) == ("neutral", "CA")


def test_nimstim_name_that_does_not_parse_is_an_error(tmp_path: Path) -> None:
    write_image(make_nimstim(tmp_path) / "01F-HA-O.bmp")
    with pytest.raises(DataError, match="01F-HA-O.bmp: file name does not follow the NimStim pattern"):
        load("nimstim", tmp_path)


# ---------------------------------------------------------------- FER2013


def make_fer_csv(folder: Path, bad_row: int | None = None) -> tuple[Path, list[np.ndarray]]:
    """fer2013.csv with one row per code 0-6; returns the csv and the 48x48 images written."""
    rng = np.random.default_rng(0)
    usages = ["Training", "Training", "PublicTest", "PrivateTest", "Training", "PublicTest", "PrivateTest"]
    images, lines = [], ["emotion,pixels,Usage"]
    for row, (code, usage) in enumerate(zip(FER_CSV_CODES, usages)):
        image = rng.integers(0, 256, (48, 48), dtype=np.uint8)
        values = image.ravel().tolist()[: 2303 if row == bad_row else 2304]
        images.append(image)
        lines.append(f"{code},{' '.join(map(str, values))},{usage}")
    return write_text(folder / "fer2013.csv", "\n".join(lines) + "\n"), images


def test_fer2013_csv_rows_labels_and_usage(tmp_path: Path) -> None:
    csv_path, images = make_fer_csv(tmp_path)
    loader = get_dataset("fer2013")
    samples = loader.load(tmp_path, loader.options_model())
    assert [(s.index, s.label, s.code, s.attrs["usage"]) for s in samples] == [
        (0, "anger", "0", "Training"), (1, "disgust", "1", "Training"), (2, "fear", "2", "PublicTest"),
        (3, "happy", "3", "PrivateTest"), (4, "sadness", "4", "Training"), (5, "surprise", "5", "PublicTest"),
        (6, "neutral", "6", "PrivateTest"),
    ]
    assert all(s.path == str(csv_path) and s.subject is None and s.frame is None for s in samples)
    image = loader.read(samples[3])
    assert image.dtype == np.uint8 and image.shape == (48, 48)
    np.testing.assert_array_equal(image, images[3])
    fresh = get_dataset("fer2013")  # read() without load() parses the csv itself
    np.testing.assert_array_equal(fresh.read(samples[6]), images[6])


def test_fer2013_csv_root_variants(tmp_path: Path) -> None:
    csv_path, _ = make_fer_csv(tmp_path / "fer2013")
    for root in (tmp_path, tmp_path / "fer2013", csv_path):
        assert len(load("fer2013", root, source="csv")) == 7


def test_fer2013_malformed_row_names_csv_and_row(tmp_path: Path) -> None:
    make_fer_csv(tmp_path, bad_row=2)
    loader = get_dataset("fer2013")
    samples = loader.load(tmp_path, loader.options_model())
    with pytest.raises(DataError, match="fer2013.csv: row 2 \\(line 4\\): expected 2304 integers 0-255, found 2303"):
        loader.read(samples[2])


def test_fer2013_folder_copy(tmp_path: Path) -> None:
    for i, folder in enumerate(FER_FOLDERS):
        write_image(tmp_path / "train" / folder / f"Training_{100 + i}.jpg")
    write_image(tmp_path / "test" / "sad" / "PublicTest_7.jpg")
    write_image(tmp_path / "test" / "sad" / "PrivateTest_8.jpg")
    write_image(tmp_path / "train" / "happy" / "9.jpg")
    samples = load("fer2013", tmp_path)
    files = by_file(samples)
    assert len(samples) == 10
    assert facts(files["Training_100.jpg"]) == (
        None, None, None, "anger", "angry", {"usage": "Training", "cropped": True}
    )
    assert facts(files["PrivateTest_8.jpg"])[3:] == ("sadness", "sad", {"usage": "PrivateTest", "cropped": True})
    assert files["PublicTest_7.jpg"].attrs["usage"] == "PublicTest"
    assert files["9.jpg"].attrs["usage"] == "Training"
    assert {s.code: s.label for s in samples} == FER_FOLDERS
    with pytest.raises(DatasetNotFound, match="fer2013.csv"):
        load("fer2013", tmp_path, source="csv")


# ---------------------------------------------------------------- KDEF


def make_kdef(root: Path) -> Path:
    for code in KDEF_CODES:
        write_image(root / "KDEF" / "AF01" / f"AF01{code}S.JPG")
    write_image(root / "KDEF" / "AF01" / "AF01ANFL.JPG")
    write_image(root / "KDEF" / "BM02" / "BM02HAS.JPG")
    return root


def test_kdef_codes_subjects_sessions_and_views(tmp_path: Path) -> None:
    samples = load("kdef", make_kdef(tmp_path))
    assert len(samples) == 8
    files = by_file(samples)
    assert facts(files["AF01AFS.JPG"]) == ("F01", None, None, "fear", "AF", {"session": "A", "view": "S"})
    assert facts(files["BM02HAS.JPG"]) == ("M02", None, None, "happy", "HA", {"session": "B", "view": "S"})
    assert {s.code: s.label for s in samples} == KDEF_CODES
    profile = load("kdef", tmp_path / "KDEF", views=["FL"])
    assert [facts(s) for s in profile] == [("F01", None, None, "anger", "AN", {"session": "A", "view": "FL"})]


def test_kdef_name_that_does_not_parse_is_an_error(tmp_path: Path) -> None:
    write_image(make_kdef(tmp_path) / "KDEF" / "AF01" / "AF1ANS.JPG")
    with pytest.raises(DataError, match="AF1ANS.JPG: file name does not follow the KDEF pattern"):
        load("kdef", tmp_path)


# ---------------------------------------------------------------- RAF-DB


def make_rafdb(root: Path) -> Path:
    lines = []
    for i, code in enumerate(RAFDB_CODES):
        name = f"{'train' if i < 4 else 'test'}_{i + 1:05d}"
        write_image(root / "basic" / "Image" / "aligned" / f"{name}_aligned.jpg")
        write_image(root / "basic" / "Image" / "original" / f"{name}.jpg")
        lines.append(f"{name}.jpg {code}")
    write_text(root / "basic" / "EmoLabel" / "list_patition_label.txt", "\n".join(lines) + "\n")
    return root


def test_rafdb_labels_usage_and_aligned_option(tmp_path: Path) -> None:
    samples = load("rafdb", make_rafdb(tmp_path))
    assert len(samples) == 7
    files = by_file(samples)
    assert facts(files["train_00001_aligned.jpg"]) == (
        None, None, None, "surprise", "1", {"usage": "train", "cropped": True}
    )
    assert facts(files["test_00007_aligned.jpg"])[3:] == ("neutral", "7", {"usage": "test", "cropped": True})
    assert {s.code: s.label for s in samples} == RAFDB_CODES
    original = load("rafdb", tmp_path / "basic", aligned=False)
    assert sorted(Path(s.path).name for s in original) == sorted(f"{n.replace('_aligned', '')}" for n in files)


def test_rafdb_missing_listed_image_is_named(tmp_path: Path) -> None:
    (make_rafdb(tmp_path) / "basic" / "Image" / "aligned" / "test_00006_aligned.jpg").unlink()
    with pytest.raises(DataError, match="test_00006_aligned.jpg: image listed in .*list_patition_label.txt:6"):
        load("rafdb", tmp_path)


# ---------------------------------------------------------------- generic


def test_generic_class_folders_synonyms_label_map_and_subject_regex(tmp_path: Path) -> None:
    write_image(tmp_path / "Angry" / "s01_a.png")
    write_image(tmp_path / "sad" / "s02_b.png")
    write_image(tmp_path / "happy" / "nested" / "s03_c.png")
    write_image(tmp_path / "joy" / "s04_d.png")
    samples = load("generic", tmp_path, subject_regex=r"(?P<subject>s\d+)_", label_map={"joy": "happy"})
    assert [(s.subject, s.label, s.code) for s in samples] == [
        ("s01", "anger", "Angry"), ("s02", "sadness", "sad"), ("s03", "happy", "happy"), ("s04", "happy", "joy")
    ]
    (tmp_path / "joy").rename(tmp_path / "hapy")
    with pytest.raises(DataError, match="hapy: unknown class `hapy` \\(did you mean `happy`\\?\\)"):
        load("generic", tmp_path)


def test_generic_cropped_option_flags_every_picture_as_a_face_crop(tmp_path: Path) -> None:
    write_image(tmp_path / "happy" / "a.png")
    write_text(tmp_path / "list.csv", "path,label\nhappy/a.png,sad\n")
    assert [s.attrs for s in load("generic", tmp_path)] == [{}]
    assert [s.attrs for s in load("generic", tmp_path, cropped=True)] == [{"cropped": True}]
    assert [(s.label, s.attrs) for s in load("generic", tmp_path, manifest="list.csv", cropped=True)] == [
        ("sadness", {"cropped": True})]


def test_generic_manifest(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        write_image(tmp_path / "img" / f"{name}.png")
    rows = ["path,label,subject,sequence,frame", "img/a.png,surprised,p1,s1,10", "img/b.png,surprised,p1,s1,9",
            "img/c.png,neutral,,,"]
    write_text(tmp_path / "list.csv", "\n".join(rows) + "\n")
    samples = load("generic", tmp_path, manifest="list.csv")
    assert [(Path(s.path).name, s.subject, s.sequence, s.frame, s.label, s.code) for s in samples] == [
        ("c.png", None, None, None, "neutral", "neutral"),
        ("b.png", "p1", "s1", 9, "surprise", "surprised"),
        ("a.png", "p1", "s1", 10, "surprise", "surprised"),
    ]
    write_text(tmp_path / "list.csv", "path,label\nimg/a.png,surprised\nimg/b.png,boredom\n")
    with pytest.raises(DataError, match="list.csv:3: unknown class `boredom`"):
        load("generic", tmp_path, manifest="list.csv")


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
def test_generic_manifest_with_a_byte_order_mark(tmp_path: Path, encoding: str) -> None:
    """Excel writes csv as UTF-8 with a byte-order mark, or as UTF-16: both read like plain UTF-8."""
    for name in ("a", "b"):
        write_image(tmp_path / "img" / f"{name}.png")
    text = "path,label,subject\r\nimg/a.png,happy,p1\r\nimg/b.png,fröhlich,p2\r\n"
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")
    (tmp_path / "list.csv").write_bytes(bom + text.encode(encoding))
    samples = load("generic", tmp_path, manifest="list.csv", label_map={"fröhlich": "happy"})
    assert [(Path(s.path).name, s.subject, s.label, s.code) for s in samples] == [
        ("a.png", "p1", "happy", "happy"), ("b.png", "p2", "happy", "fröhlich"),
    ]


def test_generic_manifest_in_another_encoding_is_named(tmp_path: Path) -> None:
    write_image(tmp_path / "img" / "a.png")
    (tmp_path / "list.csv").write_bytes("path,label\nimg/a.png,gl\xfccklich\n".encode("latin-1"))
    with pytest.raises(DataError, match="list.csv: not a UTF-8 text file: undecodable byte at offset 23"):
        load("generic", tmp_path, manifest="list.csv")
    (tmp_path / "list.csv").write_bytes("path,label\n".encode("utf-16-le"))  # no byte-order mark
    with pytest.raises(DataError, match="list.csv: not a UTF-8 text file \\(UTF-16 without a byte-order mark\\?\\)"):
        load("generic", tmp_path, manifest="list.csv")


# ---------------------------------------------------------------- every loader


@pytest.mark.parametrize(
    "name", ["ckplus", "jaffe", "oulu_casia", "mmi", "bu3dfe", "nimstim", "fer2013", "kdef", "rafdb", "generic"]
)
def test_empty_or_missing_root_names_the_path_tried(tmp_path: Path, name: str) -> None:
    for root in (tmp_path, tmp_path / "missing"):
        with pytest.raises(DatasetNotFound) as error:
            load(name, root)
        assert str(tmp_path) in str(error.value) and name in str(error.value)
