"""A few-minute check that a device computes what the CPU computes, and fast enough.

``run(device="cuda", out="selfcheck.json")`` runs every check in :data:`CHECKS` on small seeded
models and inputs and writes one JSON report (each check named, with status ``pass``, ``fail``
or ``skipped`` and its numbers); a failing check does not stop the others.

* ``masks``: global magnitude pruning realises its sparsity and zeroes the pruned weights; on
  CUDA the masks equal the CPU's.
* ``train_step``: :func:`sparsevis.train.train` on the device, in the device's precision:
  finite loss, pruned weights still zero.
* ``features_fp32``: :func:`sparsevis.features.extract` (strict fp32) of ViT keys and a ResNet
  feature map on the device against the CPU.
* ``lost_boxes``: LOST boxes on the device against the CPU, from the same features (the
  kernel) and from each device's own features (the pipeline).
* ``metric_kernels``: RMA, RRA, pointing game, box IoU and CorLoc on the device against the CPU.
* ``throughput_train`` / ``throughput_features``: images/s of :func:`~sparsevis.train.train`
  and :func:`~sparsevis.features.extract` against a plain loop over the same batches
  (forward+backward+step / forward), as a ratio; fail below :data:`MIN_RATIO`.

Comparisons with the CPU need a CUDA device: elsewhere they are skipped, with the reason.
"""
from __future__ import annotations

import platform
import time
import traceback
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from sparsevis import features, metrics, models, prune
from sparsevis import precision as prec
from sparsevis.config import TrainConfig
from sparsevis.discovery import lost
from sparsevis.fileio import atomic_write_json
from sparsevis.runtime import resolve_device
from sparsevis.train import train

CHECKS = ("masks", "train_step", "features_fp32", "lost_boxes", "metric_kernels",
          "throughput_train", "throughput_features")
RTOL = 1e-4          # strict fp32 device vs CPU: relative to the largest magnitude
MIN_RATIO = 0.5      # our loops against plain ones
CPU = torch.device("cpu")

__all__ = ["CHECKS", "run"]


class _Batches:
    """Fixed batches as a training data source for :func:`sparsevis.train.train`."""

    def __init__(self, xs: list, ys: list):
        self.xs, self.ys = xs, ys

    def n_batches(self, batch_size: int) -> int:
        return len(self.xs)

    def epoch(self, epoch: int, batch_size: int, seed: int, shuffle: bool = True):
        return zip(self.xs, self.ys)


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return models.create(name, num_classes=10)


def _images(n: int, size: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float().cpu() - b.float().cpu()).abs().max() / b.float().abs().max().clamp_min(1e-12))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _check_masks(device: torch.device, compare: bool) -> dict:
    model = _model("timm/sv_resnet_s")
    ref = prune.global_magnitude(_model("timm/sv_resnet_s"), 0.5, verbose=False)
    model.to(device)
    prune.global_magnitude(model, 0.5, verbose=False)
    realised = prune.sparsity(model)
    zero = all(int(torch.count_nonzero(getattr(m, n)[~mask])) == 0 for m, n, mask in prune.masked_parameters(model))
    out = {"target": 0.5, "realised": realised, "pruned_weights_zero": zero}
    ok = abs(realised - 0.5) < 1e-3 and zero
    if compare:
        same = prune.mask_state(ref).keys() == prune.mask_state(model).keys() and all(
            torch.equal(v.cpu(), prune.mask_state(model)[k].cpu()) for k, v in prune.mask_state(ref).items())
        out["masks_equal_cpu"] = same
        ok = ok and same
    return {"status": "pass" if ok else "fail", **out}


def _check_train_step(device: torch.device) -> dict:

    model = _model("timm/sv_resnet_s")
    prune.global_magnitude(model, 0.5, verbose=False)
    xs, ys = [_images(16, 32, seed=s) for s in range(2)], [torch.arange(16) % 10] * 2
    cfg = TrainConfig(epochs=1, lr=0.01, batch_size=16, amp=True)
    result = train(model, _Batches(xs, ys), cfg, seed=0, device=device, desc="selfcheck")
    loss = result["train_loss"][-1]
    zero = all(int(torch.count_nonzero(getattr(m, n)[~mask])) == 0 for m, n, mask in prune.masked_parameters(model))
    ok = bool(torch.isfinite(torch.tensor(loss))) and zero
    return {"status": "pass" if ok else "fail", "loss": loss, "precision": result["precision"],
            "pruned_weights_zero": zero}


def _check_features(device: torch.device) -> dict:
    out, ok = {}, True
    for name, fn in (("timm/sv_vit_t", "keys"), ("timm/sv_resnet_s", "feature_map")):
        model, x = _model(name), _images(8, 64)
        here = features.extract(model, x, fn, device=device, batch_size=4, progress=False)
        there = features.extract(model, x, fn, device=CPU, batch_size=4, progress=False)
        diff = _rel_diff(here, there)
        out[f"{fn}_max_rel_diff"] = diff
        ok = ok and diff <= RTOL
    return {"status": "pass" if ok else "fail", "rtol": RTOL, **out}


def _check_lost(device: torch.device) -> dict:
    model, x = _model("timm/sv_vit_t"), _images(8, 64)
    grid = models.surface(model).grid((64, 64))
    cpu_feats = features.extract(model, x, "keys", device=CPU, batch_size=8, progress=False)
    dev_feats = features.extract(model, x, "keys", device=device, batch_size=8, progress=False)
    with prec.strict_fp32():
        ref = lost(cpu_feats, grid, k=16)
        kernel = lost(cpu_feats.to(device), grid, k=16).cpu()
        pipeline = lost(dev_feats.to(device), grid, k=16).cpu()
    kernel_same = float((kernel == ref).all(1).float().mean())
    pipeline_same = float((pipeline == ref).all(1).float().mean())
    ok = kernel_same == 1.0 and pipeline_same >= 7 / 8
    return {"status": "pass" if ok else "fail", "images": len(x), "kernel_boxes_equal": kernel_same,
            "pipeline_boxes_equal": pipeline_same}


def _check_metrics(device: torch.device) -> dict:
    g = torch.Generator().manual_seed(2)
    maps, masks = torch.rand(16, 24, 24, generator=g), torch.rand(16, 24, 24, generator=g) > 0.7
    xy, wh = torch.rand(8, 2, generator=g) * 10, torch.rand(8, 2, generator=g) * 10 + 1
    boxes = torch.cat([xy, xy + wh], 1)
    gt = [boxes[i:i + 1] + 1 for i in range(8)]
    out, ok = {}, True
    with prec.strict_fp32():
        for name, f in (("relevance_mass_accuracy", metrics.relevance_mass_accuracy),
                        ("relevance_rank_accuracy", metrics.relevance_rank_accuracy)):
            diff = _rel_diff(f(maps.to(device), masks.to(device)), f(maps, masks))
            out[f"{name}_max_rel_diff"] = diff
            ok = ok and diff <= RTOL
        same = torch.equal(metrics.pointing_game(maps.to(device), masks.to(device)).cpu(),
                           metrics.pointing_game(maps, masks))
        iou = _rel_diff(metrics.box_iou(boxes.to(device), boxes.to(device)), metrics.box_iou(boxes, boxes))
        corloc_same = metrics.corloc(boxes.to(device), [b.to(device) for b in gt]) == metrics.corloc(boxes, gt)
    out.update(pointing_game_equal=same, box_iou_max_rel_diff=iou, corloc_equal=corloc_same)
    ok = ok and same and iou <= RTOL and corloc_same
    return {"status": "pass" if ok else "fail", "rtol": RTOL, **out}


def _timed(fn: Callable, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _check_throughput_train(device: torch.device, n_batches: int, batch: int, size: int) -> dict:

    xs = [_images(batch, size, seed=s) for s in range(n_batches)]
    ys = [torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(s)) for s in range(n_batches)]
    cfg = TrainConfig(epochs=1, lr=1e-3, optimizer="adamw", batch_size=batch, amp=True)
    precision = prec.resolve("auto", device)
    ours_model = _model("timm/sv_resnet_s")
    train(ours_model, _Batches(xs[:1], ys[:1]), cfg, seed=0, device=device, desc="warm-up")
    ours = _timed(lambda: train(ours_model, _Batches(xs, ys), cfg, seed=0, device=device, desc="selfcheck"),
                  device)

    plain_model = _model("timm/sv_resnet_s").to(device).train()
    opt = torch.optim.AdamW(plain_model.parameters(), lr=1e-3)
    dev_x, dev_y = [x.to(device) for x in xs], [y.to(device) for y in ys]

    def plain():
        for x, y in zip(dev_x, dev_y):
            with prec.autocast(precision, device):
                loss = F.cross_entropy(plain_model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    plain()   # warm-up
    base = _timed(plain, device)
    n = n_batches * batch
    ratio = base / ours
    return {"status": "pass" if ratio >= MIN_RATIO else "fail", "images": n, "precision": precision,
            "ours_img_s": n / ours, "plain_img_s": n / base, "ratio": ratio, "min_ratio": MIN_RATIO}


def _check_throughput_features(device: torch.device, n: int, batch: int, size: int) -> dict:
    model, x = _model("timm/sv_resnet_s"), _images(n, size)
    features.extract(model, x[:batch], device=device, batch_size=batch, progress=False)   # warm-up
    ours = _timed(lambda: features.extract(model, x, device=device, batch_size=batch, progress=False), device)
    model.to(device).eval()

    def plain():
        with torch.inference_mode():
            return [model(x[i:i + batch].to(device)).float().cpu() for i in range(0, n, batch)]

    plain()
    base = _timed(plain, device)
    ratio = base / ours
    return {"status": "pass" if ratio >= MIN_RATIO else "fail", "images": n, "ours_img_s": n / ours,
            "plain_img_s": n / base, "ratio": ratio, "min_ratio": MIN_RATIO}


def run(device: str | torch.device | None = "auto", out: str | Path | None = "selfcheck.json") -> dict:
    """Run every check on ``device``; write the report to ``out`` (None: do not write) and return it."""
    device = resolve_device(device)
    cuda = device.type == "cuda"
    reason = None if cuda else ("skipped: no CUDA" if not torch.cuda.is_available()
                                else f"skipped: device is {device}, not CUDA")
    # sizes: seconds on one CPU core, a fuller batch where a GPU has one
    n_batches, batch, size = (20, 64, 64) if cuda else (4, 16, 32)
    plan = {
        "masks": lambda: _check_masks(device, cuda),
        "train_step": lambda: _check_train_step(device),
        "features_fp32": lambda: _check_features(device) if cuda else None,
        "lost_boxes": lambda: _check_lost(device) if cuda else None,
        "metric_kernels": lambda: _check_metrics(device) if cuda else None,
        "throughput_train": lambda: _check_throughput_train(device, n_batches, batch, size),
        "throughput_features": lambda: _check_throughput_features(device, n_batches * batch, batch, size),
    }
    checks = []
    for name in CHECKS:
        start = time.perf_counter()
        try:
            result = plan[name]() or {"status": "skipped", "reason": reason}
        except Exception as e:  # a failing check is reported; the others still run
            result = {"status": "fail", "error": f"{type(e).__name__}: {e}",
                      "traceback": traceback.format_exc(limit=4)}
        checks.append({"name": name, **result, "seconds": round(time.perf_counter() - start, 3)})
    report = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
        "precision": prec.resolve("auto", device),
        "checks": checks,
        "ok": all(c["status"] != "fail" for c in checks),
    }
    if out is not None:
        atomic_write_json(out, report)
    return report
