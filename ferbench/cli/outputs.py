"""``ferbench leaderboard``, ``results``, ``evaluate``, ``export`` and ``predict``: using finished runs and trained models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from tabulate import tabulate

from ferbench.cli.common import (
    RootOption, SyntheticOption, app, check_device, fail, load_protocols, parse_labels, writable_folder,
)
from ferbench.errors import FerbenchError, OptionError


@app.command()
def leaderboard(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run output roots (OUT of `ferbench run`), protocol folders or run folders.")],
    out: Annotated[Path, typer.Option(help="Folder to write the markdown and HTML pages into.")] = Path("leaderboards"),
) -> None:
    """Write markdown and static HTML leaderboard pages from finished runs (never re-runs anything)."""
    from ferbench.leaderboard import write_leaderboard

    pages = write_leaderboard(run_dirs, writable_folder(out, "--out"))
    typer.echo(f"wrote {len(pages)} pages to {out}: {', '.join(p.name for p in pages)}")


@app.command()
def results(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run output roots (OUT of `ferbench run`), protocol folders or run folders.")],
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write the table as CSV to this file.")] = None,
    parquet: Annotated[Optional[Path], typer.Option("--parquet", help="Write the table as Parquet to this file (needs pyarrow).")] = None,
) -> None:
    """One row per (protocol, model, seed, fold, side) of finished runs, with every metric, for pandas."""
    from ferbench.results_table import results_frame, write_results

    if csv is not None and parquet is not None:
        raise OptionError("--parquet", parquet, "give one of --csv and --parquet")
    frame = results_frame(run_dirs)
    count = frame["run"].nunique() if len(frame) else 0
    runs = f"{count} run{'s' * (count != 1)}"
    for fmt, path in (("csv", csv), ("parquet", parquet)):
        if path is not None:
            writable_folder(path.parent, f"--{fmt}")
            write_results(frame, path, fmt)
            typer.echo(f"wrote {len(frame)} rows ({runs}, {len(frame.columns)} columns) to {path}")
            return
    shown = ["protocol", "model", "seed", "fold", "side", "accuracy", "macro_f1", "uar", "train_status"]
    typer.echo(tabulate(frame[shown].values.tolist() if len(frame) else [], headers=shown, floatfmt=".4f"))
    typer.echo(f"{len(frame)} rows from {runs}; --csv FILE or --parquet FILE writes all {len(frame.columns)} columns")


@app.command()
def evaluate(
    protocol_file: Annotated[Path, typer.Argument(help="Protocol YAML.")],
    checkpoint: Annotated[Optional[Path], typer.Option(help="TorchScript .pt, ONNX .onnx, state dict .pt or classical .pkl.")] = None,
    run_dir: Annotated[Optional[Path], typer.Option("--run", help="A finished run directory: re-score every fold model on its own held-out fold.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Card (name, YAML path or timm/<arch>); default: the checkpoint's run directory or ONNX metadata.")] = None,
    labels: Annotated[Optional[str], typer.Option(help="The model's label order, comma-separated canonical names.")] = None,
    out: Annotated[Path, typer.Option(help="Run directory root.")] = Path("runs"),
    name: Annotated[Optional[str], typer.Option(help="Run directory name (default: the card's name).")] = None,
    root: RootOption = None,
    synthetic: SyntheticOption = False,
    allow_missing: Annotated[bool, typer.Option(
        "--allow-missing", help="Protocol classes the model lacks count as wrong instead of failing.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Score a trained model (or every fold model of a run) under a protocol, never on its own training data."""
    from ferbench.checkpoints import load_trained_model
    from ferbench.evaluate import evaluate_checkpoint, evaluate_run
    from ferbench.pipeline import attach_images, load_protocol_data
    from ferbench.report import format_mean_std, results_table

    try:
        if (checkpoint is None) == (run_dir is None):
            raise FerbenchError("pass exactly one of --checkpoint FILE and --run RUN_DIR")
        device = check_device(device)
        protocol = load_protocols([protocol_file], root, synthetic)[0]
        trained = load_trained_model(checkpoint, model, parse_labels(labels)) if checkpoint is not None else None
        data = attach_images(load_protocol_data(protocol))
        if trained is not None:
            summary = evaluate_checkpoint(data, trained, out, name=name, device=device, allow_missing=allow_missing)
        else:
            summary = evaluate_run(data, run_dir, out, name=name, device=device, allow_missing=allow_missing,
                                   model=model, labels=parse_labels(labels))
    except FerbenchError as exc:
        fail(exc)
    metrics, mapping, held_out = summary["metrics"], summary["label_mapping"], summary["held_out"]
    typer.echo(results_table([{
        "protocol": protocol.id + (" (synthetic)" if data.synthetic else ""), "model": summary["model"],
        "train_status": summary["train_status"],
        "accuracy": format_mean_std(metrics["accuracy"]), "macro_f1": format_mean_std(metrics["macro_f1"]),
        "samples": sum(job["scored"] for job in held_out), "removed": sum(job["removed"] for job in held_out),
        "params": summary["params"],
    }], ["protocol", "model", "train_status", "accuracy", "macro_f1", "samples", "removed", "params"]))
    if summary["trained_in"] is not None:
        typer.echo(f"training record: {summary['trained_in']['run']} ({summary['trained_in']['protocol']}); "
                   f"{sum(job['removed'] for job in held_out)} samples of "
                   f"{sum(job['removed_subjects'] for job in held_out)} subjects it trained on were not scored")
    if mapping["missing"]:
        typer.echo(f"classes the model lacks (its {mapping['missing_samples']} samples count as wrong): "
                   f"{', '.join(mapping['missing'])}")
    if mapping["dropped"]:
        typer.echo(f"model classes dropped (mean probability {mapping['dropped_mass']:.3f} removed, rest renormalised): "
                   f"{', '.join(mapping['dropped'])}")
    typer.echo(f"results under {(out / protocol.id / summary['model']).resolve()}")


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="Card of the checkpoint (name, YAML path or timm/<arch>).")],
    checkpoint: Annotated[Path, typer.Option(help="State dict, e.g. a run's seed0/fold0/model.pt.")],
    onnx: Annotated[Path, typer.Option("--onnx", help="ONNX file to write.")],
    labels: Annotated[Optional[str], typer.Option(help="The model's label order (default: the checkpoint's run directory).")] = None,
) -> None:
    """Export a trained model to ONNX and check ONNX Runtime against PyTorch."""
    from ferbench.checkpoints import load_trained_model
    from ferbench.export import TOLERANCE, export_onnx

    trained = load_trained_model(checkpoint, model, parse_labels(labels))
    difference = export_onnx(trained.model, trained.card, onnx, trained.labels, trained.preprocess)
    typer.echo(f"wrote {onnx} (opset 17, dynamic batch, labels {','.join(trained.labels)})")
    typer.echo(f"ONNX Runtime vs PyTorch: max abs logit difference {difference:.2e} (< {TOLERANCE:g})")


@app.command()
def predict(
    inputs: Annotated[list[Path], typer.Argument(help="Images, videos or folders of them.")],
    checkpoint: Annotated[Path, typer.Option(help="TorchScript .pt, ONNX .onnx, state dict .pt or classical .pkl.")],
    model: Annotated[Optional[str], typer.Option(help="Card (name or YAML path); default: the checkpoint's run directory or ONNX metadata.")] = None,
    labels: Annotated[Optional[str], typer.Option(help="The model's label order (default: the run directory or ONNX metadata).")] = None,
    annotate: Annotated[Optional[Path], typer.Option(help="Folder for copies of the pictures with boxes and labels drawn.")] = None,
    face: Annotated[str, typer.Option(help="auto (as the model was trained: its protocol's face method, when recorded; "
                                           "else haar), align (eye centres onto the protocol's template), "
                                           "haar (largest Haar face) or none (the whole picture).")] = "auto",
    every: Annotated[int, typer.Option(min=1, help="Video: predict every N-th frame.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Print expression probabilities for the face in each image (or video frame)."""
    from ferbench.checkpoints import load_trained_model
    from ferbench.predict import PREDICT_FACE_METHODS, describe_face, predict_paths
    from ferbench.jobs import resolve_device

    if face not in PREDICT_FACE_METHODS:
        raise OptionError("--face", face, f"choose one of {', '.join(PREDICT_FACE_METHODS)}")
    device = check_device(device)
    if annotate is not None:
        writable_folder(annotate, "--annotate")
    trained = load_trained_model(checkpoint, model, parse_labels(labels))
    typer.echo(describe_face(face, trained))
    results = predict_paths(inputs, trained, face, every, annotate, resolve_device(device))
    rows = [[r.source, r.method if r.top else "no face", r.where, *(r.top or ("-", None)),
             *(r.probabilities.get(label) for label in trained.labels)] for r in results]
    typer.echo(tabulate(rows, headers=["file", "face", "box x y w h | eyes x,y x,y", "top", "p", *trained.labels],
                        floatfmt=".3f"))
    if annotate is not None:
        typer.echo(f"annotated pictures in {annotate}")

