"""The plan of a profile's work, with an estimate of its cost in GPU-hours.

:func:`plan` is what ``python -m sparsevis plan --profile <name>`` prints.

Throughput figures (estimates)
    The GPU-hours come from measured training and inference throughput of the same
    architectures in timm's public benchmark tables (``results/benchmark-train-amp-nhwc-
    pt112-cu113-rtx3090.csv`` and ``results/benchmark-infer-amp-nhwc-pt112-cu113-rtx3090.csv``
    in huggingface/pytorch-image-models: one RTX 3090, AMP, channels-last, PyTorch 1.12),
    multiplied by an *assumed* speed-up for the GPU named (A100 2.2x, H100 3.5x a 3090). The
    speed-ups are not measured here; they are round figures in line with public ResNet-50 AMP
    training rates (about 1,200 images/s on a 3090, 2,500-3,000 on an A100). The tables' rates
    are at 224 px; a recipe that trains or evaluates on larger crops (Swin-V2-T: 256 px) is
    taken to cost the GPU in proportion to its pixels (the studies run at 224 px). The estimate
    assumes ideal scaling over GPUs.

Data loading
    Each GPU process decodes with :func:`sparsevis.features.loader_workers` workers (what the
    loader really starts: ``min(8, cores_per_gpu - 1)``), each at ``decode_images_per_s``
    (``plan --decode-rate``: your measured figure; default the assumed
    :data:`DECODE_IMAGES_PER_S_PER_WORKER`, PIL decode of an ImageNet JPEG + RandomResizedCrop
    on one core), divided for the recipes with heavier augmentation by their measured
    :data:`AUGMENT_COST`. A run's rate is the smaller of the GPU's and the loader's; the plan
    says which of the two assumptions decides each run's estimate and the total.
    Measure your own GPU with :func:`measure_train_throughput` (at the recipe's crop size:
    ``image_size=256`` for Swin-V2-T) and pass the figures to :func:`plan` as ``throughput=``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from sparsevis import features, models, recipes, tracks
from sparsevis.runtime import resolve_device
from sparsevis.tracks import paper as paper_track

# images/s on one RTX 3090 (timm benchmark tables, AMP + channels-last; see the module docstring).
# Swin-V2-T is timm's swinv2_tiny_window8_256 measured at 256 px, scaled by (256/224)^2 to 224 px.
REFERENCE_GPU = "RTX 3090 (timm benchmark tables, AMP, channels-last, PyTorch 1.12)"
TRAIN_IMAGES_PER_S = {
    "resnet18": 3482, "resnet50": 1218, "vit_b_32": 1709, "vit_b_16": 393,
    "swin_v2_t": round(357 * (256 / 224) ** 2), "mobilenet_v2": 2313,
}
INFER_IMAGES_PER_S = {
    "resnet18": 11024, "resnet50": 3676, "vit_b_32": 4923, "vit_b_16": 1133,
    "swin_v2_t": round(1158 * (256 / 224) ** 2), "mobilenet_v2": 9591,
}
ARCH_ALIASES = {  # timm names -> the keys above
    "vit_base_patch32_224": "vit_b_32", "vit_base_patch16_224": "vit_b_16",
    "swinv2_tiny_window8_256": "swin_v2_t", "mobilenetv2_100": "mobilenet_v2",
}
# Assumed speed-up over the reference GPU (not measured here; calibrate with
# measure_train_throughput).
GPU_SPEEDUP = {"rtx3090": 1.0, "a100": 2.2, "h100": 3.5}
# Assumed JPEG decode + augmentation rate of one DataLoader worker (one core; PIL, ImageNet-sized
# images, the protocol's RandomResizedCrop 224 + flip): not measured here, pass
# decode_images_per_s= (plan --decode-rate) with your own figure.
DECODE_IMAGES_PER_S_PER_WORKER = 200
# A recipe's training transform per image relative to the protocol's: ViT-B/32's AutoAugment,
# Swin-V2-T's TrivialAugmentWide + random erasing at 256 px bicubic. Measured here (one thread,
# PIL, 100 JPEGs of 375-640 px, 5 interleaved rounds on a loaded 2-core CPU: 1.2-1.4x and
# 1.8-2.0x); the decode rate is divided by it.
AUGMENT_COST = {"vit_b_32": 1.3, "swin_v2_t": 1.9}

# Study stages, per checkpoint, in units of one 224 px forward pass (a forward+backward counts 3).
#  interpretability: n_images VOC2012 images x (Grad-CAM 1 + Guided Grad-CAM 1 + IG inside
#    SmoothGrad 50 steps x 2 samples = 102 forward+backward, + attention 1 forward)
#  discovery: VOC07 trainval (5,011) + VOC12 trainval (11,540) at full resolution (about 3.7x the
#    pixels of 224 px) + COCO20k (19,817, about 6.1x)
#  alignment: the 17 model-vs-human datasets, about 18,000 images at 224 px (approximate count)
INTERPRETABILITY_PER_IMAGE = 3 * 102 + 1
INTERPRETABILITY_IMAGES = 1449   # VOC2012 segmentation val: the pool the images are drawn from
DISCOVERY_IMAGES = {"VOC07 trainval": (5011, 3.7), "VOC12 trainval": (11540, 3.7), "COCO20k": (19817, 6.1)}
ALIGNMENT_IMAGES = 18_000
ALIGNMENT_DATASETS = 17


# --------------------------------------------------------------------------------------------
# Throughput
# --------------------------------------------------------------------------------------------
def arch_key(arch: str) -> str:
    name = arch.split("/")[-1]
    return ARCH_ALIASES.get(name, name)


def measure_train_throughput(arch: str, device: str = "auto", batch_size: int = 128,
                             steps: int = 20, warmup: int = 5, image_size: int = 224,
                             amp: bool = True, channels_last: bool = True) -> float:
    """Training images/s of ``arch`` on ``device`` (synthetic data already on the device; SGD,
    bf16 autocast on CUDA): the GPU-bound rate :func:`plan` needs. Calibrate the estimate with
    ``plan(profile, throughput={"resnet50": measure_train_throughput("torchvision/resnet50")})``
    (the value is taken as training images/s for the GPU you name with ``gpu=``)."""

    device = resolve_device(device)
    model = models.create(arch, num_classes=1000).to(device).train()
    cl = channels_last and device.type == "cuda" and features.is_cnn(model)
    if cl:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, 3, image_size, image_size, device=device)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch_size,), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps * batch_size / (time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------
@dataclass
class RunPlan:
    label: str
    arch: str
    method: str
    checkpoints: int
    sparsity_max: float
    epochs_dense: int
    epochs_per_iteration: int
    epochs_total: int
    train_images: int          # images per epoch
    images_trained: int        # epochs_total x train_images
    images_evaluated: int      # accuracy evaluation of every checkpoint
    recipe: str = "-"          # the training recipe (sparsevis.recipes) or "custom"
    train_images_per_s: float | None = None   # effective rate: min(GPU-bound, loader-bound)
    loader_bound: bool = False  # decoding, not the GPU, sets the training rate
    gpu_images_per_s: float | None = None     # the GPU-bound training rate assumed
    loader_images_per_s: float | None = None  # workers x decode rate
    gpu_hours_prune: float | None = None
    gpu_hours_studies: float | None = None


def _epochs(run) -> tuple[int, int, int]:
    """(dense epochs, epochs per pruning iteration, total epochs)."""
    n_levels = len(run.sparsities)
    dense = run.train.epochs if run.train else 0
    if run.method in ("imp", "random"):
        per = run.retrain.epochs if run.retrain else 0
        return dense, per, dense + (n_levels - 1) * per
    if run.method == "snip":
        return 0, dense, n_levels * dense
    return 0, 0, 0


def study_images(profile, stage: str, track: str = "paper") -> int | None:
    """Images per dataset of one study as the profile sets it (None: the whole dataset), the
    same lookup as the study stage: ``profile.studies[track][stage]["n_images"]``, else
    ``profile.n_images``."""
    return profile.studies.get(track, {}).get(stage, {}).get("n_images", profile.n_images)


def _cap(total: int, n: int | None) -> int:
    return total if n is None else min(total, n)


def _study_work(profile) -> tuple[float, int, dict]:
    """(224 px forward-pass equivalents, images decoded, images per study) of the three studies
    on one checkpoint of the paper track."""
    n_int = _cap(INTERPRETABILITY_IMAGES, study_images(profile, "interpretability"))
    n_disc = study_images(profile, "discovery")
    disc = {name: (_cap(n, n_disc), f) for name, (n, f) in DISCOVERY_IMAGES.items()}
    n_align = study_images(profile, "alignment")
    align = ALIGNMENT_IMAGES if n_align is None else min(ALIGNMENT_IMAGES, ALIGNMENT_DATASETS * n_align)
    forwards = n_int * INTERPRETABILITY_PER_IMAGE + sum(n * f for n, f in disc.values()) + align
    decoded = n_int + sum(n for n, _ in disc.values()) + align
    return forwards, decoded, {"interpretability": n_int, "discovery": sum(n for n, _ in disc.values()),
                               "alignment": align}


def _recipe(run) -> str:
    cfg = run.retrain or run.train
    if cfg is None:
        return "-"
    return getattr(cfg, "recipe", None) or "custom"


def loader_rate(cores_per_gpu: int, decode_images_per_s: float | None = None) -> float:
    """Images/s one GPU process's DataLoader decodes: its workers times the per-worker rate
    (None: the assumed :data:`DECODE_IMAGES_PER_S_PER_WORKER`)."""
    if not isinstance(cores_per_gpu, int) or cores_per_gpu < 1:
        raise ValueError(f"cores_per_gpu={cores_per_gpu!r}: expected a positive whole number of CPU cores")
    if decode_images_per_s is None:
        decode_images_per_s = DECODE_IMAGES_PER_S_PER_WORKER
    if not decode_images_per_s > 0:
        raise ValueError(f"decode_images_per_s={decode_images_per_s!r}: expected images/s per worker > 0")
    return features.loader_workers(cores_per_gpu) * decode_images_per_s


def plan_runs(profile, runs=None, gpu: str = "a100", cores_per_gpu: int = 12,
              throughput: dict | None = None, decode_images_per_s: float | None = None) -> list[RunPlan]:
    """One :class:`RunPlan` per run of ``profile`` (or the given subset ``runs``);
    ``decode_images_per_s`` None: the assumed :data:`DECODE_IMAGES_PER_S_PER_WORKER`."""
    if gpu not in GPU_SPEEDUP:
        raise ValueError(f"gpu={gpu!r}; expected one of {tuple(GPU_SPEEDUP)}")
    speed = GPU_SPEEDUP[gpu]
    loader_ips = loader_rate(cores_per_gpu, decode_images_per_s)
    out = []
    for run in runs if runs is not None else profile.runs:
        n_train, n_eval = tracks.get(run.track).train_sizes(run)
        dense, per, total = _epochs(run)
        checkpoints = len(run.sparsities)
        plan = RunPlan(run.label, run.arch, run.method + ("+bnrecal" if run.bn_recalibration else ""),
                       checkpoints, max(run.sparsities), dense, per, total, n_train, total * n_train,
                       checkpoints * n_eval, recipe=_recipe(run))
        key = arch_key(run.arch)
        pipe = recipes.data_recipe(run.train, run.retrain)
        # the tables are at 224 px; a recipe's larger crops cost the GPU in proportion to their pixels
        train_px, eval_px = ((pipe.train_crop_size / 224) ** 2, (pipe.val_crop_size / 224) ** 2)
        gpu_train = (throughput or {}).get(key) or TRAIN_IMAGES_PER_S.get(key, 0) * speed / train_px
        if tracks.get(run.track).expensive_training and gpu_train:
            gpu_infer = INFER_IMAGES_PER_S.get(key, 0) * speed or 3 * gpu_train   # at 224 px: the studies
            train_loader = loader_ips / AUGMENT_COST.get(plan.recipe, 1.0)
            plan.gpu_images_per_s, plan.loader_images_per_s = gpu_train, train_loader
            plan.train_images_per_s = min(gpu_train, train_loader)
            plan.loader_bound = train_loader < gpu_train
            eval_ips = min(gpu_infer / eval_px, loader_ips)
            plan.gpu_hours_prune = (plan.images_trained / plan.train_images_per_s
                                    + plan.images_evaluated / eval_ips) / 3600
            forwards, decoded, _ = _study_work(profile)
            plan.gpu_hours_studies = checkpoints * max(forwards / gpu_infer, decoded / loader_ips) / 3600
        out.append(plan)
    return out


def _fmt_n(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}" if n < 100 * div else f"{n / div:.0f}{unit}"
    return f"{n:.0f}"


def _fmt_h(h: float | None) -> str:
    if h is None:
        return "-"
    return f"{h:,.0f}" if h >= 10 else f"{h:.1f}"


def _assumptions(gpu: str, throughput: dict | None, decode_images_per_s: float | None) -> tuple[str, str]:
    """Where the GPU rates and the decode rate of the estimate come from, in words."""
    measured = sorted(k for k, v in (throughput or {}).items() if v)
    table = f"{REFERENCE_GPU} times an assumed {GPU_SPEEDUP[gpu]}x for {gpu.upper()}"
    gpu_src = (f"measured for {', '.join(measured)} (throughput=), else taken from {table}" if measured
               else f"taken from {table}")
    if decode_images_per_s is None:
        decode_src = (f"an assumed {DECODE_IMAGES_PER_S_PER_WORKER:g} images/s per core (PIL decode + crop; "
                      "state your measured rate with --decode-rate)")
    else:
        decode_src = f"a stated {decode_images_per_s:g} images/s per core (--decode-rate)"
    return gpu_src, decode_src


def _dominant(plans: list[RunPlan], gpu_src: str, decode_src: str) -> str:
    """Which assumption sets the prune stage's estimate: the GPU rates or the decode rate."""
    loader_h = sum(p.gpu_hours_prune for p in plans if p.loader_bound)
    total_h = sum(p.gpu_hours_prune for p in plans)
    bound = [p.label for p in plans if p.loader_bound]
    gpu_note = f"the estimate rests on the GPU throughput, {gpu_src}"
    if not bound:
        return (f"GPU compute dominates: every run's GPU rate is below what the loader decodes, so {gpu_note}, "
                "and the decode rate does not matter ('L' would mark a run limited by decoding).")
    decoding = loader_h > total_h / 2
    which = "Decoding dominates" if decoding else "GPU compute dominates"
    rests = f"the estimate rests on the decode rate, {decode_src}" if decoding else gpu_note
    return (f"{which}: {len(bound)} of {len(plans)} runs ({', '.join(bound)}; {loader_h / total_h:.0%} of the "
            "prune-stage GPU-hours) are limited by decoding, marked 'L': their estimate scales with the "
            "decode rate and the cores per GPU, not the GPU (more cores, Pillow-SIMD or DALI would speed "
            f"them up); {rests}.")


def plan(profile, runs=None, gpu: str = "a100", gpus: int = 8, cores_per_gpu: int = 12,
         throughput: dict | None = None, decode_images_per_s: float | None = None) -> str:
    """The planned work of ``profile`` (or of ``runs``, a subset of it) and its estimated cost.

    Per run: architecture, pruning method, checkpoints (dense + pruning iterations), final
    sparsity, epochs (dense + per iteration = total), images trained and evaluated, and for the
    paper track the training rate assumed and the estimated GPU-hours of the prune stage and of
    the three studies on one ``gpu`` ("a100", "h100" or "rtx3090") fed by ``cores_per_gpu`` CPU
    cores; wall-clock is given for ``gpus`` GPUs with ideal scaling. ``throughput``
    ({arch: training images/s on that GPU}, e.g. from :func:`measure_train_throughput`)
    replaces the table's figures; ``decode_images_per_s`` is the decode rate of one DataLoader
    worker (one core) you measured (None: the assumed :data:`DECODE_IMAGES_PER_S_PER_WORKER`;
    see the module docstring). The output says which of the two assumptions, the GPU rates or
    the decode rate, the estimate rests on.
    """
    if not isinstance(gpus, int) or gpus < 1:
        raise ValueError(f"gpus={gpus!r}: expected a whole number of GPUs, at least 1")
    all_runs = list(runs if runs is not None else profile.runs)
    plans = plan_runs(profile, all_runs, gpu, cores_per_gpu, throughput, decode_images_per_s)
    cols = [("run", "<", max(len(p.label) for p in plans)), ("arch", "<", max(len(p.arch) for p in plans)),
            ("method", "<", max(6, max(len(p.method) for p in plans))),
            ("recipe", "<", max(6, max(len(p.recipe) for p in plans))), ("ckpts", ">", 5),
            ("final sp.", ">", 9), ("epochs: dense + per it. = total", ">", 31),
            ("images trained", ">", 14), ("evaluated", ">", 9), ("train img/s", ">", 11),
            ("GPU-h prune", ">", 11), ("GPU-h studies", ">", 13)]

    def row(values):
        return "  ".join(f"{v:{a}{w}}" for v, (_, a, w) in zip(values, cols))

    header = row([c for c, _, _ in cols])
    lines = [f"Plan for profile '{profile.name}': {profile.description}", "", header, "-" * len(header)]
    for p in plans:
        rate = "-" if p.train_images_per_s is None else f"{p.train_images_per_s:,.0f}{' L' if p.loader_bound else ''}"
        lines.append(row([p.label, p.arch, p.method, p.recipe, p.checkpoints, f"{p.sparsity_max:.1%}",
                          f"{p.epochs_dense} + {p.epochs_per_iteration} = {p.epochs_total}",
                          _fmt_n(p.images_trained), _fmt_n(p.images_evaluated), rate,
                          _fmt_h(p.gpu_hours_prune), _fmt_h(p.gpu_hours_studies)]))
    lines.append("-" * len(header))
    paper = [p for p in plans if p.gpu_hours_prune is not None]
    unknown = sorted({p.arch for p, r in zip(plans, all_runs) if tracks.get(r.track).expensive_training and p.gpu_hours_prune is None})
    if paper:
        gpu_src, decode_src = _assumptions(gpu, throughput, decode_images_per_s)
        loader_ips = loader_rate(cores_per_gpu, decode_images_per_s)
        costly = sorted({p.recipe for p in paper if p.recipe in AUGMENT_COST})
        heavier = ("; the augmentation of recipe " + ", ".join(f"{r} costs {AUGMENT_COST[r]}x" for r in costly)
                   + " as much per image (measured on a CPU here)") if costly else ""
        prune_h = sum(p.gpu_hours_prune for p in paper)
        studies_h = sum(p.gpu_hours_studies for p in paper)
        epochs = sum(p.images_trained for p in paper) / paper_track.IMAGENET_TRAIN_IMAGES
        wall = (prune_h + studies_h) / gpus
        lines += [
            f"Total: {epochs:,.0f} ImageNet-epoch equivalents of training. Estimated {prune_h:,.0f} GPU-hours "
            f"(prune stage) + {studies_h:,.1f} (studies) on {gpu.upper()}-class GPUs in bf16, each fed by "
            f"{cores_per_gpu} CPU cores: about {wall:,.0f} hours ({wall / 24:,.1f} days) on {gpus} GPUs "
            "with ideal scaling.",
            "",
            f"This is an estimate, not a measurement: GPU throughput {gpu_src}; data loading by "
            f"{features.loader_workers(cores_per_gpu)} DataLoader workers per GPU (the loader's cap, "
            f"min({features.MAX_WORKERS}, cores per GPU - 1)), each at {decode_src}: "
            f"{loader_ips:,.0f} images/s per GPU with the protocol's RandomResizedCrop + flip{heavier}.",
            _dominant(paper, gpu_src, decode_src),
            "Calibrate: sparsevis.plan.measure_train_throughput('torchvision/resnet50') on your GPU, "
            "then plan(profile, throughput={'resnet50': <images/s>}).",
        ]
        _, _, n = _study_work(profile)
        lines.append(f"Studies, per checkpoint: interpretability on {n['interpretability']:,} VOC2012 images, "
                     f"LOST on {n['discovery']:,} images of VOC07 + VOC12 trainval and COCO20k at full "
                     f"resolution, alignment on ~{n['alignment']:,} model-vs-human images (as the profile "
                     "sets n_images).")
    if unknown:
        lines.append(f"No throughput figure for {', '.join(unknown)}: GPU-hours not estimated "
                     "(pass throughput= from measure_train_throughput).")
    if any(not tracks.get(r.track).expensive_training for r in all_runs):
        lines.append("Synthetic and real-stimuli runs are CPU work (minutes); no GPU-hours are estimated for them.")
    return "\n".join(lines)
