"""Pixel-level gradient attributions: IG inside SmoothGrad (paper) and plain gradients (extension).

Both work on any module that maps images to logits (no surface needed).
"""
from __future__ import annotations

import numpy as np
import torch

from sparsevis.features import cpu_slice, folded_copy

from .base import (
    KINDS,
    Attribution,
    _leaf,
    channel_energy,
    check_choice,
    check_int,
    seeded,
)
from .registry import register


@register
class IGSmoothGrad(Attribution):
    """Integrated Gradients inside SmoothGrad (paper method).

    IG (Sundararajan et al. 2017) from a constant ``baseline`` (0 = the zero image in
    normalised units, i.e. the dataset mean; or a tensor broadcastable to one image, (C, H, W))
    with ``n_steps`` points of the ``integration`` rule (Gauss-Legendre by default), averaged
    over ``nt_samples`` copies of the image with Gaussian noise of standard deviation
    ``stdevs`` (normalised units) added (SmoothGrad, Smilkov et al. 2017): what captum's
    ``NoiseTunnel(IntegratedGradients(model), nt_type="smoothgrad")`` computes, with captum's
    integration rules (:func:`integration_points`; the tests check both against captum). Defaults are the paper's: 50
    steps, 2 noise samples, stdev 1.0, zero baseline.

    Pooling: squared L2 norm over the colour channels, ``R = sum_c a_c**2``, not normalised.

    Speed: ``nt_samples * n_steps`` forward/backward passes per image, through the model's
    :func:`sparsevis.features.folded_copy` (a CNN's BatchNorm folded, channels-last: the same
    gradients up to float rounding; MobileNetV2 at 224 px ran at 2.0x captum's path on one
    thread). At most ``internal_batch_size`` images go through the model at once: several noise
    samples and steps of a chunk of images, or slices of the chunk; None = per device: on the
    CPU passes of about :func:`sparsevis.features.cpu_slice` images for a CNN (MobileNetV2 at
    224 px: 26 ms per image and pass in slices of 4, 31 in passes of 8), one noise sample at
    one step for other models; on a GPU at least 64 images, and never fewer than the chunk.
    The maps do not depend on it but for float rounding. Noise comes from torch's global RNG
    on the images' device, drawn once per chunk; ``seed`` (an int) forks and seeds that RNG
    for each chunk, so a call is reproducible for a given ``batch_size``. Maps of a batch
    equal the per-image maps exactly only without noise (``stdevs=0``).
    """

    name = "ig_smoothgrad"
    label = "IG-SmoothGrad"
    color = "#cc78bc"
    paper = True
    kinds = KINDS
    any_model = True
    pooling = "squared L2 norm over colour channels (sum_c a_c^2)"
    defaults = dict(n_steps=50, nt_samples=2, stdevs=1.0, baseline=0.0, integration="gausslegendre",
                    internal_batch_size=None, seed=None)
    reference = ("Sundararajan, Taly, Yan. Axiomatic attribution for deep networks. ICML 2017; "
                 "Smilkov et al. SmoothGrad: removing noise by adding noise. arXiv:1706.03825, 2017.")

    @classmethod
    def _validate(cls, p: dict) -> None:
        check_int(cls.name, "n_steps", p["n_steps"])
        check_int(cls.name, "nt_samples", p["nt_samples"])
        check_int(cls.name, "internal_batch_size", p["internal_batch_size"], allow_none=True)
        check_int(cls.name, "seed", p["seed"], minimum=0, allow_none=True)
        if isinstance(p["stdevs"], bool) or not isinstance(p["stdevs"], (int, float)) or p["stdevs"] < 0:
            raise ValueError(f"method {cls.name!r}: stdevs={p['stdevs']!r}; expected a float >= 0")
        if not isinstance(p["baseline"], (int, float, torch.Tensor)) or isinstance(p["baseline"], bool):
            raise ValueError(f"method {cls.name!r}: baseline={p['baseline']!r}; expected a float or a "
                             "tensor broadcastable to the images")
        check_choice(cls.name, "integration", p["integration"], tuple(INTEGRATION_RULES))
        if p["integration"] == "riemann_trapezoid" and p["n_steps"] < 2:
            raise ValueError(f"method {cls.name!r}: integration='riemann_trapezoid' needs n_steps >= 2, "
                             f"got {p['n_steps']}")

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = self.params
        net = folded_copy(self.model)
        channels_last = net is not self.model
        baseline = torch.as_tensor(p["baseline"], dtype=x.dtype, device=x.device).expand_as(x)
        alphas, weights = integration_points(p["integration"], p["n_steps"])
        pairs = [(s, k) for s in range(p["nt_samples"]) for k in range(p["n_steps"])]
        if p["internal_batch_size"]:
            wanted = p["internal_batch_size"]
        elif x.device.type == "cpu":
            wanted = cpu_slice(x) if channels_last else len(x)
        else:
            wanted = max(64, len(x))
        per_pass = max(1, wanted // len(x))                         # (noise sample, step) pairs per pass
        rows = min(wanted, len(x))                                  # of so many images each
        with seeded(p["seed"], x.device):
            noisy = x + float(p["stdevs"]) * torch.randn((p["nt_samples"], *x.shape), dtype=x.dtype, device=x.device)
        path = noisy - baseline                                     # (S, B, C, H, W)
        grads = torch.zeros_like(path)                              # sum_k w_k * gradient at step k
        with torch.enable_grad():
            for i in range(0, len(pairs), per_pass):
                chunk = pairs[i:i + per_pass]
                for lo in range(0, len(x), rows):
                    part = slice(lo, lo + rows)
                    points = torch.cat([baseline[part] + alphas[k] * path[s, part] for s, k in chunk]).requires_grad_(True)
                    inp = points.contiguous(memory_format=torch.channels_last) if channels_last else points
                    logits = net(inp)
                    picked = logits.gather(1, target[part].repeat(len(chunk))[:, None]).sum()
                    grad, = torch.autograd.grad(picked, points)
                    for (s, k), g in zip(chunk, grad.split(len(points) // len(chunk))):
                        grads[s, part] += weights[k] * g
        return channel_energy((path * grads).mean(dim=0))


def integration_points(rule: str, n_steps: int) -> tuple[list[float], list[float]]:
    """The points (fractions of the way from the baseline, in [0, 1]) and weights of an IG
    integration rule with ``n_steps`` points; the weights sum to 1. The points are captum's, and
    so are the weights but the trapezoid's: captum weighs its n points, 1/(n-1) apart, with
    1/n (weights summing to (n-1)/n, so its attributions come out that much too small)."""
    return INTEGRATION_RULES[rule](n_steps)


def _gauss_legendre(n: int):
    nodes, weights = np.polynomial.legendre.leggauss(n)    # on [-1, 1]; mapped onto [0, 1]
    return [float(a) for a in (nodes + 1) / 2], [float(w) for w in weights / 2]


def _trapezoid(n: int):
    inner = [1 / (n - 1)] * (n - 2)
    return [k / (n - 1) for k in range(n)], [1 / (2 * (n - 1)), *inner, 1 / (2 * (n - 1))]


INTEGRATION_RULES = {
    "gausslegendre": _gauss_legendre,
    "riemann_trapezoid": _trapezoid,
    "riemann_left": lambda n: ([k / n for k in range(n)], [1 / n] * n),
    "riemann_right": lambda n: ([(k + 1) / n for k in range(n)], [1 / n] * n),
    "riemann_middle": lambda n: ([(k + 0.5) / n for k in range(n)], [1 / n] * n),
}


@register
class Gradient(Attribution):
    """Plain input gradients - an *extension beyond the paper* (sanity baseline).

    The gradient of the target logit w.r.t. the input pixels (Simonyan et al. 2014; captum's
    ``Saliency``), through the model's :func:`sparsevis.features.folded_copy`. Pooling: absolute value summed over the colour channels, not normalised.
    """

    name = "gradient"
    label = "gradient"
    color = "#56b4e9"
    paper = False
    kinds = KINDS
    any_model = True
    pooling = "absolute value summed over colour channels (sum_c |g_c|)"
    defaults: dict = {}
    reference = ("Simonyan, Vedaldi, Zisserman. Deep inside convolutional networks: visualising "
                 "image classification models and saliency maps. ICLR workshop 2014.")

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        net = folded_copy(self.model)
        with torch.enable_grad():
            leaf = _leaf(x)
            logits = net(leaf.contiguous(memory_format=torch.channels_last) if net is not self.model else leaf)
            grad, = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), leaf)
        return grad.abs().sum(dim=1)
