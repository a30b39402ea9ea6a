"""Global unstructured pruning: L1 magnitude, random at matched sparsity, SNIP.

All methods rank one score per weight across the whole prunable set and remove exactly
``round(sparsity * N)`` weights. Pruning is cumulative: weights already pruned are ranked first,
so they stay pruned, and asking for less sparsity than the model already has is an error.
"""
from __future__ import annotations

import numbers
import warnings
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from sparsevis.models import arch_name

from .masks import _n_pruned, get_mask, set_mask, sparsity, sync_masks
from .presets import canonical_preset, prunable


def imp_schedule(rate: float, iterations: int) -> list[float]:
    """Sparsity of iterative magnitude pruning at iterations 0..``iterations``: 1-(1-rate)^k."""
    if not 0 < rate < 1:
        raise ValueError(f"rate={rate!r}: expected a fraction in (0, 1) of the remaining weights")
    if not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations={iterations!r}: expected a non-negative integer")
    return [1 - (1 - rate) ** k for k in range(iterations + 1)]


def _check_sparsity(value) -> float:
    """A Python, NumPy or 0-d torch real number in [0, 1), as a float."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # np.float32(.5), tensor(.5)
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"sparsity={value!r}: expected a number in [0, 1)")
    return float(value)


def _check_survivors(n_prune: int, total: int, n_layers: int, sparsity_target: float,
                     preset: str) -> None:
    """Refuse a target that removes every weight; warn when some layer must lose all of its."""
    kept = total - n_prune
    if kept <= 0:
        raise ValueError(f"sparsity={sparsity_target!r} rounds to all {total:,} prunable weights of "
                         f"preset {preset!r}: expected a sparsity that keeps at least one weight "
                         f"(at most {(total - 1) / total!r})")
    if kept < n_layers:
        warnings.warn(f"sparsity={sparsity_target!r} keeps {kept:,} of {total:,} weights for "
                      f"{n_layers} prunable layers of preset {preset!r}: at least "
                      f"{n_layers - kept} layers lose every weight", stacklevel=3)


def _keep_mask(scores: torch.Tensor, n_prune: int) -> torch.Tensor:
    """False for exactly ``n_prune`` lowest scores; ties at the cut go by index order.

    Already-pruned weights score -inf and are always removed; the cut among the others is found
    by selection (kthvalue) over the surviving weights only, not a full sort: linear time, and
    cheaper at every IMP iteration.
    """
    alive = scores > float("-inf")
    keep = alive.clone()
    more = n_prune - _n_pruned(alive)
    if more <= 0:
        return keep
    alive_idx = alive.nonzero().squeeze(1)
    sub = scores[alive_idx]
    cut = sub.kthvalue(more).values
    below = sub < cut
    at_cut = (sub == cut).nonzero().squeeze(1)[: more - int(torch.count_nonzero(below))]
    keep[alive_idx[below]] = False
    keep[alive_idx[at_cut]] = False
    return keep


@torch.no_grad()
def prune_by_scores(model: nn.Module, scores: dict[str, torch.Tensor], sparsity_target: float,
                    preset: str, method: str, verbose: bool = True) -> nn.Module:
    """Keep the highest-scoring weights so that exactly round(sparsity * N) are pruned."""
    items = prunable(model, preset)
    total = sum(i.weight.numel() for i in items)
    n_prune = round(sparsity_target * total)
    _check_survivors(n_prune, total, len(items), sparsity_target, preset)
    already = sum(_n_pruned(m) for m in (get_mask(i) for i in items) if m is not None)
    if n_prune < already:
        raise ValueError(f"sparsity={sparsity_target:.4f} is below the model's current "
                         f"{already / total:.4f} over preset {preset!r}: pruning never restores weights")
    flat = []
    for item in items:
        s = scores[item.name].detach().float().reshape(-1).cpu()
        mask = get_mask(item)
        if mask is not None:
            s = s.masked_fill(~mask.reshape(-1).cpu(), float("-inf"))
        flat.append(s)
    keep = _keep_mask(torch.cat(flat), n_prune)
    offset = 0
    for item in items:
        n = item.weight.numel()
        set_mask(item, keep[offset:offset + n].reshape(item.weight.shape))
        offset += n
    sync_masks(model)
    realised = sparsity(model, "prunable", preset)
    model.sparsevis_pruning = dict(preset=preset, method=method, requested=sparsity_target,
                                   sparsity=realised, sparsity_all=sparsity(model, "all", preset),
                                   n_prunable=total)
    if verbose:
        print(f"[sparsevis] {method} pruning of {arch_name(model)} over preset '{preset}': "
              f"requested {sparsity_target:.4f}, realised {realised:.4f} of {total:,} prunable "
              f"weights ({model.sparsevis_pruning['sparsity_all']:.4f} of all parameters)")
    return model


def global_magnitude(model: nn.Module, sparsity: float, preset: str = "all",
                     verbose: bool = True, **preset_switches) -> nn.Module:
    """Global unstructured L1-magnitude pruning to ``sparsity`` over the preset (in place)."""
    sparsity = _check_sparsity(sparsity)
    preset = canonical_preset(preset, **preset_switches)
    scores = {i.name: i.weight.abs() for i in prunable(model, preset)}
    return prune_by_scores(model, scores, sparsity, preset, "magnitude", verbose)


def random_prune(model: nn.Module, sparsity: float, preset: str = "all", seed: int = 0,
                 verbose: bool = True, **preset_switches) -> nn.Module:
    """Random unstructured pruning at matched sparsity (seeded; the same masks on any device)."""
    sparsity = _check_sparsity(sparsity)
    preset = canonical_preset(preset, **preset_switches)
    gen = torch.Generator().manual_seed(seed)
    scores = {i.name: torch.rand(i.weight.shape, generator=gen) for i in prunable(model, preset)}
    return prune_by_scores(model, scores, sparsity, preset, "random", verbose)


def snip(model: nn.Module, batches: Iterable, sparsity: float, preset: str = "all",
         loss_fn: Callable = F.cross_entropy, device: str | torch.device | None = None,
         verbose: bool = True, **preset_switches) -> nn.Module:
    """SNIP (Lee et al. 2019): one-shot pruning by ``|w * dL/dw|`` averaged over ``batches``.

    ``batches`` yields (inputs, targets). The saliencies are computed with the model and batches
    on ``device`` (default: where the model is); the model and its masks end where the model
    was. Under DDP the saliencies are averaged over ranks and the masks broadcast from rank 0,
    so every rank prunes the same weights.
    """
    sparsity = _check_sparsity(sparsity)
    preset = canonical_preset(preset, **preset_switches)
    items = prunable(model, preset)
    home = next(model.parameters()).device
    device = torch.device(device) if device is not None else home
    model.to(device)
    try:
        saliency = {i.name: torch.zeros_like(i.weight) for i in items}
        n = 0
        for inputs, targets in batches:
            model.zero_grad(set_to_none=True)
            loss_fn(model(inputs.to(device)), targets.to(device)).backward()
            for i in items:
                saliency[i.name] += (i.weight.detach() * i.weight.grad).abs()
            n += 1
        if n == 0:
            raise ValueError("snip: `batches` yielded no batch")
        model.zero_grad(set_to_none=True)
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            for s in saliency.values():
                dist.all_reduce(s)
    finally:
        model.to(home)
    return prune_by_scores(model, {k: v / n for k, v in saliency.items()}, sparsity, preset,
                           "snip", verbose)
