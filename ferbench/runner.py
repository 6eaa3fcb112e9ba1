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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ferbench.cards import ModelCard, load_card
from ferbench.executors import Executor, SequentialExecutor
from ferbench.jobs import Job, resolve_device
from ferbench.pipeline import ProtocolData, data_fingerprint
from ferbench.runs import RunDir, job_inputs
from ferbench.runs.header import run_header, write_run_header
from ferbench.runs.job_files import load_job_model
from ferbench.runs.summary import run_speed, summarise
from ferbench.report import write_run_curves
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
    executor = executor or SequentialExecutor(options.progress)
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
    """Header, summary (and speed) of a card's run from the jobs finished so far (``summary.json``),
    and the training curves of those jobs (``curves.png``)."""
    card, run = plan.card, plan.run
    all_jobs = [(job.seed, job.fold.index, job.fingerprint) for job in plan.jobs]
    write_run_header(run, data, folds, card, plan.header)
    summary = summarise(run, data, card, all_jobs, plan.header)
    done = [(job["seed"], job["fold"]) for job in summary["jobs"]]
    num_classes = len(data.protocol.classes)
    if done:
        summary["params"] = count_parameters(load_job_model(run, card, num_classes, *done[0]))
    if options.speed:
        summary["speed"] = run_speed(run, card, num_classes, resolve_device(options.device), done)
    write_run_curves(run, summary["jobs"],
                     f"{card.name} on {data.protocol.id}{' (synthetic)' if data.synthetic else ''}")
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
