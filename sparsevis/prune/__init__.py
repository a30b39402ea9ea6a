"""Pruning engine: prunable-set presets, global magnitude / random / SNIP pruning, masks that
keep pruned weights at zero under any optimizer or training loop, sparsity reports and checkpoints.

The public surface (design.md)::

    global_magnitude(model, sparsity, preset="all")   random_prune(...)   snip(...)
    imp_schedule(rate, iterations)   sparsity(model, scope)   report(model)
    save(model, path, **meta)   load(path, model=None)
"""
from sparsevis.checkpoint_format import load_state_dict_file, read

from .checkpoint import load, save, write_sidecar
from .masks import (
                    apply_masks,
                    mask_state,
                    masked_parameters,
                    pruning_info,
                    report,
                    set_mask_state,
                    sparsity,
                    sync_masks,
)
from .methods import global_magnitude, imp_schedule, prune_by_scores, random_prune, snip
from .presets import BASES, Prunable, canonical_preset, prunable

__all__ = [
    "BASES", "Prunable", "apply_masks", "canonical_preset", "global_magnitude",
    "imp_schedule", "load", "mask_state", "set_mask_state", "load_state_dict_file", "masked_parameters", "prunable",
    "prune_by_scores", "pruning_info", "random_prune", "read", "report", "save", "snip",
    "sparsity", "sync_masks", "write_sidecar",
]
