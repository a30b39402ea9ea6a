"""The paper track on the CPU: ImageNet track data (fixture folders), a whole prune run through
the runner, and the plan with its GPU-hour estimate."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from sparsevis import config, plan, tracks
from sparsevis.tracks import paper as paper_track
from sparsevis.config import PruneRun, TrainConfig, get_profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures import make_imagenet  # noqa: E402


@dataclass(frozen=True)
class _PaperData:
    """Stand-in with the fields of the proposed ``config.PaperData`` (used until it exists)."""

    train_per_class: int | None = None
    val_per_class: int | None = None
    subset_seed: int = 0


PaperData = getattr(config, "PaperData", _PaperData)
PAPER = tracks.get("paper")
TINY = TrainConfig(epochs=1, lr=0.01, batch_size=4, schedule="cosine", amp=False)


@pytest.fixture
def imagenet(tmp_path, monkeypatch):
    fx = make_imagenet(tmp_path, n_classes=3, n_train=6, n_val=2)
    monkeypatch.setenv("SPARSEVIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(PAPER, "expected_classes", None)   # the fixture has 3 classes
    paper_track._folder.cache_clear()
    yield fx
    paper_track._folder.cache_clear()


def _run(**kw) -> PruneRun:
    args = dict(track="paper", arch="timm/sv_resnet_s", method="imp", rate=0.5, iterations=1,
                train=TINY, retrain=TINY)
    args.update(kw)
    return PruneRun(**args)


def test_track_data_full_and_subset(imagenet):
    full = PAPER.train_data(_run())
    assert full.num_classes == 3 and full.dataset == "imagenet-val"
    assert len(full.train) == 6 + 7 + 8 and len(full.test) == 6
    assert full.test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    x, y = next(full.train.epoch(0, 4, seed=0))
    assert x.shape == (4, 3, 224, 224) and y.shape == (4,)
    xs, ys = zip(*full.test.epoch(0, 4, seed=0))
    assert torch.cat(ys).tolist() == full.test.labels.tolist() and xs[0].shape[-2:] == (224, 224)
    with pytest.raises(ValueError, match="shuffle"):
        next(full.test.epoch(0, 4, 0, shuffle=True))

    sub = PAPER.train_data(_run(data=PaperData(train_per_class=4, val_per_class=1)))
    assert len(sub.train) == 12 and len(sub.test) == 3 and sub.dataset == "imagenet-val[1/class]"
    assert sub.digest != full.digest
    # the digest depends on the data only (same files: same digest)
    paper_track._folder.cache_clear()
    assert PAPER.train_data(_run(seed=5)).digest == full.digest
    with pytest.raises(ValueError, match="train_per_class"):
        PAPER.train_data(_run(data=PaperData(train_per_class=0)))


def test_track_data_names_missing_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEVIS_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="ImageNet"):
        PAPER.train_data(_run())


def test_prune_run_on_the_paper_track(imagenet, monkeypatch, tmp_path):
    from sparsevis import prune, runner

    run = _run(data=PaperData(train_per_class=3))
    out = runner.run_prune(run, device="cpu", store=tmp_path / "runs")
    assert (out / "DONE").exists()
    ckpts = runner.checkpoints(out)
    assert [prune.read(c)["meta"]["iteration"] for c in ckpts] == [0, 1]
    meta = prune.read(ckpts[1])["meta"]
    assert meta["eval_dataset"] == "imagenet-val" and meta["accuracy_n"] == 6
    assert meta["sparsity"] == pytest.approx(0.5, abs=1e-3)
    # what trained it: the precision, and the data pipeline (a hand-made config: the protocol's)
    assert meta["train_precision"] == "fp32"
    protocol = {"train_crop_size": 224, "val_resize_size": 256, "val_crop_size": 224, "interpolation": "bilinear",
                "auto_augment": None, "random_erase": 0.0, "ra_sampler": False, "ra_reps": 3, "sampler": "shuffle"}
    assert meta["data_pipeline"] == protocol
    assert json.loads((out / "config.json").read_text())["data_pipeline"] == protocol
    assert runner.run_prune(run, device="cpu", store=tmp_path / "runs") == out  # cached


def test_plan_paper_profile():
    profile = get_profile("paper")
    text = plan.plan(profile)
    for run in profile.runs:
        assert run.label in text
    assert "90 + 90 = 2430" in text and "300 + 300 = 4200" in text  # ResNet-18, ViT-B/32
    assert "GPU-hours" in text and "estimate" in text
    plans = {p.arch: p for p in plan.plan_runs(profile)}
    r18 = plans["torchvision/resnet18"]
    assert r18.checkpoints == 27 and r18.epochs_total == 27 * 90
    assert r18.images_trained == 2430 * paper_track.IMAGENET_TRAIN_IMAGES
    assert r18.images_evaluated == 27 * 50_000
    # GPU-hours follow from the documented rates
    # 12 cores per GPU: the loader starts min(8, 12 - 1) = 8 workers, 200 images/s each
    rate = min(plan.TRAIN_IMAGES_PER_S["resnet18"] * plan.GPU_SPEEDUP["a100"], 8 * 200)
    eval_rate = min(plan.INFER_IMAGES_PER_S["resnet18"] * plan.GPU_SPEEDUP["a100"], 8 * 200)
    expected = (r18.images_trained / rate + r18.images_evaluated / eval_rate) / 3600
    assert r18.gpu_hours_prune == pytest.approx(expected)
    # a measured throughput replaces the table; a faster decoder lifts the loader bound
    # (more cores do not: the loader stops at 8 workers)
    fast = plan.plan_runs(profile, gpu="h100", throughput={"resnet18": 1e4}, decode_images_per_s=2000)
    assert fast[0].train_images_per_s == 1e4 and not fast[0].loader_bound
    with pytest.raises(ValueError, match="gpu="):
        plan.plan(profile, gpu="tpu")


def test_plan_budget_variant_and_cpu_profiles():
    budget = PruneRun("paper", "torchvision/resnet50", "imp", rate=0.2, iterations=25,
                      weights="IMAGENET1K_V1", retrain=TrainConfig(epochs=5, lr=0.01, batch_size=256),
                      data=PaperData(train_per_class=300))
    profile = get_profile("paper")
    (p,) = plan.plan_runs(profile, [budget])
    assert (p.epochs_dense, p.epochs_per_iteration, p.epochs_total) == (0, 5, 125)
    assert p.images_trained == 125 * 300_000
    faithful = plan.plan_runs(profile, [profile.runs[1]])[0]
    assert p.gpu_hours_prune < faithful.gpu_hours_prune / 50
    text = plan.plan(get_profile("demo"))
    assert "CPU work" in text and "GPU-hours (prune" not in text
    assert "swin" not in plan.plan(profile, [budget])


def test_plan_loader_is_the_loaders_worker_cap_times_the_decode_rate():
    # hand values of min(8, cores - 1) workers (at least one) x the per-worker rate
    assert [plan.loader_rate(c, 100) for c in (1, 2, 4, 9, 12, 64)] == [100, 100, 300, 800, 800, 800]
    with pytest.raises(ValueError, match="decode_images_per_s=0"):
        plan.loader_rate(12, 0)
    with pytest.raises(ValueError, match="cores_per_gpu=0"):
        plan.plan_runs(get_profile("paper"), cores_per_gpu=0)
    profile = get_profile("paper")
    # 64 cores do not lift the loader past 8 workers: ResNet-18 (3,482 x 2.2 images/s on the GPU)
    # stays decode-bound at 8 x 200
    r18 = plan.plan_runs(profile, [profile.runs[0]], cores_per_gpu=64)[0]
    assert r18.loader_bound and r18.train_images_per_s == 1600 and r18.loader_images_per_s == 1600
    text = plan.plan(profile, cores_per_gpu=4, decode_images_per_s=250)
    assert "3 DataLoader workers per GPU" in text and "a stated 250 images/s per core" in text
    assert "750 images/s per GPU" in text
    assert "Decoding dominates: 4 of 4 runs" in text
    fast = plan.plan(profile, decode_images_per_s=10_000)
    assert "GPU compute dominates: every run's GPU rate" in fast and " L " not in fast
    # one decode-bound run among GPU-bound ones: named, but the GPU dominates the hours
    # 500/core: 4,000 images/s, ResNet-18's 7,660 is above; ViT-B/32's augmentation (1.3x) brings
    # its loader to 3,077, below its 3,760
    mixed = plan.plan(profile, decode_images_per_s=500)
    assert "GPU compute dominates: 2 of 4 runs (paper-resnet18-imp-s0, paper-vit_b_32-imp-s0;" in mixed
    assert "the estimate rests on the GPU throughput" in mixed


def test_plan_cli_takes_a_measured_decode_rate(capsys):
    from sparsevis.cli import main

    assert main(["plan", "--profile", "paper", "--decode-rate", "150"]) == 0
    out = capsys.readouterr().out
    # 8 workers x 150: 1,200 images/s per GPU, stated, not assumed; decoding dominates and says so
    assert "a stated 150 images/s per core (--decode-rate): 1,200 images/s per GPU" in out
    assert "an assumed 200" not in out
    assert "the estimate rests on the decode rate, a stated 150 images/s per core" in out
    assert main(["plan", "--profile", "paper"]) == 0
    assert "an assumed 200 images/s per core" in capsys.readouterr().out
    for bad in ("0", "-3", "fast", "nan", "inf"):
        with pytest.raises(SystemExit) as e:
            main(["plan", "--profile", "paper", "--decode-rate", bad])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert f"argument --decode-rate: {bad!r} is not a rate; expected images/s per core" in err


def test_plan_names_the_gpu_assumption_when_the_gpu_dominates():
    text = plan.plan(get_profile("paper"), decode_images_per_s=10_000)
    assert ("GPU compute dominates: every run's GPU rate is below what the loader decodes, so the estimate "
            "rests on the GPU throughput, taken from RTX 3090") in text
    measured = plan.plan(get_profile("paper"), decode_images_per_s=10_000, throughput={"resnet50": 3000})
    assert "rests on the GPU throughput, measured for resnet50 (throughput=), else taken from" in measured


def test_plan_follows_each_recipes_data_pipeline():
    """Swin-V2-T's recipe trains and evaluates on 256 px crops with heavier augmentation: the
    GPU rate is the table's 224 px rate scaled by the pixels, the decode rate divided by the
    recipe's augmentation cost; under the literal recipe it is 224 px and the plain crop."""
    a100 = plan.GPU_SPEEDUP["a100"]
    swin = {name: next(p for p in plan.plan_runs(get_profile(name)) if p.arch.endswith("swin_v2_t"))
            for name in ("paper", "paper-sgd")}
    assert swin["paper"].gpu_images_per_s == pytest.approx(plan.TRAIN_IMAGES_PER_S["swin_v2_t"] * a100
                                                           * (224 / 256) ** 2)
    assert swin["paper"].loader_images_per_s == pytest.approx(8 * 200 / plan.AUGMENT_COST["swin_v2_t"])
    assert swin["paper-sgd"].gpu_images_per_s == pytest.approx(plan.TRAIN_IMAGES_PER_S["swin_v2_t"] * a100)
    assert swin["paper-sgd"].loader_images_per_s == 8 * 200
    vit = next(p for p in plan.plan_runs(get_profile("paper")) if p.arch.endswith("vit_b_32"))
    assert vit.loader_images_per_s == pytest.approx(8 * 200 / plan.AUGMENT_COST["vit_b_32"])
    assert "recipe swin_v2_t costs 1.9x, vit_b_32 costs 1.3x as much per image" in plan.plan(get_profile("paper"))


def test_plan_shows_each_runs_recipe():
    for name, expected in (("paper", ["paper-sgd", "paper-sgd", "swin_v2_t", "vit_b_32"]),
                           ("paper-sgd", ["paper-sgd"] * 4)):
        profile = get_profile(name)
        assert [p.recipe for p in plan.plan_runs(profile)] == expected
        assert " recipe " in plan.plan(profile)
    assert plan.plan_runs(get_profile("paper"), [_run()])[0].recipe == "custom"


def test_measure_train_throughput_cpu():
    ips = plan.measure_train_throughput("timm/sv_resnet_s", device="cpu", batch_size=2, steps=1,
                                         warmup=1, image_size=32)
    assert ips > 0


def test_plan_follows_study_sizes_of_the_profile():
    from sparsevis.config import Profile

    base = get_profile("paper")
    full = Profile("p", base.runs, n_images=None)
    forwards, decoded, n = plan._study_work(full)
    assert n == {"interpretability": plan.INTERPRETABILITY_IMAGES, "discovery": 5011 + 11540 + 19817,
                 "alignment": plan.ALIGNMENT_IMAGES}
    protocol = Profile("p", base.runs, n_images=100,
                       studies={"paper": {"discovery": {"n_images": None}, "alignment": {"n_images": None}}})
    assert plan._study_work(protocol)[2] == {**n, "interpretability": 100}
    assert plan._study_work(protocol)[0] < forwards
    small = plan.plan_runs(Profile("p", base.runs[:1], n_images=10))[0]
    big = plan.plan_runs(Profile("p", base.runs[:1], n_images=None))[0]
    assert small.gpu_hours_studies < big.gpu_hours_studies
    assert small.gpu_hours_prune == big.gpu_hours_prune


def test_paper_profiles_use_each_architectures_recipe():
    from sparsevis import recipes
    from sparsevis.store import series_key

    default, sgd, budget = (get_profile(n) for n in ("paper", "paper-sgd", "paper-budget"))
    by_arch = {r.arch.split("/")[-1]: r for r in default.runs}
    assert {a: (r.train.recipe, r.train.optimizer, r.train.epochs) for a, r in by_arch.items()} == {
        "resnet18": ("paper-sgd", "sgd", 90), "resnet50": ("paper-sgd", "sgd", 90),
        "swin_v2_t": ("swin_v2_t", "adamw", 300), "vit_b_32": ("vit_b_32", "adamw", 300)}
    assert all(r.train == r.retrain for r in default.runs)   # LRR: the full schedule again
    # the literal recipe: SGD 0.1, StepLR every 30 epochs for all, 300 epochs for ViT-B/32
    assert {(r.arch, r.retrain.recipe, r.retrain.lr, r.retrain.schedule, r.retrain.epochs) for r in sgd.runs} == {
        ("torchvision/resnet18", "paper-sgd", 0.1, "step", 90), ("torchvision/resnet50", "paper-sgd", 0.1, "step", 90),
        ("torchvision/swin_v2_t", "paper-sgd", 0.1, "step", 90),
        ("torchvision/vit_b_32", "paper-sgd", 0.1, "step", 300)}
    # ResNets: the same recipe, so the same series; ViT/Swin: another series, named by its label
    keys = {p.name: {r.arch: (series_key(r), r.label) for r in p.runs} for p in (default, sgd)}
    for arch in ("torchvision/resnet18", "torchvision/resnet50"):
        assert keys["paper"][arch] == keys["paper-sgd"][arch]
    for arch in ("torchvision/swin_v2_t", "torchvision/vit_b_32"):
        assert keys["paper"][arch][0] != keys["paper-sgd"][arch][0]
        assert keys["paper-sgd"][arch][1].endswith("-imp-paper-sgd-s0")
        assert "sgd" not in keys["paper"][arch][1]
    # the recipe is in the series' record
    assert default.runs[3].record()["train"]["recipe"] == "vit_b_32"
    # budget: the recipe's optimizer and regularisation, 5 epochs of cosine from a tenth of its lr
    b = {r.arch.split("/")[-1]: r.retrain for r in budget.runs}
    assert all(r.train is None and r.weights == "IMAGENET1K_V1" for r in budget.runs)
    for arch, cfg in b.items():
        ref = recipes.for_arch(arch).train_config()
        assert (cfg.recipe, cfg.optimizer, cfg.weight_decay, cfg.label_smoothing, cfg.mixup_alpha) == (
            ref.recipe, ref.optimizer, ref.weight_decay, ref.label_smoothing, ref.mixup_alpha)
        assert (cfg.epochs, cfg.schedule, cfg.ema_decay) == (5, "cosine", 0.0)
        assert cfg.lr == pytest.approx(ref.lr / 10)
        assert cfg.warmup_epochs == (1 if ref.warmup_epochs else 0)
