"""What every track provides, and the data records the stages exchange.

A track (synthetic, real, paper) is one object that says how to get its training and
evaluation data, the images of each study, its decisions and its class names; the stages ask
it and never branch on a track's name. A new track is one new module with a :class:`Track`
subclass, registered in :mod:`sparsevis.tracks`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from sparsevis.data.voc import DetectionSample
from sparsevis.train import TensorData

STUDY_SEED = 12345      # evaluation images: independent of every training stream
N_EXAMPLES = 8          # images kept per iteration (and per discovery dataset) for the figures


@dataclass
class TrackData:
    """What the prune stage trains and evaluates on."""

    train: TensorData | None
    test: TensorData
    num_classes: int
    digest: str
    dataset: str
    calibration: torch.Tensor | None = None   # images for BN recalibration
    calibration_ids: tuple[str, ...] = ()
    to_decision: object = None                # logits -> class index
    pipeline: dict | None = None              # the data pipeline applied, as recorded with the run


@dataclass
class Images:
    """Evaluation images with their ground truth: ``x`` normalised for the model, ``display``
    uint8 for figures, ``masks`` (B,H,W) bool, ``valid`` (B,H,W) bool (False on pixels no
    metric may count, e.g. VOC's void; None: every pixel), ``boxes`` list of (n_i,4) pixel boxes
    (None where the study has no boxes), ``labels`` the classes the track's decisions are
    scored against (None where the dataset's classes are not the model's)."""

    dataset: str
    x: torch.Tensor
    display: torch.Tensor
    labels: torch.Tensor | None
    masks: torch.Tensor
    boxes: list | None
    ids: list
    valid: torch.Tensor | None = None


@dataclass
class DiscoverySet:
    """One object-discovery dataset, read item by item (from disk on the paper track).

    ``items[i]`` is a :class:`sparsevis.data.voc.DetectionSample`: the image normalised at full
    resolution, its ground-truth boxes in pixels, its id and (H, W). ``sizes[i]`` is the (H, W)
    item i is annotated with, so that images of one padded size are batched together before
    any is decoded. ``display``: uint8 images of the first ``N_EXAMPLES`` items, for figures.
    ``ids``: every item's id, in order.
    """

    dataset: str
    items: Sequence
    sizes: list
    display: list
    ids: list


@dataclass
class AlignmentSet:
    """One alignment dataset (or condition): images normalised for the model, with their
    image table (``image``, ``category``, ``condition``... as :mod:`sparsevis.data.mvh` reads
    it) and the human trials where people were tested; on a track without human data,
    ``labels`` (and ``texture_labels`` for cue-conflict) instead, and ``trials`` is None."""

    dataset: str
    x: torch.Tensor
    ids: list
    images: object = None          # pandas.DataFrame of the images (model-vs-human)
    trials: object = None          # pandas.DataFrame of the human trials, or None
    labels: torch.Tensor | None = None
    texture_labels: torch.Tensor | None = None


class Track:
    """The interface; see the module docstring."""

    name: str = ""
    #: what every figure of this track says about where its models and numbers come from
    note: str = ""
    #: training a run of this track takes GPU-days: no entry point but ``prune`` starts it
    expensive_training: bool = False
    class_names: Sequence[str] = ()

    def train_data(self, run) -> TrackData:
        raise NotImplementedError

    def missing(self, run) -> str:
        """What a run of this track lacks before it can be made here, and how to get it ("" when
        nothing is missing); checked without downloading anything."""
        return ""

    def train_sizes(self, run) -> tuple[int, int]:
        """(training images per epoch, evaluation images per checkpoint) of a run, without
        reading the data (for :mod:`sparsevis.plan`)."""
        raise NotImplementedError

    def study_images(self, run, n: int | None) -> Images:
        raise NotImplementedError

    def discovery_sets(self, run, n: int | None) -> list[DiscoverySet]:
        return [embedded_discovery_set(self.study_images(run, n))]

    def alignment_sets(self, run, n: int | None) -> list[AlignmentSet]:
        raise NotImplementedError

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> (B, len(class_names)) probabilities of the classes figures name."""
        return torch.softmax(logits, 1)

    def decide(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> the index of the class the track scores decisions in."""
        return self.scores(logits).argmax(1)

    def inputs(self, study: str, run, n: int | None) -> list:
        """What identifies the evaluation images of ``study`` (image names, id lists or the
        digests of the files that list them), computed without decoding an image: part of the
        study's identity, so that a changed image list makes a new study."""
        raise NotImplementedError


def embedded_discovery_set(imgs: Images) -> DiscoverySet:
    hw = tuple(imgs.x.shape[-2:])
    items = [DetectionSample(x, b, i, hw) for x, b, i in zip(imgs.x, imgs.boxes, imgs.ids)]
    return DiscoverySet(imgs.dataset, items, [hw] * len(items), list(imgs.display[:N_EXAMPLES]), list(imgs.ids))
