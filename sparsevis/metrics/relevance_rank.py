"""Relevance Rank Accuracy (Arras et al., "CLEVR-XAI", Information Fusion 2022)."""
from __future__ import annotations

import torch

from .base import MetricInfo, check_maps_masks, is_degenerate, per_chunk, valid_range


def relevance_rank_accuracy(maps, masks, valid=None) -> torch.Tensor:
    """RRA = ``|top-K pixels by R  intersect  G| / K`` with ``K = |G|``, per image, over valid pixels only.

    maps: (B,H,W) float relevance R (any sign, no NaN); masks: (B,H,W) bool G; valid: optional
    (B,H,W) bool, False for void pixels (never ranked, never counted in G). Returns (B,) float.

    Ties: pixels tied with the K-th largest value share the remaining top-K slots equally, i.e.
    the result is the expected RRA under uniformly random tie-breaking. It is deterministic and
    independent of pixel order, so a flat map scores chance level, ``|G| / #valid``, rather than
    whatever a raster-order tie-break would favour. A :func:`~sparsevis.metrics.degenerate`
    map (constant over the valid pixels, or non-finite there) gets NaN rather than that chance
    level, so that callers count it; so does an image with an empty mask (K = 0).
    """
    maps, masks, valid = check_maps_masks(maps, masks, valid)
    return per_chunk(_rra, maps, masks, valid)


def _rra(maps: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    flat = is_degenerate(*valid_range(maps, valid), valid)
    b = maps.shape[0]
    valid = valid.reshape(b, -1)
    n = valid.shape[1]
    r = maps.reshape(b, -1).masked_fill(~valid, -torch.inf)
    g = masks.reshape(b, -1) & valid
    count = dict(dim=1, dtype=torch.int32)  # int32 counts: twice as fast as int64 on CPU
    k = g.sum(**count)
    k_max = int(k.max()) if b else 0
    if k_max == 0:   # no image has a mask
        return torch.full((b,), torch.nan, dtype=maps.dtype, device=maps.device)
    # K-th largest value of each row in one O(N) selection with a common rank: append k_max - K
    # copies of +inf (and K of -inf) so that it becomes the k_max-th largest, the (N+1)-th smallest.
    pad = torch.arange(k_max, device=maps.device) < (k_max - k).unsqueeze(1)
    padded = torch.cat([r, torch.where(pad, torch.inf, -torch.inf).to(r.dtype)], dim=1)
    kth = padded.kthvalue(n + 1, dim=1, keepdim=True).values
    above = r > kth
    tied = (r == kth) & valid
    slots = (k - above.sum(**count)).to(maps.dtype)
    share = (tied & g).sum(**count) / tied.sum(**count).clamp(min=1)
    hits = (above & g).sum(**count) + slots * share
    return torch.where((k > 0) & ~flat, hits / k.clamp(min=1), torch.nan).to(maps.dtype)


INFO = MetricInfo(
    name="relevance_rank_accuracy",
    studies=("interpretability",),
    higher_is_better=True,
    label="RRA",
    long_label="relevance rank accuracy",
    paper=True,
    color="#de8f05",
    value_range=(0.0, 1.0),
    scale="ratio",
    inputs="maps",
    kernel=relevance_rank_accuracy,
    reference="Arras, Osman, Samek. CLEVR-XAI: a benchmark dataset for the ground truth "
              "evaluation of neural network explanations. Information Fusion 81, 2022.",
)
