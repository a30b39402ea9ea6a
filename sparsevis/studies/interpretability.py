"""Study (i), interpretability: attribution maps of the pruned model against ground-truth
masks (relevance mass and rank accuracy, pointing game), and top-1 where the images carry the
model's classes."""
from __future__ import annotations

import torch

from sparsevis import attribution, features, metrics, models
from sparsevis.tracks import N_EXAMPLES, STUDY_SEED, Track

from .base import Rows

MASK_METRICS = (("relevance_mass_accuracy", metrics.relevance_mass_accuracy),
                ("relevance_rank_accuracy", metrics.relevance_rank_accuracy),
                ("pointing_game", metrics.pointing_game))

NAME = "interpretability"


def methods_for(model) -> list[str]:
    kind = models.surface(model).kind
    return [name for name, cls in attribution.METHODS.items() if kind in cls.kinds]


def data(track: Track, run, params: dict):
    return track.study_images(run, params["n_images"])


def evaluate(model, track: Track, imgs, params: dict, device, rows: Rows, context: dict) -> dict:
    x = imgs.x.to(device)
    logits = features.extract(model, x, device=device, progress=False)
    target = logits.argmax(1).to(x.device)
    maps = {}
    # images per attribution call; on the CPU small chunks stay in cache (IG-SmoothGrad's passes
    # then hold 2 noisy copies of 8 images: 0.72 of a plain fwd+bwd loop, 0.46 with 64)
    batch = params.get("batch_size", 8 if torch.device(device).type == "cpu" else 16)
    for method in methods_for(model):
        kw = params.get("method_params", {}).get(method, {})
        label = method + ("[" + ",".join(f"{k}={v}" for k, v in sorted(kw.items())) + "]" if kw else "")
        torch.manual_seed(STUDY_SEED)
        m = torch.cat([attribution.attribute(method, model, xb, target=tb, **kw).cpu()
                       for xb, tb in zip(x.split(batch), target.split(batch))])
        # the registry's metrics on maps and masks, with the share of degenerate (flat) maps:
        # their RMA/RRA are NaN, so those means are over fewer images (their n says how many)
        for metric, values in metrics.map_metrics(m, imgs.masks, valid=imgs.valid).items():
            rows.mean(imgs.dataset, label, metric, values.float().numpy(), imgs.ids)
        maps[label] = m[:N_EXAMPLES].half()
    # VOC has no labels in the models' classes (its 20 classes are not ImageNet's), so the
    # paper track has no accuracy row here; its top-1 is the prune stage's, on ImageNet val.
    if imgs.labels is not None:
        correct = (track.decide(logits) == imgs.labels).float().numpy()
        rows.mean(imgs.dataset, "top-1", "accuracy", correct, imgs.ids)
    return {"maps": maps, "target": target[:N_EXAMPLES].cpu()}


def figures_data(imgs) -> dict:
    """What the chapter draws besides each checkpoint's maps: the first images and masks."""
    return {"display": imgs.display[:N_EXAMPLES], "masks": imgs.masks[:N_EXAMPLES], "ids": imgs.ids[:N_EXAMPLES]}

