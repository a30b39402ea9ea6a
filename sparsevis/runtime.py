"""Device choice, seeding and CPU worker processes shared by every stage."""
from __future__ import annotations

import multiprocessing
import os
import random
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None -> CUDA when available, else CPU; anything else is passed to torch."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device={device!r} is not a torch device; expected 'auto', 'cpu', 'cuda' or 'cuda:N'") from e


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def cpu_cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_jobs(n_tasks: int, device: str | torch.device | None = "auto") -> int:
    """Worker processes for independent runs: one per CPU core on the CPU, because the small
    models of the embedded tracks use a second thread poorly (1.0-1.5x measured on 2 cores,
    where a second process gives 2x); one on a GPU, which a single process keeps busy."""
    if resolve_device(device).type != "cpu":
        return 1
    return max(1, min(n_tasks, cpu_cores()))


def run_parallel(fn, tasks: list[tuple], jobs: int) -> list:
    """``fn(*task)`` for every task, results in task order. With ``jobs > 1`` the tasks run in
    that many spawned worker processes (``fn`` must be importable), each with
    ``cpu_cores() // jobs`` torch threads; the first error cancels what has not started and is
    raised. Tasks must be independent: each writes only its own (atomic, resumable) outputs."""
    if jobs < 1:
        raise ValueError(f"jobs={jobs!r}; expected a positive number of worker processes")
    if jobs == 1 or len(tasks) <= 1:
        return [fn(*task) for task in tasks]
    threads = max(1, cpu_cores() // jobs)
    pool = ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=torch.set_num_threads, initargs=(threads,))
    try:
        futures = [pool.submit(fn, *task) for task in tasks]
        return [f.result() for f in futures]
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
