"""``ferbench synth``, ``validate``, ``inspect`` and ``protocols``: datasets and protocol files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from tabulate import tabulate

from ferbench.cli.common import RootOption, SyntheticOption, app, fail, load_protocols
from ferbench.errors import FerbenchError


@app.command()
def synth(
    layout: Annotated[str, typer.Argument(help="Dataset layout to write, e.g. ckplus, ckplus48, jaffe.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the twin into.")],
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 0,
    shape: Annotated[str, typer.Option(help="paper (real dataset structure) or small.")] = "paper",
) -> None:
    """Write a procedurally generated face dataset in a real dataset's on-disk layout."""
    from ferbench.synth import write_twin

    root = write_twin(layout, out_dir, seed=seed, shape=shape)
    typer.echo(f"wrote synthetic {layout} ({shape}, seed {seed}) to {root}")


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Protocol files to check.")]) -> None:
    """Validate protocol files; exit non-zero on the first invalid one."""
    from ferbench.protocol import load_protocol

    for file in files:
        protocol = load_protocol(file, require_roots=False)
        typer.echo(f"ok  {file}  id={protocol.id}  fingerprint={protocol.fingerprint}")


@app.command()
def inspect(
    protocol_file: Annotated[Path, typer.Argument(help="Protocol YAML.")],
    root: RootOption = None,
    synthetic: SyntheticOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    faces: Annotated[Optional[Path], typer.Option("--faces", help="Also write a PNG contact sheet of the preprocessed faces per side and class (no training).")] = None,
) -> None:
    """Print per-class, per-subject and per-fold counts and the leakage check of a protocol.

    When the protocol skips unreadable or faceless images, every image is read and cropped first
    (as `run` does, into the same cache), so the folds shown are the folds a run trains on.
    """
    from ferbench.pipeline import attach_images, describe, load_protocol_data, may_skip_images
    from ferbench.preprocess.sheet import preprocess_summary, write_protocol_faces

    try:
        protocol = load_protocols([protocol_file], root, synthetic)[0]
        data = load_protocol_data(protocol)
        if may_skip_images(protocol) or faces is not None:
            data = attach_images(data, progress=not as_json)
        info = describe(data)
        if faces is not None:
            write_protocol_faces(faces, data)
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
    for entry in info.get("preprocess", []):
        typer.echo(f"faces {entry['role']} {entry['dataset']}: {preprocess_summary(entry['report'])}")
    if faces is not None:
        typer.echo(f"contact sheet: {faces}")
    if info["leakage"] is None:
        typer.echo("leakage check: not applicable (no subject identities)")
        return
    verdict = "LEAKAGE: a subject is in train and test" if info["leakage"] else "no subject in both train and test"
    typer.echo(f"leakage check ({info['split']}): {verdict}")


@app.command("protocols")
def list_protocols(as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False) -> None:
    """List the shipped protocols (the protocols/ folder, or $FERBENCH_PROTOCOLS)."""
    from ferbench.leaderboard import catalogue, protocols_dir

    entries = catalogue()
    if as_json:
        typer.echo(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    rows = [[e["id"], e["file"], " -> ".join(e["datasets"]), len(e["classes"]), e["frames"], e["split"],
             "; ".join(e["papers"])] for e in entries]
    typer.echo(tabulate(rows, headers=["id", "file", "dataset(s)", "classes", "frames", "split", "papers"]))
    typer.echo(f"{len(entries)} protocols in {protocols_dir()}")


