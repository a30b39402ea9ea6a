"""Relevance Mass Accuracy (Arras et al., "CLEVR-XAI", Information Fusion 2022)."""
from __future__ import annotations

import torch

from .base import MetricInfo, check_maps_masks, is_degenerate, per_chunk, valid_range


def _rma(maps: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    b = maps.shape[0]
    lo, hi = valid_range(maps, valid)
    if bool((lo < 0).any()):   # from the pass the degenerate rule needs anyway
        raise ValueError("maps: expected non-negative values on the valid pixels (pool signed attributions first)")
    r = torch.where(valid, maps, 0).reshape(b, -1)
    total = r.sum(dim=1)
    inside = torch.where(masks.reshape(b, -1), r, 0).sum(dim=1)
    return torch.where(is_degenerate(lo, hi, valid), torch.nan, inside / total)


def relevance_mass_accuracy(maps, masks, valid=None) -> torch.Tensor:
    """RMA = sum(R * G) / sum(R) per image, over the valid pixels only.

    maps: (B,H,W) float relevance R >= 0 on the valid pixels; masks: (B,H,W) bool ground truth G; valid: optional
    (B,H,W) bool, False for void pixels, which count in neither numerator nor denominator.
    Returns a float tensor (B,). A :func:`~sparsevis.metrics.degenerate` map (constant over the
    valid pixels, all zeros included, or non-finite there) has no defined RMA and gets NaN -
    not the chance level ``|G| / #valid`` a flat map would score - so that callers count such
    maps (``sparsevis.stats.bootstrap_ci`` drops them and reports the n it kept); an empty
    mask with a non-degenerate map gives 0.
    """
    maps, masks, valid = check_maps_masks(maps, masks, valid)
    return per_chunk(_rma, maps, masks, valid)


INFO = MetricInfo(
    name="relevance_mass_accuracy",
    studies=("interpretability",),
    higher_is_better=True,
    label="RMA",
    long_label="relevance mass accuracy",
    paper=True,
    color="#0173b2",
    value_range=(0.0, 1.0),
    scale="ratio",
    inputs="maps",
    kernel=relevance_mass_accuracy,
    reference="Arras, Osman, Samek. CLEVR-XAI: a benchmark dataset for the ground truth "
              "evaluation of neural network explanations. Information Fusion 81, 2022.",
)
