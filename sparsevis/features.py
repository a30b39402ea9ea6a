"""One batched feature-extraction path for every study.

:func:`extract` runs a callable on every batch of a tensor, a dataset or a loader and collects
its outputs on the CPU; :func:`iterate` yields them batch by batch (with the rest of each batch:
labels, masks, boxes) when they do not fit in memory or differ in shape. Both run under
``torch.inference_mode()`` with the model in eval mode, CNNs in channels-last memory format
(``channels_last=True``; ViTs and Swin are left alone), and on CUDA they add what else makes
inference fast:

* pinned host memory and non-blocking copies both ways, so the next batch is loaded while the
  GPU works and results come back without stalling the stream (each batch's copies are fenced
  by an event on the target device's stream, and host buffers are read only after it),
* optionally ``torch.compile`` (``compile=True``; in place via ``nn.Module.compile``).

Precision: fp32 unless asked otherwise (``precision="fp32"``), with TF32 off
(:func:`sparsevis.precision.strict_fp32`), on every device: LOST features, decisions and metric
inputs feed thresholds, and bf16 or TF32 rounding moves them (a near-zero similarity changes
sign). ``precision="auto"`` (bf16 or fp16 autocast on CUDA, see :mod:`sparsevis.precision`) is
for outputs that only feed averages; ``amp=True``/``False`` is the older spelling of
``"auto"``/``"fp32"``.

On the CPU the computation is ``fn(x)`` per batch in float32. Channels-last runs the CPU
tracks' CNNs faster there (MobileNetV2 at 224 px 1.8x, the synthetic ResNets 1.6-1.9x; one
thread) but ResNet-50 about 10 % slower (``benchmarks/bench_features.py``, two threads). On that
path, when ``fn`` is the model's logits, an inference copy with every BatchNorm folded into the
convolution before it runs instead (:func:`fold_batchnorm`; MobileNetV2 at 224 px another 1.5x on
one thread), in cache-sized slices of each batch (:func:`cpu_slice`; MobileNetV2 another 2x).
All three change results only by float rounding; with ``channels_last=False`` they are
identical to a plain loop over the same batches (the tests check both).

What to compute (``fn``):

* ``None`` or ``"logits"``: the model's output;
* a name of :class:`sparsevis.models.Surface`: ``"feature_map"``, ``"tokens"``, ``"keys"``,
  ``"cls_attention"`` (resolved on the model after it is moved and converted);
* any callable ``fn(x) -> Tensor | tuple | list | dict`` of tensors, e.g.
  ``surface(model).keys`` or ``lambda x: model.forward_features(x)``.

Floating-point outputs are returned as float32 (``out_dtype``); integer and bool outputs keep
their dtype. The model is moved to ``device`` (and stays there, as :func:`sparsevis.train.predict`
does); its train/eval mode and memory format are restored afterwards.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse as fx_fuse
from tqdm.auto import tqdm

from sparsevis import precision as prec
from sparsevis.checkpoint_format import content_hash, tensor_digest
from sparsevis.fileio import atomic_torch_save, stable_hash
from sparsevis.models import surface
from sparsevis.runtime import cpu_cores, resolve_device

SURFACE_OUTPUTS = ("feature_map", "tokens", "keys", "cls_attention")
log = logging.getLogger("sparsevis")

__all__ = ["SURFACE_OUTPUTS", "extract", "iterate", "make_loader", "is_cnn", "default_workers", "loader_workers",
           "fold_batchnorm", "folded_copy", "cpu_slice", "logits_cache"]


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
MAX_WORKERS = 8


def default_workers(device: torch.device | str | None = "auto") -> int:
    """DataLoader workers per process: 0 on the CPU (decoding competes with the model for the
    same cores), else up to 8, shared among the processes of a node under torchrun."""
    device = resolve_device(device)
    if device.type != "cuda":
        return 0
    env = os.environ.get("SPARSEVIS_WORKERS")
    if env:
        return int(env)
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return loader_workers(cpu_cores() // max(1, per_node))


def loader_workers(cores: int) -> int:
    """DataLoader workers of a GPU process that has ``cores`` CPU cores: one core is left to the
    process itself, and at most :data:`MAX_WORKERS` (more rarely pay for their memory)."""
    return max(1, min(MAX_WORKERS, cores - 1))


class _TensorBatches(torch.utils.data.Dataset):
    """A tensor (or tuple of tensors) seen as a dataset of consecutive slices: item i is batch i."""

    def __init__(self, tensors: tuple[torch.Tensor, ...], batch_size: int):
        self.tensors, self.batch_size = tensors, batch_size
        self.n = len(tensors[0])

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def __getitem__(self, i: int):
        sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
        out = tuple(t[sl] for t in self.tensors)
        return out if len(out) > 1 else out[0]


def make_loader(data, batch_size: int = 64, workers: int | None = None,
                pin_memory: bool | None = None, device: torch.device | str | None = "auto",
                collate_fn: Callable | None = None, prefetch_factor: int = 4,
                drop_last: bool = False) -> torch.utils.data.DataLoader:
    """An in-order DataLoader over ``data`` for inference.

    ``data``: a map-style Dataset (items are tensors or tuples), or a tensor / tuple of tensors
    with a first dimension to batch over (sliced, not collated item by item).
    ``workers``: None = :func:`default_workers` for a Dataset (0 on the CPU), 0 for tensors.
    ``pin_memory``: None = when the device is CUDA (a background thread pins each batch).
    """
    device = resolve_device(device)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: expected a positive integer")
    is_tensor = isinstance(data, torch.Tensor) or (isinstance(data, tuple) and data
                                                   and all(isinstance(t, torch.Tensor) for t in data))
    if workers is None:  # slicing an in-memory tensor needs no worker processes
        workers = 0 if is_tensor else default_workers(device)
    workers = int(workers)
    pin = device.type == "cuda" if pin_memory is None else bool(pin_memory)
    kw = dict(num_workers=workers, pin_memory=pin, collate_fn=collate_fn, drop_last=drop_last)
    if workers > 0:
        kw.update(prefetch_factor=prefetch_factor, persistent_workers=False)
    if is_tensor:
        tensors = (data,) if isinstance(data, torch.Tensor) else data
        if any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError(f"make_loader: tensors of different lengths {[len(t) for t in tensors]}")
        if drop_last:
            n = len(tensors[0]) // batch_size * batch_size
            tensors = tuple(t[:n] for t in tensors)
        kw.pop("drop_last")
        kw["collate_fn"] = collate_fn or _identity
        return torch.utils.data.DataLoader(_TensorBatches(tensors, batch_size), batch_size=None, **kw)
    if not isinstance(data, torch.utils.data.Dataset):
        raise ValueError(f"make_loader: expected a Dataset or a tensor, got {type(data).__name__}")
    return torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False, **kw)


def _identity(x):
    return x


def _batches(data, batch_size: int, device: torch.device, workers: int | None) -> Iterable:
    """Batches of ``data``: tensors and datasets go through :func:`make_loader`; a DataLoader or
    any other iterable of batches is used as it is."""
    if isinstance(data, (torch.Tensor, torch.utils.data.Dataset)) or (
            isinstance(data, tuple) and data and all(isinstance(t, torch.Tensor) for t in data)):
        return make_loader(data, batch_size, workers=workers, device=device)
    if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
        raise ValueError(f"data must be a tensor, a Dataset, a DataLoader or an iterable of batches; "
                         f"got {type(data).__name__}")
    return data


def _split_batch(batch, input_key) -> tuple[torch.Tensor, Any]:
    """(inputs, rest of the batch) of one batch: a tensor, a tuple/list or a dict."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, dict):
        key = "image" if input_key == 0 else input_key
        if key not in batch:
            raise ValueError(f"batch is a dict without key {key!r} (keys {sorted(batch)}); pass input_key=")
        return batch[key], {k: v for k, v in batch.items() if k != key}
    if isinstance(batch, (tuple, list)):
        rest = list(batch[:input_key]) + list(batch[input_key + 1:])
        return batch[input_key], type(batch)(rest) if isinstance(batch, tuple) else rest
    raise ValueError(f"a batch must be a tensor, a tuple/list or a dict; got {type(batch).__name__}")


# --------------------------------------------------------------------------------------------
# Model preparation
# --------------------------------------------------------------------------------------------
def is_cnn(model: nn.Module) -> bool:
    """True for convolutional networks (channels-last helps them; ViT/Swin gain nothing)."""

    try:
        return surface(model).kind == "cnn"
    except ValueError:
        has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
        has_attention = any(isinstance(m, nn.MultiheadAttention) or "Attention" in type(m).__name__
                            for m in model.modules())
        return has_conv and not has_attention


def fold_batchnorm(model: nn.Module) -> nn.Module | None:
    """An inference copy of ``model`` (in eval mode) with each BatchNorm that follows a
    convolution folded into that convolution's weight and bias, or None when there is none to
    fold or the model cannot be traced (then the caller keeps the model itself).

    Mathematically the same function in eval mode; pruned weights stay exactly zero (a weight is
    scaled per output channel). Not for training, nor for hooks on the model's modules."""
    if model.training:
        raise ValueError("fold_batchnorm: the model must be in eval mode (BatchNorm's running "
                         "statistics are what is folded)")
    n_norms = _count_batchnorms(model)
    if not n_norms:
        return None
    try:
        folded = fx_fuse(model, inplace=False)
    except (torch.fx.proxy.TraceError, TypeError, NotImplementedError, AttributeError) as e:
        log.debug("fold_batchnorm: %s is not traceable (%s); running it unfolded", type(model).__name__, e)
        return None
    if _count_batchnorms(folded) == n_norms:
        return None   # none follows a convolution
    return folded.eval()


_FOLDED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # model -> (fingerprint, copy)


def folded_copy(model: nn.Module) -> nn.Module:
    """What computes a CNN's logits, and their gradients with respect to the input, fastest:
    its :func:`fold_batchnorm` copy in channels-last memory format (feed it channels-last
    images). The model itself when it is in training mode, not a CNN, or has nothing to fold.

    The copy is remembered while none of the model's tensors is replaced or changed in place,
    so methods that call it once per chunk of images fold once per model."""
    if model.training or not is_cnn(model):
        return model
    fingerprint = _state_fingerprint(model)
    memo = _FOLDED.get(model)
    if memo is None or memo[0] != fingerprint:
        folded = fold_batchnorm(model)   # (the memo never holds the model: it would outlive it)
        memo = (fingerprint, None if folded is None else folded.to(memory_format=torch.channels_last).requires_grad_(False))
        _FOLDED[model] = memo
    return model if memo[1] is None else memo[1]


def _state_fingerprint(model: nn.Module) -> tuple:
    """Changes whenever a tensor of the model's state is replaced or changed in place."""
    return tuple((name, t.data_ptr(), t._version, t.dtype, tuple(t.shape)) for name, t in model.state_dict().items())


def _count_batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@contextlib.contextmanager
def _prepared(model: nn.Module, device: torch.device, channels_last: bool, compile: bool):
    """Model on ``device`` in eval mode (CNNs channels-last; compiled on CUDA); mode and memory
    format restored after."""
    was_training = model.training
    model.to(device).eval()
    to_cl = channels_last and is_cnn(model)
    convert = to_cl and not all(p.is_contiguous(memory_format=torch.channels_last)
                                for p in model.parameters() if p.dim() == 4)
    if convert:
        model.to(memory_format=torch.channels_last)
    if compile and device.type == "cuda" and getattr(model, "_compiled_call_impl", None) is None:
        model.compile(dynamic=False)
    try:
        yield to_cl
    finally:
        if convert:
            model.to(memory_format=torch.contiguous_format)
        model.train(was_training)


def _resolve_fn(model: nn.Module, fn) -> Callable:
    if fn is None or fn == "logits":
        return model
    if isinstance(fn, str):
        if fn not in SURFACE_OUTPUTS:
            raise ValueError(f"fn={fn!r}: expected a callable, None/'logits' or one of {SURFACE_OUTPUTS}")

        return getattr(surface(model), fn)
    if not callable(fn):
        raise ValueError(f"fn must be callable or a name, got {type(fn).__name__}")
    return fn


# --------------------------------------------------------------------------------------------
# Output handling
# --------------------------------------------------------------------------------------------
def _map(obj, f):
    if isinstance(obj, torch.Tensor):
        return f(obj)
    if isinstance(obj, dict):
        return {k: _map(v, f) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(_map(v, f) for v in obj)
    return obj


def _to_host(out, out_dtype: torch.dtype, cuda: bool):
    """Floating outputs in ``out_dtype``, on the CPU; on CUDA copied asynchronously into pinned
    memory (valid after the stream is synchronised)."""
    def move(t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point() and out_dtype is not None:
            t = t.to(out_dtype)
        if not cuda or t.device.type != "cuda":
            return t.detach().cpu() if t.device.type != "cpu" else t.detach()
        with torch.inference_mode(False):  # a normal tensor: usable in place and with autograd
            host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        host.copy_(t, non_blocking=True)
        return host

    return _map(out, move)


def _concat(parts: list):
    first = parts[0]
    if isinstance(first, torch.Tensor):
        shapes = {tuple(p.shape[1:]) for p in parts}
        if len(shapes) > 1:
            raise ValueError(f"outputs of different shapes {sorted(shapes)} cannot be concatenated; "
                             "use features.iterate(...) (or a batch size of 1) for variable-size inputs")
        return torch.cat(parts) if first.dim() else torch.stack(parts)
    if isinstance(first, dict):
        return {k: _concat([p[k] for p in parts]) for k in first}
    if isinstance(first, (tuple, list)):
        return type(first)(_concat([p[i] for p in parts]) for i in range(len(first)))
    return parts


# --------------------------------------------------------------------------------------------
# The path
# --------------------------------------------------------------------------------------------
def _sync_point(device: torch.device) -> torch.cuda.Event:
    """An event recorded on ``device``'s current stream, the stream the batch's kernels and
    device-to-host copies were queued on (the *current* device's stream is another one when
    ``device`` is not the current device, and would not wait for them)."""
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(device))
    return event


def _precision(precision: str, amp: bool | None) -> str:
    if amp is None:
        return precision
    if precision != "fp32":
        raise ValueError(f"amp={amp!r} and precision={precision!r}: give one of them "
                         "(amp=True means precision='auto', amp=False 'fp32')")
    return "auto" if amp else "fp32"


def _run(model, data, fn, device, batch_size, workers, precision, channels_last, compile, progress,
         desc, input_key, out_dtype):
    """The loop behind :func:`iterate` and :func:`extract` (outputs are inference tensors)."""
    device = resolve_device(device)
    cuda = device.type == "cuda"
    precision = prec.resolve(precision, device)
    batches = _batches(data, batch_size, device, workers)
    try:
        total = len(batches)
    except TypeError:
        total = None
    pending = None
    # inference mode (and strict fp32) is entered per batch, never across a `yield`: the
    # caller's code between batches runs in its own modes (a context held across a yield
    # would leak into it)
    with _prepared(model, device, channels_last, compile) as to_cl:
        call = _resolve_fn(model, fn)
        if to_cl and call is model and not compile:
            call = folded_copy(model)
        # on the CPU a CNN runs its batch in slices small enough for the cache (outputs known
        # to be batch-major only); the batch size still sets what is loaded at once
        slices = to_cl and device.type == "cpu" and (fn is None or fn == "logits" or fn in SURFACE_OUTPUTS)
        for batch in tqdm(batches, total=total, desc=desc, disable=not progress, leave=False):
            x, rest = _split_batch(batch, input_key)
            strict = prec.strict_fp32() if precision == "fp32" else contextlib.nullcontext()
            with torch.inference_mode(), strict:
                x = x.to(device, non_blocking=True)
                if to_cl and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                step = cpu_slice(x) if slices and x.dim() == 4 else len(x)
                with prec.autocast(precision, device):
                    out = call(x) if len(x) <= step else _concat([call(part) for part in x.split(step)])
                out = _to_host(out, out_dtype, cuda)
            # results of this batch are in host memory once the stream passes this point
            event = _sync_point(device) if cuda else None
            if pending is not None:
                yield _finish(pending)
            pending = (out, rest, event)
        if pending is not None:
            yield _finish(pending)


def cpu_slice(x: torch.Tensor) -> int:
    """Images per forward pass of a CNN on the CPU: about 2**18 input pixels (4 images at
    224 px), rounded down to a power of two, for images of at least 112 x 112 pixels. The
    layers' activations then stay in the caches: MobileNetV2 at 224 px ran at 9.5 ms per image
    in slices of 4 and 19.4 in batches of 64, ResNet-50 87 and 103 (one thread). Smaller
    images run whole: sv_resnet_s at 64 px lost 2-5 % in slices of 64."""
    pixels = max(1, x.shape[-1] * x.shape[-2])
    if pixels < 112 * 112:
        return max(1, len(x))
    return 1 << max(0, (2**18 // pixels).bit_length() - 1)


def _finish(pending):
    """The outputs of a batch, after its copies to host memory have landed."""
    out, rest, event = pending
    if event is not None:
        event.synchronize()
    return out, rest


def _normal(t: torch.Tensor) -> torch.Tensor:
    """A tensor usable anywhere (in-place ops, autograd) from an inference-mode output."""
    return t.clone() if t.is_inference() else t


def iterate(model: nn.Module, data, fn=None, *, device: str | torch.device | None = "auto",
            batch_size: int = 64, workers: int | None = None, precision: str = "fp32",
            amp: bool | None = None, channels_last: bool = True, compile: bool = False,
            progress: bool = True,
            desc: str = "features", input_key=0, out_dtype: torch.dtype | None = torch.float32
            ) -> Iterator[tuple[Any, Any]]:
    """Yield ``(outputs, rest)`` per batch, in order; ``outputs`` on the CPU, ``rest`` the other
    elements of the batch (labels, masks, ...; None when batches are bare tensors).

    On CUDA the results of batch i are handed out while batch i+1 runs on the GPU.
    See the module docstring for ``fn`` and the arguments; ``data`` is a tensor, a Dataset,
    a DataLoader or any iterable of batches (tensors, tuples or dicts).
    """
    for out, rest in _run(model, data, fn, device, batch_size, workers, _precision(precision, amp),
                          channels_last, compile, progress, desc, input_key, out_dtype):
        yield _map(out, _normal), rest


# --------------------------------------------------------------------------------------------
# The logits cache
# --------------------------------------------------------------------------------------------
_CACHE_DIRS: list[Path] = []   # the folders of the open logits_cache blocks, innermost last


@contextlib.contextmanager
def logits_cache(directory: str | os.PathLike):
    """Within the block, :func:`extract` of a model's logits over a tensor of images reuses the
    logits that the same model (the same weights, buffers and masks) gave for the same image
    (the same bytes) under ``directory``, and computes only the other images.

    Why: a run's stages see the same images more than once (the real track's accuracy images
    are two of its alignment datasets; a random-pruning control starts from the dense model of
    its magnitude twin). One file per model and precision, written atomically; a damaged file is
    computed again. A hit gives the logits as first computed, which may differ from a fresh
    computation in another batch by float rounding."""
    _CACHE_DIRS.append(Path(directory))
    try:
        yield
    finally:
        _CACHE_DIRS.pop()


_DIGESTS: dict[int, tuple] = {}   # id(images) -> (weak reference, version counter, digests)


def _image_digests(x: torch.Tensor) -> torch.Tensor:
    """(N, 16) uint8: the first 16 bytes of each image's SHA-256. Remembered for the tensor
    while it lives unchanged: a study passes one dataset's images once per checkpoint."""
    memo = _DIGESTS.get(id(x))
    version = None if x.is_inference() else x._version   # inference tensors keep no counter
    if memo is not None and memo[0]() is x and version is not None and memo[1] == version:
        return memo[2]
    rows = []
    for image in x:
        h = hashlib.sha256()
        tensor_digest(h, image)
        rows.append(h.digest()[:16])
    digests = torch.frombuffer(bytearray(b"".join(rows)), dtype=torch.uint8).view(len(x), 16)
    if version is not None:
        key = id(x)

        def forget(ref, key=key):
            if _DIGESTS.get(key, (None,))[0] is ref:
                del _DIGESTS[key]

        _DIGESTS[key] = (weakref.ref(x, forget), version, digests)
    return digests


def _model_digest(model: nn.Module) -> str:
    """Content hash of the model's state (weights, buffers, masks), remembered on the model
    while no tensor of it is replaced or changed in place (their addresses and version
    counters say so): a large model is hashed once, not once per call."""
    fingerprint = _state_fingerprint(model)
    memo = getattr(model, "_sparsevis_digest", None)
    if memo is None or memo[0] != fingerprint:
        memo = (fingerprint, content_hash(model.state_dict(), {}, {"class": type(model).__qualname__}))
        model._sparsevis_digest = memo
    return memo[1]


_LOADED: dict[Path, tuple] = {}   # cache file -> (its stat when read or written, digests, logits, row index)
_LOADED_MAX = 4                   # files kept in memory (the models of the checkpoints in use)


def _read_cache(path: Path) -> tuple[torch.Tensor, torch.Tensor, dict[bytes, int]]:
    """(digests, logits, digest -> row) of a cache file; read from disk only when it changed
    since this process last read or wrote it. Empty when missing, damaged or foreign."""
    empty = (torch.zeros(0, 16, dtype=torch.uint8), None, {})
    try:
        st = path.stat()
    except FileNotFoundError:
        return empty
    signature = (st.st_mtime_ns, st.st_size, st.st_ino)
    memo = _LOADED.get(path)
    if memo is not None and memo[0] == signature:
        return memo[1:]
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        digests, logits = stored["digests"], stored["logits"]
        if digests.dtype != torch.uint8 or digests.shape[1:] != (16,) or len(logits) != len(digests):
            raise ValueError("not a logits cache of this version")
    except Exception as e:   # a damaged or foreign file: computed again, then replaced
        log.warning("logits cache %s unreadable (%s); computing again", path, e)
        return empty
    return _remember(path, signature, digests, logits)


def _remember(path: Path, signature: tuple, digests: torch.Tensor, logits: torch.Tensor):
    index = {row.tobytes(): i for i, row in enumerate(digests.numpy())}
    _LOADED.pop(path, None)
    while len(_LOADED) >= _LOADED_MAX:
        del _LOADED[next(iter(_LOADED))]   # the least recently used
    _LOADED[path] = (signature, digests, logits, index)
    return digests, logits, index


def _cached_logits(model: nn.Module, x: torch.Tensor, precision: str, compute: Callable) -> torch.Tensor:
    key = stable_hash({"model": _model_digest(model), "precision": precision, "torch": torch.__version__,
                       "format": 2}, 32)
    path = _CACHE_DIRS[-1] / f"{key}.pt"
    digests = _image_digests(x)
    known, logits, index = _read_cache(path)
    rows = [index.get(d.tobytes()) for d in digests.numpy()]
    missing = [i for i, r in enumerate(rows) if r is None]
    if missing:
        fresh = compute(x if len(missing) == len(x) else x[missing])
        if not (isinstance(fresh, torch.Tensor) and fresh.dim() == 2):
            return fresh   # not logits, nothing cached (so every image was missing)
        if logits is not None and logits.shape[1:] != fresh.shape[1:]:   # a foreign file: start anew
            known, logits = torch.zeros(0, 16, dtype=torch.uint8), None
            if len(missing) < len(x):
                fresh, missing = compute(x), list(range(len(x)))
        # an image may occur twice in x: store it once
        new = {digests[i].numpy().tobytes(): j for j, i in enumerate(missing)}
        order = list(new.values())
        known = torch.cat([known, digests[missing][order]])
        logits = fresh[order].clone() if logits is None else torch.cat([logits, fresh[order]])
        atomic_torch_save({"digests": known, "logits": logits}, path)
        st = path.stat()
        known, logits, index = _remember(path, (st.st_mtime_ns, st.st_size, st.st_ino), known, logits)
        rows = [index[d.tobytes()] for d in digests.numpy()]
    return logits[torch.tensor(rows, dtype=torch.long)]


def extract(model: nn.Module, data, fn=None, *, device: str | torch.device | None = "auto",
            batch_size: int = 64, workers: int | None = None, precision: str = "fp32",
            amp: bool | None = None, channels_last: bool = True, compile: bool = False,
            progress: bool = True,
            desc: str = "features", input_key=0, out_dtype: torch.dtype | None = torch.float32,
            return_rest: bool = False):
    """``fn`` over every batch of ``data``, concatenated along the first dimension, on the CPU.

    ``extract(model, images, "keys")`` -> (N, patches, D); ``extract(model, loader)`` -> logits.
    Outputs that are tuples/lists/dicts of tensors are concatenated element-wise. With
    ``return_rest=True`` also returns the other elements of the batches, concatenated the same
    way (e.g. the labels of a ``(image, label)`` dataset). Raises ValueError when ``data`` is
    empty or outputs differ in shape (use :func:`iterate` then). Runs in strict fp32 unless
    ``precision`` says otherwise (module docstring).
    """
    precision = _precision(precision, amp)

    def run(data):
        outs, rests = [], []
        for out, rest in _run(model, data, fn, device, batch_size, workers, precision, channels_last, compile,
                              progress, desc, input_key, out_dtype):
            outs.append(out)
            rests.append(rest)
        if not outs:
            raise ValueError("extract: `data` yielded no batch")
        return _concat(outs), (None if rests[0] is None else _concat(rests))

    if (_CACHE_DIRS and isinstance(data, torch.Tensor) and len(data) and fn in (None, "logits")
            and out_dtype == torch.float32 and not return_rest):
        return _cached_logits(model, data, prec.resolve(precision, resolve_device(device)),
                              lambda x: run(x)[0])
    result, rest = run(data)
    return (result, rest) if return_rest else result
