"""model-vs-human stimuli: the image table of a dataset, its files, and a torch Dataset.

File names and conditions
    ``edge``/``silhouette``: ``<category><i>.png``; ``cue-conflict``:
    ``<shape><i>-<texture><j>.png`` (the folder is the shape category). These three have no
    levels; their condition is ``"0"``, as in the CSVs. The 14 session datasets name files as
    model-vs-human's ``InfoMappingWithSessions`` parses them,
    ``<trial>_<exp>_<who>_<condition>_<category>_<x>_<image>`` (e.g.
    ``0001_cl_dnn_cr_oven_40_n04111531_14126.png``): field 3 is the condition (``cr``, ``c05``,
    ``0.35``, ``16-3-10`` ...), field 4 the category.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from torch.utils.data import Dataset

from ..imagenet16 import CATEGORIES
from ..paths import load_rgb
from ..transforms import to_normalized_tensor
from .catalog import SESSION_DATASETS, check_dataset, dataset_dir

IMAGE_SIZE = 224
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")

_CUE_CONFLICT_RE = re.compile(r"^([a-z]+)(\d+)-([a-z]+)(\d+)\.(png|jpe?g)$", re.IGNORECASE)
_SINGLE_RE = re.compile(r"^([a-z]+)(\d+)\.(png|jpe?g)$", re.IGNORECASE)


def single_category(filename: str) -> str | None:
    """The category of an edge/silhouette file name ``'<category><i>.png'`` (lower case), else None."""
    m = _SINGLE_RE.match(filename)
    return None if m is None else m.group(1).lower()


def parse_cue_conflict(filename: str) -> tuple[str, str]:
    """``'<shape><i>-<texture><j>.png'`` -> ``(shape, texture)``; ValueError naming the file otherwise."""
    m = _CUE_CONFLICT_RE.match(Path(filename).name)
    if m is None:
        raise ValueError(f"{filename}: not a cue-conflict file name; expected <shape><i>-<texture><j>.png, "
                         f"e.g. bird3-clock2.png")
    shape, texture = m.group(1).lower(), m.group(3).lower()
    for what, c in (("shape", shape), ("texture", texture)):
        if c not in CATEGORIES:
            raise ValueError(f"{filename}: {what} category {c!r} is not one of the 16 categories "
                             f"({', '.join(CATEGORIES)})")
    return shape, texture


def is_image_file(name: str) -> bool:
    """Whether ``name`` is a stimulus file: not hidden, extension one of :data:`IMAGE_EXTENSIONS`."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _folder_rows(dataset: str, ddir: Path) -> list[dict]:
    rows = []
    cats = sorted(e.name for e in os.scandir(ddir) if e.is_dir() and not e.name.startswith("."))
    if not cats:
        raise ValueError(f"{ddir}: no category folders; expected {ddir}/<category>/<file>.png")
    for cat in cats:
        if cat not in CATEGORIES:
            raise ValueError(f"{ddir / cat}: folder is not one of the 16 categories ({', '.join(CATEGORIES)})")
        for name in sorted(e.name for e in os.scandir(ddir / cat) if e.is_file() and is_image_file(e.name)):
            path = ddir / cat / name
            texture = None
            if dataset == "cue-conflict":
                shape, texture = parse_cue_conflict(name)
                if shape != cat:
                    raise ValueError(f"{path}: shape category {shape!r} in the file name does not match "
                                     f"its folder {cat!r}")
            else:
                if single_category(name) != cat:
                    raise ValueError(f"{path}: expected a file name <category><i>.png with category {cat!r}")
            rows.append(dict(filename=name, image=name, category=cat, texture=texture, condition="0",
                             session=1, path=str(path)))
    return rows


def _session_rows(dataset: str, ddir: Path) -> list[dict]:
    rows = []
    sessions = sorted((e.name for e in os.scandir(ddir) if e.is_dir() and e.name.startswith("session-")),
                      key=lambda s: (len(s), s))
    if not sessions:
        raise ValueError(f"{ddir}: no session-<k> folders; expected {ddir}/session-1/<file>.png")
    for sess in sessions:
        try:
            k = int(sess.split("-", 1)[1])
        except ValueError:
            raise ValueError(f"{ddir / sess}: expected a folder named session-<number>") from None
        for name in sorted(e.name for e in os.scandir(ddir / sess) if e.is_file() and is_image_file(e.name)):
            parts = name.split("_", 6)
            if len(parts) != 7:
                raise ValueError(f"{ddir / sess / name}: expected a file name with six '_'-separated fields "
                                 f"before the image name (<trial>_<exp>_<who>_<condition>_<category>_<x>_<image>)")
            condition, category = parts[3], parts[4]
            if category not in CATEGORIES:
                raise ValueError(f"{ddir / sess / name}: category field {category!r} is not one of the 16 "
                                 f"categories ({', '.join(CATEGORIES)})")
            rows.append(dict(filename=name, image=parts[6], category=category, texture=None,
                             condition=condition, session=k, path=str(ddir / sess / name)))
    return rows


IMAGE_COLUMNS = ("index", "dataset", "image", "filename", "category", "texture", "condition", "session", "path")


def load_images(dataset: str, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Table of a dataset's images, one row per file, in a sorted, deterministic order.

    Columns: ``index`` (0..N-1, the row's position and the index :class:`MVHImages` yields),
    ``dataset``, ``image`` (join key, see :mod:`sparsevis.data.mvh.trials`), ``filename``, ``category`` (true class;
    the shape class for cue-conflict), ``texture`` (cue-conflict only, else None),
    ``condition`` (str), ``session`` (int), ``path`` (str). Order: category folder, then file
    name (ImageFolder order) for edge/silhouette/cue-conflict; session, then file name otherwise.
    """
    check_dataset(dataset)
    ddir = dataset_dir(dataset, root)
    if (ddir / "dnn").is_dir():
        rows = _session_rows(dataset, ddir / "dnn")
    elif dataset in SESSION_DATASETS and any(e.name.startswith("session-") for e in os.scandir(ddir)):
        rows = _session_rows(dataset, ddir)
    else:
        rows = _folder_rows(dataset, ddir)
    if not rows:
        raise ValueError(f"{ddir}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    df = pd.DataFrame(rows)
    df.insert(0, "dataset", dataset)
    df.insert(0, "index", np.arange(len(df), dtype=np.int64))
    df["session"] = df["session"].astype(np.int64)
    return df[list(IMAGE_COLUMNS)]



def load_image(path: str | os.PathLike, size: int | None = IMAGE_SIZE):
    """Open and fully decode one stimulus as RGB ``PIL.Image``.

    A file that does not decode (truncated, not an image) raises ValueError naming it; with
    ``size`` set, an image that is not ``size x size`` does too.
    """
    img = load_rgb(path)
    if size is not None and img.size != (size, size):
        raise ValueError(f"{path}: image is {img.size[0]}x{img.size[1]}, expected {size}x{size} "
                         f"(model-vs-human stimuli are {IMAGE_SIZE}x{IMAGE_SIZE})")
    return img



class MVHImages(Dataset):
    """A model-vs-human dataset as a torch Dataset: items are ``(image, index)``.

    ``image`` is a float (3, 224, 224) tensor normalised with the ImageNet mean/std (or whatever
    ``transform`` makes of the PIL image); ``index`` is the row of :attr:`images` (the table
    from :func:`load_images`, or the one passed in, which may be a subset: its ``index`` column
    is what is yielded). Images that are not 224x224 are an error (``size=None`` to allow any).
    """

    def __init__(self, dataset: str | None = None, root: str | os.PathLike | None = None,
                 transform: Callable | None = None, images: pd.DataFrame | None = None,
                 size: int | None = IMAGE_SIZE):
        if images is None:
            if dataset is None:
                raise ValueError("MVHImages: expected a dataset name or an images table")
            images = load_images(dataset, root)
        missing = [c for c in ("index", "path") if c not in images.columns]
        if missing:
            raise ValueError(f"images: table lacks column(s) {missing}; expected the output of load_images()")
        self.images = images.reset_index(drop=True)
        self.dataset = dataset if dataset is not None else (
            str(self.images["dataset"].iloc[0]) if "dataset" in self.images and len(self.images) else None)
        self.transform = to_normalized_tensor if transform is None else transform
        self.size = size
        self._paths = self.images["path"].tolist()
        self._index = self.images["index"].astype(np.int64).tolist()

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, i: int):
        return self.transform(load_image(self._paths[i], self.size)), self._index[i]
