"""One device check: the figures issue #15 asks of a GPU machine, written to one JSON file.

    .venv/bin/python benchmarks/device_check.py --out device_check.json          # cuda if available
    .venv/bin/python benchmarks/device_check.py --device cpu --reduced --out x.json   # < 2 min on CPU

Sections of the JSON:
  device            the device name, torch version, CPU threads, ``reduced``
  stacked           per card (MicroExpNet-XXS, EmotionNet Nano-B, Lopes CNN): K folds trained one by
                    one vs stacked (``fit_stacked``), images/s and the speed-up; a card the stacked
                    trainer refuses gets its refusal reason and only the one-by-one figure
  bare_loop         ferbench's ``fit`` vs a minimal loop on the same device (images/s, ratio)
  autocast          the minimal loop with bf16 autocast on and off (CUDA only)
  plan              the planner's estimate of ``ckplus_7cls_si`` with every fitting baseline at its
                    full recipe (on the synthetic twin's folds), per model and in total
  objectives        per objective with state or extra terms (center_loss: MobileNet + center loss,
                    am_softmax: the ED²L baseline, ed2l: ED²L, distillation: MicroExpNet-XXS-KD with
                    one untrained Inception-v3 teacher): the ``stacked`` figures plus ``teacher``,
                    ``batch_size`` and the training steps of one round, ``steps_one_by_one`` and
                    ``steps_stacked``
  section_seconds   seconds per section; ``seconds`` the total
Rounds alternate and the fastest of each counts (machines are noisy: read ratios, not absolutes).
For cards with dropout (MobileNet, MicroExpNet) ``largest_weight_difference`` is not float noise:
stacked training draws other dropout masks (ferbench.training.stacked).
The file is rewritten after each section, so a run cut short keeps the sections it finished.

Sizes. Full (CUDA): stacked 10 folds of 900-873 images x 2 epochs x 2 rounds (1,972 one-by-one
and 208 stacked steps); bare loop 3,600 images x 3 epochs x 3 runs x 2 rounds (2,034 steps);
objectives 10 folds of 640-613 images x 1 epoch x 2 rounds at the cards' batch of 64 (800
one-by-one and 80 stacked steps, 400 teacher passes at 224 x 224): about a fifth more steps than
the rest, of heavier nets (ED²L 437 MMACs, Inception-v3 2.8 GMACs per image), sized to keep the
whole check within about 6 minutes on a modern GPU (plus twin generation; not measured yet).
Reduced (CPU): 2 folds of 32 images x 1 epoch; objectives 2 folds of 6 and 3 images at batch 4,
teacher MicroExpNet-XXS (Inception-v3 takes minutes on a CPU): a check that it runs, its
figures dominated by warm-up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fold_batching import random_folds, time_folds  # noqa: E402

from ferbench.cards import load_card  # noqa: E402
from ferbench.io import atomic_write_json  # noqa: E402
from ferbench.models.build import build_model  # noqa: E402
from ferbench.training import fit, seed_everything, teacher_forward  # noqa: E402

CARDS = ("microexpnet_xxs", "emotionnet_nano_b", "lopes_cnn")
OBJECTIVE_CARDS = {"center_loss": "mobilenetv1_centerloss", "am_softmax": "ed2l_baseline", "ed2l": "ed2l",
                   "distillation": "microexpnet_xxs_kd"}
"""A bundled card for each objective whose stacked form keeps state or extra terms
(``ferbench.training.stacked_objectives``)."""
REDUCED_TEACHER = "microexpnet_xxs"
"""The distillation teacher of the reduced version; the card's own (Inception-v3 at 224 x 224)
takes minutes per fold on a CPU."""


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(card, images: torch.Tensor, labels: torch.Tensor, device: torch.device, epochs: int,
              autocast: bool) -> float:
    """Seconds of a minimal Adam + cross-entropy loop over pre-converted float inputs on ``device``."""
    seed_everything(0)
    model = build_model(card, int(labels.max()) + 1).to(device).train()
    size = tuple(card.input.size)
    x_all = F.interpolate(images[:, None].float().to(device), size=size, mode="bilinear", antialias=True) / 255.0
    x_all = x_all.repeat(1, card.input.channels, 1, 1)
    y_all = labels.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(epochs):
        for index in torch.randperm(len(x_all), device=device).split(card.recipe.batch_size):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = F.cross_entropy(model(x_all[index]).float(), y_all[index])
            loss.backward()
            optimizer.step()
    synchronize(device)
    return time.perf_counter() - start


def ferbench_fit(card, images, labels, device) -> float:
    seed_everything(0)
    model = build_model(card, int(labels.max()) + 1)
    synchronize(device)
    start = time.perf_counter()
    fit(model, card, images, labels, device, 0, progress=False)
    synchronize(device)
    return time.perf_counter() - start


def bare_loop_section(device: torch.device, epochs: int, images_n: int, rounds: int) -> dict:
    card = load_card("emotionnet_nano_b").with_epochs(epochs)
    card = card.model_copy(update={"recipe": card.recipe.model_copy(update={"augment": ()})})
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (images_n, 64, 64), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 7, (images_n,), generator=g)
    cuda = device.type == "cuda"
    ours, bare, bare_amp = [], [], []
    for _ in range(rounds):
        ours.append(ferbench_fit(card, images, labels, device))
        bare.append(bare_loop(card, images, labels, device, epochs, autocast=cuda))
        if cuda:
            bare_amp.append(bare_loop(card, images, labels, device, epochs, autocast=False))
    seen = images_n * epochs
    result = {"card": card.name, "images": images_n, "epochs": epochs, "augment": "none",
              "ferbench_img_s": seen / min(ours), "bare_img_s": seen / min(bare),
              "ratio_ferbench_over_bare": min(bare) / min(ours),
              "note": "bare loop uses bf16 autocast on CUDA, as ferbench's fit does"}
    autocast = None
    if cuda:
        autocast = {"bf16_img_s": seen / min(bare), "fp32_img_s": seen / min(bare_amp),
                    "speedup_bf16": min(bare_amp) / min(bare)}
    return {"bare_loop": result, "autocast": autocast}


def stacked_section(device: torch.device, folds_k: int, images_n: int, epochs: int, rounds: int) -> dict:
    out = {}
    for name in CARDS:
        card = load_card(name).with_epochs(epochs).with_repeats(1)
        folds = random_folds(folds_k, images_n, 96, 7)
        out[name] = time_folds(card, folds, device, 7, rounds)
    return out


def fit_steps(images: int, batch_size: int) -> int:
    """Batches in one epoch of ``fit`` over ``images`` (repeats 1): a last batch of one image is dropped."""
    full, rest = divmod(images, batch_size)
    return full + (rest > 1 or (rest == 1 and full == 0))


def objectives_section(device: torch.device, folds_k: int, images_n: int, epochs: int, rounds: int,
                       teacher: str | None, batch_size: int | None) -> dict:
    """Stacked vs one by one (``time_folds``) for each card of :data:`OBJECTIVE_CARDS` (at
    ``batch_size``, else the card's), with the training steps of one round (one by one: every
    fold's batches; stacked: the largest fold's). The distilling card gets one untrained teacher
    (``teacher``, else its card's), shared by all folds: its weights do not change the timing,
    and both paths call it once per fold and batch."""
    out = {}
    for objective, name in OBJECTIVE_CARDS.items():
        card = load_card(name).with_epochs(epochs).with_repeats(1)
        if batch_size is not None:
            card = card.model_copy(update={"recipe": card.recipe.model_copy(update={"batch_size": batch_size})})
        folds = random_folds(folds_k, images_n, 96, 7)
        teachers = None
        if card.teacher is not None:
            teacher_card = load_card(teacher or card.teacher)
            seed_everything(0)
            forward = teacher_forward(build_model(teacher_card, 7).to(device), teacher_card, card)
            teachers = [forward] * folds_k
        batches = [fit_steps(len(labels), card.recipe.batch_size) * epochs for _, labels in folds]
        out[objective] = {**time_folds(card, folds, device, 7, rounds, teachers),
                          "teacher": teacher_card.name if teachers else None, "batch_size": card.recipe.batch_size,
                          "steps_one_by_one": sum(batches), "steps_stacked": max(batches)}
    return out


def plan_section(device: torch.device, calibrate: bool, models: list[str] | None) -> dict:
    from ferbench.pipeline import load_protocol_data
    from ferbench.planner import format_duration, plan_folds, rows_as_dicts, totals
    from ferbench.protocol import load_protocol
    from ferbench.runner import default_cards

    protocol = load_protocol(Path(__file__).resolve().parents[1] / "protocols" / "ckplus_7cls_si.yaml", synthetic=True)
    cards = [load_card(m) for m in models] if models else default_cards(protocol)
    rows = plan_folds(protocol, load_protocol_data(protocol).folds(), cards, 1, None, device if calibrate else None)
    total = totals(rows)
    dominant = sorted((r for r in rows if r.seconds), key=lambda r: -r.seconds)[:3]
    return {"protocol": protocol.id, "calibrated": calibrate, "rows": rows_as_dicts(rows), "total": total,
            "total_readable": format_duration(total["seconds"]),
            "dominant": [{"model": r.model, "share": r.seconds / total["seconds"]} for r in dominant]
            if total["seconds"] else []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--reduced", action="store_true", help="the small CPU version (default without CUDA)")
    parser.add_argument("--out", type=Path, default=Path("device_check.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    reduced = args.reduced or device.type != "cuda"
    sizes = dict(folds_k=2, images_n=32, epochs=1, rounds=1) if reduced else dict(folds_k=10, images_n=900,
                                                                                  epochs=2, rounds=2)
    objective_sizes = dict(folds_k=2, images_n=6, epochs=1, rounds=1, teacher=REDUCED_TEACHER, batch_size=4) \
        if reduced else dict(folds_k=10, images_n=640, epochs=1, rounds=2, teacher=None, batch_size=None)
    report: dict = {"device": {
        "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "cpu_threads": torch.get_num_threads(), "reduced": reduced},
        "section_seconds": {}}
    started = time.perf_counter()
    sections = (
        ("stacked", lambda: {"stacked": stacked_section(device, **sizes)}),
        ("bare_loop", lambda: bare_loop_section(device, sizes["epochs"] + 1, (2 if reduced else 4) * sizes["images_n"],
                                                sizes["rounds"])),
        ("plan", lambda: {"plan": plan_section(device, calibrate=True,
                                               models=list(CARDS) + ["hog_svm"] if reduced else None)}),
        ("objectives", lambda: {"objectives": objectives_section(device, **objective_sizes)}),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name, measure in sections:  # the file is rewritten after each section: a timeout keeps the earlier ones
        start = time.perf_counter()
        report.update(measure())
        report["section_seconds"][name] = time.perf_counter() - start
        report["seconds"] = time.perf_counter() - started
        atomic_write_json(args.out, report)  # atomic: a kill mid-write leaves the previous sections
    print(json.dumps({k: report[k] for k in ("device", "section_seconds", "seconds")}), f"-> {args.out}")


if __name__ == "__main__":
    main()
