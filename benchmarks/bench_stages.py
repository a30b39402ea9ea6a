"""Throughput of the prune stage's training and of attribution (Grad-CAM, Guided Grad-CAM, IG-SmoothGrad) vs the loops they cannot beat.

* training: :func:`sparsevis.train.train` for one epoch of a :class:`~sparsevis.train.TensorData`
  of SynthScenes (uint8 images normalised and flipped per batch, the synthetic track's data),
  on a model pruned to 50 % (masks re-applied after every step, as in LRR retraining), vs a
  pure loop over the same model, batch size, optimizer (SGD with momentum) and memory format
  on pre-normalised batches: forward, cross-entropy, zero_grad, backward, step.
* Grad-CAM: :func:`sparsevis.attribution.attribute` ``("gradcam")`` as the interpretability
  study calls it (eval mode, explicit targets, channels-last CNN) vs a pure loop on the same
  model and batches: forward, and the gradient of the target logits w.r.t. the last stage's
  output (what any CAM needs).
* Guided Grad-CAM: the same call vs a pure loop of one forward + backward to the input per
  batch through the model (guided backpropagation's pass; the last stage's gradient comes
  from the same pass).
* IG-SmoothGrad: the same call with 8 steps and 2 noise samples vs a pure loop of as many
  forward + backward passes to the input through the module IG runs (a CNN's BatchNorm-folded,
  channels-last copy, :func:`sparsevis.features.folded_copy`).

Both sides of each pair are timed side by side (benchmarks/bench_common.py); rates are images/s.

    python benchmarks/bench_stages.py --arch timm/sv_resnet_s --n 256 --batch 64 --repeat 3
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from bench_common import side_by_side
from sparsevis import attribution, features, models, prune
from sparsevis.config import TrainConfig
from sparsevis.data import synthscenes as ss
from sparsevis.train import TensorData, train


def _synthetic(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    scenes = ss.make_split("train", n, seed=0, size=size)
    return scenes.images, scenes.labels


def bench_train(arch: str, n: int, batch: int, repeat: int, size: int = 64) -> dict:
    """Images/s of ``train.train`` (one epoch) and of the pure fwd+bwd+step loop."""
    images, labels = _synthetic(n, size)
    torch.manual_seed(0)
    model = models.create(arch, num_classes=len(ss.CLASSES))
    prune.global_magnitude(model, 0.5)
    data = TensorData(images, labels, ss.normalize)
    cfg = TrainConfig(epochs=1, lr=0.01, batch_size=batch)
    device = torch.device("cpu")
    batches = [(ss.normalize(images[i:i + batch]), labels[i:i + batch]) for i in range(0, n, batch)]
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)

    def pure():
        model.train()
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    t = side_by_side({"train": lambda: train(model, data, cfg, seed=0, device=device),
                      "pure": pure}, repeat)
    return dict(arch=arch, n=n, batch=batch, size=size, train=n / t["train"], pure=n / t["pure"])


def _study_chunks(arch: str, n: int, batch: int, size: int):
    """An untrained model in eval mode (channels-last when a CNN) and (images, target) chunks."""
    images, _ = _synthetic(n, size)
    torch.manual_seed(0)
    model = models.create(arch, num_classes=len(ss.CLASSES)).eval()
    if models.surface(model).kind == "cnn":
        model.to(memory_format=torch.channels_last)
    x = ss.normalize(images)
    with torch.no_grad():
        target = model(x).argmax(1)
    return model, list(zip(x.split(batch), target.split(batch)))


def bench_gradcam(arch: str, n: int, batch: int, repeat: int, size: int = 64) -> dict:
    """Images/s of Grad-CAM through the registry and of the pure forward + backward loop."""
    model, chunks = _study_chunks(arch, n, batch, size)
    stage = models.surface(model).last_stage

    def cam():
        return [attribution.attribute("gradcam", model, xb, target=tb, batch_size=None) for xb, tb in chunks]

    def pure():
        store = {}
        handle = stage.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
        try:
            for xb, tb in chunks:
                logits = model(xb)
                torch.autograd.grad(logits.gather(1, tb[:, None]).sum(), store["a"])
        finally:
            handle.remove()

    t = side_by_side({"gradcam": cam, "pure": pure}, repeat)
    return dict(arch=arch, n=n, batch=batch, size=size, gradcam=n / t["gradcam"], pure=n / t["pure"])


def bench_guided(arch: str, n: int, batch: int, repeat: int, size: int = 64) -> dict:
    """Images/s of Guided Grad-CAM through the registry and of the pure loop of one forward +
    backward pass to the input per batch (a CNN)."""
    model, chunks = _study_chunks(arch, n, batch, size)

    def guided():
        return [attribution.attribute("guided_gradcam", model, xb, target=tb, batch_size=None) for xb, tb in chunks]

    def pure():
        for xb, tb in chunks:
            leaf = xb.clone().requires_grad_(True)
            torch.autograd.grad(model(leaf).gather(1, tb[:, None]).sum(), leaf)

    t = side_by_side({"guided": guided, "pure": pure}, repeat)
    return dict(arch=arch, n=n, batch=batch, size=size, guided=n / t["guided"], pure=n / t["pure"])


def bench_ig(arch: str, n: int, batch: int, repeat: int, size: int = 64, n_steps: int = 8) -> dict:
    """Images/s of IG-SmoothGrad (2 noise samples) through the registry and of the pure loop of
    as many forward + backward passes (the input gradient of the target logits) through the
    same module it runs, the model's BatchNorm-folded channels-last copy for a CNN."""
    model, chunks = _study_chunks(arch, n, batch, size)
    net = features.folded_copy(model)
    passes = 2 * n_steps

    def ig():
        return [attribution.attribute("ig_smoothgrad", model, xb, target=tb, batch_size=None, n_steps=n_steps, seed=0)
                for xb, tb in chunks]

    def pure():
        for xb, tb in chunks:
            leaf = xb.clone().requires_grad_(True)
            inp = leaf.contiguous(memory_format=torch.channels_last) if net is not model else leaf
            for _ in range(passes):
                torch.autograd.grad(net(inp).gather(1, tb[:, None]).sum(), leaf)

    t = side_by_side({"ig": ig, "pure": pure}, repeat)
    return dict(arch=arch, n=n, batch=batch, size=size, n_steps=n_steps, ig=n / t["ig"], pure=n / t["pure"])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="timm/sv_resnet_s")
    p.add_argument("--n", type=int, default=256, help="images per pass")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    r = bench_train(a.arch, a.n, a.batch, a.repeat)
    print(f"train.train {r['train']:.1f} img/s, pure loop {r['pure']:.1f} img/s: {r['train'] / r['pure']:.2f}")
    r = bench_gradcam(a.arch, a.n, a.batch, a.repeat)
    print(f"Grad-CAM {r['gradcam']:.1f} img/s, pure fwd+bwd {r['pure']:.1f} img/s: {r['gradcam'] / r['pure']:.2f}")
    r = bench_guided(a.arch, a.n, a.batch, a.repeat)
    print(f"Guided Grad-CAM {r['guided']:.1f} img/s, pure fwd+bwd {r['pure']:.1f} img/s: {r['guided'] / r['pure']:.2f}")
    r = bench_ig(a.arch, a.n, a.batch, a.repeat)
    print(f"IG-SmoothGrad {r['ig']:.1f} img/s, pure loop {r['pure']:.1f} img/s: {r['ig'] / r['pure']:.2f}")


if __name__ == "__main__":
    main()
