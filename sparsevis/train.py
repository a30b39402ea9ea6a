"""Training and evaluation loops shared by every track.

Resumable at epoch granularity: after each epoch the model, masks, optimizer and scheduler are
written atomically to ``state_path``; the data order and augmentation of epoch ``e`` depend only
on ``(seed, e)``, so a run killed at any moment and resumed ends bit-identical (on the CPU) to
an uninterrupted one. Pruned weights stay zero through training (:func:`sparsevis.prune.enforce`).
Under ``torchrun`` the model is wrapped in DDP and each rank takes its shard of every epoch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from sparsevis import distributed, prune
from sparsevis.config import TrainConfig
from sparsevis.fileio import atomic_torch_save


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
    a distributed sampler whose order depends only on (seed, epoch)."""

    dataset: torch.utils.data.Dataset
    num_workers: int = 8

    def __len__(self) -> int:
        return len(self.dataset)

    def _loader(self, epoch: int, batch_size: int, seed: int, shuffle: bool):
        rank, world = _dist()
        if shuffle:  # training epochs are sharded over the ranks; evaluation passes are not
            sampler = torch.utils.data.DistributedSampler(self.dataset, world, rank, shuffle=True, seed=seed)
            sampler.set_epoch(epoch)
        else:
            sampler = torch.utils.data.SequentialSampler(self.dataset)
        # worker seeds (the augmentation) depend only on (seed, epoch, rank): resumable
        gen = torch.Generator().manual_seed((seed * 100_003 + epoch) * 1_009 + rank)
        return torch.utils.data.DataLoader(self.dataset, batch_size, sampler=sampler,
                                           num_workers=self.num_workers,
                                           pin_memory=torch.cuda.is_available(), generator=gen,
                                           persistent_workers=False, drop_last=False)

    def epoch(self, epoch: int, batch_size: int, seed: int, shuffle: bool = True):
        yield from self._loader(epoch, batch_size, seed, shuffle)

    def n_batches(self, batch_size: int) -> int:
        return math.ceil(len(self) / _dist()[1] / batch_size)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name.endswith(("pos_embed", "cls_token")) else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def _schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = cfg.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.schedule == "step":
            return cfg.gamma ** ((step // steps_per_epoch) // cfg.step_size)
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train(model: nn.Module, data, cfg: TrainConfig, *, seed: int, device: torch.device,
          state_path: str | Path | None = None, desc: str = "train") -> dict:
    """Train ``model`` in place for ``cfg.epochs``; resume from ``state_path`` if it exists."""
    model.to(device)
    rank, world = _dist()
    if cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} is the global batch; it must be divisible by "
                         f"the number of processes ({world})")
    batch_size = cfg.batch_size // world   # per process: the recipe's global batch on any world size
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = _optimizer(model, cfg)
    prune.enforce(opt, model)
    steps = data.n_batches(batch_size)
    sched = _schedule(opt, cfg, steps)
    start, history = 0, []
    state_path = Path(state_path) if state_path else None
    if state_path and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        prune.set_mask_state(model, state["masks"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, history = state["epoch"], state["history"]
    use_amp = cfg.amp and device.type == "cuda"
    bar = tqdm(total=cfg.epochs * steps, initial=start * steps, desc=desc, disable=rank != 0,
               leave=False)
    for epoch in range(start, cfg.epochs):
        net.train()
        total, n = 0.0, 0
        for x, y in data.epoch(epoch, batch_size, seed):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = F.cross_entropy(net(x), y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(y)
            n += len(y)
            bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{total / max(n, 1):.3f}")
        history.append(total / max(n, 1))
        if state_path and rank == 0:
            atomic_torch_save({"model": model.state_dict(), "masks": prune.mask_state(model),
                               "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                               "epoch": epoch + 1, "history": history}, state_path)
        if world > 1:
            dist.barrier()
    bar.close()
    # DDP syncs buffers at the start of a forward: after the last step BN statistics differ
    distributed.broadcast_buffers(model)
    return {"train_loss": history}


def predict(model: nn.Module, data, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """Float32 logits for every sample of ``data`` in order (no augmentation), through the one
    inference path (:func:`sparsevis.features.extract`, without autocast); the model is left
    in eval mode."""
    from sparsevis.features import extract

    batches = (x for x, _ in data.epoch(0, batch_size, 0, shuffle=False))
    out = extract(model, batches, device=device, amp=False, progress=False)
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
