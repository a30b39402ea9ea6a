"""The textures: each a pattern in object-local coordinates with its own two colours."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .splits import TEXTURES

# Two colours (HSV in [0, 1]) per texture: A (pattern, mostly light) and B (ground, mostly dark).
PALETTE = np.array([
    [[0.14, 0.85, 0.98], [0.00, 0.00, 0.12]],   # stripes: yellow / black
    [[0.00, 0.00, 0.97], [0.97, 0.85, 0.72]],   # checker: white / red
    [[0.13, 0.25, 0.99], [0.66, 0.85, 0.50]],   # dots: cream / navy
    [[0.53, 0.45, 0.99], [0.58, 0.95, 0.62]],   # waves: light cyan / blue
    [[0.30, 0.45, 0.95], [0.36, 0.85, 0.38]],   # grid: light green / dark green
    [[0.08, 0.90, 0.99], [0.04, 0.75, 0.38]],   # blobs: orange / brown
    [[0.20, 0.80, 0.92], [0.47, 0.90, 0.42]],   # zigzag: lime / teal
    [[0.80, 0.20, 0.98], [0.76, 0.75, 0.48]],   # rings: lavender / purple
    [[0.10, 0.30, 0.88], [0.02, 0.80, 0.52]],   # bricks: sand / rust
    [[0.90, 0.45, 0.99], [0.92, 0.90, 0.45]],   # speckle: pink / magenta
], dtype=np.float64)


def texture_field(p: dict, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Each object's texture at pixel centres ``X, Y`` (B, S, S): t in [0, 1], which mixes the
    texture's colour B (0) and A (1); a function of object-local coordinates."""
    S = X.shape[-1]
    f32 = torch.float32
    B = X.shape[0]
    two_pi = 2 * math.pi

    def col(name, j=None):
        v = p[name] if j is None else p[name][:, j]
        return v.to(f32).view(B, 1, 1)

    th = col("angle") + col("tex_angle")
    dx, dy = X - col("cx"), Y - col("cy")
    u = torch.cos(th) * dx + torch.sin(th) * dy
    v = -torch.sin(th) * dx + torch.cos(th) * dy
    k, ph0, ph1, amp = col("tex_scale"), col("tex_phase", 0), col("tex_phase", 1), col("tex_amp")
    tex = p["texture"]
    out = torch.zeros(B, S, S, dtype=f32)

    def sel(i):
        return (tex == i).nonzero().flatten()

    def soft(signed):  # signed distance-like value in pixels -> anti-aliased step
        return (0.5 + signed).clamp(0, 1)

    def wave(arg, period):  # zero crossings of sin(2 pi arg / period) as soft stripes
        return soft(torch.sin(two_pi * arg / period) * period / two_pi * 1.3)

    def frac_dist(x, period):  # distance to the nearest multiple of period
        f = x / period
        return (f - torch.round(f)).abs() * period

    for i, name in enumerate(TEXTURES):
        idx = sel(i)
        if len(idx) == 0:
            continue
        U, V, K = u[idx], v[idx], k[idx]
        P0, P1, A = ph0[idx], ph1[idx], amp[idx]
        if name == "stripes":
            P = 5.0 * K
            r = wave(U + P0 * P, P)
        elif name == "checker":
            P = 9.0 * K
            s = torch.sin(two_pi * (U / P + P0)) * torch.sin(two_pi * (V / P + P1))
            r = soft(s * P / two_pi * 2.0)
        elif name == "dots":
            P = 6.0 * K
            d = torch.sqrt(frac_dist(U + P0 * P, P) ** 2 + frac_dist(V + P1 * P, P) ** 2)
            r = soft(0.3 * P - d)
        elif name == "waves":
            P = 5.5 * K
            r = wave(U + 1.8 * A * K * torch.sin(two_pi * (V / (13.0 * K) + P1)) + P0 * P, P)
        elif name == "grid":
            P = 6.5 * K
            d = torch.minimum(frac_dist(U + P0 * P, P), frac_dist(V + P1 * P, P))
            r = soft(0.65 * K - d)
        elif name == "blobs":
            f = F.interpolate(p["blob_field"][idx].to(f32), size=(S, S), mode="bicubic", align_corners=False)
            r = soft(f[:, 0] * 3.0)
        elif name == "zigzag":
            P, Q = 5.5 * K, 8.0 * K
            tri = (V / Q + P1) - torch.floor(V / Q + P1)
            tri = (tri - 0.5).abs() * 2 - 0.5                        # triangle wave in [-0.5, 0.5]
            r = wave(U + 2.5 * A * K * tri * 2 + P0 * P, P)
        elif name == "rings":
            P = 5.5 * K
            off = p["tex_offset"][idx].to(f32)
            rr = torch.sqrt((U - off[:, 0].view(-1, 1, 1)) ** 2 + (V - off[:, 1].view(-1, 1, 1)) ** 2)
            r = wave(rr + P0 * P, P)
        elif name == "bricks":
            H, L = 4.5 * K, 9.0 * K
            vv = V + P1 * H
            row = torch.floor(vv / H)
            uu = U + P0 * L + (row % 2) * (L / 2)
            d = torch.minimum(frac_dist(vv, H), frac_dist(uu, L))
            r = soft(0.6 * K - d)
        elif name == "speckle":
            f = p["speckle_field"][idx].to(f32)
            r = F.interpolate(f, size=(S, S), mode="nearest")[:, 0]
        else:  # pragma: no cover
            raise AssertionError(name)
        out[idx] = r
    return out
