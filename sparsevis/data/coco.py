"""COCO20k (LOST's object-discovery benchmark): 19,817 COCO *train2014* images with their
2014 instance boxes.

Layout (``train2014.zip`` and ``annotations_trainval2014.zip`` unpacked in ``<root>/coco``)::

    <root>/coco/train2014/COCO_train2014_<id:012d>.jpg
    <root>/coco/annotations/instances_train2014.json
    <root>/coco/coco_20k_filenames.txt      LOST's image list (datasets/coco_20k_filenames.txt)

The list is LOST's text file, one ``train2014/COCO_train2014_<id>.jpg`` a line (bare file
names are accepted too); it must hold exactly 19,817 distinct names unless
``expected_count`` says otherwise (None: any number, for fixtures and custom subsets).

Boxes follow LOST's COCO20k protocol: LOST builds ``instances_train2014_sel20k.json`` by keeping
*every* annotation of the listed images, and at evaluation drops the crowd annotations
(``iscrowd == 1``) and nothing else. COCO ``bbox`` is ``[x, y, w, h]`` in continuous pixel
coordinates, converted to ``x1, y1, x2, y2 = x, y, x + w, y + h``. LOST then rounds each
coordinate to an integer (Python ``round``); we keep the floats by default and offer
``round_boxes=True`` to reproduce LOST's integers exactly. An image whose annotations are all
crowds gets an empty ``(0, 4)`` box tensor (CorLoc counts it as a miss); see
``COCO20k.images_without_boxes``.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import Dataset

from .paths import data_root, load_rgb, require_dataset
from .transforms import normalize_transform
from .voc import DetectionSample

COCO20K_COUNT = 19817
LIST_NAME = "coco_20k_filenames.txt"
_NAME = re.compile(r"COCO_train2014_(\d{12})\.jpg")

HOW_TO_GET = (
    "Download train2014.zip and annotations_trainval2014.zip (COCO 2014, https://cocodataset.org/"
    "#download) and unpack both in coco/ under the data root (giving coco/train2014/ and "
    "coco/annotations/instances_train2014.json); put LOST's list of the 19,817 COCO20k images "
    f"(datasets/{LIST_NAME} in https://github.com/valeoai/LOST) at coco/{LIST_NAME}, or pass "
    "its path as list_file."
)


def coco_dir(root: str | os.PathLike | None = None) -> Path:
    """``<root>/coco``, checked to exist."""
    root = data_root() if root is None else Path(root)
    return require_dataset(root / "coco", "COCO 2014", HOW_TO_GET)


def read_coco20k_list(path: str | os.PathLike, expected_count: int | None = COCO20K_COUNT) -> list[str]:
    """The image file names (``COCO_train2014_<id>.jpg``) of a COCO20k list file, in file order.

    Lines are ``train2014/<name>`` or ``<name>``. ValueError naming the file for a line that is
    not a train2014 image name, a repeated image, or (with ``expected_count`` set) a count other
    than ``expected_count``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO20k image list not found: {path}. {HOW_TO_GET}")
    names: list[str] = []
    seen: set[str] = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        entry = line.strip()
        if not entry:
            continue
        folder, _, name = entry.rpartition("/")
        if folder not in ("", "train2014") or not _NAME.fullmatch(name):
            raise ValueError(f"{path}, line {lineno}: {entry!r} is not a COCO train2014 image "
                             f"(expected 'train2014/COCO_train2014_<12 digits>.jpg')")
        if name in seen:
            raise ValueError(f"{path}, line {lineno}: {name} is listed twice")
        seen.add(name)
        names.append(name)
    if expected_count is not None and len(names) != expected_count:
        raise ValueError(f"{path}: lists {len(names)} images, expected {expected_count} "
                         f"(LOST's COCO20k list; pass expected_count=None to accept any number)")
    if not names:
        raise ValueError(f"{path}: the image list is empty")
    return names


def image_id_from_name(name: str) -> int:
    """``COCO_train2014_000000000009.jpg`` (optionally with a folder) -> 9."""
    m = _NAME.fullmatch(name.rpartition("/")[2])
    if not m:
        raise ValueError(f"{name!r} is not a COCO train2014 image file name")
    return int(m.group(1))


def load_instances(path: str | os.PathLike) -> dict:
    """Load a COCO instances JSON and check its top-level structure (ValueError naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {path}. {HOW_TO_GET}")
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: malformed JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with 'images', 'annotations', 'categories'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: missing or non-list {key!r}; not a COCO instances file")
    return data


@dataclass(frozen=True)
class COCOImage:
    image_id: int
    file_name: str
    width: int
    height: int
    boxes: tuple[tuple[float, float, float, float], ...]   # x1, y1, x2, y2, crowds dropped
    category_ids: tuple[int, ...]
    n_crowd: int                                            # crowd annotations dropped

    @property
    def box_tensor(self) -> torch.Tensor:
        return torch.tensor(self.boxes, dtype=torch.float32).reshape(-1, 4)


def _check(cond: bool, path: Path, msg: str) -> None:
    if not cond:
        raise ValueError(f"{path}: {msg}")


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class COCO20k(Dataset):
    """COCO20k boxes for object discovery; items are
    :class:`~sparsevis.data.voc.DetectionSample` ``(image, boxes, image_id, orig_size)`` with
    ``image_id`` the COCO id as a string and images at full resolution.

    ``list_file`` defaults to ``<root>/coco/coco_20k_filenames.txt`` and ``annotation_file`` to
    ``<root>/coco/annotations/instances_train2014.json`` (a pre-filtered file in the same format,
    such as LOST's ``instances_train2014_sel20k.json``, works too). Crowd annotations are dropped
    unless ``keep_crowd=True``; ``round_boxes=True`` rounds coordinates as LOST does.
    ``transform`` must not change the image geometry.
    """

    def __init__(self, root: str | os.PathLike | None = None, list_file: str | os.PathLike | None = None,
                 annotation_file: str | os.PathLike | None = None,
                 expected_count: int | None = COCO20K_COUNT, keep_crowd: bool = False,
                 round_boxes: bool = False, transform: Callable | None = None,
                 check_size: bool = False):
        cdir = coco_dir(root)
        list_file = Path(list_file) if list_file is not None else cdir / LIST_NAME
        ann_file = (Path(annotation_file) if annotation_file is not None
                    else cdir / "annotations" / "instances_train2014.json")
        require_dataset(list_file, "COCO20k image list", HOW_TO_GET)
        require_dataset(ann_file, "COCO 2014 instances annotations", HOW_TO_GET)
        self.image_dir = require_dataset(cdir / "train2014", "COCO train2014 images", HOW_TO_GET)
        self.list_file, self.annotation_file = list_file, ann_file
        names = read_coco20k_list(list_file, expected_count)
        data = load_instances(ann_file)

        by_name = {}
        for k, img in enumerate(data["images"]):
            _check(isinstance(img, dict) and isinstance(img.get("file_name"), str)
                   and isinstance(img.get("id"), int)
                   and isinstance(img.get("width"), int) and isinstance(img.get("height"), int),
                   ann_file, f"images[{k}] lacks an integer id/width/height or a file_name")
            by_name[img["file_name"]] = img
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(f"{len(missing)} images of {list_file} are not in {ann_file}, "
                             f"e.g. {missing[:3]}")
        wanted = {}
        for n in names:
            img = by_name[n]
            _check(img["id"] == image_id_from_name(n), ann_file,
                   f"image {n} has id {img['id']}, but its file name says {image_id_from_name(n)}")
            wanted[img["id"]] = img
        categories = {}
        for k, c in enumerate(data["categories"]):
            _check(isinstance(c, dict) and isinstance(c.get("id"), int), ann_file,
                   f"categories[{k}] lacks an integer id")
            categories[c["id"]] = c.get("name", str(c["id"]))
        self.categories = categories

        boxes: dict[int, list] = {i: [] for i in wanted}
        cats: dict[int, list] = {i: [] for i in wanted}
        crowd: dict[int, int] = {i: 0 for i in wanted}
        for k, a in enumerate(data["annotations"]):
            _check(isinstance(a, dict) and isinstance(a.get("image_id"), int), ann_file,
                   f"annotations[{k}] has no integer image_id")
            if a["image_id"] not in wanted:
                continue
            bbox = a.get("bbox")
            _check(isinstance(bbox, list) and len(bbox) == 4 and all(_is_num(v) for v in bbox),
                   ann_file, f"annotations[{k}] (id {a.get('id')}) has bbox {bbox!r}; expected [x, y, w, h]")
            _check(bbox[2] >= 0 and bbox[3] >= 0, ann_file,
                   f"annotations[{k}] (id {a.get('id')}) has a negative width or height: {bbox}")
            iscrowd = a.get("iscrowd", 0)
            _check(iscrowd in (0, 1), ann_file, f"annotations[{k}] has iscrowd={iscrowd!r}; expected 0 or 1")
            _check(isinstance(a.get("category_id"), int) and a["category_id"] in categories, ann_file,
                   f"annotations[{k}] has category_id {a.get('category_id')!r}, not in 'categories'")
            img_id = a["image_id"]
            if iscrowd == 1 and not keep_crowd:
                crowd[img_id] += 1
                continue
            x, y, w, h = (float(v) for v in bbox)
            box = (x, y, x + w, y + h)
            if round_boxes:
                box = tuple(float(round(v)) for v in box)
            boxes[img_id].append(box)
            cats[img_id].append(int(a["category_id"]))

        self.images = [
            COCOImage(image_id=wanted[i]["id"], file_name=wanted[i]["file_name"],
                      width=wanted[i]["width"], height=wanted[i]["height"],
                      boxes=tuple(boxes[i]), category_ids=tuple(cats[i]), n_crowd=crowd[i])
            for i in (by_name[n]["id"] for n in names)
        ]
        self.transform = transform if transform is not None else normalize_transform()
        self.check_size = check_size

    @property
    def images_without_boxes(self) -> list[int]:
        """Ids of listed images left with no box (all their annotations were crowds)."""
        return [im.image_id for im in self.images if not im.boxes]

    def __len__(self) -> int:
        return len(self.images)

    def image_path(self, i: int) -> Path:
        return self.image_dir / self.images[i].file_name

    def __getitem__(self, i: int) -> DetectionSample:
        rec = self.images[i]
        path = self.image_path(i)
        img = load_rgb(path)
        if self.check_size and img.size != (rec.width, rec.height):
            raise ValueError(f"{path} is {img.width}x{img.height} (WxH) but {self.annotation_file} "
                             f"says {rec.width}x{rec.height}")
        return DetectionSample(self.transform(img), rec.box_tensor, str(rec.image_id), (img.height, img.width))
