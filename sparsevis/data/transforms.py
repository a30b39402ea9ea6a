"""ImageNet normalisation and torchvision's ImageNet reference transforms, shared by the readers.

Training = RandomResizedCrop(224) + horizontal flip; evaluation = resize the short side to 256
+ centre-crop 224; both then ``ToTensor`` and normalisation with the ImageNet mean/std.
:func:`to_normalized_tensor` is the same normalisation of a whole image, computed in NumPy.
"""
from __future__ import annotations

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_transform():
    """``ToTensor`` + ImageNet mean/std normalisation, no geometric change."""
    from torchvision import transforms as T

    return T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def train_transform(size: int = 224):
    """RandomResizedCrop(size) + RandomHorizontalFlip + ToTensor + ImageNet normalisation."""
    from torchvision import transforms as T

    return T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(),
                      T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def eval_transform(resize: int = 256, crop: int = 224):
    """Resize(resize) (short side) + CenterCrop(crop) + ToTensor + ImageNet normalisation."""
    from torchvision import transforms as T

    return T.Compose([T.Resize(resize), T.CenterCrop(crop),
                      T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32)
_STD = np.asarray(IMAGENET_STD, dtype=np.float32)


def to_normalized_tensor(img) -> torch.Tensor:
    """RGB ``PIL.Image`` -> float32 (3, H, W) tensor, ``(x / 255 - mean) / std`` with the ImageNet
    mean/std: what torchvision's ``ToTensor`` + ``Normalize`` give, computed in NumPy (many tiny
    torch ops per image are slow when the CPU's cores are busy)."""
    a = np.asarray(img, dtype=np.float32)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got an array of shape {a.shape}")
    a = (a / np.float32(255.0) - _MEAN) / _STD
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
