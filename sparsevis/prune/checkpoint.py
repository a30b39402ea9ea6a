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

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sparsevis.fileio import atomic_torch_save, atomic_write_json

from .masks import mask_state, pruning_info, set_mask_state

FORMAT = "sparsevis-checkpoint/2"
FORMAT_TENSORS_ONLY = "sparsevis-checkpoint/1"   # hash over tensors: metadata unverifiable


def _tensor_digest(h, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def _canonical(meta) -> str:
    """The JSON the hash covers: sorted keys, no whitespace, tuples as lists."""
    return json.dumps(meta, sort_keys=True, separators=(",", ":"))


def content_hash(state_dict: dict, masks: dict, meta: dict | None = None) -> str:
    """sha256 over tensors, masks and (format 2) the canonical JSON of the metadata."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        h.update(key.encode())
        _tensor_digest(h, state_dict[key])
    for key in sorted(masks):
        h.update(key.encode())
        _tensor_digest(h, masks[key]["bits"])
    if meta is not None:
        h.update(b"meta")
        h.update(_canonical(meta).encode())
    return h.hexdigest()


def _pack(mask: torch.Tensor) -> dict:
    bits = np.packbits(mask.detach().cpu().numpy().reshape(-1))
    return {"shape": list(mask.shape), "bits": torch.from_numpy(bits)}


def _unpack(packed: dict) -> torch.Tensor:
    n = int(np.prod(packed["shape"]))
    bits = np.unpackbits(packed["bits"].numpy(), count=n).astype(bool)
    return torch.from_numpy(bits).reshape(packed["shape"])


def _num_classes(model: nn.Module) -> int | None:
    from sparsevis.models import surface

    try:
        head = surface(model).classifier
    except ValueError:
        return getattr(model, "num_classes", None)
    return getattr(head, "out_features", None)


def save(model: nn.Module, path: str | os.PathLike, **meta) -> str:
    """Write ``model`` with its masks and metadata; returns the checkpoint's content hash."""
    from sparsevis import __version__
    from sparsevis.models import arch_name

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    masks = {name: _pack(mask) for name, mask in mask_state(model).items()}
    record = {"arch": arch_name(model), "code_version": __version__, **pruning_info(model), **meta}
    record.setdefault("num_classes", _num_classes(model))
    # metadata must be JSON (fail here, not at load time); stored as its JSON round trip so that
    # the file, the sidecar and the hash hold the same values
    record = json.loads(_canonical(record))
    digest = content_hash(state, masks, record)
    sidecar = _sidecar(path)
    sidecar.unlink(missing_ok=True)  # killed before the new one is written: none, not a stale one
    atomic_torch_save({"format": FORMAT, "state_dict": state, "masks": masks, "meta": record,
                       "sha256": digest}, path)
    atomic_write_json(sidecar, {**record, "sha256": digest})
    return digest


def _sidecar(path: str | os.PathLike) -> Path:
    return Path(str(path) + ".json")


def _torch_file(path: str | os.PathLike, what: str):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{what} {path} is corrupt or not a torch file: {e}") from e


def _is_checkpoint(obj) -> bool:
    return isinstance(obj, dict) and obj.get("format") in (FORMAT, FORMAT_TENSORS_ONLY)


def _verified(ckpt: dict, path) -> dict:
    """Check the stored hash; sets ``meta_verified`` (False for format 1 files)."""
    covers_meta = ckpt["format"] == FORMAT
    try:
        found = content_hash(ckpt["state_dict"], ckpt["masks"], ckpt["meta"] if covers_meta else None)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"checkpoint {path}: malformed {ckpt['format']} contents ({e!r})") from e
    if found != ckpt.get("sha256"):
        what = "tensors and metadata" if covers_meta else "tensors"
        raise ValueError(f"checkpoint {path}: content hash mismatch over its {what} (stored "
                         f"{str(ckpt.get('sha256'))[:12]}, computed {found[:12]}): the file was "
                         f"modified or damaged")
    if not covers_meta:
        warnings.warn(f"checkpoint {path} is a {FORMAT_TENSORS_ONLY} file: its weights are "
                      f"verified, its metadata (accuracy, sparsity, iteration...) is not; re-save it "
                      f"with sparsevis.prune.save to cover both", stacklevel=3)
    ckpt["meta_verified"] = covers_meta
    return ckpt


def _check_sidecar(ckpt: dict, path) -> None:
    """The JSON copy beside the file, if any, must say what the verified checkpoint says."""
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        return
    try:
        found = json.loads(sidecar.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"checkpoint metadata {sidecar} is corrupt ({e}); expected the JSON "
                         f"copy of {Path(path).name}'s metadata (delete it to fall back on the "
                         f"checkpoint)") from e
    if not isinstance(found, dict):
        raise ValueError(f"checkpoint metadata {sidecar}: expected a JSON object, got "
                         f"{type(found).__name__}")
    want = {**ckpt["meta"], "sha256": ckpt["sha256"]}
    # compared as canonical JSON: NaN equals NaN, a tuple equals its list
    differ = sorted(k for k in want.keys() | found.keys()
                    if k not in want or k not in found or _canonical(want[k]) != _canonical(found[k]))
    if differ:
        k = differ[0]
        raise ValueError(f"checkpoint metadata {sidecar} disagrees with {Path(path).name} on "
                         f"{differ}: e.g. {k}={found.get(k)!r} beside {k}={want.get(k)!r} in the "
                         f"verified checkpoint")


def _check_expected(meta: dict, path, expect: dict | None) -> None:
    for key, value in (expect or {}).items():
        if meta.get(key) != value:
            raise ValueError(f"checkpoint {path} does not belong here: expected {key}={value!r}, "
                             f"found {key}={meta.get(key)!r}")


def read(path: str | os.PathLike, expect: dict | None = None) -> dict:
    """Read and verify a checkpoint file; errors name the file and what did not match.

    The stored hash must match the tensors and metadata, the sidecar ``<file>.json`` (if any)
    must agree with the metadata, and every ``expect`` item (e.g. ``{"run_id": ..., "arch":
    ...}``) must equal the metadata's value: a checkpoint copied from another run is refused.
    """
    ckpt = _torch_file(path, "checkpoint")
    if not _is_checkpoint(ckpt):
        raise ValueError(f"checkpoint {path}: not a {FORMAT} file")
    _verified(ckpt, path)
    _check_sidecar(ckpt, path)
    _check_expected(ckpt["meta"], path, expect)
    return ckpt


def load_state_dict_file(path: str | os.PathLike, expected_arch: str | None = None) -> dict:
    """State dict from a plain torch state-dict file or a (verified) sparsevis checkpoint."""
    obj = _torch_file(path, "weights file")
    if _is_checkpoint(obj):
        arch = _verified(obj, path)["meta"].get("arch")
        if expected_arch and arch != expected_arch:
            raise ValueError(f"checkpoint {path} holds {arch}, not {expected_arch}")
        return obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"weights file {path}: expected a state dict, got {type(obj).__name__}")
    return obj


def load(path: str | os.PathLike, model: nn.Module | None = None,
         expect: dict | None = None) -> nn.Module:
    """Load a checkpoint into ``model`` (or a new stock model of the recorded architecture).

    Restores weights, masks and the pruning record. Raises ValueError naming the file when it
    is corrupt, its hash or sidecar does not match, it holds another architecture, or its
    metadata differs from ``expect`` (see :func:`read`).
    """
    from sparsevis.models import arch_name, create

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
