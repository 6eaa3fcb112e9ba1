"""Frame selection rules on hand-made sequences."""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from ferbench.data.base import Sample
from ferbench.errors import DataError, FerbenchError
from ferbench.frames import select_frames


def _rule(select="last_n", n=3, first_as_neutral="none", intensities=None):
    return SimpleNamespace(select=select, n=n, first_as_neutral=first_as_neutral, intensities=intensities)


def _sequence(subject, seq, length, label, layout="full", labelled_frame=None):
    attrs = {"layout": layout, "labelled_frame": labelled_frame}
    return [Sample("ckplus", f"/{subject}/{seq}/{f}.png", subject, label, None, seq, f, attrs=attrs)
            for f in range(length, 0, -1)]  # deliberately reversed: selection must sort by frame


SEQS = _sequence("S005", "001", 8, "happy") + _sequence("S005", "002", 6, None) + _sequence("S010", "001", 10, "anger")


def frames_of(selected):
    return [(s.subject, s.sequence, s.frame, s.label) for s in selected]


def test_last_3_of_labelled_sequences_only():
    assert frames_of(select_frames(SEQS, _rule(), sequential=True)) == [
        ("S005", "001", 6, "happy"), ("S005", "001", 7, "happy"), ("S005", "001", 8, "happy"),
        ("S010", "001", 8, "anger"), ("S010", "001", 9, "anger"), ("S010", "001", 10, "anger"),
    ]


def test_first_frame_neutral_from_labelled_vs_all_sequences():
    labelled = select_frames(SEQS, _rule(select="peak", first_as_neutral="labelled"), sequential=True)
    assert frames_of(labelled) == [("S005", "001", 1, "neutral"), ("S005", "001", 8, "happy"),
                                   ("S010", "001", 1, "neutral"), ("S010", "001", 10, "anger")]
    every = select_frames(SEQS, _rule(first_as_neutral="all"), sequential=True)
    neutrals = [f for f in frames_of(every) if f[3] == "neutral"]
    assert neutrals == [("S005", "001", 1, "neutral"), ("S005", "002", 1, "neutral"), ("S010", "001", 1, "neutral")]
    assert len(every) == 3 + 6
    assert all(s.attrs["frame_role"] == "first_as_neutral" for s in every if s.label == "neutral")


def test_middle_n_and_all():
    middle = select_frames(_sequence("S1", "1", 9, "fear"), _rule(select="middle_n", n=3), sequential=True)
    assert [s.frame for s in middle] == [4, 5, 6]
    assert len(select_frames(SEQS, _rule(select="all", n=None), sequential=True)) == 18


def test_short_sequence_overlap_is_an_error():
    with pytest.raises(DataError, match="both the neutral frame"):
        select_frames(_sequence("S1", "1", 3, "fear"), _rule(first_as_neutral="labelled"), sequential=True)


def test_ck48_layout_refuses_frames_it_lacks():
    ck48 = _sequence("S005", "001", 3, "happy", layout="ck48")
    assert len(select_frames(ck48, _rule(), sequential=True)) == 3
    for rule in (_rule(first_as_neutral="all"), _rule(select="peak", n=None)):
        with pytest.raises(FerbenchError, match="CK\\+48"):
            select_frames(ck48, rule, sequential=True)


def test_stills_and_intensity_filter():
    stills = [Sample("bu3dfe", f"/{i}.bmp", "F0001", lab, None, attrs={"intensity": inten})
              for i, (lab, inten) in enumerate([("anger", 1), ("anger", 4), ("happy", 3), ("neutral", 0)])]
    assert len(select_frames(stills, _rule(select="all", n=None), sequential=False)) == 4
    kept = select_frames(stills, _rule(select="all", n=None, intensities=[3, 4]), sequential=False)
    assert [(s.label, s.attrs["intensity"]) for s in kept] == [("anger", 4), ("happy", 3)]
    with pytest.raises(FerbenchError, match="still images"):
        select_frames(stills, _rule(), sequential=False)


def test_peak_and_last_n_need_the_labelled_frame_to_be_last():
    good = _sequence("S005", "001", 8, "happy", labelled_frame=8)
    assert [s.frame for s in select_frames(good, _rule(), sequential=True)] == [6, 7, 8]
    bad = good + _sequence("S010", "002", 9, "anger", labelled_frame=7)  # two frames after the peak
    for rule in (_rule(), _rule(select="peak", n=None)):
        with pytest.raises(FerbenchError, match="sequence S010/002: its label file names frame 7, but the last frame is 9"):
            select_frames(bad, rule, sequential=True)
    # rules that do not rely on the last frame being the peak take the sequence as it is
    assert len(select_frames(bad, _rule(select="all", n=None), sequential=True)) == 17
    assert len(select_frames(bad, _rule(select="middle_n", n=3), sequential=True)) == 6


def test_ckplus_loader_records_the_emotion_file_frame(tmp_path):
    from ferbench.data.registry import get_dataset

    frames = tmp_path / "cohn-kanade-images" / "S005" / "001"
    frames.mkdir(parents=True)
    for f in range(1, 6):
        cv2.imwrite(str(frames / f"S005_001_{f:08d}.png"), np.zeros((8, 8), np.uint8))
    emotion = tmp_path / "Emotion" / "S005" / "001"
    emotion.mkdir(parents=True)
    (emotion / "S005_001_00000004_emotion.txt").write_text("   5.0000000e+00\n")  # names frame 4 of 5
    loader = get_dataset("ckplus")
    samples = loader.load(tmp_path, loader.options_model())
    assert {s.attrs["labelled_frame"] for s in samples} == {4}
    with pytest.raises(FerbenchError, match="sequence S005/001: its label file names frame 4"):
        select_frames(samples, _rule(select="peak", n=None), loader.sequential, loader.peak_frame)


def test_onset_apex_offset_sequences_refuse_last_frames():
    from ferbench.data.registry import get_dataset

    mmi = get_dataset("mmi")
    assert (mmi.peak_frame, get_dataset("ckplus").peak_frame, get_dataset("oulu_casia").peak_frame) == (
        "middle", "last", "last")
    session = _sequence("S001", "100", 9, "fear")
    for rule in (_rule(), _rule(select="peak", n=None)):
        with pytest.raises(FerbenchError, match="onset-apex-offset.*use `select: middle_n`"):
            select_frames(session, rule, sequential=True, peak_frame=mmi.peak_frame)
    middle = select_frames(session, _rule(select="middle_n", n=3), sequential=True, peak_frame=mmi.peak_frame)
    assert [s.frame for s in middle] == [4, 5, 6]
