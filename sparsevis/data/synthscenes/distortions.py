"""The OOD distortions of rendered scenes (colour, contrast, low-/high-pass, uniform noise, phase
scrambling, rotation), applied to the greyscale image as in Geirhos et al."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from sparsevis.runtime import torch_threads

from .render import to_uint8


def grey(x: torch.Tensor) -> torch.Tensor:
    """Luminance (N,1,H,W) of float RGB images, as skimage.color.rgb2gray computes it."""
    return (0.2125 * x[:, 0] + 0.7154 * x[:, 1] + 0.0721 * x[:, 2]).unsqueeze(1)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding, as explicit shifted sums (deterministic)."""
    if sigma <= 0:
        return x
    H, W = x.shape[-2:]
    r = min(int(math.ceil(3 * sigma)), min(H, W) - 1)
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float64) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).tolist()
    for dim, n in ((-1, W), (-2, H)):
        xp = F.pad(x, (r, r, 0, 0) if dim == -1 else (0, 0, r, r), mode="reflect")
        acc = k[0] * xp.narrow(dim, 0, n)
        for j in range(1, len(k)):
            acc = acc + k[j] * xp.narrow(dim, j, n)
        x = acc
    return x


def distort(base: torch.Tensor, dataset: str, condition: str, rng: np.random.Generator, size: int,
             chunk: int) -> torch.Tensor:
    """Apply one OOD condition to uint8 images (N,3,H,W); returns uint8 images."""
    if dataset == "colour" and condition == "cr":
        return base.clone()
    n, _, H, W = base.shape
    scale = size / 64
    noise = None
    if dataset == "uniform-noise":
        w = float(condition)
        noise = torch.from_numpy(rng.uniform(-w, w, (n, 1, H, W)).astype(np.float32))
    elif dataset == "phase-scrambling":
        w = math.radians(float(condition))
        noise = rng.uniform(-w, w, (n, H, W // 2 + 1))
        noise[:, 0, 0] = 0.0                                # keep the mean luminance
    out = torch.empty_like(base)
    with torch_threads(1):
        for s in range(0, n, chunk):
            sl = slice(s, min(n, s + chunk))
            g = grey(base[sl].to(torch.float32) / 255)
            if dataset == "colour":                         # bw
                y = g
            elif dataset == "contrast":
                c = float(condition[1:]) / 100
                y = c * g + (1 - c) * 0.5
            elif dataset == "low-pass":
                y = blur(g, float(condition) * scale)
            elif dataset == "high-pass":
                y = g if condition == "inf" else g - blur(g, float(condition) * scale) + 0.5
            elif dataset == "uniform-noise":
                y = 0.3 * g + 0.35 + noise[sl]
            elif dataset == "phase-scrambling":
                spec = np.fft.rfft2(g[:, 0].numpy().astype(np.float64))
                y = np.fft.irfft2(spec * np.exp(1j * noise[sl]), s=(H, W))
                y = torch.from_numpy(y.astype(np.float32)).unsqueeze(1)
            elif dataset == "rotation":
                y = torch.rot90(g, int(condition) // 90, dims=(-2, -1))
            else:  # pragma: no cover
                raise AssertionError(dataset)
            out[sl] = to_uint8(y)
    return out
