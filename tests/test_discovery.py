"""Tests for sparsevis.discovery: LOST (batched) against hand-built answers and against the
independent per-image reference in tests/reference_lost.py; TokenCut; pixel/padding helpers."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))  # reference_lost, any import mode
from reference_lost import reference_lost, reference_lost_one, reference_tokencut_one
from sparsevis import models, results
from sparsevis.discovery import (
    LostResult,
    boxes_to_pixels,
    connected_component,
    lost,
    mask_to_box,
    pad_to_multiple,
    tokencut,
)
from sparsevis.studies import discovery as study

# the module (the package exports its function under the same name)
lost_module = importlib.import_module("sparsevis.discovery.lost")

D = 16


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These kernels are many small ops; on a busy machine torch's OpenMP threads stall on
    each one waiting for a free core (10x slower here). One thread keeps this module fast;
    the results do not depend on the thread count."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _scene(h, w, regions, *, seed=0, noise=0.05, dtype=torch.float64):
    """Background patches ~ e0 (all mutually positive); each region (x1, y1, x2, y2) gets
    -0.5 e0 + e1 (negative with the background, positive within and across regions)."""
    g = torch.Generator().manual_seed(seed)
    f = torch.zeros(h, w, D, dtype=torch.float64)
    f[..., 0] = 1.0
    for x1, y1, x2, y2 in regions:
        f[y1:y2, x1:x2, 0] = -0.5
        f[y1:y2, x1:x2, 1] = 1.0
    f[..., 2:] += noise * torch.randn(h, w, D - 2, generator=g, dtype=torch.float64)
    return f.reshape(1, h * w, D).to(dtype)


def _region_mask(h, w, regions):
    m = torch.zeros(h, w, dtype=torch.bool)
    for x1, y1, x2, y2 in regions:
        m[y1:y2, x1:x2] = True
    return m


# ------------------------------------------------------------------------------------------
# hand-built cases with a known answer

@pytest.mark.parametrize("k", [100, 64, 6, 1])
def test_lost_finds_the_object_rectangle(k):
    rect = (2, 4, 5, 6)  # 3 wide, 2 high
    feats = _scene(8, 8, [rect])
    res = lost(feats, (8, 8), k=k, return_details=True)
    assert isinstance(res, LostResult)
    assert res.boxes.tolist() == [list(rect)]
    assert res.boxes.dtype == torch.int64
    # seed = lowest-degree patch, ties -> lowest index: the object's top-left cell
    assert res.seed.tolist() == [4 * 8 + 2]
    assert res.degree[0].reshape(8, 8)[4, 2] == 6  # the 6 object patches, itself included
    assert res.degree[0].min() == 6 and res.degree[0].max() == 58
    assert torch.equal(res.mask[0], _region_mask(8, 8, [rect]))
    assert torch.equal(res.score_map[0] > 0, _region_mask(8, 8, [rect]))
    assert torch.equal(lost(feats, (8, 8), k=k), res.boxes)


def test_lost_keeps_only_the_seed_component():
    r1, r2 = (1, 1, 4, 3), (5, 5, 7, 7)  # two disconnected regions with identical features
    feats = _scene(8, 8, [r1, r2])
    res = lost(feats, (8, 8), return_details=True)
    # both regions are positive in the map, but only the seed's component is boxed
    assert torch.equal(res.score_map[0] > 0, _region_mask(8, 8, [r1, r2]))
    assert res.seed.tolist() == [1 * 8 + 1]  # degree tie over 10 patches -> lowest index
    assert torch.equal(res.mask[0], _region_mask(8, 8, [r1]))
    assert res.boxes.tolist() == [list(r1)]
    # the larger region last in raster order: the tie still picks the first (smaller) one
    r_small, r_big = (0, 0, 2, 2), (3, 4, 7, 7)
    feats = _scene(8, 8, [r_small, r_big], seed=1)
    assert lost(feats, (8, 8)).tolist() == [list(r_small)]


def test_lost_non_square_grid_and_batch():
    h, w = 30, 23
    rects = [(3, 20, 9, 27), (15, 2, 22, 5), (0, 0, 1, 1), (10, 10, 23, 30)]
    feats = torch.cat([_scene(h, w, [r], seed=i) for i, r in enumerate(rects)])
    # the last object covers 260 of 690 patches: still fewer than the background's 430
    assert lost(feats, (h, w)).tolist() == [list(r) for r in rects]
    assert lost(feats.numpy(), (h, w)).tolist() == [list(r) for r in rects]  # NumPy input


def test_lost_degenerate_seed_outside_mask():
    # all-zero features: degree 0 everywhere, seed 0, empty map -> the seed cell itself
    z = torch.zeros(2, 12, 5)
    res = lost(z, (3, 4), return_details=True)
    assert res.boxes.tolist() == [[0, 0, 1, 1]] * 2
    assert res.seed.tolist() == [0, 0]
    assert not (res.score_map > 0).any()
    # one zero feature among positively correlated ones: it has degree 0, becomes the seed,
    # nothing is similar to it, its map is 0 -> box = that cell (row 2, col 3)
    f = torch.ones(1, 20, 3)
    f[0, 2 * 5 + 3] = 0
    res = lost(f, (4, 5), return_details=True)
    assert res.seed.tolist() == [13]
    assert res.boxes.tolist() == [[3, 2, 4, 3]]
    assert res.mask[0].sum() == 1 and res.mask[0, 2, 3]
    assert reference_lost(f.numpy(), (4, 5)).tolist() == [[3, 2, 4, 3]]


def test_lost_empty_batch():
    assert lost(torch.zeros(0, 6, 4), (2, 3)).shape == (0, 4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_lost_dtypes(dtype):
    rect = (2, 4, 5, 6)
    feats = _scene(8, 8, [rect], dtype=dtype)
    res = lost(feats, (8, 8), return_details=True)
    assert res.boxes.tolist() == [list(rect)]
    assert res.score_map.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)


def test_lost_accepts_large_fp16_without_overflow():
    # 2048-d features of magnitude ~30: similarities ~1e5 overflow float16 (max 65504)
    rect = (1, 1, 3, 4)
    f = (_scene(6, 6, [rect], noise=0.0).repeat(1, 1, 128) * 30).half()
    assert f.shape[-1] == 2048 and torch.isinf(f[0, :1].float() @ f[0].float().T).sum() == 0
    assert torch.isinf(torch.bmm(f, f.mT)).any()  # what a naive float16 A would give
    assert lost(f, (6, 6)).tolist() == [list(rect)]


# ------------------------------------------------------------------------------------------
# batched implementation == per-image reference

GRIDS = [(8, 8), (30, 23), (1, 1), (1, 7), (5, 1), (3, 17), (14, 14)]
KS = [1, 5, 100, 10_000]


@pytest.mark.parametrize("grid", GRIDS)
def test_lost_matches_reference_gaussian(grid):
    h, w = grid
    g = torch.Generator().manual_seed(h * 100 + w)
    for d in (2, 24):
        feats = torch.randn(4, h * w, d, generator=g, dtype=torch.float64)
        for k in KS:
            np.testing.assert_array_equal(
                lost(feats, grid, k=k).numpy(), reference_lost(feats.numpy(), grid, k=k),
                err_msg=f"grid={grid} d={d} k={k}")


@pytest.mark.parametrize("grid", GRIDS)
def test_lost_matches_reference_integer_features(grid):
    # small integer features: exact arithmetic in float32, many zero similarities and ties
    h, w = grid
    g = torch.Generator().manual_seed(7 * h + w)
    for d in (1, 4):
        feats = torch.randint(-1, 2, (4, h * w, d), generator=g).to(torch.float32)
        for k in KS:
            np.testing.assert_array_equal(
                lost(feats, grid, k=k).numpy(), reference_lost(feats.numpy(), grid, k=k),
                err_msg=f"grid={grid} d={d} k={k}")


def _structured(b, h, w, d, g, max_objects=3):
    """Low-rank background + a few random rectangles with their own directions + noise."""
    out = torch.empty(b, h, w, d, dtype=torch.float64)
    for i in range(b):
        base = torch.randn(d, generator=g, dtype=torch.float64)
        f = base + 0.3 * torch.randn(h, w, d, generator=g, dtype=torch.float64)
        for _ in range(int(torch.randint(1, max_objects + 1, (1,), generator=g))):
            y1 = int(torch.randint(0, h, (1,), generator=g))
            x1 = int(torch.randint(0, w, (1,), generator=g))
            y2 = int(torch.randint(y1 + 1, h + 1, (1,), generator=g))
            x2 = int(torch.randint(x1 + 1, w + 1, (1,), generator=g))
            f[y1:y2, x1:x2] += torch.randn(d, generator=g, dtype=torch.float64) * 2 - base
        out[i] = f
    return out.reshape(b, h * w, d)


@pytest.mark.parametrize("grid", [(8, 8), (30, 23), (23, 30), (14, 14), (2, 9)])
def test_lost_matches_reference_structured(grid):
    h, w = grid
    g = torch.Generator().manual_seed(h * w)
    feats = _structured(6, h, w, 32, g)
    for k in (3, 100, 5 * h * w):
        ref = reference_lost(feats.numpy(), grid, k=k)
        np.testing.assert_array_equal(lost(feats, grid, k=k).numpy(), ref)
        # float32 agrees too on these well-separated cases
        np.testing.assert_array_equal(lost(feats.float(), grid, k=k).numpy(), ref)


def test_lost_chunking_does_not_change_the_result():
    g = torch.Generator().manual_seed(4)
    feats = _structured(7, 9, 6, 8, g)
    full = lost(feats, (9, 6), k=20, return_details=True)
    for chunk in (1, 3, 7, 100):
        part = lost(feats, (9, 6), k=20, return_details=True, chunk_size=chunk)
        for a, b in zip(full, part):
            assert torch.equal(a, b)
    with pytest.raises(ValueError, match="chunk_size"):
        lost(feats, (9, 6), chunk_size=0)


@pytest.fixture
def batched_path(monkeypatch):
    """Run lost() on the CPU through the batched path that GPUs take (bmm, vectorised
    selection) with a given chunk size, so that it is tested without a GPU."""
    def use(chunk_size):
        monkeypatch.setattr(lost_module, "_scores_per_image",
                            lambda feats, kk: lost_module._scores_batched(feats, kk, chunk_size))
    return use


@pytest.mark.parametrize("grid", GRIDS)
def test_lost_batched_path_matches_reference(grid, batched_path):
    h, w = grid
    g = torch.Generator().manual_seed(h * 31 + w)
    gaussian = torch.randn(5, h * w, 24, generator=g, dtype=torch.float64)
    integer = torch.randint(-1, 2, (5, h * w, 3), generator=g).to(torch.float32)
    structured = _structured(5, h, w, 32, g)
    for chunk in (1, 2, 100):
        batched_path(chunk)
        for feats in (gaussian, integer, structured):
            for k in KS:
                np.testing.assert_array_equal(
                    lost(feats, grid, k=k).numpy(), reference_lost(feats.numpy(), grid, k=k),
                    err_msg=f"grid={grid} chunk={chunk} k={k} dtype={feats.dtype}")


def test_lost_both_paths_give_the_same_details(batched_path):
    g = torch.Generator().manual_seed(11)
    feats = _structured(7, 30, 23, 48, g)
    per_image = lost(feats, (30, 23), return_details=True)
    batched_path(3)
    batched = lost(feats, (30, 23), return_details=True)
    for name in ("boxes", "seed", "degree", "mask"):
        assert torch.equal(getattr(per_image, name), getattr(batched, name)), name
    torch.testing.assert_close(per_image.score_map, batched.score_map, rtol=1e-12, atol=1e-10)


def test_lost_per_image_path_sums_the_kept_rows_like_the_reference():
    # same SYRK, same rows summed in the same order: the score maps agree to the last bit,
    # in float32 too, also when the seed's own similarity is 0 (it is kept regardless)
    g = torch.Generator().manual_seed(12)
    feats = torch.cat([_structured(4, 30, 23, 40, g).float(), torch.zeros(1, 690, 40)])
    feats[1, 5] = 0  # a zero patch: degree 0, the seed, not similar to itself
    res = lost(feats, (30, 23), return_details=True)
    assert int(res.seed[1]) == 5
    for i in range(len(feats)):
        box, seed, degree, score, region = reference_lost_one(feats[i].numpy(), (30, 23), details=True)
        assert res.boxes[i].tolist() == list(box) and int(res.seed[i]) == seed
        np.testing.assert_array_equal(res.degree[i].numpy(), degree)
        np.testing.assert_array_equal(res.score_map[i].numpy(), score)
        np.testing.assert_array_equal(res.mask[i].numpy(), region)


@pytest.mark.parametrize("path", ["per-image", "batched"])
def test_lost_keeps_the_seed_whose_self_similarity_underflows(path, batched_path):
    # patch 0 = (1e-25, 0): |f|^2 underflows to 0 in float32, so A[0, 0] = 0, yet it is
    # similar (1e-25) to the 3 patches (1, 0); the 8 patches (-1, 0) have degree 8, so patch 0
    # (degree 3) is the seed. With k = 1 it is the only candidate and is kept by the rule: the
    # map is its row (+1e-25 on the 3 patches, -1e-25 on the 8), not zero; the seed (map 0) is
    # outside the mask, so the box is the seed cell.
    if path == "batched":
        batched_path(1)
    f = torch.zeros(1, 12, 2)
    f[0, 0, 0] = 1e-25
    f[0, 1:4, 0] = 1.0
    f[0, 4:, 0] = -1.0
    assert float(f[0, 0] @ f[0, 0]) == 0.0
    res = lost(f, (3, 4), k=1, return_details=True)
    want = f[0, 0] @ f[0].T
    assert res.seed.tolist() == [0] and res.degree[0, 0] == 3
    assert torch.equal(res.score_map[0].reshape(-1), want)
    assert res.boxes.tolist() == [[0, 0, 1, 1]]
    box, seed, _, score, _ = reference_lost_one(f[0].numpy(), (3, 4), k=1, details=True)
    assert seed == 0 and list(box) == [0, 0, 1, 1]
    np.testing.assert_array_equal(score.reshape(-1), want.numpy())


def test_lost_cpu_gram_takes_views_and_tensors_that_require_grad():
    # on the CPU the similarity matrices come from NumPy (SYRK): a strided view and a tensor
    # that requires grad must give what the plain contiguous tensor gives
    g = torch.Generator().manual_seed(5)
    feats = _structured(3, 7, 5, 12, g)
    want = lost(feats, (7, 5), k=10, return_details=True)
    view = feats.transpose(1, 2).contiguous().transpose(1, 2)
    assert not view.is_contiguous()
    for f in (view, feats.clone().requires_grad_()):
        got = lost(f, (7, 5), k=10, return_details=True)
        for a, b in zip(want, got):
            assert torch.equal(a, b)


def test_lost_details_match_reference():
    g = torch.Generator().manual_seed(3)
    h, w = 30, 23
    feats = _structured(5, h, w, 16, g)
    res = lost(feats, (h, w), return_details=True)
    for i in range(5):
        box, seed, degree, score, region = reference_lost_one(feats[i].numpy(), (h, w), details=True)
        assert res.boxes[i].tolist() == list(box)
        assert int(res.seed[i]) == seed
        np.testing.assert_array_equal(res.degree[i].numpy(), degree)
        np.testing.assert_allclose(res.score_map[i].numpy(), score, rtol=1e-10, atol=1e-9)
        np.testing.assert_array_equal(res.mask[i].numpy(), region)


# ------------------------------------------------------------------------------------------
# connected components

def _snake(h, w):
    m = np.zeros((h, w), dtype=bool)
    m[::2] = True
    for r in range(1, h, 2):
        m[r, w - 1 if (r // 2) % 2 == 0 else 0] = True
    return m


def test_connected_component_matches_scipy():
    rng = np.random.default_rng(0)
    masks, seeds = [], []
    h, w = 17, 13
    for p in (0.3, 0.5, 0.6, 0.75):
        for _ in range(10):
            masks.append(rng.random((h, w)) < p)
            seeds.append(int(rng.integers(h * w)))
    masks.append(_snake(h, w))
    seeds.append(0)
    masks.append(_snake(h, w))
    seeds.append(h * w - 1 if _snake(h, w)[-1, -1] else 0)
    mt = torch.from_numpy(np.stack(masks))
    comp = connected_component(mt, torch.tensor(seeds))
    cross = ndimage.generate_binary_structure(2, 1)
    for i, (m, s) in enumerate(zip(masks, seeds)):
        r, c = divmod(s, w)
        lab, _ = ndimage.label(m, structure=cross)
        want = lab == lab[r, c] if lab[r, c] else np.eye(1, h * w, s, dtype=bool).reshape(h, w)
        np.testing.assert_array_equal(comp[i].numpy(), want, err_msg=f"mask {i}")
    assert comp[-2].sum() == masks[-2].sum()  # the whole snake, one component


def test_mask_to_box():
    m = torch.zeros(3, 4, 5, dtype=torch.bool)
    m[0, 1:3, 2:4] = True
    m[1, 3, 4] = True
    assert mask_to_box(m).tolist() == [[2, 1, 4, 3], [4, 3, 5, 4], [0, 0, 0, 0]]


# ------------------------------------------------------------------------------------------
# pixels and padding

def test_boxes_to_pixels_scales_and_clips():
    cells = torch.tensor([[0, 0, 2, 3], [1, 1, 30, 23], [29, 22, 30, 23]])
    px = boxes_to_pixels(cells, 16, (360, 470))  # padded to 368 x 480 = 23 x 30 cells
    assert px.dtype == torch.float32
    assert px.tolist() == [[0, 0, 32, 48], [16, 16, 470, 360], [464, 352, 470, 360]]
    # per-image sizes, stride pair (sy, sx)
    hw = torch.tensor([[100, 50], [30, 40], [1000, 1000]])
    px = boxes_to_pixels(cells, (8, 4), hw)
    assert px.tolist() == [[0, 0, 8, 24], [4, 8, 40, 30], [116, 176, 120, 184]]
    with pytest.raises(ValueError, match="image_hw"):
        boxes_to_pixels(cells, 16, torch.ones(2, 2))
    with pytest.raises(ValueError, match="boxes_cells"):
        boxes_to_pixels(torch.zeros(3, 5), 16, (10, 10))
    with pytest.raises(ValueError, match="stride"):
        boxes_to_pixels(cells, 0, (10, 10))


def test_pad_to_multiple():
    x = torch.randn(2, 3, 37, 50)
    p, hw = pad_to_multiple(x, 16)
    assert p.shape == (2, 3, 48, 64) and hw == (37, 50)
    assert torch.equal(p[..., :37, :50], x)
    assert p[..., 37:, :].abs().sum() == 0 and p[..., :, 50:].abs().sum() == 0
    q, hw = pad_to_multiple(p, 16)
    assert q is p and hw == (48, 64)
    p, hw = pad_to_multiple(x[0], (8, 32))
    assert p.shape == (3, 40, 64) and hw == (37, 50)
    with pytest.raises(ValueError, match="images"):
        pad_to_multiple(torch.zeros(5, 5), 16)


# ------------------------------------------------------------------------------------------
# TokenCut (extension beyond the paper)

def test_tokencut_finds_the_object():
    rect = (2, 4, 5, 6)
    feats = _scene(8, 8, [rect])
    res = tokencut(feats, (8, 8), return_details=True)
    assert res.boxes.tolist() == [list(rect)]
    assert torch.equal(res.mask[0], _region_mask(8, 8, [rect]))
    assert res.eigvec[0].flatten()[res.seed[0]] > 0  # sign convention
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        assert tokencut(feats.to(dtype), (8, 8)).tolist() == [list(rect)]


def test_tokencut_matches_reference_structured():
    # one object per image: with several equally strong objects the seed (largest |x|) is a
    # tie decided by round-off, which no two eigensolvers need to agree on
    g = torch.Generator().manual_seed(11)
    for grid in ((8, 8), (12, 9)):
        feats = _structured(4, *grid, 24, g, max_objects=1)
        got = tokencut(feats, grid).numpy()
        want = np.array([reference_tokencut_one(f, grid) for f in feats.numpy()])
        np.testing.assert_array_equal(got, want, err_msg=f"grid={grid}")


def test_tokencut_single_patch():
    assert tokencut(torch.randn(2, 1, 4), (1, 1)).tolist() == [[0, 0, 1, 1]] * 2


# ------------------------------------------------------------------------------------------
# validation

def test_validation_errors():
    f = torch.randn(2, 12, 4)
    with pytest.raises(ValueError, match=r"features must be 3-D \(B, N, D\)"):
        lost(f[0], (3, 4))
    with pytest.raises(ValueError, match=r"N=12 .*h \* w = 15"):
        lost(f, (3, 5))
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        lost(f, (3, 4), k=0)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        lost(f, (3, 4), k=2.5)
    with pytest.raises(ValueError, match="grid must be a pair"):
        lost(f, 12)
    with pytest.raises(ValueError, match="grid must be a pair"):
        lost(f, (0, 4))
    with pytest.raises(ValueError, match=r"features must be 3-D"):
        tokencut(f[0], (3, 4))
    with pytest.raises(ValueError, match=r"h \* w = 15"):
        tokencut(f, (5, 3))
    with pytest.raises(ValueError, match="eps must be > 0"):
        tokencut(f, (3, 4), eps=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(5)
    feats = _structured(16, 30, 23, 64, g).float()
    for k in (10, 100):
        assert torch.equal(lost(feats.cuda(), (30, 23), k=k).cpu(), lost(feats, (30, 23), k=k))
    rect = (2, 4, 5, 6)
    assert tokencut(_scene(8, 8, [rect]).cuda(), (8, 8)).tolist() == [list(rect)]


# ------------------------------------------------------------------ dilated ResNet backbone
def test_dilated_resnet50_is_torchvisions_replace_stride_with_dilation():
    """models.dilate_last_stage on a ResNet-50 against torchvision's own dilated ResNet-50 (an
    independent construction) with the same weights: the same stride-16 feature maps."""
    torch.manual_seed(0)
    ours = models.create("torchvision/resnet50", num_classes=10).eval()
    reference = torchvision.models.resnet50(num_classes=10, replace_stride_with_dilation=[False, False, True]).eval()
    reference.load_state_dict(ours.state_dict())
    assert models.dilatable(ours) and models.surface(ours).stride == 32
    assert study.backbone(ours, dilate_last_stage=True) is ours
    assert not models.dilatable(ours) and models.surface(ours).stride == 16
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        fmap = models.surface(ours).feature_map(x)
        expected = torch.nn.Sequential(*list(reference.children())[:-2])(x)
    assert fmap.shape[-2:] == (6, 4)
    torch.testing.assert_close(fmap, expected, rtol=1e-5, atol=1e-5)


def test_backbone_dilates_only_strided_cnn_stages():
    r18 = models.create("torchvision/resnet18", num_classes=3)
    assert models.surface(study.backbone(r18, dilate_last_stage=False)).stride == 32   # off: untouched
    assert models.surface(study.backbone(r18, dilate_last_stage=True)).stride == 16
    synthetic = models.create("timm/sv_resnet_s", num_classes=3)   # its last stage is dilated already
    assert models.surface(study.backbone(synthetic, dilate_last_stage=True)).stride == 8
    vit = models.create("timm/sv_vit_t", num_classes=3)
    assert models.surface(study.backbone(vit, dilate_last_stage=True)).stride == 8


def test_published_comparison_picks_the_comparable_rows():
    def row(**kw):
        base = dict(study="discovery", method="lost", metric="corloc", arch="torchvision/resnet50", iteration=0,
                    backbone_stride=16, dataset="voc07-trainval", value=0.30, ci_low=0.28, ci_high=0.32, n=5011,
                    run_id="a")
        return {**base, **kw}

    rows = pd.DataFrame([row(), row(dataset="coco20k", value=0.2, ci_low=0.19, ci_high=0.21, n=19817),
                         row(backbone_stride=32, run_id="stride32"), row(iteration=1, run_id="pruned"),
                         row(arch="torchvision/resnet18", run_id="r18"), row(method="tokencut", run_id="tc"),
                         row(study="prune", run_id="acc")])
    out = study.published_comparison(rows)
    assert out[["dataset", "published", "run_id", "n"]].values.tolist() == [
        ["voc07-trainval", 33.5, "a", 5011], ["coco20k", 25.5, "a", 19817]]
    assert out["measured"].tolist() == pytest.approx([30.0, 20.0])
    assert out["ci_low"].tolist() == pytest.approx([28.0, 19.0])
    assert (out["source"].str.startswith("published")).all()
    assert study.published_comparison(rows.drop(columns="backbone_stride")).empty   # older tables
    assert study.LOST_PUBLISHED["corloc"] == {"voc07-trainval": 33.5, "voc12-trainval": 39.1, "coco20k": 25.5}


def test_results_keep_optional_columns_and_read_tables_without_them(tmp_path):
    base = {c: 0 for c in results.COLUMNS}
    results.write([dict(base, precision="fp32", backbone_stride=16, extra="dropped")], tmp_path / "a" / "results.csv")
    results.write([base], tmp_path / "b" / "results.csv")
    a = pd.read_csv(tmp_path / "a" / "results.csv")
    assert list(a.columns) == results.COLUMNS + ["precision", "backbone_stride"]
    both = results.read(tmp_path)
    assert both["precision"].tolist()[0] == "fp32" and pd.isna(both["precision"].tolist()[1])
