"""Run directories stay true to their inputs: a job is reused only when nothing that can change
its result changed (the data, the teacher, the files of the job itself), the header is written
only together with results of the same fingerprint, and predictions are portable."""

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

import ferbench.jobs as jobs
from ferbench.cards import load_card
from ferbench.leaderboard import find_runs
from ferbench.pipeline import attach_images, data_fingerprint, load_protocol_data, resolve_root
from ferbench.protocol import load_protocol
from ferbench.runner import RunOptions, run_card, run_cards

PROTOCOL = Path(__file__).parents[1] / "protocols" / "ckplus_7cls_si.yaml"
RUN = Path("ckplus_7cls_si")
CARD = """\
name: {name}
model: microexpnet_xxs
input: {{channels: 1, size: [48, 48], normalise: minus_one_one}}
recipe:
  epochs: 1
  batch_size: 32
  optimizer: {{name: adam, lr: {lr}}}
  objective: {objective}
"""


def write_card(folder: Path, name: str, lr: str = "1.0e-3", objective: str = "{name: cross_entropy}") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(CARD.format(name=name, lr=lr, objective=objective))
    return path


def protocol_file(folder: Path, extra: str = "") -> Path:
    """``ckplus_7cls_si`` with the keys in ``extra`` overridden."""
    path = folder / "protocol.yaml"
    path.write_text(f"include: [{PROTOCOL}]\n{extra}")
    return path


def load(root: str | Path, protocol: Path = PROTOCOL):
    return attach_images(load_protocol_data(load_protocol(protocol, roots={"ckplus": str(root)})), progress=False)


def count_fits(monkeypatch) -> list[str]:
    """Card names of every ``fit`` from now on."""
    calls, real_fit = [], jobs.fit

    def counting_fit(model, card, *args, **kwargs):
        calls.append(card.name)
        return real_fit(model, card, *args, **kwargs)

    monkeypatch.setattr(jobs, "fit", counting_fit)
    return calls


def options(out: Path, folds=(0, 1), **kw) -> RunOptions:
    return RunOptions(out=out, folds=list(folds), progress=False, speed=kw.pop("speed", False), **kw)


def read_json(path: Path):
    return json.loads(path.read_text())


def redone(caplog) -> list[str]:
    """The ``redoing <job dir>: <reason>`` lines, as ``<card>/seed<s>/fold<k>: <reason>``."""
    lines = []
    for record in caplog.records:
        job_dir, _, reason = record.getMessage().removeprefix("redoing ").partition(": ")
        lines.append(f"{Path(job_dir).relative_to(Path(job_dir).parents[2]).as_posix()}: {reason}")
    return sorted(lines)


@pytest.fixture
def twin_copy(tmp_path):
    """A private copy of the small CK+ twin that a test may change."""
    source, _ = resolve_root("ckplus", "synthetic:small", {})
    return Path(shutil.copytree(source, tmp_path / "ck"))


@pytest.fixture(scope="module")
def small():
    return load("synthetic:small")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_card(write_card(tmp_path_factory.mktemp("cards"), "tiny"))


# ----------------------------------------------------------------------------- the data


def test_deleting_a_subject_redoes_every_job_on_the_new_folds(twin_copy, tiny, tmp_path, monkeypatch, caplog):
    calls = count_fits(monkeypatch)
    out = tmp_path / "runs"
    data = load(twin_copy)
    assert data_fingerprint(load(twin_copy)) == data_fingerprint(data)  # nothing changed, nothing differs
    run_card(data, data.folds(), tiny, options(out))
    run = out / RUN / "tiny"
    gone = sorted({data.samples[i].subject for i in data.folds()[0].test})[0]
    for part in ("cohn-kanade-images", "Emotion", "Landmarks"):
        shutil.rmtree(twin_copy / part / gone)
    changed = load(twin_copy)
    assert len(changed.samples) < len(data.samples) and data_fingerprint(changed) != data_fingerprint(data)
    with caplog.at_level(logging.WARNING):
        run_card(changed, changed.folds(), tiny, options(out))
    assert len(calls) == 4  # both folds trained again
    assert redone(caplog) == [f"tiny/seed0/fold{k}: fingerprint changed: data" for k in (0, 1)]
    folds = read_json(run / "folds.json")
    for k in (0, 1):
        predictions = pd.read_csv(run / "seed0" / f"fold{k}" / "predictions.csv")
        assert sorted(predictions["path"]) == folds[k]["test_keys"]
        assert sorted(changed.keys()[i] for i in changed.folds()[k].test) == folds[k]["test_keys"]
        assert gone not in set(predictions["subject"].astype(str)) | set(folds[k]["test_subjects"])
    assert read_json(run / "summary.json")["data_fingerprint"] == data_fingerprint(changed)


def test_fixing_a_skipped_image_redoes_the_job_with_it(twin_copy, tiny, tmp_path, monkeypatch, caplog):
    protocol = protocol_file(tmp_path, "on_unreadable: skip\n")
    data = load(twin_copy, protocol)
    image = Path(data.samples[0].path)
    key = data.keys()[0]
    good = image.read_bytes()
    image.write_bytes(b"not a png")
    broken = load(twin_copy, protocol)
    assert len(broken.samples) == len(data.samples) - 1
    out = tmp_path / "runs"
    run = out / RUN / "tiny"
    run_card(broken, broken.folds(), tiny, options(out, folds=[0]))
    [report] = read_json(run / "preprocess.json")
    assert (report["role"], report["dataset"]) == ("data", "ckplus")
    assert [entry["path"] for entry in report["report"]["skipped_unreadable"]] == [key]  # root-relative
    assert key not in read_json(run / "folds.json")[0]["train_keys"] + read_json(run / "folds.json")[0]["test_keys"]

    image.write_bytes(good)
    fixed = load(twin_copy, protocol)
    calls = count_fits(monkeypatch)
    with caplog.at_level(logging.WARNING):
        run_card(fixed, fixed.folds(), tiny, options(out, folds=[0]))
    assert len(calls) == 1 and redone(caplog) == ["tiny/seed0/fold0: fingerprint changed: data"]
    folds = read_json(run / "folds.json")
    assert key in folds[0]["train_keys"] + folds[0]["test_keys"]
    assert read_json(run / "preprocess.json")[0]["report"]["skipped_unreadable"] == []


def test_predictions_of_copies_in_different_places_are_byte_identical(tiny, tmp_path):
    source, _ = resolve_root("ckplus", "synthetic:small", {})
    texts = []
    for place in ("a", "b/deeper"):
        copy = shutil.copytree(source, tmp_path / place / "ck")
        data = load(copy)
        run_card(data, data.folds(), tiny, options(tmp_path / place / "runs", folds=[0]))
        run = tmp_path / place / "runs" / RUN / "tiny"
        texts.append([(run / name).read_bytes() for name in ("seed0/fold0/predictions.csv", "folds.json")])
    assert texts[0] == texts[1]
    paths = pd.read_csv(tmp_path / "a" / "runs" / RUN / "tiny" / "seed0" / "fold0" / "predictions.csv")["path"]
    assert paths.str.startswith("cohn-kanade-images/").all()


# ----------------------------------------------------------------------------- the teacher and the protocol


def test_a_changed_teacher_recipe_retrains_the_teacher_and_its_students(small, tmp_path, monkeypatch, caplog):
    folder = tmp_path / "cards"
    folder.mkdir()
    teacher = write_card(folder, "tiny_teacher")
    student = load_card(write_card(folder, "tiny_student", objective=f"{{name: distillation, lambda: 0.5, "
                                                                     f"temperature: 4, teacher: {teacher}}}"))
    out = tmp_path / "runs"
    calls = count_fits(monkeypatch)
    run_cards(small, small.folds(), [student], options(out, folds=[0]))
    assert calls == ["tiny_teacher", "tiny_student"]
    write_card(folder, "tiny_teacher", lr="2.0e-3")
    with caplog.at_level(logging.WARNING):
        [summary] = run_cards(small, small.folds(), [student], options(out, folds=[0]))
    assert calls[2:] == ["tiny_teacher", "tiny_student"]
    assert redone(caplog) == ["tiny_student/seed0/fold0: fingerprint changed: teacher",
                              "tiny_teacher/seed0/fold0: fingerprint changed: card"]
    assert summary["teacher_card_fingerprint"] == load_card(teacher).fingerprint
    run_cards(small, small.folds(), [student], options(out, folds=[0]))
    assert len(calls) == 4  # now both are current


def test_a_changed_metrics_block_recomputes_nothing(small, tiny, tmp_path, monkeypatch):
    out = tmp_path / "runs"
    before = run_card(small, small.folds(), tiny, options(out, folds=[0]))
    ranked_by_f1 = load(  # the primary metric and the report list change, nothing else
        "synthetic:small", protocol_file(tmp_path, "metrics: {primary: macro_f1, report: [macro_f1, uar]}\n"))
    assert ranked_by_f1.protocol.fingerprint == small.protocol.fingerprint
    calls = count_fits(monkeypatch)
    after = run_card(ranked_by_f1, ranked_by_f1.folds(), tiny, options(out, folds=[0]))
    assert calls == []
    assert after["fingerprint"] == before["fingerprint"] and after["metrics"] == before["metrics"]
    resolved = yaml.safe_load((out / RUN / "tiny" / "protocol.resolved.yaml").read_text())
    assert resolved["metrics"]["primary"] == "macro_f1"
    [run] = find_runs([out])
    assert run.primary == "macro_f1" and run.mean("macro_f1") == before["metrics"]["macro_f1"]["mean"]


# ----------------------------------------------------------------------------- the job's own files


@pytest.fixture(scope="module")
def finished(small, tiny, tmp_path_factory):
    """A finished two-fold run (with speed.json) to copy and damage."""
    out = tmp_path_factory.mktemp("finished") / "runs"
    run_card(small, small.folds(), tiny, options(out, speed=True))
    return out


@pytest.mark.parametrize("name, damage, reason", [
    ("DONE", lambda path: path.write_text("{not json"), "DONE is unreadable or from an older ferbench"),
    ("DONE", lambda path: path.write_text(json.loads(path.read_text())["fingerprint"] + "\n"),  # the old format
     "DONE is unreadable or from an older ferbench"),
    ("metrics.json", lambda path: path.write_bytes(path.read_bytes()[:20]), "metrics.json does not match DONE"),
    ("predictions.csv", lambda path: path.unlink(), "predictions.csv missing"),
    ("model.pt", lambda path: path.write_bytes(path.read_bytes()[::-1]), "model.pt does not match DONE"),
])
def test_a_damaged_job_is_redone_and_says_why(finished, small, tiny, tmp_path, monkeypatch, caplog, name, damage,
                                              reason):
    out = Path(shutil.copytree(finished, tmp_path / "runs"))
    run = out / RUN / "tiny"
    before = (run / "seed0" / "fold1" / "predictions.csv").read_bytes()
    damage(run / "seed0" / "fold1" / name)
    calls = count_fits(monkeypatch)
    with caplog.at_level(logging.WARNING):
        summary = run_card(small, small.folds(), tiny, options(out))
    assert len(calls) == 1 and redone(caplog) == [f"tiny/seed0/fold1: {reason}"]
    assert summary["jobs_done"] == 2 and (run / "seed0" / "fold1" / "predictions.csv").read_bytes() == before
    run_card(small, small.folds(), tiny, options(out))
    assert len(calls) == 1


def test_a_corrupt_speed_json_is_measured_again(finished, small, tiny, tmp_path, monkeypatch):
    out = Path(shutil.copytree(finished, tmp_path / "runs"))
    speed = out / RUN / "tiny" / "speed.json"
    speed.write_text('{"card_fingerprint": ')
    calls = count_fits(monkeypatch)
    summary = run_card(small, small.folds(), tiny, options(out, speed=True))
    assert calls == [] and summary["speed"]["card_fingerprint"] == tiny.fingerprint
    assert read_json(speed) == summary["speed"] and summary["speed"]["params"] > 0


# ----------------------------------------------------------------------------- the header


def test_a_failed_rerun_keeps_the_old_header_and_summary(finished, tiny, tmp_path, monkeypatch):
    out = Path(shutil.copytree(finished, tmp_path / "runs"))
    run = out / RUN / "tiny"
    header = {name: (run / name).read_bytes() for name in ("run.json", "protocol.resolved.yaml", "folds.json",
                                                           "summary.json")}
    changed = load("synthetic:small", protocol_file(tmp_path, "frames: {select: last_n, n: 2}\n"))
    assert changed.protocol.fingerprint != json.loads(header["run.json"])["fingerprint"]

    def fail(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(jobs, "fit", fail)
    with pytest.raises(RuntimeError, match="killed"):
        run_card(changed, changed.folds(), tiny, options(out))
    assert {name: (run / name).read_bytes() for name in header} == header
    [shown] = find_runs([out])
    assert shown.summary["jobs_done"] == 2


def test_the_first_new_result_brings_its_header_and_drops_the_old_summary(finished, tiny, tmp_path, monkeypatch):
    out = Path(shutil.copytree(finished, tmp_path / "runs"))
    run = out / RUN / "tiny"
    changed = load("synthetic:small", protocol_file(tmp_path, "frames: {select: last_n, n: 2}\n"))
    trained, real_fit = [], jobs.fit

    def killed_after_one_job(*args, **kwargs):
        if trained:
            raise RuntimeError("killed")
        trained.append(real_fit(*args, **kwargs))
        return trained[-1]

    with monkeypatch.context() as patch, pytest.raises(RuntimeError, match="killed"):
        patch.setattr(jobs, "fit", killed_after_one_job)
        run_card(changed, changed.folds(), tiny, options(out))
    assert read_json(run / "run.json")["fingerprint"] == changed.protocol.fingerprint
    assert yaml.safe_load((run / "protocol.resolved.yaml").read_text())["frames"]["n"] == 2
    assert not (run / "summary.json").exists()  # the old numbers are gone with the old header
    assert (run / "speed.json").exists()  # it belongs to the card, which did not change
    summary = run_card(changed, changed.folds(), tiny, options(out))
    assert summary["fingerprint"] == changed.protocol.fingerprint and summary["jobs_done"] == 2
    [shown] = find_runs([out])
    assert shown.fingerprint == changed.protocol.fingerprint


@pytest.mark.parametrize("edit, problem", [
    (lambda run: (run / "run.json").unlink(), "no readable run.json"),
    (lambda run: (run / "run.json").write_text(json.dumps({**read_json(run / "run.json"), "data_fingerprint": "x"})),
     "differs in data_fingerprint"),
    (lambda run: (run / "protocol.resolved.yaml").write_text("id: ckplus_7cls_si\nmetrics: {primary: uar}\n"),
     "protocol.resolved.yaml is not the file run.json records"),
])
def test_the_leaderboard_leaves_out_numbers_of_another_header(finished, tmp_path, caplog, edit, problem):
    out = Path(shutil.copytree(finished, tmp_path / "runs"))
    edit(out / RUN / "tiny")
    with caplog.at_level(logging.WARNING):
        assert find_runs([out]) == []
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith("leaderboard: left out") and problem in message
