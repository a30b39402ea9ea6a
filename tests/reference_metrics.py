"""Plain per-image reference implementations of the metric kernels.

Written for clarity, one image (or trial) at a time, and where possible by a different route
than the batched kernels in ``sparsevis.metrics``. A degenerate map (:func:`flat`: constant
over the valid pixels, non-finite there, or without valid pixels) has NaN RMA and RRA and is
a pointing-game miss; tests/test_metrics.py checks the kernels
against them and benchmarks/bench_metrics.py times them.
"""
from __future__ import annotations

import numpy as np
import scipy.ndimage
import torch


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _per_image(maps, masks, valid):
    maps, masks = _np(maps).astype(np.float64), _np(masks)
    valid = np.ones_like(masks) if valid is None else _np(valid)
    return zip(maps, masks, valid)


def flat(r, v) -> bool:
    """No spatial information: no valid pixel, a non-finite valid value, or a single value."""
    values = r[v]
    return values.size == 0 or not np.isfinite(values).all() or len(np.unique(values)) == 1


def degenerate(maps, valid=None) -> np.ndarray:
    maps = _np(maps)
    return np.array([flat(r, v) for r, _, v in _per_image(maps, np.zeros(maps.shape, bool), valid)], dtype=bool)


def rma(maps, masks, valid=None) -> np.ndarray:
    out = []
    for r, g, v in _per_image(maps, masks, valid):
        out.append(np.nan if flat(r, v) else r[v & g].sum() / r[v].sum())
    return np.array(out)


def rra(maps, masks, valid=None) -> np.ndarray:
    """Expected top-K hit rate: each G pixel is in the top K with probability
    clip((K - #strictly larger) / #equal, 0, 1) under random tie-breaking."""
    out = []
    for r, g, v in _per_image(maps, masks, valid):
        k = (g & v).sum()
        if k == 0 or flat(r, v):
            out.append(np.nan)
            continue
        ranked = np.sort(r[v])
        values = r[g & v]
        larger = len(ranked) - np.searchsorted(ranked, values, side="right")
        equal = np.searchsorted(ranked, values, side="right") - np.searchsorted(ranked, values, side="left")
        out.append(np.clip((k - larger) / equal, 0, 1).sum() / k)
    return np.array(out)


def rra_no_ties(maps, masks, valid=None) -> np.ndarray:
    """The textbook definition (valid when the map has no ties): count G among the top K."""
    out = []
    for r, g, v in _per_image(maps, masks, valid):
        k = (g & v).sum()
        top = np.argsort(-r[v], kind="stable")[:k]
        out.append(g[v][top].mean() if k and not flat(r, v) else np.nan)
    return np.array(out)


def pointing(maps, masks, valid=None, tolerance=0) -> np.ndarray:
    out = []
    for r, g, v in _per_image(maps, masks, valid):
        g = g & v
        if tolerance:
            g = scipy.ndimage.binary_dilation(g, structure=np.ones((2 * tolerance + 1,) * 2, dtype=bool))
        if flat(r, v):
            out.append(False)
            continue
        maxima = v & (r == r[v].max())
        out.append(bool(g[maxima].any()))
    return np.array(out)


def box_iou(a, b) -> np.ndarray:
    a, b = _np(a).astype(np.float64), _np(b).astype(np.float64)
    out = np.zeros((len(a), len(b)))
    for i, (ax1, ay1, ax2, ay2) in enumerate(a):
        for j, (bx1, by1, bx2, by2) in enumerate(b):
            inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
            union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


def corloc_hits(pred, gts, iou=0.5) -> np.ndarray:
    pred = _np(pred)
    return np.array([bool(len(g)) and bool((box_iou(p[None], g) >= iou).any()) for p, g in zip(pred, gts)])


def error_consistency(a, b) -> float:
    """Cohen's kappa from the 2x2 table of (a correct, b correct) counts."""
    a, b = _np(a), _np(b)
    n = len(a)
    both = sum(1 for x, y in zip(a, b) if x and y)
    neither = sum(1 for x, y in zip(a, b) if not x and not y)
    pa, pb = sum(a) / n, sum(b) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    return np.nan if expected == 1 else ((both + neither) / n - expected) / (1 - expected)


def shape_bias(decisions, shapes, textures) -> float:
    shape = texture = 0
    for d, s, t in zip(decisions, shapes, textures):
        if s == t:
            continue
        shape += d == s
        texture += d == t
    return shape / (shape + texture) if shape + texture else np.nan


@torch.no_grad()
def perturbation_auc(model, images, maps, target, mode, steps, baseline=0.0) -> np.ndarray:
    """One image and one step at a time; trapezoid over the exact fraction of pixels."""
    out = []
    for x, r, t in zip(images, maps, target):
        n = r.numel()
        order = np.argsort(-_np(r).ravel(), kind="stable")
        base = torch.as_tensor(baseline, dtype=x.dtype).expand_as(x)
        probs, fractions = [], []
        for s in range(steps + 1):
            k = s * n // steps
            chosen = torch.zeros(n, dtype=torch.bool)
            chosen[torch.from_numpy(order[:k])] = True
            chosen = chosen.view(1, *r.shape)
            img = torch.where(chosen, base, x) if mode == "deletion" else torch.where(chosen, x, base)
            probs.append(model(img[None]).softmax(1)[0, t].item())
            fractions.append(k / n)
        out.append(np.trapezoid(probs, fractions))
    return np.array(out)
