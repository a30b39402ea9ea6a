"""Configuration as data: tracks, profiles, and the runs each profile makes.

A :class:`PruneRun` fully determines one pruning experiment (architecture, data, method,
schedule, training recipe, seed); its run id is a hash of that record, the code version and the
input hashes, so the same config is never computed twice. A :class:`Profile` bundles the runs
and the study sizes: ``tiny`` (tests, seconds), ``demo`` (the embedded default the book is built
from, CPU minutes) and ``paper`` (the paper's protocol, GPUs).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from sparsevis.prune import canonical_preset, imp_schedule

TRACKS = ("synthetic", "real", "paper")
METHODS = ("imp", "random", "oneshot", "oneshot-random", "snip", "imported")
STAGES = ("prune", "interpretability", "discovery", "alignment", "book")


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
class SynthData:
    """SynthScenes sizes for the synthetic track."""

    n_train: int = 4000
    n_test: int = 1000
    size: int = 64
    texture_prob: float = 0.8


@dataclass(frozen=True)
class PaperData:
    """ImageNet options for the paper track (read by :func:`sparsevis.paper.track_data`)."""

    train_per_class: int | None = None   # budget variant: a fixed, seeded subset of n images per class
    val_per_class: int | None = None     # None: the whole validation split (50 per class)
    subset_seed: int = 0                 # fixes the subset (independent of the run's seed)


@dataclass(frozen=True)
class PruneRun:
    """One pruning experiment.

    method "imp": iterative global magnitude pruning with learning-rate rewinding (after each
    prune a fresh optimizer and the full ``retrain`` schedule, also after the last prune);
    "random": the same loop with random pruning at matched sparsity; "oneshot": global magnitude
    from the dense model at each of ``levels`` with no retraining (optionally BN-statistics
    recalibration); "oneshot-random": its control, random pruning at each of ``levels``; "snip": SNIP at initialisation to each level, then ``train``; "imported":
    checkpoints made elsewhere, registered by ``python -m sparsevis import-checkpoints`` under
    ``name`` at their realised sparsities ``levels`` (never trained here).
    """

    track: str
    arch: str
    method: str = "imp"
    preset: str = "all"
    rate: float = 0.2
    iterations: int = 6
    levels: tuple[float, ...] = ()
    seed: int = 0
    train: TrainConfig | None = None
    retrain: TrainConfig | None = None
    data: SynthData | PaperData | None = None
    weights: str | None = None       # torchvision weights name or local file (real/paper tracks)
    bn_recalibration: bool = False
    n_eval: int | None = None        # real track: images per dataset for accuracy (None = all)
    name: str | None = None          # imported series: the label given at import

    def __post_init__(self):
        if self.track not in TRACKS:
            raise ValueError(f"track={self.track!r}; expected one of {TRACKS}")
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}; expected one of {METHODS}")
        if (self.method == "imported") != (self.name is not None):
            raise ValueError(f"name={self.name!r}: an imported series (and only one) has a name")
        object.__setattr__(self, "preset", canonical_preset(self.preset))
        self.sparsities  # validates rate/iterations/levels

    @property
    def sparsities(self) -> list[float]:
        if self.method in ("imp", "random"):
            return imp_schedule(self.rate, self.iterations)
        if not self.levels or any(not 0 <= s < 1 for s in self.levels):
            raise ValueError(f"levels={self.levels!r}: method {self.method!r} needs sparsity levels in [0, 1)")
        return sorted(self.levels)

    @property
    def label(self) -> str:
        """Short human-readable name, used in file names and figure legends."""
        arch = self.arch.split("/")[-1]
        if self.method == "imported":
            return f"{self.track}-{arch}-imported-{self.name}"
        extra = "-bnrecal" if self.bn_recalibration else ""
        return f"{self.track}-{arch}-{self.method}{extra}-s{self.seed}"

    def record(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Profile:
    name: str
    runs: tuple[PruneRun, ...]
    n_images: int | None = 64    # images per study evaluation (None: the whole dataset)
    n_boot: int = 1000
    description: str = ""
    # per track, per study: overrides of n_images and attribution `method_params`; a method run
    # with other than the paper's parameters is labelled with them in the results
    studies: dict = field(default_factory=dict)


# --- the synthetic-track recipes ---------------------------------------------------------
# AdamW: 95 % clean accuracy for sv_resnet_s after 12 epochs where SGD (lr 0.05) reached 85 %
_CNN_DENSE = TrainConfig(epochs=12, lr=4e-3, optimizer="adamw", weight_decay=0.05, batch_size=64,
                         warmup_epochs=1)
_CNN_RETRAIN = replace(_CNN_DENSE, epochs=2, warmup_epochs=0)
# The tiny ViT (convolutional stem, see models.sv_vit_t), dense, seed 0: 0.914 clean accuracy
# after 16 epochs, 0.934 after 20 (lr 1e-3: 0.863, 3e-3: 0.891 at 16 epochs).
_VIT_DENSE = TrainConfig(epochs=20, lr=2e-3, optimizer="adamw", weight_decay=0.05, batch_size=64,
                         warmup_epochs=2)
_VIT_RETRAIN = replace(_VIT_DENSE, epochs=3, warmup_epochs=1)


def _synthetic(arch: str, data: SynthData, rate: float, iterations: int, scale: float = 1.0,
               seed: int = 0) -> PruneRun:
    vit = "vit" in arch
    dense, retrain = (_VIT_DENSE, _VIT_RETRAIN) if vit else (_CNN_DENSE, _CNN_RETRAIN)
    if scale != 1.0:
        dense = replace(dense, epochs=max(1, round(dense.epochs * scale)), warmup_epochs=0)
        retrain = replace(retrain, epochs=max(1, round(retrain.epochs * scale)), warmup_epochs=0)
    return PruneRun("synthetic", f"timm/{arch}", "imp", rate=rate, iterations=iterations,
                    train=dense, retrain=retrain, data=data, seed=seed)


_TV_RECIPE = TrainConfig(epochs=90, lr=0.1, weight_decay=1e-4, batch_size=256, schedule="step",
                         step_size=30)
# Budget variant: torchvision's ImageNet weights as the dense model (iteration 0 is not trained),
# then after each prune a short LRR schedule (cosine from the peak lr, 5 epochs) on a fixed
# 300-images-per-class subset (23 % of ImageNet); accuracy on the whole validation split.
_BUDGET_CNN = TrainConfig(epochs=5, lr=0.01, weight_decay=1e-4, batch_size=256, schedule="cosine")
_BUDGET_TRANSFORMER = replace(_BUDGET_CNN, lr=0.003)
_BUDGET_DATA = PaperData(train_per_class=300)
# The protocol's study sizes on the paper track: ~100 VOC2012 images for interpretability, the
# whole of VOC07/VOC12 trainval and COCO20k for LOST, every model-vs-human image.
_PAPER_STUDIES = {"paper": {"discovery": {"n_images": None}, "alignment": {"n_images": None}}}


def _budget(arch: str, iterations: int, retrain: TrainConfig) -> PruneRun:
    return PruneRun("paper", f"torchvision/{arch}", "imp", rate=0.2, iterations=iterations,
                    weights="IMAGENET1K_V1", train=None, retrain=retrain, data=_BUDGET_DATA)


_DEMO_SYNTHETIC = tuple(_synthetic(a, SynthData(), rate=0.4, iterations=6)
                        for a in ("sv_resnet_s", "sv_resnet_m", "sv_vit_t"))
_DEMO_REAL = PruneRun("real", "torchvision/mobilenet_v2", "oneshot", levels=(0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
                      weights="IMAGENET1K_V1")

# The paper's own architectures (and MobileNetV2) with their ImageNet weights, pruned one-shot at
# the sparsities of the paper's first IMP iterations (1 - 0.8^k), against random pruning there:
# CPU-hours, not GPU-days, wherever the weights can be had (torch's cache, or online)
_REAL_ARCHS = ("resnet18", "resnet50", "vit_b_32", "swin_v2_t", "mobilenet_v2")
_REAL_LEVELS = tuple(round(s, 4) for s in imp_schedule(0.2, 7))
_REAL_RUNS = tuple(PruneRun("real", f"torchvision/{a}", method, levels=_REAL_LEVELS, weights="IMAGENET1K_V1")
                   for method in ("oneshot", "oneshot-random") for a in _REAL_ARCHS)

PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        "tiny",
        runs=(
            _synthetic("sv_resnet_s", SynthData(256, 128), rate=0.5, iterations=2, scale=0.125),
            _synthetic("sv_vit_t", SynthData(256, 128), rate=0.5, iterations=2, scale=0.1),
            PruneRun("real", "torchvision/mobilenet_v2", "oneshot", levels=(0.0, 0.5),
                     weights="IMAGENET1K_V1", n_eval=32, bn_recalibration=True),
        ),
        n_images=16, n_boot=100,
        studies={track: {"interpretability": {"method_params": {"ig_smoothgrad": {"n_steps": 4}}}}
                 for track in ("synthetic", "real")},
        description="seconds; for the tests",
    ),
    "demo": Profile(
        "demo",
        runs=(
            *_DEMO_SYNTHETIC,
            # three training seeds of one synthetic model: intervals over training too
            *(replace(_DEMO_SYNTHETIC[0], seed=s) for s in (1, 2)),
            _DEMO_REAL,
            # the controls: random pruning at the same sparsities (from the same dense model)
            *(replace(r, method="random") for r in _DEMO_SYNTHETIC),
            replace(_DEMO_REAL, method="oneshot-random"),
        ),
        n_images=128, n_boot=1000,
        # CPU budget (the book in 25 minutes on 2 cores): fewer IG steps than the paper's 50
        # (labelled in the results); on the real track, where MobileNetV2 at 224 px runs at about
        # 25 images/s per core, 24 edge images for interpretability (70 s per checkpoint at 32)
        # and a seeded half of the 1,280 cue-conflict images for alignment (all 160 edge and
        # 160 silhouette images; each row's n says how many)
        studies={"synthetic": {"interpretability": {"n_images": 64,
                                                    "method_params": {"ig_smoothgrad": {"n_steps": 16}}},
                               "alignment": {"n_images": 200}},
                 "real": {"interpretability": {"n_images": 24,
                                               "method_params": {"ig_smoothgrad": {"n_steps": 8}}},
                          "discovery": {"n_images": None}, "alignment": {"n_images": 640}}},
        description="the embedded default: SynthScenes (IMP with LRR to 95 %) and real "
                    "model-vs-human stimuli with MobileNetV2 (one-shot); CPU minutes",
    ),
    "real": Profile(
        "real",
        runs=_REAL_RUNS,
        n_images=64, n_boot=1000,
        # Sized for the Pages workflow (4-core runner, 6-hour job limit). One-thread CPU times
        # at 224 px (forward / forward+backward, ms per image): MobileNetV2 34/95, ResNet-18
        # 43/138, ResNet-50 105/350, ViT-B/32 104/353, Swin-V2-T 154/502. Per checkpoint: 2,176
        # forwards (320 accuracy, 160 LOST, 1,600 alignment, 96 interpretability) and, with 32
        # images and ~35 attribution passes each, 1,120 forward+backward passes, 1,024 of them
        # IG at 16 steps: 11.4 CPU-hours for the 80 checkpoints. With 8 IG steps (as the demo;
        # labelled in the results) 8.1 CPU-hours, about 2.5 hours on the runner with overheads.
        studies={"real": {"interpretability": {"n_images": 32,
                                               "method_params": {"ig_smoothgrad": {"n_steps": 8}}},
                          "discovery": {"n_images": None}, "alignment": {"n_images": None}}},
        description="the paper's four architectures (and MobileNetV2) with ImageNet weights, one-shot "
                    "magnitude vs random pruning, on the model-vs-human stimuli; where the weights can "
                    "be had (online, or in torch's cache); CPU hours",
    ),
    "paper": Profile(
        "paper",
        runs=(
            PruneRun("paper", "torchvision/resnet18", "imp", rate=0.2, iterations=26,
                     train=_TV_RECIPE, retrain=_TV_RECIPE),
            PruneRun("paper", "torchvision/resnet50", "imp", rate=0.2, iterations=25,
                     train=_TV_RECIPE, retrain=_TV_RECIPE),
            PruneRun("paper", "torchvision/swin_v2_t", "imp", rate=0.2, iterations=7,
                     train=_TV_RECIPE, retrain=_TV_RECIPE),
            PruneRun("paper", "torchvision/vit_b_32", "imp", rate=0.2, iterations=13,
                     train=replace(_TV_RECIPE, epochs=300), retrain=replace(_TV_RECIPE, epochs=300)),
        ),
        n_images=100, n_boot=1000, studies=_PAPER_STUDIES,
        description="the paper's protocol (protocol.md): ImageNet, IMP with LRR; GPUs",
    ),
    "paper-budget": Profile(
        "paper-budget",
        runs=(
            _budget("resnet18", 26, _BUDGET_CNN),
            _budget("resnet50", 25, _BUDGET_CNN),
            _budget("swin_v2_t", 7, _BUDGET_TRANSFORMER),
            _budget("vit_b_32", 13, _BUDGET_TRANSFORMER),
        ),
        n_images=100, n_boot=1000, studies=_PAPER_STUDIES,
        description="the paper's protocol on a budget: torchvision ImageNet weights, 5 epochs of "
                    "LRR per iteration on 300 images per class; GPUs",
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {tuple(PROFILES)}")
    return PROFILES[name]
