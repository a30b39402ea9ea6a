"""Metric kernels against per-image references (tests/reference_metrics.py) and hand cases."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from sparsevis import metrics as M

sys.path.insert(0, str(Path(__file__).parent))
import reference_metrics as ref  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error")  # kernels must not warn (e.g. 0/0)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def random_batch(seed=0, b=24, h=12, w=10):
    """Maps with continuous values, heavy ties (5 levels), flat and all-zero maps; blob masks,
    some empty or full; about 10 % void pixels, one image entirely void."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(b, h, w, generator=g, dtype=torch.float64)
    maps[: b // 3] = torch.randint(0, 5, (b // 3, h, w), generator=g) / 4.0
    maps[b // 3] = 0.0
    maps[b // 3 + 1] = 0.7
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    cy = torch.randint(0, h, (b, 1, 1), generator=g)
    cx = torch.randint(0, w, (b, 1, 1), generator=g)
    rad = torch.randint(1, 6, (b, 1, 1), generator=g)
    masks = (ys - cy) ** 2 + (xs - cx) ** 2 <= rad ** 2
    masks[2] = False
    masks[5] = True
    valid = torch.rand(b, h, w, generator=g) > 0.1
    valid[7] = False
    return maps, masks, valid


def close(a, b):
    assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=1e-6, atol=1e-9, equal_nan=True)


# ---- relevance mass accuracy -------------------------------------------------------------

@pytest.mark.parametrize("with_valid", [False, True])
def test_rma_matches_reference(with_valid):
    maps, masks, valid = random_batch(1)
    v = valid if with_valid else None
    close(M.relevance_mass_accuracy(maps, masks, v), ref.rma(maps, masks, v))


def test_rma_known_values():
    maps = torch.zeros(5, 4, 4)
    masks = torch.zeros(5, 4, 4, dtype=torch.bool)
    masks[:, :2] = True                       # top half is the object
    maps[0, 0, 0] = 3.0                       # all mass inside
    maps[1, 0, 0], maps[1, 3, 3] = 1.0, 3.0   # a quarter inside
    maps[3, 3, 3] = 1.0                       # mass outside, empty mask below
    masks[3] = False
    maps[4, 0, 0], maps[4, 3, 3] = 1.0, 5.0   # outside mass sits on a void pixel
    valid = torch.ones(5, 4, 4, dtype=torch.bool)
    valid[4, 3, 3] = False
    out = M.relevance_mass_accuracy(maps, masks, valid)
    close(out, [1.0, 0.25, np.nan, 0.0, 1.0])  # image 2: zero map -> NaN


def test_rma_void_mask_pixels_do_not_count():
    maps = torch.tensor([[[1.0, 9.0], [2.0, 3.0]]])
    masks = torch.tensor([[[True, True], [False, False]]])
    valid = torch.tensor([[[True, False], [True, True]]])
    close(M.relevance_mass_accuracy(maps, masks, valid), [1 / 6])


# ---- relevance rank accuracy -------------------------------------------------------------

@pytest.mark.parametrize("with_valid", [False, True])
def test_rra_matches_reference_with_ties(with_valid):
    maps, masks, valid = random_batch(2)
    v = valid if with_valid else None
    close(M.relevance_rank_accuracy(maps, masks, v), ref.rra(maps, masks, v))


def test_rra_without_ties_is_the_textbook_count():
    g = torch.Generator().manual_seed(3)
    maps = torch.rand(16, 9, 11, generator=g)
    masks = torch.rand(16, 9, 11, generator=g) > 0.7
    valid = torch.rand(16, 9, 11, generator=g) > 0.2
    close(M.relevance_rank_accuracy(maps, masks, valid), ref.rra_no_ties(maps, masks, valid))


def test_rra_hand_4x4():
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[:, 0, :] = True                                   # K = 4: the first row
    maps = torch.arange(16.0).flip(0).reshape(1, 4, 4).repeat(3, 1, 1)  # 15..0 in raster order
    maps[0, 0, 3] = 0.5      # top 4 are 15, 14, 13 (row 0) and 11 (row 1) -> 3/4
    maps[1] = 0.0            # flat map: degenerate -> NaN, not the chance level K / N = 4/16
    maps[2] = 0.0            # row 0: 1, 0, 0, 0; row 1: 1, 0.5, 0.5, 0
    maps[2, 0, 0] = maps[2, 1, 0] = 1.0
    maps[2, 1, 1] = maps[2, 1, 2] = 0.5
    # Image 2: the two 1.0 give one hit; the two 0.5 fill the other 2 slots, none in G;
    # three G pixels tie with 10 others at 0 for no slot -> 1/4.
    close(M.relevance_rank_accuracy(maps, masks), [0.75, np.nan, 0.25])
    maps[2, 1, 2] = 0.0      # now one 0.5 slot and a 0-tie of 3 G + 10 others for 1 slot
    close(M.relevance_rank_accuracy(maps[2:], masks[2:]), [(1 + 3 / 13) / 4])


def test_rra_ties_equal_the_mean_over_random_tie_breaks():
    rng = np.random.default_rng(14)
    r = rng.integers(0, 3, (6, 6)).astype(np.float64)
    g = rng.random((6, 6)) < 0.4
    k = g.sum()
    draws = []
    for _ in range(4000):              # rank by value, break ties by a random key
        order = np.lexsort((rng.random(36), -r.ravel()))
        draws.append(g.ravel()[order[:k]].mean())
    got = M.relevance_rank_accuracy(torch.from_numpy(r)[None], torch.from_numpy(g)[None])
    assert float(got) == pytest.approx(np.mean(draws), abs=0.01)


def test_rra_empty_mask_is_nan_and_dtype_kept():
    maps = torch.rand(2, 3, 3, dtype=torch.float64)
    masks = torch.zeros(2, 3, 3, dtype=torch.bool)
    masks[1, 1, 1] = True
    out = M.relevance_rank_accuracy(maps, masks)
    assert out.dtype == torch.float64 and math.isnan(out[0]) and not math.isnan(out[1])


# ---- pointing game -----------------------------------------------------------------------

@pytest.mark.parametrize("tolerance", [0, 1, 3, 15])
@pytest.mark.parametrize("with_valid", [False, True])
def test_pointing_matches_reference(tolerance, with_valid):
    maps, masks, valid = random_batch(4)
    v = valid if with_valid else None
    out = M.pointing_game(maps, masks, v, tolerance=tolerance)
    assert out.dtype == torch.bool
    assert_array_equal(out.numpy(), ref.pointing(maps, masks, v, tolerance))


def test_pointing_hand_cases():
    maps = torch.zeros(5, 5, 5)
    masks = torch.zeros(5, 5, 5, dtype=torch.bool)
    masks[:, 2, 2] = True
    valid = torch.ones(5, 5, 5, dtype=torch.bool)
    maps[0, 2, 2] = 1.0                          # max in G
    maps[1, 2, 3] = 1.0                          # max next to G
    maps[2, 0, 0] = maps[2, 2, 2] = 1.0          # tie: one maximum in G -> hit
    maps[3, 0, 0], maps[3, 2, 2] = 9.0, 1.0      # larger value on a void pixel is ignored
    valid[3, 0, 0] = False
    maps[4, 2, 2] = 1.0                          # empty mask -> miss
    masks[4] = False
    assert M.pointing_game(maps, masks, valid).tolist() == [True, False, True, True, False]
    assert M.pointing_game(maps, masks, valid, tolerance=1).tolist() == [True, True, True, True, False]


def test_pointing_rejects_bad_tolerance():
    with pytest.raises(ValueError, match="tolerance"):
        M.pointing_game(torch.rand(1, 3, 3), torch.ones(1, 3, 3, dtype=torch.bool), tolerance=-1)


# ---- degenerate maps ---------------------------------------------------------------------

def degenerate_case():
    """One map per rule, each 3x3 with G = the left column; the last two are not degenerate."""
    maps = torch.arange(9.0).reshape(1, 3, 3).repeat(9, 1, 1)
    masks = torch.zeros(9, 3, 3, dtype=torch.bool)
    masks[:, :, 0] = True
    valid = torch.ones(9, 3, 3, dtype=torch.bool)
    maps[0] = 0.0                              # all zeros (a Grad-CAM clipped everywhere)
    maps[1] = 0.7                              # constant
    maps[2, 1, 1] = torch.nan                  # NaN on a valid pixel
    maps[3, 2, 2] = torch.inf                  # inf on a valid pixel
    maps[4] = 0.5                              # constant on the valid pixels, ...
    maps[4, 0, 0], valid[4, 0, 0] = 9.0, False  # ... its only other value on a void pixel
    valid[5] = False                           # no valid pixel
    maps[6, 0, 0] = -torch.inf                 # -inf counts as non-finite too
    maps[7, 2, 2], valid[7, 2, 2] = torch.nan, False  # NaN on a void pixel only: fine
    return maps, masks, valid                  # map 8: 0..8 in raster order


def test_degenerate_maps_hand_built():
    maps, masks, valid = degenerate_case()
    want = [True] * 7 + [False, False]
    assert M.degenerate(maps, valid).tolist() == want
    assert_array_equal(ref.degenerate(maps, valid), want)
    assert M.degenerate(torch.ones(1, 2, 2)).tolist() == [True]   # valid defaults to all pixels
    # map 7 (void NaN): valid values 0..7 without 8, G = {0, 3, 6} of 8 pixels; map 8: G = {0, 3, 6}
    rra = M.relevance_rank_accuracy(maps, masks, valid)
    close(rra, [np.nan] * 7 + [1 / 3, 1 / 3])      # top 3 are 7, 5, 6 / 8, 7, 6: one in G each
    assert M.pointing_game(maps, masks, valid).tolist() == [False] * 7 + [False, False]
    maps[8, 1, 0] = 99.0                                        # maximum in G: a hit
    assert M.pointing_game(maps, masks, valid).tolist()[-1] is True
    assert M.pointing_game(maps, masks, valid, tolerance=1).tolist()[:7] == [False] * 7
    nonneg = maps.clone()
    nonneg[6, 0, 0] = torch.inf
    close(M.relevance_mass_accuracy(nonneg, masks, valid), [np.nan] * 7 + [9 / 28, 105 / 132])


def test_flat_map_is_no_hit_and_not_chance():
    """The old behaviour: a flat map hit whenever G was non-empty and scored chance RRA."""
    maps = torch.zeros(1, 4, 4)
    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, 0, 0] = True
    assert M.pointing_game(maps, masks).tolist() == [False]
    assert math.isnan(M.relevance_rank_accuracy(maps, masks)) and math.isnan(M.relevance_mass_accuracy(maps + 1, masks))


def test_map_metrics_report_degenerate_share_and_n():
    from sparsevis.stats import bootstrap_ci

    maps, masks, valid = degenerate_case()
    maps = maps.clamp(min=0).nan_to_num(nan=0.0, posinf=1.0)[[0, 1, 7, 8]]   # 2 flat, 2 not
    out = M.map_metrics(maps, masks[:4], valid[[0, 1, 7, 8]])
    assert list(out) == ["relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game", "degenerate_maps"]
    assert out["degenerate_maps"].tolist() == [True, True, False, False]
    assert float(out["degenerate_maps"].float().mean()) == 0.5
    assert bootstrap_ci(out["relevance_mass_accuracy"].numpy(), n_boot=10).n == 2   # mean over the 2 defined
    assert bootstrap_ci(out["pointing_game"].float().numpy(), n_boot=10).n == 4     # a miss still counts


@pytest.mark.parametrize("tolerance", [0, 2])
def test_cpu_chunks_equal_one_batch(monkeypatch, tolerance):
    from sparsevis.metrics import base

    maps, masks, valid = random_batch(13)
    whole = [M.relevance_mass_accuracy(maps, masks, valid), M.relevance_rank_accuracy(maps, masks, valid),
             M.pointing_game(maps, masks, valid, tolerance=tolerance), M.degenerate(maps, valid)]
    monkeypatch.setattr(base, "CPU_CHUNK_PIXELS", 3 * 12 * 10 + 1)           # chunks of 3 images
    chunks = [M.relevance_mass_accuracy(maps, masks, valid), M.relevance_rank_accuracy(maps, masks, valid),
              M.pointing_game(maps, masks, valid, tolerance=tolerance), M.degenerate(maps, valid)]
    for a, b in zip(whole, chunks):
        close(a, b)
    close(chunks[2], ref.pointing(maps, masks, valid, tolerance))


def test_cpu_kernels_run_on_one_thread_and_restore_the_count(monkeypatch):
    from sparsevis.metrics import base

    seen = []

    def kernel(maps, masks, valid):
        seen.append(torch.get_num_threads())
        return maps.flatten(1).sum(dim=1)

    maps, masks, valid = random_batch(14)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(base, "CPU_CHUNK_PIXELS", 3 * 12 * 10 + 1)
        close(base.per_chunk(kernel, maps, masks, valid), maps.flatten(1).sum(dim=1))
        assert seen == [1] * 8 and torch.get_num_threads() == 2
        with pytest.raises(ZeroDivisionError):
            base.per_chunk(lambda *t: 1 / 0, maps, masks, valid)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# ---- boxes and CorLoc --------------------------------------------------------------------

def test_box_iou_known():
    a = torch.tensor([[0, 0, 2, 2], [0, 0, 2, 2], [5, 5, 5, 5]])
    b = torch.tensor([[1, 1, 3, 3], [0, 0, 2, 2], [2, 0, 4, 2], [5, 5, 5, 5]])
    expected = [[1 / 7, 1, 0, 0], [1 / 7, 1, 0, 0], [0, 0, 0, 0]]   # touching -> 0; empty union -> 0
    close(M.box_iou(a, b), expected)
    assert M.box_iou(a, b).shape == (3, 4)


def test_box_iou_matches_reference():
    g = torch.Generator().manual_seed(5)
    xy = torch.rand(30, 2, generator=g) * 50
    wh = torch.rand(30, 2, generator=g) * 30
    boxes = torch.cat([xy, xy + wh], 1)
    close(M.box_iou(boxes[:12], boxes[12:]), ref.box_iou(boxes[:12], boxes[12:]))


def test_box_iou_rejects_bad_boxes():
    with pytest.raises(ValueError, match=r"b: expected boxes of shape \(M,4\)"):
        M.box_iou(torch.zeros(2, 4), torch.zeros(3))
    with pytest.raises(ValueError, match="a: box 1"):
        M.box_iou(torch.tensor([[0, 0, 1, 1], [3, 0, 1, 1]]), torch.zeros(1, 4))


def test_corloc_multiple_gt_boxes():
    pred = torch.tensor([[0, 0, 10, 10], [0, 0, 4, 2], [0, 0, 10, 10], [0, 0, 10, 10]], dtype=torch.float32)
    gt = [
        torch.tensor([[50, 50, 60, 60], [1, 1, 10, 10]]),   # second box matches (IoU 0.81)
        torch.tensor([[0, 0, 4, 1]]),                       # IoU exactly 0.5 counts
        torch.tensor([[0, 0, 10, 4], [0, 6, 10, 10]]),      # both below 0.5
        torch.zeros((0, 4)),                                # no gt box -> miss
    ]
    assert M.corloc_hits(pred, gt).tolist() == [True, True, False, False]
    assert M.corloc(pred, gt) == 0.5
    assert M.corloc(pred, gt, iou=0.3) == 0.75
    assert math.isnan(M.corloc(torch.zeros((0, 4)), []))


def test_corloc_matches_reference():
    rng = np.random.default_rng(6)
    pred = np.concatenate([rng.uniform(0, 40, (40, 2)), rng.uniform(40, 80, (40, 2))], 1)
    gts = []
    for _ in range(40):
        xy = rng.uniform(0, 50, (rng.integers(0, 4), 2))
        gts.append(np.concatenate([xy, xy + rng.uniform(5, 40, xy.shape)], 1))
    assert_array_equal(M.corloc_hits(pred, gts).numpy(), ref.corloc_hits(pred, gts))
    with pytest.raises(ValueError, match="gt_boxes"):
        M.corloc(pred, gts[:-1])


# ---- error consistency -------------------------------------------------------------------

def test_error_consistency_hand_table():
    # 2x2 table: both right 40, only a 10, only b 20, both wrong 30 (n = 100)
    a = np.array([True] * 40 + [True] * 10 + [False] * 20 + [False] * 30)
    b = np.array([True] * 40 + [False] * 10 + [True] * 20 + [False] * 30)
    # p_a = 0.5, p_b = 0.6, c_obs = 0.7, c_exp = 0.3 + 0.2 = 0.5 -> kappa = 0.4
    assert M.observed_consistency(a, b) == pytest.approx(0.7)
    assert M.error_consistency(a, b) == pytest.approx(0.4)
    assert M.accuracy_difference(a, b) == pytest.approx(0.01)
    assert M.error_consistency(torch.from_numpy(a), list(b)) == pytest.approx(0.4)


def test_error_consistency_extremes():
    rng = np.random.default_rng(7)
    a = rng.random(200) < 0.7
    assert M.error_consistency(a, a) == pytest.approx(1.0)
    half = np.arange(200) % 2 == 0
    assert M.error_consistency(half, ~half) == pytest.approx(-1.0)
    independent = [M.error_consistency(rng.random(5000) < 0.7, rng.random(5000) < 0.6) for _ in range(5)]
    assert np.abs(independent).max() < 0.05
    assert math.isnan(M.error_consistency(np.ones(5, bool), np.ones(5, bool)))
    assert math.isnan(M.error_consistency(np.zeros(5, bool), np.zeros(5, bool)))
    assert M.error_consistency(np.ones(5, bool), np.zeros(5, bool)) == 0.0


def test_error_consistency_matches_reference():
    rng = np.random.default_rng(8)
    for p in (0.1, 0.5, 0.9):
        a = rng.random(97) < p
        b = np.where(rng.random(97) < 0.5, a, rng.random(97) < p)
        assert M.error_consistency(a, b) == pytest.approx(ref.error_consistency(a, b))


def test_error_consistency_validation():
    with pytest.raises(ValueError, match=r"correct_b: expected the same number of trials as correct_a \(3\), got 2"):
        M.error_consistency(np.ones(3, bool), np.ones(2, bool))
    with pytest.raises(ValueError, match="correct_a: expected a 1-D bool vector"):
        M.observed_consistency(np.ones(3), np.ones(3, bool))


# ---- shape bias --------------------------------------------------------------------------

SHAPES = ["cat", "cat", "dog", "dog", "car", "car", "boat", "bird", "cat", "dog"]
TEXTURES = ["dog", "car", "cat", "bird", "cat", "boat", "car", "cat", "cat", "dog"]
DECISIONS = ["cat", "cat", "dog", "bird", "car", "boat", "knife", "bird", "cat", "dog"]
# trials 8, 9 have shape == texture and are excluded (their decisions would add 2 shape hits);
# trial 6 decides neither; shape hits 0, 1, 2, 4, 7 (5), texture hits 3, 5 (2) -> 5/7


def test_shape_bias_constructed():
    assert M.shape_bias(DECISIONS, SHAPES, TEXTURES) == pytest.approx(5 / 7)
    assert M.shape_bias(DECISIONS, SHAPES, TEXTURES) == pytest.approx(ref.shape_bias(DECISIONS, SHAPES, TEXTURES))
    ids = {name: i for i, name in enumerate(sorted(set(SHAPES + TEXTURES + DECISIONS)))}
    as_ids = [torch.tensor([ids[x] for x in seq]) for seq in (DECISIONS, SHAPES, TEXTURES)]
    assert M.shape_bias(*as_ids) == pytest.approx(5 / 7)
    assert M.shape_bias(np.array(DECISIONS, dtype=object), np.array(SHAPES), tuple(TEXTURES)) == pytest.approx(5 / 7)
    assert math.isnan(M.shape_bias(["knife"], ["cat"], ["dog"]))


def test_shape_bias_matches_reference():
    rng = np.random.default_rng(9)
    s, t, d = (rng.integers(0, 16, 500) for _ in range(3))
    d[:200] = s[:200]
    assert M.shape_bias(d, s, t) == pytest.approx(ref.shape_bias(d, s, t))


def test_shape_bias_validation():
    with pytest.raises(ValueError, match=r"texture_labels: expected one label per decision \(10\), got 9"):
        M.shape_bias(DECISIONS, SHAPES, TEXTURES[:9])
    with pytest.raises(ValueError, match="shape_labels: expected the same kind"):
        M.shape_bias(DECISIONS, list(range(10)), TEXTURES)
    with pytest.raises(ValueError, match="decisions"):
        M.shape_bias(np.zeros(10), SHAPES, TEXTURES)


# ---- deletion / insertion (extension) ----------------------------------------------------

class PixelSum(torch.nn.Module):
    """Logit of class 0 = weighted pixel sum, class 1 = 0: deleting heavy pixels lowers p(0)."""

    def __init__(self, weight):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)

    def forward(self, x):
        z = (x * self.weight).flatten(1).sum(1)
        return torch.stack([z, torch.zeros_like(z)], 1)


def faithfulness_case():
    g = torch.Generator().manual_seed(10)
    weight = torch.rand(1, 6, 5, generator=g)
    images = torch.rand(4, 1, 6, 5, generator=g)
    maps = torch.rand(4, 6, 5, generator=g)
    maps[0] = (images[0, 0] * weight[0])        # the true contributions
    maps[1] = 0.0                               # all ties: raster order
    return PixelSum(weight), images, maps, torch.tensor([0, 0, 1, 0])


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
@pytest.mark.parametrize("steps", [4, 7])
def test_faithfulness_matches_reference(mode, steps):
    model, images, maps, target = faithfulness_case()
    fn = M.deletion_auc if mode == "deletion" else M.insertion_auc
    out = fn(model, images, maps, target, steps=steps, baseline=0.2, batch_size=7)
    close(out, ref.perturbation_auc(model, images, maps, target, mode, steps, baseline=0.2))


def test_faithfulness_direction_and_constant_model():
    model, images, maps, target = faithfulness_case()
    good, bad = maps[:1], -maps[:1]
    x, t = images[:1], target[:1]
    assert M.deletion_auc(model, x, good, t, steps=10) < M.deletion_auc(model, x, bad, t, steps=10)
    assert M.insertion_auc(model, x, good, t, steps=10) > M.insertion_auc(model, x, bad, t, steps=10)
    constant = PixelSum(torch.zeros(1, 6, 5))
    close(M.deletion_auc(constant, images, maps, target, steps=3), [0.5] * 4)
    curve = M.perturbation_curve(model, images, maps, target, "deletion", steps=5)
    assert curve.shape == (4, 6)
    close(curve[:, 0], model(images).softmax(1)[torch.arange(4), target].detach())


def test_faithfulness_validation():
    model, images, maps, target = faithfulness_case()
    with pytest.raises(ValueError, match="mode"):
        M.perturbation_curve(model, images, maps, target, "erase")
    with pytest.raises(ValueError, match=r"maps: expected shape \(B,H,W\) = \(4, 6, 5\)"):
        M.deletion_auc(model, images, maps[:, :5], target)
    with pytest.raises(ValueError, match="target"):
        M.insertion_auc(model, images, maps, target.float())
    with pytest.raises(ValueError, match=r"baseline: expected a number or a tensor broadcastable to \(4, 1, 6, 5\)"):
        M.insertion_auc(model, images, maps, target, baseline=torch.zeros(3, 6, 5))


# ---- input validation, registry, devices -------------------------------------------------

def test_map_validation_messages():
    maps = torch.rand(4, 8, 8)
    expected = r"masks: expected bool tensor of shape \(B,H,W\) matching maps \(4, 8, 8\), got torch.bool of shape \(4, 8\)"
    with pytest.raises(ValueError, match=expected):
        M.relevance_mass_accuracy(maps, torch.ones(4, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="masks: expected bool"):
        M.relevance_rank_accuracy(maps, torch.ones(4, 8, 8))
    with pytest.raises(ValueError, match="valid: expected bool"):
        M.pointing_game(maps, maps > 0.5, valid=torch.ones(4, 8, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"maps: expected a floating tensor of shape \(B,H,W\)"):
        M.relevance_mass_accuracy(maps[0], maps[0] > 0.5)
    with pytest.raises(ValueError, match="maps: expected non-negative values on the valid pixels"):
        M.relevance_mass_accuracy(maps - 0.5, maps > 0.5)
    with pytest.raises(ValueError, match="maps: expected a torch.Tensor"):
        M.pointing_game(maps.tolist(), maps > 0.5)


def test_numpy_inputs_are_accepted():
    maps, masks, valid = random_batch(11)
    close(M.relevance_mass_accuracy(maps.numpy(), masks.numpy(), valid.numpy()), ref.rma(maps, masks, valid))


def test_registry_and_direction():
    public = ["accuracy", "relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game", "degenerate_maps",
              "deletion_auc", "insertion_auc", "corloc", "shape_bias", "accuracy_difference",
              "observed_consistency", "error_consistency"]
    assert list(M.REGISTRY) == public
    for name, info in M.REGISTRY.items():
        assert info.name == name and callable(info.kernel) and info.label and info.long_label
    assert M.REGISTRY["degenerate_maps"].kernel is M.degenerate and M.accuracy([True, False, True]) == 2 / 3
    assert M.higher_is_better("relevance_rank_accuracy") and M.higher_is_better("error_consistency")
    assert not M.higher_is_better("deletion_auc") and not M.higher_is_better("accuracy_difference")
    assert M.REGISTRY["deletion_auc"].extension and not M.REGISTRY["corloc"].extension
    assert M.REGISTRY["pointing_game"].extension                     # the notebooks call it one
    assert M.REGISTRY["error_consistency"].value_range == (-1.0, 1.0)
    assert len({i.color for i in M.REGISTRY.values()}) == len(M.REGISTRY)   # one colour per metric
    with pytest.raises(ValueError, match="unknown metric 'rma'; known: accuracy, accuracy_difference, corloc"):
        M.higher_is_better("rma")


def test_for_study():
    names = lambda study, **kw: [m.name for m in M.for_study(study, **kw)]  # noqa: E731
    assert names("prune") == ["accuracy"]
    assert names("interpretability", paper_only=True) == ["relevance_mass_accuracy", "relevance_rank_accuracy"]
    assert names("interpretability") == ["relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game",
                                         "degenerate_maps", "deletion_auc", "insertion_auc"]
    assert names("discovery") == ["corloc"]
    assert names("alignment") == ["accuracy", "shape_bias", "accuracy_difference", "observed_consistency",
                                  "error_consistency"]
    assert names("alignment", paper_only=True) == ["accuracy"]
    with pytest.raises(ValueError, match="study: expected one of prune, interpretability, discovery, alignment, got 'human'"):
        M.for_study("human")


def test_scale_kinds():
    """Signed or near-zero metrics compare with dense as a difference; a ratio needs a scale >= 0."""
    scale = {n: i.scale for n, i in M.REGISTRY.items()}
    assert scale["error_consistency"] == scale["accuracy_difference"] == "difference"
    assert scale["relevance_mass_accuracy"] == scale["accuracy"] == "ratio"
    assert all(i.value_range[0] >= 0 for i in M.REGISTRY.values() if i.scale == "ratio")
    good = dict(name="x", studies=("prune",), higher_is_better=True, label="x", long_label="x", paper=False,
                color="#000000", value_range=(0.0, 1.0), scale="ratio", inputs="correct", kernel=M.accuracy,
                reference="")
    M.MetricInfo(**good)
    for bad, match in [(dict(value_range=(-1.0, 1.0)), "scale='ratio' needs a non-negative value_range"),
                       (dict(scale="log"), "scale='log'"), (dict(studies=("prune", "human")), "studies="),
                       (dict(studies=()), "studies="), (dict(inputs="images"), "inputs='images'"),
                       (dict(color="red"), "color='red'")]:
        with pytest.raises(ValueError, match=match):
            M.MetricInfo(**{**good, **bad})


@CUDA
def test_cuda_matches_cpu():
    maps, masks, valid = random_batch(12)
    for fn in (M.relevance_mass_accuracy, M.relevance_rank_accuracy, M.pointing_game):
        close(fn(maps.cuda(), masks.cuda(), valid.cuda()).cpu(), fn(maps, masks, valid))
    boxes = torch.tensor([[0.0, 0, 2, 2], [1, 1, 3, 3]])
    close(M.box_iou(boxes.cuda(), boxes.cuda()).cpu(), M.box_iou(boxes, boxes))
    model, images, fmaps, target = faithfulness_case()
    close(M.deletion_auc(model.cuda(), images, fmaps, target, steps=4).cpu(),
          M.deletion_auc(model.cpu(), images, fmaps, target, steps=4))
