"""Checkpoints: dense folded weights, bit-packed masks, metadata, and a content hash.

One file, written atomically::

    {"format": "sparsevis-checkpoint/2",
     "state_dict": ...,            # stock keys: loads into the timm/torchvision definition
     "masks": {param: {"shape": [...], "bits": uint8 tensor}},   # numpy.packbits, True = kept
     "meta": {...},                # arch, preset, method, iteration, sparsity, parent, code ...
     "sha256": ...}                # of the state dict, masks and canonical JSON of meta

A JSON copy of the metadata is written beside it (``<file>.json``) for people and tools; when
present it must agree with the verified metadata. Format 1 files (hash over tensors only) still
load: their tensors are verified, their metadata is marked ``meta_verified: False`` with a warning.
"""
from __future__ import annotations

import json
import os

import numpy as np
import torch
from torch import nn

from sparsevis.checkpoint_format import FORMAT, _canonical, _sidecar, content_hash, read
from sparsevis.fileio import atomic_torch_save, atomic_write_json
from sparsevis.models import arch_name, create, surface

from .masks import mask_state, pruning_info, set_mask_state


def _pack(mask: torch.Tensor) -> dict:
    bits = np.packbits(mask.detach().cpu().numpy().reshape(-1))
    return {"shape": list(mask.shape), "bits": torch.from_numpy(bits)}


def _unpack(packed: dict) -> torch.Tensor:
    n = int(np.prod(packed["shape"]))
    bits = np.unpackbits(packed["bits"].numpy(), count=n).astype(bool)
    return torch.from_numpy(bits).reshape(packed["shape"])


def _num_classes(model: nn.Module) -> int | None:
    try:
        head = surface(model).classifier
    except ValueError:
        return getattr(model, "num_classes", None)
    return getattr(head, "out_features", None)


def save(model: nn.Module, path: str | os.PathLike, **meta) -> str:
    """Write ``model`` with its masks and metadata; returns the checkpoint's content hash."""
    from sparsevis import __version__
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    masks = {name: _pack(mask) for name, mask in mask_state(model).items()}
    record = {"arch": arch_name(model), "code_version": __version__, **pruning_info(model), **meta}
    record.setdefault("num_classes", _num_classes(model))
    # metadata must be JSON (fail here, not at load time); stored as its JSON round trip so that
    # the file, the sidecar and the hash hold the same values
    record = json.loads(_canonical(record))
    digest = content_hash(state, masks, record)
    _sidecar(path).unlink(missing_ok=True)  # killed before the new one is written: none, not a stale one
    ckpt = {"format": FORMAT, "state_dict": state, "masks": masks, "meta": record, "sha256": digest}
    atomic_torch_save(ckpt, path)
    write_sidecar(path, ckpt)
    return digest


def write_sidecar(path: str | os.PathLike, ckpt: dict) -> None:
    """The metadata sidecar ``<file>.json`` of a checkpoint (as :func:`read` returns it): written
    by :func:`save`, and again by a resumed run where a kill between the two writes left none."""
    atomic_write_json(_sidecar(path), {**ckpt["meta"], "sha256": ckpt["sha256"]})


def load(path: str | os.PathLike, model: nn.Module | None = None,
         expect: dict | None = None) -> nn.Module:
    """Load a checkpoint into ``model`` (or a new stock model of the recorded architecture).

    Restores weights, masks and the pruning record. Raises ValueError naming the file when it
    is corrupt, its hash or sidecar does not match, it holds another architecture, or its
    metadata differs from ``expect`` (see :func:`read`).
    """
    ckpt = read(path, expect)
    meta = ckpt["meta"]
    if model is None:
        model = create(meta["arch"], num_classes=meta.get("num_classes"))
    elif arch_name(model) != meta["arch"]:
        raise ValueError(f"checkpoint {path} holds {meta['arch']}, but the model is {arch_name(model)}")
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"checkpoint {path} does not fit {arch_name(model)}: {e}") from e
    set_mask_state(model, {key: _unpack(packed) for key, packed in ckpt["masks"].items()})
    model.sparsevis_pruning = {k: meta[k] for k in ("preset", "method", "requested", "sparsity",
                                                      "sparsity_all", "n_prunable") if k in meta}
    model.sparsevis_checkpoint = {"path": str(path), "sha256": ckpt["sha256"],
                                  "meta_verified": ckpt["meta_verified"], **meta}
    return model
