"""The tidy results table: one row per measured value (design.md).

Every stage writes its rows with :func:`write` (atomic CSV); notebooks and the book read them
back with :func:`read` and never compute a number the stages did not.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable

import pandas as pd

from sparsevis.fileio import atomic_write_bytes, atomic_write_text

COLUMNS = ["track", "profile", "arch", "n_params", "prune_method", "prunable_set", "iteration",
           "sparsity", "sparsity_all", "seed", "study", "dataset", "method", "metric", "value",
           "n", "ci_low", "ci_high", "run_id"]


def frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Rows -> a DataFrame with exactly :data:`COLUMNS` (missing ones raise, extras are kept out)."""
    df = pd.DataFrame(list(rows))
    missing = [c for c in COLUMNS if c not in df.columns]
    if len(df) and missing:
        raise ValueError(f"results rows lack columns {missing}; expected {COLUMNS}")
    return df.reindex(columns=COLUMNS)


def write(rows: Iterable[dict] | pd.DataFrame, path: str | os.PathLike) -> Path:
    df = rows if isinstance(rows, pd.DataFrame) else frame(rows)
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return atomic_write_text(path, buf.getvalue())


def read(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate results CSVs (one path, a directory searched recursively, or a list)."""
    if isinstance(paths, (str, os.PathLike)):
        p = Path(paths)
        paths = sorted(p.rglob("results.csv")) if p.is_dir() else [p]
    frames = [pd.read_csv(p) for p in paths]
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    df = pd.concat(frames, ignore_index=True)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"results files {[str(p) for p in paths]} lack columns {missing}")
    return df


# The per-item values behind every mean of a study (one row per evaluation image or trial), for
# the paired analysis of :mod:`sparsevis.analysis`; gzip-compressed CSV, one file per checkpoint.
ITEM_COLUMNS = ["run_id", "seed", "iteration", "sparsity", "dataset", "method", "metric", "item", "value"]


def write_items(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    missing = [c for c in ITEM_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"item values for {path} lack columns {missing}; expected {ITEM_COLUMNS}")
    buf = io.BytesIO()
    df[ITEM_COLUMNS].to_csv(buf, index=False, compression={"method": "gzip", "mtime": 0})
    return atomic_write_bytes(path, buf.getvalue())


def read_items(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate per-item files; an unreadable one is an error naming it."""
    frames = []
    for p in paths:
        try:
            frames.append(pd.read_csv(p, dtype={"item": str}))
        except (OSError, ValueError, EOFError) as e:
            raise ValueError(f"item values {p}: unreadable ({e}); delete it and rerun its study") from None
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ITEM_COLUMNS)
