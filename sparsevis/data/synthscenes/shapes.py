"""The shape classes as signed-distance tables, and the object's signed distance in an image.

Each class is an exact signed-distance function in canonical coordinates (the object inside the
unit disc, y down), tabulated once on a fine grid and sampled per image with ``grid_sample``
after the object's translation, rotation and scale."""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .splits import CLASSES

SDF_GRID = 256     # resolution of the canonical signed-distance tables
SDF_EXTENT = 1.25  # they cover [-extent, extent]^2; every shape lies inside the unit disc


def _polygon_sdf(points: np.ndarray, contours: Sequence[np.ndarray]) -> np.ndarray:
    """Exact signed distance (negative inside, even-odd rule) from ``points`` (M,2) to polygons."""
    px, py = points[:, 0], points[:, 1]
    d2 = np.full(len(points), np.inf)
    inside = np.zeros(len(points), dtype=bool)
    for v in contours:
        for (ax, ay), (bx, by) in zip(v, np.roll(v, -1, axis=0)):
            ex, ey = bx - ax, by - ay
            wx, wy = px - ax, py - ay
            t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
            d2 = np.minimum(d2, (wx - ex * t) ** 2 + (wy - ey * t) ** 2)
            if ey != 0:
                crosses = (ay > py) != (by > py)
                inside ^= crosses & (px < ax + (py - ay) * ex / ey)
    d = np.sqrt(d2)
    return np.where(inside, -d, d)


def _regular(n: int, r: float = 1.0, start: float = -math.pi / 2) -> np.ndarray:
    t = start + 2 * math.pi * np.arange(n) / n
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


def _star(points: int = 5, r_out: float = 1.0, r_in: float = 0.46) -> np.ndarray:
    t = -math.pi / 2 + math.pi * np.arange(2 * points) / points
    r = np.where(np.arange(2 * points) % 2 == 0, r_out, r_in)
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, 120, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    v = np.stack([x, y], 1)
    v -= (v.max(0) + v.min(0)) / 2
    return v / np.sqrt((v ** 2).sum(1)).max()


def _crescent(bite=(0.45, -0.12), rb: float = 0.78, k: int = 160) -> np.ndarray:
    """The unit disc minus the disc of radius ``rb`` at ``bite``, as one polygon (exact SDF)."""
    b = np.asarray(bite, dtype=np.float64)
    d, phi = np.hypot(*b), math.atan2(b[1], b[0])
    alpha = math.acos((1 - rb ** 2 + d ** 2) / (2 * d))     # where the two circles cross
    t = np.linspace(phi + alpha, phi + 2 * math.pi - alpha, k)
    outer = np.stack([np.cos(t), np.sin(t)], 1)
    g0 = math.atan2(*(outer[-1] - b)[::-1])
    g1 = math.atan2(*(outer[0] - b)[::-1])
    for g1w in (g1, g1 + 2 * math.pi, g1 - 2 * math.pi):     # the arc of the bite inside the disc
        u = np.linspace(g0, g1w, k)[1:-1]
        inner = b + rb * np.stack([np.cos(u), np.sin(u)], 1)
        if (np.hypot(inner[:, 0], inner[:, 1]) < 1).all():
            return np.concatenate([outer, inner])
    raise AssertionError("crescent construction")


def _canonical_sdf(name: str, q: np.ndarray) -> np.ndarray:
    """Signed distance of shape ``name`` at canonical points ``q`` (M,2); y points down."""
    r = np.sqrt((q ** 2).sum(1))
    if name == "disc":
        return r - 1.0
    if name == "ring":
        return np.maximum(r - 1.0, 0.5 - r)
    if name == "crescent":
        return _polygon_sdf(q, [_crescent()])
    if name == "square":
        return _polygon_sdf(q, [_regular(4, 1.0, -math.pi / 4)])
    if name == "triangle":
        v = _regular(3, 1.0)
        v[:, 1] += 0.12  # centre the bounding box a little; apex up
        return _polygon_sdf(q, [v / np.sqrt((v ** 2).sum(1)).max()])
    if name == "cross":
        a, w = 0.95, 0.31
        v = np.array([[-w, -a], [w, -a], [w, -w], [a, -w], [a, w], [w, w], [w, a], [-w, a],
                      [-w, w], [-a, w], [-a, -w], [-w, -w]])
        return _polygon_sdf(q, [v])
    if name == "star":
        return _polygon_sdf(q, [_star()])
    if name == "arrow":
        v = np.array([[-0.97, -0.19], [0.12, -0.19], [0.12, -0.6], [0.99, 0.0], [0.12, 0.6],
                      [0.12, 0.19], [-0.97, 0.19]])
        return _polygon_sdf(q, [v])
    if name == "heart":
        return _polygon_sdf(q, [_heart()])
    if name == "hourglass":
        a, w = 0.68, 0.13
        v = np.array([[-a, -a], [a, -a], [w, 0.0], [a, a], [-a, a], [-w, 0.0]])
        return _polygon_sdf(q, [v])
    raise KeyError(name)


@lru_cache(maxsize=1)
def sdf_tables() -> torch.Tensor:
    """(C, G, G) float32 signed-distance tables of the classes over [-E, E]^2 (pixel centres)."""
    g = SDF_GRID
    c = (np.arange(g) + 0.5) / g * 2 * SDF_EXTENT - SDF_EXTENT
    yy, xx = np.meshgrid(c, c, indexing="ij")
    q = np.stack([xx.ravel(), yy.ravel()], 1)
    tables = np.stack([_canonical_sdf(name, q).reshape(g, g) for name in CLASSES])
    return torch.from_numpy(tables.astype(np.float32))


def object_sdf(p: dict, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Signed distance (pixels, negative inside) of each image's object at pixel centres ``X, Y``
    (B, S, S), from the scene parameters ``p`` (label, cx, cy, radius, angle)."""
    S = X.shape[-1]
    f32 = torch.float32
    B = p["label"].shape[0]

    def col(name):
        return p[name].to(f32).view(B, 1, 1)

    cx, cy, rad, ang = col("cx"), col("cy"), col("radius"), col("angle")
    dx, dy = X - cx, Y - cy
    ca, sa = torch.cos(ang), torch.sin(ang)
    qx, qy = (ca * dx + sa * dy) / rad, (-sa * dx + ca * dy) / rad
    grid = torch.stack([qx, qy], -1) / SDF_EXTENT
    tables = sdf_tables()
    sdf = torch.empty(B, S, S, dtype=f32)
    labels = p["label"]
    for c in range(len(CLASSES)):
        idx = (labels == c).nonzero().flatten()
        if len(idx) == 0:
            continue
        g = grid[idx].reshape(1, len(idx) * S, S, 2)
        v = F.grid_sample(tables[c].view(1, 1, SDF_GRID, SDF_GRID), g, mode="bilinear",
                          padding_mode="border", align_corners=False)
        sdf[idx] = v.view(len(idx), S, S)
    sdf = sdf * rad
    return sdf
