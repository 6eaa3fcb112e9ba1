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
    faces: Annotated[Optional[Path], typer.Option("--faces", help="Also write a PNG contact sheet of the preprocessed faces per side and class (no training).")] = None,
) -> None:
    """Print per-class, per-subject and per-fold counts and the leakage check of a protocol."""
    from ferbench.pipeline import describe, load_protocol_data
    from ferbench.protocol import load_protocol

    try:
        protocol = load_protocol(protocol_file, roots=parse_roots(root), synthetic=synthetic)
        info = describe(load_protocol_data(protocol))
        if faces is not None:
            from ferbench.pipeline import attach_images
            from ferbench.preprocess.sheet import write_protocol_faces

            write_protocol_faces(faces, attach_images(load_protocol_data(protocol)))
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
    repeats: Annotated[Optional[int], typer.Option(help="Override every recipe's passes per epoch (recorded as a deviation).")] = None,
    speed: Annotated[bool, typer.Option(help="Measure speed and size of each model.")] = True,
    temperature_sweep: Annotated[bool, typer.Option(
        "--temperature-sweep", help="Run distilling cards at every temperature of their card's grid.")] = False,
    jobs: Annotated[int, typer.Option(min=1, help="Train this many jobs at once in local processes (GPUs round-robin).")] = 1,
    executor: Annotated[str, typer.Option(help="local, or dask (with --scheduler).")] = "local",
    scheduler: Annotated[Optional[str], typer.Option(help="Dask scheduler address, e.g. tcp://10.0.0.5:8786.")] = None,
) -> None:
    """Train and evaluate models under protocols; resumable, writes tables and pictures."""
    from ferbench.cards import load_card
    from ferbench.executors import make_executor
    from ferbench.pipeline import attach_images, load_protocol_data
    from ferbench.protocol import load_protocol
    from ferbench.report import format_mean_std, results_table
    from ferbench.runner import RunOptions, default_cards, expand_temperature_sweeps, run_cards

    options = RunOptions(out=out, device=device, seeds=_ints(seeds), folds=_ints(folds) if folds else None,
                         epochs=epochs, repeats=repeats, speed=speed)
    rows = []
    try:
        runner = make_executor(executor, jobs, scheduler)
        for file in protocols:
            protocol = load_protocol(file, roots=parse_roots(root), synthetic=synthetic)
            data = attach_images(load_protocol_data(protocol))
            cards = [load_card(m.strip()) for m in models.split(",")] if models else default_cards(protocol)
            if temperature_sweep:
                cards = expand_temperature_sweeps(cards)
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


@app.command("protocols")
def list_protocols(as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False) -> None:
    """List the shipped protocols (the protocols/ folder, or $FERBENCH_PROTOCOLS)."""
    from ferbench.leaderboard import catalogue, protocols_dir

    try:
        entries = catalogue()
    except FerbenchError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    rows = [[e["id"], e["file"], " -> ".join(e["datasets"]), len(e["classes"]), e["frames"], e["split"],
             "; ".join(e["papers"])] for e in entries]
    typer.echo(tabulate(rows, headers=["id", "file", "dataset(s)", "classes", "frames", "split", "papers"]))
    typer.echo(f"{len(entries)} protocols in {protocols_dir()}")


@app.command()
def leaderboard(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run output roots (OUT of `ferbench run`), protocol folders or run folders.")],
    out: Annotated[Path, typer.Option(help="Folder to write the markdown pages into.")] = Path("leaderboards"),
) -> None:
    """Write markdown leaderboard pages from finished runs (never re-runs anything)."""
    from ferbench.leaderboard import write_leaderboard

    try:
        pages = write_leaderboard(run_dirs, out)
    except FerbenchError as exc:
        fail(exc)
    typer.echo(f"wrote {len(pages)} pages to {out}: {', '.join(p.name for p in pages)}")


@app.command()
def evaluate(
    protocol_file: Annotated[Path, typer.Argument(help="Protocol YAML.")],
    checkpoint: Annotated[Path, typer.Option(help="TorchScript .pt, ONNX .onnx, state dict .pt or classical .pkl.")],
    model: Annotated[Optional[str], typer.Option(help="Card (name, YAML path or timm/<arch>); default: the checkpoint's run directory or ONNX metadata.")] = None,
    labels: Annotated[Optional[str], typer.Option(help="The model's label order, comma-separated canonical names.")] = None,
    out: Annotated[Path, typer.Option(help="Run directory root.")] = Path("runs"),
    name: Annotated[Optional[str], typer.Option(help="Run directory name (default: the card's name).")] = None,
    root: RootOption = None,
    synthetic: SyntheticOption = False,
    allow_missing: Annotated[bool, typer.Option(
        "--allow-missing", help="Protocol classes the model lacks count as wrong instead of failing.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Evaluate a trained model on every test sample of a protocol, without training."""
    from ferbench.evaluate import evaluate_checkpoint, load_trained_model
    from ferbench.pipeline import attach_images, load_protocol_data
    from ferbench.protocol import load_protocol
    from ferbench.report import format_mean_std, results_table

    try:
        trained = load_trained_model(checkpoint, model, _labels(labels))
        protocol = load_protocol(protocol_file, roots=parse_roots(root), synthetic=synthetic)
        data = attach_images(load_protocol_data(protocol))
        summary = evaluate_checkpoint(data, trained, out, name=name, device=device, allow_missing=allow_missing)
    except FerbenchError as exc:
        fail(exc)
    metrics, mapping = summary["metrics"], summary["label_mapping"]
    typer.echo(results_table([{
        "protocol": protocol.id + (" (synthetic)" if data.synthetic else ""), "model": summary["model"],
        "accuracy": format_mean_std(metrics["accuracy"]), "macro_f1": format_mean_std(metrics["macro_f1"]),
        "samples": sum(map(sum, summary["confusion"])), "params": summary["params"],
    }], ["protocol", "model", "accuracy", "macro_f1", "samples", "params"]))
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
    from ferbench.evaluate import load_trained_model
    from ferbench.export import TOLERANCE, export_onnx

    try:
        trained = load_trained_model(checkpoint, model, _labels(labels))
        difference = export_onnx(trained.model, trained.card, onnx, trained.labels, trained.preprocess)
    except FerbenchError as exc:
        fail(exc)
    typer.echo(f"wrote {onnx} (opset 17, dynamic batch, labels {','.join(trained.labels)})")
    typer.echo(f"ONNX Runtime vs PyTorch: max abs logit difference {difference:.2e} (< {TOLERANCE:g})")


@app.command()
def predict(
    inputs: Annotated[list[Path], typer.Argument(help="Images, videos or folders of them.")],
    checkpoint: Annotated[Path, typer.Option(help="TorchScript .pt, ONNX .onnx, state dict .pt or classical .pkl.")],
    model: Annotated[Optional[str], typer.Option(help="Card (name or YAML path); default: the checkpoint's run directory or ONNX metadata.")] = None,
    labels: Annotated[Optional[str], typer.Option(help="The model's label order (default: the run directory or ONNX metadata).")] = None,
    annotate: Annotated[Optional[Path], typer.Option(help="Folder for copies of the pictures with boxes and labels drawn.")] = None,
    face: Annotated[str, typer.Option(help="haar (largest Haar face) or none (the whole picture).")] = "haar",
    every: Annotated[int, typer.Option(min=1, help="Video: predict every N-th frame.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Print expression probabilities for the face in each image (or video frame)."""
    from ferbench.evaluate import load_trained_model
    from ferbench.predict import FACE_METHODS, predict_paths
    from ferbench.jobs import resolve_device

    if face not in FACE_METHODS:
        raise typer.BadParameter(f"`{face}`: choose one of {', '.join(FACE_METHODS)}", param_hint="--face")
    try:
        trained = load_trained_model(checkpoint, model, _labels(labels))
        results = predict_paths(inputs, trained, face, every, annotate, resolve_device(device))
    except FerbenchError as exc:
        fail(exc)
    rows = [[r.source, " ".join(map(str, r.box)) if r.box else "no face", *(r.top or ("-", None)),
             *(r.probabilities.get(label) for label in trained.labels)] for r in results]
    typer.echo(tabulate(rows, headers=["file", "face x y w h", "top", "p", *trained.labels], floatfmt=".3f"))
    if annotate is not None:
        typer.echo(f"annotated pictures in {annotate}")


@app.command()
def speed(
    models: Annotated[Optional[str], typer.Option(help="Comma-separated cards (names, YAML paths or timm/<arch>); default: every baseline.")] = None,
    device: Annotated[str, typer.Option(help="cpu, or cuda to add GPU latency.")] = "cpu",
    onnx: Annotated[bool, typer.Option("--onnx", help="Add ONNX Runtime CPU latency (1 intra-op thread).")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Few warm-up passes and repeats (rough timings).")] = False,
    classes: Annotated[int, typer.Option(min=2, help="Number of output classes.")] = 7,
) -> None:
    """Parameters, size, MACs and batch-1 latency of untrained models (PyTorch, optionally ONNX Runtime)."""
    import torch

    from ferbench.cards import list_cards, load_card
    from ferbench.plugins import build_model
    from ferbench.speed import speed_report

    rows, classical = [], []
    try:
        cards = [load_card(m.strip()) for m in models.split(",")] if models else list_cards()
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
    except FerbenchError as exc:
        fail(exc)
    headers = ["model", "params", "MiB", "MMACs", "cpu ms (1 thread)"] + ["onnxruntime ms (1 thread)"] * onnx
    typer.echo(tabulate(rows, headers=headers + [f"{device} ms"] * (device != "cpu"), disable_numparse=True))
    typer.echo(f"batch 1, {'quick: few repeats' if quick else 'median of 100 passes after 10 warm-up'}, {classes} classes")
    if classical:
        typer.echo(f"not timed (classical models predict only after training; `ferbench run` times them): "
                   f"{', '.join(classical)}")


def _labels(text: str | None) -> tuple[str, ...] | None:
    return tuple(t.strip() for t in text.split(",") if t.strip()) if text else None


if __name__ == "__main__":
    app()
