"""The registry of attribution methods and the one entry point the studies call.

Method classes register themselves with the :func:`register` decorator where they are defined;
this module imports none of them (nor ``base``), so imports run one way: base <- registry <-
method modules. Adding a method is one new module with one decorated class (and its import in
the package ``__init__``).
"""
from __future__ import annotations

import re

import torch
from torch import nn

#: name -> method class; the paper's methods first, then the extensions, each group in
#: :data:`ORDER` (the order of tables, legends and figure rows), methods it does not name last.
METHODS: dict = {}
ORDER = ("ig_smoothgrad", "gradcam", "guided_gradcam", "cls_attention", "gradient", "rollout")


def register(cls):
    """Class decorator: add an attribution method to :data:`METHODS` after checking its metadata."""
    for attr in ("name", "label", "pooling", "reference"):
        if not isinstance(getattr(cls, attr, None), str) or not getattr(cls, attr):
            raise ValueError(f"attribution method {cls.__name__}: {attr} must be a non-empty string")
    if not re.fullmatch(r"#[0-9a-f]{6}", str(getattr(cls, "color", ""))):
        raise ValueError(f"attribution method {cls.name!r}: color={getattr(cls, 'color', None)!r}; "
                         "expected '#rrggbb' (lower case)")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"attribution method {cls.name!r} is registered twice "
                         f"({METHODS[cls.name].__qualname__} and {cls.__qualname__})")
    ordered = sorted([*(c for c in METHODS.values() if c is not cls), cls],
                     key=lambda c: (not c.paper, ORDER.index(c.name) if c.name in ORDER else len(ORDER)))
    METHODS.clear()
    METHODS.update((c.name, c) for c in ordered)
    return cls


def get_method(method: str):
    """The class registered as ``method``; ValueError listing the accepted names otherwise."""
    try:
        return METHODS[method]
    except (KeyError, TypeError):
        raise ValueError(f"method={method!r} is not an attribution method; accepted: "
                         f"{', '.join(METHODS)}") from None


def methods_for(kind: str, paper_only: bool = False) -> list[str]:
    """Names of the methods that support a model kind (cnn / vit / swin), registry order."""
    return [name for name, cls in METHODS.items() if kind in cls.kinds and (cls.paper or not paper_only)]


def attribute(method: str, model: nn.Module, images: torch.Tensor, target=None, *,
              batch_size: int | None = 32, progress: bool | None = None, **params) -> torch.Tensor:
    """Pooled non-negative attribution maps (B, H, W), float32, on the images' device.

    ``METHODS[method](model, **params).attribute(images, target, batch_size=..., progress=...)``.
    target: None = the model's predicted class (argmax of its logits), an int, or B labels.
    ValueError for an unknown method, a parameter the method does not take, or a model kind
    the method does not support (the message lists what is accepted).
    """
    return get_method(method)(model, **params).attribute(images, target, batch_size=batch_size,
                                                         progress=progress)


def describe():
    """The registry as a pandas DataFrame: name, label, paper, colour, kinds, pooling, defaults, reference."""
    import pandas as pd

    return pd.DataFrame([dict(method=name, label=cls.label, paper=cls.paper, color=cls.color,
                              kinds=", ".join(cls.kinds), any_model=cls.any_model, pooling=cls.pooling,
                              defaults=dict(cls.defaults), reference=cls.reference)
                         for name, cls in METHODS.items()])
