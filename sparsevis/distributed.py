"""Process-group set-up for ``torchrun`` (one or several nodes), and the few collectives the
prune stage needs.

``torchrun --nproc_per_node=8 -m sparsevis prune --profile paper`` starts one process per GPU
with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set;
:func:`init_from_env` turns that into an initialised process group (a no-op for a plain
``python -m sparsevis``), and :func:`session` wraps a command in set-up and teardown.

Backends: ``cpu:gloo,cuda:nccl`` on GPUs, so that collectives on CPU tensors (masks being
broadcast while a freshly loaded model is still on the CPU) work as well as those on CUDA
tensors; ``gloo`` on the CPU. Each process is bound to GPU ``LOCAL_RANK``, so that ``"cuda"``
and ``"auto"`` mean that process's GPU (:func:`process_device`). An explicit ``cuda:N`` is an
error under torchrun unless N is the process's LOCAL_RANK (one GPU per node, N = 0): the same
``--device`` reaches every process, and mapping it silently would put all ranks of a node on
one GPU while NCCL binds each to its own. Choose GPUs with ``CUDA_VISIBLE_DEVICES`` instead.

Everything here is safe to call without a process group: rank 0 of a world of 1.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from sparsevis.runtime import resolve_device

__all__ = ["DistInfo", "init_from_env", "teardown", "session", "is_initialized", "rank",
           "world_size", "local_rank", "is_main", "barrier", "process_device",
           "broadcast_buffers", "average_bn_stats", "broadcast_object", "all_equal"]


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    backend: str | None
    device: torch.device


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if is_initialized() else 0


def is_main() -> bool:
    """True on rank 0 (and in a plain single process): the process that writes files."""
    return rank() == 0


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r}: expected an integer") from None


def _check_cuda_index(device, lrank: int, world: int) -> None:
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is not None and dev.index != lrank:
        raise ValueError(f"device={str(device)!r} under torchrun (WORLD_SIZE={world}): every process "
                         f"gets the same --device, but this one is bound to cuda:{lrank} (LOCAL_RANK); "
                         "pass --device cuda (or auto) and choose GPUs with CUDA_VISIBLE_DEVICES")


def process_device(device: str | torch.device | None = "auto") -> torch.device:
    """The device this process computes on: ``cuda:LOCAL_RANK`` for ``"cuda"``/``"auto"`` under
    torchrun (an explicit other ``cuda:N`` is a ValueError, see the module docstring), else
    ``device`` resolved as :func:`sparsevis.runtime.resolve_device` does."""
    dev = resolve_device(device)
    if not is_initialized() or dev.type != "cuda":
        return dev
    _check_cuda_index(device, local_rank(), world_size())
    return torch.device("cuda", local_rank())


def init_from_env(backend: str | None = None, device: str | None = "auto",
                  timeout_minutes: float = 60.0) -> DistInfo:
    """Initialise the default process group from torchrun's environment variables.

    Without ``WORLD_SIZE`` > 1 (a plain ``python`` run) nothing is initialised. ``backend``:
    None = ``"cpu:gloo,cuda:nccl"`` when CUDA is available and ``device`` is not ``"cpu"``, else
    ``"gloo"``. ``timeout_minutes`` bounds how long a collective waits for the slowest rank
    (rank 0 evaluating or writing a checkpoint while the others wait at a barrier).
    Idempotent: a second call returns the group already set up.
    """
    world = _env_int("WORLD_SIZE") or 1
    use_cuda = torch.cuda.is_available() and str(device) != "cpu"
    if world <= 1 and not is_initialized():
        dev = torch.device("cuda" if use_cuda else "cpu")
        return DistInfo(0, 1, 0, None, dev)
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ValueError(f"WORLD_SIZE={world} but {name} is not set: start the command with "
                             "torchrun (e.g. torchrun --nproc_per_node=8 -m sparsevis prune ...)")
    lrank = _env_int("LOCAL_RANK") or 0
    if use_cuda:
        _check_cuda_index(device, lrank, world)
        if lrank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={lrank} but only {torch.cuda.device_count()} GPUs are visible: "
                             "--nproc_per_node must not exceed the GPUs per node")
        torch.cuda.set_device(lrank)
    if not is_initialized():
        backend = backend or ("cpu:gloo,cuda:nccl" if use_cuda else "gloo")
        dist.init_process_group(backend=backend, init_method="env://",
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    dev = torch.device("cuda", lrank) if use_cuda else torch.device("cpu")
    return DistInfo(dist.get_rank(), dist.get_world_size(), lrank, dist.get_backend(), dev)


def teardown() -> None:
    """Destroy the default process group (after a barrier), if there is one."""
    if is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def session(backend: str | None = None, device: str | None = "auto"):
    """``with session(): ...``: :func:`init_from_env` before, :func:`teardown` after (also on
    errors, without the barrier, so that a failing rank does not hang the others)."""
    info = init_from_env(backend, device)
    ok = False
    try:
        yield info
        ok = True
    finally:
        if is_initialized():
            if ok:
                teardown()
            else:
                dist.destroy_process_group()


def broadcast_buffers(model: nn.Module, src: int = 0) -> None:
    """Copy every buffer (BatchNorm running statistics, masks) from rank ``src`` to all ranks.

    Once per model, before evaluating or saving (a freshly pruned or recalibrated model): masks
    are buffers, 88 MB for ViT-B/32, so training never broadcasts buffers per step (DDP's
    ``broadcast_buffers=False``; :func:`average_bn_stats` keeps BatchNorm statistics in step).
    """
    if not is_initialized():
        return
    for buf in model.buffers():
        broadcast_(buf, src)


@torch.no_grad()
def average_bn_stats(model: nn.Module) -> None:
    """Average BatchNorm running means and variances over the ranks (in place).

    Under DDP without per-step buffer broadcasts each rank's statistics follow its own shard;
    their mean is the estimate over the whole epoch's data (kilobytes, once per epoch). The
    variance is the mean of the per-shard variances: the spread between shard means, tiny for
    random shards of one dataset, is left out.
    """
    if not is_initialized():
        return
    world = world_size()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            for buf in (m.running_mean, m.running_var):
                if buf is not None:
                    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
                    buf.div_(world)


def broadcast_(tensor: torch.Tensor, src: int = 0) -> None:
    """In-place broadcast from rank ``src``; bool tensors (masks) travel as uint8 (gloo/NCCL)."""
    if tensor.dtype == torch.bool:
        as_bytes = tensor.to(torch.uint8)
        dist.broadcast(as_bytes, src)
        tensor.copy_(as_bytes.bool())
    else:
        dist.broadcast(tensor.data, src)


def broadcast_object(obj, src: int = 0):
    """``obj`` of rank ``src`` on every rank (any picklable object)."""
    if not is_initialized():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src)
    return holder[0]


def all_equal(tensor: torch.Tensor) -> bool:
    """True when ``tensor`` is bitwise identical on every rank (a cheap consistency check)."""
    if not is_initialized():
        return True
    t = tensor.detach()
    flat = t.reshape(-1).contiguous()
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    if flat.is_floating_point():
        flat = flat.view(torch.int32) if flat.element_size() == 4 else flat.view(torch.int16 if flat.element_size() == 2 else torch.int64)
    flat = flat.to(torch.int64)
    lo, hi = flat.clone(), flat.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    return bool(torch.equal(lo, hi))
