"""LOST: localising an object with one seed patch (Simeoni et al., BMVC 2021), batched.

The paper's object-discovery study (protocol.md, section (ii)) runs LOST on the patch
features of each pruned model. This module computes it for a whole batch of images at once
with torch, on CPU or CUDA, taking the faster path per device. On a GPU, chunks of images go
at once: one ``bmm`` for their similarity matrices and vectorised degree, seed and top-k
selection (:func:`_scores_batched`). On the CPU, images go one at a time through NumPy
(:func:`_scores_per_image`): ``f @ f.T`` there is a SYRK (one triangle: half the
multiply-adds of the ``bmm``; ``torch.mm(f, f.T)`` is a full GEMM) into one buffer that stays
in cache, then the O(N) selection on that image (benchmarks/run_all.py compares it with the
reference and with the SYRK alone). Both end in one vectorised 4-connected flood fill over the
batch.
``tests/reference_lost.py`` is an independent per-image NumPy/SciPy implementation that the
tests compare against box for box.

Definitions (per image, features ``F`` of shape ``(N, D)``, ``N = h * w`` patches in
row-major order, patch ``i`` at row ``i // w`` and column ``i % w``):

* ``A = F @ F.T``.
* degree ``d_i = #{j : A_ij > 0}``, counted exactly as written: the patch itself is included
  whenever ``A_ii = |f_i|^2 > 0`` (i.e. for every non-zero feature). This adds 1 to every
  non-zero patch and so only matters for all-zero features, which get degree 0 (LOST's
  definition, counted over ``A > 0`` inclusive).
* seed = patch of smallest degree; ties go to the **lowest patch index** (the first in
  row-major order).
* the ``k`` lowest-degree patches (``k`` clipped to ``N``) are taken from a *stable* sort of
  the degrees: ties are again broken by the lowest index, so the candidate set is unique and
  always starts with the seed.
* of those candidates, the patches with ``A[seed, j] > 0`` are kept; the seed itself is
  **always** kept, even when ``A[seed, seed] = 0`` (an all-zero seed feature).
* score map ``s = sum of the kept rows of A``; mask ``s > 0``; the 4-connected component of
  the mask that contains the seed gives the box.
* degenerate case: when ``s[seed] <= 0`` the seed is not in the mask (possible only when the
  seed's feature is zero or in round-off corner cases). LOST's released code raises an error
  there; here the component is **the seed cell alone**, so the box is that one cell, and a
  batch never fails because of one image.

Features in float16 / bfloat16 (or integer / bool) are promoted to float32 before ``A`` is
formed: half precision overflows for ResNet-50's 2048-d features and rounds small
similarities to the wrong sign. float32 and float64 are used as given.
"""
from __future__ import annotations

import contextlib
from numbers import Integral
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F_nn

from ..runtime import torch_threads

__all__ = [
    "LostResult",
    "boxes_to_pixels",
    "connected_component",
    "lost",
    "mask_to_box",
    "pad_to_multiple",
]


class LostResult(NamedTuple):
    """Everything LOST computed, for drawing (``lost(..., return_details=True)``).

    - ``boxes``: (B, 4) int64, grid cells, x1, y1, x2, y2 (x2, y2 exclusive).
    - ``seed``: (B,) int64, flat patch index of the seed (row = seed // w, col = seed % w).
    - ``degree``: (B, N) int64, number of positive similarities of each patch (self included).
    - ``score_map``: (B, h, w), sum of the kept patches' rows of A (the similarity map); its
      positive part is the mask LOST thresholds.
    - ``mask``: (B, h, w) bool, the 4-connected component of ``score_map > 0`` containing
      the seed (the seed cell alone in the degenerate case), i.e. the region boxed.
    """

    boxes: torch.Tensor
    seed: torch.Tensor
    degree: torch.Tensor
    score_map: torch.Tensor
    mask: torch.Tensor


# --------------------------------------------------------------------------------------------
# validation helpers (shared with tokencut.py)

def _check_grid(grid) -> tuple[int, int]:
    try:
        h, w = grid
    except (TypeError, ValueError):
        raise ValueError(f"grid must be a pair (h, w) of positive integers; got {grid!r}") from None
    if isinstance(h, torch.Tensor):
        h = h.item()
    if isinstance(w, torch.Tensor):
        w = w.item()
    if (not isinstance(h, Integral) or not isinstance(w, Integral) or isinstance(h, bool)
            or isinstance(w, bool) or h < 1 or w < 1):
        raise ValueError(f"grid must be a pair (h, w) of positive integers; got {grid!r}")
    return int(h), int(w)


def _check_features(features, grid, name: str = "features") -> tuple[torch.Tensor, int, int]:
    """Validate ``features`` (B, N, D) against ``grid``; promote to float32 unless float32/64."""
    if not isinstance(features, torch.Tensor):
        try:
            features = torch.as_tensor(features)
        except (TypeError, ValueError, RuntimeError) as e:
            raise ValueError(f"{name} must be a tensor of shape (B, N, D); got {type(features).__name__}") from e
    if features.dim() != 3:
        raise ValueError(
            f"{name} must be 3-D (B, N, D) with N = h * w patches; got shape {tuple(features.shape)}"
        )
    if features.is_complex():
        raise ValueError(f"{name} must be real-valued; got dtype {features.dtype}")
    h, w = _check_grid(grid)
    n = features.shape[1]
    if n != h * w:
        raise ValueError(
            f"{name} has N={n} patches (shape {tuple(features.shape)}) but grid={tuple(grid)!r} "
            f"needs N = h * w = {h * w}"
        )
    if features.dtype not in (torch.float32, torch.float64):
        features = features.to(torch.float32)
    return features, h, w


def _check_stride(stride) -> tuple[int, int]:
    if isinstance(stride, Integral) and not isinstance(stride, bool):
        sy = sx = int(stride)
    else:
        try:
            sy, sx = (int(s) for s in stride)
        except (TypeError, ValueError):
            raise ValueError(f"stride must be a positive integer or a pair (sy, sx); got {stride!r}") from None
    if sy < 1 or sx < 1:
        raise ValueError(f"stride must be positive; got {stride!r}")
    return sy, sx


# --------------------------------------------------------------------------------------------
# connected components and boxes

def _run_ids(mask: torch.Tensor) -> torch.Tensor:
    """Label every maximal horizontal run of True cells in ``mask`` (B, h, w) with a unique
    positive id (unique across the whole batch); False cells get 0."""
    prev = torch.zeros_like(mask)
    prev[..., 1:] = mask[..., :-1]
    starts = mask & ~prev
    ids = torch.cumsum(starts.reshape(-1), 0).reshape(mask.shape)
    return torch.where(mask, ids, torch.zeros_like(ids))


def connected_component(mask: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
    """The 4-connected component of ``mask`` that contains ``seed``, for a batch.

    mask: (B, h, w) bool. seed: (B,) flat cell indices (``row * w + col``).
    Returns (B, h, w) bool. If ``mask`` is False at the seed, the component is the seed cell
    alone (the convention LOST and TokenCut here use for the degenerate case).

    Vectorised flood fill over all images at once: starting from the seed, each step
    spreads the reached set along whole horizontal runs of the mask and then along whole
    vertical runs (a segment-wise "any" via ``index_add_``), until nothing changes. The
    number of steps is one more than the number of direction changes the fill needs (a few
    for blob-like masks), and at most ``h * w + 1`` even for a spiral.
    """
    if mask.dim() != 3:
        raise ValueError(f"mask must be 3-D (B, h, w); got shape {tuple(mask.shape)}")
    mask = mask.bool()
    b, h, w = mask.shape
    seed = torch.as_tensor(seed, device=mask.device).long().reshape(-1)
    if seed.numel() != b:
        raise ValueError(f"seed must have one index per image (B={b}); got {seed.numel()}")
    if b and (int(seed.min()) < 0 or int(seed.max()) >= h * w):
        raise ValueError(f"seed indices must lie in [0, h*w = {h * w}); got {seed.tolist()}")
    onehot = torch.zeros(b, h * w, dtype=torch.bool, device=mask.device)
    onehot.scatter_(1, seed[:, None], True)
    onehot = onehot.view(b, h, w)
    if b == 0:
        return onehot

    row_ids = _run_ids(mask).reshape(-1)
    col_ids = _run_ids(mask.transpose(1, 2).contiguous()).transpose(1, 2).reshape(-1)
    n_ids = mask.numel() + 1
    cur = (onehot & mask).reshape(-1)
    for _ in range(h * w + 1):
        prev = cur
        for ids in (row_ids, col_ids):
            hit = torch.zeros(n_ids, dtype=torch.int32, device=mask.device)
            hit.index_add_(0, ids, cur.to(torch.int32))
            hit[0] = 0  # id 0 = cells outside the mask
            cur = hit[ids] > 0
        if torch.equal(cur, prev):
            break
    comp = cur.view(b, h, w)
    return comp | (onehot & ~mask)


def mask_to_box(mask: torch.Tensor) -> torch.Tensor:
    """Bounding boxes (B, 4) int64 ``x1, y1, x2, y2`` (x2, y2 exclusive) of masks (B, h, w)
    in grid cells. An empty mask gives the empty box (0, 0, 0, 0)."""
    if mask.dim() != 3:
        raise ValueError(f"mask must be 3-D (B, h, w); got shape {tuple(mask.shape)}")
    mask = mask.bool()
    _, h, w = mask.shape
    rows = mask.any(dim=2)
    cols = mask.any(dim=1)
    ar_h = torch.arange(h, device=mask.device)
    ar_w = torch.arange(w, device=mask.device)
    y1 = torch.where(rows, ar_h, h).amin(dim=1)
    y2 = torch.where(rows, ar_h + 1, 0).amax(dim=1)
    x1 = torch.where(cols, ar_w, w).amin(dim=1)
    x2 = torch.where(cols, ar_w + 1, 0).amax(dim=1)
    boxes = torch.stack([x1, y1, x2, y2], dim=1)
    return torch.where(rows.any(dim=1, keepdim=True), boxes, torch.zeros_like(boxes))


# --------------------------------------------------------------------------------------------
# LOST

# Default cap on the elements of one chunk of similarity matrices in the batched (non-CPU)
# path: large chunks (1 GB in float32) keep the device busy.
_CHUNK_ELEMENTS = 2**28


def _scores_per_image(feats: torch.Tensor, kk: int) -> tuple[torch.Tensor, ...]:
    """Degree, seed and score map of every image (CPU), one image at a time with NumPy.

    ``f @ f.T`` in NumPy is a BLAS SYRK (one triangle: half the multiply-adds of ``torch.mm``
    or ``bmm``, which have no SYRK path), written into one reused (N, N) buffer that stays in
    cache for the passes that follow (a fresh buffer per image costs page faults worth half
    the product at VOC's grid). The kept rows are summed in candidate order, as the reference
    does.
    """
    f_all = feats.detach().contiguous().numpy()
    b, n, _ = f_all.shape
    A = np.empty((n, n), dtype=f_all.dtype)
    positive = np.empty((n, n), dtype=bool)
    degree = np.empty((b, n), dtype=np.int64)
    seed = np.empty(b, dtype=np.int64)
    score = np.empty((b, n), dtype=f_all.dtype)
    for i, f in enumerate(f_all):
        np.matmul(f, f.T, out=A)
        np.greater(A, 0, out=positive)
        degree[i] = positive.sum(axis=1, dtype=np.int32)
        order = np.argsort(degree[i], kind="stable")[:kk]  # ties: lowest index first
        s = order[0]
        kept = order[positive[s, order]]
        if kept.size == 0 or kept[0] != s:  # the seed is always kept (first: it has the lowest degree)
            kept = np.concatenate([[s], kept])
        A.take(kept, axis=0).sum(axis=0, out=score[i])
        seed[i] = s
    return torch.from_numpy(degree), torch.from_numpy(seed), torch.from_numpy(score)


def _scores_batched(feats: torch.Tensor, kk: int, chunk_size: int) -> tuple[torch.Tensor, ...]:
    """Degree, seed and score map of every image, ``chunk_size`` images at a time: one
    ``bmm`` for their similarity matrices and batched torch ops for the rest (GPUs)."""
    b, n, _ = feats.shape
    dev = feats.device
    degree = torch.empty(b, n, dtype=torch.int64, device=dev)
    seed = torch.empty(b, dtype=torch.int64, device=dev)
    score = torch.empty(b, n, dtype=feats.dtype, device=dev)
    for start in range(0, b, chunk_size):
        f = feats[start:start + chunk_size]
        c = f.shape[0]
        rows = torch.arange(c, device=dev)
        A = torch.bmm(f, f.transpose(1, 2))  # (c, N, N)
        # degree = #{j : A_ij > 0}, self included (counted in int32: N < 2**31)
        deg = (A > 0).view(torch.uint8).sum(dim=2, dtype=torch.int32)
        order = torch.sort(deg, dim=1, stable=True).indices[:, :kk]  # ties: lowest index first
        s = order[:, 0]
        candidate = torch.zeros(c, n, dtype=torch.bool, device=dev)
        candidate.scatter_(1, order, True)
        kept = candidate & (A[rows, s] > 0)
        kept[rows, s] = True  # the seed is always kept
        score[start:start + c] = torch.bmm(kept.to(A.dtype).unsqueeze(1), A).squeeze(1)  # sum of kept rows
        degree[start:start + c] = deg
        seed[start:start + c] = s
        del A
    return degree, seed, score


def lost(features, grid: Sequence[int], k: int = 100, *, return_details: bool = False,
         chunk_size: int | None = None):
    """LOST object discovery for a batch of images (the method of protocol.md, section (ii)).

    Parameters
    ----------
    features : (B, N, D) tensor
        Patch features, ``N = h * w`` patches in row-major order (patch ``i`` is at row
        ``i // w``, column ``i % w``); ViT keys of the last block without CLS, or a
        standardised ResNet feature map flattened. float16/bfloat16 are promoted to float32.
    grid : (h, w)
        The patch grid.
    k : int
        Number of lowest-degree patches considered (LOST: 100); clipped to ``N``.
    return_details : bool
        Return a :class:`LostResult` (boxes, seed, degree, score map, component mask)
        instead of only the boxes.
    chunk_size : int, optional
        Off the CPU: images whose similarity matrices are held at once (memory:
        ``chunk_size * N**2`` floats). Default: as many as fit in 256 M elements. The CPU
        holds one image's matrix at a time and ignores it. The result does not depend on it.

    Returns
    -------
    (B, 4) int64 boxes in grid cells ``x1, y1, x2, y2`` (x2, y2 exclusive), on the features'
    device; use :func:`boxes_to_pixels` for pixels. Tie and degenerate-case rules are in the
    module docstring: degree counts ``A_ij > 0`` including ``j = i``; seed and top-k ties go
    to the lowest patch index; the seed is always kept; a seed outside the mask gives the
    seed cell as the box.
    """
    feats, h, w = _check_features(features, grid)
    if not isinstance(k, Integral) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be an integer >= 1 (LOST uses 100); got {k!r}")
    if chunk_size is not None and (not isinstance(chunk_size, Integral) or isinstance(chunk_size, bool) or chunk_size < 1):
        raise ValueError(f"chunk_size must be an integer >= 1 or None; got {chunk_size!r}")
    b, n, _ = feats.shape
    kk = min(int(k), n)
    on_cpu = feats.device.type == "cpu"
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ELEMENTS // max(1, n) ** 2)
    # CPU: NumPy per image, then small torch ops on one thread (a second adds only barriers)
    with torch_threads(1) if on_cpu else contextlib.nullcontext():
        if on_cpu:
            degree, seed, score = _scores_per_image(feats, kk)
        else:
            degree, seed, score = _scores_batched(feats, kk, int(chunk_size))
        score_map = score.view(b, h, w)
        comp = connected_component(score_map > 0, seed)
        boxes = mask_to_box(comp)
    if return_details:
        return LostResult(boxes=boxes, seed=seed, degree=degree, score_map=score_map, mask=comp)
    return boxes


# --------------------------------------------------------------------------------------------
# pixels and padding

def boxes_to_pixels(boxes_cells, stride, image_hw) -> torch.Tensor:
    """Scale grid-cell boxes to pixels and clip them to the unpadded image.

    Parameters
    ----------
    boxes_cells : (B, 4)
        ``x1, y1, x2, y2`` in cells (x2, y2 exclusive), e.g. from :func:`lost`.
    stride : int or (sy, sx)
        Patch size in pixels.
    image_hw : (H, W) or (B, 2)
        The original (unpadded) image size: one ``(H, W)`` for the whole batch, or a
        per-image tensor/array of ``(H, W)`` rows.

    Returns (B, 4) float boxes in pixels (float64 if ``boxes_cells`` is float64, else
    float32): ``x * sx`` and ``y * sy``, with x clipped to [0, W] and y to [0, H] (the padded
    cells at the bottom/right lie outside the image).
    """
    boxes = torch.as_tensor(boxes_cells)
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes_cells must have shape (B, 4); got {tuple(boxes.shape)}")
    sy, sx = _check_stride(stride)
    dtype = torch.float64 if boxes.dtype == torch.float64 else torch.float32
    boxes = boxes.to(dtype)
    hw = torch.as_tensor(image_hw, dtype=dtype, device=boxes.device)
    if hw.shape == (2,):
        hw = hw.expand(boxes.shape[0], 2)
    elif hw.shape != (boxes.shape[0], 2):
        raise ValueError(
            f"image_hw must be one (H, W) pair or a ({boxes.shape[0]}, 2) tensor of (H, W) rows; "
            f"got shape {tuple(hw.shape)}"
        )
    scale = torch.tensor([sx, sy, sx, sy], dtype=dtype, device=boxes.device)
    px = boxes * scale
    limit = torch.stack([hw[:, 1], hw[:, 0], hw[:, 1], hw[:, 0]], dim=1)
    return torch.minimum(px.clamp_min(0), limit)


def pad_to_multiple(images: torch.Tensor, stride) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad a batch (B, C, H, W) (or one image (C, H, W)) at the bottom and right so that
    H and W are multiples of ``stride`` (int or ``(sy, sx)``).

    Returns ``(padded, (H, W))`` with the original size, for :func:`boxes_to_pixels`. The
    input is returned unchanged when no padding is needed. Zero is the dataset mean for
    normalised images, as in LOST's own padding.
    """
    if not isinstance(images, torch.Tensor) or images.dim() not in (3, 4):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor (B, C, H, W) or (C, H, W); got {shape}")
    sy, sx = _check_stride(stride)
    H, W = int(images.shape[-2]), int(images.shape[-1])
    ph, pw = (-H) % sy, (-W) % sx
    if ph == 0 and pw == 0:
        return images, (H, W)
    return F_nn.pad(images, (0, pw, 0, ph), mode="constant", value=0.0), (H, W)
