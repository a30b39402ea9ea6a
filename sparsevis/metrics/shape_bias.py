"""Shape bias on cue-conflict stimuli (Geirhos et al., ICLR 2019)."""
from __future__ import annotations

import numpy as np
import torch

from .base import MetricInfo


def _labels(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1 or arr.dtype.kind not in "iuUO":
        raise ValueError(f"{name}: expected a 1-D sequence of integer class ids or category names, "
                         f"got {arr.dtype} of shape {arr.shape}")
    return arr


def shape_bias(decisions, shape_labels, texture_labels) -> float:
    """Shape decisions / (shape decisions + texture decisions) over cue-conflict trials.

    One entry per trial in each argument, either integer class ids or category names (e.g.
    'cat', as in model-vs-human); all three must use the same kind. Trials whose shape label
    equals their texture label carry no conflict and are excluded; decisions that are neither
    the shape nor the texture category do not count. 1: always shape; 0: always texture. NaN
    when no trial is decided by shape or texture.
    """
    d = _labels(decisions, "decisions")
    s = _labels(shape_labels, "shape_labels")
    t = _labels(texture_labels, "texture_labels")
    for name, arr in (("shape_labels", s), ("texture_labels", t)):
        if len(arr) != len(d):
            raise ValueError(f"{name}: expected one label per decision ({len(d)}), got {len(arr)}")
        if (arr.dtype.kind in "iu") != (d.dtype.kind in "iu"):
            raise ValueError(f"{name}: expected the same kind of labels as decisions "
                             f"(class ids or names), got {arr.dtype} against {d.dtype}")
    conflict = s != t
    by_shape = int(np.sum((d == s) & conflict))
    by_texture = int(np.sum((d == t) & conflict))
    return by_shape / (by_shape + by_texture) if by_shape + by_texture else float("nan")


INFO = MetricInfo(
    name="shape_bias",
    studies=("alignment",),
    higher_is_better=True,
    label="shape bias",
    long_label="shape bias (cue-conflict)",
    paper=False,
    color="#7570b3",
    value_range=(0.0, 1.0),
    scale="ratio",
    inputs="decisions",
    kernel=shape_bias,
    reference="Geirhos et al. ImageNet-trained CNNs are biased towards texture; increasing shape "
              "bias improves accuracy and robustness. ICLR 2019.",
)
