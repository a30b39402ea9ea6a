"""ImageNet normalisation and the ImageNet transforms of torchvision's classification
reference, shared by the readers.

Training = RandomResizedCrop + horizontal flip [+ AutoAugment or TrivialAugmentWide] +
``ToTensor`` + ImageNet mean/std normalisation [+ RandomErasing]; evaluation = resize the short
side + centre-crop + ``ToTensor`` + normalisation. The defaults (224 px crops, resize 256,
bilinear, no auto-augment, no erasing) are the protocol's; a recipe's settings come from
:class:`sparsevis.recipes.DataRecipe`. :func:`to_normalized_tensor` is the same normalisation
of a whole image, computed in NumPy.
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


INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
# AutoAugment's policies (torchvision's AutoAugmentPolicy values) and TrivialAugmentWide
AUTO_AUGMENT = ("imagenet", "cifar10", "svhn", "ta_wide")


def check_options(interpolation: str = "bilinear", auto_augment: str | None = None, random_erase: float = 0.0):
    """ValueError naming the option when one is not what the transforms below take."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation={interpolation!r}; expected one of {INTERPOLATIONS}")
    if auto_augment is not None and auto_augment not in AUTO_AUGMENT:
        raise ValueError(f"auto_augment={auto_augment!r}; expected None or one of {AUTO_AUGMENT}")
    if not 0 <= random_erase <= 1:
        raise ValueError(f"random_erase={random_erase!r}; expected a probability in [0, 1]")


def train_transform(size: int = 224, interpolation: str = "bilinear", auto_augment: str | None = None,
                    random_erase: float = 0.0):
    """RandomResizedCrop(size) + RandomHorizontalFlip, then ``auto_augment`` (an AutoAugment
    policy, "imagenet", "cifar10" or "svhn", or "ta_wide" for TrivialAugmentWide; None: none),
    ``ToTensor`` + ImageNet normalisation, then RandomErasing with probability
    ``random_erase`` (0: none). Every resampling uses ``interpolation``."""
    from torchvision import transforms as T

    check_options(interpolation, auto_augment, random_erase)
    mode = T.InterpolationMode(interpolation)
    steps = [T.RandomResizedCrop(size, interpolation=mode), T.RandomHorizontalFlip()]
    if auto_augment == "ta_wide":
        steps.append(T.TrivialAugmentWide(interpolation=mode))
    elif auto_augment is not None:
        steps.append(T.AutoAugment(T.AutoAugmentPolicy(auto_augment), interpolation=mode))
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if random_erase > 0:
        steps.append(T.RandomErasing(p=random_erase))
    return T.Compose(steps)


def eval_transform(resize: int = 256, crop: int = 224, interpolation: str = "bilinear"):
    """Resize(resize) (short side) + CenterCrop(crop) + ToTensor + ImageNet normalisation."""
    from torchvision import transforms as T

    check_options(interpolation)
    return T.Compose([T.Resize(resize, interpolation=T.InterpolationMode(interpolation)), T.CenterCrop(crop),
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
