"""Device choice, seeding and CPU worker processes shared by every stage."""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import random
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import numpy as np
import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None -> CUDA when available, else CPU; anything else is passed to torch."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device={device!r} is not a torch device; expected 'auto', 'cpu', 'cuda' or 'cuda:N'") from e
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"device={device!r}: no such CUDA device here ({torch.cuda.device_count()} visible; "
                         "torch.cuda.is_available() is False when the driver is missing or too old); "
                         "use --device cpu or auto")
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def cpu_cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def torch_threads(n: int | None = 1):
    """Run torch on ``n`` intra-op threads inside the block (None: as it is), restored after.
    One thread for CPU kernels of many small, cache-sized ops: a second thread adds a barrier
    to every op, and on a busy machine each barrier waits for a core (10-20x slower measured
    here, 2 cores shared by several processes; benchmarks/run_all.py)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def default_jobs(n_tasks: int, device: str | torch.device | None = "auto") -> int:
    """Worker processes for independent runs: one per CPU core on the CPU, because the small
    models of the embedded tracks use a second thread poorly (1.0-1.5x measured on 2 cores,
    where a second process gives 2x); one on a GPU, which a single process keeps busy."""
    if resolve_device(device).type != "cpu":
        return 1
    return max(1, min(n_tasks, cpu_cores()))


PR_SET_PDEATHSIG = 1   # linux/prctl.h


def die_with_parent() -> None:
    """On Linux, have the kernel SIGKILL this process when its parent dies (a no-op elsewhere,
    or without libc's prctl): e.g. as a subprocess's ``preexec_fn``."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass   # no libc prctl (e.g. a static build)


def _exit_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """Make this worker die with ``parent_pid``: a killed parent otherwise leaves its workers
    (GBs each) blocked forever on the task queue, whose write end they hold themselves.

    On Linux the kernel sends SIGKILL at once (``PR_SET_PDEATHSIG``); everywhere a daemon thread
    also polls ``os.getppid()``, which changes when the parent is gone (this also covers the
    Linux signal's tie to the parent's spawning thread rather than its process)."""
    die_with_parent()   # where it does nothing, the thread below still works

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="sparsevis-parent-watch", daemon=True).start()


def _init_worker(threads: int, parent_pid: int) -> None:
    _exit_with_parent(parent_pid)
    torch.set_num_threads(threads)


def run_parallel(fn, tasks: list[tuple], jobs: int, on_result=None, after: list | None = None) -> list:
    """``fn(*task)`` for every task, results in task order; ``on_result(i, result)`` is called
    as each task finishes (for progress logs). ``after[i]``: indices of the tasks that must
    finish before task i starts; of the tasks ready, the first in the list starts first (list
    order is the priority). With ``jobs > 1`` the tasks run in up to that many spawned worker
    processes (``fn`` must be importable), the cores shared out among them as torch threads;
    they exit when this process dies, even by ``kill -9``. On the first error nothing more is
    started, the tasks already running are waited for (each writes only its own atomic,
    resumable outputs) and the error is raised."""
    if jobs < 1:
        raise ValueError(f"jobs={jobs!r}; expected a positive number of worker processes")
    needs = [set(d) for d in (after if after is not None else [()] * len(tasks))]
    if len(needs) != len(tasks) or any(not d <= set(range(len(tasks))) - {i} for i, d in enumerate(needs)):
        raise ValueError("after: expected, for each task, the indices of other tasks it waits for")
    results = [None] * len(tasks)
    waiting = list(range(len(tasks)))
    finished: set[int] = set()

    def next_ready() -> int | None:
        i = next((i for i in waiting if needs[i] <= finished), None)
        if i is not None:
            waiting.remove(i)
        return i

    def done(i: int, result) -> None:
        results[i] = result
        finished.add(i)
        if on_result:
            on_result(i, result)

    if jobs == 1 or len(tasks) <= 1:
        while waiting:
            i = next_ready()
            if i is None:
                raise ValueError("after: the tasks wait for each other in a cycle")
            done(i, fn(*tasks[i]))
        return results
    workers = min(jobs, len(tasks))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker,
                             initargs=(max(1, cpu_cores() // workers), os.getpid())) as pool:
        running: dict = {}
        while waiting or running:
            while len(running) < workers and (i := next_ready()) is not None:
                running[pool.submit(fn, *tasks[i])] = i
            if not running:
                raise ValueError("after: the tasks wait for each other in a cycle")
            ended, _ = wait(running, return_when=FIRST_COMPLETED)   # log each as it finishes
            for future in ended:
                i = running.pop(future)
                if future.exception() is not None:
                    waiting.clear()
                    wait(running)
                    raise future.exception()
                done(i, future.result())
    return results
    workers = min(jobs, len(tasks))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker,
                             initargs=(max(1, cpu_cores() // workers), os.getpid())) as pool:
        index = {pool.submit(fn, *task): i for i, task in enumerate(tasks)}
        pending = set(index)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)   # log each as it finishes
            for future in done:
                if future.exception() is not None:
                    for other in pending:
                        other.cancel()
                    raise future.exception()
                results[index[future]] = future.result()
                if on_result:
                    on_result(index[future], results[index[future]])
    return results
