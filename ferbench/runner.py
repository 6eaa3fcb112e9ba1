"""``ferbench run``: train and evaluate model cards under protocols, fold by fold, resumably.

One *job* is (protocol, card, seed, fold). A job trains on the fold's training indices only,
predicts the fold's test indices (and, cross-dataset, the whole target), and writes its files
into the run directory (``ferbench.runs``) before marking itself ``DONE``. A rerun of the same
command skips every job whose ``DONE`` matches its fingerprint.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ferbench import plugins
from ferbench.cards import ModelCard, load_card
from ferbench.io import atomic_write_bytes, atomic_write_text
from ferbench.metrics import aggregate, cross_dataset_drop, fold_metrics, row_normalise
from ferbench.pipeline import ProtocolData
from ferbench.report import plot_confusion
from ferbench.runs import RunDir, environment, job_fingerprint
from ferbench.speed import count_parameters
from ferbench.splits import Fold
from ferbench.training import fit, predict_proba, seed_everything, teacher_forward


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
    batch_size_eval: int = 256
    # Test hook: called with the training indices of every job right before ``fit``.
    on_train_indices: Callable[[np.ndarray], None] | None = field(default=None, repr=False)


def resolve_device(name: str) -> torch.device:
    """``auto`` = CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from ferbench.errors import FerbenchError

        raise FerbenchError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


def run_card(data: ProtocolData, folds: list[Fold], card: ModelCard, options: RunOptions) -> dict[str, Any]:
    """Run every selected (seed, fold) job of one card under one protocol; return the summary."""
    protocol = data.protocol
    card, deviations = apply_deviations(card, options)
    run = RunDir.for_run(options.out, protocol.id, card.name)
    write_run_header(run, data, folds, card, deviations)
    device = resolve_device(options.device)
    wanted = [f for f in folds if options.folds is None or f.index in options.folds]
    jobs = [(seed, fold) for seed in options.seeds for fold in wanted]
    bar = tqdm(jobs, desc=f"{protocol.id} / {card.name}", unit="fold", disable=not options.progress)
    for seed, fold in bar:
        bar.set_postfix_str(f"seed {seed} fold {fold.index}")
        ensure_job(run, data, fold, card, seed, deviations, device, options)
    all_jobs = [(s, f.index, job_fingerprint(protocol.fingerprint, card.fingerprint, s, f.index, deviations))
                for s in options.seeds for f in folds]
    summary = summarise(run, data, card, all_jobs, deviations)
    done = run.done_jobs(all_jobs)
    if done:
        summary["params"] = count_parameters(load_job_model(run, card, len(protocol.classes), *done[0]))
    if options.speed:
        summary["speed"] = _speed(run, card, len(protocol.classes), device, done)
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


def ensure_job(run: RunDir, data: ProtocolData, fold: Fold, card: ModelCard, seed: int, deviations: dict[str, Any],
               device: torch.device, options: RunOptions) -> None:
    """Run one job unless its ``DONE`` already carries this fingerprint."""
    fp = job_fingerprint(data.protocol.fingerprint, card.fingerprint, seed, fold.index, deviations)
    if not run.is_done(seed, fold.index, fp):
        _run_job(run, data, fold, card, seed, fp, device, options)


def _teacher(data: ProtocolData, fold: Fold, card: ModelCard, seed: int, device: torch.device,
             options: RunOptions) -> Any:
    """For a distilling card: the teacher trained on this fold's training data (a job of its
    own, reused when done), as a function from the student batch to teacher logits."""
    if card.teacher is None:
        return None
    teacher_card, deviations = apply_deviations(load_card(card.teacher), options)
    run = RunDir.for_run(options.out, data.protocol.id, teacher_card.name)
    if not run.root.is_dir():
        write_run_header(run, data, data.folds(), teacher_card, deviations)
    ensure_job(run, data, fold, teacher_card, seed, deviations, device, options)
    teacher = load_job_model(run, teacher_card, len(data.protocol.classes), seed, fold.index).to(device)
    return teacher_forward(teacher, teacher_card, card)


def write_run_header(run: RunDir, data: ProtocolData, folds: list[Fold], card: ModelCard, deviations: dict) -> None:
    import yaml

    run.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.root / "protocol.resolved.yaml", yaml.safe_dump(data.protocol.resolved_dict(), sort_keys=False))
    atomic_write_text(run.root / "card.resolved.yaml", yaml.safe_dump(card.resolved_dict(), sort_keys=False))
    run.write_json("env.json", {**environment(), "deviations": deviations})
    samples = data.samples
    run.write_json("folds.json", [
        {"fold": f.index,
         "train_subjects": sorted({str(samples[i].subject) for i in f.train}),
         "test_subjects": sorted({str(samples[i].subject) for i in f.test}),
         "train": len(f.train), "test": len(f.test)}
        for f in folds
    ])


def _run_job(run: RunDir, data: ProtocolData, fold: Fold, card: ModelCard, seed: int, fp: str,
             device: torch.device, options: RunOptions) -> None:
    classes = list(data.protocol.classes)
    job_dir = run.start_job(seed, fold.index)
    images, y = data.images, data.y
    if options.on_train_indices is not None:
        options.on_train_indices(fold.train)
    teacher = _teacher(data, fold, card, seed, device, options)
    validation = (images[fold.validation], y[fold.validation]) if len(fold.validation) else None
    model = train_model(card, images[fold.train], y[fold.train], len(classes), seed, device, options, teacher,
                        validation)
    results: dict[str, Any] = {"seed": seed, "fold": fold.index}
    if validation is not None and hasattr(model, "selected_epoch"):
        results["selected_epoch"] = model.selected_epoch  # chosen on the validation set, never on test
    evaluations = []
    if len(fold.test):
        evaluations.append(("source" if data.target is not None else "test", data.samples, fold.test, images, y))
    if data.target is not None:
        t = data.target
        evaluations.append(("target", t.samples, np.arange(len(t.samples)), t.images, t.y))
    for name, samples, idx, imgs, labels in evaluations:
        probs = predict_proba(model, card, torch.from_numpy(imgs[idx]), device).cpu().numpy()
        pred = probs.argmax(axis=1)
        metrics = fold_metrics(labels[idx], pred, classes)
        results[name] = metrics
        suffix = "" if name in ("test", "source") else f"_{name}"
        write_predictions(job_dir / f"predictions{suffix}.csv", [samples[i] for i in idx], labels[idx], pred, probs, classes)
        atomic_write_text(job_dir / f"confusion{suffix}.csv",
                          pd.DataFrame(metrics["confusion"], index=classes, columns=classes).to_csv())
    _save_model(job_dir, model)
    run.write_json(f"seed{seed}/fold{fold.index}/metrics.json", results)
    run.finish_job(seed, fold.index, fp)


def train_model(card: ModelCard, images: np.ndarray, y: np.ndarray, num_classes: int, seed: int,
                device: torch.device, options: RunOptions, teacher: Any = None,
                validation: tuple[np.ndarray, np.ndarray] | None = None) -> Any:
    """Build the card's model with ``seed`` and fit it on the given training images only
    (``validation``, held-out non-test data, only selects the epoch)."""
    seed_everything(seed)
    model = build_model(card, num_classes)
    held_out = None if validation is None else (torch.from_numpy(validation[0]), torch.from_numpy(validation[1]))
    return fit(model, card, torch.from_numpy(images), torch.from_numpy(y), device, seed, teacher=teacher,
               progress=options.progress, validation=held_out)


def write_predictions(path: Path, samples: list, y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray,
                       classes: list[str]) -> None:
    frame = pd.DataFrame({
        "path": [s.key for s in samples],
        "subject": [s.subject for s in samples],
        "true": [classes[i] for i in y_true],
        "predicted": [classes[i] for i in y_pred],
    })
    for k, name in enumerate(classes):
        frame[f"p_{name}"] = np.round(probs[:, k], 6)
    atomic_write_text(path, frame.to_csv(index=False))


def _save_model(job_dir: Path, model: Any) -> None:
    buffer = io.BytesIO()
    if isinstance(model, torch.nn.Module):
        torch.save(model.state_dict(), buffer)
        atomic_write_bytes(job_dir / "model.pt", buffer.getvalue())
    else:
        atomic_write_bytes(job_dir / "model.pkl", pickle.dumps(model))


def summarise(run: RunDir, data: ProtocolData, card: ModelCard, jobs: list[tuple[int, int, str]],
              deviations: dict) -> dict[str, Any]:
    """Aggregate the finished jobs of a run into ``summary.json`` (and the confusion PNG)."""
    protocol = data.protocol
    classes = list(protocol.classes)
    done = run.done_jobs(jobs)
    per_job = [run.read_json(f"seed{s}", f"fold{k}", "metrics.json") for s, k in done]
    primary_side = "target" if data.target is not None else "test"
    side_metrics = [j[primary_side] for j in per_job if primary_side in j]
    summary: dict[str, Any] = {
        "protocol": protocol.id,
        "fingerprint": protocol.fingerprint,
        "model": card.name,
        "architecture": card.model,
        "card_fingerprint": card.fingerprint,
        "classes": classes,
        "synthetic": data.synthetic,
        "cross_dataset": data.target is not None,
        "deviations": deviations,
        "jobs_done": len(done),
        "jobs_total": len(jobs),
        "complete": len(done) == len(jobs),
        "seeds": sorted({s for s, _, _ in jobs}),
        "reported": [r.model_dump() for r in card.reported if r.protocol == protocol.id],
    }
    if side_metrics:
        agg = aggregate(side_metrics)
        summary["metrics"] = {k: v for k, v in agg.items() if isinstance(v, dict) and "mean" in v}
        summary["confusion"] = agg["confusion"]
        summary["confusion_normalised"] = np.round(row_normalise(agg["confusion"]), 4).tolist()
        summary["pooled"] = agg["pooled"]
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


def build_model(card: ModelCard, num_classes: int) -> Any:
    """The card's untrained model (torch module or classical estimator): a registered model,
    ``timm/<architecture>`` or a factory string, checked against the model contract (:mod:`ferbench.plugins`)."""
    return plugins.build_model(card, num_classes)


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

    path = run.root / "speed.json"
    if path.is_file():
        cached = run.read_json("speed.json")
        if cached.get("card_fingerprint") == card.fingerprint:
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
