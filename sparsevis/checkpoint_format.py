"""Reading weight files: plain state dicts, and sparsevis checkpoints verified against their
content hash (tensors, masks and metadata), their metadata sidecar and what the caller expects.

The format is written by :func:`sparsevis.prune.save` (see :mod:`sparsevis.prune.checkpoint`).
This module knows no model: :mod:`sparsevis.models` reads local weight files through it, and
:mod:`sparsevis.prune` builds on it, so the two import in one direction.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import torch

FORMAT = "sparsevis-checkpoint/2"
FORMAT_TENSORS_ONLY = "sparsevis-checkpoint/1"   # hash over tensors: metadata unverifiable


def tensor_digest(h, t: torch.Tensor) -> None:
    """Feed ``t`` (dtype, shape and bytes, whatever its memory format) into the hash ``h``."""
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
        tensor_digest(h, state_dict[key])
    for key in sorted(masks):
        h.update(key.encode())
        tensor_digest(h, masks[key]["bits"])
    if meta is not None:
        h.update(b"meta")
        h.update(_canonical(meta).encode())
    return h.hexdigest()


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
