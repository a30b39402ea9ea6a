"""Tracks: one object per track (see :mod:`sparsevis.tracks.base`), found by name."""
from __future__ import annotations

from .base import (
    N_EXAMPLES,
    STUDY_SEED,
    AlignmentSet,
    DiscoverySet,
    Images,
    Track,
    TrackData,
)
from .paper import Paper
from .real import Real
from .synthetic import Synthetic

REGISTRY: dict[str, Track] = {t.name: t for t in (Synthetic(), Real(), Paper())}


def get(name: str) -> Track:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"track={name!r}; expected one of {tuple(REGISTRY)}") from None


__all__ = ["AlignmentSet", "DiscoverySet", "Images", "N_EXAMPLES", "REGISTRY", "STUDY_SEED", "Track",
           "TrackData", "get"]
