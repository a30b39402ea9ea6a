"""PASCAL VOC 2007 / 2012: detection boxes for object discovery (LOST) and segmentation ground
truth for interpretability.

Layout (what ``VOCtrainval_06-Nov-2007.tar`` / ``VOCtrainval_11-May-2012.tar`` unpack to)::

    <root>/VOCdevkit/VOC2007|VOC2012/
        JPEGImages/<id>.jpg
        Annotations/<id>.xml
        SegmentationClass/<id>.png              palette PNGs of class indices
        ImageSets/Main/{train,val,trainval}.txt
        ImageSets/Segmentation/{train,val,trainval}.txt

Boxes
    VOC's ``object/bndbox`` holds 1-based, inclusive pixel indices: a box that covers the whole
    image is ``xmin=1, xmax=W``. We convert to 0-based pixel *edges* with exclusive ends::

        x1 = xmin - 1,  y1 = ymin - 1,  x2 = xmax,  y2 = ymax

    so the whole image is ``(0, 0, W, H)`` and the width is ``x2 - x1 = xmax - xmin + 1``; this
    is also what LOST does. Coordinates are parsed as floats (two VOC2012 files carry a
    non-integer value) and never rounded.

    Every object is kept, ``difficult`` and ``truncated`` ones included, as LOST's default
    evaluation does (its ``--no_hard`` flag, off by default, is for the separate "VOC_all"
    setup); the flags are kept on each :class:`VOCObject` for anyone who wants to filter.

Segmentation masks
    ``SegmentationClass/*.png`` are palette ("P" mode) images whose *indices* are the labels:
    0 background, 1..20 the classes in :data:`VOC_CLASSES` order, 255 void (object borders and
    ambiguous pixels). They are read as indices and never converted to RGB: the colours are
    only a display palette. (The released code read the PNG as RGB, kept the red channel,
    min-max normalised it and thresholded at 0.5: the ten even-numbered classes, whose palette
    red is 0 or 64, became background and the void border (red 224) foreground.) ``mask`` is
    labels in 1..20, ``valid`` is labels != 255.

Image lists come from ``ImageSets``, never from directory order; :func:`select_images` picks a
fixed, seeded subset (:func:`sparsevis.data.subsets.select_images`, also importable from here).
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .paths import data_root, load_rgb, open_image, require_dataset
from .subsets import select_images
from .transforms import normalize_transform

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
"""The 20 VOC classes; class ``VOC_CLASSES[k - 1]`` has label index ``k`` in the masks."""

BACKGROUND = 0
VOID = 255
YEARS = ("2007", "2012")
ARCHIVES = {"2007": "VOCtrainval_06-Nov-2007.tar", "2012": "VOCtrainval_11-May-2012.tar"}
_CLASS_INDEX = {name: k + 1 for k, name in enumerate(VOC_CLASSES)}


def voc_palette(n: int = 256) -> np.ndarray:
    """The VOC colour palette, ``(n, 3)`` uint8: the bits of index i are spread, three at a time
    from the least significant, over the high bits of red, green and blue (so 1 is dark red,
    2 dark green, 255 (void) is (224, 224, 192))."""
    pal = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, rgb = i, [0, 0, 0]
        for j in range(8):
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << (7 - j)
            c >>= 3
        pal[i] = rgb
    return pal


def _how_to_get(year: str) -> str:
    return (f"Download {ARCHIVES[year]} (PASCAL VOC {year} trainval, "
            f"http://host.robots.ox.ac.uk/pascal/VOC/voc{year}/) and unpack it in the data root, "
            f"which creates VOCdevkit/VOC{year}/.")


def voc_dir(root: str | os.PathLike | None = None, year: str | int = "2007") -> Path:
    """``<root>/VOCdevkit/VOC<year>``, checked to exist (FileNotFoundError says what to get)."""
    year = str(year)
    if year not in YEARS:
        raise ValueError(f"year={year!r}: expected one of {YEARS}")
    root = data_root() if root is None else Path(root)
    return require_dataset(root / "VOCdevkit" / f"VOC{year}", f"PASCAL VOC {year}", _how_to_get(year))


# ----------------------------------------------------------------------------- image lists
def read_id_list(path: str | os.PathLike) -> list[str]:
    """Image ids of an ``ImageSets`` list file, one id a line, in file order.

    ValueError (naming the file) for an empty list, a line with more than one field (the
    per-class ``<class>_<set>.txt`` files are "id label" pairs and are not image lists) or a
    repeated id.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image list not found: {path}")
    ids: list[str] = []
    seen: set[str] = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 1:
            raise ValueError(f"{path}, line {lineno}: expected one image id per line, got {line.strip()!r}")
        if fields[0] in seen:
            raise ValueError(f"{path}, line {lineno}: image id {fields[0]!r} is listed twice")
        seen.add(fields[0])
        ids.append(fields[0])
    if not ids:
        raise ValueError(f"{path}: the image list is empty")
    return ids


# ----------------------------------------------------------------------------- annotations
@dataclass(frozen=True)
class VOCObject:
    name: str
    label: int                                   # 1..20, index into the masks
    box: tuple[float, float, float, float]       # x1, y1, x2, y2; 0-based, exclusive ends
    difficult: bool
    truncated: bool


@dataclass(frozen=True)
class VOCAnnotation:
    image_id: str
    filename: str
    width: int
    height: int
    objects: tuple[VOCObject, ...]

    @property
    def boxes(self) -> torch.Tensor:
        """``(n, 4)`` float32, x1, y1, x2, y2 in pixels (0-based, exclusive ends)."""
        return torch.tensor([o.box for o in self.objects], dtype=torch.float32).reshape(-1, 4)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([o.label for o in self.objects], dtype=torch.long)


def _text(elem: ET.Element, tag: str, path: Path, where: str) -> str:
    child = elem.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise ValueError(f"{path}: missing <{tag}> in {where}")
    return child.text.strip()


def _number(text: str, tag: str, path: Path, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}: <{tag}> in {where} is {text!r}, not a number") from None


def _flag(obj: ET.Element, tag: str, path: Path, where: str) -> bool:
    text = obj.findtext(tag)
    if text is None or not text.strip():
        return False                              # a few VOC2012 objects omit the flags
    if text.strip() not in ("0", "1"):
        raise ValueError(f"{path}: <{tag}> in {where} is {text.strip()!r}; expected 0 or 1")
    return text.strip() == "1"


def parse_annotation(path: str | os.PathLike) -> VOCAnnotation:
    """Parse one VOC XML file. ValueError naming the file for malformed content."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VOC annotation not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{path}: malformed XML ({e})") from None
    if root.tag != "annotation":
        raise ValueError(f"{path}: root element is <{root.tag}>, expected <annotation>")
    size = root.find("size")
    if size is None:
        raise ValueError(f"{path}: missing <size>")
    dims = []
    for tag in ("width", "height"):
        text = _text(size, tag, path, "<size>")
        if not text.isdigit() or int(text) <= 0:
            raise ValueError(f"{path}: <size>/<{tag}> is {text!r}; expected a positive integer")
        dims.append(int(text))
    objects = []
    for k, obj in enumerate(root.findall("object")):
        where = f"object {k}"
        name = _text(obj, "name", path, where)
        if name not in _CLASS_INDEX:
            raise ValueError(f"{path}: {where} has class {name!r}, not one of the 20 VOC classes")
        bnd = obj.find("bndbox")                  # direct child; <part> boxes are not objects
        if bnd is None:
            raise ValueError(f"{path}: {where} ({name}) has no <bndbox>")
        xmin, ymin, xmax, ymax = (
            _number(_text(bnd, t, path, f"{where}/bndbox"), t, path, f"{where}/bndbox")
            for t in ("xmin", "ymin", "xmax", "ymax")
        )
        if xmax < xmin or ymax < ymin:
            raise ValueError(f"{path}: {where} ({name}) has an empty box "
                             f"xmin={xmin}, ymin={ymin}, xmax={xmax}, ymax={ymax}")
        objects.append(VOCObject(
            name=name, label=_CLASS_INDEX[name],
            box=(xmin - 1.0, ymin - 1.0, xmax, ymax),
            difficult=_flag(obj, "difficult", path, where),
            truncated=_flag(obj, "truncated", path, where),
        ))
    return VOCAnnotation(
        image_id=path.stem, filename=root.findtext("filename", default=f"{path.stem}.jpg").strip(),
        width=dims[0], height=dims[1], objects=tuple(objects),
    )


# ----------------------------------------------------------------------------- detection
class DetectionSample(NamedTuple):
    image: torch.Tensor          # (3, H, W) float, normalised (ImageNet mean/std by default)
    boxes: torch.Tensor          # (n, 4) float32, x1, y1, x2, y2 in pixels of the original image
    image_id: str
    orig_size: tuple[int, int]   # (H, W) of the decoded image


def collate_list(batch):
    """DataLoader ``collate_fn`` for variable-sized images: a tuple of lists, one per field."""
    return tuple(list(field) for field in zip(*batch))


class VOCDetection(Dataset):
    """VOC boxes for object discovery (LOST protocol): ids from ``ImageSets/Main/<set>.txt``,
    every object's box kept (difficult and truncated too), images at full resolution.

    Items are :class:`DetectionSample` ``(image, boxes, image_id, orig_size)``. The full
    annotation (class names, flags, XML size) is ``self.annotations[i]``. ``check_size=True``
    makes loading an image whose size differs from its XML ``<size>`` a ValueError. ``transform``
    maps the RGB PIL image to a tensor (default: ``ToTensor`` + ImageNet normalisation); it must
    not change the geometry, or the boxes no longer match.
    """

    def __init__(self, root: str | os.PathLike | None = None, year: str | int = "2007",
                 image_set: str = "trainval", transform: Callable | None = None,
                 check_size: bool = False, progress: bool = True):
        from tqdm.auto import tqdm

        self.year = str(year)
        self.dir = voc_dir(root, self.year)
        list_path = self.dir / "ImageSets" / "Main" / f"{image_set}.txt"
        require_dataset(list_path, f"VOC{self.year} image list {image_set!r}", _how_to_get(self.year))
        self.image_set = image_set
        self.ids = read_id_list(list_path)
        ann_dir = self.dir / "Annotations"
        self.annotations = [
            parse_annotation(ann_dir / f"{i}.xml")
            for i in tqdm(self.ids, desc=f"VOC{self.year} {image_set} annotations",
                          disable=not progress, leave=False)
        ]
        self.transform = transform if transform is not None else normalize_transform()
        self.check_size = check_size

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, i: int) -> Path:
        return self.dir / "JPEGImages" / f"{self.ids[i]}.jpg"

    def __getitem__(self, i: int) -> DetectionSample:
        ann = self.annotations[i]
        path = self.image_path(i)
        img = load_rgb(path)
        if self.check_size and img.size != (ann.width, ann.height):
            raise ValueError(f"{path} is {img.width}x{img.height} (WxH) but its annotation "
                             f"{self.dir / 'Annotations' / (ann.image_id + '.xml')} says "
                             f"{ann.width}x{ann.height}")
        return DetectionSample(self.transform(img), ann.boxes, ann.image_id, (img.height, img.width))


# ----------------------------------------------------------------------------- segmentation
def read_segmentation_labels(path: str | os.PathLike) -> np.ndarray:
    """Class indices of a ``SegmentationClass`` PNG, ``(H, W)`` uint8 in {0..20, 255}.

    The PNG must be a palette ("P") or single-channel ("L") image; its stored indices are the
    labels. An RGB file (e.g. a re-saved colour rendering) is a ValueError: colours are not
    labels. Values outside {0..20, 255} are a ValueError naming the file.
    """
    img = open_image(path, "VOC segmentation mask")
    mode = img.mode
    labels = np.array(img) if mode in ("P", "L") else None
    if labels is None:
        raise ValueError(f"{path}: image mode {mode!r}; expected a palette ('P') PNG whose indices "
                         f"are VOC labels (0 background, 1..20 classes, 255 void)")
    bad = np.setdiff1d(np.unique(labels), np.r_[0:21, VOID])
    if bad.size:
        raise ValueError(f"{path}: label values {bad.tolist()[:10]} are not VOC labels "
                         f"(expected 0..20 or 255)")
    return labels.astype(np.uint8, copy=False)


def label_masks(labels):
    """``(mask, valid)`` from class indices: mask = label in 1..20, valid = label != 255.

    Works on numpy arrays and torch tensors; returns the same kind, bool.
    """
    fg = (labels >= 1) & (labels <= len(VOC_CLASSES))
    return fg, labels != VOID


class SegmentationSample(NamedTuple):
    image: torch.Tensor          # (3, H, W) float, normalised
    mask: torch.Tensor           # (H, W) bool: any of the 20 classes
    valid: torch.Tensor          # (H, W) bool: False on void (255) pixels
    image_id: str


class VOCSegmentation(Dataset):
    """VOC ``SegmentationClass`` ground truth for the interpretability study.

    Ids come from ``ImageSets/Segmentation/<image_set>.txt``; ``n`` and ``seed`` pick a fixed
    subset with :func:`select_images` (``self.ids`` is sorted). ``size`` (int or (H, W)), when
    given, resizes the image bilinearly (antialiased) and the labels by nearest neighbour to the
    same size; None keeps the original resolution. ``transform`` maps the (resized) RGB PIL
    image to a tensor (default ``ToTensor`` + ImageNet normalisation) and must not change its
    geometry. Items are :class:`SegmentationSample`; :meth:`labels` gives the class indices.
    """

    def __init__(self, root: str | os.PathLike | None = None, year: str | int = "2012",
                 image_set: str = "val", n: int | None = None, seed: int = 0,
                 size: int | tuple[int, int] | None = None, transform: Callable | None = None):
        self.year = str(year)
        self.dir = voc_dir(root, self.year)
        list_path = self.dir / "ImageSets" / "Segmentation" / f"{image_set}.txt"
        require_dataset(list_path, f"VOC{self.year} segmentation list {image_set!r}", _how_to_get(self.year))
        self.image_set = image_set
        self.ids = select_images(read_id_list(list_path), n, seed)
        for i in self.ids:
            for p in (self.image_path(i), self.mask_path(i)):
                if not p.is_file():
                    raise FileNotFoundError(f"{p} is missing, but {i!r} is listed in {list_path}")
        self.size = (size, size) if isinstance(size, int) else (tuple(size) if size is not None else None)
        self.transform = transform if transform is not None else normalize_transform()

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, image_id: str) -> Path:
        return self.dir / "JPEGImages" / f"{image_id}.jpg"

    def mask_path(self, image_id: str) -> Path:
        return self.dir / "SegmentationClass" / f"{image_id}.png"

    def _load(self, i: int):
        from PIL import Image

        image_id = self.ids[i]
        img = load_rgb(self.image_path(image_id))
        labels = read_segmentation_labels(self.mask_path(image_id))
        if labels.shape != (img.height, img.width):
            raise ValueError(f"{self.mask_path(image_id)} is {labels.shape[1]}x{labels.shape[0]} (WxH) "
                             f"but {self.image_path(image_id)} is {img.width}x{img.height}")
        if self.size is not None:
            h, w = self.size
            img = img.resize((w, h), Image.Resampling.BILINEAR)
            labels = np.array(Image.fromarray(labels).resize((w, h), Image.Resampling.NEAREST))
        return image_id, img, labels

    def labels(self, i: int) -> torch.Tensor:
        """``(H, W)`` uint8 class indices of item i (0 background, 1..20, 255 void)."""
        return torch.from_numpy(self._load(i)[2])

    def __getitem__(self, i: int) -> SegmentationSample:
        image_id, img, labels = self._load(i)
        mask, valid = label_masks(torch.from_numpy(labels))
        return SegmentationSample(self.transform(img), mask, valid, image_id)
