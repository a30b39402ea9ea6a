"""The tidy results table: one row per measured value (design.md).

Every stage writes its rows with :func:`write` (atomic CSV); notebooks and the book read them
back with :func:`read` and never compute a number the stages did not.

Columns (:data:`COLUMNS`, in every row): ``track``, ``profile``, ``arch``, ``n_params``,
``prune_method``, ``prunable_set``, ``iteration``, ``sparsity`` (realised, over the prunable
set), ``sparsity_all``, ``seed``, ``study``, ``dataset``, ``method``, ``metric``, ``value``,
``n``, ``ci_low``, ``ci_high``, ``run_id``.

Optional columns (:data:`OPTIONAL_COLUMNS`), written where they apply and empty (NaN) in the
rows they do not; tables written before a column existed lack it:

* ``precision``: the numeric precision the row's value was computed in ("fp32", "bf16",
  "fp16"): the prune stage's accuracy evaluation and every study run in fp32 without TF32.
* ``train_precision``: the precision the checkpoint's weights were trained in (the prune
  stage's rows and every study row of that checkpoint); empty where the weights were not
  trained here (pretrained weights pruned one-shot, imported checkpoints) or the checkpoint
  predates the record.
* ``backbone_stride``: the stride in pixels of the feature map object discovery ran LOST on
  (a ResNet's 32, or 16 with its last stage dilated; a ViT's patch size).

Which data pipeline trained a checkpoint (crop sizes, augmentation, sampler) is not a column:
it is the ``data_pipeline`` of each checkpoint's metadata and of its series'
``prune/<label>-<run_id>/config.json`` in the run store (paper track).
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
# Columns a row has where they apply (kept when present, absent from older tables; see the
# module docstring): the precision the value was computed in, the precision the checkpoint was
# trained in, and the feature stride object discovery used.
OPTIONAL_COLUMNS = ["precision", "train_precision", "backbone_stride"]


def frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Rows -> a DataFrame with :data:`COLUMNS` and those of :data:`OPTIONAL_COLUMNS` the rows
    have (missing required ones raise, other extras are kept out)."""
    df = pd.DataFrame(list(rows))
    missing = [c for c in COLUMNS if c not in df.columns]
    if len(df) and missing:
        raise ValueError(f"results rows lack columns {missing}; expected {COLUMNS}")
    return df.reindex(columns=COLUMNS + [c for c in OPTIONAL_COLUMNS if c in df.columns])


def write(rows: Iterable[dict] | pd.DataFrame, path: str | os.PathLike) -> Path:
    df = rows if isinstance(rows, pd.DataFrame) else frame(rows)
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return atomic_write_text(path, buf.getvalue())


def _read_one(path: Path) -> pd.DataFrame:
    """One results CSV; errors name the file and what a results table must hold."""
    expected = f"expected a results table with the columns {COLUMNS} and at least one row"
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} does not exist")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"results file {path} is not a readable CSV ({e}); {expected}") from e
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"results file {path} lacks columns {missing}; {expected}")
    if df.empty:   # a stage that measured nothing, or rows lost: never an empty figure
        raise ValueError(f"results file {path} has a header but no rows; {expected}")
    return df


def read(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate results CSVs (one path, a directory searched recursively, or a list).

    Every file must be a results table with the columns of :data:`COLUMNS` and at least one
    row; a directory without any ``results.csv`` gives an empty table."""
    if isinstance(paths, (str, os.PathLike)):
        p = Path(paths)
        paths = sorted(p.rglob("results.csv")) if p.is_dir() else [p]
    frames = [_read_one(Path(p)) for p in paths]
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)


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
