"""model-vs-human human responses: reading the observers' CSVs and joining trials to images.

Joining trials to images
    A CSV ``imagename`` is the stimulus file name behind a six-field trial prefix
    (``0001_s5n_s01_0_bird_00_bird3-bird2.png``); split on ``_`` at most 6 times and keep the
    last part (``bird3-bird2.png``; ``n04111531_14126.png`` for ImageNet-based stimuli). The
    image table uses the same key (``image``), and a trial joins the image with the same
    ``(condition, image)``. Every trial must join, to exactly one image, with the same
    category; anything else is a ValueError naming the CSV file and row.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..imagenet16 import CATEGORIES
from .catalog import check_dataset, how_to_get, raw_data_dir
from .images import load_images

RAW_COLUMNS: tuple[str, ...] = ("subj", "session", "trial", "rt", "object_response", "category",
                                "condition", "imagename")
NO_RESPONSE = "na"  # what the CSVs hold when an observer did not answer in time


def short_imagename(imagename: str) -> str:
    """The stimulus key of a CSV ``imagename``: split on ``_`` at most 6 times, keep the last part."""
    return str(imagename).split("_", 6)[-1]


def read_raw_csv(path: str | os.PathLike, data: bytes | None = None) -> pd.DataFrame:
    """Read one model-vs-human raw-data CSV and check its columns.

    Column names are compared case-insensitively (model-vs-human lower-cases them: some files
    say ``Session``); every column of :data:`RAW_COLUMNS` must be there, else ValueError naming
    the file and the missing column(s). Values are read as strings (``condition`` stays
    ``"0.0"``, ``"True"``, ``"c05"``; the response ``"na"`` stays ``"na"``); ``trial`` and
    ``session`` become ints and ``rt`` float (NaN allowed). The returned frame has the
    :data:`RAW_COLUMNS` in order plus ``row`` (1-based data row; the file line is row + 1).
    ``data`` parses these bytes instead of reading ``path`` (which then only names them).
    """
    name = str(path)  # a file path or, from fetch(), a URL
    try:
        src = io.BytesIO(data) if data is not None else Path(path)
        df = pd.read_csv(src, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{name}: not a readable CSV file: {e}") from e
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in RAW_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {', '.join(missing)}; expected the columns "
                         f"{', '.join(RAW_COLUMNS)} (found {', '.join(df.columns)})")
    df = df[list(RAW_COLUMNS)].copy()
    for c in RAW_COLUMNS:
        df[c] = df[c].astype(str).str.strip()
    df["row"] = np.arange(1, len(df) + 1, dtype=np.int64)
    for col, conv in (("trial", "int"), ("session", "int"), ("rt", "float")):
        values = pd.to_numeric(df[col].replace({"": "NaN"}), errors="coerce")
        bad = values.isna() & ~df[col].str.lower().isin(["nan", "", "na"]) if col == "rt" else values.isna()
        if bad.any():
            r = int(df["row"][bad].iloc[0])
            raise ValueError(f"{name}: row {r} (line {r + 1}): column {col!r} = {df[col][bad].iloc[0]!r} "
                             f"is not a number")
        df[col] = values.astype(np.int64) if conv == "int" else values.astype(np.float64)
    return df


TRIAL_COLUMNS = ("dataset", "subj", "session", "trial", "condition", "image", "index", "category",
                 "texture", "response", "correct", "rt", "imagename", "file", "row")


def join_trials(raw: pd.DataFrame, images: pd.DataFrame, file: str | os.PathLike) -> pd.DataFrame:
    """Join the rows of one raw CSV (from :func:`read_raw_csv`) to the image table.

    Returns the tidy trial rows (:data:`TRIAL_COLUMNS`). ValueError naming ``file`` and the row
    when a trial's image is not in the table, matches more than one image, or has another
    category than the image; or when a response is neither one of the 16 categories nor "na".
    """
    file = str(file)
    dataset = str(images["dataset"].iloc[0]) if len(images) else "?"
    keys = pd.DataFrame({"condition": images["condition"].astype(str), "image": images["image"].astype(str),
                         "index": images["index"].astype(np.int64)})
    counts = keys.groupby(["condition", "image"], sort=False)["index"].transform("size")
    trials = pd.DataFrame({
        "subj": raw["subj"].astype(str), "session": raw["session"], "trial": raw["trial"],
        "condition": raw["condition"].astype(str), "image": raw["imagename"].map(short_imagename).astype(str),
        "category_csv": raw["category"].astype(str), "response": raw["object_response"].astype(str).str.lower(),
        "rt": raw["rt"], "imagename": raw["imagename"].astype(str), "row": raw["row"],
    })
    merged = trials.merge(keys.assign(n_match=counts), on=["condition", "image"], how="left",
                          validate="many_to_many", sort=False)
    unjoined = merged["index"].isna()
    if unjoined.any():
        r = merged[unjoined].iloc[0]
        near = keys.loc[keys["image"] == r["image"], "condition"].tolist()
        hint = (f"; that image exists under condition(s) {near}" if near else
                f"; no image {r['image']!r} in the {dataset} image table")
        raise ValueError(f"{file}: row {int(r['row'])} (line {int(r['row']) + 1}): trial does not join to an "
                         f"image: imagename {r['imagename']!r} -> image {r['image']!r}, condition "
                         f"{r['condition']!r}{hint} ({int(unjoined.sum())} unjoined trial(s) in this file)")
    ambiguous = merged["n_match"] > 1
    if ambiguous.any():
        r = merged[ambiguous].iloc[0]
        paths = images.loc[(images["image"] == r["image"]) & (images["condition"] == r["condition"]), "path"].tolist()
        raise ValueError(f"{file}: row {int(r['row'])} (line {int(r['row']) + 1}): image {r['image']!r} "
                         f"(condition {r['condition']!r}) matches {len(paths)} files: {paths}")
    merged["index"] = merged["index"].astype(np.int64)
    img = images.set_index("index")
    merged["category"] = img.loc[merged["index"], "category"].astype(str).to_numpy()
    merged["texture"] = img.loc[merged["index"], "texture"].to_numpy()
    wrong = merged["category"] != merged["category_csv"]
    if wrong.any():
        r = merged[wrong].iloc[0]
        raise ValueError(f"{file}: row {int(r['row'])} (line {int(r['row']) + 1}): category "
                         f"{r['category_csv']!r} but image {r['image']!r} is a {r['category']!r}")
    valid = set(CATEGORIES) | {NO_RESPONSE}
    bad = ~merged["response"].isin(valid)
    if bad.any():
        r = merged[bad].iloc[0]
        raise ValueError(f"{file}: row {int(r['row'])} (line {int(r['row']) + 1}): object_response "
                         f"{r['response']!r} is not one of the 16 categories or {NO_RESPONSE!r}")
    merged["correct"] = (merged["response"] == merged["category"]).to_numpy(dtype=bool)
    merged["dataset"] = dataset
    merged["file"] = Path(file).name
    return merged[list(TRIAL_COLUMNS)]


def load_trials(dataset: str, root: str | os.PathLike | None = None, images: pd.DataFrame | None = None,
                pattern: str = "*.csv", raw_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """All trials of ``raw-data/<dataset>/<pattern>``, joined to their images: one tidy table.

    Columns (:data:`TRIAL_COLUMNS`): dataset, subj, session, trial, condition, image, index
    (row of :func:`load_images`), category (true / shape), texture (cue-conflict), response
    (``object_response``, lower case; ``"na"`` = no answer), correct (response == category;
    "na" counts as wrong, as in model-vs-human), rt, imagename, file, row. Sorted by file, then
    row. ``raw_dir`` reads the CSVs from another folder (e.g. model results written by
    :func:`sparsevis.alignment.write_raw_csv`).
    """
    check_dataset(dataset)
    if images is None:
        images = load_images(dataset, root)
    rdir = raw_data_dir(dataset, root) if raw_dir is None else Path(raw_dir)
    files = sorted(p for p in rdir.glob(pattern) if p.is_file() and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"{rdir}: no CSV files matching {pattern!r}; {how_to_get(dataset)}")
    parts = [join_trials(read_raw_csv(f), images, f) for f in files]
    out = pd.concat(parts, ignore_index=True)
    out["correct"] = out["correct"].astype(bool)
    return out

