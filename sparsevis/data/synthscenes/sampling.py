"""Drawing the scene parameters: the object (class, texture, place, size, rotation, colours),
the background and the distractors, as arrays from one ``numpy`` generator."""
from __future__ import annotations

import math

import numpy as np

from .splits import CLASSES, TEXTURES
from .textures import PALETTE

MAX_DISTRACTORS = 8


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """HSV in [0, 1] (..., 3) -> RGB in [0, 1] (..., 3)."""
    h, s, v = hsv[..., 0] % 1.0, np.clip(hsv[..., 1], 0, 1), np.clip(hsv[..., 2], 0, 1)
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros(hsv.shape[:-1] + (3,))
    for k, (r, g, b) in enumerate(choices):
        m = i == k
        out[m] = np.stack([r[m], g[m], b[m]], -1)
    return out


def draw(rng: np.random.Generator, n: int, cue_conflict: bool, size: int, texture_prob: float,
         scale_range: tuple[float, float], max_rotation: float, n_distractors: tuple[int, int]) -> dict:
    """The parameters of ``n`` scenes (arrays with ``n`` rows), drawn from ``rng`` in a fixed order;
    the arguments after ``cue_conflict`` are the :class:`SynthScenes` fields of the same names."""
    C, T, S = len(CLASSES), len(TEXTURES), size
    p: dict = {}
    p["label"] = rng.permutation(np.arange(n) % C)
    if cue_conflict:
        p["texture"] = (p["label"] + rng.integers(1, C, n)) % C
    else:
        own = rng.random(n) < texture_prob
        p["texture"] = np.where(own, p["label"], rng.integers(0, T, n))
    lo, hi = scale_range
    p["radius"] = rng.uniform(lo, hi, n) * S / 2                     # bounding-circle radius, px
    margin = p["radius"] + 1.0
    p["cx"] = margin + rng.random(n) * (S - 2 * margin)
    p["cy"] = margin + rng.random(n) * (S - 2 * margin)
    p["angle"] = np.deg2rad(rng.uniform(-max_rotation, max_rotation, n))
    # texture parameters (pixel units at this size, scaled from 64 px)
    k = S / 64
    p["tex_angle"] = rng.uniform(0, 2 * math.pi, n)
    p["tex_scale"] = rng.uniform(0.85, 1.15, n) * k
    p["tex_phase"] = rng.random((n, 2))
    p["tex_amp"] = rng.uniform(0.8, 1.2, n)
    p["tex_offset"] = rng.uniform(-0.6, 0.6, (n, 2)) * p["radius"][:, None]
    hsv = PALETTE[p["texture"]] + np.concatenate(
        [rng.uniform(-0.025, 0.025, (n, 2, 1)), rng.uniform(-0.08, 0.08, (n, 2, 2))], -1)
    p["tex_colours"] = hsv_to_rgb(hsv)                               # (n, 2, 3)
    # random fields of the blobs / speckle textures, at a fixed resolution so that the
    # texture scales with the image like the periodic ones (blobs of ~4 px, 2-px speckles at 64 px)
    p["blob_field"] = rng.standard_normal((n, 1, 16, 16))
    p["speckle_field"] = rng.random((n, 1, 32, 32)) < 0.5
    # background: low-saturation colour, a gradient and low-frequency noise
    bg_hsv = np.stack([rng.random(n), rng.uniform(0.0, 0.3, n), rng.uniform(0.3, 0.75, n)], 1)
    p["bg_colour"] = hsv_to_rgb(bg_hsv)
    p["bg_grad"] = rng.uniform(-0.12, 0.12, (n, 3))
    p["bg_grad_angle"] = rng.uniform(0, 2 * math.pi, n)
    p["bg_noise"] = rng.standard_normal((n, 3, 5, 5)) * 0.05
    # distractors
    a, b = n_distractors
    K = MAX_DISTRACTORS
    count = rng.integers(a, b + 1, n)
    p["d_active"] = np.arange(K)[None, :] < count[:, None]
    p["d_line"] = rng.random((n, K)) < 0.5
    p["d_pos"] = rng.uniform(-0.05, 1.05, (n, K, 2)) * S
    p["d_axes"] = rng.uniform(1.5, 4.5, (n, K, 2)) * k
    p["d_len"] = rng.uniform(6.0, 20.0, (n, K)) * k
    p["d_width"] = rng.uniform(0.8, 1.8, (n, K)) * k
    p["d_angle"] = rng.uniform(0, math.pi, (n, K))
    d_hsv = np.stack([rng.random((n, K)), rng.uniform(0.1, 0.6, (n, K)), rng.uniform(0.15, 0.95, (n, K))], -1)
    p["d_colour"] = hsv_to_rgb(d_hsv)
    return p
