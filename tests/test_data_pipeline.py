"""Each recipe's data pipeline as the paper track applies it: the train and eval transforms,
the repeated-augmentation sampler (against hand-computed index lists), and what a run records."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from sparsevis import recipes
from sparsevis import train as train_mod
from sparsevis.config import PruneRun, TrainConfig, get_profile
from sparsevis.data import transforms
from sparsevis.data.sampler import RepeatedAugmentationSampler
from sparsevis.tracks import paper as paper_track
from tests.fixtures import make_imagenet

IMG = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))


def _names(compose) -> list[str]:
    return [type(t).__name__ for t in compose.transforms]


# ----------------------------------------------------------------------------- transforms
def test_each_recipes_train_transform():
    tail = ["ToTensor", "Normalize"]
    sgd, vit, swin = (recipes.get(n).data.train_transform() for n in ("paper-sgd", "vit_b_32", "swin_v2_t"))
    # the protocol's (and paper-sgd's): RandomResizedCrop 224 + flip, nothing else
    assert _names(sgd) == ["RandomResizedCrop", "RandomHorizontalFlip"] + tail
    assert _names(vit) == ["RandomResizedCrop", "RandomHorizontalFlip", "AutoAugment"] + tail
    assert _names(swin) == ["RandomResizedCrop", "RandomHorizontalFlip", "TrivialAugmentWide"] + tail + [
        "RandomErasing"]
    assert vit.transforms[2].policy == T.AutoAugmentPolicy.IMAGENET
    assert swin.transforms[-1].p == 0.25
    for compose, size, mode in ((sgd, 224, "bilinear"), (vit, 224, "bilinear"), (swin, 256, "bicubic")):
        crop = compose.transforms[0]
        assert crop.size == (size, size) and crop.interpolation == T.InterpolationMode(mode)
        torch.manual_seed(0)
        assert compose(IMG).shape == (3, size, size)
    assert swin.transforms[2].interpolation == T.InterpolationMode.BICUBIC


def test_each_recipes_eval_transform():
    for name, resize, crop, mode in (("paper-sgd", 256, 224, "bilinear"), ("vit_b_32", 256, 224, "bilinear"),
                                     ("swin_v2_t", 256, 256, "bicubic")):
        ev = recipes.get(name).data.eval_transform()
        assert _names(ev) == ["Resize", "CenterCrop", "ToTensor", "Normalize"]
        assert ev.transforms[0].size == resize and ev.transforms[0].interpolation == T.InterpolationMode(mode)
        assert ev.transforms[1].size == (crop, crop)
        assert ev(IMG).shape == (3, crop, crop)


def test_auto_augment_changes_images():
    """Under one seed, the crop and flip draw the same with and without auto-augment (they come
    first): the outputs differ only where AutoAugment / TrivialAugmentWide changed the image."""
    for policy in ("imagenet", "ta_wide"):
        differ = 0
        for seed in range(20):
            torch.manual_seed(seed)
            plain = transforms.train_transform(64)(IMG)
            torch.manual_seed(seed)
            augmented = transforms.train_transform(64, auto_augment=policy)(IMG)
            differ += not torch.equal(plain, augmented)
        assert differ >= 10, (policy, differ)


def test_random_erasing_erases_a_quarter_of_the_images():
    """RandomErasing(0.25) writes a rectangle of exact zeros (in all three channels) into about a
    quarter of the outputs; a normalised photograph has no such pixel. Swin-V2-T's pipeline at
    64 px (the same steps, faster)."""
    d = recipes.get("swin_v2_t").data
    small = IMG.resize((80, 60))
    swin = transforms.train_transform(64, d.interpolation, d.auto_augment, d.random_erase)
    torch.manual_seed(0)
    n = 400
    erased = sum(int((swin(small) == 0).all(0).sum()) > 20 for _ in range(n))
    # binomial(400, 0.25): mean 100, sd 8.7
    assert 70 <= erased <= 130, erased
    vit = transforms.train_transform(64, auto_augment="imagenet")
    assert not any((vit(small) == 0).all(0).any() for _ in range(50))


def test_data_recipe_refuses_bad_settings():
    for kw, match in ((dict(interpolation="lanczos"), "interpolation='lanczos'"),
                      (dict(auto_augment="ra"), "auto_augment='ra'"),
                      (dict(random_erase=1.5), "random_erase=1.5"),
                      (dict(train_crop_size=0), "train_crop_size=0"),
                      (dict(ra_reps=0), "ra_reps=0"),
                      (dict(val_resize_size=224, val_crop_size=256), "val_crop_size=256 is larger")):
        with pytest.raises(ValueError, match=match):
            recipes.DataRecipe(**kw)
    with pytest.raises(ValueError, match="auto_augment='ra'"):
        transforms.train_transform(auto_augment="ra")
    # the AutoAugment names are torchvision's policies
    assert set(transforms.AUTO_AUGMENT) == {p.value for p in T.AutoAugmentPolicy} | {"ta_wide"}


def test_data_recipe_of_the_paper_profiles():
    def data(profile, arch):
        run = next(r for r in get_profile(profile).runs if r.arch.endswith(arch))
        return recipes.data_recipe(run.train, run.retrain)

    swin = recipes.get("swin_v2_t").data
    assert data("paper", "swin_v2_t") == swin and swin.train_crop_size == 256
    assert data("paper-budget", "swin_v2_t") == swin          # train None, retrain with the recipe
    assert data("paper", "vit_b_32") == recipes.get("vit_b_32").data
    # the literal recipe keeps the protocol's pipeline for every architecture
    assert data("paper-sgd", "swin_v2_t") == data("paper", "resnet50") == recipes.DataRecipe()
    assert recipes.data_recipe(TrainConfig(epochs=1, lr=0.1), None) == recipes.DataRecipe()
    assert recipes.data_recipe(None, None) == recipes.DataRecipe()
    with pytest.raises(ValueError, match="different data pipelines"):
        recipes.data_recipe(recipes.get("swin_v2_t").train_config(), TrainConfig(epochs=1, lr=0.1))


# ----------------------------------------------------------------------------- sampler
def _reference(n: int, world: int, rank: int, reps: int, order: list[int]) -> list[int]:
    """torchvision's reference, spelt out: repeat each index reps times, pad to a multiple of
    the world size, deal out, keep the first (n // 256 * 256) // world."""
    repeated = [i for i in order for _ in range(reps)]
    total = math.ceil(n * reps / world) * world
    repeated += repeated[:total - len(repeated)]
    return repeated[rank:total:world][:(n // 256 * 256) // world]


def _perm(n: int, seed: int) -> list[int]:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()


def test_repeated_augmentation_hand_computed_two_and_three_replicas():
    n, reps, seed, epoch = 512, 3, 7, 2
    p = _perm(n, seed + epoch)   # the epoch's order: seeded by seed + epoch

    def ranks(world):
        out = []
        for r in range(world):
            s = RepeatedAugmentationSampler(n, world, r, reps, seed=seed)
            s.set_epoch(epoch)
            out.append(list(s))
        return out

    two = ranks(2)
    # p0 p0 p0 p1 p1 p1 p2 ... dealt to ranks 0 1 0 1 ...
    assert two[0][:6] == [p[0], p[0], p[1], p[2], p[2], p[3]]
    assert two[1][:6] == [p[0], p[1], p[1], p[2], p[3], p[3]]
    assert [len(r) for r in two] == [256, 256]   # 512 images, 2 ranks: a plain epoch's 256 steps each
    # each image's copies go to both ranks: 256 positions over 2 ranks cover p[0..170]
    assert set(two[0]) | set(two[1]) == set(p[:171])
    three = ranks(3)
    # three replicas and three repetitions: every rank sees the same images in the same order
    assert three[0] == three[1] == three[2] == p[:170]


@pytest.mark.parametrize("n", [256, 257, 300, 513, 777])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("reps", [1, 3, 4])
def test_repeated_augmentation_matches_the_reference(n, world, reps):
    for rank in range(world):
        s = RepeatedAugmentationSampler(n, world, rank, reps, seed=1)
        s.set_epoch(5)
        assert list(s) == _reference(n, world, rank, reps, _perm(n, 6))
        assert len(s) == (n // 256 * 256) // world


def test_repeated_augmentation_needs_enough_images():
    with pytest.raises(ValueError, match="100 images give no image per process"):
        RepeatedAugmentationSampler(100, 2, 0, 3)
    with pytest.raises(ValueError, match="rank=2"):
        RepeatedAugmentationSampler(512, 2, 2, 3)


class _Indices(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.tensor(i), 0


def test_loader_repeats_only_under_ddp(monkeypatch):
    """LoaderData takes the repeated-augmentation sampler on two processes, a plain shuffle of
    every image on one (torchvision's reference does the same); epoch length follows the sampler."""
    data = train_mod.LoaderData(_Indices(600), num_workers=0, ra_reps=3)
    monkeypatch.setattr(train_mod, "_dist", lambda: (0, 1))
    assert data.sampler_name == "shuffle"
    one = torch.cat([x for x, _ in data.epoch(0, 32, seed=4)]).tolist()
    assert sorted(one) == list(range(600)) and data.n_batches(32) == math.ceil(600 / 32)
    for rank in (0, 1):
        monkeypatch.setattr(train_mod, "_dist", lambda rank=rank: (rank, 2))
        assert data.sampler_name == "repeated-augmentation x3"
        got = torch.cat([x for x, _ in data.epoch(3, 32, seed=4)]).tolist()
        assert got == _reference(600, 2, rank, 3, _perm(600, 4 + 3))
        assert len(got) == 256 and data.n_batches(32) == 8   # 600 -> 512 images per epoch, 256 per rank
    plain = train_mod.LoaderData(_Indices(600), num_workers=0)   # no repetition asked: sharded shuffle
    assert plain.sampler_name == "shuffle" and plain.n_batches(32) == math.ceil(300 / 32)


# ----------------------------------------------------------------------------- the paper track
@pytest.fixture
def imagenet(tmp_path, monkeypatch):
    make_imagenet(tmp_path, n_classes=2, n_train=2, n_val=1)
    monkeypatch.setenv("SPARSEVIS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(paper_track.Paper, "expected_classes", None)
    paper_track._folder.cache_clear()
    yield tmp_path
    paper_track._folder.cache_clear()


def _paper_run(cfg) -> PruneRun:
    return PruneRun("paper", "torchvision/swin_v2_t", "imp", rate=0.5, iterations=1, train=cfg, retrain=cfg)


def test_paper_track_applies_and_records_the_recipes_pipeline(imagenet):
    track = paper_track.Paper()
    swin = track.train_data(_paper_run(recipes.get("swin_v2_t").train_config(epochs=1)))
    assert _names(swin.train.dataset.transform)[2:3] == ["TrivialAugmentWide"]
    x, _ = next(swin.train.epoch(0, 2, seed=0))
    assert x.shape == (2, 3, 256, 256)
    xs = torch.cat([x for x, _ in swin.test.epoch(0, 2, seed=0)])
    assert xs.shape[-2:] == (256, 256)   # the recipe's evaluation: resize 256, centre-crop 256
    assert swin.train.ra_reps == 4
    assert swin.pipeline == {"train_crop_size": 256, "val_resize_size": 256, "val_crop_size": 256,
                             "interpolation": "bicubic", "auto_augment": "ta_wide", "random_erase": 0.25,
                             "ra_sampler": True, "ra_reps": 4, "sampler": "shuffle"}   # one process
    # the literal recipe on the same (cached) folders: the protocol's 224 px pipeline
    sgd = track.train_data(_paper_run(recipes.get("paper-sgd").train_config(epochs=1)))
    assert _names(sgd.train.dataset.transform) == ["RandomResizedCrop", "RandomHorizontalFlip", "ToTensor",
                                                   "Normalize"]
    assert next(sgd.train.epoch(0, 2, seed=0))[0].shape[-2:] == (224, 224)
    assert next(sgd.test.epoch(0, 2, seed=0))[0].shape[-2:] == (224, 224)
    assert sgd.pipeline["auto_augment"] is None and sgd.pipeline["sampler"] == "shuffle"
    assert sgd.digest == swin.digest   # the same images
