"""Study (ii), unsupervised object discovery: LOST (the paper's), TokenCut (extension) and the
whole-image box (a baseline that does not depend on the model) on features of the pruned
model, scored by CorLoc.

Study parameter ``dilate_last_stage`` (profile ``studies``; default off): CNN features from a
last stage whose stride is replaced by dilation (:func:`sparsevis.models.dilate_last_stage`,
ResNets at stride 16 instead of 32), as LOST's paper does for its ResNet-50 results; the paper
profiles turn it on. Every row names the feature stride it used (column ``backbone_stride``).
LOST's published CorLoc for a dense ImageNet-supervised ResNet-50 (dilated) is
:data:`LOST_PUBLISHED`: reference values, not computed here.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from sparsevis import metrics, models
from sparsevis.data.voc import collate_list
from sparsevis.discovery import boxes_to_pixels, lost, pad_to_multiple, tokencut
from sparsevis.features import default_workers, iterate
from sparsevis.runtime import resolve_device
from sparsevis.tracks import N_EXAMPLES, DiscoverySet, Track

from .base import Rows

BASELINE = "full-image (baseline)"
# The discovery methods a study runs, with what they are: the paper's (LOST), an extension
# (TokenCut), or a baseline that does not depend on the model (so it has no sweet spot).
METHODS = {"lost": "paper", "tokencut": "extension", BASELINE: "baseline"}

NAME = "discovery"

# LOST's published CorLoc (%) with a dense ImageNet-supervised ResNet-50 (dilated last stage):
# Simeoni et al., "Localizing Objects with Self-Supervised Transformers and no Labels", BMVC
# 2021 (the values protocol.md quotes), on this study's dataset names.
LOST_PUBLISHED = {"arch": "torchvision/resnet50", "backbone_stride": 16,
                  "source": "published: Simeoni et al. 2021 (LOST paper), not computed here",
                  "corloc": {"voc07-trainval": 33.5, "voc12-trainval": 39.1, "coco20k": 25.5}}


def patch_features(model, x: torch.Tensor) -> torch.Tensor:
    """LOST features (B, N, D) of the pruned model for a batch already padded to the stride:
    ViT keys of the last block (CLS dropped, heads concatenated); CNN last-stage map
    standardised with one mean and std per image."""
    surf = models.surface(model)
    if surf.kind == "vit":
        return surf.keys(x)
    fmap = surf.feature_map(x).flatten(2).transpose(1, 2)
    mean = fmap.mean(dim=(1, 2), keepdim=True)
    std = fmap.std(dim=(1, 2), keepdim=True).clamp_min(1e-6)
    return (fmap - mean) / std


def padded_size_batches(sizes, stride: int, batch_size: int) -> list[list[int]]:
    """Batches of item indices in which every image pads to the same size (each dimension
    rounded up to a multiple of ``stride``), so they stack without further padding; batches of
    one size follow each other, sizes in order of first appearance."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (h, w) in enumerate(sizes):
        groups.setdefault((-(-h // stride), -(-w // stride)), []).append(i)
    return [g[j:j + batch_size] for g in groups.values() for j in range(0, len(g), batch_size)]


@dataclass
class Discovered:
    """What :func:`discover` found, per item in the set's order: ``boxes`` {method: (n, 4)
    pixel boxes, clipped to the unpadded image}, ``gt`` the ground-truth boxes, and LOST's
    ``seed``, ``score_map``, ``degree`` and ``grid`` of the first ``N_EXAMPLES`` items."""

    boxes: dict
    gt: list
    details: dict


def backbone(model, dilate_last_stage: bool):
    """The model whose features discovery uses: ``model`` itself, or (``dilate_last_stage`` and
    a CNN with a strided last stage) the same model with that stage dilated, in place."""
    if dilate_last_stage and models.dilatable(model):
        models.dilate_last_stage(model)
    return model


def published_comparison(rows: pd.DataFrame) -> pd.DataFrame:
    """LOST's published ResNet-50 CorLoc next to this project's rows that are comparable with
    it: dense (iteration 0) ResNet-50, LOST, whole datasets, the same feature stride. Columns:
    dataset, published (%), ``source``, and per comparable series ``label``/``run_id``, measured
    (%) with its interval; empty when no row is comparable."""
    ref = LOST_PUBLISHED
    if "backbone_stride" not in rows.columns:
        return pd.DataFrame(columns=["dataset", "published", "source", "run_id", "measured", "ci_low", "ci_high", "n"])
    ok = rows[(rows["study"] == NAME) & (rows["method"] == "lost") & (rows["metric"] == "corloc")
              & (rows["arch"] == ref["arch"]) & (rows["iteration"] == 0)
              & (rows["backbone_stride"] == ref["backbone_stride"]) & rows["dataset"].isin(ref["corloc"])]
    out = ok[["dataset", "run_id", "n"]].assign(
        measured=100 * ok["value"], ci_low=100 * ok["ci_low"], ci_high=100 * ok["ci_high"],
        published=ok["dataset"].map(ref["corloc"]), source=ref["source"])
    return out[["dataset", "published", "source", "run_id", "measured", "ci_low", "ci_high", "n"]].reset_index(drop=True)


def discover(model, data: DiscoverySet, *, device="auto", batch_size: int = 32, k: int = 100,
             workers: int | None = None, desc: str = "discovery") -> Discovered:
    """LOST, TokenCut (extension) and the whole-image box on every image of ``data``, with
    features of ``model`` (the pruned checkpoint evaluated).

    Images are read by a DataLoader (``workers`` processes; None: :func:`sparsevis.features.
    default_workers`, ``$SPARSEVIS_WORKERS`` on a GPU) at full resolution, zero-padded at the
    bottom and right to a multiple of the model's stride and batched with others of the same
    padded size. Per image, the batching changes the features only by float rounding.
    """
    device = resolve_device(device)
    surf = models.surface(model)
    batches = padded_size_batches(data.sizes, surf.stride, batch_size)
    loader = DataLoader(data.items, batch_sampler=batches, collate_fn=collate_list,
                        num_workers=default_workers(device) if workers is None else workers)

    def stacked():
        for index, (images, gt, _, hw) in zip(batches, loader):
            # regrouped by the decoded size: an annotation's size may be wrong
            groups: dict[tuple, list[int]] = {}
            padded = [pad_to_multiple(img, surf.stride)[0] for img in images]
            for j, img in enumerate(padded):
                groups.setdefault(tuple(img.shape), []).append(j)
            for js in groups.values():
                yield (torch.stack([padded[j] for j in js]), [index[j] for j in js], [gt[j] for j in js],
                       torch.tensor([hw[j] for j in js]), surf.grid(padded[js[0]].shape[-2:]))

    n = len(data.items)
    found = {m: torch.zeros(n, 4) for m in METHODS}
    gts, details = [None] * n, {}
    bar = tqdm(total=n, desc=f"{desc} {data.dataset}", leave=False)
    feats_of = iterate(model, stacked(), lambda xb: patch_features(model, xb), device=device, progress=False)
    for feats, (index, gt, hw, grid) in feats_of:
        feats = feats.to(device)  # LOST in float32 on the device, outside the features' autocast
        res = lost(feats, grid, k=k, return_details=True)
        cells = {"lost": res.boxes, "tokencut": tokencut(feats, grid),
                 # the trivial box, so a CorLoc that a whole-image box reaches too is seen for what it is
                 BASELINE: torch.tensor([[0, 0, grid[1], grid[0]]]).expand(len(index), 4)}
        for method, c in cells.items():
            found[method][index] = boxes_to_pixels(c.cpu(), surf.stride, hw)
        for j, i in enumerate(index):
            gts[i] = gt[j]
            if i < N_EXAMPLES:
                details[i] = dict(seed=int(res.seed[j]), score_map=res.score_map[j].float().cpu(),
                                  degree=res.degree[j].float().cpu(), grid=grid)
        bar.update(len(index))
    bar.close()
    keys = ("seed", "score_map", "degree", "grid")
    return Discovered(found, gts, {key: [details[i][key] for i in sorted(details)] for key in keys})


def data(track: Track, run, params: dict) -> list[DiscoverySet]:
    return track.discovery_sets(run, params["n_images"])


def evaluate(model, track: Track, sets: list[DiscoverySet], params: dict, device, rows: Rows,
             context: dict) -> dict:
    """CorLoc rows per dataset and method; examples of each dataset's first images, as lists
    (images differ in size), concatenated over the datasets in order."""
    ex = {"lost_boxes": [], "tokencut_boxes": [], "seed": [], "score_map": [], "degree": [], "grid": []}
    model = backbone(model, params.get("dilate_last_stage", False))
    rows.base = dict(rows.base, backbone_stride=models.surface(model).stride)
    for d in sets:
        res = discover(model, d, device=device, batch_size=params.get("batch_size", 32),
                       k=params.get("k", 100), desc=f"iteration {rows.base['iteration']}")
        for method, boxes in res.boxes.items():
            rows.mean(d.dataset, method, "corloc", metrics.corloc_hits(boxes, res.gt).float().numpy(), d.ids)
        ex["lost_boxes"] += list(res.boxes["lost"][:N_EXAMPLES])
        ex["tokencut_boxes"] += list(res.boxes["tokencut"][:N_EXAMPLES])
        for key, values in res.details.items():
            ex[key] += values
    ex["stride"] = models.surface(model).stride
    return ex


def figures_data(sets: list[DiscoverySet]) -> dict:
    """The images the discovery figures draw: the first ``N_EXAMPLES`` of each dataset, as
    lists (sizes differ), with their ground-truth boxes, ids and dataset names."""
    out = {"display": [], "boxes": [], "ids": [], "datasets": []}
    for d in sets:
        for i, display in enumerate(d.display):
            sample = d.items[i]
            out["display"].append(display)
            out["boxes"].append(sample.boxes)
            out["ids"].append(sample.image_id)
            out["datasets"].append(d.dataset)
    return out

