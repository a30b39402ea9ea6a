"""model-vs-human silhouettes as object masks and boxes for the edge images.

Silhouettes as masks
    ``edge/<c>/<c><i>.png`` and ``silhouette/<c>/<c><i>.png`` show the same object in the same
    pose; the silhouette is the filled object, black on white (grey: R = G = B). On the 160
    real silhouettes the grey values are bimodal: 96.4 % of all pixels are exactly 0 or 255,
    the rest are anti-aliasing along the outline, spread over 1..254 (most of them in thin
    parts: up to 19 % of a bicycle image's pixels, whose spokes are a pixel wide). The mask is
    ``grey < 128`` (:data:`SILHOUETTE_THRESHOLD`: a boundary pixel counts when it is more than
    half covered). Moving the threshold anywhere in 32..224 changes a mask's area by 1.8 %
    (median over images), at most 17 % (bicycle7.png, spokes).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..boxes import masks_to_boxes
from ..imagenet16 import CATEGORIES
from .catalog import dataset_dir
from .images import load_image, load_images, single_category

SILHOUETTE_THRESHOLD = 128


def _silhouette_path(edge_image: str | os.PathLike, root) -> Path:
    name = Path(str(edge_image)).name
    if not os.path.splitext(name)[1]:
        name += ".png"
    cat = single_category(name)
    if cat is None:
        raise ValueError(f"edge image {edge_image!r}: expected an edge/silhouette file name <category><i>.png")
    if cat not in CATEGORIES:
        raise ValueError(f"edge image {edge_image!r}: {cat!r} is not one of the 16 categories")
    path = dataset_dir("silhouette", root) / cat / name
    if not path.is_file():
        raise FileNotFoundError(f"silhouette for edge image {edge_image!r} not found: expected {path}")
    return path


def _mask_from_silhouette(path: Path, threshold: int) -> np.ndarray:
    grey = np.asarray(load_image(path).convert("L"))
    mask = grey < threshold
    if not mask.any():
        raise ValueError(f"{path}: silhouette has no pixel darker than {threshold}; expected a black object on white")
    return mask


def silhouette_mask(edge_image: str | os.PathLike, root: str | os.PathLike | None = None,
                    threshold: int = SILHOUETTE_THRESHOLD) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Foreground mask and box of an edge image, from the silhouette with the same name.

    ``edge_image``: a file name (``'airplane1.png'``, ``'airplane1'``) or path of an edge image.
    Returns ``(mask, box)``: mask bool (224, 224), True where the silhouette is darker than
    ``threshold`` (see module doc); box ``(x1, y1, x2, y2)`` ints, pixels, x2/y2 exclusive.
    """
    mask = torch.from_numpy(_mask_from_silhouette(_silhouette_path(edge_image, root), threshold))
    box = masks_to_boxes(mask[None])[0].tolist()
    return mask, tuple(int(v) for v in box)


def edge_masks(root: str | os.PathLike | None = None, images: pd.DataFrame | None = None,
               threshold: int = SILHOUETTE_THRESHOLD, progress: bool = True
               ) -> tuple[pd.DataFrame, torch.Tensor, torch.Tensor]:
    """Masks and boxes for every edge image: ``(images, masks (N,224,224) bool, boxes (N,4) long)``,
    row i of masks/boxes belonging to row i of ``images`` (default: ``load_images("edge")``)."""
    from tqdm.auto import tqdm

    if images is None:
        images = load_images("edge", root)
    masks = torch.from_numpy(np.stack([_mask_from_silhouette(_silhouette_path(f, root), threshold)
                                       for f in tqdm(images["filename"], desc="silhouette masks",
                                                     disable=not progress, leave=False)]))
    return images, masks, masks_to_boxes(masks)
