"""Degenerate relevance maps: maps that carry no spatial information (extension).

A map is degenerate when it is constant over its valid pixels (all zeros included: e.g. a
Grad-CAM whose ReLU clipped every cell, which min-max turns into zeros), holds a non-finite
value (NaN, inf) on a valid pixel, or has no valid pixel. The map metrics treat such maps
alike: relevance mass and rank accuracy are NaN (undefined, not chance level), the pointing
game is a miss. The share of degenerate maps is reported next to those metrics, so that a mean
over a shrinking set of defined maps shows as such.
"""
from __future__ import annotations

import torch

from .base import MetricInfo, check_maps_masks, is_degenerate, per_chunk, valid_range


def _degenerate(maps: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return is_degenerate(*valid_range(maps, valid), valid)


def degenerate(maps, valid=None) -> torch.Tensor:
    """(B,) bool: map i is constant over its valid pixels, non-finite there, or has none.

    maps: (B,H,W) float; valid: optional (B,H,W) bool, False for void pixels (ignored).
    """
    maps, _, valid = check_maps_masks(maps, None, valid)
    return per_chunk(_degenerate, maps, valid)


INFO = MetricInfo(
    name="degenerate_maps",
    studies=("interpretability",),
    higher_is_better=False,
    label="degenerate maps",
    long_label="share of degenerate (constant or non-finite) attribution maps",
    paper=False,
    color="#949494",
    value_range=(0.0, 1.0),
    scale="difference",
    inputs="map_only",
    kernel=degenerate,
    reference="This project: maps without spatial information, counted rather than scored.",
)
