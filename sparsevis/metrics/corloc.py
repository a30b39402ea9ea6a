"""Box IoU and CorLoc, the object-discovery score of LOST (Simeoni et al., BMVC 2021)."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import MetricInfo, as_tensor


def _check_boxes(boxes, name: str, shape: str) -> torch.Tensor:
    boxes = as_tensor(boxes, name)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name}: expected boxes of shape {shape} as x1,y1,x2,y2, got shape {tuple(boxes.shape)}")
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"{name}: box {i} {boxes[i].tolist()} has x2 < x1 or y2 < y1")
    return boxes if boxes.is_floating_point() else boxes.float()


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of broadcastable box tensors (..., 4); a zero union gives 0."""
    w = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    h = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    inter = w * h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union, 0.0)


def box_iou(a, b) -> torch.Tensor:
    """Pairwise IoU (N,M) of boxes a (N,4) and b (M,4), each x1,y1,x2,y2 with x1 <= x2, y1 <= y2.

    Coordinates are continuous (or integer with x2, y2 exclusive): area = (x2-x1) * (y2-y1), so a
    box [0,0,2,2] covers 4 pixels. Two boxes whose union has zero area have IoU 0.
    """
    a = _check_boxes(a, "a", "(N,4)")
    b = _check_boxes(b, "b", "(M,4)")
    return _iou(a[:, None, :], b[None, :, :])


def corloc_hits(pred_boxes, gt_boxes: Sequence, iou: float = 0.5) -> torch.Tensor:
    """(B,) bool: image i's predicted box has IoU >= ``iou`` with at least one of its gt boxes.

    pred_boxes: (B,4); gt_boxes: a sequence of B tensors/arrays (n_i,4), same convention as
    :func:`box_iou`. An image without gt boxes (n_i = 0) is a miss.
    """
    pred = _check_boxes(pred_boxes, "pred_boxes", "(B,4)")
    if len(gt_boxes) != len(pred):
        raise ValueError(f"gt_boxes: expected one (n_i,4) box set per predicted box ({len(pred)}), got {len(gt_boxes)}")
    gts = [_check_boxes(g, f"gt_boxes[{i}]", "(n_i,4)").to(pred) for i, g in enumerate(gt_boxes)]
    owner = torch.repeat_interleave(torch.arange(len(gts), device=pred.device),
                                    torch.tensor([len(g) for g in gts], dtype=torch.long, device=pred.device))
    gt = torch.cat(gts) if gts else pred.new_zeros((0, 4))
    matched = (_iou(pred[owner], gt) >= iou).to(torch.int64)
    return torch.zeros(len(pred), dtype=torch.int64, device=pred.device).index_add_(0, owner, matched) > 0


def corloc(pred_boxes, gt_boxes: Sequence, iou: float = 0.5) -> float:
    """CorLoc: fraction (0..1) of images whose predicted box has IoU >= ``iou`` with any gt box.

    The mean of :func:`corloc_hits`; LOST reports it in percent. NaN for zero images.
    """
    hits = corloc_hits(pred_boxes, gt_boxes, iou)
    return float(hits.float().mean()) if len(hits) else float("nan")


INFO = MetricInfo(
    name="corloc",
    studies=("discovery",),
    higher_is_better=True,
    label="CorLoc",
    long_label="CorLoc (IoU >= 0.5 with a ground-truth box)",
    paper=True,
    color="#d55e00",
    value_range=(0.0, 1.0),
    scale="ratio",
    inputs="boxes",
    kernel=corloc,
    reference="Simeoni et al. Localizing objects with self-supervised transformers and no labels "
              "(LOST). BMVC 2021; CorLoc from Deselaers, Alexe, Ferrari, ECCV 2010.",
)
