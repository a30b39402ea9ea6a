"""Repeated augmentation under DDP (Hoffer et al. 2020; DeiT; torchvision's classification
reference, ``--ra-sampler --ra-reps``).

Each epoch shuffles the dataset with a generator seeded by ``seed + epoch``, repeats every
index ``reps`` times in place (``a a a b b b ...``) and deals that list out to the processes
in turn: position ``j`` goes to rank ``j % world``. Consecutive copies of an image thus land on
different ranks, each of which augments its copy with its own random draws. Every rank takes
the first ``(n // 256 * 256) // world`` of its share: an epoch has the steps of a plain epoch
over ``n`` images (rounded down to a multiple of 256, as the reference does), but only about
``n / reps`` distinct images, a different draw of them every epoch.
"""
from __future__ import annotations

import torch
from torch.utils.data import Sampler

# the reference rounds the images per epoch down to a multiple of this
EPOCH_MULTIPLE = 256


class RepeatedAugmentationSampler(Sampler[int]):
    """Indices of ``rank``'s share of one epoch over ``n`` items (module docstring); call
    :meth:`set_epoch` before each epoch."""

    def __init__(self, n: int, world: int, rank: int, reps: int = 3, seed: int = 0):
        if not (isinstance(world, int) and world >= 1 and isinstance(rank, int) and 0 <= rank < world):
            raise ValueError(f"world={world!r}, rank={rank!r}: expected world >= 1 and 0 <= rank < world")
        if not isinstance(reps, int) or reps < 1:
            raise ValueError(f"reps={reps!r}: expected a positive whole number of repetitions")
        self.n, self.world, self.rank, self.reps, self.seed = n, world, rank, reps, seed
        self.num_samples = (n // EPOCH_MULTIPLE * EPOCH_MULTIPLE) // world
        if self.num_samples == 0:
            raise ValueError(f"repeated-augmentation sampler: {n} images give no image per process over "
                             f"{world} processes (an epoch takes {n} rounded down to a multiple of "
                             f"{EPOCH_MULTIPLE}, shared out); expected at least {EPOCH_MULTIPLE} images and "
                             f"at most {n // EPOCH_MULTIPLE * EPOCH_MULTIPLE} processes")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        # position j of the repeated list holds order[j // reps]; this rank's k-th is j = rank + k * world
        positions = self.rank + self.world * torch.arange(self.num_samples)
        return iter(order[positions // self.reps].tolist())
