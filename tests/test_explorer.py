"""The live explorer (sparsevis.explorer): on the tiny profile's small synthetic ResNet, an update
gives a map at the image size and a box inside the image, and a sparsity between two checkpoints
is reached exactly by pruning the lower checkpoint further; pretrained torchvision models are
pruned one-shot from their weights in torch's cache (random-init stand-ins saved under the file
names torchvision looks for: it checks a file's hash only when it downloads it) and listed as
unavailable, with the file to get, when offline and missing; the widget draws into an
``ipywidgets.Image`` and has no ``Output`` widget; and the explorer notebook completes under
papermill N times in a row (issue 18: it used to hang in nbclient), reaching its first update
with nothing trained.

The run store is the session's (``conftest.session_store``), shared with test_notebooks.py, so
the prune stage runs once per session.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest
import torch

from sparsevis import attribution, explorer, prune, weights
from sparsevis.explorer import Explorer, find_run
from sparsevis.weights import MOBILENET_V2_FILE, checkpoint_path
from tests.conftest import DATA, ROOT, session_store
from tests.test_notebooks import _outputs

pytestmark = pytest.mark.slow   # the first test runs the tiny prune stage (seconds to a minute)

PROFILE = "tiny"
RUN = "synthetic-sv_resnet_s-imp-s0"


@pytest.fixture(scope="module")
def ex(tmp_path_factory):
    store = session_store(tmp_path_factory)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARSEVIS_RUNS_DIR", str(store))
        yield Explorer(PROFILE, RUN, device="cpu", n_images=4)


def test_find_run_by_label_or_arch():
    assert find_run(PROFILE, RUN).label == RUN
    assert find_run(PROFILE, "sv_resnet_s").label == RUN
    assert find_run(PROFILE, "timm/sv_resnet_s").label == RUN
    with pytest.raises(ValueError, match="not a run of profile"):
        find_run(PROFILE, "resnet1000")


def test_update_gives_map_box_and_prediction(ex):
    h, w = ex.images.x.shape[-2:]
    for method in ex.methods:
        out = ex.update(0.3, 1, method)
        assert out["map"].shape == (h, w)
        assert np.isfinite(out["map"]).all() and (out["map"] >= 0).all()
        x1, y1, x2, y2 = out["box"]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        sx1, sy1, sx2, sy2 = out["seed_box"]
        assert 0 <= sx1 < sx2 <= w and 0 <= sy1 < sy2 <= h
        assert out["prediction"] in ex.class_names and 0 <= out["probability"] <= 1
        assert out["image"].shape == (h, w, 3) and out["mask"].shape == (h, w)
        assert out["method"] == method and out["paper"] == attribution.METHODS[method].paper
    fig = ex.figure(out)
    assert len(fig.axes) == 3
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_images_without_labels_or_boxes_are_drawn(ex):
    """VOC on the paper track has neither labels in the model's classes nor boxes."""
    import matplotlib.pyplot as plt

    images = ex.images
    try:
        ex.images = replace(images, labels=None, boxes=None)
        out = ex.update(0.3, 0)
    finally:
        ex.images = images
    assert out["label"] is None and out["correct"] is None and out["gt_boxes"].shape == (0, 4)
    assert "true" not in ex.describe(out) and "correct" not in ex.describe(out)
    fig = ex.figure(out)
    assert "wrong" not in fig._suptitle.get_text() and "true" not in fig.axes[0].get_title()
    plt.close(fig)


def test_between_checkpoints_is_exact_and_cumulative(ex):
    assert len(ex.checkpoints) >= 3
    lo, hi = ex.checkpoints[1], ex.checkpoints[2]
    target = (lo.sparsity + hi.sparsity) / 2
    out = ex.update(target, 0, "gradcam")
    model, ckpt = ex.model_at(target)
    n = sum(i.weight.numel() for i in prune.prunable(model, ckpt.preset))
    assert ckpt.iteration == lo.iteration and out["checkpoint"]["iteration"] == lo.iteration
    assert out["sparsity"] == pytest.approx(round(target * n) / n, abs=1e-12)
    assert abs(out["sparsity"] - target) <= 0.5 / n + 1e-12   # within half a weight of the request
    assert out["extra_pruned"] > 0
    # cumulative: every weight the checkpoint had pruned is still pruned
    base = prune.load(lo.path)
    new_masks, old_masks = prune.mask_state(model), prune.mask_state(base)
    for name, old in old_masks.items():
        assert not (new_masks[name] & ~old).any(), name
    # the cached checkpoint itself is untouched: at its own sparsity the checkpoint is returned
    same, c = ex.model_at(lo.sparsity)
    assert c.iteration == lo.iteration and prune.sparsity(same, "prunable", c.preset) == pytest.approx(lo.sparsity)


def test_checkpoint_choice(ex):
    assert ex.checkpoint_for(0.0).iteration == 0
    for c in ex.checkpoints:
        assert ex.checkpoint_for(c.sparsity).iteration == c.iteration
    assert ex.checkpoint_for(0.99).iteration == ex.checkpoints[-1].iteration
    out = ex.update(0.99, 0, "gradcam")   # beyond the last checkpoint: pruned further
    assert out["sparsity"] == pytest.approx(0.99, abs=1e-4)


def test_bad_arguments(ex):
    with pytest.raises(ValueError, match="sparsity"):
        ex.update(1.0, 0, "gradcam")
    with pytest.raises(ValueError, match="image_index"):
        ex.update(0.1, 99, "gradcam")
    with pytest.raises(ValueError, match="method"):
        ex.update(0.1, 0, "cls_attention")   # a ViT-only method on a ResNet


def test_widget_builds_and_updates(ex):
    ipywidgets = pytest.importorskip("ipywidgets")
    w = ex.widget(runs=[RUN])
    assert isinstance(w, ipywidgets.VBox)
    (_, method_dd), (slider, image) = w.children[0].children, w.children[1].children
    info = w.children[3]
    assert "No retraining" in w.children[2].value
    slider.value = 0.6
    image.value = 2
    method_dd.value = "gradient"
    assert "Error" not in info.value and "60" in info.value


def test_widget_draws_into_an_image_widget_not_output(ex):
    """Issue 18: nothing may be written into an Output widget while a cell runs headless."""
    W = pytest.importorskip("ipywidgets")
    w = ex.widget(runs=[RUN], pretrained=())
    frame = w.children[4]
    assert isinstance(frame, W.Image)
    magic = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff"}[frame.format]   # the bytes are what the format says
    assert bytes(frame.value[:len(magic)]) == magic

    def tree(x):
        yield x
        for c in getattr(x, "children", ()):
            yield from tree(c)
    assert not any(isinstance(x, W.Output) for x in tree(w))
    before = frame.value
    w.children[1].children[0].value = 0.7
    assert frame.value != before and "update" in w.children[3].value


# ------------------------------------------------------------------------ pretrained models
needs_stimuli = pytest.mark.skipif(DATA is None, reason="model-vs-human edge/silhouette stimuli not found")


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    """A TORCH_HOME holding random-init ResNet-50, ViT-B/32 and Swin-V2-T weights under
    torchvision's file names and the real MobileNetV2 file (when fetch-weights placed it);
    offline, so ResNet-18 (not there) is unavailable. True when MobileNetV2's is there."""
    import torchvision

    real_mnv2 = checkpoint_path(MOBILENET_V2_FILE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch")))
        mp.setenv(weights.OFFLINE_ENV, "1")
        for name in ("torchvision/resnet50", "torchvision/vit_b_32", "torchvision/swin_v2_t"):
            w = explorer.pretrained_weights(name)
            w.file.parent.mkdir(parents=True, exist_ok=True)
            torch.save(torchvision.models.get_model(name.split("/")[-1]).state_dict(), w.file)
        if real_mnv2.is_file():
            checkpoint_path(MOBILENET_V2_FILE).symlink_to(real_mnv2)
        yield real_mnv2.is_file()


@pytest.mark.usefixtures("torch_home")
def test_pretrained_availability_offline():
    for name in ("torchvision/resnet50", "torchvision/vit_b_32", "torchvision/swin_v2_t"):
        w = explorer.pretrained_weights(name)
        assert w.cached and w.available and w.note == "" and w.file.parent == checkpoint_path("x").parent
    missing = explorer.pretrained_weights("torchvision/resnet18")
    assert not missing.available and missing.file.name == "resnet18-f37072fd.pth"
    assert missing.file.name in missing.note and missing.url in missing.note and "offline" in missing.note
    with pytest.raises(FileNotFoundError, match="resnet18-f37072fd.pth"):
        Explorer(PROFILE, "torchvision/resnet18", device="cpu")
    with pytest.raises(ValueError, match="not a pretrained explorer model"):
        explorer.pretrained_weights("torchvision/alexnet")


@needs_stimuli
@pytest.mark.parametrize("name", ["torchvision/resnet50", "torchvision/vit_b_32", "torchvision/swin_v2_t",
                                  "torchvision/mobilenet_v2"])
def test_pretrained_model_is_pruned_one_shot(name, torch_home, tmp_path, monkeypatch):
    if name == "torchvision/mobilenet_v2" and not torch_home:
        pytest.skip("MobileNetV2 weights not in torch's cache: python -m sparsevis fetch-weights")
    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(tmp_path / "runs"))
    e = Explorer(PROFILE, name, device="cpu", n_images=2)
    assert e.weights is not None and e.sparsities == [0.0] and e.preview_sparsities()[-1] == 0.9
    dense = e.update(0.0, 0, "gradient")
    out = e.update(0.5, 1, "gradient")
    model, _ = e.model_at(0.5)
    n = sum(i.weight.numel() for i in prune.prunable(model, "all"))
    assert dense["sparsity"] == 0.0 and dense["pretrained"] and "dense pretrained weights" in e.describe(dense)
    assert abs(out["sparsity"] - 0.5) <= 0.5 / n + 1e-12 and out["extra_pruned"] > 0
    assert out["map"].shape == (224, 224) and out["prediction"] in e.class_names
    assert f"on {e.device}" in e.describe(out)
    assert not (tmp_path / "runs").exists(), "a pretrained model trained or ran a prune stage"


@needs_stimuli
def test_widget_lists_unavailable_models(torch_home):
    W = pytest.importorskip("ipywidgets")
    w = explorer.widget(PROFILE, runs=[RUN], pretrained=("torchvision/resnet50", "torchvision/resnet18"),
                        device="cpu", n_images=2)
    model_dd, note, info = w.children[0].children[0], w.children[2], w.children[3]
    assert dict(model_dd.options) == {"torchvision/resnet50 (pretrained)": "torchvision/resnet50",
                                      "torchvision/resnet18 (unavailable)": "torchvision/resnet18",
                                      f"{RUN} (prune run)": RUN}
    assert model_dd.value == "torchvision/resnet50" and "resnet18-f37072fd.pth" in note.value
    assert "update" in info.value and isinstance(w.children[4], W.Image)
    model_dd.value = "torchvision/resnet18"
    assert "FileNotFoundError" in info.value and "resnet18-f37072fd.pth" in info.value


# ------------------------------------------------------------------------ the notebook, N times
N_RUNS = int(os.environ.get("SPARSEVIS_EXPLORER_RUNS", "1"))   # issue 18 asks 20 of 20: set it by hand


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_explorer_notebook_completes_n_of_n(run_store, tmp_path, monkeypatch):
    """The explorer notebook under papermill on the tiny profile, N_RUNS times with a fresh, empty
    run store: every run completes (a hang would stop at the cell timeout) and, when the default
    is a pretrained model, nothing is trained before the widget's first update; prints the time
    from papermill's start (kernel start included) to the end of the widget's cell."""
    import papermill as pm

    pretrained = explorer.default_series(PROFILE) in explorer.PRETRAINED
    done, firsts = 0, []
    for k in range(N_RUNS):
        store = tmp_path / f"runs-{k}"     # a prune run as the default: the session's store
        if pretrained:
            store.mkdir()
            monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(store))
        out = tmp_path / f"explorer-{k}.ipynb"
        t = time.time()
        pm.execute_notebook(str(ROOT / "notebooks" / "explorer.ipynb"), str(out),
                            parameters={"profile": PROFILE, "device": "cpu"}, cwd=str(tmp_path),
                            kernel_name="python3", progress_bar=False, log_output=False,
                            execution_timeout=600)
        nb = json.loads(out.read_text())
        cell = next(c for c in nb["cells"] if "ex.widget()" in "".join(c["source"]))
        firsts.append(_seconds(cell["metadata"]["papermill"]["end_time"])
                      - _seconds(nb["metadata"]["papermill"]["start_time"]))
        assert _outputs(nb, "application/vnd.jupyter.widget-view+json"), "no widget displayed"
        if pretrained:
            assert not any(store.iterdir()), f"run {k}: something was trained: {list(store.iterdir())}"
        done += 1
        print(f"\nexplorer notebook run {k + 1}/{N_RUNS}: {time.time() - t:.0f} s, first update "
              f"{firsts[-1]:.1f} s after papermill's start")
    assert done == N_RUNS
    print(f"\n{done} of {N_RUNS} completed; first update median {np.median(firsts):.1f} s, "
          f"max {max(firsts):.1f} s ({'pretrained ' + explorer.DEFAULT_MODEL if pretrained else 'a prune run'})")
