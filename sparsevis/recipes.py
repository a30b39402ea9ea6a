"""Training recipes as data: torchvision's classification references, per architecture.

Source: ``references/classification/README.md`` of pytorch/vision (the commands that trained
torchvision's ImageNet weights). Their batch sizes are per GPU on 8 GPUs; here ``batch_size``
is the global batch (:func:`sparsevis.train.train` divides it among the processes).

* ``resnet`` (``paper-sgd``): SGD lr 0.1, momentum 0.9, wd 1e-4 (norms and biases
  included: torchvision's default), StepLR 30 epochs x0.1, 90
  epochs, batch 32 x 8; the recipe the paper names (protocol.md), kept literal.
* ``vit_b_32``: AdamW lr 0.003, wd 0.3 (norms and biases included), 300 epochs, cosine after 30 linear warm-up epochs from
  0.033 x lr, label smoothing 0.11, mixup 0.2, cutmix 1.0, EMA, gradient norm clipped to 1,
  amp, batch 512 x 8; data: auto-augment "imagenet", repeated-augmentation sampler.
* ``swin_v2_t``: AdamW lr 0.001, wd 0.05 (none on norms, biases, embeddings), 300 epochs,
  cosine to 1e-5 after 20 linear warm-up epochs from 0.01 x lr, label smoothing 0.1, mixup 0.8,
  cutmix 1.0, EMA, gradient norm clipped to 5, amp, batch 128 x 8; data: TrivialAugment-wide,
  random erasing 0.25, bicubic, 256 px crops (train and eval, resize 256), sampler repeats 4.

EMA in every recipe that uses it: torchvision's defaults, decay 0.99998 every 32 steps.
:func:`sparsevis.train.train` carries out everything in :meth:`Recipe.train_config`; the paper
track's ImageNet loader carries out :attr:`Recipe.data` (a :class:`DataRecipe`: crop sizes,
interpolation, auto-augment policy, random erasing, the repeated-augmentation sampler under
DDP). ``paper-sgd`` keeps the protocol's RandomResizedCrop 224 + flip, evaluation resize 256 +
centre-crop 224 (protocol.md), which are also the defaults of a hand-made config.

:class:`TrainConfig` (re-exported by :mod:`sparsevis.config`) lives here so that the profiles
can be built from the recipes without an import cycle.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from sparsevis.data import transforms
from sparsevis.precision import PRECISIONS

SOURCE = "https://github.com/pytorch/vision/blob/main/references/classification/README.md"

__all__ = ["SOURCE", "TrainConfig", "RecipeConfig", "DataRecipe", "Recipe", "RECIPES", "get", "for_arch",
           "data_recipe"]


@dataclass(frozen=True)
class TrainConfig:
    """One training schedule (dense training, or one LRR retraining after a prune)."""

    epochs: int
    lr: float
    optimizer: str = "sgd"          # "sgd" (momentum) or "adamw"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 128
    schedule: str = "cosine"        # "cosine" (with linear warm-up) or "step"
    warmup_epochs: int = 0
    step_size: int = 30             # "step": multiply the lr by `gamma` every `step_size` epochs
    gamma: float = 0.1
    label_smoothing: float = 0.0
    amp: bool = True                # bf16 autocast on CUDA (ignored on CPU)

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer={self.optimizer!r}; expected 'sgd' or 'adamw'")
        if self.schedule not in ("cosine", "step"):
            raise ValueError(f"schedule={self.schedule!r}; expected 'cosine' or 'step'")
        if self.epochs < 0 or self.lr <= 0 or self.batch_size < 1:
            raise ValueError(f"TrainConfig: epochs >= 0, lr > 0 and batch_size >= 1 expected, got {self}")


@dataclass(frozen=True)
class RecipeConfig(TrainConfig):
    """:class:`TrainConfig` with the recipe options it lacks (defaults: off; the same as
    :data:`sparsevis.train.OPTIONAL_DEFAULTS`, which is how train() reads a plain TrainConfig)."""

    recipe: str | None = None            # the name of the recipe it comes from (None: hand-made)
    precision: str | None = None
    norm_weight_decay: float = 0.0       # weight decay of norms, biases and timm's pos_embed/cls_token
    warmup_decay: float | None = None
    lr_min: float = 0.0
    clip_grad_norm: float | None = None
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    ema_decay: float = 0.0
    ema_steps: int = 32
    log_interval: int = 50

    def __post_init__(self):
        super().__post_init__()
        if self.recipe is not None and self.recipe not in RECIPES:
            raise ValueError(f"recipe={self.recipe!r}; expected None or one of {tuple(RECIPES)}")
        if self.norm_weight_decay < 0:
            raise ValueError(f"norm_weight_decay={self.norm_weight_decay!r}; expected >= 0")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}; expected None or one of {PRECISIONS}")
        if self.warmup_decay is not None and not 0 < self.warmup_decay <= 1:
            raise ValueError(f"warmup_decay={self.warmup_decay!r}; expected a factor in (0, 1]")
        if not 0 <= self.lr_min < self.lr:
            raise ValueError(f"lr_min={self.lr_min!r}; expected 0 <= lr_min < lr ({self.lr})")
        if self.clip_grad_norm is not None and self.clip_grad_norm <= 0:
            raise ValueError(f"clip_grad_norm={self.clip_grad_norm!r}; expected None or > 0")
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ValueError(f"mixup_alpha={self.mixup_alpha!r}, cutmix_alpha={self.cutmix_alpha!r}; expected >= 0")
        if not 0 <= self.ema_decay < 1 or self.ema_steps < 1 or self.log_interval < 1:
            raise ValueError(f"ema_decay={self.ema_decay!r} (expected [0, 1)), ema_steps={self.ema_steps!r}, "
                             f"log_interval={self.log_interval!r} (expected >= 1)")


@dataclass(frozen=True)
class DataRecipe:
    """The data side of a recipe, with the names and defaults of torchvision's reference
    arguments (``--train-crop-size`` ...): the defaults are the protocol's pipeline.

    Training: RandomResizedCrop(``train_crop_size``) + horizontal flip + the ``auto_augment``
    policy (AutoAugment's "imagenet"/"cifar10"/"svhn", or "ta_wide": TrivialAugmentWide) +
    normalisation + RandomErasing(``random_erase``); evaluation: resize the short side to
    ``val_resize_size`` + centre-crop ``val_crop_size``; every resampling with
    ``interpolation``. ``ra_sampler``: under DDP each epoch repeats each image ``ra_reps`` times
    across the processes (:class:`sparsevis.data.sampler.RepeatedAugmentationSampler`); one
    process shuffles plainly, as the reference does.
    """

    train_crop_size: int = 224
    val_resize_size: int = 256
    val_crop_size: int = 224
    interpolation: str = "bilinear"
    auto_augment: str | None = None
    random_erase: float = 0.0
    ra_sampler: bool = False
    ra_reps: int = 3

    def __post_init__(self):
        for name in ("train_crop_size", "val_resize_size", "val_crop_size", "ra_reps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"DataRecipe: {name}={value!r}; expected a positive whole number")
        if self.val_crop_size > self.val_resize_size:
            raise ValueError(f"DataRecipe: val_crop_size={self.val_crop_size} is larger than "
                             f"val_resize_size={self.val_resize_size}; expected a crop inside the resized image")
        try:
            transforms.check_options(self.interpolation, self.auto_augment, self.random_erase)
        except ValueError as e:
            raise ValueError(f"DataRecipe: {e}") from None

    def train_transform(self):
        return transforms.train_transform(self.train_crop_size, self.interpolation, self.auto_augment,
                                          self.random_erase)

    def eval_transform(self):
        return transforms.eval_transform(self.val_resize_size, self.val_crop_size, self.interpolation)


@dataclass(frozen=True)
class Recipe:
    name: str
    archs: tuple[str, ...]                       # torchvision names the recipe is for
    train: dict                                  # RecipeConfig fields
    data: DataRecipe = field(default_factory=DataRecipe)   # the data pipeline (paper track)
    source: str = SOURCE

    def train_config(self, **overrides) -> RecipeConfig:
        """The recipe as a training config; ``overrides`` replace fields (e.g. ``epochs=5``)."""
        known = {f.name for f in fields(RecipeConfig)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"recipe {self.name!r}: unknown fields {sorted(unknown)}; expected some of {sorted(known)}")
        return RecipeConfig(**{"recipe": self.name, **self.train, **overrides})


_EMA = dict(ema_decay=0.99998, ema_steps=32)

RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("paper-sgd", ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"),
           train=dict(epochs=90, lr=0.1, optimizer="sgd", momentum=0.9, weight_decay=1e-4,
                      batch_size=32 * 8, schedule="step", step_size=30, gamma=0.1, norm_weight_decay=1e-4),
           data=DataRecipe()),   # the protocol's: RandomResizedCrop 224 + flip, resize 256 + crop 224
    Recipe("vit_b_32", ("vit_b_32",),
           train=dict(epochs=300, lr=0.003, optimizer="adamw", weight_decay=0.3, norm_weight_decay=0.3,
                      batch_size=512 * 8,
                      schedule="cosine", warmup_epochs=30, warmup_decay=0.033, label_smoothing=0.11,
                      mixup_alpha=0.2, cutmix_alpha=1.0, clip_grad_norm=1.0, amp=True, **_EMA),
           data=DataRecipe(auto_augment="imagenet", ra_sampler=True, ra_reps=3)),
    Recipe("swin_v2_t", ("swin_v2_t", "swin_v2_s", "swin_v2_b"),
           train=dict(epochs=300, lr=0.001, optimizer="adamw", weight_decay=0.05, batch_size=128 * 8,
                      schedule="cosine", lr_min=1e-5, warmup_epochs=20, warmup_decay=0.01,
                      label_smoothing=0.1, mixup_alpha=0.8, cutmix_alpha=1.0, clip_grad_norm=5.0,
                      amp=True, **_EMA),
           data=DataRecipe(auto_augment="ta_wide", random_erase=0.25, ra_sampler=True, ra_reps=4,
                           train_crop_size=256, val_resize_size=256, val_crop_size=256,
                           interpolation="bicubic")),
)}


def get(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; expected one of {tuple(RECIPES)}")
    return RECIPES[name]


def for_arch(arch: str) -> Recipe:
    """The recipe of a torchvision architecture (``"resnet50"`` or ``"torchvision/resnet50"``)."""
    short = arch.split("/")[-1]
    for recipe in RECIPES.values():
        if short in recipe.archs:
            return recipe
    raise ValueError(f"no recipe for arch={arch!r}; recipes cover "
                     f"{sorted(a for r in RECIPES.values() for a in r.archs)}")


def data_recipe(*configs) -> DataRecipe:
    """The data pipeline of a run trained with ``configs`` (its ``train`` and ``retrain``; None
    where it has none): their recipe's, the default :class:`DataRecipe` for hand-made configs.
    ValueError when two configs ask for different pipelines (one run has one training set)."""
    found = {}
    for cfg in configs:
        if cfg is not None:
            name = getattr(cfg, "recipe", None)
            found[name] = get(name).data if name else DataRecipe()
    if len(set(found.values())) > 1:
        raise ValueError("the training configs ask for different data pipelines ("
                         + "; ".join(f"recipe {n}: {d}" for n, d in found.items()) + "); expected one per run")
    return next(iter(found.values()), DataRecipe())
