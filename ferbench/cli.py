"""The ``ferbench`` command: thin wrappers that parse arguments, call the library and print.

A user's mistake ends a command with one line, ``error: ...``, and exit status 2: every
:class:`~ferbench.errors.FerbenchError` (bad options included, as
:class:`~ferbench.errors.OptionError`) and the OS errors a user can fix (disk full, read-only or
forbidden path, a file where a folder belongs) are caught in one place, :class:`Commands`. Any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from tabulate import tabulate
from typer.core import TyperGroup

from ferbench.errors import FerbenchError, OptionError, UnknownName, did_you_mean

if TYPE_CHECKING:
    from ferbench.protocol import Protocol
    from ferbench.splits import Fold

OS_PROBLEMS = {
    errno.ENOSPC: "disk full while writing {path}; finished jobs are kept, free some space and rerun to continue",
    errno.EROFS: "{path}: read-only file system",
    errno.EACCES: "{path}: permission denied",
    errno.EPERM: "{path}: operation not permitted",
    errno.ENOTDIR: "{path}: a folder on this path is a file",
    errno.EEXIST: "{path}: exists and is a file, not a folder",
    errno.EISDIR: "{path}: is a folder, not a file",
}
"""OS errors a user can fix, by errno, as the one line the CLI prints; other OS errors are bugs."""


def fail(error: Exception | str) -> None:
    """Print a ferbench error without a traceback and exit with status 2."""
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


class Commands(TyperGroup):
    """The command group: runs a command, turning a user's mistake into one line (module docstring)."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FerbenchError as err:
            fail(err)
        except OSError as err:
            if err.errno not in OS_PROBLEMS:
                raise
            fail(OS_PROBLEMS[err.errno].format(path=err.filename or "a file"))


app = typer.Typer(cls=Commands, add_completion=False, no_args_is_help=True,
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


def load_protocols(files: list[Path], root: list[str] | None, synthetic: bool) -> list[Protocol]:
    """Load every protocol file with the ``--root`` overrides; a ``--root`` naming a dataset that
    none of them reads is an error (a misspelt name would otherwise be ignored)."""
    from ferbench.data.registry import dataset_names
    from ferbench.protocol import load_protocol

    roots = parse_roots(root)
    for name, path in roots.items():
        if name not in dataset_names():
            raise OptionError("--root", f"{name}={path}", str(UnknownName("dataset", name, dataset_names())))
    protocols = [load_protocol(file, roots=roots, synthetic=synthetic) for file in files]
    used = sorted({side.dataset.name for protocol in protocols for side in protocol.sides()})
    for name, path in roots.items():
        if name not in used:
            ids = ", ".join(f"`{protocol.id}`" for protocol in protocols)
            what = f"protocol {ids} reads" if len(protocols) == 1 else f"protocols {ids} read"
            raise OptionError("--root", f"{name}={path}", f"{what} no dataset `{name}`{did_you_mean(name, used)}; "
                                                           f"datasets read: {', '.join(used)}")
    return protocols


def parse_indices(text: str, option: str) -> list[int]:
    """``"0,3"`` -> ``[0, 3]``: non-negative integers, each given once (``--seeds``, ``--folds``)."""
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise OptionError(option, text, "expected comma-separated integers, e.g. 0,1,2") from None
    if not values:
        raise OptionError(option, text, "names no index; expected comma-separated integers, e.g. 0,1,2")
    if min(values) < 0:
        raise OptionError(option, text, f"{min(values)} is negative; indices count from 0")
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise OptionError(option, text, f"{repeated[0]} is given twice; give each once")
    return values


def parse_cards(text: str | None) -> list[str] | None:
    """The card names or paths of ``--models`` (None when not given; naming none is an error)."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise OptionError("--models", text, "names no model card; give card names or YAML paths, comma-separated")
    return names


def check_device(device: str) -> str:
    """``device`` when it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; OptionError otherwise."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise OptionError("--device", device, f"unknown device{did_you_mean(device, ['auto', 'cpu', 'cuda'])}; "
                                              "choose auto, cpu, cuda or cuda:N")
    return device


def writable_folder(path: Path, option: str) -> Path:
    """``path`` when it is, or can become, a folder this process may write into; OptionError otherwise."""
    absolute = path.absolute()
    existing = next(p for p in (absolute, *absolute.parents) if p.exists())
    if not existing.is_dir():
        raise OptionError(option, path, f"{existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OptionError(option, path, f"cannot write into {existing} (read-only or permission denied)")
    return path


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
    from ferbench.protocol import load_protocol

    try:
        protocol = load_protocol(protocol_file, roots=parse_roots(root), synthetic=synthetic)
        data = load_protocol_data(protocol)
        if may_skip_images(protocol) or faces is not None:
            data = attach_images(data, progress=not as_json)
        info = describe(data)
        if faces is not None:
            from ferbench.preprocess.sheet import write_protocol_faces

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
    if info["leakage"] is None:
        typer.echo("leakage check: not applicable (no subject identities)")
        return
    verdict = "LEAKAGE: a subject is in train and test" if info["leakage"] else "no subject in both train and test"
    typer.echo(f"leakage check ({info['split']}): {verdict}")


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
    import os
    import sys

    from ferbench.jobs import resolve_device
    from ferbench.planner import CONFIRM_SECONDS, format_duration, pending_folds, plan_folds, totals
    from ferbench.runner import apply_deviations

    selected = pending_folds(protocol, folds, cards, options.seeds, options.folds, options.out)
    if not selected:
        return
    rows = plan_folds(protocol, folds, cards, len(options.seeds), selected, resolve_device(options.device),
                      lambda card: apply_deviations(card, options)[0])
    total = totals(rows)
    typer.echo(f"plan {protocol.id}: {total['jobs']} jobs, {total['image_passes']:,} image passes, "
               f"{total['steps']:,} steps, about {format_duration(total['seconds'])} on {options.device}")
    limit = float(os.environ.get("FERBENCH_CONFIRM_HOURS", CONFIRM_SECONDS / 3600)) * 3600
    if yes or total["seconds"] is None or total["seconds"] <= limit:
        return
    question = f"the estimate exceeds {format_duration(limit)}; start anyway?"
    if not sys.stdin.isatty():
        raise FerbenchError(f"{protocol.id}: {question.split(';')[0]} (see `ferbench plan`); pass --yes to start, "
                            "or shorten the run with --models, --folds, --epochs")
    if not typer.confirm(question):
        raise typer.Exit(1)


def check_folds(selected: list[int] | None, folds: list[Fold], protocol_id: str) -> None:
    """Refuse a ``--folds`` index that ``folds`` (a protocol's folds) lacks."""
    indices = [fold.index for fold in folds]
    missing = [k for k in selected or [] if k not in indices]
    if missing:
        has = f"folds {indices[0]}-{indices[-1]}" if len(indices) > 1 else f"only fold {indices[0]}"
        raise OptionError("--folds", ",".join(map(str, selected)),
                          f"protocol `{protocol_id}` has no fold {missing[0]}; it has {has}")


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
              r.epochs, f"{r.image_passes:,}", f"{r.steps:,}", format_duration(r.seconds)] for r in rows]
    table.append(["total", "", total["jobs"], "", "", f"{total['image_passes']:,}", f"{total['steps']:,}",
                  format_duration(total["seconds"])])
    typer.echo(tabulate(table, headers=["protocol", "model", "jobs", "images/epoch", "epochs", "image passes",
                                        "steps", f"estimate ({device})"], disable_numparse=True))
    typer.echo("estimate: training steps only, from a short calibration per model (see ferbench.planner)")


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

    entries = catalogue()
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
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Score a trained model (or every fold model of a run) under a protocol, never on its own training data."""
    from ferbench.checkpoints import load_trained_model
    from ferbench.evaluate import evaluate_checkpoint, evaluate_run
    from ferbench.pipeline import attach_images, load_protocol_data
    from ferbench.protocol import load_protocol
    from ferbench.report import format_mean_std, results_table

    try:
        if (checkpoint is None) == (run_dir is None):
            raise FerbenchError("pass exactly one of --checkpoint FILE and --run RUN_DIR")
        trained = load_trained_model(checkpoint, model, _labels(labels)) if checkpoint is not None else None
        protocol = load_protocol(protocol_file, roots=parse_roots(root), synthetic=synthetic)
        data = attach_images(load_protocol_data(protocol))
        if trained is not None:
            summary = evaluate_checkpoint(data, trained, out, name=name, device=device, allow_missing=allow_missing)
        else:
            summary = evaluate_run(data, run_dir, out, name=name, device=device, allow_missing=allow_missing,
                                   model=model, labels=_labels(labels))
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

    trained = load_trained_model(checkpoint, model, _labels(labels))
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
    face: Annotated[str, typer.Option(help="haar (largest Haar face) or none (the whole picture).")] = "haar",
    every: Annotated[int, typer.Option(min=1, help="Video: predict every N-th frame.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Print expression probabilities for the face in each image (or video frame)."""
    from ferbench.checkpoints import load_trained_model
    from ferbench.predict import PREDICT_FACE_METHODS, predict_paths
    from ferbench.jobs import resolve_device

    if face not in PREDICT_FACE_METHODS:
        raise OptionError("--face", face, f"choose one of {', '.join(PREDICT_FACE_METHODS)}")
    device = check_device(device)
    if annotate is not None:
        writable_folder(annotate, "--annotate")
    trained = load_trained_model(checkpoint, model, _labels(labels))
    results = predict_paths(inputs, trained, face, every, annotate, resolve_device(device))
    rows = [[r.source, " ".join(map(str, r.box)) if r.box else "no face", *(r.top or ("-", None)),
             *(r.probabilities.get(label) for label in trained.labels)] for r in results]
    typer.echo(tabulate(rows, headers=["file", "face x y w h", "top", "p", *trained.labels], floatfmt=".3f"))
    if annotate is not None:
        typer.echo(f"annotated pictures in {annotate}")


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


def _labels(text: str | None) -> tuple[str, ...] | None:
    return tuple(t.strip() for t in text.split(",") if t.strip()) if text else None


if __name__ == "__main__":
    app()
