"""Analyses over the results of the study stages: sweet spots (pruned vs dense, corrected)."""
from __future__ import annotations

from .sweet_spots import (
    ITEM_COLUMNS,
    SERIES_COLUMNS,
    SweetSpots,
    compare_with_control,
    paired_effects,
    summarise,
    sweet_spots,
    verdict,
    versus_control,
)

__all__ = ["ITEM_COLUMNS", "SERIES_COLUMNS", "SweetSpots", "compare_with_control", "paired_effects",
           "summarise", "sweet_spots", "verdict", "versus_control"]
