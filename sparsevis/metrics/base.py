"""Metric metadata and the input checks shared by the metric kernels."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..runtime import torch_threads

STUDIES = ("prune", "interpretability", "discovery", "alignment")
#: How a pruned value is compared with the dense one: "ratio" (pruned / dense, or dense /
#: pruned when lower is better) only for metrics on a non-negative scale; "difference"
#: (pruned - dense, sign flipped when lower is better) for signed or bounded-near-zero ones
#: (kappa, accuracy difference), where a ratio is undefined or meaningless.
SCALES = ("difference", "ratio")
#: What the kernel takes: "maps" (maps, masks, valid=None) -> Tensor[B]; "map_only" (maps,
#: valid=None) -> Tensor[B]; "boxes" (pred, gt);
#: "correct" one bool vector; "correct_pair" two aligned bool vectors; "decisions"
#: (decisions, shape_labels, texture_labels); "model" (model, images, maps, target).
INPUTS = ("maps", "map_only", "boxes", "correct", "correct_pair", "decisions", "model")


@dataclass(frozen=True)
class MetricInfo:
    """Everything the stages, the results table and the figures need to know about a metric.

    One record per metric, defined next to its kernel (one metric per module).

      name         the metric's name in the results table
      studies      the studies that report it (:data:`STUDIES`)
      higher_is_better  its direction
      label        short name for axes and legends; ``long_label`` for captions and prose
      paper        True when the paper uses it, False for this project's extensions
      color        display colour (hex), the same on every page
      value_range  closed interval of possible values
      scale        "ratio" or "difference" (:data:`SCALES`): how pruned compares with dense
      inputs       the kernel's call signature (:data:`INPUTS`)
      kernel       the function that computes it
      reference    the paper that defines it
    """

    name: str
    studies: tuple[str, ...]
    higher_is_better: bool
    label: str
    long_label: str
    paper: bool
    color: str
    value_range: tuple[float, float]
    scale: str
    inputs: str
    kernel: Callable
    reference: str

    def __post_init__(self):
        bad = [s for s in self.studies if s not in STUDIES]
        if not self.studies or bad:
            raise ValueError(f"metric {self.name!r}: studies={self.studies!r}; expected a non-empty tuple of {STUDIES}")
        if self.scale not in SCALES:
            raise ValueError(f"metric {self.name!r}: scale={self.scale!r}; expected one of {SCALES}")
        if self.scale == "ratio" and self.value_range[0] < 0:
            raise ValueError(f"metric {self.name!r}: scale='ratio' needs a non-negative value_range, "
                             f"got {self.value_range}; use 'difference'")
        if self.inputs not in INPUTS:
            raise ValueError(f"metric {self.name!r}: inputs={self.inputs!r}; expected one of {INPUTS}")
        if not re.fullmatch(r"#[0-9a-f]{6}", self.color):
            raise ValueError(f"metric {self.name!r}: color={self.color!r}; expected '#rrggbb' (lower case)")

    @property
    def extension(self) -> bool:
        """True for metrics beyond the paper (``not paper``)."""
        return not self.paper


def as_tensor(x, name: str) -> torch.Tensor:
    """``x`` as a tensor (NumPy arrays are wrapped, not copied); anything else is a ValueError."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    raise ValueError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def check_maps_masks(maps, masks, valid=None):
    """Validate relevance maps (B,H,W), ground-truth masks and the optional valid-pixel mask.

    Returns ``(maps, masks, valid)`` with ``valid`` all True when it was None. Maps must be a
    floating tensor (NaN and inf are allowed: such a map is degenerate, see
    ``sparsevis.metrics.degenerate``); masks and valid must be bool tensors of the same shape on the same
    device (``masks=None``: no masks to check, None is returned for them).
    """
    maps = as_tensor(maps, "maps")
    if maps.ndim != 3 or not maps.is_floating_point():
        raise ValueError(f"maps: expected a floating tensor of shape (B,H,W), got {maps.dtype} of shape {tuple(maps.shape)}")
    if valid is None:
        valid = torch.ones_like(maps, dtype=torch.bool)
    checked = [None if masks is None else _check_like(maps, masks, "masks"), _check_like(maps, valid, "valid")]
    return maps, *checked


# CPU: kernels run on one thread, on chunks of about this many pixels, so that each chunk's
# temporaries stay in cache between the passes (one pass over a whole batch of 224x224 maps
# streams tens of MB through memory per temporary); on other devices the whole batch goes at once.
CPU_CHUNK_PIXELS = 1 << 18


def per_chunk(kernel: Callable, maps: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
    """``kernel(maps, *others)`` on chunks of images along dim 0 on one thread (CPU),
    concatenated; the whole batch at once elsewhere."""
    if maps.device.type != "cpu":
        return kernel(maps, *others)
    per_image = max(1, maps[0].numel()) if len(maps) else 1
    k = max(1, CPU_CHUNK_PIXELS // per_image)
    with torch_threads(1):
        if len(maps) <= k:
            return kernel(maps, *others)
        return torch.cat([kernel(*parts) for parts in zip(*(t.split(k) for t in (maps, *others)))])


def valid_range(maps: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum and maximum of each map (B,H,W) over its valid pixels, (B,) each.

    One pass: void pixels take the value of the image's first valid pixel, which changes
    neither extreme. NaN propagates; an image without valid pixels gets its first pixel's value.
    """
    b = maps.shape[0]
    m, v = maps.reshape(b, -1), valid.reshape(b, -1)
    first = v.to(torch.uint8).argmax(dim=1, keepdim=True)
    return torch.aminmax(torch.where(v, m, m.gather(1, first)), dim=1)


def is_degenerate(lo: torch.Tensor, hi: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B,) bool from :func:`valid_range`: constant, non-finite or without valid pixels."""
    return (lo == hi) | ~torch.isfinite(lo) | ~torch.isfinite(hi) | ~valid.flatten(1).any(dim=1)


def _check_like(maps: torch.Tensor, m, name: str) -> torch.Tensor:
    m = as_tensor(m, name)
    if m.dtype != torch.bool or m.shape != maps.shape:
        raise ValueError(f"{name}: expected bool tensor of shape (B,H,W) matching maps {tuple(maps.shape)}, "
                         f"got {m.dtype} of shape {tuple(m.shape)}")
    if m.device != maps.device:
        raise ValueError(f"{name}: expected a tensor on {maps.device} like maps, got one on {m.device}")
    return m


def as_bool_vector(x, name: str) -> np.ndarray:
    """A 1-D bool array from a bool tensor, array or sequence; anything else is a ValueError."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1 or arr.dtype != np.bool_:
        raise ValueError(f"{name}: expected a 1-D bool vector (one entry per trial), got {arr.dtype} of shape {arr.shape}")
    return arr
