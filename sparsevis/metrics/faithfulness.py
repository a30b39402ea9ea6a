"""Deletion and insertion curves (Petsiuk, Das, Saenko, RISE, BMVC 2018). Extension: not in the paper.

Pixels are ordered by decreasing relevance (ties by a stable sort: raster order); ``steps``
equal chunks of that order are removed from the image (deletion) or revealed on top of a
baseline image (insertion), and after each chunk the softmax probability of the target class
is recorded. The score is the trapezoid area under probability vs. fraction of pixels
perturbed, in [0,1].
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .base import MetricInfo, as_tensor

_RISE = ("Petsiuk, Das, Saenko. RISE: randomized input sampling for explanation of black-box "
         "models. BMVC 2018.")

def _perturbed_counts(steps: int, n_pixels: int, device) -> torch.Tensor:
    """Number of pixels perturbed after step s = 0..steps: floor(s * n_pixels / steps)."""
    return torch.arange(steps + 1, device=device) * n_pixels // steps


@torch.inference_mode()
def perturbation_curve(model, images, maps, target, mode: str, steps: int = 50, baseline=0.0,
                       batch_size: int = 64, progress: bool = False) -> torch.Tensor:
    """Target-class probability after each of ``steps`` chunks, shape (B, steps+1).

    model: classifier returning logits (B,classes), used as is (put it in eval mode) on the
    device of its parameters, where the inputs are moved. images: (B,C,H,W) as the model
    expects them (normalised); maps: (B,H,W) relevance; target: (B,) class ids; mode:
    "deletion" (column 0 is the intact image, column ``steps`` the baseline) or "insertion"
    (the reverse). baseline: what replaces a removed pixel, a number or a tensor broadcastable
    to (B,C,H,W); the default 0.0 is the dataset mean colour for normalised inputs (a constant
    grey rather than RISE's blurred image, so it cannot leak the object's shape).
    ``batch_size`` (image, step) pairs go through the model at once.
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode: expected 'deletion' or 'insertion', got {mode!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected a positive int, got {steps!r}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else as_tensor(images, "images").device
    images = as_tensor(images, "images").to(device)
    maps = as_tensor(maps, "maps").to(device)
    target = as_tensor(target, "target").to(device)
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"images: expected a floating tensor of shape (B,C,H,W), "
                         f"got {images.dtype} of shape {tuple(images.shape)}")
    b, _, h, w = images.shape
    if maps.shape != (b, h, w):
        raise ValueError(f"maps: expected shape (B,H,W) = {(b, h, w)} matching images, got {tuple(maps.shape)}")
    if bool(maps.isnan().any()):
        raise ValueError("maps: expected values without NaN")
    if target.shape != (b,) or target.is_floating_point():
        raise ValueError(f"target: expected integer class ids of shape ({b},), "
                         f"got {target.dtype} of shape {tuple(target.shape)}")
    try:
        baseline = torch.as_tensor(baseline, dtype=images.dtype, device=device).expand_as(images)
    except RuntimeError as e:
        raise ValueError(f"baseline: expected a number or a tensor broadcastable to {tuple(images.shape)}: {e}") from None

    n = h * w
    order = maps.reshape(b, n).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(n, device=device).expand(b, n))
    count = _perturbed_counts(steps, n, device)
    pairs = torch.cartesian_prod(torch.arange(b, device=device), torch.arange(steps + 1, device=device))
    probs = torch.empty(len(pairs), device=device)
    for start in tqdm(range(0, len(pairs), batch_size), desc=mode, disable=not progress):
        i, s = pairs[start:start + batch_size].unbind(1)
        chosen = (rank[i] < count[s, None]).view(-1, 1, h, w)
        if mode == "deletion":
            x = torch.where(chosen, baseline[i], images[i])
        else:
            x = torch.where(chosen, images[i], baseline[i])
        probs[start:start + batch_size] = model(x).softmax(dim=1).gather(1, target[i, None]).squeeze(1).float()
    return probs.view(b, steps + 1)


def _auc(curve: torch.Tensor, n_pixels: int) -> torch.Tensor:
    """Trapezoid area under (B, steps+1) curves over the fraction of pixels perturbed."""
    steps = curve.shape[1] - 1
    fraction = _perturbed_counts(steps, n_pixels, curve.device) / n_pixels
    return torch.trapezoid(curve, fraction, dim=1)


def deletion_auc(model, images, maps, target, steps: int = 50, baseline=0.0, batch_size: int = 64,
                 progress: bool = False) -> torch.Tensor:
    """Area under the deletion curve, (B,); lower is better (the probability drops fast when
    the most relevant pixels go first). Arguments as :func:`perturbation_curve`."""
    curve = perturbation_curve(model, images, maps, target, "deletion", steps, baseline, batch_size, progress)
    return _auc(curve, maps.shape[-2] * maps.shape[-1])


def insertion_auc(model, images, maps, target, steps: int = 50, baseline=0.0, batch_size: int = 64,
                  progress: bool = False) -> torch.Tensor:
    """Area under the insertion curve, (B,); higher is better (the probability rises fast when
    the most relevant pixels come first). Arguments as :func:`perturbation_curve`."""
    curve = perturbation_curve(model, images, maps, target, "insertion", steps, baseline, batch_size, progress)
    return _auc(curve, maps.shape[-2] * maps.shape[-1])


# deletion AUC can be near 0 (lower is better): compared with dense as a difference
DELETION = MetricInfo(
    name="deletion_auc", studies=("interpretability",), higher_is_better=False, label="deletion AUC",
    long_label="area under the deletion curve", paper=False, color="#fbafe4", value_range=(0.0, 1.0),
    scale="difference", inputs="model", kernel=deletion_auc, reference=_RISE)
INSERTION = MetricInfo(
    name="insertion_auc", studies=("interpretability",), higher_is_better=True, label="insertion AUC",
    long_label="area under the insertion curve", paper=False, color="#8c564b", value_range=(0.0, 1.0),
    scale="ratio", inputs="model", kernel=insertion_auc, reference=_RISE)
