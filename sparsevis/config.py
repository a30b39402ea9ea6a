"""Configuration as data: tracks, profiles, and the runs each profile makes.

A :class:`PruneRun` fully determines one pruning experiment (architecture, data, method,
schedule, training recipe, seed); its run id is a hash of that record, the code version and the
input hashes, so the same config is never computed twice. A :class:`Profile` bundles the runs
and the study sizes: ``tiny`` (tests, seconds), ``demo`` (the embedded default the book is built
from, CPU minutes), ``paper`` (the paper's protocol with each architecture's torchvision reference recipe,
GPUs; ``paper-sgd`` with the paper's literal SGD recipe, ``paper-budget`` from pretrained
weights).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from sparsevis import recipes
from sparsevis.prune import canonical_preset, imp_schedule
from sparsevis.recipes import RecipeConfig, TrainConfig  # noqa: F401  (TrainConfig: the public name)

TRACKS = ("synthetic", "real", "paper")
METHODS = ("imp", "random", "oneshot", "oneshot-random", "snip", "imported")
STAGES = ("prune", "interpretability", "discovery", "alignment", "book")


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
        recipe = getattr(self.retrain or self.train, "recipe", None)
        if recipe and arch not in recipes.get(recipe).archs:   # not the architecture's own recipe
            extra += f"-{recipe}"
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


# --- the paper track -----------------------------------------------------------------------
# The pruning iterations of each architecture (protocol.md).
_PAPER_ITERATIONS = {"resnet18": 26, "resnet50": 25, "swin_v2_t": 7, "vit_b_32": 13}


def _paper(arch: str, cfg: RecipeConfig) -> PruneRun:
    """IMP with LRR from scratch: ``cfg`` trains the dense model and again after every prune."""
    return PruneRun("paper", f"torchvision/{arch}", "imp", rate=0.2, iterations=_PAPER_ITERATIONS[arch],
                    train=cfg, retrain=cfg)


def _paper_sgd(arch: str) -> RecipeConfig:
    """The paper's literal recipe (protocol.md): torchvision's ResNet SGD recipe for every
    architecture, 300 epochs for ViT-B/32. ViT and Swin spend most of it at a vanishing lr
    (StepLR x0.1 every 30 epochs: below 1e-4 after epoch 90), hence not the default."""
    return recipes.get("paper-sgd").train_config(epochs=300 if arch == "vit_b_32" else 90)


def _budget(arch: str) -> PruneRun:
    """Budget variant: torchvision's ImageNet weights as the dense model (iteration 0 is not
    trained), then after each prune a short LRR schedule on a fixed 300-images-per-class subset
    (23 % of ImageNet); accuracy on the whole validation split. The schedule is the
    architecture's recipe (optimizer, weight decay, label smoothing, mixup/cutmix, clipping) for
    5 epochs of cosine decay from a tenth of its peak lr (the weights are converged already:
    SGD 0.01 for ResNets), one warm-up epoch where the recipe warms up, no weight average (over
    5 epochs torchvision's EMA adjustment makes it a copy of the last weights)."""
    recipe = recipes.for_arch(arch)
    retrain = recipe.train_config(epochs=5, lr=round(recipe.train["lr"] / 10, 12), schedule="cosine", lr_min=0.0,
                                  warmup_epochs=min(1, recipe.train.get("warmup_epochs", 0)), ema_decay=0.0)
    return PruneRun("paper", f"torchvision/{arch}", "imp", rate=0.2, iterations=_PAPER_ITERATIONS[arch],
                    weights="IMAGENET1K_V1", train=None, retrain=retrain, data=PaperData(train_per_class=300))


# The protocol's study sizes on the paper track: ~100 VOC2012 images for interpretability, the
# whole of VOC07/VOC12 trainval and COCO20k for LOST, every model-vs-human image; LOST on ResNet
# features with a dilated last stage (stride 16), as LOST's paper does.
_PAPER_STUDIES = {"paper": {"discovery": {"n_images": None, "dilate_last_stage": True},
                            "alignment": {"n_images": None}}}


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
    # default: each architecture with its torchvision reference recipe (sparsevis.recipes);
    # the ResNets' is the paper's SGD recipe, so "paper" and "paper-sgd" share their series
    "paper": Profile(
        "paper",
        runs=tuple(_paper(a, recipes.for_arch(a).train_config()) for a in _PAPER_ITERATIONS),
        n_images=100, n_boot=1000, studies=_PAPER_STUDIES,
        description="the paper's protocol (protocol.md): ImageNet, IMP with LRR, each architecture "
                    "with its torchvision reference recipe; GPUs",
    ),
    "paper-sgd": Profile(
        "paper-sgd",
        runs=tuple(_paper(a, _paper_sgd(a)) for a in _PAPER_ITERATIONS),
        n_images=100, n_boot=1000, studies=_PAPER_STUDIES,
        description="the paper's protocol with its literal recipe: SGD lr 0.1, StepLR x0.1 every 30 "
                    "epochs for every architecture (ViT-B/32: 300 epochs); GPUs",
    ),
    "paper-budget": Profile(
        "paper-budget",
        runs=tuple(_budget(a) for a in _PAPER_ITERATIONS),
        n_images=100, n_boot=1000, studies=_PAPER_STUDIES,
        description="the paper's protocol on a budget: torchvision ImageNet weights, 5 epochs of "
                    "LRR per iteration (each architecture's recipe) on 300 images per class; GPUs",
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {tuple(PROFILES)}")
    return PROFILES[name]
