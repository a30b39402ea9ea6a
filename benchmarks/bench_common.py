"""What the benchmarks share: one timing helper, the machine's description and its roofs.

Every comparison in benchmarks/ is taken side by side: the functions compared are called in
turn, repeat after repeat (round robin) in one process, so load from other processes hits
all of them alike and their *ratio* stays meaningful on a busy machine even when the rates
themselves do not. Each function's best round (best of N) is reported: on a loaded machine
it is the round least disturbed by other processes, and it moves less than the median.
Every other round runs in reverse order, so that no function always follows the same one: a
multi-threaded torch op leaves its threads spinning for a few milliseconds after it returns,
and whatever runs next pays for them (LOST measured 15 % slower right after a ``bmm``).
"""
from __future__ import annotations

import os
import platform
import time
from typing import Callable

import numpy as np
import torch


def sync(device: torch.device | str | None) -> None:
    """Wait for queued CUDA work (a no-op on the CPU)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def side_by_side(fns: dict[str, Callable[[], object]], repeat: int,
                 device: torch.device | str | None = None) -> dict[str, float]:
    """Best (smallest) wall-clock seconds of each function: one warm-up call each, then ``repeat``
    rounds in which every function runs once, in turn, in reverse order every other round."""
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1; got {repeat}")
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(repeat):
        for name, fn in (reversed(fns.items()) if r % 2 else fns.items()):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """Where the numbers were taken: cores, threads, CPU, versions, load when measured."""
    return dict(cpu=cpu_model(), cores=os.cpu_count(), torch_threads=torch.get_num_threads(),
                torch=torch.__version__, numpy=np.__version__, python=platform.python_version(),
                load_average=list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                cuda=torch.cuda.get_device_name() if torch.cuda.is_available() else None)


def gemm_flops(n: int) -> float:
    """FLOPs of one (n, n) @ (n, n) product: 2 n^3."""
    return 2.0 * n ** 3


def roof_functions(gemm_n: int, copy_bytes: int) -> tuple[dict[str, Callable[[], object]], dict[str, float]]:
    """The machine's two roofs as functions to time and the work each does: ``gemm`` (a large
    fp32 matmul, work in FLOPs) and ``copy`` (a large fp32 tensor copy, work in bytes read
    plus written)."""
    a = torch.randn(gemm_n, gemm_n)
    b = torch.randn(gemm_n, gemm_n)
    c = torch.empty(gemm_n, gemm_n)
    src = torch.ones(copy_bytes // 4)
    dst = torch.empty_like(src)
    fns = {"gemm": lambda: torch.mm(a, b, out=c), "copy": lambda: dst.copy_(src)}
    return fns, {"gemm": gemm_flops(gemm_n), "copy": 2.0 * src.numel() * 4}
