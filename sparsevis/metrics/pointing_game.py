"""Pointing game (Zhang et al., "Top-down neural attention by excitation backprop", IJCV 2018)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import MetricInfo, check_maps_masks, is_degenerate, per_chunk, valid_range


def _dilate(mask: torch.Tensor, t: int) -> torch.Tensor:
    """Dilate a bool (B,H,W) mask by a (2t+1)^2 square: a window sum > 0, computed as two 1-D
    box sums from cumulative sums (O(1) per pixel, unlike a (2t+1)^2 max-pool on CPU)."""
    k = 2 * t + 1
    rows = F.pad(mask.to(torch.int32), (t + 1, t)).cumsum(dim=-1)
    rows = (rows[..., k:] - rows[..., :-k]) > 0
    cols = F.pad(rows.to(torch.int32), (0, 0, t + 1, t)).cumsum(dim=-2)
    return (cols[..., k:, :] - cols[..., :-k, :]) > 0


def pointing_game(maps, masks, valid=None, tolerance: int = 0) -> torch.Tensor:
    """Hit if the maximum of R over the valid pixels lies in G (or within ``tolerance`` of it).

    maps: (B,H,W) float relevance; masks: (B,H,W) bool G; valid: optional (B,H,W) bool, False
    for void pixels (never the maximum, never part of G). Returns (B,) bool; the mean over
    images is the pointing accuracy.

    Ties: a hit if ANY maximal valid pixel is in G. A :func:`~sparsevis.metrics.degenerate`
    map (constant over the valid pixels - every pixel is then maximal - or non-finite there)
    points nowhere and is a miss. ``tolerance`` t >= 0 grows G by a (2t+1) x (2t+1) square (a
    hit within Chebyshev distance t); Zhang et al. count a hit within 15 px. An empty G or an
    image without valid pixels is a miss.
    """
    maps, masks, valid = check_maps_masks(maps, masks, valid)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"tolerance: expected a non-negative int number of pixels, got {tolerance!r}")
    return per_chunk(lambda m, g, v: _pointing(m, g, v, tolerance), maps, masks, valid)


def _pointing(maps: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor, tolerance: int) -> torch.Tensor:
    lo, hi = valid_range(maps, valid)
    g = masks & valid
    if tolerance > 0:
        g = _dilate(g, tolerance) & valid   # the maximum must be a valid pixel's
    hit = ((maps == hi.view(-1, 1, 1)) & g).flatten(1).any(dim=1)
    return hit & ~is_degenerate(lo, hi, valid)


INFO = MetricInfo(
    name="pointing_game",
    studies=("interpretability",),
    higher_is_better=True,
    label="pointing game",
    long_label="pointing game accuracy",
    paper=False,
    color="#029e73",
    value_range=(0.0, 1.0),
    scale="ratio",
    inputs="maps",
    kernel=pointing_game,
    reference="Zhang, Bargal, Lin, Brandt, Shen, Sclaroff. Top-down neural attention by "
              "excitation backprop. IJCV 126, 2018.",
)
