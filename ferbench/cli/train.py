"""``ferbench run``, ``plan``, ``models`` and ``speed``: training and what it costs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from tabulate import tabulate

from ferbench.cli.common import (
    RootOption, SyntheticOption, app, check_device, check_folds, load_protocols, parse_cards,
    parse_indices, writable_folder,
)
from ferbench.errors import FerbenchError, OptionError


@app.command()
def run(
    protocols: Annotated[list[Path], typer.Argument(help="Protocol YAML files.")],
    models: Annotated[Optional[str], typer.Option(help="Comma-separated model cards (names or YAML paths); default: every baseline that fits.")] = None,
    out: Annotated[Path, typer.Option(help="Run directory root.")] = Path("runs"),
    root: RootOption = None,
    synthetic: SyntheticOption = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "0",
    folds: Annotated[Optional[str], typer.Option(help="Comma-separated fold indices (default all).")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Override every recipe's epochs (recorded as a deviation).")] = None,
    repeats: Annotated[Optional[int], typer.Option(min=1, help="Override every recipe's passes per epoch (recorded as a deviation).")] = None,
    speed: Annotated[bool, typer.Option(help="Measure speed and size of each model.")] = True,
    temperature_sweep: Annotated[bool, typer.Option(
        "--temperature-sweep", help="Run distilling cards at every temperature of their card's grid.")] = False,
    jobs: Annotated[int, typer.Option(min=1, help="Train this many jobs at once in local processes (GPUs round-robin).")] = 1,
    executor: Annotated[str, typer.Option(help="local, or dask (with --scheduler).")] = "local",
    scheduler: Annotated[Optional[str], typer.Option(help="Dask scheduler address, e.g. tcp://10.0.0.5:8786.")] = None,
    stack: Annotated[Optional[bool], typer.Option(
        "--stack/--no-stack", help="Train the folds of a model together with stacked weights (default: on CUDA).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Start even when the estimated time exceeds the confirmation threshold.")] = False,
    memory_format: Annotated[str, typer.Option(envvar="FERBENCH_MEMORY_FORMAT", help=(
        "auto (channels_last on a CPU for the models measured faster that way, else contiguous), "
        "contiguous or channels_last; recorded in env.json."))] = "auto",
) -> None:
    """Train and evaluate models under protocols; resumable, writes tables and pictures.

    Everything that can be checked before preprocessing is: options, protocols, ``--root`` names,
    the selected folds and every card's model constructor (its ``kwargs``). Then it prints the
    planner's estimate of each protocol (see `ferbench plan`) and asks for --yes when it exceeds
    $FERBENCH_CONFIRM_HOURS (default 2) hours."""
    from ferbench.cards import load_card
    from ferbench.executors import make_executor
    from ferbench.models.build import check_constructor
    from ferbench.pipeline import attach_images, load_protocol_data
    from ferbench.report import format_mean_std, results_table
    from ferbench.runner import RunOptions, default_cards, expand_temperature_sweeps, run_cards
    from ferbench.training.trainer import MEMORY_FORMAT_ENV, MEMORY_FORMATS

    if memory_format not in ("auto", *MEMORY_FORMATS):
        raise OptionError("--memory-format", memory_format, "choose auto, contiguous or channels_last")
    os.environ[MEMORY_FORMAT_ENV] = memory_format  # read by fit here and in every worker process started below
    options = RunOptions(out=writable_folder(out, "--out"), device=check_device(device),
                         seeds=parse_indices(seeds, "--seeds"),
                         folds=None if folds is None else parse_indices(folds, "--folds"),
                         epochs=epochs, repeats=repeats, speed=speed)
    names = parse_cards(models)
    runner = make_executor(executor, jobs, scheduler, stack)
    plans = []
    for protocol in load_protocols(protocols, root, synthetic):
        data = load_protocol_data(protocol)
        check_folds(options.folds, data.folds(), protocol.id)  # run folds are made after preprocessing (skip drops)
        cards = [load_card(name) for name in names] if names else default_cards(protocol)
        for card in cards:
            check_constructor(card, len(protocol.classes))
            if card.teacher is not None:
                check_constructor(load_card(card.teacher), len(protocol.classes))
        cards = expand_temperature_sweeps(cards) if temperature_sweep else cards
        confirm_estimate(protocol, data.folds(), cards, options, yes)
        plans.append((protocol, data, cards))
    rows = []
    for protocol, data, cards in plans:
        data = attach_images(data)
        for card, summary in zip(cards, run_cards(data, data.folds(), cards, options, runner)):
            metrics = summary.get("metrics", {})
            rows.append({
                "protocol": protocol.id + (" (synthetic)" if data.synthetic else ""),
                "model": card.name,
                "accuracy": format_mean_std(metrics["accuracy"]) if metrics else "-",
                "macro_f1": format_mean_std(metrics["macro_f1"]) if metrics else "-",
                "folds": f"{summary['jobs_done']}/{summary['jobs_total']}",
                "params": summary.get("params", "-"),
                "cpu ms": _ms(summary.get("speed", {})),
            })
    typer.echo(results_table(rows, ["protocol", "model", "accuracy", "macro_f1", "folds", "params", "cpu ms"]))
    typer.echo(f"results, confusion matrices and predictions under {out.resolve()}")


def confirm_estimate(protocol, folds, cards, options, yes: bool) -> None:
    """Print the planner's estimate of the pending jobs; above the threshold, start only with
    ``--yes`` or an interactive confirmation (a non-interactive shell is refused)."""
    import sys

    from ferbench.jobs import resolve_device
    from ferbench.planner import confirm_seconds, format_duration, pending_folds, plan_folds, totals
    from ferbench.runner import apply_deviations

    limit = confirm_seconds()  # a bad value is refused even when nothing is left to train
    selected = pending_folds(protocol, folds, cards, options.seeds, options.folds, options.out)
    if not selected:
        return
    rows = plan_folds(protocol, folds, cards, len(options.seeds), selected, resolve_device(options.device),
                      lambda card: apply_deviations(card, options)[0])
    total = totals(rows)
    typer.echo(f"plan {protocol.id}: {total['jobs']} jobs, {total['image_passes']:,} image passes, "
               f"{total['steps']:,} steps, about {format_duration(total['seconds'])} on {options.device}")
    if yes or total["seconds"] is None or total["seconds"] <= limit:
        return
    question = f"the estimate exceeds {format_duration(limit)}; start anyway?"
    if not sys.stdin.isatty():
        raise FerbenchError(f"{protocol.id}: {question.split(';')[0]} (see `ferbench plan`); pass --yes to start, "
                            "or shorten the run with --models, --folds, --epochs")
    if not typer.confirm(question):
        raise typer.Exit(1)


def _ms(speed: dict) -> str:
    latency = (speed.get("cpu") or {}).get("latency") or {}
    return f"{latency['median_ms']:.2f}" if "median_ms" in latency else "-"


@app.command()
def plan(
    protocols: Annotated[list[Path], typer.Argument(help="Protocol YAML files.")],
    models: Annotated[Optional[str], typer.Option(help="Comma-separated model cards; default: every baseline that fits.")] = None,
    root: RootOption = None,
    synthetic: SyntheticOption = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda: the device the estimate is for.")] = "auto",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "0",
    folds: Annotated[Optional[str], typer.Option(help="Comma-separated fold indices (default all).")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Override every recipe's epochs.")] = None,
    repeats: Annotated[Optional[int], typer.Option(min=1, help="Override every recipe's passes per epoch.")] = None,
    calibrate: Annotated[bool, typer.Option(help="Time a few training steps per model (cached per device) for the estimate.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Print what a run would train (jobs, image passes, steps) and about how long it takes here."""
    from ferbench.cards import load_card
    from ferbench.jobs import resolve_device
    from ferbench.pipeline import load_protocol_data
    from ferbench.planner import format_duration, plan_folds, rows_as_dicts, totals
    from ferbench.runner import RunOptions, apply_deviations, default_cards

    options = RunOptions(device=check_device(device), seeds=parse_indices(seeds, "--seeds"),
                         folds=None if folds is None else parse_indices(folds, "--folds"),
                         epochs=epochs, repeats=repeats)
    names = parse_cards(models)
    rows = []
    for protocol in load_protocols(protocols, root, synthetic):
        protocol_folds = load_protocol_data(protocol).folds()
        check_folds(options.folds, protocol_folds, protocol.id)
        cards = [load_card(name) for name in names] if names else default_cards(protocol)
        rows += plan_folds(protocol, protocol_folds, cards, len(options.seeds), options.folds,
                           resolve_device(options.device) if calibrate else None,
                           lambda card: apply_deviations(card, options)[0])
    total = totals(rows)
    if as_json:
        typer.echo(json.dumps({"device": device, "rows": rows_as_dicts(rows), "total": total}, indent=2))
        return
    table = [[r.protocol, r.model + ("" if r.role == "model" else f" ({r.role})"), r.jobs, f"{r.images_per_epoch:,.0f}",
              r.epochs, f"{r.image_passes:,}", f"{r.steps:,}", _petaflops(r.train_flops), format_duration(r.seconds)]
             for r in rows]
    table.append(["total", "", total["jobs"], "", "", f"{total['image_passes']:,}", f"{total['steps']:,}",
                  _petaflops(total["train_flops"]), format_duration(total["seconds"])])
    typer.echo(tabulate(table, headers=["protocol", "model", "jobs", "images/epoch", "epochs", "image passes",
                                        "steps", "train PFLOP", f"estimate ({device})"], disable_numparse=True))
    typer.echo("estimate: training steps only, from a short calibration per model; train PFLOP: 10^15 "
               "floating-point operations of the training passes, on any device (see ferbench.planner)")


def _petaflops(flops: int | None) -> str:
    return "-" if flops is None else f"{flops / 1e15:,.1f}"


@app.command("models")
def list_registered_models(
    classes: Annotated[int, typer.Option(min=2, help="Number of output classes the parameters are counted for.")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the registered models with their input sizes and parameter counts."""
    from ferbench.models import create_model, list_models, model_info
    from ferbench.speed import count_parameters

    entries = []
    for name in list_models():
        info = model_info(name)
        model = create_model(name, classes)
        params = getattr(model, "n_parameters_all_classes", None) or count_parameters(model)
        entries.append({"name": name, "family": info.family, "paper": info.paper, "params": params,
                        "input_size": list(info.input_size), "input_sizes": [list(s) for s in info.input_sizes]})
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
        return
    rows = [[e["name"], e["family"], e["paper"], "x".join(map(str, e["input_size"])), f"{e['params']:,}",
             ", ".join("x".join(map(str, s)) for s in e["input_sizes"][1:]) or "-"] for e in entries]
    typer.echo(tabulate(rows, headers=["model", "family", "paper", "input (CxHxW)", f"params ({classes} classes)",
                                       "other declared inputs"], disable_numparse=True))


@app.command()
def speed(
    models: Annotated[Optional[str], typer.Option(help="Comma-separated cards (names, YAML paths or timm/<arch>); default: every baseline.")] = None,
    device: Annotated[str, typer.Option(help="cpu, or cuda / cuda:N to add GPU latency (auto: cuda if there is one).")] = "cpu",
    onnx: Annotated[bool, typer.Option("--onnx", help="Add ONNX Runtime CPU latency (1 intra-op thread).")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Few warm-up passes and repeats (rough timings).")] = False,
    classes: Annotated[int, typer.Option(min=2, help="Number of output classes.")] = 7,
) -> None:
    """Parameters, size, MACs and batch-1 latency of untrained models (PyTorch, optionally ONNX Runtime)."""
    import torch

    from ferbench.cards import list_cards, load_card
    from ferbench.models.build import build_model
    from ferbench.speed import speed_report

    names, device = parse_cards(models), check_device(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    rows, classical = [], []
    cards = [load_card(name) for name in names] if names else list_cards()
    for card in cards:
        model = build_model(card, classes)
        if not isinstance(model, torch.nn.Module):
            classical.append(card.name)
            continue
        report = speed_report(model, (card.input.channels, *card.input.size), device=device, quick=quick)
        row = [card.name, report["params"], f"{report['size_mb']:.2f}", f"{report['macs'] / 1e6:.1f}",
               _ms(report)]
        if onnx:
            from ferbench.export import onnx_latency

            row.append(f"{onnx_latency(model, card, quick=quick)['median_ms']:.2f}")
        if device != "cpu":
            row.append(f"{report['cuda']['latency']['median_ms']:.2f}" if report["cuda"] else "-")
        rows.append(row)
    headers = ["model", "params", "MiB", "MMACs", "cpu ms (1 thread)"] + ["onnxruntime ms (1 thread)"] * onnx
    typer.echo(tabulate(rows, headers=headers + [f"{device} ms"] * (device != "cpu"), disable_numparse=True))
    typer.echo(f"batch 1, {'quick: few repeats' if quick else 'median of 100 passes after 10 warm-up'}, {classes} classes")
    if classical:
        typer.echo(f"not timed (classical models predict only after training; `ferbench run` times them): "
                   f"{', '.join(classical)}")


