"""``ferbench run``: train and evaluate model cards under protocols, fold by fold, resumably.

One *job* is (protocol, card, seed, fold) (:mod:`ferbench.jobs`): it trains on the fold's
training indices only and predicts the fold's test indices (and, cross-dataset, the whole
target). An executor (:mod:`ferbench.executors`: this process, ``--jobs N`` local processes or
a Dask cluster) computes the jobs; the runner writes each finished job's files into the run
directory (``ferbench.runs``) and then its ``DONE``. A rerun of the same command skips every
job whose ``DONE`` matches its fingerprint and whose files are intact, and prints why it redoes
any other job that had started. The run header (``run.json``, the resolved protocol and card,
``folds.json``, ``preprocess.json``, ``env.json``) is written together with the first job a run
writes and again with its ``summary.json``, never before (see :mod:`ferbench.runs`).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ferbench.cards import ModelCard, load_card
from ferbench.executors import Executor, SequentialExecutor
from ferbench.jobs import Job, resolve_device
from ferbench.intervals import run_intervals
from ferbench.io import atomic_write_text, json_bytes
from ferbench.metrics import aggregate, cross_dataset_drop, row_normalise
from ferbench.pipeline import ProtocolData, data_fingerprint
from ferbench.plugins import build_model
from ferbench.report import plot_confusion
from ferbench.runs import TRAIN_CROSS_VALIDATED, TRAIN_HELD_OUT_TARGET, RunDir, environment, job_inputs
from ferbench.speed import count_parameters
from ferbench.splits import Fold

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """What the ``run`` command line can change. ``epochs`` and ``repeats`` are recorded as deviations."""

    out: Path = Path("runs")
    device: str = "auto"
    seeds: Sequence[int] = (0,)
    folds: Sequence[int] | None = None  # None = every fold
    epochs: int | None = None
    repeats: int | None = None
    progress: bool = True
    speed: bool = True
    # Test hook: called with the training indices of every job right before ``fit``.
    on_train_indices: Callable[[np.ndarray], None] | None = field(default=None, repr=False)


def run_card(data: ProtocolData, folds: list[Fold], card: ModelCard, options: RunOptions,
             executor: Executor | None = None) -> dict[str, Any]:
    """Run every selected (seed, fold) job of one card under one protocol; return the summary."""
    return run_cards(data, folds, [card], options, executor)[0]


def run_cards(data: ProtocolData, folds: list[Fold], cards: Sequence[ModelCard], options: RunOptions,
              executor: Executor | None = None) -> list[dict[str, Any]]:
    """Run the selected (seed, fold) jobs of several cards under one protocol on ``executor``
    (default: one at a time in this process); return one summary per card.

    Teachers of distilling cards train first (jobs of their own, per fold, on the same training
    subjects), then every other job. Unfinished jobs go to the executor; each finished job's
    files are written here as it finishes, so a killed run keeps every finished job. ``data``
    must have its images attached (its data fingerprint is taken here).
    """
    executor = executor or SequentialExecutor(options.progress, options.on_train_indices)
    data_fp = data_fingerprint(data)
    plans = [_plan(data, folds, card, options, data_fp) for card in cards]
    teachers = {plan.teacher.card.fingerprint: plan.teacher for plan in plans if plan.teacher is not None}
    for phase in (list(teachers.values()), plans):
        pending = {job.key: (plan, job) for plan in phase for job in plan.pending(options)}
        finished = executor.run(data, [job for _, job in pending.values()], options.device)
        headed: set[Path] = set()  # run directories whose header this phase has written
        for key, files in tqdm(finished, total=len(pending), desc=f"{data.protocol.id} ({executor.describe()})",
                               unit="job", disable=not options.progress or not pending):
            plan, job = pending[key]
            if plan.run.root not in headed:  # the header goes with the first result of its fingerprint
                write_run_header(plan.run, data, folds, plan.card, plan.header)
                headed.add(plan.run.root)
            plan.run.write_job(job.seed, job.fold.index, files, job.fingerprint, job.inputs)
    return [_finish(data, folds, plan, options) for plan in plans]


@dataclass
class _CardPlan:
    """One card's run under a protocol: its run directory, header (``run.json``) and (seed, fold) jobs."""

    card: ModelCard
    run: RunDir
    header: dict[str, Any]
    jobs: list[Job]
    teacher: _CardPlan | None

    def pending(self, options: RunOptions) -> list[Job]:
        """Jobs of the selected folds not finished with their fingerprint and intact files (a
        line says why for each that had started), each with the trained teacher of its
        (seed, fold) attached when the card distils."""
        todo = []
        for job in self.jobs:
            if options.folds is not None and job.fold.index not in options.folds:
                continue
            reason = self.run.check_job(job.seed, job.fold.index, job.fingerprint, job.inputs)
            if reason is None:
                continue
            job_dir = self.run.job_dir(job.seed, job.fold.index)
            if job_dir.exists():
                log.warning("redoing %s: %s", job_dir, reason)
            todo.append(job)
        if self.teacher is None:
            return todo
        teacher_dir = self.teacher.run.job_dir
        return [replace(job, teacher_state=(teacher_dir(job.seed, job.fold.index) / "model.pt").read_bytes())
                for job in todo]


def _plan(data: ProtocolData, folds: list[Fold], card: ModelCard, options: RunOptions, data_fp: str) -> _CardPlan:
    card, deviations = apply_deviations(card, options)
    run = RunDir.for_run(options.out, data.protocol.id, card.name)
    teacher = _plan(data, folds, load_card(card.teacher), options, data_fp) if card.teacher is not None else None
    teacher_fps = {(job.seed, job.fold.index): job.fingerprint for job in teacher.jobs} if teacher else {}
    jobs = [Job(card, seed, fold, job_inputs(data.protocol.fingerprint, data_fp, card.fingerprint, seed, fold.index,
                                             deviations, teacher_fps.get((seed, fold.index))),
                teacher.card if teacher else None)
            for seed in options.seeds for fold in folds]
    header = run_header(data, card, deviations, data_fp, teacher.card if teacher else None)
    return _CardPlan(card, run, header, jobs, teacher)


def _finish(data: ProtocolData, folds: list[Fold], plan: _CardPlan, options: RunOptions) -> dict[str, Any]:
    """Header, summary (and speed) of a card's run from the jobs finished so far (``summary.json``)."""
    card, run = plan.card, plan.run
    all_jobs = [(job.seed, job.fold.index, job.fingerprint) for job in plan.jobs]
    write_run_header(run, data, folds, card, plan.header)
    summary = summarise(run, data, card, all_jobs, plan.header)
    done = [(job["seed"], job["fold"]) for job in summary["jobs"]]
    num_classes = len(data.protocol.classes)
    if done:
        summary["params"] = count_parameters(load_job_model(run, card, num_classes, *done[0]))
    if options.speed:
        summary["speed"] = _speed(run, card, num_classes, resolve_device(options.device), done)
    run.write_json("summary.json", summary)
    return summary


def apply_deviations(card: ModelCard, options: RunOptions) -> tuple[ModelCard, dict[str, Any]]:
    """The card as this run trains it, and the deviations from its recipe (``--epochs``, ``--repeats``)."""
    deviations: dict[str, Any] = {}
    if card.recipe is None:  # classical cards have no recipe to shorten
        return card, deviations
    if options.epochs is not None:
        card, deviations["epochs"] = card.with_epochs(options.epochs), options.epochs
    if options.repeats is not None:
        card, deviations["repeats"] = card.with_repeats(options.repeats), options.repeats
    return card, deviations


def run_header(data: ProtocolData, card: ModelCard, deviations: dict[str, Any], data_fp: str,
               teacher: ModelCard | None = None) -> dict[str, Any]:
    """The ``run.json`` of ``card`` under ``data``'s protocol (:data:`ferbench.runs.HEADER_KEYS`);
    ``data_fp`` is :func:`~ferbench.pipeline.data_fingerprint` of ``data``."""
    return {"protocol": data.protocol.id, "model": card.name, "fingerprint": data.protocol.fingerprint,
            "data_fingerprint": data_fp, "card_fingerprint": card.fingerprint, "deviations": dict(deviations),
            "teacher_card_fingerprint": teacher.fingerprint if teacher is not None else None}


def write_run_header(run: RunDir, data: ProtocolData, folds: list[Fold], card: ModelCard,
                     header: dict[str, Any]) -> None:
    """Write the header files of ``header`` (see :func:`run_header` and :meth:`RunDir.write_header`):
    the resolved protocol and card, ``env.json``, ``folds.json`` (subjects and root-relative
    sample keys per fold) and ``preprocess.json`` (each side's preprocessing report, listing
    every image it skipped)."""
    import yaml

    samples, keys = data.samples, data.keys()
    folds_record = [
        {"fold": f.index,
         "train_subjects": sorted({str(samples[i].subject) for i in f.train}),
         "test_subjects": sorted({str(samples[i].subject) for i in f.test}),
         "train": len(f.train), "test": len(f.test),
         # root-relative sample keys: what the fold's model trained on (and selected its epoch on)
         "train_keys": sorted(keys[i] for i in np.concatenate([f.train, f.validation]).astype(int)),
         "test_keys": sorted(keys[i] for i in f.test)}
        for f in folds
    ]
    preprocess = [{"role": side.role, "dataset": side.dataset, "report": side.preprocess_report}
                  for side in data.all_sides()]
    run.write_header(header, {
        "protocol.resolved.yaml": yaml.safe_dump(data.protocol.resolved_dict(), sort_keys=False).encode(),
        "card.resolved.yaml": yaml.safe_dump(card.resolved_dict(), sort_keys=False).encode(),
        "env.json": json_bytes({**environment(), "deviations": header["deviations"]}),
        "folds.json": json_bytes(folds_record),
        "preprocess.json": json_bytes(preprocess),
    })


def summarise(run: RunDir, data: ProtocolData, card: ModelCard, jobs: list[tuple[int, int, str]],
              header: dict[str, Any]) -> dict[str, Any]:
    """Aggregate the finished jobs of a run into ``summary.json`` (and the confusion PNG).

    The summary repeats ``header`` (``run.json``), so a reader can check that its numbers
    belong to the header of the directory, and lists the finished jobs it aggregates
    (``jobs``: seed, fold, fingerprint)."""
    protocol = data.protocol
    classes = list(protocol.classes)
    done = [(s, k, fp) for s, k, fp in jobs if run.is_done(s, k, fp)]
    per_job = [run.read_json(f"seed{s}", f"fold{k}", "metrics.json") for s, k, _ in done]
    primary_side = "target" if data.target is not None else "test"
    side_metrics = [j[primary_side] for j in per_job if primary_side in j]
    summary: dict[str, Any] = {
        **header,
        "architecture": card.model,
        "classes": classes,
        "synthetic": data.synthetic,
        "cross_dataset": data.target is not None,
        "train_status": TRAIN_HELD_OUT_TARGET if data.target is not None else TRAIN_CROSS_VALIDATED,
        "jobs_done": len(done),
        "jobs_total": len(jobs),
        "complete": len(done) == len(jobs),
        "seeds": sorted({s for s, _, _ in jobs}),
        "jobs": [{"seed": s, "fold": k, "fingerprint": fp} for s, k, fp in done],
        "reported": [r.model_dump() for r in card.reported if r.protocol == protocol.id],
    }
    if side_metrics:
        agg = aggregate(side_metrics)
        summary["metrics"] = {k: v for k, v in agg.items() if isinstance(v, dict) and "mean" in v}
        summary["confusion"] = agg["confusion"]
        summary["confusion_normalised"] = np.round(row_normalise(agg["confusion"]), 4).tolist()
        summary["pooled"] = agg["pooled"]
        summary["intervals"] = run_intervals(run, [(s, k) for s, k, _ in done], primary_side, classes)  # 95% cluster bootstrap
        suffix = "" if primary_side == "test" else f"_{primary_side}"
        plot_confusion(np.asarray(agg["confusion"]), classes, run.root / f"confusion{suffix}.png",
                       title=f"{card.name} on {protocol.id}{' (synthetic)' if data.synthetic else ''}")
    if data.target is not None:
        source = [j["source"] for j in per_job if "source" in j]
        if source and side_metrics:
            src = aggregate(source)
            summary["source_metrics"] = {k: v for k, v in src.items() if isinstance(v, dict) and "mean" in v}
            summary["drop"] = cross_dataset_drop(
                {"accuracy": src["accuracy"]["mean"]}, {"accuracy": summary["metrics"]["accuracy"]["mean"]})
    return summary


def load_job_model(run: RunDir, card: ModelCard, num_classes: int, seed: int, fold: int) -> Any:
    """The model a finished job trained, from its ``model.pt`` (state dict) or ``model.pkl``."""
    job_dir = run.job_dir(seed, fold)
    if (job_dir / "model.pkl").is_file():
        return pickle.loads((job_dir / "model.pkl").read_bytes())
    model = build_model(card, num_classes)
    model.load_state_dict(torch.load(job_dir / "model.pt", map_location="cpu", weights_only=True))
    return model.eval()


def _speed(run: RunDir, card: ModelCard, num_classes: int, device: torch.device,
           done: list[tuple[int, int]]) -> dict[str, Any]:
    """Speed and size of the card's model, measured once per card fingerprint (``speed.json``).

    Measured on a trained model of the run (classical models cannot predict untrained)."""
    from ferbench.speed import speed_report

    cached = run.read_json_or_none("speed.json")  # an unreadable one is measured again
    if cached is not None and cached.get("card_fingerprint") == card.fingerprint:
        return cached
    if not done:
        return {}
    model = load_job_model(run, card, num_classes, *done[0])
    shape = (card.input.channels, *card.input.size)
    report = {"card_fingerprint": card.fingerprint, **speed_report(model, shape, device=str(device))}
    run.write_json("speed.json", report)
    return report


def card_fits(card: ModelCard, protocol: Any) -> bool:
    """A card fits a protocol when its network input needs no upsampling of the stored face
    crop (``preprocess.size``). Gray crops feed 3-channel models by repetition. A distilling
    card fits by its own input: its teacher sees the student's batch, resized."""
    crop_h, crop_w = protocol.preprocess.size
    in_h, in_w = card.input.size
    return in_h <= crop_h and in_w <= crop_w


def default_cards(protocol: Any) -> list[ModelCard]:
    """Every bundled baseline card that fits ``protocol`` (see :func:`card_fits`)."""
    from ferbench.cards import list_cards

    return [card for card in list_cards() if card_fits(card, protocol)]


def expand_temperature_sweeps(cards: Sequence[ModelCard]) -> list[ModelCard]:
    """Replace each distilling card that declares ``temperature_sweep`` by one card per
    temperature, named ``<card>_T<temperature>`` (e.g. ``microexpnet_xxs_kd_T8``)."""
    expanded: list[ModelCard] = []
    for card in cards:
        if card.teacher is None or not card.temperature_sweep:
            expanded.append(card)
            continue
        for temperature in card.temperature_sweep:
            variant = card.with_temperature(temperature)
            expanded.append(variant.model_copy(update={"name": f"{card.name}_T{temperature:g}"}))
    return expanded
