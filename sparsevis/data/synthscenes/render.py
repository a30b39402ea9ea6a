"""Rendering scenes from their parameters: background, distractors and the textured object,
anti-aliased, in chunks of images on one thread; also the ``edge`` and ``silhouette`` kinds."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sparsevis.runtime import torch_threads

from ..boxes import masks_to_boxes
from .sampling import MAX_DISTRACTORS
from .shapes import object_sdf
from .textures import texture_field


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] -> uint8 (clamped, rounded)."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def render(p: dict, size: int, chunk: int, kind: str = "scene") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 images (N,3,H,W), object masks (N,H,W) and their tight boxes (N,4)."""
    n, S = len(p["label"]), size
    images = torch.empty(n, 3, S, S, dtype=torch.uint8)
    masks = torch.empty(n, S, S, dtype=torch.bool)
    boxes = torch.empty(n, 4, dtype=torch.float32)
    with torch_threads(1):
        for s in range(0, n, chunk):
            sl = slice(s, min(n, s + chunk))
            part = {k: torch.from_numpy(np.ascontiguousarray(v[sl])) for k, v in p.items()}
            img, sdf = _render_chunk(part, size, kind)
            m = sdf < 0
            img = to_uint8(img)
            if kind == "silhouette":  # dark (< 128) exactly on the mask, whatever the rounding
                img = torch.where(m.unsqueeze(1), img.clamp(max=127), img.clamp(min=128))
            images[sl], masks[sl], boxes[sl] = img, m, masks_to_boxes(m).to(torch.float32)
    return images, masks, boxes


def _render_chunk(p: dict, S: int, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    f32 = torch.float32
    B = p["label"].shape[0]
    xs = torch.arange(S, dtype=f32) + 0.5
    X = xs.view(1, 1, S).expand(B, S, S)
    Y = xs.view(1, S, 1).expand(B, S, S)

    def col(name):
        return p[name].to(f32).view(B, 1, 1)

    sdf = object_sdf(p, X, Y)

    if kind == "silhouette":
        alpha = (0.5 - sdf).clamp(0, 1)
        return (1 - alpha).unsqueeze(1).expand(B, 3, S, S).contiguous(), sdf
    if kind == "edge":
        w = 0.75 * S / 64
        ink = (w + 0.5 - sdf.abs()).clamp(0, 1)
        return (1 - ink).unsqueeze(1).expand(B, 3, S, S).contiguous(), sdf

    # --- background
    bg = p["bg_colour"].to(f32).view(B, 3, 1, 1).expand(B, 3, S, S)
    ga = col("bg_grad_angle")
    ramp = ((X - S / 2) * torch.cos(ga) + (Y - S / 2) * torch.sin(ga)) / S   # about [-0.7, 0.7]
    img = bg + p["bg_grad"].to(f32).view(B, 3, 1, 1) * ramp.unsqueeze(1) * 2
    img = img + F.interpolate(p["bg_noise"].to(f32), size=(S, S), mode="bilinear", align_corners=False)

    # --- distractors (under the object), each computed only where it is drawn
    for k in range(MAX_DISTRACTORS):
        for line in (False, True):
            idx = (p["d_active"][:, k] & (p["d_line"][:, k] == line)).nonzero().flatten()
            if len(idx) == 0:
                continue
            m = len(idx)

            def dcol(name, j=None):
                v = p[name][idx, k] if j is None else p[name][idx, k, j]
                return v.to(f32).view(m, 1, 1)

            px, py, th = dcol("d_pos", 0), dcol("d_pos", 1), dcol("d_angle")
            ct, st = torch.cos(th), torch.sin(th)
            Xs, Ys = X[:m] - px, Y[:m] - py
            u, v = ct * Xs + st * Ys, ct * Ys - st * Xs
            if line:
                d = torch.sqrt((u.abs() - dcol("d_len") / 2).clamp(min=0) ** 2 + v * v) - dcol("d_width") / 2
            else:
                a1, a2 = dcol("d_axes", 0), dcol("d_axes", 1)
                d = (torch.sqrt((u / a1) ** 2 + (v / a2) ** 2) - 1) * torch.minimum(a1, a2)
            a = (0.5 - d).clamp(0, 1).unsqueeze(1)
            colour = p["d_colour"][idx, k].to(f32).view(m, 3, 1, 1)
            img[idx] = img[idx] * (1 - a) + colour * a

    # --- object texture: t in [0,1] mixes colour B (0) and A (1)
    t = texture_field(p, X, Y)
    cols = p["tex_colours"].to(f32)
    obj = cols[:, 1].view(B, 3, 1, 1) + (cols[:, 0] - cols[:, 1]).view(B, 3, 1, 1) * t.unsqueeze(1)
    alpha = (0.5 - sdf).clamp(0, 1).unsqueeze(1)
    img = img * (1 - alpha) + obj * alpha
    return img.clamp(0, 1), sdf
