"""ImageNet-1k (ILSVRC2012) in class folders, with the torchvision reference transforms.

Layout::

    <root>/imagenet/train/<wnid>/*.JPEG     ILSVRC2012_img_train.tar (one inner tar per class)
    <root>/imagenet/val/<wnid>/*.JPEG       ILSVRC2012_img_val.tar, moved into class folders

Classes are the wnid folders sorted by name, mapped to 0..999 in that order (the
``torchvision.datasets.ImageFolder`` convention, which is also the index order of torchvision's
and timm's ImageNet classifiers). Images inside a class are sorted by file name, so the sample
order never depends on directory order.

Transforms: torchvision's ImageNet reference recipe, from :mod:`sparsevis.data.transforms`
(also importable from here, with ``IMAGENET_MEAN`` and ``IMAGENET_STD``).

``per_class=n`` keeps a fixed, seeded subset of n images per class (the "budget" variant):
each class's sorted file list goes through :func:`sparsevis.data.subsets.select_images` with a seed
derived from ``(seed, wnid)``, so a class's subset depends only on its own files, the seed and n.
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from .paths import data_root, load_rgb, require_dataset
from .subsets import select_images
from .transforms import (  # noqa: F401 (re-exported from here)
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_transform,
    normalize_transform,
    train_transform,
)

N_CLASSES = 1000
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")   # compared lower-case
SPLITS = ("train", "val")

HOW_TO_GET = (
    "Download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (ImageNet-1k, "
    "https://image-net.org/download.php), unpack them into imagenet/train/<wnid>/ and "
    "imagenet/val/<wnid>/ under the data root (the validation images must be moved into their "
    "class folders, e.g. with the ground truth of ILSVRC2012_devkit_t12.tar.gz)."
)


def imagenet_dir(root: str | os.PathLike | None = None) -> Path:
    """``<root>/imagenet``, checked to exist."""
    root = data_root() if root is None else Path(root)
    return require_dataset(root / "imagenet", "ImageNet-1k (ILSVRC2012)", HOW_TO_GET)


def find_classes(split_dir: str | os.PathLike, expected_classes: int | None = N_CLASSES) -> list[str]:
    """The class folder names of ``split_dir``, sorted; index k is class k.

    Hidden entries and plain files are ignored. ValueError (naming the folder) when there are no
    class folders or, with ``expected_classes`` set, a different number of them.
    """
    split_dir = Path(split_dir)
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise ValueError(f"{split_dir}: no class folders; expected one folder per class (<wnid>/*.JPEG)")
    if expected_classes is not None and len(classes) != expected_classes:
        raise ValueError(f"{split_dir}: found {len(classes)} class folders, expected {expected_classes} "
                         f"(pass expected_classes=None to accept any number)")
    return classes


def list_images(class_dir: str | os.PathLike) -> list[str]:
    """File names of the images in one class folder, sorted."""
    return sorted(e.name for e in os.scandir(class_dir)
                  if e.is_file() and not e.name.startswith(".")
                  and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS)


class ImageNetFolder(Dataset):
    """ImageNet-1k split in class folders; items are ``(image tensor, class index)``.

    ``transform`` defaults to :func:`train_transform` for ``split="train"`` and
    :func:`eval_transform` otherwise. ``expected_classes`` (default 1000) is checked against the
    class folders found; None accepts any number (tests use fewer). ``per_class``/``seed`` keep a
    deterministic subset of at most ``per_class`` images per class (all of a class's images when
    it has fewer).
    """

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train",
                 transform: Callable | None = None, expected_classes: int | None = N_CLASSES,
                 per_class: int | None = None, seed: int = 0, progress: bool = True):
        from tqdm.auto import tqdm

        if split not in SPLITS:
            raise ValueError(f"split={split!r}: expected one of {SPLITS}")
        if per_class is not None and per_class < 1:
            raise ValueError(f"per_class={per_class}: expected a positive number of images per class or None")
        self.split = split
        self.dir = require_dataset(imagenet_dir(root) / split, f"ImageNet-1k {split} split", HOW_TO_GET)
        self.classes = find_classes(self.dir, expected_classes)
        self.class_to_idx = {wnid: k for k, wnid in enumerate(self.classes)}
        self.samples: list[tuple[Path, int]] = []
        for k, wnid in enumerate(tqdm(self.classes, desc=f"ImageNet {split}", disable=not progress, leave=False)):
            files = list_images(self.dir / wnid)
            if not files:
                raise ValueError(f"{self.dir / wnid}: class folder has no images ({', '.join(IMAGE_EXTENSIONS)})")
            if per_class is not None:
                files = select_images(files, min(per_class, len(files)),
                                      seed=[int(seed), zlib.crc32(wnid.encode("utf-8"))])
            self.samples.extend((self.dir / wnid / f, k) for f in files)
        self.targets = [t for _, t in self.samples]
        if transform is None:
            transform = train_transform() if split == "train" else eval_transform()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, target = self.samples[i]
        return self.transform(load_rgb(path)), target
