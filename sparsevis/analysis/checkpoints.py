"""Reports on a series' checkpoints: where the pruning went, and what weights survived."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sparsevis import prune
from sparsevis.store import checkpoints


def layer_sparsity(series_dir: str | Path) -> pd.DataFrame:
    """:func:`sparsevis.prune.report` of every checkpoint (one row per layer), with the
    checkpoint's ``iteration`` and its ``overall`` sparsity over the prunable set."""
    rows = []
    for ckpt in checkpoints(series_dir):
        model = prune.load(ckpt)
        meta = model.sparsevis_checkpoint
        rep = prune.report(model)
        rep["iteration"], rep["overall"] = meta["iteration"], meta.get("sparsity", 0.0)
        rows.append(rep)
    return pd.concat(rows, ignore_index=True)


def surviving_magnitudes(series_dir: str | Path) -> list[tuple[dict, np.ndarray]]:
    """Per checkpoint: (its metadata, |w| of the prunable weights it keeps)."""
    out = []
    for ckpt in checkpoints(series_dir):
        model = prune.load(ckpt)
        meta = model.sparsevis_checkpoint
        w = np.concatenate([it.weight.detach().abs().flatten().numpy()
                            for it in prune.prunable(model, meta.get("preset", "all"))])
        out.append((meta, w[w > 0]))
    return out
