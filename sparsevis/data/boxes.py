"""Tight boxes of pixel masks, shared by SynthScenes and the model-vs-human silhouettes."""
from __future__ import annotations

import torch


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N, 4) long boxes x1, y1, x2, y2 in pixels, x2/y2 exclusive (tight).

    An empty mask gives (0, 0, 0, 0)."""
    if masks.ndim != 3 or masks.dtype != torch.bool:
        raise ValueError(f"masks: expected a bool tensor (N, H, W), got {masks.dtype} of shape {tuple(masks.shape)}")
    n, h, w = masks.shape
    rows, cols = masks.any(dim=2), masks.any(dim=1)  # (N, H), (N, W)
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    big = max(h, w) + 1
    y1 = torch.where(rows, ar_h, big).amin(dim=1)
    y2 = torch.where(rows, ar_h, -1).amax(dim=1) + 1
    x1 = torch.where(cols, ar_w, big).amin(dim=1)
    x2 = torch.where(cols, ar_w, -1).amax(dim=1) + 1
    boxes = torch.stack([x1, y1, x2, y2], dim=1).long()
    boxes[~rows.any(dim=1)] = 0
    return boxes
