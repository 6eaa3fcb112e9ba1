"""The baselines' measured table: size, MACs, CPU latency and accuracy on the synthetic CK+ twin.

Two phases, so the timings can be taken on a quiet machine after the (long) training:

    .venv/bin/python benchmarks/baseline_table.py train [--folds 0,1] [--threads 1] [--cards a,b]
    .venv/bin/python benchmarks/baseline_table.py table            # prints the markdown table

``train`` runs every baseline card under ``protocols/ckplus_7cls_si.yaml`` on the synthetic twin
through ``ferbench.runner.run_card`` (resumable: the run directory is ``runs/baseline_table``),
each neural card with the CPU budget in ``BUDGETS`` (``--epochs`` / ``--repeats`` deviations,
recorded in each summary). ``table`` measures parameters, MiB, MACs and single-thread batch-1
CPU latency (``ferbench.speed.speed_report``) and joins them with the accuracies.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ferbench.cards import list_cards
from ferbench.pipeline import attach_images, load_protocol_data
from ferbench.models.build import build_model
from ferbench.protocol import load_protocol
from ferbench.runner import RunOptions, run_card
from ferbench.speed import speed_report

REPO = Path(__file__).resolve().parents[1]
PROTOCOL = REPO / "protocols" / "ckplus_7cls_si.yaml"
OUT = REPO / "runs" / "baseline_table"

# (epochs, repeats) per card: what a 2-core CPU affords in about an hour for all cards together.
# None = the card's own recipe (the classical cards train in seconds).
BUDGETS: dict[str, tuple[int, int] | None] = {
    "lbp_svm": None, "hog_svm": None,
    "microexpnet_xxs": (20, 8), "microexpnet_xs": (20, 8), "microexpnet_s": (20, 8), "microexpnet_m": (20, 8),
    "emotionnet_nano_a": (20, 1), "emotionnet_nano_b": (20, 1),
    "lopes_cnn": (2, 10), "lopes_cnn_3x3": (2, 10), "plain7cnn": (2, 10), "plain8cnn": (2, 10), "cspp": (2, 10),
    "mobilenetv1_centerloss": (2, 10),
    "ed2l": (1, 5), "ed2l_baseline": (1, 5),
}
NOT_TRAINED = ("inception_v3_teacher: 311 ms per training image on one CPU thread (one epoch over the 8 crops "
               "of a fold is about 36 minutes); the distilling cards (*_kd) need it per fold")


def train(folds: list[int], threads: int, names: list[str]) -> None:
    torch.set_num_threads(threads)
    data = attach_images(load_protocol_data(load_protocol(PROTOCOL, synthetic=True)))
    fold_list = data.folds()
    cards = {card.name: card for card in list_cards()}
    for name in names:
        epochs, repeats = BUDGETS[name] or (None, None)
        options = RunOptions(out=OUT, folds=folds, epochs=epochs, repeats=repeats, speed=False)
        summary = run_card(data, fold_list, cards[name], options)
        print(name, json.dumps(summary.get("metrics", {}).get("accuracy")), flush=True)


def table() -> str:
    rows = ["| model | params | MiB | MMACs | CPU ms (batch 1, 1 thread) | folds | epochs x repeats "
            "| accuracy % (mean ± sd over folds) |",
            "| --- | ---: | ---: | ---: | ---: | --- | --- | --- |"]
    for card in list_cards():
        model = build_model(card, 7)
        speed = speed_report(model, (card.input.channels, *card.input.size)) if isinstance(model, torch.nn.Module) \
            else None
        summary_path = OUT / "ckplus_7cls_si" / card.name / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        accuracy = summary.get("metrics", {}).get("accuracy")
        budget = BUDGETS.get(card.name)
        recipe = card.recipe
        rows.append(" | ".join([
            f"| {card.name}",
            f"{speed['params']:,}" if speed else f"{summary.get('params', 0):,}",
            f"{speed['size_mb']:.2f}" if speed else "-",
            f"{speed['macs'] / 1e6:.1f}" if speed else "-",
            f"{speed['cpu']['latency']['median_ms']:.2f}" if speed else "-",
            f"{summary['jobs_done']}/{summary['jobs_total']}" if summary else "not run",
            (f"{budget[0]} x {budget[1]} (card: {recipe.epochs} x {recipe.repeats})" if budget
             else ("card's recipe" if recipe is None else "-")),
            (f"{100 * accuracy['mean']:.1f}" + (f" ± {100 * accuracy['std']:.1f}" if summary["jobs_done"] > 1 else "")
             + " |") if accuracy else "- |",
        ]))
    return "\n".join(rows) + f"\n\nNot trained: {NOT_TRAINED}."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=["train", "table"])
    parser.add_argument("--folds", default="0,1", help="comma-separated fold indices to train")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for training")
    parser.add_argument("--cards", default=",".join(BUDGETS), help="comma-separated cards to train")
    args = parser.parse_args()
    if args.phase == "train":
        train([int(k) for k in args.folds.split(",")], args.threads, args.cards.split(","))
    else:
        print(table())


if __name__ == "__main__":
    main()
