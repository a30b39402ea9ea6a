"""Metric kernels: batched torch for maps and boxes, NumPy for trial vectors.

One metric per module, each with a :class:`MetricInfo` record (study, direction, labels,
paper or extension, colour, range, scale, kernel); :data:`REGISTRY` maps the metric names used
in the results table to them. Stages and notebooks iterate :func:`for_study` instead of
listing metric names; :func:`higher_is_better` gives a direction.
"""
from __future__ import annotations

import torch

from . import accuracy as _accuracy
from . import corloc as _corloc
from . import degenerate as _degenerate
from . import error_consistency as _error_consistency
from . import faithfulness as _faithfulness
from . import pointing_game as _pointing_game
from . import relevance_mass as _relevance_mass
from . import relevance_rank as _relevance_rank
from . import shape_bias as _shape_bias
from .accuracy import accuracy
from .base import STUDIES, MetricInfo, check_maps_masks
from .corloc import box_iou, corloc, corloc_hits
from .degenerate import degenerate
from .error_consistency import (
    accuracy_difference,
    error_consistency,
    observed_consistency,
)
from .faithfulness import deletion_auc, insertion_auc, perturbation_curve
from .pointing_game import pointing_game
from .relevance_mass import relevance_mass_accuracy
from .relevance_rank import relevance_rank_accuracy
from .shape_bias import shape_bias

# registry order = figure and table order: per study, the paper's metrics first
REGISTRY: dict[str, MetricInfo] = {info.name: info for info in (
    _accuracy.INFO,
    _relevance_mass.INFO,
    _relevance_rank.INFO,
    _pointing_game.INFO,
    _degenerate.INFO,
    _faithfulness.DELETION,
    _faithfulness.INSERTION,
    _corloc.INFO,
    _shape_bias.INFO,
    _error_consistency.ACCURACY_DIFFERENCE,
    _error_consistency.OBSERVED_CONSISTENCY,
    _error_consistency.ERROR_CONSISTENCY,
)}


def get(metric_name: str) -> MetricInfo:
    """The record of a registered metric; ValueError listing the known names otherwise."""
    try:
        return REGISTRY[metric_name]
    except (KeyError, TypeError):
        raise ValueError(f"metric_name: unknown metric {metric_name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def higher_is_better(metric_name: str) -> bool:
    """Direction of a registered metric; ValueError listing the known names otherwise."""
    return get(metric_name).higher_is_better


def for_study(study: str, paper_only: bool = False) -> list[MetricInfo]:
    """The metrics a study reports, in registry order (``paper_only``: without extensions)."""
    if study not in STUDIES:
        raise ValueError(f"study: expected one of {', '.join(STUDIES)}, got {study!r}")
    return [m for m in REGISTRY.values() if study in m.studies and (m.paper or not paper_only)]


def map_metrics(maps, masks, valid=None) -> dict[str, torch.Tensor]:
    """Every interpretability metric that needs only maps and masks, per image, by name.

    ``{"relevance_mass_accuracy": (B,) float, "relevance_rank_accuracy": (B,) float,
    "pointing_game": (B,) bool, "degenerate_maps": (B,) bool}`` (registry order). Degenerate
    maps have NaN RMA/RRA, so a mean over the finite values is over fewer images: report it
    with its n (``sparsevis.stats.bootstrap_ci`` gives both) next to the mean of
    ``degenerate_maps``, the share of degenerate maps.
    """
    maps, masks, valid = check_maps_masks(maps, masks, valid)
    out = {}
    for m in for_study("interpretability"):
        if m.inputs == "maps":
            out[m.name] = m.kernel(maps, masks, valid)
        elif m.inputs == "map_only":
            out[m.name] = m.kernel(maps, valid)
    return out


__all__ = [
    "MetricInfo", "REGISTRY", "STUDIES", "get", "higher_is_better", "for_study", "map_metrics",
    "accuracy", "relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game", "degenerate",
    "box_iou", "corloc", "corloc_hits",
    "error_consistency", "observed_consistency", "accuracy_difference",
    "shape_bias",
    "deletion_auc", "insertion_auc", "perturbation_curve",
]
