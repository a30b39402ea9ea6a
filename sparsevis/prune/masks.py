"""Masks that keep pruned weights exactly zero.

A mask is a non-persistent bool buffer ``<param>_mask`` on the module that owns the weight
(True = kept). Being a buffer it follows ``.to(device)`` and DDP's buffer broadcast; being
non-persistent it stays out of ``state_dict`` so checkpoints load into stock model classes.
The weights themselves are zeroed in place, and two hooks keep them zero in any training loop,
with no call needed from it:

- a global optimizer step post-hook re-applies the masks of every masked parameter the optimizer
  just stepped, so SGD momentum and (Adam)W weight decay cannot revive them, whatever optimizer
  the user builds, at any time;
- a gradient hook on each masked weight zeroes the pruned entries of its gradient, so a manual
  ``p.data -= lr * p.grad`` loop keeps them zero too, and DDP all-reduces masked gradients.

Neither changes parameter names, so ``state_dict`` stays stock-format. This works for any
parameter, including ``MultiheadAttention.in_proj_weight``, under autocast and DDP. A
``copy.deepcopy`` of a pruned model copies its masks but not the hooks (torch drops them): call
``set_mask_state(copy, mask_state(copy))`` before training the copy.
"""
from __future__ import annotations

import weakref

import pandas as pd
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.weak import WeakIdKeyDictionary

from sparsevis import distributed

from .presets import Prunable, prunable

MASK_SUFFIX = "_mask"

# masked parameter -> (weak reference to its module, parameter name); ids, not tensor equality,
# and weak so that a deleted model leaves the registry
_MASKED = WeakIdKeyDictionary()
_STEP_HOOK = None


def _n_pruned(mask: torch.Tensor) -> int:
    return mask.numel() - int(torch.count_nonzero(mask))  # count_nonzero: bool .sum() is slow


def get_mask(item: Prunable) -> torch.Tensor | None:
    return getattr(item.module, item.param_name + MASK_SUFFIX, None)


def set_mask(item: Prunable, mask: torch.Tensor) -> None:
    weight = item.weight
    if mask.shape != weight.shape:
        raise ValueError(f"mask for {item.name}: expected shape {tuple(weight.shape)}, got {tuple(mask.shape)}")
    mask = mask.to(device=weight.device, dtype=torch.bool)
    item.module.register_buffer(item.param_name + MASK_SUFFIX, mask, persistent=False)
    with torch.no_grad():
        weight.masked_fill_(~mask, 0)
    _track(item.module, item.param_name)


def _current_mask(entry) -> torch.Tensor | None:
    """The module's mask now (``.to(device)`` replaces the buffer), None once the module is gone."""
    module = entry[0]()
    return None if module is None else getattr(module, entry[1] + MASK_SUFFIX, None)


def _track(module: nn.Module, param_name: str) -> None:
    """Register ``module.<param_name>`` with the step and gradient hooks (once per parameter)."""
    global _STEP_HOOK
    if _STEP_HOOK is None:
        _STEP_HOOK = register_optimizer_step_post_hook(_after_step)
    weight = getattr(module, param_name)
    if weight in _MASKED:
        return
    entry = (weakref.ref(module), param_name)
    _MASKED[weight] = entry

    def zero_pruned_grad(grad):
        mask = _current_mask(entry)
        return grad if mask is None else grad.masked_fill(~mask, 0)

    if weight.requires_grad:
        weight.register_hook(zero_pruned_grad)


@torch.no_grad()
def _after_step(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    """Global post-hook of every ``optimizer.step()``: zero the pruned entries it revived."""
    if not _MASKED:
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            entry = _MASKED.get(p)
            mask = _current_mask(entry) if entry is not None else None
            if mask is not None:
                p.masked_fill_(~mask, 0)


def masked_parameters(model: nn.Module):
    """(module, param_name, mask) for every masked weight of the model."""
    for module in model.modules():
        for buf_name, buf in module.named_buffers(recurse=False):
            if buf_name.endswith(MASK_SUFFIX) and hasattr(module, buf_name[: -len(MASK_SUFFIX)]):
                yield module, buf_name[: -len(MASK_SUFFIX)], buf


def mask_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """{full parameter name: mask} for every masked weight (for checkpoints)."""
    owner = {id(m): n for n, m in model.named_modules()}
    return {f"{owner[id(m)]}.{name}".lstrip("."): mask for m, name, mask in masked_parameters(model)}


def set_mask_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Restore masks saved by :func:`mask_state` (and zero the pruned weights)."""
    modules = dict(model.named_modules())
    for key, mask in state.items():
        mod_name, _, param_name = key.rpartition(".")
        set_mask(Prunable(key, modules[mod_name], param_name), mask)


@torch.no_grad()
def apply_masks(model: nn.Module) -> None:
    """Zero every pruned weight in place."""
    for module, name, mask in masked_parameters(model):
        getattr(module, name).masked_fill_(~mask, 0)


def sync_masks(model: nn.Module, src: int = 0) -> None:
    """Broadcast the masks from rank ``src`` so every DDP rank prunes the same weights."""

    if not distributed.is_initialized():
        return
    for _, _, mask in masked_parameters(model):
        distributed.broadcast_(mask, src)
    apply_masks(model)


def pruning_info(model: nn.Module) -> dict:
    """What the last pruning call recorded (preset, method, sparsities); empty if dense."""
    return dict(getattr(model, "sparsevis_pruning", {}))


def _preset_of(model: nn.Module) -> str:
    return pruning_info(model).get("preset", "all")


def sparsity(model: nn.Module, scope: str = "prunable", preset: str | None = None) -> float:
    """Fraction of weights removed by pruning.

    scope="prunable": over the prunable set (``preset``, default the one the model was pruned
    with, else "all"); scope="all": pruned weights over every parameter of the model.
    """
    items = prunable(model, preset or _preset_of(model))
    pruned = sum(_n_pruned(m) for m in (get_mask(i) for i in items) if m is not None)
    if scope == "prunable":
        total = sum(i.weight.numel() for i in items)
    elif scope == "all":
        pruned = sum(_n_pruned(m) for _, _, m in masked_parameters(model))
        total = sum(p.numel() for p in model.parameters())
    else:
        raise ValueError(f"scope={scope!r}; expected 'prunable' or 'all'")
    return pruned / total if total else 0.0


def report(model: nn.Module, preset: str | None = None) -> pd.DataFrame:
    """One row per prunable layer: name, shape, count, pruned, zeros, sparsity."""
    rows = []
    for item in prunable(model, preset or _preset_of(model)):
        w, m = item.weight, get_mask(item)
        pruned = _n_pruned(m) if m is not None else 0
        rows.append(dict(name=item.name, shape=tuple(w.shape), count=w.numel(), pruned=pruned,
                         zeros=w.numel() - int(torch.count_nonzero(w)), sparsity=pruned / w.numel()))
    return pd.DataFrame(rows, columns=["name", "shape", "count", "pruned", "zeros", "sparsity"])
