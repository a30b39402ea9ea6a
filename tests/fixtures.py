"""Tiny datasets in exactly the official on-disk formats, written into a temporary folder.

Each ``make_*`` function writes the files under ``root`` where the readers in
``sparsevis.data`` look for them (``root`` plays the part of the data root) and returns the
answers a reader must find. Files are created in a shuffled order so that nothing can depend
on creation or directory order.

- :func:`make_voc`: ``VOCdevkit/VOC<year>/`` with JPEGImages, Annotations (XML), palette-PNG
  SegmentationClass and ImageSets/{Main,Segmentation}; the masks use all 20 classes,
  background and void (255); the XML has several objects per image, difficult and truncated
  objects, a person with ``<part>`` boxes and a box that covers the whole image.
- :func:`make_coco20k`: ``coco/train2014/*.jpg``, ``coco/annotations/instances_train2014.json``
  and LOST's list format ``coco/coco_20k_filenames.txt`` (a subset of the images), with crowd
  annotations and an image whose only annotation is a crowd.
- :func:`make_imagenet`: ``imagenet/{train,val}/<wnid>/*.JPEG``.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from sparsevis.data.voc import VOC_CLASSES, voc_palette

VOID = 255


def _jpeg(path: Path, width: int, height: int, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 256, size=3)
    arr = np.clip(base + rng.integers(-40, 41, size=(height, width, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(arr, "RGB").save(path, format="JPEG", quality=90)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------- VOC
@dataclass
class FixtureObject:
    name: str
    label: int
    box: tuple[int, int, int, int]        # expected reader output: 0-based, exclusive ends
    difficult: bool
    truncated: bool

    @property
    def bndbox(self) -> tuple[int, int, int, int]:
        """What the XML holds: 1-based inclusive xmin, ymin, xmax, ymax."""
        x1, y1, x2, y2 = self.box
        return x1 + 1, y1 + 1, x2, y2


@dataclass
class VOCFixture:
    root: Path                             # the data root
    dir: Path                              # root/VOCdevkit/VOC<year>
    year: str
    ids: list[str]                         # ImageSets/Main/trainval.txt, sorted
    main_splits: dict[str, list[str]]
    seg_ids: list[str]                     # ImageSets/Segmentation/trainval.txt, sorted
    seg_splits: dict[str, list[str]]
    sizes: dict[str, tuple[int, int]]      # id -> (W, H)
    objects: dict[str, list[FixtureObject]]
    labels: dict[str, np.ndarray] = field(default_factory=dict)   # seg id -> (H, W) uint8


def _voc_xml(year: str, image_id: str, size: tuple[int, int], objects: list[FixtureObject],
             segmented: bool) -> str:
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = f"VOC{year}"
    ET.SubElement(ann, "filename").text = f"{image_id}.jpg"
    src = ET.SubElement(ann, "source")
    ET.SubElement(src, "database").text = f"The VOC{year} Database"
    ET.SubElement(src, "annotation").text = f"PASCAL VOC{year}"
    ET.SubElement(src, "image").text = "flickr"
    sz = ET.SubElement(ann, "size")
    ET.SubElement(sz, "width").text = str(size[0])
    ET.SubElement(sz, "height").text = str(size[1])
    ET.SubElement(sz, "depth").text = "3"
    ET.SubElement(ann, "segmented").text = "1" if segmented else "0"
    for o in objects:
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = o.name
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "1" if o.truncated else "0"
        ET.SubElement(obj, "difficult").text = "1" if o.difficult else "0"
        bb = ET.SubElement(obj, "bndbox")
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), o.bndbox):
            ET.SubElement(bb, tag).text = str(v)
        if o.name == "person":              # VOC person layout: parts with their own boxes
            xmin, ymin, xmax, ymax = o.bndbox
            part = ET.SubElement(obj, "part")
            ET.SubElement(part, "name").text = "head"
            pb = ET.SubElement(part, "bndbox")
            for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), (xmin, ymin, xmin + 2, ymin + 2)):
                ET.SubElement(pb, tag).text = str(v)
    ET.indent(ann, space="\t")
    return ET.tostring(ann, encoding="unicode") + "\n"


def _voc_id(year: str, k: int) -> str:
    return f"{2 * k + 5:06d}" if year == "2007" else f"2008_{2 * k + 3:06d}"


def make_voc(root, year: str | int = "2007", n_extra: int = 5, seed: int = 0,
             creation_seed: int | None = None) -> VOCFixture:
    """Write a tiny VOC<year> into ``root/VOCdevkit/VOC<year>``.

    Five segmentation images carry four objects each, classes 1..20 once each, every object a
    rectangle ringed by void; ``n_extra`` more images are detection-only, the first of them with
    one box covering the whole image and the second with only difficult/truncated objects.
    ``creation_seed`` shuffles the order in which files are created (default: ``seed``).
    """
    year = str(year)
    root = Path(root)
    rng = np.random.default_rng(seed)
    pal = voc_palette().reshape(-1).tolist()
    vdir = root / "VOCdevkit" / f"VOC{year}"
    n_seg = 5
    ids = [_voc_id(year, k) for k in range(n_seg + n_extra)]
    sizes, objects, labels = {}, {}, {}

    for k, image_id in enumerate(ids):
        W, H = 48 + 4 * (k % 3), 40 + 2 * (k % 2)
        sizes[image_id] = (W, H)
        objs: list[FixtureObject] = []
        if k < n_seg:                                   # 2 x 2 grid of rectangles, void rings
            lab = np.zeros((H, W), dtype=np.uint8)
            for j in range(4):
                cls = 4 * k + j + 1
                cx, cy = (j % 2) * (W // 2), (j // 2) * (H // 2)
                x0, y0 = cx + 2 + (k + j) % 3, cy + 2 + j % 2
                x1, y1 = cx + W // 2 - 2 - j % 2, cy + H // 2 - 2 - (k % 2)
                lab[y0 - 1:y1 + 1, x0 - 1:x1 + 1] = VOID
                lab[y0:y1, x0:x1] = cls
                objs.append(FixtureObject(VOC_CLASSES[cls - 1], cls, (x0, y0, x1, y1),
                                          difficult=(k + j) % 4 == 1, truncated=(k + j) % 3 == 2))
            labels[image_id] = lab
        elif k == n_seg:                                # one box covering the whole image
            objs.append(FixtureObject("dog", 12, (0, 0, W, H), difficult=False, truncated=True))
        elif k == n_seg + 1:                            # a LOST "hard" image: all objects hard
            objs.append(FixtureObject("bottle", 5, (3, 4, 10, 20), difficult=True, truncated=False))
            objs.append(FixtureObject("chair", 9, (12, 5, 30, 33), difficult=False, truncated=True))
        else:
            for j in range(1 + k % 3):
                cls = int(rng.integers(1, 21))
                x0, y0 = int(rng.integers(0, W // 2)), int(rng.integers(0, H // 2))
                x1, y1 = int(rng.integers(x0 + 1, W + 1)), int(rng.integers(y0 + 1, H + 1))
                objs.append(FixtureObject(VOC_CLASSES[cls - 1], cls, (x0, y0, x1, y1),
                                          difficult=bool(rng.integers(0, 2)), truncated=bool(rng.integers(0, 2))))
        objects[image_id] = objs

    seg_ids = ids[:n_seg]
    main_splits = {"train": ids[0::2], "val": ids[1::2], "trainval": ids}
    seg_splits = {"train": seg_ids[:3], "val": seg_ids[3:], "trainval": seg_ids}

    order = np.random.default_rng(seed if creation_seed is None else creation_seed).permutation(len(ids))
    for k in order:
        image_id = ids[k]
        W, H = sizes[image_id]
        _jpeg(vdir / "JPEGImages" / f"{image_id}.jpg", W, H, rng)
        _write(vdir / "Annotations" / f"{image_id}.xml",
               _voc_xml(year, image_id, (W, H), objects[image_id], image_id in labels))
        if image_id in labels:
            png = Image.fromarray(labels[image_id])
            png.putpalette(pal)
            assert png.mode == "P"
            path = vdir / "SegmentationClass" / f"{image_id}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            png.save(path)
    for split, lst in main_splits.items():
        _write(vdir / "ImageSets" / "Main" / f"{split}.txt", "".join(f"{i}\n" for i in lst))
    for cls in VOC_CLASSES:                             # per-class "id label" lists, as in VOC
        present = {i for i in ids if any(o.name == cls for o in objects[i])}
        _write(vdir / "ImageSets" / "Main" / f"{cls}_trainval.txt",
               "".join(f"{i} {' 1' if i in present else '-1'}\n" for i in ids))
    for split, lst in seg_splits.items():
        _write(vdir / "ImageSets" / "Segmentation" / f"{split}.txt", "".join(f"{i}\n" for i in lst))
    return VOCFixture(root=root, dir=vdir, year=year, ids=ids, main_splits=main_splits,
                      seg_ids=seg_ids, seg_splits=seg_splits, sizes=sizes, objects=objects,
                      labels=labels)


# ----------------------------------------------------------------------------- COCO
COCO_CATEGORIES = [
    {"supercategory": "person", "id": 1, "name": "person"},
    {"supercategory": "vehicle", "id": 2, "name": "bicycle"},
    {"supercategory": "vehicle", "id": 3, "name": "car"},
    {"supercategory": "animal", "id": 17, "name": "cat"},
    {"supercategory": "animal", "id": 18, "name": "dog"},
]


@dataclass
class COCOFixture:
    root: Path
    dir: Path                                   # root/coco
    list_file: Path
    annotation_file: Path
    names: list[str]                            # listed file names, in list order
    ids: list[int]                              # their COCO ids, same order
    boxes: dict[int, np.ndarray]                # id -> (n, 4) x1, y1, x2, y2, crowds dropped, file order
    raw_bboxes: dict[int, list[list[float]]]    # id -> non-crowd [x, y, w, h], in file order
    n_crowd: dict[int, int]
    sizes: dict[int, tuple[int, int]]           # id -> (W, H)
    crowd_only: int                             # id of the listed image whose only annotation is a crowd
    unlisted: list[int]


def coco_name(image_id: int) -> str:
    return f"COCO_train2014_{image_id:012d}.jpg"


def make_coco20k(root, n_listed: int = 6, n_unlisted: int = 2, seed: int = 0,
                 list_prefix: str = "train2014/") -> COCOFixture:
    """Write train2014 images, instances_train2014.json and a COCO20k list of ``n_listed`` of
    them (LOST's line format ``train2014/COCO_train2014_<id>.jpg``, not sorted). Listed image 1
    has a crowd next to ordinary objects, listed image 2 only a crowd."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    cdir = root / "coco"
    all_ids = sorted(int(v) for v in rng.choice(np.arange(9, 580000), n_listed + n_unlisted, replace=False))
    order = rng.permutation(len(all_ids))
    listed = [all_ids[j] for j in order[:n_listed]]
    unlisted = [all_ids[j] for j in order[n_listed:]]
    crowd_only = listed[2]

    images, anns = [], []
    boxes, raw, n_crowd, sizes = {}, {}, {}, {}
    ann_id = 100000
    for image_id in all_ids:
        W, H = int(rng.integers(40, 64)), int(rng.integers(30, 48))
        sizes[image_id] = (W, H)
        images.append({"license": 1, "file_name": coco_name(image_id),
                       "coco_url": f"http://images.cocodataset.org/train2014/{coco_name(image_id)}",
                       "height": H, "width": W, "date_captured": "2013-11-14 16:28:13",
                       "flickr_url": "http://farm1.staticflickr.com/1/1_1.jpg", "id": image_id})
        n_obj = 0 if image_id == crowd_only else 1 + image_id % 3
        kept = []
        for _ in range(n_obj):
            x = float(rng.integers(0, W // 2)) + 0.25 * float(rng.integers(0, 4))
            y = float(rng.integers(0, H // 2)) + 0.5 * float(rng.integers(0, 2))
            w = float(rng.integers(1, W // 2)) + 0.75
            h = float(rng.integers(1, H // 2)) + 0.25
            bbox = [x, y, w, h]
            kept.append(bbox)
            anns.append({"segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]], "area": w * h,
                         "iscrowd": 0, "image_id": image_id, "bbox": bbox,
                         "category_id": int(rng.choice([c["id"] for c in COCO_CATEGORIES])), "id": ann_id})
            ann_id += 1
        n_c = 1 if image_id in (listed[1], crowd_only) else 0
        for _ in range(n_c):
            anns.append({"segmentation": {"counts": [5, 10, W * H - 15], "size": [H, W]}, "area": 10.0,
                         "iscrowd": 1, "image_id": image_id, "bbox": [1.0, 2.0, 10.0, 1.0],
                         "category_id": 1, "id": ann_id})
            ann_id += 1
        n_crowd[image_id] = n_c
    anns = [anns[j] for j in rng.permutation(len(anns))]     # not grouped by image, as in COCO
    for image_id in all_ids:                                 # expected: annotation-file order
        raw[image_id] = [a["bbox"] for a in anns if a["image_id"] == image_id and not a["iscrowd"]]
        boxes[image_id] = np.array([[x, y, x + w, y + h] for x, y, w, h in raw[image_id]],
                                   dtype=np.float64).reshape(-1, 4)

    for j in rng.permutation(len(all_ids)):
        W, H = sizes[all_ids[j]]
        _jpeg(cdir / "train2014" / coco_name(all_ids[j]), W, H, rng)
    data = {"info": {"description": "COCO 2014 Dataset (sparsevis test fixture)", "version": "1.0",
                     "year": 2014, "contributor": "COCO Consortium", "date_created": "2017/09/01"},
            "images": images,
            "licenses": [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1,
                          "name": "Attribution-NonCommercial-ShareAlike License"}],
            "annotations": anns, "categories": COCO_CATEGORIES}
    ann_file = cdir / "annotations" / "instances_train2014.json"
    _write(ann_file, json.dumps(data))
    list_file = cdir / "coco_20k_filenames.txt"
    names = [coco_name(i) for i in listed]
    _write(list_file, "".join(f"{list_prefix}{n}\n" for n in names))
    return COCOFixture(root=root, dir=cdir, list_file=list_file, annotation_file=ann_file,
                       names=names, ids=listed, boxes=boxes, raw_bboxes=raw, n_crowd=n_crowd,
                       sizes=sizes, crowd_only=crowd_only, unlisted=unlisted)


# ----------------------------------------------------------------------------- ImageNet
# The first ImageNet-1k wnids in sorted order (tench, goldfish, great white shark, tiger shark,
# hammerhead, electric ray, stingray, cock).
WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331",
         "n01498041", "n01514668")


@dataclass
class ImageNetFixture:
    root: Path
    dir: Path                                  # root/imagenet
    wnids: list[str]                           # sorted: index k is class k
    files: dict[str, dict[str, list[str]]]     # split -> wnid -> sorted file names


def make_imagenet(root, n_classes: int = 3, n_train: int = 6, n_val: int = 2, seed: int = 0) -> ImageNetFixture:
    """Write ``imagenet/train/<wnid>/<wnid>_<n>.JPEG`` and
    ``imagenet/val/<wnid>/ILSVRC2012_val_<8 digits>.JPEG``, class folders and files created in
    shuffled order. Class k has ``n_train + k`` training images (classes differ in size)."""
    if not 1 <= n_classes <= len(WNIDS):
        raise ValueError(f"n_classes={n_classes}: between 1 and {len(WNIDS)}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    idir = root / "imagenet"
    wnids = list(WNIDS[:n_classes])
    files: dict[str, dict[str, list[str]]] = {"train": {}, "val": {}}
    val_no = iter(rng.permutation(50000)[: n_classes * n_val] + 1)
    for k, wnid in enumerate(wnids):
        nums = rng.choice(np.arange(1, 1300), n_train + k, replace=False)
        files["train"][wnid] = sorted(f"{wnid}_{int(n)}.JPEG" for n in nums)
        files["val"][wnid] = sorted(f"ILSVRC2012_val_{int(next(val_no)):08d}.JPEG" for _ in range(n_val))
    jobs = [(split, wnid, f) for split in files for wnid in wnids for f in files[split][wnid]]
    for j in rng.permutation(len(jobs)):
        split, wnid, f = jobs[j]
        _jpeg(idir / split / wnid / f, int(rng.integers(24, 48)), int(rng.integers(24, 48)), rng)
    return ImageNetFixture(root=root, dir=idir, wnids=wnids, files=files)


def sigkill_when(code: str, store: Path, pattern: str, env: dict | None = None, timeout: float = 300) -> None:
    """Run ``code`` in a child Python (run store ``store``, this checkout importable) and kill -9
    it as soon as a file matching ``pattern`` (a glob under ``store``) appears."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, SPARSEVIS_RUNS_DIR=str(store), PYTHONPATH=str(root), TQDM_DISABLE="1", **(env or {}))
    child = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=root,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and child.poll() is None and not list(store.glob(pattern)):
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()


def sigkill_cli_when(args: list[str], cwd: Path, env: dict, ready, after: float = 0.0,
                     timeout: float = 600) -> bool:
    """Run ``python -m sparsevis *args`` in ``cwd`` (``env`` added to this environment, this
    checkout importable) and kill -9 it ``after`` seconds once ``ready()`` is true. Returns
    whether it was killed: False when it ended first (then the kill point was never reached)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), TQDM_DISABLE="1", **env)
    child = subprocess.Popen([sys.executable, "-m", "sparsevis", *args], env=env, cwd=cwd,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and child.poll() is None and not ready():
        time.sleep(0.02)
    end = time.time() + after
    while child.poll() is None and time.time() < end:
        time.sleep(0.02)
    killed = child.poll() is None
    child.send_signal(signal.SIGKILL)
    child.wait()
    return killed


def processes_in(folder: Path) -> list[int]:
    """Ids of the live processes (zombies aside) whose working directory is ``folder`` or inside
    it (Linux: reads /proc)."""
    import os

    folder = Path(folder).resolve()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(proc / "cwd"))
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X") and (cwd == folder or folder in cwd.parents):
            found.append(int(proc.name))
    return found
