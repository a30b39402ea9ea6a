"""Study stages: interpretability (i), object discovery (ii), human alignment (iii).

Each stage evaluates every checkpoint of a prune run (features always from the pruned
checkpoint being evaluated) and writes tidy rows (:mod:`sparsevis.results`) plus a few
per-image examples for the figures, under ``<runs>/<stage>/<label>-<study id>/``. The study id
hashes the prune run id, the study's parameters and the code it depends on; each iteration's
rows are written atomically as they finish, so a killed study resumes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from sparsevis import metrics, models, prune, results
from sparsevis.config import PruneRun, get_profile
from sparsevis.features import is_cnn
from sparsevis.fileio import atomic_torch_save, atomic_write_text, stable_hash
from sparsevis.runner import checkpoints, code_version, run_dir, run_prune, runs_dir
from sparsevis.runtime import resolve_device
from sparsevis.stats import bootstrap_ci

STAGE_CODE = {
    "interpretability": ("studies.py", "attribution", "metrics", "features.py", "data/synthscenes.py",
                         "data/mvh.py", "data/voc.py", "data/imagenet.py", "data/paths.py"),
    "discovery": ("studies.py", "discovery", "metrics", "features.py", "data/synthscenes.py", "data/mvh.py",
                  "data/voc.py", "data/coco.py", "data/imagenet.py", "data/paths.py"),
    "alignment": ("studies.py", "alignment.py", "metrics", "features.py", "data/synthscenes.py", "data/mvh.py",
                  "data/imagenet16.py", "data/paths.py"),
}
N_EXAMPLES = 8          # images kept per iteration (and per discovery dataset) for the figures
STUDY_SEED = 12345      # evaluation images: independent of every training stream
PAPER_INPUT_SIZE = 224  # paper track, interpretability: the models' ImageNet input size
# Paper track, object discovery: LOST's three benchmarks (the `dataset` column of their rows)
PAPER_DISCOVERY = ("voc07-trainval", "voc12-trainval", "coco20k")


# --------------------------------------------------------------------------------------------
# Evaluation images per track
# --------------------------------------------------------------------------------------------
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


def synthetic_images(run: PruneRun, n: int) -> Images:
    from sparsevis.data import synthscenes as ss

    b = ss.make_split("clean", n, seed=STUDY_SEED, size=run.data.size, texture_prob=run.data.texture_prob)
    return Images("synthscenes-clean", ss.normalize(b.images), b.images, b.labels, b.masks,
                  [box[None] for box in b.boxes], [f"clean-{i}" for i in range(n)])


def edge_images(n: int | None) -> Images:
    """Real edge stimuli; the silhouette of the same name is the exact object mask."""
    from sparsevis.data import imagenet16, mvh

    df, masks, boxes = mvh.edge_masks(progress=False)
    if n is not None and n < len(df):
        pick = np.sort(np.random.default_rng(STUDY_SEED).permutation(len(df))[:n])
        df, masks, boxes = df.iloc[pick], masks[pick], boxes[pick]
    ds = mvh.MVHImages(images=df)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    display = torch.stack([torch.from_numpy(np.array(mvh.load_image(p))).permute(2, 0, 1)
                           for p in df["path"]])
    labels = torch.tensor([imagenet16.category_index(c) for c in df["category"]])
    return Images("edge", x, display, labels, masks, [b[None].float() for b in boxes], list(df["image"]))


def voc_segmentation_images(n: int | None) -> Images:
    """Paper track, interpretability: ``n`` PASCAL VOC2012 segmentation-val images (a fixed,
    sorted, seeded subset; None: all 1,449) with their ``SegmentationClass`` ground truth read as
    palette indices: ``masks`` = classes 1..20, ``valid`` = not void (255).

    The whole image is resized to 224 x 224 (bilinear, antialiased; labels by nearest neighbour)
    rather than resized and centre-cropped as in ImageNet evaluation: a crop would cut away the
    parts of the mask near the image border, the resize keeps every labelled pixel (VOC's
    roughly 4:3 images are squeezed a little). Normalised with ImageNet's mean and std, as the
    paper track's models expect. No boxes (the interpretability study does not use them) and
    no labels: VOC's 20 classes are not the models' ImageNet classes.
    """
    from torchvision.transforms import Normalize, PILToTensor

    from sparsevis.data import imagenet, voc

    ds = voc.VOCSegmentation(year="2012", image_set="val", n=n, seed=STUDY_SEED,
                             size=PAPER_INPUT_SIZE, transform=PILToTensor())
    samples = [ds[i] for i in range(len(ds))]
    display = torch.stack([s.image for s in samples])
    # ToTensor's scaling, then ImageNet normalisation: what imagenet.normalize_transform() gives
    x = Normalize(imagenet.IMAGENET_MEAN, imagenet.IMAGENET_STD)(display.float() / 255)
    return Images("voc12-seg-val", x, display, None, torch.stack([s.mask for s in samples]), None,
                  [s.image_id for s in samples], valid=torch.stack([s.valid for s in samples]))


def study_images(run: PruneRun, n: int | None) -> Images:
    """The images with masks of a track: the interpretability study's, and on the embedded
    tracks also object discovery's (see :func:`discovery_sets`)."""
    if run.track == "synthetic":
        return synthetic_images(run, n)
    if run.track == "real":
        return edge_images(n)
    return voc_segmentation_images(n)


@dataclass
class DiscoverySet:
    """One object-discovery dataset, read item by item (from disk on the paper track).

    ``items[i]`` is a :class:`sparsevis.data.voc.DetectionSample`: the image normalised at full
    resolution, its ground-truth boxes in pixels, its id and (H, W). ``sizes[i]`` is the (H, W)
    item i is annotated with, so that images of one padded size are batched together before
    any is decoded. ``display``: uint8 images of the first ``N_EXAMPLES`` items, for figures.
    """

    dataset: str
    items: Sequence
    sizes: list
    display: list


def _embedded_discovery_set(imgs: Images) -> DiscoverySet:
    from sparsevis.data.voc import DetectionSample

    hw = tuple(imgs.x.shape[-2:])
    items = [DetectionSample(x, b, i, hw) for x, b, i in zip(imgs.x, imgs.boxes, imgs.ids)]
    return DiscoverySet(imgs.dataset, items, [hw] * len(items), list(imgs.display[:N_EXAMPLES]))


def paper_discovery_sets(n: int | None) -> list[DiscoverySet]:
    """Paper track, object discovery: VOC07 trainval, VOC12 trainval and COCO20k (LOST's
    benchmarks, every object's box as ground truth, COCO crowds dropped), images at full
    resolution, read from disk as they are needed: the whole of each dataset for ``n=None``,
    else a fixed, sorted, seeded subset of ``n`` images."""
    from torch.utils.data import Subset

    from sparsevis.data import coco, voc
    from sparsevis.data.paths import load_rgb

    sets = []
    for name in PAPER_DISCOVERY:
        if name == "coco20k":
            ds = coco.COCO20k()
            ids = [str(im.image_id) for im in ds.images]
            sizes = [(im.height, im.width) for im in ds.images]
        else:
            ds = voc.VOCDetection(year="2007" if name.startswith("voc07") else "2012", image_set="trainval")
            ids, sizes = ds.ids, [(a.height, a.width) for a in ds.annotations]
        position = {image_id: k for k, image_id in enumerate(ids)}
        pick = [position[i] for i in voc.select_images(ids, n, STUDY_SEED)]
        display = [torch.from_numpy(np.array(load_rgb(ds.image_path(k)))).permute(2, 0, 1)
                   for k in pick[:N_EXAMPLES]]
        sets.append(DiscoverySet(name, Subset(ds, pick), [sizes[k] for k in pick], display))
    return sets


def discovery_sets(run: PruneRun, n: int | None) -> list[DiscoverySet]:
    if run.track == "paper":
        return paper_discovery_sets(n)
    return [_embedded_discovery_set(study_images(run, n))]


def _decide(run: PruneRun, logits: torch.Tensor) -> torch.Tensor:
    if run.track == "synthetic":
        return logits.argmax(1)
    from sparsevis.data import imagenet16

    return imagenet16.decide(imagenet16.decision_from_logits(logits))


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------
def _base_row(run: PruneRun, profile: str, meta: dict, n_params: int, study: str, rid: str) -> dict:
    return dict(track=run.track, profile=profile, arch=run.arch, n_params=n_params,
                prune_method=run.method + ("+bnrecal" if run.bn_recalibration else ""),
                prunable_set=meta.get("preset", run.preset), iteration=meta["iteration"],
                sparsity=meta.get("sparsity", 0.0), sparsity_all=meta.get("sparsity_all", 0.0),
                seed=run.seed, study=study, run_id=rid)


def _row(base: dict, dataset: str, method: str, metric: str, values, n_boot: int) -> dict:
    ci = bootstrap_ci(np.asarray(values, dtype=float), n_boot=n_boot, seed=0)
    return dict(base, dataset=dataset, method=method, metric=metric, value=ci.estimate, n=ci.n,
                ci_low=ci.low, ci_high=ci.high)


# --------------------------------------------------------------------------------------------
# (i) interpretability
# --------------------------------------------------------------------------------------------
def attribution_methods(model, run: PruneRun) -> list[str]:
    from sparsevis import attribution

    kind = models.surface(model).kind
    return [name for name, cls in attribution.METHODS.items() if kind in cls.kinds]


def _interpretability(model, run, imgs: Images, params: dict, device, base, n_boot):
    from sparsevis import attribution

    x = imgs.x.to(device)
    with torch.no_grad():
        target = model(x).argmax(1)
    rows, maps = [], {}
    for method in attribution_methods(model, run):
        kw = params.get("method_params", {}).get(method, {})
        label = method + ("[" + ",".join(f"{k}={v}" for k, v in sorted(kw.items())) + "]" if kw else "")
        torch.manual_seed(STUDY_SEED)
        m = torch.cat([attribution.attribute(method, model, xb, target=tb, **kw).cpu()
                       for xb, tb in zip(x.split(params.get("batch_size", 16)),
                                         target.split(params.get("batch_size", 16)))])
        for metric, fn in (("relevance_mass_accuracy", metrics.relevance_mass_accuracy),
                           ("relevance_rank_accuracy", metrics.relevance_rank_accuracy),
                           ("pointing_game", metrics.pointing_game)):
            values = fn(m, imgs.masks, valid=imgs.valid).float().numpy()
            rows.append(_row(base, imgs.dataset, label, metric, values, n_boot))
        maps[label] = m[:N_EXAMPLES].half()
    # VOC has no labels in the models' classes (its 20 classes are not ImageNet's), so the
    # paper track has no accuracy row here; its top-1 is the prune stage's, on ImageNet val.
    if imgs.labels is not None:
        correct = (_decide(run, model(x).detach().cpu()) == imgs.labels).float().numpy()
        rows.append(_row(base, imgs.dataset, "top-1", "accuracy", correct, n_boot))
    return rows, {"maps": maps, "target": target[:N_EXAMPLES].cpu()}


# --------------------------------------------------------------------------------------------
# (ii) object discovery
# --------------------------------------------------------------------------------------------
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


def discover(model, data: DiscoverySet, *, device="auto", batch_size: int = 32, k: int = 100,
             workers: int | None = None, desc: str = "discovery") -> Discovered:
    """LOST, TokenCut (extension) and the whole-image box on every image of ``data``, with
    features of ``model`` (the pruned checkpoint evaluated).

    Images are read by a DataLoader (``workers`` processes; None: :func:`sparsevis.features.
    default_workers`, ``$SPARSEVIS_WORKERS`` on a GPU) at full resolution, zero-padded at the
    bottom and right to a multiple of the model's stride and batched with others of the same
    padded size. Per image, the batching changes the features only by float rounding.
    """
    from torch.utils.data import DataLoader

    from sparsevis.data.voc import collate_list
    from sparsevis.discovery import boxes_to_pixels, lost, pad_to_multiple, tokencut
    from sparsevis.features import default_workers, iterate

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
    found = {m: torch.zeros(n, 4) for m in ("lost", "tokencut", "full-image (baseline)")}
    gts, details = [None] * n, {}
    bar = tqdm(total=n, desc=f"{desc} {data.dataset}", leave=False)
    feats_of = iterate(model, stacked(), lambda xb: patch_features(model, xb), device=device, progress=False)
    for feats, (index, gt, hw, grid) in feats_of:
        feats = feats.to(device)  # LOST in float32 on the device, outside the features' autocast
        res = lost(feats, grid, k=k, return_details=True)
        cells = {"lost": res.boxes, "tokencut": tokencut(feats, grid),
                 # the trivial box, so a CorLoc that a whole-image box reaches too is seen for what it is
                 "full-image (baseline)": torch.tensor([[0, 0, grid[1], grid[0]]]).expand(len(index), 4)}
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


def _discovery(model, sets: list[DiscoverySet], params: dict, device, base, n_boot):
    """CorLoc rows per dataset and method; examples of each dataset's first images, as lists
    (images differ in size), concatenated over the datasets in order."""
    rows, ex = [], {"lost_boxes": [], "tokencut_boxes": [], "seed": [], "score_map": [], "degree": [],
                    "grid": []}
    for data in sets:
        res = discover(model, data, device=device, batch_size=params.get("batch_size", 32),
                       k=params.get("k", 100), desc=f"iteration {base['iteration']}")
        for method, boxes in res.boxes.items():
            hits = metrics.corloc_hits(boxes, res.gt).float().numpy()
            rows.append(_row(base, data.dataset, method, "corloc", hits, n_boot))
        ex["lost_boxes"] += list(res.boxes["lost"][:N_EXAMPLES])
        ex["tokencut_boxes"] += list(res.boxes["tokencut"][:N_EXAMPLES])
        for key, values in res.details.items():
            ex[key] += values
    ex["stride"] = models.surface(model).stride
    return rows, ex


def discovery_examples(sets: list[DiscoverySet]) -> dict:
    """The images the discovery figures draw: the first ``N_EXAMPLES`` of each dataset, as
    lists (sizes differ), with their ground-truth boxes, ids and dataset names."""
    out = {"display": [], "boxes": [], "ids": [], "datasets": []}
    for data in sets:
        for i, display in enumerate(data.display):
            sample = data.items[i]
            out["display"].append(display)
            out["boxes"].append(sample.boxes)
            out["ids"].append(sample.image_id)
            out["datasets"].append(data.dataset)
    return out


# --------------------------------------------------------------------------------------------
# (iii) human alignment
# --------------------------------------------------------------------------------------------
def synthetic_alignment_splits(run: PruneRun, n: int) -> dict:
    """Cue-conflict and every OOD condition of SynthScenes, ``n`` images each (made once)."""
    from sparsevis.data import synthscenes as ss

    splits = [("cue-conflict", None)] + [(d, c) for d, conds in ss.ood_splits() for c in conds]
    out = {}
    for dataset, condition in splits:
        b = ss.make_split(dataset, n, seed=STUDY_SEED, condition=condition, size=run.data.size,
                          texture_prob=run.data.texture_prob)
        out[dataset if condition is None else f"{dataset}:{condition}"] = b
    return out


def _synthetic_alignment(model, splits: dict, device, base, n_boot, dense_decisions):
    """SynthScenes: its own classes; no human data exists, so none is simulated."""
    from sparsevis.data import synthscenes as ss
    from sparsevis.features import extract

    rows, decisions = [], {}
    for name, b in splits.items():
        dec = extract(model, ss.normalize(b.images), device=device, batch_size=256, progress=False).argmax(1)
        decisions[name] = dec
        correct = (dec == b.labels).float().numpy()
        rows.append(_row(base, name, "model", "accuracy", correct, n_boot))
        if name == "cue-conflict":
            rows.append(dict(base, dataset=name, method="model", metric="shape_bias",
                             value=metrics.shape_bias(dec, b.labels, b.texture_labels),
                             n=len(dec), ci_low=np.nan, ci_high=np.nan))
        if dense_decisions is not None:
            ref = (dense_decisions[name] == b.labels).numpy()
            rows.append(dict(base, dataset=name, method="vs-dense", metric="error_consistency",
                             value=metrics.error_consistency(correct.astype(bool), ref),
                             n=len(dec), ci_low=np.nan, ci_high=np.nan))
    return rows, {"decisions": decisions}


def real_alignment_images(n: int | None, datasets=None) -> dict:
    """model-vs-human datasets (default: the three stored with this project; the paper track
    passes all 17) as preloaded tensors with their image tables and human trials (a seeded
    subset of ``n`` images per dataset when ``n`` is given)."""
    from sparsevis.data import mvh

    out = {}
    for dataset in datasets or mvh.LOCAL_DATASETS:
        images = mvh.load_images(dataset)
        if n is not None and n < len(images):
            pick = np.sort(np.random.default_rng(STUDY_SEED).permutation(len(images))[:n])
            images = images.iloc[pick].reset_index(drop=True)
        ds = mvh.MVHImages(images=images)
        x = torch.stack([ds[i][0] for i in range(len(ds))])
        out[dataset] = (images, x, mvh.load_trials(dataset))
    return out


def _alignment_datasets(run: PruneRun):
    from sparsevis.data import mvh

    return mvh.DATASETS if run.track == "paper" else mvh.LOCAL_DATASETS


def _real_alignment(model, data: dict, device, base, n_boot, dense_decisions, exclude):
    from sparsevis import alignment

    rows, decisions = [], {}
    for dataset, (images, x, trials) in data.items():
        keep = ~images["image"].isin(exclude).to_numpy()
        images = images[keep].reset_index(drop=True)
        dec = alignment.model_decisions(model, torch.utils.data.TensorDataset(x[torch.from_numpy(keep)]),
                                        device=device, meta=images, progress=False)
        trials = trials[trials["image"].isin(set(images["image"]))]
        ref = None if dense_decisions is None else dense_decisions[dataset]
        if ref is not None:
            ref = ref[ref["image"].isin(set(images["image"]))]
        cmp = alignment.compare_to_humans(dec, trials, reference=ref, n_boot=n_boot, progress=False)
        decisions[dataset] = dec
        for r in cmp.itertuples():
            if r.against == "humans" and r.subj != "mean":
                continue  # per-observer rows stay in the model-vs-human CSVs
            name = dataset if str(r.condition) in ("0", "", "nan") else f"{dataset}:{r.condition}"
            method = {"model": "model", "humans": "vs-humans", "reference": "vs-dense"}[r.against]
            rows.append(dict(base, dataset=name, method=method,
                             metric=r.metric, value=r.value, n=r.n, ci_low=r.ci_low, ci_high=r.ci_high))
    return rows, {"decisions": decisions}


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------
STAGES = ("interpretability", "discovery", "alignment")


def study_params(stage: str, profile: str, track: str) -> dict:
    """A profile's settings for one study on one track (n_images, n_boot, method parameters)."""
    p = get_profile(profile)
    return {"n_images": p.n_images, "n_boot": p.n_boot, **p.studies.get(track, {}).get(stage, {})}


def study_dir(stage: str, run: PruneRun, profile: str) -> Path:
    prune_dir = run_dir(run)
    sid = stable_hash({"stage": stage, "prune": prune_dir.name, "params": study_params(stage, profile, run.track),
                       "code": code_version(STAGE_CODE[stage])})
    return runs_dir() / stage / profile / f"{run.label}-{sid}"


def run_study(stage: str, run: PruneRun, profile: str, device: str = "auto") -> Path:
    """Evaluate every checkpoint of ``run`` for one study; returns the study's directory."""
    if stage not in STAGES:
        raise ValueError(f"unknown study {stage!r}; expected one of {STAGES}")
    device = resolve_device(device)
    out = study_dir(stage, run, profile)
    if (out / "DONE").exists():
        return out
    params = study_params(stage, profile, run.track)
    n_boot = params["n_boot"]
    if stage == "interpretability":
        data = study_images(run, params["n_images"])
    elif stage == "discovery":
        data = discovery_sets(run, params["n_images"])
    elif run.track == "synthetic":
        data = synthetic_alignment_splits(run, params["n_images"])
    else:
        data = real_alignment_images(params["n_images"], _alignment_datasets(run))
    # after the data: a missing dataset is reported before a prune stage that may take days
    prune_dir = run_prune(run, device=str(device))
    dense_decisions = None
    ckpts = checkpoints(prune_dir)
    for ckpt in tqdm(ckpts, desc=f"{stage} {run.label}"):
        part, examples = out / f"{ckpt.stem}.csv", out / f"{ckpt.stem}.examples.pt"
        if part.exists():
            if stage == "alignment" and dense_decisions is None:
                dense_decisions = torch.load(examples, weights_only=False)["decisions"]
            continue
        model = prune.load(ckpt).to(device).eval()
        if is_cnn(model):   # faster convolutions for attribution's backward passes too (1.25x on a CPU)
            model.to(memory_format=torch.channels_last)
        meta = model.sparsevis_checkpoint
        base = _base_row(run, profile, meta, sum(p.numel() for p in model.parameters()), stage,
                         prune_dir.name.rsplit("-", 1)[-1])
        if stage == "interpretability":
            rows, ex = _interpretability(model, run, data, params, device, base, n_boot)
        elif stage == "discovery":
            rows, ex = _discovery(model, data, params, device, base, n_boot)
        elif run.track == "synthetic":
            rows, ex = _synthetic_alignment(model, data, device, base, n_boot, dense_decisions)
        else:
            rows, ex = _real_alignment(model, data, device, base, n_boot, dense_decisions,
                                       set(meta.get("calibration_images", [])))
        if stage == "alignment" and dense_decisions is None:
            dense_decisions = ex["decisions"]
        atomic_torch_save({"iteration": meta["iteration"], "sparsity": meta.get("sparsity", 0.0), **ex},
                          examples)
        results.write(rows, part)
    if stage == "interpretability":
        atomic_torch_save({"display": data.display[:N_EXAMPLES], "masks": data.masks[:N_EXAMPLES],
                           "ids": data.ids[:N_EXAMPLES]}, out / "images.pt")
    elif stage == "discovery":
        atomic_torch_save(discovery_examples(data), out / "images.pt")
    frames = [pd.read_csv(p) for p in sorted(out.glob("iter-*.csv"))]
    results.write(pd.concat(frames, ignore_index=True), out / "results.csv")
    atomic_write_text(out / "DONE", "complete\n")
    return out
