"""The paper track: ImageNet-1k for the prune stage, VOC2012 segmentation for
interpretability, VOC07/VOC12 trainval and COCO20k for object discovery, all 17
model-vs-human datasets for alignment (GPUs).

Training data: ImageNet-1k train served by a DataLoader with workers and pinned memory,
sharded over the ranks under torchrun, and the validation split for top-1 accuracy, evaluated
whole on every rank. Both go through the data pipeline of the run's recipe
(:func:`sparsevis.recipes.data_recipe`: the protocol's RandomResizedCrop 224 + flip and resize
256 + centre-crop 224 for ``paper-sgd`` and hand-made configs; auto-augment, random erasing,
256 px and bicubic where torchvision's recipe for ViT-B/32 or Swin-V2-T says so; repeated
augmentation under DDP), recorded as the run's ``data_pipeline`` (:func:`pipeline_record`). A
run's ``data`` may hold ImageNet options (the budget variant's fixed per-class subset); see
:func:`data_options`.

The studies do not take the recipe's sizes: every architecture sees the same study images
(VOC2012 resized to 224 px, LOST at full resolution, model-vs-human's 224 px stimuli, which
people saw), so that models are compared on one input; Swin-V2's continuous relative
position bias takes other sizes than the 256 px it trained at. Only ImageNet accuracy, a
number to compare with the recipe's published one, uses the recipe's evaluation transform.
"""
from __future__ import annotations

import copy
import functools
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.utils.data import Subset
from torchvision.transforms import Normalize, PILToTensor

from sparsevis import features, recipes
from sparsevis.data import coco, imagenet, mvh, voc
from sparsevis.data.paths import data_root, load_rgb
from sparsevis.fileio import sha256_file, stable_hash
from sparsevis.train import LoaderData

from .base import N_EXAMPLES, STUDY_SEED, DiscoverySet, Images, TrackData
from .real import Real

IMAGENET_TRAIN_IMAGES = 1_281_167
IMAGENET_VAL_IMAGES = 50_000
INPUT_SIZE = 224  # interpretability: the models' ImageNet input size
# object discovery: LOST's three benchmarks (the `dataset` column of their rows)
DISCOVERY_DATASETS = ("voc07-trainval", "voc12-trainval", "coco20k")


@dataclass(frozen=True)
class DataOptions:
    train_per_class: int | None = None    # None = every training image
    val_per_class: int | None = None      # None = the whole validation split (50 per class)
    subset_seed: int = 0                  # the subset is fixed by this seed, not the run's seed


def data_options(run) -> DataOptions:
    """ImageNet options of a paper-track run, read from ``run.data`` (None: full ImageNet).

    ``run.data`` may be any record with the fields of :class:`DataOptions` (the profile's
    ``PaperData``); missing fields take their defaults.
    """
    d = run.data
    if d is None:
        return DataOptions()
    opts = DataOptions(**{f: getattr(d, f) for f in DataOptions.__dataclass_fields__ if hasattr(d, f)})
    for name in ("train_per_class", "val_per_class"):
        value = getattr(opts, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{run.label}: data.{name}={value!r}; expected a positive integer or None")
    return opts


@functools.lru_cache(maxsize=8)
def _folder(root: str, split: str, per_class: int | None, seed: int, expected_classes: int | None):
    return imagenet.ImageNetFolder(root, split, expected_classes=expected_classes, per_class=per_class,
                                   seed=seed, progress=True)


def _with_transform(ds: imagenet.ImageNetFolder, transform) -> imagenet.ImageNetFolder:
    """The same samples (one scan of the folders, cached) through another transform."""
    view = copy.copy(ds)
    view.transform = transform
    return view


def pipeline_record(data: recipes.DataRecipe, train: LoaderData) -> dict:
    """What a run's ImageNet data goes through, as its config and checkpoints record it: the
    recipe's data settings and the training sampler ``train`` applies on this process group."""
    return {**asdict(data), "sampler": train.sampler_name}


def _digest(ds) -> list:
    """What identifies a split: its class list and sample list (relative paths, labels)."""
    cut = len(str(ds.dir)) + 1  # relative paths "<wnid>/<file>" (string slicing: 1.3 M samples)
    return [ds.split, ds.classes, stable_hash([[str(p)[cut:], t] for p, t in ds.samples])]


@dataclass
class EvalData:
    """A whole split for evaluation, in order, on every rank (not sharded: each rank computes
    the same accuracy). The interface of :class:`sparsevis.train.TensorData` for ``predict``."""

    dataset: torch.utils.data.Dataset
    num_workers: int = 0

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def labels(self) -> torch.Tensor:
        return torch.as_tensor(self.dataset.targets)

    def epoch(self, epoch: int, batch_size: int, seed: int, shuffle: bool = False):
        if shuffle:
            raise ValueError("EvalData is for evaluation: shuffle=True is not supported")
        yield from features.make_loader(self.dataset, batch_size, workers=self.num_workers)

    def n_batches(self, batch_size: int) -> int:
        return math.ceil(len(self) / batch_size)


class Paper(Real):
    name = "paper"
    note = "Paper track: the paper's protocol run by this project; our numbers, not the paper's."
    expensive_training = True
    alignment_datasets = mvh.DATASETS
    #: checked against ImageNet's class folders (None accepts any number: tests)
    expected_classes: int | None = imagenet.N_CLASSES

    def train_data(self, run, root=None) -> TrackData:
        """ImageNet-1k from ``root`` (default ``$SPARSEVIS_DATA_DIR``, see
        :mod:`sparsevis.data.paths`) through the data pipeline of the run's recipe (module
        docstring). DataLoader workers per process:
        :func:`sparsevis.features.default_workers` (at most 8 per GPU; ``$SPARSEVIS_WORKERS``
        overrides; 0 without a GPU)."""
        opts = data_options(run)
        root = str(data_root() if root is None else root)
        train_ds = _folder(root, "train", opts.train_per_class, opts.subset_seed, self.expected_classes)
        val_ds = _folder(root, "val", opts.val_per_class, opts.subset_seed, self.expected_classes)
        if train_ds.classes != val_ds.classes:
            raise ValueError(f"ImageNet train ({train_ds.dir}) and val ({val_ds.dir}) have different class "
                             "folders; expected the same wnids in both")
        workers = features.default_workers("auto")
        name = "imagenet-val" + (f"[{opts.val_per_class}/class]" if opts.val_per_class else "")
        pipe = recipes.data_recipe(run.train, run.retrain)
        train = LoaderData(_with_transform(train_ds, pipe.train_transform()), num_workers=workers,
                           ra_reps=pipe.ra_reps if pipe.ra_sampler else 1)
        return TrackData(train=train,
                         test=EvalData(_with_transform(val_ds, pipe.eval_transform()), num_workers=workers),
                         num_classes=len(train_ds.classes),
                         digest=stable_hash([_digest(train_ds), _digest(val_ds)]),
                         dataset=name, to_decision=self.decide, pipeline=pipeline_record(pipe, train))

    def inputs(self, study: str, run, n: int | None) -> list:
        if study == "alignment":
            return super().inputs(study, run, n)
        if study == "interpretability":
            lists = [voc.voc_dir(None, "2012") / "ImageSets" / "Segmentation" / "val.txt"]
        else:
            lists = [voc.voc_dir(None, y) / "ImageSets" / "Main" / "trainval.txt" for y in ("2007", "2012")]
            lists.append(coco.coco_dir() / coco.LIST_NAME)
        return [n, STUDY_SEED] + [sha256_file(p) if p.is_file() else f"missing: {p}" for p in lists]

    def missing(self, run) -> str:
        return ""   # trained on GPUs by the prune command, which downloads what it needs

    def train_sizes(self, run) -> tuple[int, int]:
        o = data_options(run)
        n_train = min(o.train_per_class * imagenet.N_CLASSES, IMAGENET_TRAIN_IMAGES) if o.train_per_class \
            else IMAGENET_TRAIN_IMAGES
        n_val = min(o.val_per_class, 50) * imagenet.N_CLASSES if o.val_per_class else IMAGENET_VAL_IMAGES
        return n_train, n_val

    def study_images(self, run, n: int | None) -> Images:
        """``n`` PASCAL VOC2012 segmentation-val images (a fixed, sorted, seeded subset; None:
        all 1,449) with their ``SegmentationClass`` ground truth read as palette indices:
        ``masks`` = classes 1..20, ``valid`` = not void (255).

        The whole image is resized to 224 x 224 (bilinear, antialiased; labels by nearest
        neighbour) rather than resized and centre-cropped as in ImageNet evaluation: a crop
        would cut away the parts of the mask near the image border, the resize keeps every
        labelled pixel (VOC's roughly 4:3 images are squeezed a little). Normalised with
        ImageNet's mean and std. No boxes (the interpretability study does not use them) and no
        labels: VOC's 20 classes are not the models' ImageNet classes.
        """
        ds = voc.VOCSegmentation(year="2012", image_set="val", n=n, seed=STUDY_SEED,
                                 size=INPUT_SIZE, transform=PILToTensor())
        samples = [ds[i] for i in range(len(ds))]
        display = torch.stack([s.image for s in samples])
        # ToTensor's scaling, then ImageNet normalisation: what imagenet.normalize_transform() gives
        x = Normalize(imagenet.IMAGENET_MEAN, imagenet.IMAGENET_STD)(display.float() / 255)
        return Images("voc12-seg-val", x, display, None, torch.stack([s.mask for s in samples]), None,
                      [s.image_id for s in samples], valid=torch.stack([s.valid for s in samples]))

    def discovery_sets(self, run, n: int | None) -> list[DiscoverySet]:
        """VOC07 trainval, VOC12 trainval and COCO20k (LOST's benchmarks, every object's box as
        ground truth, COCO crowds dropped), images at full resolution, read from disk as they
        are needed: the whole of each dataset for ``n=None``, else a fixed, sorted, seeded
        subset of ``n`` images."""
        sets = []
        for name in DISCOVERY_DATASETS:
            if name == "coco20k":
                ds = coco.COCO20k()
                ids = [str(im.image_id) for im in ds.images]
                sizes = [(im.height, im.width) for im in ds.images]
            else:
                ds = voc.VOCDetection(year="2007" if name.startswith("voc07") else "2012", image_set="trainval")
                ids, sizes = ds.ids, [(a.height, a.width) for a in ds.annotations]
            position = {image_id: k for k, image_id in enumerate(ids)}
            picked = voc.select_images(ids, n, STUDY_SEED)
            pick = [position[i] for i in picked]
            display = [torch.from_numpy(np.array(load_rgb(ds.image_path(k)))).permute(2, 0, 1)
                       for k in pick[:N_EXAMPLES]]
            sets.append(DiscoverySet(name, Subset(ds, pick), [sizes[k] for k in pick], display, list(picked)))
        return sets

    def decide(self, logits: torch.Tensor) -> torch.Tensor:
        """ImageNet top-1 (the prune stage's accuracy); figures name model-vs-human's 16
        categories (:meth:`scores`), as on the real track."""
        return logits.argmax(1)
