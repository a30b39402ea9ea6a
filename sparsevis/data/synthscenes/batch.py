"""SceneBatch: a batch of SynthScenes images with their labels, boxes, masks and conditions."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch


@dataclass
class SceneBatch:
    """A batch of SynthScenes images with everything known about them.

    images: uint8 (N, 3, H, W); labels: long (N,) shape class; texture_labels: long (N,);
    boxes: float32 (N, 4) x1, y1, x2, y2 in pixels, x2/y2 exclusive, tight around the mask;
    masks: bool (N, H, W) object pixels; dataset, condition: one string per image.
    """

    images: torch.Tensor
    labels: torch.Tensor
    texture_labels: torch.Tensor
    boxes: torch.Tensor
    masks: torch.Tensor
    dataset: list[str]
    condition: list[str]
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def shape_labels(self) -> torch.Tensor:
        return self.labels

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    def __getitem__(self, idx) -> "SceneBatch":
        """Sub-batch by int, slice, index list/tensor or bool tensor."""
        if isinstance(idx, (int, np.integer)):
            idx = [int(idx)]
        if isinstance(idx, slice):
            ids = list(range(len(self)))[idx]
        else:
            t = torch.as_tensor(idx)
            ids = (t.nonzero().flatten() if t.dtype == torch.bool else t.flatten()).tolist()
        it = torch.as_tensor(ids, dtype=torch.long)
        return SceneBatch(self.images[it], self.labels[it], self.texture_labels[it], self.boxes[it],
                          self.masks[it], [self.dataset[i] for i in ids],
                          [self.condition[i] for i in ids], dict(self.meta))

    def where(self, condition: str) -> "SceneBatch":
        """The images of one condition."""
        return self[[i for i, c in enumerate(self.condition) if c == condition]]

    @staticmethod
    def concat(batches: Sequence["SceneBatch"]) -> "SceneBatch":
        batches = list(batches)
        if not batches:
            raise ValueError("batches is empty; expected at least one SceneBatch to concatenate")
        return SceneBatch(
            torch.cat([b.images for b in batches]), torch.cat([b.labels for b in batches]),
            torch.cat([b.texture_labels for b in batches]), torch.cat([b.boxes for b in batches]),
            torch.cat([b.masks for b in batches]), sum((b.dataset for b in batches), []),
            sum((b.condition for b in batches), []), dict(batches[0].meta))

    def digest(self) -> str:
        """SHA-256 over every tensor's bytes and the dataset/condition strings."""
        h = hashlib.sha256()
        for t in (self.images, self.labels, self.texture_labels, self.boxes, self.masks):
            h.update(str((t.dtype, tuple(t.shape))).encode())
            h.update(t.contiguous().numpy().tobytes())
        h.update("\n".join(self.dataset + self.condition).encode())
        return h.hexdigest()
