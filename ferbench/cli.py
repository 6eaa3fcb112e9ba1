"""The ``ferbench`` command: thin wrappers that parse arguments, call the library and print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from tabulate import tabulate

from ferbench.errors import FerbenchError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="ferbench: reproducible, leakage-checked benchmarks for facial expression recognition.")

RootOption = Annotated[Optional[list[str]], typer.Option("--root", help="Dataset root override NAME=PATH (repeatable).")]
SyntheticOption = Annotated[bool, typer.Option("--synthetic", help="Use the synthetic twin of every dataset.")]


def parse_roots(values: list[str] | None) -> dict[str, str]:
    """Turn ``["ckplus=/data/ck"]`` into ``{"ckplus": "/data/ck"}``."""
    roots: dict[str, str] = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise typer.BadParameter(f"`{value}`: expected NAME=PATH, e.g. ckplus=/data/CK+", param_hint="--root")
        roots[name] = path
    return roots


def fail(error: Exception) -> None:
    """Print a ferbench error without a traceback and exit with status 2."""
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.command()
def synth(
    layout: Annotated[str, typer.Argument(help="Dataset layout to write, e.g. ckplus, ckplus48, jaffe.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the twin into.")],
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 0,
    shape: Annotated[str, typer.Option(help="paper (real dataset structure) or small.")] = "paper",
) -> None:
    """Write a procedurally generated face dataset in a real dataset's on-disk layout."""
    from ferbench.synth import write_twin

    try:
        root = write_twin(layout, out_dir, seed=seed, shape=shape)
    except FerbenchError as exc:
        fail(exc)
    typer.echo(f"wrote synthetic {layout} ({shape}, seed {seed}) to {root}")


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Protocol files to check.")]) -> None:
    """Validate protocol files; exit non-zero on the first invalid one."""
    from ferbench.protocol import load_protocol

    for file in files:
        try:
            protocol = load_protocol(file, require_roots=False)
        except FerbenchError as exc:
            fail(exc)
        typer.echo(f"ok  {file}  id={protocol.id}  fingerprint={protocol.fingerprint}")


@app.command()
def inspect(
    protocol_file: Annotated[Path, typer.Argument(help="Protocol YAML.")],
    root: RootOption = None,
    synthetic: SyntheticOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Print per-class, per-subject and per-fold counts and the leakage check of a protocol."""
    from ferbench.pipeline import describe, load_protocol_data
    from ferbench.protocol import load_protocol

    try:
        protocol = load_protocol(protocol_file, roots=parse_roots(root), synthetic=synthetic)
        info = describe(load_protocol_data(protocol))
    except FerbenchError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    label = " [SYNTHETIC twin]" if info["synthetic"] else ""
    typer.echo(f"protocol {info['protocol']}  fingerprint {info['fingerprint']}{label}")
    typer.echo(f"{info['total']} samples, {info['subjects']} subjects, {info['sequences']} sequences")
    typer.echo(tabulate(sorted(info["per_class"].items(), key=lambda kv: info["classes"].index(kv[0])),
                        headers=["class", "samples"]))
    rows = [[k, f["train"], f["test"], f["test_subjects"], *f["test_per_class"].values()]
            for k, f in enumerate(info["folds"])]
    typer.echo(tabulate(rows, headers=["fold", "train", "test", "test subj", *info["classes"]]))
    if "target" in info:
        typer.echo(f"target {info['target']['dataset']}: {info['target']['total']} samples {info['target']['per_class']}")
    verdict = "LEAKAGE: a subject is in train and test" if info["leakage"] else "no subject in both train and test"
    typer.echo(f"leakage check ({info['split']}): {verdict}")


@app.command()
def run(
    protocols: Annotated[list[Path], typer.Argument(help="Protocol YAML files.")],
    models: Annotated[Optional[str], typer.Option(help="Comma-separated model cards (names or YAML paths); default: every baseline that fits.")] = None,
    out: Annotated[Path, typer.Option(help="Run directory root.")] = Path("runs"),
    root: RootOption = None,
    synthetic: SyntheticOption = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "0",
    folds: Annotated[Optional[str], typer.Option(help="Comma-separated fold indices (default all).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override every recipe's epochs (recorded as a deviation).")] = None,
    speed: Annotated[bool, typer.Option(help="Measure speed and size of each model.")] = True,
    temperature_sweep: Annotated[bool, typer.Option(
        "--temperature-sweep", help="Run distilling cards at every temperature of their card's grid.")] = False,
) -> None:
    """Train and evaluate models under protocols; resumable, writes tables and pictures."""
    from ferbench.cards import load_card
    from ferbench.pipeline import attach_images, load_protocol_data
    from ferbench.protocol import load_protocol
    from ferbench.report import format_mean_std, results_table
    from ferbench.runner import RunOptions, default_cards, expand_temperature_sweeps, run_card

    options = RunOptions(out=out, device=device, seeds=_ints(seeds), folds=_ints(folds) if folds else None,
                         epochs=epochs, speed=speed)
    rows = []
    try:
        for file in protocols:
            protocol = load_protocol(file, roots=parse_roots(root), synthetic=synthetic)
            data = attach_images(load_protocol_data(protocol))
            fold_list = data.folds()
            cards = [load_card(m.strip()) for m in models.split(",")] if models else default_cards(protocol)
            if temperature_sweep:
                cards = expand_temperature_sweeps(cards)
            for card in cards:
                summary = run_card(data, fold_list, card, options)
                metrics = summary.get("metrics", {})
                rows.append({
                    "protocol": protocol.id + (" (synthetic)" if data.synthetic else ""),
                    "model": card.name,
                    "accuracy": format_mean_std(metrics["accuracy"]) if metrics else "-",
                    "macro_f1": format_mean_std(metrics["macro_f1"]) if metrics else "-",
                    "folds": f"{summary['jobs_done']}/{summary['jobs_total']}",
                    "params": summary.get("speed", {}).get("params", "-"),
                    "cpu ms": _ms(summary.get("speed", {})),
                })
    except FerbenchError as exc:
        fail(exc)
    typer.echo(results_table(rows, ["protocol", "model", "accuracy", "macro_f1", "folds", "params", "cpu ms"]))
    typer.echo(f"results, confusion matrices and predictions under {out.resolve()}")


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"`{text}`: expected comma-separated integers") from exc


def _ms(speed: dict) -> str:
    latency = (speed.get("cpu") or {}).get("latency") or {}
    return f"{latency['median_ms']:.2f}" if "median_ms" in latency else "-"


if __name__ == "__main__":
    app()
