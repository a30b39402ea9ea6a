"""Numerical precision as a setting: which one a device gets, and the contexts that apply it.

``precision`` is one of ``"auto"``, ``"bf16"``, ``"fp16"``, ``"fp32"``:

* ``"auto"``: bf16 autocast on a CUDA device that runs bf16 natively
  (``torch.cuda.is_bf16_supported(including_emulation=False)``: Ampere and later), fp16
  autocast with a loss scaler on older GPUs, fp32 on the CPU (CPU autocast is slower than fp32
  for these models and would change results);
* ``"bf16"`` / ``"fp16"`` / ``"fp32"``: exactly that, or a ValueError where the device cannot
  (bf16 on a GPU without native bf16; fp16 on the CPU, where there is no loss scaling worth it).

:func:`resolve` says which precision a device gets, so that results can record it.
Anything that feeds a threshold (LOST's ``A > 0``, 16-way decisions, metric kernels) runs in
:func:`strict_fp32`: fp32 without TF32, because TF32 rounds matmul/conv inputs to 10 mantissa
bits and flips the sign of near-zero similarities. Training may keep TF32 (PyTorch's default
for cuDNN convolutions), where rounding is noise next to SGD's.
"""
from __future__ import annotations

import contextlib

import torch

from sparsevis.runtime import resolve_device

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

__all__ = ["PRECISIONS", "resolve", "dtype", "autocast", "grad_scaler", "strict_fp32"]


def _native_bf16(device: torch.device) -> bool:
    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported(including_emulation=False)


def resolve(precision: str, device: str | torch.device | None = "auto") -> str:
    """The concrete precision (``"bf16"``, ``"fp16"`` or ``"fp32"``) that ``precision`` means on
    ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; expected one of {PRECISIONS}")
    device = resolve_device(device)
    if device.type != "cuda":
        if precision == "fp16":
            raise ValueError(f"precision='fp16' on device {device}: fp16 with loss scaling is for "
                             "CUDA; use 'bf16' or 'fp32' (or 'auto') there")
        return "fp32" if precision == "auto" else precision
    if precision == "auto":
        return "bf16" if _native_bf16(device) else "fp16"
    if precision == "bf16" and not _native_bf16(device):
        raise ValueError(f"precision='bf16' on {device}: this GPU has no native bf16 "
                         "(torch.cuda.is_bf16_supported(including_emulation=False) is False); "
                         "use 'fp16', 'fp32' or 'auto'")
    return precision


def dtype(precision: str) -> torch.dtype:
    """The autocast dtype of a resolved precision."""
    if precision not in _DTYPES:
        raise ValueError(f"precision={precision!r}; expected a resolved one of {tuple(_DTYPES)}")
    return _DTYPES[precision]


def autocast(precision: str, device: torch.device):
    """Autocast for a resolved ``precision`` on ``device`` (disabled for fp32)."""
    return torch.autocast(device.type, dtype=dtype(precision), enabled=precision != "fp32")


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A loss scaler that is active for fp16 only (bf16 has fp32's exponent range)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


@contextlib.contextmanager
def strict_fp32():
    """fp32 matmuls and convolutions without TF32 inside the block; the flags restored after."""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = matmul.fp32_precision, conv.fp32_precision
    matmul.fp32_precision = conv.fp32_precision = "ieee"
    try:
        yield
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved
