"""The small base every attribution method shares, and the pooling helpers.

An :class:`Attribution` subclass declares its metadata as class attributes (``name``, ``label``,
``color``, ``paper``, ``kinds``, ``pooling``, ``defaults``, ``reference``), is decorated with
:func:`sparsevis.attribution.registry.register`, and implements one method,
``_attribute(x, target) -> (b, H, W)``, for one chunk of images with the model in eval mode.
The base class does everything else once: parameter and input checks, the target (the
predicted class by default), chunking with a progress bar, eval mode, and the output contract
- a float32 tensor (B, H, W) >= 0 on the images' device, one pooled map per image at the
image resolution.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from sparsevis import models

from .registry import methods_for

KINDS = ("cnn", "vit", "swin")


class Attribution:
    """Base of the attribution methods: ``Method(model, **params).attribute(images, target)``.

    Class attributes (the registry's metadata):
      name       registry name, e.g. ``"gradcam"``
      label      display name for legends and tables, e.g. ``"Grad-CAM"``
      color      display colour (hex), the same on every page
      paper      True for the paper's methods, False for extensions beyond it
      kinds      model kinds supported (``surface(model).kind``: cnn / vit / swin)
      any_model  True when the method needs no surface: any module images -> logits works
      pooling    how the raw attribution becomes one non-negative map per image
      defaults   every parameter with its default (the paper's values for paper methods)
      reference  the paper that defines the method
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    color: ClassVar[str] = ""
    paper: ClassVar[bool] = False
    kinds: ClassVar[tuple[str, ...]] = ()
    any_model: ClassVar[bool] = False
    pooling: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    reference: ClassVar[str] = ""

    def __init__(self, model: nn.Module, **params):
        if not isinstance(model, nn.Module):
            raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.params = self._check_params(params)
        self.surface = self._check_model(model)

    # ---------------------------------------------------------------- checks
    @classmethod
    def _check_params(cls, params: dict) -> dict:
        unknown = sorted(set(params) - set(cls.defaults))
        if unknown:
            accepted = ", ".join(cls.defaults) or "none"
            raise ValueError(f"method {cls.name!r}: unknown parameter(s) {', '.join(unknown)}; "
                             f"accepted: {accepted}")
        merged = {**cls.defaults, **params}
        cls._validate(merged)
        return merged

    @classmethod
    def _validate(cls, params: dict) -> None:
        """Subclasses check their parameter values here (ValueError naming the parameter)."""

    def _check_model(self, model: nn.Module) -> models.Surface | None:
        try:
            surf = models.surface(model)
        except ValueError as e:
            if self.any_model:
                return None
            raise ValueError(f"method {self.name!r} needs a model with a sparsevis surface "
                             f"(kinds {', '.join(self.kinds)}): {e}") from None
        if surf.kind not in self.kinds:
            raise ValueError(
                f"method {self.name!r} does not support {models.arch_name(model)} (a {surf.kind} "
                f"model); it supports kinds: {', '.join(self.kinds)}. Methods for a {surf.kind}: "
                f"{', '.join(methods_for(surf.kind))}")
        return surf

    # ---------------------------------------------------------------- the one verb
    def attribute(self, images: torch.Tensor, target=None, *, batch_size: int | None = 32,
                  progress: bool | None = None) -> torch.Tensor:
        """Pooled non-negative maps (B, H, W), float32, on the images' device.

        images: float (B, C, H, W), normalised as the model expects, on the model's device.
        target: None (the model's predicted class, argmax of its logits), an int (one class for
        every image) or a sequence / LongTensor of B labels.
        batch_size: images per chunk (None: all at once); a progress bar (tqdm.auto) is shown
        when there is more than one chunk, unless ``progress`` says otherwise.
        """
        x = _check_images(images, self.model)
        target = _check_target(target, x, num_classes(self.model, self.surface))
        if batch_size is None:
            batch_size = max(1, len(x))
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: expected a positive int or None")
        starts = range(0, len(x), batch_size)
        bar = {} if progress is None and len(starts) > 1 else {"disable": not progress}
        out = []
        with eval_mode(self.model):
            for s in tqdm(starts, desc=self.name, unit="chunk", **bar):
                xb = x[s:s + batch_size]
                tb = predicted(self.model, xb) if target is None else target[s:s + batch_size]
                maps = self._attribute(xb, tb)
                out.append(maps.detach().float())
        if not out:
            return x.new_zeros((0, *x.shape[-2:]), dtype=torch.float32)
        return torch.cat(out)

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({models.arch_name(self.model)}{', ' if args else ''}{args})"


# -------------------------------------------------------------------- inputs
def _check_images(images, model: nn.Module) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images: expected a torch.Tensor (B, C, H, W), got {type(images).__name__}")
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"images: expected a floating tensor of shape (B, C, H, W), got {images.dtype} "
                         f"of shape {tuple(images.shape)}")
    param = next(model.parameters(), None)
    if param is not None and param.device != images.device:
        raise ValueError(f"images are on {images.device} but the model is on {param.device}; "
                         "move the model to the images' device (maps are computed where the images are)")
    return images.detach()


def num_classes(model: nn.Module, surf: models.Surface | None = None) -> int | None:
    """Number of logits, when the classifier says (timm/torchvision classifiers do); else None."""
    out = getattr(surf.classifier, "out_features", None) if surf is not None else None
    if out is None:
        out = getattr(model, "num_classes", None)
    return out if isinstance(out, int) and not isinstance(out, bool) and out > 0 else None


def _check_target(target, x: torch.Tensor, n_classes: int | None) -> torch.Tensor | None:
    if target is None:
        return None
    b = len(x)
    if isinstance(target, bool):
        raise ValueError(f"target={target!r}: expected None, an int or B={b} class indices")
    if isinstance(target, int):
        t = torch.full((b,), target, dtype=torch.long, device=x.device)
    elif isinstance(target, (torch.Tensor, Sequence)) and not isinstance(target, str):
        t = torch.as_tensor(target, device=x.device)
        if t.ndim == 0:
            t = t.expand(b)
        if t.shape != (b,) or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"target: expected {b} integer class indices (one per image), got "
                             f"{t.dtype} of shape {tuple(t.shape)}")
        t = t.long()
    else:
        raise ValueError(f"target: expected None, an int or a LongTensor of B={b} labels, "
                         f"got {type(target).__name__}")
    n = n_classes
    if t.numel() and (int(t.min()) < 0 or (n is not None and int(t.max()) >= n)):
        raise ValueError(f"target: class indices must lie in [0, {n if n is not None else 'num_classes'}), "
                         f"got min {int(t.min())} and max {int(t.max())}")
    return t


def predicted(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's predicted class (argmax of the logits) per image."""
    with torch.no_grad():
        return model(x).argmax(dim=1)


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Every submodule in eval mode for the duration; each one's own mode restored after.
    (A model already in eval mode, as a study's is, is left alone: setting a module's mode is
    slow, about a tenth of a small model's Grad-CAM.)"""
    training = [m for m in model.modules() if m.training]
    if training:
        model.eval()
    try:
        yield model
    finally:
        for m in training:
            m.training = True


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device):
    """Fork the RNG of the CPU (and ``device`` when it is CUDA) and seed it; no-op for None."""
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _leaf(x: torch.Tensor) -> torch.Tensor:
    """A fresh leaf copy of the images that requires grad."""
    return x.detach().clone().requires_grad_(True)


# -------------------------------------------------------------------- pooling
def minmax(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map of (B, H, W) to [0, 1]; a constant map becomes all zeros.

    A constant map carries no spatial information (e.g. a Grad-CAM whose ReLU clipped every
    cell), so it maps to zeros rather than NaN; RMA/RRA then treat the image as having no
    relevance (RMA gives NaN, which the studies drop). A map with NaN stays NaN, so that the
    metrics' input checks catch it.
    """
    flat = maps.flatten(1)
    lo = flat.amin(dim=1).view(-1, *[1] * (maps.ndim - 1))
    hi = flat.amax(dim=1).view(-1, *[1] * (maps.ndim - 1))
    span = hi - lo
    safe = torch.where(span == 0, torch.ones_like(span), span)
    return torch.where(span == 0, torch.zeros_like(maps), (maps - lo) / safe)   # NaN stays NaN


def channel_energy(attr: torch.Tensor) -> torch.Tensor:
    """Pool a per-colour-channel attribution (B, C, H, W) to (B, H, W) >= 0 as ``sum_c a_c**2``.

    The squared L2 norm over the channels, the pooling the authors apply to every 3-channel map
    (IG and Guided Grad-CAM; "l2-norm,sq" of Osman et al.'s evaluation code): sign-free and
    dominated by the strongest channel.
    """
    return attr.pow(2).sum(dim=1)


def upsample(cam: torch.Tensor, size: Sequence[int], mode: str = "bilinear") -> torch.Tensor:
    """Grid maps (B, h, w) -> (B, H, W) by interpolation (bilinear, align_corners=False)."""
    kw = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(cam[:, None], size=tuple(size), mode=mode, **kw)[:, 0]


def check_choice(method: str, name: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise ValueError(f"method {method!r}: {name}={value!r}; expected one of {', '.join(map(repr, choices))}")


def check_int(method: str, name: str, value, minimum: int = 1, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        extra = " or None" if allow_none else ""
        raise ValueError(f"method {method!r}: {name}={value!r}; expected an int >= {minimum}{extra}")
