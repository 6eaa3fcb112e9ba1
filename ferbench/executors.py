"""Where training jobs run: in this process, in a pool of local processes, or on a Dask cluster.

Every executor has one method, ``run(data, jobs, device)``, which computes each job with
:func:`ferbench.jobs.compute_job` (or, stacked, ``compute_jobs_stacked``; both refuse a fold
whose training and test images overlap, wherever they run) and yields ``(job.key, files)`` as
jobs finish (in any order). Executors never write files: the runner writes what they yield, so the run directory
has the same layout whichever executor ran it. Each job seeds itself (``ferbench.training``),
so its files are identical under every executor given the same device, the same number of
torch threads per job and the same memory format (``$FERBENCH_MEMORY_FORMAT``, see
``ferbench.training.trainer``): on a CPU, float sums depend on the thread count and the memory
format, and a job trained with 2 threads (or contiguous) may differ from one trained with 1
(or ``channels_last``) in the last bits (and, rarely, in a prediction near a tie). Dask
worker processes run with one thread (Dask's default ``OMP_NUM_THREADS=1``), as do the workers
of ``--jobs N`` when N equals the core count.

- :class:`SequentialExecutor`: one job after another in this process (the default).
- :class:`ProcessExecutor` (``--jobs N``): N spawned worker processes on this machine, each
  with ``cpu_count // N`` torch threads; with CUDA, worker ``i`` uses GPU ``i mod G``.
- :class:`DaskExecutor` (``--executor dask --scheduler ADDRESS``): a running Dask
  ``distributed`` scheduler; the protocol data is scattered to every worker once and each job
  is one task. Workers need ferbench installed (the same version) but no dataset or shared
  file system. Run one Dask worker process per GPU (``--nworkers G``) so jobs don't compete for
  one GPU; ``device`` ``auto`` picks CUDA on a worker that has it.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Protocol

import torch

from ferbench.errors import FerbenchError
from ferbench.jobs import Job, compute_job, compute_jobs_stacked, resolve_device, stackable
from ferbench.pipeline import ProtocolData

JobKey = tuple[str, int, int]
Finished = Iterator[tuple[JobKey, dict[str, bytes]]]


class Executor(Protocol):
    def run(self, data: ProtocolData, jobs: Sequence[Job], device: str) -> Finished:
        """Compute ``jobs`` on ``data``; yield ``(job.key, files)`` as each finishes."""

    def describe(self) -> str:
        """A few words for progress bars, e.g. ``2 processes``."""


class SequentialExecutor:
    """Jobs one after another in this process (training progress bars shown when ``progress``).

    With ``stack_folds`` (default: on CUDA devices), the jobs of one card that
    ``ferbench.jobs.stackable`` allows train ``STACK_SIZE`` at a time with stacked weights
    (``ferbench.training.stacked``): a GPU mostly idles on one tiny model. A distilling card's
    jobs stack too, each with its own fold's teacher (attached to the job as ``teacher_state``)."""

    STACK_SIZE = 10

    def __init__(self, progress: bool = False, stack_folds: bool | None = None):
        self.progress = progress
        self.stack_folds = stack_folds

    def run(self, data: ProtocolData, jobs: Sequence[Job], device: str) -> Finished:
        resolved = resolve_device(device)
        stack = resolved.type == "cuda" if self.stack_folds is None else self.stack_folds
        groups: dict[str, list[Job]] = {}
        verdicts: dict[str, bool] = {}
        for job in jobs:
            if stack and stackable(data, job, resolved, verdicts):
                groups.setdefault(job.card.name, []).append(job)
            else:
                yield job.key, compute_job(data, job, resolved, self.progress)
        for group in groups.values():
            for start in range(0, len(group), self.STACK_SIZE):
                chunk = group[start:start + self.STACK_SIZE]
                yield from zip((job.key for job in chunk), compute_jobs_stacked(data, chunk, resolved))

    def describe(self) -> str:
        return "this process"


class ProcessExecutor:
    """``workers`` spawned processes on this machine, each with ``threads`` torch threads
    (default ``cpu_count // workers``); see the module docstring."""

    def __init__(self, workers: int, threads: int | None = None):
        if workers < 1:
            raise FerbenchError(f"--jobs must be at least 1, got {workers}")
        self.workers = workers
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)

    def run(self, data: ProtocolData, jobs: Sequence[Job], device: str) -> Finished:
        if not jobs:
            return
        context = multiprocessing.get_context("spawn")
        devices = context.Queue()
        for name in worker_devices(device, self.workers):
            devices.put(name)
        pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker,
                                   initargs=(data, devices, self.threads))
        try:
            futures = [pool.submit(_run_in_worker, job) for job in jobs]
            for future in as_completed(futures):
                yield future.result()
        finally:  # on an error (or Ctrl-C) drop the jobs not started yet; finished ones are written
            pool.shutdown(wait=True, cancel_futures=True)

    def describe(self) -> str:
        return f"{self.workers} processes"


class DaskExecutor:
    """Jobs as tasks of the Dask ``distributed`` scheduler at ``address`` (``tcp://host:8786``)."""

    def __init__(self, address: str, timeout: str = "30s"):
        self.address, self.timeout = address, timeout

    def run(self, data: ProtocolData, jobs: Sequence[Job], device: str) -> Finished:
        if not jobs:
            return
        try:
            from distributed import Client, as_completed as dask_completed
        except ImportError as exc:
            raise FerbenchError("--executor dask needs Dask: pip install 'ferbench[dask]'") from exc
        try:
            client = Client(self.address, timeout=self.timeout)
        except OSError as exc:
            raise FerbenchError(f"cannot reach the Dask scheduler at {self.address}: {exc}") from exc
        try:
            shared = client.scatter(data, broadcast=True)
            futures = [client.submit(_run_on_dask, shared, job, device, pure=False) for job in jobs]
            for future in dask_completed(futures):
                yield future.result()
        finally:
            client.close()

    def describe(self) -> str:
        return f"Dask at {self.address}"


def worker_devices(device: str, workers: int) -> list[str]:
    """The device of each local worker: GPUs round-robin for ``auto``/``cuda`` when CUDA is
    available, else the named device for all (``cpu``, ``cuda:1``)."""
    if device in ("auto", "cuda") and torch.cuda.is_available():
        count = torch.cuda.device_count()
        return [f"cuda:{i % count}" for i in range(workers)]
    return [str(resolve_device(device))] * workers


def make_executor(name: str, jobs: int = 1, scheduler: str | None = None, stack: bool | None = None) -> Executor:
    """The executor the ``run`` options name: ``local`` (``jobs`` processes, or this process
    for 1) or ``dask`` (needs ``scheduler``). ``stack`` forces stacked fold training on or off
    in this process (None: on CUDA only); other executors train one job at a time."""
    if name == "dask":
        if not scheduler:
            raise FerbenchError("--executor dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)")
        return DaskExecutor(scheduler)
    if name != "local":
        raise FerbenchError(f"unknown --executor `{name}`: choose local or dask")
    if scheduler:
        raise FerbenchError("--scheduler is for --executor dask")
    if stack and jobs > 1:
        raise FerbenchError("--stack trains folds together in this process: it cannot be combined with --jobs N")
    return ProcessExecutor(jobs) if jobs > 1 else SequentialExecutor(progress=True, stack_folds=stack)


# ----------------------------------------------------------------------------- worker side

_worker: dict[str, Any] = {}


def _start_worker(data: ProtocolData, devices: Any, threads: int) -> None:
    torch.set_num_threads(threads)
    _worker.update(data=data, device=torch.device(devices.get()))


def _run_in_worker(job: Job) -> tuple[JobKey, dict[str, bytes]]:
    return job.key, compute_job(_worker["data"], job, _worker["device"])


def _run_on_dask(data: ProtocolData, job: Job, device: str) -> tuple[JobKey, dict[str, bytes]]:
    return job.key, compute_job(data, job, resolve_device(device))
