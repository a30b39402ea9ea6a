import pytest
import torch
import torchvision
from torch import nn

from sparsevis import models


def test_create_resolves_sources():
    assert models.arch_name(models.create("resnet18")) == "torchvision/resnet18"
    assert models.arch_name(models.create("timm/resnet18")) == "timm/resnet18"
    assert models.arch_name(models.create("tv/resnet18")) == "torchvision/resnet18"
    assert models.arch_name(models.create("sv_vit_t", num_classes=10)) == "timm/sv_vit_t"
    with pytest.raises(ValueError, match="unknown model source 'hub'"):
        models.create("hub/resnet18")
    with pytest.raises(ValueError, match="timm models take a local weights file"):
        models.create("timm/resnet18", weights="IMAGENET1K_V1")


def test_real_mobilenet_weights_load_offline():
    model = models.create("torchvision/mobilenet_v2", weights="IMAGENET1K_V1").eval()
    x = torch.zeros(1, 3, 224, 224)
    with torch.no_grad():
        assert model(x).shape == (1, 1000)
    # real weights, not a random init: BN running statistics were learned
    assert not torch.allclose(model.features[1].conv[0][1].running_var, torch.ones(32))


@pytest.mark.parametrize("name,size,grid", [("timm/sv_resnet_s", 64, 8), ("timm/sv_resnet_m", 64, 8),
                                            ("timm/resnet18", 224, 7), ("torchvision/mobilenet_v2", 224, 7)])
def test_cnn_feature_map(name, size, grid):
    model = models.create(name).eval()
    surf = models.surface(model)
    assert surf.kind == "cnn" and surf.stride * grid == size
    with torch.no_grad():
        fmap = surf.feature_map(torch.randn(2, 3, size, size))
    assert fmap.shape[0] == 2 and fmap.shape[-2:] == (grid, grid)


def test_dilation_doubles_the_grid_and_keeps_weights():
    model = models.create("timm/resnet18").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    models.dilate_last_stage(model)
    assert models.surface(model).stride == 16
    with torch.no_grad():
        assert models.surface(model).feature_map(torch.randn(1, 3, 224, 224)).shape[-2:] == (14, 14)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="needs a CNN"):
        models.dilate_last_stage(models.create("timm/sv_vit_t"))


def _mha_reference(att: nn.MultiheadAttention, inp: torch.Tensor):
    """Per-head attention weights straight from torch's MultiheadAttention."""
    _, weights = att(inp, inp, inp, need_weights=True, average_attn_weights=False)
    return weights


def test_torchvision_vit_keys_and_cls_attention_match_mha():
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                 hidden_dim=16, mlp_dim=32, num_classes=3).eval()
    surf = models.surface(model)
    x = torch.randn(2, 3, 32, 32)
    captured = {}
    block = model.encoder.layers[-1]
    h = block.ln_1.register_forward_hook(lambda m, i, o: captured.__setitem__("x", o))
    with torch.no_grad():
        model(x)
        h.remove()
        inp = captured["x"]
        att = block.self_attention
        keys = inp @ att.in_proj_weight[16:32].T + att.in_proj_bias[16:32]
        assert torch.allclose(surf.keys(x), keys[:, 1:], atol=1e-5)
        ref = _mha_reference(att, inp)[:, :, 0, 1:].reshape(2, 2, 4, 4)
        assert torch.allclose(surf.cls_attention(x), ref, atol=1e-5)


def test_torchvision_vit_runs_at_other_sizes_with_interpolated_position_embeddings():
    """LOST runs at full resolution. Reference: torchvision's own forward on a 48 px twin of a
    32 px ViT whose position embeddings are the 4x4 grid's, interpolated bicubically to 6x6."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    kw = dict(patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=3)
    model = torchvision.models.VisionTransformer(image_size=32, **kw).eval()
    twin = torchvision.models.VisionTransformer(image_size=48, **kw).eval()
    state = model.state_dict()
    pos = state["encoder.pos_embedding"]
    grid = F.interpolate(pos[:, 1:].reshape(1, 4, 4, 16).permute(0, 3, 1, 2), size=(6, 6),
                         mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)
    twin.load_state_dict({**state, "encoder.pos_embedding": torch.cat([pos[:, :1], grid], 1)})
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        assert torch.allclose(models.surface(model).keys(x), models.surface(twin).keys(x), atol=1e-5)
        assert torch.allclose(models.surface(model).cls_attention(x), models.surface(twin).cls_attention(x),
                              atol=1e-6)
        assert models.surface(model).keys(torch.randn(1, 3, 48, 40)).shape == (1, 30, 16)   # 6x5 grid
    with pytest.raises(ValueError, match="multiple of the patch size"):
        models.surface(model).keys(torch.randn(1, 3, 44, 40))


def test_timm_vit_cls_attention_matches_unfused_attention():
    torch.manual_seed(0)
    model = models.create("timm/sv_vit_t", num_classes=3).eval()
    att = model.blocks[-1].attn
    att.fused_attn = False  # so the attention matrix passes through attn_drop, where we read it
    captured = {}
    h = att.attn_drop.register_forward_hook(lambda m, i, o: captured.__setitem__("a", o))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        model(x)
        h.remove()
        ref = captured["a"][:, :, 0, 1:].reshape(2, 4, 8, 8)
        surf = models.surface(model)
        assert torch.allclose(surf.cls_attention(x), ref, atol=1e-5)
        assert surf.keys(x).shape == (2, 64, 64)
        assert surf.feature_map(x).shape == (2, 64, 8, 8)


def test_surface_refuses_unknown_families():
    with pytest.raises(ValueError, match="no surface for"):
        models.surface(nn.Sequential(nn.Linear(2, 2)))
