"""The real track: model-vs-human stimuli with their human observers, pretrained ImageNet
models pruned one-shot (CPU minutes)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sparsevis.data import imagenet16, mvh
from sparsevis.fileio import sha256_file, stable_hash
from sparsevis.train import TensorData
from sparsevis.weights import pretrained

from .base import STUDY_SEED, AlignmentSet, Images, Track, TrackData

# Accuracy on the edge and silhouette stimuli (16-way, as model-vs-human decides); BN
# recalibration uses a seeded held-out set of cue-conflict images, recorded in the checkpoint
# so that studies exclude them for that run.
ACCURACY_DATASETS = ("edge", "silhouette")
N_CALIBRATION = 128


def _tensors(images) -> torch.Tensor:
    ds = mvh.MVHImages(images=images)
    return torch.stack([ds[i][0] for i in range(len(ds))])


def _seeded_subset(n: int | None, total: int, seed: int = STUDY_SEED) -> np.ndarray | None:
    """Sorted positions of a seeded subset of ``n`` of ``total`` items (None: take all)."""
    if n is None or n >= total:
        return None
    return np.sort(np.random.default_rng(seed).permutation(total)[:n])


class Real(Track):
    name = "real"
    note = ("Real track: pretrained ImageNet models pruned here (one-shot global magnitude unless "
            "the legend says otherwise), on the model-vs-human stimuli; not the paper's models or results.")
    class_names = tuple(imagenet16.CATEGORIES)
    #: the model-vs-human datasets of the alignment study
    alignment_datasets: tuple[str, ...] = mvh.LOCAL_DATASETS

    def train_data(self, run) -> TrackData:
        images, labels, files = [], [], []
        for d in ACCURACY_DATASETS:
            df = mvh.load_images(d)
            if run.n_eval:
                df = df.sort_values("image").iloc[: run.n_eval]
            images.append(_tensors(df))
            labels += [imagenet16.category_index(c) for c in df["category"]]
            files += list(df["path"])
        digest = stable_hash([sha256_file(f) for f in files])
        calibration, ids = None, ()
        if run.bn_recalibration:
            cc = mvh.load_images("cue-conflict").sort_values("image")
            sub = cc.iloc[_seeded_subset(N_CALIBRATION, len(cc), run.seed)]
            calibration, ids = _tensors(sub), tuple(sub["image"])
            digest = stable_hash([digest, [sha256_file(f) for f in sub["path"]]])
        test = TensorData(torch.cat(images), torch.tensor(labels), lambda t: t, augment=False)
        return TrackData(None, test, 1000, digest, "+".join(ACCURACY_DATASETS), calibration, ids,
                         to_decision=self.decide)

    def missing(self, run) -> str:
        """Pretrained torchvision weights (named, not a local file) that are neither in torch's
        cache nor downloadable now."""
        if not run.weights or Path(run.weights).is_file() or not run.arch.startswith("torchvision/"):
            return ""
        return pretrained(run.arch, run.weights).note

    def train_sizes(self, run) -> tuple[int, int]:
        return 0, (run.n_eval * 2 if run.n_eval else 320)  # no training; edge + silhouette stimuli

    def _edge_table(self, n: int | None):
        df = mvh.load_images("edge")
        pick = _seeded_subset(n, len(df))
        return df if pick is None else df.iloc[pick].reset_index(drop=True)

    def _alignment_tables(self, n: int | None) -> dict:
        out = {}
        for dataset in self.alignment_datasets:
            images = mvh.load_images(dataset)
            pick = _seeded_subset(n, len(images))
            out[dataset] = images if pick is None else images.iloc[pick].reset_index(drop=True)
        return out

    def inputs(self, study: str, run, n: int | None) -> list:
        if study == "alignment":   # the human responses too: updated trials make a new study
            return [[d, list(t["image"]), mvh.tree_sha256(mvh.raw_data_dir(d))]
                    for d, t in self._alignment_tables(n).items()]
        return list(self._edge_table(n)["image"])

    def study_images(self, run, n: int | None) -> Images:
        """Real edge stimuli; the silhouette of the same name is the exact object mask."""
        df, masks, boxes = mvh.edge_masks(images=self._edge_table(n), progress=False)
        display = torch.stack([torch.from_numpy(np.array(mvh.load_image(p))).permute(2, 0, 1)
                               for p in df["path"]])
        labels = torch.tensor([imagenet16.category_index(c) for c in df["category"]])
        return Images("edge", _tensors(df), display, labels, masks, [b[None].float() for b in boxes],
                      list(df["image"]))

    def alignment_sets(self, run, n: int | None) -> list[AlignmentSet]:
        """The model-vs-human datasets with their human trials (a seeded subset of ``n``
        images per dataset when ``n`` is given)."""
        return [AlignmentSet(dataset, _tensors(images), list(images["image"]), images=images,
                             trials=mvh.load_trials(dataset))
                for dataset, images in self._alignment_tables(n).items()]

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """model-vs-human's 16-way decision: the mean softmax probability of each category's
        ImageNet classes."""
        return imagenet16.decision_from_logits(logits)

    def decide(self, logits: torch.Tensor) -> torch.Tensor:
        return imagenet16.decide(self.scores(logits))
