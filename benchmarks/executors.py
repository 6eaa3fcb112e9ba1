"""Jobs per hour on the executors: one process vs ``--jobs 2`` local processes vs a Dask cluster.

The same jobs (a card under ``ckplus_7cls_si`` on the synthetic twin, every fold of seed 0)
run, in one invocation, into fresh run directories with each executor; the script prints wall
seconds and jobs per hour of each, the ``--jobs 2`` speed-up over one process, and the Dask
path's overhead over local processes with the same worker count (a ``LocalCluster`` of
``--workers`` processes x 1 thread on 127.0.0.1), including scattering the data once; the
cluster's own start is printed apart (a cluster is started once and serves many runs), while
the local pool's start-up (spawning workers, importing torch, sending the data) is timed.

    .venv/bin/python benchmarks/executors.py [--card microexpnet_xxs] [--epochs 2] [--shape small]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ferbench.cards import load_card
from ferbench.executors import DaskExecutor, ProcessExecutor, SequentialExecutor
from ferbench.pipeline import attach_images, load_protocol_data
from ferbench.protocol import load_protocol
from ferbench.runner import RunOptions, run_cards

PROTOCOL = Path(__file__).resolve().parents[1] / "protocols" / "ckplus_7cls_si.yaml"


def timed(data, card, executor, epochs: int) -> float:
    """Wall seconds to run every fold of seed 0 into a fresh run directory."""
    with tempfile.TemporaryDirectory() as out:
        options = RunOptions(out=Path(out), epochs=epochs, progress=False, speed=False)
        start = time.perf_counter()
        run_cards(data, data.folds(), [card], options, executor)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", default="microexpnet_xxs")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shape", choices=["small", "paper"], default="small", help="synthetic twin shape")
    args = parser.parse_args()

    from distributed import LocalCluster

    root = "synthetic" if args.shape == "paper" else "synthetic:small"
    data = attach_images(load_protocol_data(load_protocol(PROTOCOL, roots={"ckplus": root})), progress=False)
    card = load_card(args.card)
    jobs = len(data.folds())
    seconds = {"one process": timed(data, card, SequentialExecutor(), args.epochs),
               f"--jobs {args.workers}": timed(data, card, ProcessExecutor(args.workers), args.epochs)}
    start = time.perf_counter()
    with LocalCluster(host="127.0.0.1", n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        cluster_start = time.perf_counter() - start
        seconds[f"Dask LocalCluster {args.workers} x 1 thread"] = timed(
            data, card, DaskExecutor(cluster.scheduler_address), args.epochs)
    print(f"{jobs} jobs: {card.name}, --epochs {args.epochs}, {len(data.samples)} images ({args.shape} twin)")
    for name, value in seconds.items():
        print(f"{name:32s} {value:8.1f} s  {3600 * jobs / value:8.0f} jobs/hour")
    names = list(seconds)
    print(f"speed-up --jobs {args.workers} over one process: {seconds[names[0]] / seconds[names[1]]:.2f}x")
    print(f"Dask time / local processes time: {seconds[names[2]] / seconds[names[1]]:.2f} "
          f"(cluster start, not timed above: {cluster_start:.1f} s; local process start-up is timed)")


if __name__ == "__main__":
    main()
