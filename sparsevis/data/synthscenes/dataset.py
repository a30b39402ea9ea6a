"""SynthScenes images for torch: normalisation with the SynthScenes statistics and a Dataset."""
from __future__ import annotations

import torch

from .batch import SceneBatch
from .splits import MEAN, STD


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (..., 3, H, W) -> float32 ``(x / 255 - MEAN) / STD``."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        raise ValueError(f"images must be a uint8 torch.Tensor of shape (..., 3, H, W); got "
                         f"{type(images).__name__} {getattr(images, 'dtype', '')}")
    if images.dim() < 3 or images.shape[-3] != 3:
        raise ValueError(f"images must have shape (..., 3, H, W); got {tuple(images.shape)}")
    mean = torch.tensor(MEAN, dtype=torch.float32, device=images.device).view(3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32, device=images.device).view(3, 1, 1)
    return (images.to(torch.float32) / 255 - mean) / std


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Inverse of ``normalize``, to float in [0, 1] (clamped)."""
    mean = torch.tensor(MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * std + mean).clamp(0, 1)


class SceneDataset(torch.utils.data.Dataset):
    """A torch Dataset over a SceneBatch.

    Items are ``(image, label)`` with ``image = normalize(uint8 image)`` (float32, 3xHxW), then
    ``transform(image)`` if given; ``return_texture`` / ``return_mask`` / ``return_box`` append
    the texture label, the bool mask (HxW) and the box (4,) in that order. The transform sees
    the image only: a geometric transform would no longer match the mask and box.
    """

    def __init__(self, batch: SceneBatch, transform=None, return_texture: bool = False,
                 return_mask: bool = False, return_box: bool = False):
        self.batch = batch
        self.transform = transform
        self.return_texture, self.return_mask, self.return_box = return_texture, return_mask, return_box

    def __len__(self) -> int:
        return len(self.batch)

    def __getitem__(self, i: int):
        b = self.batch
        x = normalize(b.images[i])
        if self.transform is not None:
            x = self.transform(x)
        out = [x, b.labels[i]]
        if self.return_texture:
            out.append(b.texture_labels[i])
        if self.return_mask:
            out.append(b.masks[i])
        if self.return_box:
            out.append(b.boxes[i])
        return tuple(out)
