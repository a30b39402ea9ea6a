"""Prunable-set presets: which weights take part in the global ranking.

- ``all``: every Conv/Linear weight, and the attention projections whatever module holds them
  (torchvision's fused ``MultiheadAttention.in_proj_weight`` included). The default.
- ``paper``: what the authors' released code pruned: weights of ``nn.Conv2d`` and ``nn.Linear``
  modules only, so torchvision's fused q/k/v (24 % of ViT-B/32) stays dense.

Suffixes ``-nostem`` and ``-noclassifier`` drop the first layer and the classification head.
Biases, norms, embeddings and position tables are never pruned.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from sparsevis.models import surface

BASES = ("all", "paper")
SUFFIXES = ("nostem", "noclassifier")


@dataclass(frozen=True)
class Prunable:
    """One prunable weight: ``module.<param_name>``, known in the model as ``name``."""

    name: str
    module: nn.Module
    param_name: str

    @property
    def weight(self) -> nn.Parameter:
        return getattr(self.module, self.param_name)


def canonical_preset(preset: str = "all", exclude_stem: bool = False,
                     exclude_classifier: bool = False) -> str:
    """Validate a preset name and fold the exclusion switches into it (``all-nostem``...)."""
    if not isinstance(preset, str):
        raise ValueError(f"preset must be a string, got {preset!r}")
    base, *flags = preset.split("-")
    unknown = [f for f in flags if f not in SUFFIXES]
    if base not in BASES or unknown:
        raise ValueError(f"unknown preset {preset!r}; expected one of {BASES} with optional "
                         f"suffixes {['-' + s for s in SUFFIXES]} (e.g. 'all-nostem-noclassifier')")
    flags = set(flags) | ({"nostem"} if exclude_stem else set()) | (
        {"noclassifier"} if exclude_classifier else set())
    return "-".join([base] + [s for s in SUFFIXES if s in flags])


def _candidates(model: nn.Module, base: str) -> list[Prunable]:
    found = []
    for mod_name, module in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        if base == "paper":
            names = ["weight"] if isinstance(module, (nn.Conv2d, nn.Linear)) else []
        elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            names = ["weight"]
        elif isinstance(module, nn.MultiheadAttention):
            names = [n for n in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")
                     if getattr(module, n, None) is not None]
        else:
            names = []
        found += [Prunable(prefix + n, module, n) for n in names]
    return found


def prunable(model: nn.Module, preset: str = "all") -> list[Prunable]:
    """The weights in ``preset``'s prunable set, in module order, each parameter once."""
    preset = canonical_preset(preset)
    base, *flags = preset.split("-")
    items = _candidates(model, base)
    drop: set[int] = set()
    if flags:
        try:
            surf = surface(model)
            stem, head = surf.stem, surf.classifier
        except ValueError:  # unsupported family: the first and last prunable layers
            stem, head = items[0].module, items[-1].module
        if "nostem" in flags:
            drop.add(id(stem))
        if "noclassifier" in flags:
            drop.add(id(head))
    seen, out = set(), []
    for item in items:
        if id(item.module) in drop or id(item.weight) in seen:
            continue
        seen.add(id(item.weight))
        out.append(item)
    return out
