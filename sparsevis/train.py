"""Training and evaluation loops shared by every track.

Resumable at epoch granularity: after each epoch the model, masks, optimizer, scheduler, loss
scaler and weight average are written atomically to ``state_path``; the data order and
augmentation (mixup/cutmix included) of epoch ``e`` depend only on ``(seed, e)``, so a run
killed at any moment and resumed ends bit-identical (on the CPU) to an uninterrupted one.
Pruned weights stay zero through training (the masks hold under any optimizer, see
:mod:`sparsevis.prune.masks`), in the weight average too. Under ``torchrun`` the model is wrapped in DDP and each rank takes its shard of
every epoch; buffers (the masks among them) are not re-sent each step, BatchNorm statistics
are averaged over the ranks once per epoch.

The step never waits for the device: losses stay there and are read once per ``log_interval``
steps and at the end of each epoch, when a non-finite loss stops the run
(:class:`DivergenceError`, naming the epoch, step and learning rate). CNNs train in
channels-last memory format. Precision: ``cfg.precision`` (see :mod:`sparsevis.precision`;
``cfg.amp`` True/False means "auto"/"fp32" where the config has no ``precision``).

The recipe options of :mod:`sparsevis.recipes` that :class:`sparsevis.config.TrainConfig` does
not (yet) have are read with defaults that switch them off (:data:`OPTIONAL_DEFAULTS`).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from sparsevis import distributed, prune
from sparsevis import precision as prec
from sparsevis.config import TrainConfig
from sparsevis.data.sampler import RepeatedAugmentationSampler
from sparsevis.features import extract, is_cnn
from sparsevis.fileio import atomic_torch_save

# Recipe options read from the training config with these defaults (each one off):
OPTIONAL_DEFAULTS = {
    "precision": None,        # "auto" | "bf16" | "fp16" | "fp32"; None: from `amp`
    "norm_weight_decay": 0.0, # weight decay of norms, biases (1-d parameters) and timm's pos_embed/cls_token
    "warmup_decay": None,     # warm-up from lr * warmup_decay linearly to lr; None: from lr / warm-up steps
    "lr_min": 0.0,            # the cosine schedule's floor
    "clip_grad_norm": None,   # clip the global gradient norm to this
    "mixup_alpha": 0.0,       # Beta(alpha, alpha) mixing of image pairs
    "cutmix_alpha": 0.0,      # Beta(alpha, alpha) area of a pasted box (one of the two per batch)
    "ema_decay": 0.0,         # exponential moving average of the weights (torchvision's --model-ema-decay)
    "ema_steps": 32,          # steps between two updates of the average
    "log_interval": 50,       # steps between two reads of the loss from the device
}


def option(cfg, name: str):
    """``cfg.<name>``, or its default in :data:`OPTIONAL_DEFAULTS` where the config lacks it."""
    return getattr(cfg, name, OPTIONAL_DEFAULTS[name])


# Accuracy evaluation: fp32 without TF32 (a prediction near a tie must not depend on the device)
EVAL_PRECISION = "fp32"


class DivergenceError(RuntimeError):
    """A training loss that is not finite."""


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass
class TensorData:
    """In-memory uint8 images (N,3,H,W) with labels; random horizontal flips when ``augment``."""

    images: torch.Tensor
    labels: torch.Tensor
    normalize: Callable[[torch.Tensor], torch.Tensor]
    augment: bool = True

    def __len__(self) -> int:
        return len(self.labels)

    def epoch(self, epoch: int, batch_size: int, seed: int, shuffle: bool = True
              ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rank, world = _dist()
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(len(self), generator=gen) if shuffle else torch.arange(len(self))
        flips = torch.rand(len(self), generator=gen) < 0.5
        if shuffle:  # training epochs are sharded over the ranks; evaluation passes are not
            order = order[rank::world]
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            x = self.normalize(self.images[idx])
            if self.augment and shuffle:
                flip = flips[idx]
                x[flip] = x[flip].flip(-1)
            yield x, self.labels[idx]

    def n_batches(self, batch_size: int) -> int:
        return math.ceil(len(range(_dist()[0], len(self), _dist()[1])) / batch_size)


@dataclass
class LoaderData:
    """A map-style dataset served by a DataLoader (paper scale): pinned memory, workers,
    a distributed sampler whose order depends only on (seed, epoch). ``ra_reps`` > 1: under
    DDP, repeated augmentation (:class:`sparsevis.data.sampler.RepeatedAugmentationSampler`,
    each image ``ra_reps`` times across the ranks); one process shuffles plainly, as torchvision's
    reference does."""

    dataset: torch.utils.data.Dataset
    num_workers: int = 8
    ra_reps: int = 1

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def repeated(self) -> bool:
        """Whether training epochs repeat their images (``ra_reps`` > 1 on several processes)."""
        return self.ra_reps > 1 and _dist()[1] > 1

    @property
    def sampler_name(self) -> str:
        """The training sampler on this process group, as a run records it."""
        return f"repeated-augmentation x{self.ra_reps}" if self.repeated else "shuffle"

    def sampler(self, epoch: int, seed: int):
        """The training sampler of this rank for ``epoch``."""
        rank, world = _dist()
        if self.repeated:
            sampler = RepeatedAugmentationSampler(len(self.dataset), world, rank, self.ra_reps, seed=seed)
        else:
            sampler = torch.utils.data.DistributedSampler(self.dataset, world, rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return sampler

    def _loader(self, epoch: int, batch_size: int, seed: int, shuffle: bool):
        rank, _ = _dist()
        # training epochs are sharded over the ranks; evaluation passes are not
        sampler = self.sampler(epoch, seed) if shuffle else torch.utils.data.SequentialSampler(self.dataset)
        # worker seeds (the augmentation) depend only on (seed, epoch, rank): resumable
        gen = torch.Generator().manual_seed((seed * 100_003 + epoch) * 1_009 + rank)
        return torch.utils.data.DataLoader(self.dataset, batch_size, sampler=sampler,
                                           num_workers=self.num_workers,
                                           pin_memory=torch.cuda.is_available(), generator=gen,
                                           persistent_workers=False, drop_last=False)

    def epoch(self, epoch: int, batch_size: int, seed: int, shuffle: bool = True):
        yield from self._loader(epoch, batch_size, seed, shuffle)

    def n_batches(self, batch_size: int) -> int:
        return math.ceil(len(self.sampler(0, 0)) / batch_size)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name.endswith(("pos_embed", "cls_token")) else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": option(cfg, "norm_weight_decay")}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def _schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = cfg.warmup_epochs * steps_per_epoch
    decay, floor = option(cfg, "warmup_decay"), option(cfg, "lr_min") / cfg.lr

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm if decay is None else decay + (1 - decay) * step / warm
        if cfg.schedule == "step":
            return cfg.gamma ** ((step // steps_per_epoch) // cfg.step_size)
        cosine = 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
        return floor + (1 - floor) * cosine

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def mix_batch(x: torch.Tensor, y: torch.Tensor, mixup_alpha: float, cutmix_alpha: float, rng
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Mixup or cutmix of a batch with itself rolled by one: ``(x, y_a, y_b, lam)``, the loss
    being ``lam * CE(y_a) + (1 - lam) * CE(y_b)`` (cross-entropy is linear in the target, so
    this is the soft-target loss, label smoothing included). With both alphas > 0 one of the
    two is drawn per batch, as torchvision's reference does; ``rng`` is a NumPy Generator."""
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < 0.5)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    if alpha <= 0 or len(y) < 2:
        return x, y, y, 1.0
    lam = float(rng.beta(alpha, alpha))
    rolled, y_b = x.roll(1, 0), y.roll(1, 0)
    if not use_cutmix:
        return x * lam + rolled * (1 - lam), y, y_b, lam
    h, w = x.shape[-2:]
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    half_h, half_w = int(0.5 * math.sqrt(1 - lam) * h), int(0.5 * math.sqrt(1 - lam) * w)
    y1, y2 = max(cy - half_h, 0), min(cy + half_h, h)
    x1, x2 = max(cx - half_w, 0), min(cx + half_w, w)
    x = x.clone()
    x[..., y1:y2, x1:x2] = rolled[..., y1:y2, x1:x2]
    return x, y, y_b, 1 - (y2 - y1) * (x2 - x1) / (h * w)


def mixed_loss(logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: float,
               label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against the soft target ``lam * onehot(y_a) + (1 - lam) * onehot(y_b)``,
    label-smoothed (two hard-label terms: no one-hot tensors)."""
    loss = F.cross_entropy(logits, y_a, label_smoothing=label_smoothing)
    if lam < 1:
        loss = lam * loss + (1 - lam) * F.cross_entropy(logits, y_b, label_smoothing=label_smoothing)
    return loss


class WeightAverage:
    """Exponential moving average of a model's parameters, pruned entries kept at zero.

    torchvision's reference semantics: updated every ``steps`` optimizer steps with the decay
    ``1 - min(1, (1 - decay) * batch_size * steps / epochs)`` (``batch_size`` global), and reset
    to the current weights during warm-up. Parameters only: BatchNorm statistics stay the
    model's (the recipes that average are the transformers', which have none).
    """

    def __init__(self, model: nn.Module, decay: float, steps: int, batch_size: int, epochs: int):
        if not 0 < decay < 1 or steps < 1:
            raise ValueError(f"ema_decay={decay!r}, ema_steps={steps!r}: expected 0 < decay < 1 and steps >= 1")
        self.model, self.steps = model, steps
        self.decay = 1 - min(1.0, (1 - decay) * batch_size * steps / max(1, epochs))
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, step: int, warmup: bool) -> None:
        if (step + 1) % self.steps:
            return
        for name, p in self.model.named_parameters():
            if warmup:
                self.shadow[name].copy_(p)
            else:
                self.shadow[name].lerp_(p.detach(), 1 - self.decay)
        self._mask()

    def _mask(self) -> None:
        for name, mask in prune.mask_state(self.model).items():
            self.shadow[name].masked_fill_(~mask, 0)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        for name, p in self.model.named_parameters():
            p.copy_(self.shadow[name])

    def state_dict(self) -> dict:
        return dict(self.shadow)

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        for name, t in state.items():
            self.shadow[name].copy_(t)


@contextlib.contextmanager
def _pointwise_strides_subsampled(model: nn.Module, enabled: bool):
    """Every 1x1 convolution with a stride s > 1 (and no padding) runs as a stride-1 one on every
    s-th pixel of its input, the same function, while the context is open.

    Why: torch 2.14's CPU kernel for the weight gradient of a channels-last 1x1 stride-2
    convolution corrupts the heap (SIGSEGV or "free(): invalid next size", a dead process, no
    exception) from about 48 px of input (8 -> 16 channels, the synthetic ResNets' shortcut at
    96-128 px images); at stride 1 it is a plain matrix product and sound."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)
             and m.stride != (1, 1) and m.padding in ((0, 0), "valid") and m.dilation == (1, 1)] if enabled else []
    strides = [m.stride for m in convs]
    handles = []
    for m in convs:
        sh, sw = m.stride
        handles.append(m.register_forward_pre_hook(lambda _, args, sh=sh, sw=sw: (args[0][:, :, ::sh, ::sw],)))
        m.stride = (1, 1)
    try:
        yield
    finally:
        for m, stride, h in zip(convs, strides, handles):
            m.stride = stride
            h.remove()


@contextlib.contextmanager
def _epoch_rng(seed: int, epoch: int, rank: int, device: torch.device):
    """The global torch generators (CPU, and ``device``'s on CUDA) seeded from (seed, epoch, rank)
    for one epoch and restored after: what draws from them within the epoch (a DataLoader's
    augmentation without workers, dropout) is the same in a resumed run."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed((seed * 100_003 + epoch) * 1_009 + rank + 7)   # + 7: not LoaderData's seed
        yield


def train(model: nn.Module, data, cfg: TrainConfig, *, seed: int, device: torch.device,
          state_path: str | Path | None = None, desc: str = "train", channels_last: bool | None = None) -> dict:
    """Train ``model`` in place for ``cfg.epochs``; resume from ``state_path`` if it exists.

    Returns ``{"train_loss": [mean loss per epoch], "precision": the precision used}``.
    ``channels_last``: CNNs in channels-last memory format while training (restored after);
    None: yes (on the CPU too: sv_resnet_s at 64 px trained 35 % faster, one thread). On the CPU
    the 1x1 strided convolutions run as stride-1 ones on subsampled inputs meanwhile (see
    :func:`_pointwise_strides_subsampled`).
    """
    device = distributed.process_device(device)
    precision = prec.resolve(option(cfg, "precision") or ("auto" if cfg.amp else "fp32"), device)
    model.to(device)
    rank, world = _dist()
    if cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} is the global batch; it must be divisible by "
                         f"the number of processes ({world})")
    batch_size = cfg.batch_size // world   # per process: the recipe's global batch on any world size
    to_cl = (True if channels_last is None else channels_last) and is_cnn(model)
    if to_cl:
        model.to(memory_format=torch.channels_last)
    # masks are buffers that never change while training: no per-step broadcast of buffers
    net = nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None,
        broadcast_buffers=False) if world > 1 else model
    opt = _optimizer(model, cfg)
    steps = data.n_batches(batch_size)
    sched = _schedule(opt, cfg, steps)
    scaler = prec.grad_scaler(precision, device)
    ema = (WeightAverage(model, option(cfg, "ema_decay"), option(cfg, "ema_steps"), cfg.batch_size,
                         cfg.epochs) if option(cfg, "ema_decay") else None)
    clip, log_interval = option(cfg, "clip_grad_norm"), max(1, option(cfg, "log_interval"))
    mixup, cutmix = option(cfg, "mixup_alpha"), option(cfg, "cutmix_alpha")
    start, history = 0, []
    state_path = Path(state_path) if state_path else None
    if state_path and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        prune.set_mask_state(model, state["masks"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        if ema is not None and "ema" in state:
            ema.load_state_dict(state["ema"])
        start, history = state["epoch"], state["history"]
    bar = tqdm(total=cfg.epochs * steps, initial=start * steps, desc=desc, disable=rank != 0,
               leave=False)
    with _pointwise_strides_subsampled(model, to_cl and device.type == "cpu"):
        for epoch in range(start, cfg.epochs):
            net.train()
            # mixup/cutmix draws depend only on (seed, epoch, rank): resumable; so do the torch
            # random draws (_epoch_rng)
            rng = np.random.default_rng([seed, epoch, rank])
            window, total, n = [], 0.0, 0
            with _epoch_rng(seed, epoch, rank, device):   # augmentation in this process, dropout
                for step, (x, y) in enumerate(data.epoch(epoch, batch_size, seed)):
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    if to_cl and x.dim() == 4:
                        x = x.contiguous(memory_format=torch.channels_last)
                    x, y_a, y_b, lam = mix_batch(x, y, mixup, cutmix, rng)
                    with prec.autocast(precision, device):
                        loss = mixed_loss(net(x), y_a, y_b, lam, cfg.label_smoothing)
                    opt.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    if clip:
                        scaler.unscale_(opt)
                        nn.utils.clip_grad_norm_(model.parameters(), clip)
                    window.append((loss.detach(), len(y), step, sched.get_last_lr()[0]))
                    scaler.step(opt)
                    scaler.update()
                    sched.step()
                    if ema is not None:
                        ema.update(epoch * steps + step, warmup=epoch < cfg.warmup_epochs)
                    bar.update()
                    if len(window) >= log_interval:
                        total, n = _drain(window, total, n, epoch, cfg.epochs, steps)
                        bar.set_postfix(epoch=epoch + 1, loss=f"{total / max(n, 1):.3f}")
            total, n = _drain(window, total, n, epoch, cfg.epochs, steps)
            history.append(total / max(n, 1))
            distributed.average_bn_stats(model)   # every rank: the same statistics, from all shards
            if state_path and rank == 0:
                atomic_torch_save({"model": model.state_dict(), "masks": prune.mask_state(model),
                                   "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                                   "scaler": scaler.state_dict(),
                                   **({"ema": ema.state_dict()} if ema is not None else {}),
                                   "epoch": epoch + 1, "history": history}, state_path)
            if world > 1:
                dist.barrier()
    bar.close()
    if ema is not None:   # the recipe's model is the average
        ema.copy_to_model()
    if to_cl:
        model.to(memory_format=torch.contiguous_format)
    return {"train_loss": history, "precision": precision}


def _drain(window: list, total: float, n: int, epoch: int, epochs: int, steps: int) -> tuple[float, int]:
    """Read the window's losses from the device (one sync); stop on the first non-finite one."""
    if not window:
        return total, n
    losses = torch.stack([loss.float() for loss, *_ in window]).cpu()
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad):
        i = int(bad[0])
        _, _, step, lr = window[i]
        raise DivergenceError(f"training diverged: loss {float(losses[i])} at epoch {epoch + 1}/{epochs}, "
                              f"step {step + 1}/{steps} (lr {lr:.4g}); lower the lr, clip gradients "
                              "(clip_grad_norm) or train in precision='fp32'")
    sizes = torch.tensor([size for _, size, *_ in window], dtype=torch.float64)
    total += float((losses.double() * sizes).sum())
    n += int(sizes.sum())
    window.clear()
    return total, n


def predict(model: nn.Module, data, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """Float32 logits for every sample of ``data`` in order (no augmentation), through the one
    inference path (:func:`sparsevis.features.extract`, in :data:`EVAL_PRECISION`); the model
    is left in eval mode."""

    if isinstance(data, TensorData):   # one tensor (normalising is per pixel): what a logits_cache sees
        inputs = data.normalize(data.images)
    else:
        inputs = (x for x, _ in data.epoch(0, batch_size, 0, shuffle=False))
    out = extract(model, inputs, device=device, batch_size=batch_size, precision=EVAL_PRECISION, progress=False)
    model.eval()
    return out


def accuracy(model: nn.Module, data, device: torch.device, batch_size: int = 256) -> float:
    labels = torch.cat([y for _, y in data.epoch(0, batch_size, 0, shuffle=False)])
    return float((predict(model, data, device, batch_size).argmax(1) == labels).float().mean())


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches, device: torch.device) -> int:
    """Re-estimate BatchNorm running statistics of a pruned model on ``batches`` of inputs.

    Pruning shifts every layer's activation statistics; recomputing them (a cumulative average
    over the batches, weights untouched) recovers much of the one-shot accuracy loss.
    Returns the number of BN layers reset.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.to(device).train()
    for x in batches:
        model(x.to(device))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()
    return len(bns)
