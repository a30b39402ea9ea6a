"""Paper-track study stages on tiny VOC2007 / VOC2012 / COCO20k fixtures of mixed image sizes:
interpretability against VOC2012 palette masks with void excluded, and LOST over the three
detection sets, streamed from disk and batched by padded size.

The prune run is the paper track's code path with no training (zero epochs: a random-init
timm ``sv_resnet_s``, then one 50 % magnitude prune), so its two checkpoints cost seconds. Its
stride of 8 gives the 40-56 px fixture images grids of 5-7 cells a side, where LOST has
something to find (ResNet-18's stride of 32 would leave 2 x 2 grids).
"""
from __future__ import annotations

import functools
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from sparsevis import attribution, config, metrics, models, results, runner, studies, tracks
from sparsevis.config import PruneRun, TrainConfig, get_profile
from sparsevis.data import coco, imagenet16, mvh, voc
from sparsevis.discovery import boxes_to_pixels, lost, pad_to_multiple
from sparsevis.features import extract
from sparsevis.plotting import example_order
from sparsevis.store import run_dir
from sparsevis.studies import discovery as discovery_study
from sparsevis.studies import interpretability as interpretability_study
from sparsevis.tracks import paper as paper_track

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures import make_coco20k, make_imagenet, make_voc  # noqa: E402

UNTRAINED = TrainConfig(epochs=0, lr=0.01, batch_size=4, amp=False)
RUN = PruneRun("paper", "timm/sv_resnet_s", "imp", rate=0.5, iterations=1, train=UNTRAINED,
               retrain=UNTRAINED)


@pytest.fixture
def data(tmp_path, monkeypatch):
    """VOC2007, VOC2012, COCO20k and ImageNet fixtures under one data root, and the paper
    profile's study settings with sizes that fit them (IG cut to two steps)."""
    root = tmp_path / "data"
    fx = {"voc07": make_voc(root, "2007"), "voc12": make_voc(root, "2012", seed=1),
          "coco": make_coco20k(root), "imagenet": make_imagenet(root, n_classes=3, n_train=2, n_val=1)}
    monkeypatch.setenv("SPARSEVIS_DATA_DIR", str(root))
    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(tracks.get("paper"), "expected_classes", None)   # the fixture has 3 classes
    monkeypatch.setattr(coco, "COCO20k", functools.partial(coco.COCO20k, expected_count=None))
    studies_cfg = {"paper": {"interpretability": {"method_params": {"ig_smoothgrad": {"n_steps": 2}}}}}
    monkeypatch.setitem(config.PROFILES, "paper", replace(get_profile("paper"), runs=(RUN,), n_images=None,
                                                          n_boot=20, studies=studies_cfg))
    paper_track._folder.cache_clear()
    yield fx
    paper_track._folder.cache_clear()


@pytest.fixture
def series(data):
    """The paper-track prune run (the studies never start paper-track training themselves)."""
    return runner.run_prune(RUN, device="cpu")


def _resized_labels(fx, image_id: str) -> np.ndarray:
    """The fixture's class indices resized as the study resizes them (nearest neighbour)."""
    size = (paper_track.INPUT_SIZE,) * 2
    return np.array(Image.fromarray(fx.labels[image_id]).resize(size, Image.Resampling.NEAREST))


# ----------------------------------------------------------------------------- interpretability
def test_interpretability_excludes_void(data, series, monkeypatch):
    """Maps with 10x the relevance on void pixels (the object borders) and 2x on the objects:
    every metric must score the valid pixels only; counting void as foreground, or as
    background, gives other values."""
    fx = data["voc12"]
    ids = fx.seg_splits["val"]
    labels = {i: _resized_labels(fx, i) for i in ids}
    fg = {i: (labels[i] >= 1) & (labels[i] <= 20) for i in ids}

    def void_heavy(method, model, images, target=None, **kw):
        return torch.stack([torch.from_numpy(1.0 + fg[i] + 9.0 * (labels[i] == voc.VOID)).float() for i in ids])

    monkeypatch.setattr(attribution, "attribute", void_heavy)
    out = studies.run_study("interpretability", RUN, "paper", device="cpu")
    rows = pd.read_csv(out / "results.csv")
    assert set(rows["dataset"]) == {"voc12-seg-val"} and set(rows["iteration"]) == {0, 1}
    assert "accuracy" not in set(rows["metric"])            # VOC classes are not the model's
    assert (rows["n"] == len(ids)).all()

    void = {i: labels[i] == voc.VOID for i in ids}
    assert all(void[i].any() and fg[i].any() for i in ids)
    # over the valid pixels objects carry 2, background 1: RMA = 2|G| / (2|G| + |valid bg|),
    # and the |G| top-ranked valid pixels are exactly the objects (RRA 1)
    bg = {i: (~void[i] & ~fg[i]).sum() for i in ids}
    expected = np.mean([2 * fg[i].sum() / (2 * fg[i].sum() + bg[i]) for i in ids])
    void_as_fg = np.mean([(2 * fg[i].sum() + 10 * void[i].sum()) / (2 * fg[i].sum() + bg[i] + 10 * void[i].sum())
                          for i in ids])
    void_as_bg = np.mean([2 * fg[i].sum() / (2 * fg[i].sum() + bg[i] + 10 * void[i].sum()) for i in ids])
    by = rows.set_index(["iteration", "method", "metric"])["value"]
    for it in (0, 1):
        for method in set(rows["method"]):
            rma = by[(it, method, "relevance_mass_accuracy")]
            assert rma == pytest.approx(expected, rel=1e-5)
            assert abs(rma - void_as_fg) > 0.05 and abs(rma - void_as_bg) > 0.01
            assert by[(it, method, "relevance_rank_accuracy")] == pytest.approx(1.0)
            assert by[(it, method, "degenerate_maps")] == 0
            assert by[(it, method, "pointing_game")] == 1.0   # the void maximum is not a miss
    saved = torch.load(out / "images.pt", weights_only=False)
    assert saved["ids"] == ids and saved["display"].dtype == torch.uint8
    assert saved["display"].shape == (len(ids), 3, 224, 224)
    assert torch.equal(saved["masks"], torch.from_numpy(np.stack([fg[i] for i in ids])))


def test_interpretability_runs_the_attribution_methods(data, series):
    out = studies.run_study("interpretability", RUN, "paper", device="cpu")
    rows = pd.read_csv(out / "results.csv")
    methods = interpretability_study.methods_for(models.create(RUN.arch))
    per_map = ("relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game", "degenerate_maps")
    assert len(rows) == 2 * len(methods) * len(per_map) and set(rows["metric"]) == set(per_map)
    # an untrained model's Grad-CAM can be flat (degenerate): its RMA and RRA are undefined, so
    # those means are over fewer images (their n says how many), and the share of flat maps is
    # reported beside them over every image
    share = rows[rows["metric"] == "degenerate_maps"]
    assert (share["n"] == 2).all() and share["value"].between(0, 1).all()
    undefined = rows["metric"].isin(per_map[:2]) & (rows["n"] < 2)
    assert set(rows.loc[undefined, "metric"]) <= set(per_map[:2])
    assert (rows.loc[rows["metric"] == "pointing_game", "n"] == 2).all()
    assert {m.split("[")[0] for m in rows["method"]} == set(methods)
    ex = torch.load(out / "iter-01.examples.pt", weights_only=False)
    assert all(m.shape == (2, 224, 224) for m in ex["maps"].values())


def test_a_study_needs_its_own_data_only(data, series, tmp_path):
    """Once the checkpoints exist, the studies find and use them without ImageNet."""
    import shutil

    shutil.rmtree(tmp_path / "data" / "imagenet")
    paper_track._folder.cache_clear()
    out = studies.run_study("interpretability", RUN, "paper", device="cpu")
    assert (out / "DONE").exists() and set(pd.read_csv(out / "results.csv")["iteration"]) == {0, 1}


# ----------------------------------------------------------------------------- discovery
def test_discovery_rows_per_dataset_and_resume(data, series):
    out = studies.run_study("discovery", RUN, "paper", device="cpu")
    rows = pd.read_csv(out / "results.csv")
    sizes = {"voc07-trainval": len(data["voc07"].ids), "voc12-trainval": len(data["voc12"].ids),
             "coco20k": len(data["coco"].ids)}
    assert set(rows["dataset"]) == set(paper_track.DISCOVERY_DATASETS) == set(sizes)
    per = rows.groupby(["iteration", "dataset", "method"]).size()
    assert (per == 1).all() and len(per) == 2 * 3 * 3
    assert (rows["n"] == rows["dataset"].map(sizes)).all()
    # every row names the feature stride and the precision it was computed in
    assert (rows["backbone_stride"] == 8).all() and (rows["precision"] == "fp32").all()
    # the whole-image box finds the image-covering VOC object (and nothing more in COCO's fixture)
    full = rows[rows["method"] == "full-image (baseline)"].set_index(["iteration", "dataset"])["value"]
    assert full[(0, "voc07-trainval")] > 0

    # examples: each dataset's first images, lists of mixed sizes, with LOST's details per image
    imgs = torch.load(out / "images.pt", weights_only=False)
    ex = torch.load(out / "iter-00.examples.pt", weights_only=False)
    n_ex = sum(min(tracks.N_EXAMPLES, n) for n in sizes.values())
    assert imgs["datasets"] == [d for d in paper_track.DISCOVERY_DATASETS for _ in range(min(tracks.N_EXAMPLES, sizes[d]))]
    assert len(imgs["display"]) == len(imgs["boxes"]) == len(ex["lost_boxes"]) == len(ex["grid"]) == n_ex
    assert len({tuple(d.shape) for d in imgs["display"]}) > 1
    for d, g, sm, deg in zip(imgs["display"], ex["grid"], ex["score_map"], ex["degree"]):
        assert d.dtype == torch.uint8 and tuple(sm.shape) == g and deg.numel() == g[0] * g[1]
        assert g == (-(-d.shape[1] // ex["stride"]), -(-d.shape[2] // ex["stride"]))
    assert imgs["ids"][:2] == voc.select_images(data["voc07"].ids, None)[:2]

    # a killed study resumes: the missing iteration is recomputed, the rest kept
    (out / "DONE").unlink()
    kept = (out / "iter-00.csv").stat().st_mtime_ns
    (out / "iter-01.csv").unlink()
    assert studies.run_study("discovery", RUN, "paper", device="cpu") == out
    assert (out / "iter-00.csv").stat().st_mtime_ns == kept
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), rows)


def test_dilated_resnet50_discovery_and_the_published_comparison(data, monkeypatch):
    """The paper profile's option: LOST on a ResNet-50 with its last stage dilated (stride 16),
    as LOST's paper does; its dense row sits next to LOST's published numbers."""
    run = PruneRun("paper", "torchvision/resnet50", "imp", rate=0.5, iterations=1, train=UNTRAINED,
                   retrain=UNTRAINED)
    assert get_profile("paper-budget").studies["paper"]["discovery"]["dilate_last_stage"] is True
    monkeypatch.setitem(config.PROFILES, "paper", replace(
        get_profile("paper"), runs=(run,), studies={"paper": {"discovery": {"dilate_last_stage": True}}}))
    runner.run_prune(run, device="cpu")
    out = studies.run_study("discovery", run, "paper", device="cpu")
    rows = results.read(out / "results.csv")
    assert (rows["backbone_stride"] == 16).all() and (rows["precision"] == "fp32").all()
    assert torch.load(out / "iter-00.examples.pt", weights_only=False)["stride"] == 16
    prune_rows = results.read(run_dir(run) / "results.csv")
    assert (prune_rows["precision"] == "fp32").all()
    table = discovery_study.published_comparison(pd.concat([rows, prune_rows]))
    assert sorted(table["dataset"]) == sorted(paper_track.DISCOVERY_DATASETS)
    assert dict(zip(table["dataset"], table["published"])) == {"voc07-trainval": 33.5, "voc12-trainval": 39.1,
                                                               "coco20k": 25.5}
    dense = rows[(rows["iteration"] == 0) & (rows["method"] == "lost")].set_index("dataset")["value"]
    assert dict(zip(table["dataset"], table["measured"])) == pytest.approx((100 * dense).to_dict())


def test_bucketed_streamed_lost_equals_per_image_lost(data):
    torch.manual_seed(0)
    model = models.create(RUN.arch, num_classes=3).eval()
    stride = models.surface(model).stride
    sets = tracks.get("paper").discovery_sets(RUN, None)
    assert [s.dataset for s in sets] == list(paper_track.DISCOVERY_DATASETS)
    mixed = False
    for data_set, workers in zip(sets, (0, 2, 0)):
        batches = discovery_study.padded_size_batches(data_set.sizes, stride, batch_size=3)
        assert sorted(i for b in batches for i in b) == list(range(len(data_set.items)))
        assert max(len(b) for b in batches) > 1
        mixed |= any(len({data_set.sizes[i] for i in b}) > 1 for b in batches)
        res = discovery_study.discover(model, data_set, device="cpu", batch_size=3, workers=workers)
        for i in range(len(data_set.items)):
            sample = data_set.items[i]
            x, hw = pad_to_multiple(sample.image[None], stride)
            # one image at a time through the same inference path (channels-last on the CPU)
            feats = extract(model, x, lambda t: discovery_study.patch_features(model, t), device="cpu", progress=False)
            cells = lost(feats, models.surface(model).grid(x.shape[-2:]))
            expected = boxes_to_pixels(cells, stride, hw)
            assert torch.equal(res.boxes["lost"][i:i + 1], expected), (data_set.dataset, i)
            assert torch.equal(res.gt[i], sample.boxes)
            assert (res.boxes["full-image (baseline)"][i] == torch.tensor([0, 0, hw[1], hw[0]])).all()
        hits = metrics.corloc_hits(res.boxes["lost"], res.gt)
        assert hits.shape == (len(data_set.items),)
    assert mixed   # some batch held images of different sizes that pad alike


def test_discovery_subset_is_fixed_sorted_and_seeded(data):
    sets = {s.dataset: s for s in tracks.get("paper").discovery_sets(RUN, 4)}
    ids = [s.image_id for s in sets["voc12-trainval"].items]
    assert ids == voc.select_images(data["voc12"].ids, 4, tracks.STUDY_SEED)
    coco_ids = [s.image_id for s in sets["coco20k"].items]
    assert coco_ids == voc.select_images([str(i) for i in data["coco"].ids], 4, tracks.STUDY_SEED)
    assert [tuple(s.image.shape[1:]) for s in sets["coco20k"].items] == sets["coco20k"].sizes


@pytest.mark.parametrize("stage, archive", [("discovery", "VOCtrainval_06-Nov-2007.tar"),
                                            ("interpretability", "VOCtrainval_11-May-2012.tar")])
def test_missing_voc_says_what_to_download(data, stage, archive):
    import shutil

    shutil.rmtree(data["voc07"].root / "VOCdevkit")
    with pytest.raises(FileNotFoundError, match=archive) as e:
        studies.run_study(stage, RUN, "paper", device="cpu")
    assert str(data["voc07"].root / "VOCdevkit") in str(e.value)
    assert not run_dir(RUN).exists()      # reported before the prune stage runs


def _execute(notebook: Path, parameters: dict) -> None:
    """Run a notebook's code cells in this process (where the fixtures' patches hold), with
    ``parameters`` set after its parameters cell, as papermill would inject them."""
    nbformat = pytest.importorskip("nbformat")
    namespace: dict = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, str(notebook), "exec"), namespace)
            if "parameters" in cell.metadata.get("tags", []):
                namespace.update(parameters)


def make_mvh(root: Path, n_images: int = 4) -> Path:
    """All 17 model-vs-human datasets in the release's layout (images 224 px, noise), each with
    ``n_images`` stimuli and two observers' raw-data CSVs: ImageFolder-style edge, silhouette and
    cue-conflict (a silhouette per edge image), ``dnn/session-1`` files named
    ``<trial>_<exp>_dnn_<condition>_<category>_00_<image>`` for the other 14."""
    base = root / "model-vs-human"
    rng = np.random.default_rng(0)
    header = "subj,session,trial,rt,object_response,category,condition,imagename\n"
    for dataset in mvh.DATASETS:
        trials = []
        for k in range(n_images):
            category = imagenet16.CATEGORIES[k]
            if dataset in mvh.TEXTURE_SHAPE_DATASETS:
                condition = "0"
                name = (f"{category}1-{imagenet16.CATEGORIES[k + 1]}2.png" if dataset == "cue-conflict"
                        else f"{category}1.png")
                path = base / "datasets" / dataset / category / name
            else:
                condition = (mvh.CONDITIONS[dataset] or ("0",))[k % len(mvh.CONDITIONS[dataset] or ("0",))]
                name = f"{dataset}-{k}.png"
                path = base / "datasets" / dataset / "dnn" / "session-1" / f"{k + 1:04d}_x_dnn_{condition}_{category}_00_{name}"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
            if dataset == "silhouette":   # a dark object on white
                pixels[:] = 255
                pixels[40 + 10 * k:150, 30:190] = 0
            Image.fromarray(pixels).save(path)
            trials.append((k + 1, category, condition, f"{k + 1:04d}_x_s01_{condition}_{category}_00_{name}"))
        for s, answer in ((1, lambda c, k: c), (2, lambda c, k: imagenet16.CATEGORIES[(k + 5) % 16])):
            csv = base / "raw-data" / dataset / f"{dataset}_subject-0{s}_session_1.csv"
            csv.parent.mkdir(parents=True, exist_ok=True)
            csv.write_text(header + "".join(f"subject-0{s},1,{t},0.5,{answer(c, t)},{c},{cond},{im}\n"
                                            for t, c, cond, im in trials))
    return base


def make_imagenet_1k(root: Path) -> None:
    """ImageNet's layout with 1,000 class folders (one tiny train and val image each): a model
    trained on it has the 1,000 outputs model-vs-human's 16-way decisions read."""
    rng = np.random.default_rng(0)
    for k in range(1000):
        for split in ("train", "val"):
            path = root / "imagenet" / split / f"n{k:08d}" / f"{split}_{k}.JPEG"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)


NOTEBOOKS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_every_notebook_runs_on_the_paper_fixtures(data, monkeypatch, tmp_path):
    """``papermill notebooks/<name>.ipynb -p profile paper`` for every chapter, on the real-format
    fixtures of every paper-track dataset (run in this process, where the fixtures' patches
    hold; the studies the first chapters compute, the later ones find): each runs to its end,
    and the discovery and interpretability chapters draw the paper track."""
    import shutil

    import matplotlib

    matplotlib.use("Agg")
    figures = tmp_path / "figures"
    monkeypatch.setenv("SPARSEVIS_FIGURES_DIR", str(figures))
    shutil.rmtree(tmp_path / "data" / "imagenet")
    make_imagenet_1k(tmp_path / "data")
    make_mvh(tmp_path / "data")
    paper_track._folder.cache_clear()
    runner.run_prune(RUN, device="cpu")
    root = Path(__file__).resolve().parents[1] / "notebooks"
    assert len(NOTEBOOKS) == 6, NOTEBOOKS
    # the explorer shows the paper-track series (by default it prefers MobileNetV2 on the edge
    # stimuli) and chooses among n_images evaluation images (the VOC2012 fixture has 2); the
    # sweet-spot analysis needs 100 bootstrap replicates (the fixture profile has 20)
    extra = {"explorer": {"run": RUN.label, "n_images": 2}, "sweet_spots": {"n_boot": 100}}
    failed, seconds = {}, {}
    for name in NOTEBOOKS:
        start = time.perf_counter()
        try:
            _execute(root / f"{name}.ipynb", {"profile": "paper", "device": "cpu", **extra.get(name, {})})
        except Exception as e:   # every notebook runs; the failures are reported together
            failed[name] = f"{type(e).__name__}: {e}"
        seconds[name] = round(time.perf_counter() - start, 1)
    print("notebook seconds:", seconds)
    assert not failed, failed
    drawn = {p.stem for p in figures.iterdir() if p.suffix in (".png", ".jpg")}
    for stem in ("discovery-corloc-paper", f"discovery-boxes-{RUN.label}", f"discovery-maps-{RUN.label}",
                 "interpretability-curves-paper", f"interpretability-grid-{RUN.label}-gradcam"):
        assert stem in drawn, sorted(drawn)


def test_example_order_takes_every_dataset_in_turn():
    assert example_order(["voc07"] * 3 + ["voc12"] * 2 + ["coco"] * 3, 5) == [0, 3, 5, 1, 4]
    assert example_order(["edge"] * 4) == [0, 1, 2, 3]
