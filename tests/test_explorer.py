"""The live explorer's logic (sparsevis.explorer), without a browser: on the tiny profile's small
synthetic ResNet, an update gives a map at the image size and a box inside the image, and a
sparsity between two checkpoints is reached exactly by pruning the lower checkpoint further.

The run store is the session's ``<basetemp>/sparsevis-runs``, shared with test_notebooks.py, so
the prune stage runs once per session.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sparsevis import attribution, prune
from sparsevis.explorer import Explorer, find_run

pytestmark = pytest.mark.slow   # the first test runs the tiny prune stage (seconds to a minute)

PROFILE = "tiny"
RUN = "synthetic-sv_resnet_s-imp-s0"


@pytest.fixture(scope="module")
def ex(tmp_path_factory):
    store = tmp_path_factory.getbasetemp() / "sparsevis-runs"
    store.mkdir(exist_ok=True)
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
    (run_dd, method_dd), (slider, image) = w.children[0].children, w.children[1].children
    info = w.children[3]
    assert "No retraining" in w.children[2].value
    slider.value = 0.6
    image.value = 2
    method_dd.value = "gradient"
    assert "Error" not in info.value and "60" in info.value
