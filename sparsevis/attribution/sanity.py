"""Model-randomisation sanity check (Adebayo et al., "Sanity checks for saliency maps", 2018).

A map that explains the model must change when the model's weights are re-initialised:
:func:`randomisation_check` returns, per image, the Spearman rank correlation between the maps
of the model and of a copy with re-initialised weights (low = the method passes). Known
outcome (Adebayo et al.): methods that multiply by the input or follow guided gradients keep
much of the image's structure under randomisation and correlate more than plain gradients or
Grad-CAM do.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from sparsevis.prune.masks import apply_masks

from .base import eval_mode, predicted
from .registry import attribute

INITS = ("reset", "normal")


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation between rows of a and b (B, ...) flattened; ties get average ranks.

    A row that is constant in either input has no defined correlation and gives NaN.
    """
    a, b = a.flatten(1).double(), b.flatten(1).double()
    if a.shape != b.shape:
        raise ValueError(f"spearman: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    den = (ra.pow(2).sum(1) * rb.pow(2).sum(1)).sqrt()
    return torch.where(den > 0, (ra * rb).sum(1) / den.clamp_min(1e-300), torch.nan).float()


def _average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 0..N-1 per row of (B, N), tied values sharing their mean rank (batched)."""
    bsz, n = x.shape
    values, order = x.sort(dim=1)
    new_group = torch.ones_like(values, dtype=torch.bool)
    new_group[:, 1:] = values[:, 1:] != values[:, :-1]
    group = new_group.cumsum(dim=1) - 1 + torch.arange(bsz, device=x.device)[:, None] * n
    pos = torch.arange(n, device=x.device, dtype=x.dtype).expand(bsz, n)
    total = torch.zeros(bsz * n, dtype=x.dtype, device=x.device).index_add_(0, group.flatten(), pos.flatten())
    count = torch.zeros(bsz * n, dtype=x.dtype, device=x.device).index_add_(
        0, group.flatten(), torch.ones_like(pos).flatten())
    mean_rank = (total / count.clamp_min(1))[group]
    return torch.empty_like(mean_rank).scatter_(1, order, mean_rank)


def randomise(model: nn.Module, seed: int = 0, init: str = "reset", std: float = 0.02,
              keep_masks: bool = True) -> nn.Module:
    """A deep copy of ``model`` with re-initialised weights (the model itself is untouched).

    init="reset": every module's own initialiser (``reset_parameters`` /
    ``_reset_parameters``, which also resets BatchNorm running statistics); parameters owned by
    modules without one (ViT class token, position embedding, layer scales) are drawn from
    N(0, std^2). init="normal": every parameter with 2 or more dimensions from N(0, std^2),
    1-D parameters (biases, norm scales) and buffers kept. The draws use torch's RNG forked
    and seeded with ``seed``. keep_masks: pruned weights (sparsevis masks) stay zero, so the
    randomised copy has the same sparsity pattern.
    """
    if init not in INITS:
        raise ValueError(f"init={init!r}; expected one of {', '.join(INITS)}")
    clone = copy.deepcopy(model)
    param = next(clone.parameters(), None)
    devices = [param.device] if param is not None and param.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        if init == "reset":
            covered = set()
            for module in clone.modules():
                reset = getattr(module, "reset_parameters", None) or getattr(module, "_reset_parameters", None)
                if callable(reset):
                    reset()
                    covered.update(id(p) for p in module.parameters(recurse=False))
            for p in clone.parameters():
                if id(p) not in covered:
                    p.normal_(0.0, std)
        else:
            for p in clone.parameters():
                if p.ndim >= 2:
                    p.normal_(0.0, std)
    if keep_masks:

        apply_masks(clone)
    return clone


def randomisation_check(method: str, model: nn.Module, images: torch.Tensor, target=None, *,
                        seed: int = 0, init: str = "reset", std: float = 0.02, keep_masks: bool = True,
                        batch_size: int | None = 32, progress: bool | None = None,
                        **params) -> torch.Tensor:
    """Per-image Spearman correlation between the maps of ``model`` and of a randomised copy.

    Both maps explain the same class: ``target`` (default: the original model's predicted
    class). ``params`` go to the method (e.g. a fixed ``seed``-free IG setting); ``seed``,
    ``init``, ``std`` and ``keep_masks`` to :func:`randomise`. Returns a float tensor (B,) on
    the images' device; NaN where either map is constant.
    """
    if target is None:
        with eval_mode(model):
            target = predicted(model, images)
    maps = attribute(method, model, images, target, batch_size=batch_size, progress=progress, **params)
    random_model = randomise(model, seed=seed, init=init, std=std, keep_masks=keep_masks)
    random_maps = attribute(method, random_model, images, target, batch_size=batch_size,
                            progress=progress, **params)
    return spearman(maps, random_maps)

