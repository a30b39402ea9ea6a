"""sparsevis.attribution: output contract, batching, targets, known answers, sanity check, errors.

Small models and inputs only (synthetic-track models at 32-64 px, tiny torchvision ViT / Swin /
MobileNetV2 and ResNet-18 at 32-64 px); IG runs with 2 steps except where the defaults matter.
"""
from __future__ import annotations

import contextlib

import pytest
import torch
import torchvision
from torch import nn

from sparsevis import attribution as A
from sparsevis import models

MINMAX = {"gradcam", "cls_attention", "rollout"}
FAST = {"ig_smoothgrad": dict(n_steps=2)}


def _tiny(name: str) -> tuple[nn.Module, tuple[int, int]]:
    torch.manual_seed(0)
    if name == "tv_vit":
        from torchvision.models.vision_transformer import VisionTransformer

        model = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
                                  mlp_dim=32, num_classes=10)
        with torch.no_grad():
            model.heads.head.weight.normal_()      # torchvision zero-inits the head: no gradients
        return model, (32, 32)
    if name == "tv_swin":
        from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformer, SwinTransformerBlockV2

        return SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                               window_size=[2, 2], num_classes=10, block=SwinTransformerBlockV2,
                               downsample_layer=PatchMergingV2), (64, 64)
    if name == "tv_mobilenet_v2":
        return torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.25), (32, 32)
    if name == "tv_resnet18":
        return models.create("torchvision/resnet18", num_classes=10), (32, 32)
    model = models.create(f"timm/{name}", num_classes=10)
    return model, ((32, 32) if name.startswith("sv_resnet") else (64, 64))   # the ViT needs 64


MODEL_NAMES = ["sv_resnet_s", "sv_vit_t", "tv_vit", "tv_swin", "tv_mobilenet_v2", "tv_resnet18"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is faster, and on a shared, loaded machine two OpenMP
    threads that spin-wait for each other make this module several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def zoo():
    return {name: _tiny(name) for name in MODEL_NAMES}


def _images(hw, n=3, seed=1):
    return torch.randn(n, 3, *hw, generator=torch.Generator().manual_seed(seed))


def _cases():
    kinds = {"sv_resnet_s": "cnn", "sv_vit_t": "vit", "tv_vit": "vit", "tv_swin": "swin",
             "tv_mobilenet_v2": "cnn", "tv_resnet18": "cnn"}
    return [(model, method) for model in MODEL_NAMES for method in A.METHODS
            if kinds[model] in A.METHODS[method].kinds]


# ------------------------------------------------------------------------------ registry
def test_registry_metadata():
    assert list(A.METHODS) == ["ig_smoothgrad", "gradcam", "guided_gradcam", "cls_attention", "gradient", "rollout"]
    assert {n for n, c in A.METHODS.items() if c.paper} == {"ig_smoothgrad", "gradcam", "guided_gradcam", "cls_attention"}
    assert {n: c.label for n, c in A.METHODS.items()} == {
        "ig_smoothgrad": "IG-SmoothGrad", "gradcam": "Grad-CAM", "guided_gradcam": "Guided Grad-CAM",
        "cls_attention": "CLS attention", "gradient": "gradient", "rollout": "attention rollout"}
    assert len({c.color for c in A.METHODS.values()}) == len(A.METHODS)
    assert A.methods_for("cnn") == ["ig_smoothgrad", "gradcam", "guided_gradcam", "gradient"]
    assert A.methods_for("vit", paper_only=True) == ["ig_smoothgrad", "gradcam", "cls_attention"]
    ig = A.METHODS["ig_smoothgrad"].defaults
    assert (ig["n_steps"], ig["nt_samples"], ig["stdevs"], ig["baseline"]) == (50, 2, 1.0, 0.0)
    table = A.describe()
    assert list(table["method"]) == list(A.METHODS) and table["pooling"].str.len().min() > 0
    assert list(table["label"]) == [c.label for c in A.METHODS.values()]


def test_registry_has_no_import_cycle():
    """registry imports no module of the package; base and the methods import it (one way)."""
    import ast
    import inspect

    from sparsevis.attribution import attention, base, cam, gradients, registry

    def relative_imports(module):
        tree = ast.parse(inspect.getsource(module))
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0}

    assert relative_imports(registry) == set()
    assert "registry" in relative_imports(base)
    assert all("registry" in relative_imports(m) for m in (attention, cam, gradients))


def test_register_checks_metadata_and_orders_paper_first():
    from sparsevis.attribution import registry

    before = dict(A.METHODS)
    try:
        class Extension(A.Attribution):
            name, label, color, pooling, reference = "zz_ext", "ext", "#123456", "none", "none"

        class Paper(A.Attribution):
            name, label, color, pooling, reference, paper = "zz_paper", "p", "#654321", "none", "none", True

        registry.register(Extension)
        registry.register(Paper)
        names = list(A.METHODS)
        assert names.index("zz_paper") < names.index("gradient") and names[-1] == "zz_ext"
        with pytest.raises(ValueError, match="registered twice"):
            registry.register(type("Other", (Paper,), {}))
        with pytest.raises(ValueError, match="color='blue'"):
            registry.register(type("Blue", (Paper,), {"name": "zz_blue", "color": "blue"}))
        with pytest.raises(ValueError, match="label must be a non-empty string"):
            registry.register(type("NoLabel", (Paper,), {"name": "zz_nolabel", "label": ""}))
    finally:
        A.METHODS.clear()
        A.METHODS.update(before)


# ------------------------------------------------------------------------------ contract
@pytest.mark.parametrize("model_name,method", _cases())
def test_output_contract(zoo, model_name, method):
    model, hw = zoo[model_name]
    x = _images(hw, n=2)
    maps = A.attribute(method, model, x, **FAST.get(method, {}))
    assert maps.shape == (2, *hw) and maps.dtype == torch.float32 and maps.device == x.device
    assert torch.isfinite(maps).all() and (maps >= 0).all()
    assert (maps.flatten(1).amax(1) > 0).any()                      # not everything degenerate
    if method in MINMAX:
        top = maps.flatten(1).amax(1)
        assert ((top - 1).abs() < 1e-6).logical_or(top == 0).all() and (maps.flatten(1).amin(1) == 0).all()


@pytest.mark.parametrize("model_name,method", [c for c in _cases() if c[0] in ("sv_resnet_s", "sv_vit_t", "tv_swin", "tv_vit")])
def test_batched_equals_per_image(zoo, model_name, method):
    """Maps of a batch (in chunks of 2) equal the maps computed one image at a time. IG runs
    without noise (stdevs=0): with noise each image's sample depends on the RNG stream position."""
    model, hw = zoo[model_name]
    x = _images(hw)
    kw = dict(n_steps=2, stdevs=0.0) if method == "ig_smoothgrad" else {}
    batched = A.attribute(method, model, x, batch_size=2, **kw)
    single = torch.cat([A.attribute(method, model, x[i:i + 1], **kw) for i in range(len(x))])
    scale = single.flatten(1).amax(1).clamp_min(1e-30)[:, None, None]
    torch.testing.assert_close(batched / scale, single / scale, atol=1e-4, rtol=0)


def test_ig_seed_reproducible_and_noise_matters(zoo):
    model, hw = zoo["sv_resnet_s"]
    x = _images(hw, n=2)
    a = A.attribute("ig_smoothgrad", model, x, n_steps=2, seed=3)
    b = A.attribute("ig_smoothgrad", model, x, n_steps=2, seed=3)
    c = A.attribute("ig_smoothgrad", model, x, n_steps=2, seed=4)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


# ------------------------------------------------------------------------------ targets
def test_target_handling(zoo):
    model, hw = zoo["sv_resnet_s"]
    x = _images(hw)
    with torch.no_grad():
        logits = model.eval()(x)
    pred, other = logits.argmax(1), logits.argmin(1)
    default = A.attribute("gradcam", model, x)
    torch.testing.assert_close(default, A.attribute("gradcam", model, x, target=pred))
    torch.testing.assert_close(default, A.attribute("gradcam", model, x, target=pred.tolist()))
    assert not torch.allclose(default, A.attribute("gradcam", model, x, target=other))
    same = A.attribute("gradient", model, x, target=int(other[0]))
    torch.testing.assert_close(same[:1], A.attribute("gradient", model, x[:1], target=other[:1]))
    for bad in (torch.tensor([0, 1]), torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0, 1, 10]), -1, "cat"):
        with pytest.raises(ValueError, match="target"):
            A.attribute("gradient", model, x, target=bad)


def test_train_mode_is_restored_and_ignored(zoo):
    model, hw = zoo["sv_resnet_s"]
    x = _images(hw)
    expected = A.attribute("gradcam", model.eval(), x)
    model.train()
    try:
        torch.testing.assert_close(A.attribute("gradcam", model, x), expected)
        assert all(m.training for m in model.modules())
    finally:
        model.eval()


# ------------------------------------------------------------------------------ known answers
class _Linear(nn.Module):
    """logit_k = sum(w_k * x): no surface, so only the model-agnostic methods accept it."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return torch.einsum("bchw,kchw->bk", x, self.w)


def test_ig_linear_model_exact():
    g = torch.Generator().manual_seed(0)
    w, x = torch.randn(4, 3, 8, 6, generator=g), torch.randn(2, 3, 8, 6, generator=g)
    model, target = _Linear(w), torch.tensor([1, 3])
    # IG from the zero baseline of a linear model is x * w exactly; without noise SmoothGrad
    # averages identical samples; pooling = squared L2 norm over the colour channels.
    maps = A.attribute("ig_smoothgrad", model, x, target=target, stdevs=0.0)   # paper's 50 steps, 2 samples
    torch.testing.assert_close(maps, (x * w[target]).pow(2).sum(1), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(A.attribute("gradient", model, x, target=target), w[target].abs().sum(1))
    with pytest.raises(ValueError, match="gradcam.*surface"):
        A.attribute("gradcam", model, x)


class _ToyCNN(torchvision.models.ResNet):
    """A torchvision ResNet whose last stage is an 8x8 average pool of the image (so the
    last-stage activation A is known) and whose head is fc(global mean of A)."""

    def __init__(self, w: torch.Tensor):
        super().__init__(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1], num_classes=w.shape[0])
        self.layer4 = nn.AvgPool2d(8)
        self.fc = nn.Linear(3, w.shape[0], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(w)

    def forward(self, x):
        return self.fc(self.layer4(x).mean(dim=(2, 3)))


def test_gradcam_and_guided_gradcam_known_answer():
    w = torch.tensor([[2.0, -1.0, 0.5], [-1.0, 1.0, 0.0]])
    model = _ToyCNN(w).eval()
    x = torch.zeros(1, 3, 64, 64)
    x[0, 0, 16:24, 48:56] = 3.0          # grid cell (row 2, col 6): asymmetric on purpose
    x[0, 1, 40:48, 8:16] = 1.0           # cell (5, 1): pushes class 0 down, class 1 up
    act = nn.functional.avg_pool2d(x, 8)[0]                          # (3, 8, 8)
    for t in (0, 1):
        # d logit / d A_c = w_tc / 64 everywhere, so cam = relu(sum_c w_tc A_c) / 64.
        cam = torch.relu(torch.einsum("c,chw->hw", w[t], act))[None]
        expected = A.minmax(A.upsample(cam, (64, 64)))
        maps = A.attribute("gradcam", model, x, target=t)
        torch.testing.assert_close(maps, expected, atol=1e-5, rtol=0)
        peak = divmod(int(cam.flatten().argmax()), 8)
        assert peak == ((2, 6) if t == 0 else (5, 1))
        # Guided Grad-CAM: no ReLU, so guided backprop is the plain gradient w_tc / 4096 per
        # channel; times the nearest-upsampled cam, squared and summed over channels, not
        # normalised: R = (nearest cam / 64)^2 * sum_c (w_tc / 4096)^2.
        nearest = nn.functional.interpolate(cam[None] / 64, size=(64, 64), mode="nearest")[0]
        expected = nearest.pow(2) * (w[t] / 4096).pow(2).sum()
        assert expected.amax() > 0
        torch.testing.assert_close(A.attribute("guided_gradcam", model, x, target=t), expected,
                                   atol=0, rtol=1e-4)


def test_channel_energy_hand_built():
    """sum_c a_c^2: the signs cancel neither in the sum nor in the ranking (sum_c |a_c| would
    rank pixel 0 (|1|+|-2|+|2| = 5) above pixel 1 (0+3+|-1| = 4); squares give 9 and 10)."""
    attr = torch.tensor([[1.0, 0.0], [-2.0, 3.0], [2.0, -1.0]]).reshape(1, 3, 1, 2)
    torch.testing.assert_close(A.channel_energy(attr), torch.tensor([[[9.0, 10.0]]]))


def test_minmax_degenerate_and_range():
    maps = torch.stack([torch.full((4, 5), 3.0), torch.arange(20.0).reshape(4, 5), torch.full((4, 5), torch.nan)])
    out = A.minmax(maps)
    assert (out[0] == 0).all() and out[1].min() == 0 and out[1].max() == 1 and out[2].isnan().all()


def _captum_guided_gradcam(model, layer, x, target):
    """captum's GuidedGradCam, its guided backpropagation also overriding ReLU6 (captum hooks
    only nn.ReLU): the reference for the Guided Grad-CAM computed without captum."""
    import warnings

    from captum._utils.common import _register_backward_hook
    from captum.attr import GuidedBackprop, GuidedGradCam

    class GuidedBackpropReLU6(GuidedBackprop):
        def _register_hooks(self, module):
            if isinstance(module, nn.ReLU6):
                self.backward_hooks.extend(_register_backward_hook(module, self._backward_hook, self))
            else:
                super()._register_hooks(module)

    ggc = GuidedGradCam(model, layer)
    ggc.guided_backprop = GuidedBackpropReLU6(model)
    with torch.enable_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        return ggc.attribute(x.clone().requires_grad_(True), target=target).detach()


@pytest.mark.parametrize("name", ["sv_resnet_s", "tv_mobilenet_v2", "tv_resnet18"])
def test_guided_gradcam_matches_captum(zoo, name):
    """Guided Grad-CAM in one pass vs captum's two (ReLU6 hooked too; torchvision's ResNet
    calls one inplace ReLU module several times per block)."""
    model, _ = zoo[name]
    model.eval()
    x, target = _images((128, 96), n=3), torch.tensor([0, 1, 2])
    expected = _captum_guided_gradcam(model, models.surface(model).last_stage, x, target).pow(2).sum(1)
    assert expected.flatten(1).amax(1).gt(0).sum() >= 2     # not a case of all-zero maps
    with _counting_forwards(model) as forwards:
        maps = A.attribute("guided_gradcam", model, x, target=target)
    assert forwards == [1]                                  # one pass: no ReLU after the last stage
    torch.testing.assert_close(maps, expected, atol=1e-9 * float(expected.max()), rtol=1e-4)


@contextlib.contextmanager
def _counting_forwards(model):
    calls = [0]
    handle = model.register_forward_pre_hook(lambda m, args: calls.__setitem__(0, calls[0] + 1))
    try:
        yield calls
    finally:
        handle.remove()


def test_guided_backprop_overrides_relu6(zoo):
    """MobileNetV2 has ReLU6, not ReLU: without overriding it, guided backpropagation would be
    the plain gradient there."""
    from sparsevis.attribution.cam import guided_gradients

    model, hw = zoo["tv_mobilenet_v2"]
    model.eval()
    x, t = _images(hw, n=2), torch.tensor([1, 2])
    guided, _, _ = guided_gradients(model, models.surface(model).last_stage, x, t)
    xi = x.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(model(xi).gather(1, t[:, None]).sum(), xi)
    assert not torch.allclose(guided, plain)


class _ReluHeadResNet(torchvision.models.ResNet):
    """A ResNet-10 whose head has a ReLU between the last stage and the logits: there the
    guided gradient at the layer is not Grad-CAM's plain one, so Guided Grad-CAM takes a
    second pass."""

    def __init__(self):
        torch.manual_seed(0)
        super().__init__(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1])
        self.fc = nn.Sequential(nn.Linear(512, 16), nn.ReLU(), nn.Linear(16, 4))


def test_guided_gradcam_with_a_unit_after_the_layer():
    from sparsevis.attribution.cam import _pass_positive, activation_and_grad, guided_gradients

    model = _ReluHeadResNet().eval()
    x, target = _images((64, 64), n=3), torch.tensor([0, 3, 1])
    with _counting_forwards(model) as forwards:
        _, act, grad = guided_gradients(model, model.layer4, x, target)
    assert forwards == [2]                                  # the guided pass, then a plain one
    plain_act, plain_grad = activation_and_grad(model, model.layer4, x, target)
    torch.testing.assert_close((act, grad), (plain_act, plain_grad))
    # the case matters: through the head's guided ReLU the layer's gradient is another one
    handle = model.fc[1].register_forward_hook(lambda m, i, o: [o.register_hook(_pass_positive)] and None)
    try:
        _, guided_at_layer = activation_and_grad(model, model.layer4, x, target)
    finally:
        handle.remove()
    assert not torch.allclose(guided_at_layer, plain_grad)
    expected = _captum_guided_gradcam(model, model.layer4, x, target).pow(2).sum(1)
    maps = A.attribute("guided_gradcam", model, x, target=target)
    torch.testing.assert_close(maps, expected, atol=1e-9 * float(expected.max()), rtol=1e-4)
    with pytest.raises(ValueError, match="did not run"):
        guided_gradients(model, nn.ReLU(), x, target)


# ------------------------------------------------------------------------------ ViT orientation
def _one_block_vit(kind: str) -> nn.Module:
    """A one-block ViT whose patch tokens are identical except where the image is not zero
    (position embeddings zeroed), so every ViT map must single out that patch."""
    torch.manual_seed(0)
    if kind == "timm":
        from timm.models.vision_transformer import VisionTransformer

        # a patchify stem (sv_vit_t's convolutional stem mixes neighbouring patches)
        model = VisionTransformer(img_size=64, patch_size=8, embed_dim=64, depth=1, num_heads=4,
                                  num_classes=10)
        with torch.no_grad():
            model.pos_embed.zero_()
            model.cls_token.normal_()
    else:
        from torchvision.models.vision_transformer import VisionTransformer

        model = VisionTransformer(image_size=64, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16,
                                  mlp_dim=32, num_classes=10)
        with torch.no_grad():
            model.encoder.pos_embedding.zero_()
            model.class_token.normal_()
            model.heads.head.weight.normal_()
    return model.eval()


@pytest.mark.parametrize("kind", ["timm", "torchvision"])
def test_vit_maps_not_transposed(kind):
    """Patch (row 1, col 5) of the 8x8 grid differs; a transposed map would mark (5, 1)."""
    model = _one_block_vit(kind)
    x = torch.zeros(1, 3, 64, 64)
    x[0, :, 8:16, 40:48] = 3.0
    surf = models.surface(model)
    att = surf.cls_attention(x).sum(1)[0]
    odd = (att - att.median()).abs()
    assert divmod(int(odd.flatten().argmax()), 8) == (1, 5) and odd[5, 1] < 1e-6
    for method in ("cls_attention", "rollout", "gradcam"):
        m = A.attribute(method, model, x, target=0)[0]
        centre, mirror, far = m[12, 44], m[44, 12], m[60, 4]
        assert (centre - mirror).abs() > 0.5, method
        assert (mirror - far).abs() < 1e-4, method


def test_vit_gradcam_layer_choice(zoo):
    """With CLS pooling the last block's output patch tokens do not reach the logits: Grad-CAM
    on them is identically zero, which is why vit_layer='auto' reads the attention's input."""
    model, hw = zoo["sv_vit_t"]
    x = _images(hw)
    assert (A.attribute("gradcam", model, x, vit_layer="output") == 0).all()
    auto = A.attribute("gradcam", model, x)
    torch.testing.assert_close(auto, A.attribute("gradcam", model, x, vit_layer="attn_input"))
    assert (auto.flatten(1).amax(1) == 1).all()


def test_block_qk_matches_surface(zoo):
    for name in ("sv_vit_t", "tv_vit"):
        model, hw = zoo[name]
        x = _images(hw, n=2)
        surf = models.surface(model)
        with torch.no_grad():
            per_block = A.block_qk(surf, x)
            q, k = surf._qk(x)
        assert len(per_block) == len(surf.blocks)
        torch.testing.assert_close(per_block[-1][0], q)
        torch.testing.assert_close(per_block[-1][1], k)


# ------------------------------------------------------------------------------ sanity check
def test_spearman_matches_scipy():
    from scipy.stats import spearmanr

    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (3, 40), generator=g).float()   # many ties
    b = a + torch.randint(0, 4, (3, 40), generator=g).float()
    got = A.spearman(a, b)
    for i in range(3):
        assert abs(float(got[i]) - spearmanr(a[i], b[i]).statistic) < 1e-6
    assert A.spearman(a, a).sub(1).abs().max() < 1e-6
    assert torch.isnan(A.spearman(torch.ones(1, 5), a[:1, :5])).all()


@pytest.mark.parametrize("model_name", ["sv_resnet_s", "sv_vit_t"])
def test_randomisation_check_maps_change(zoo, model_name):
    """Adebayo et al.: maps of a re-initialised copy must differ (random-init model vs a
    differently seeded re-init; fitting a model first costs a minute here). Gradient and IG keep
    some input structure on a CNN (correlation about 0.4-0.5), every other method about 0.
    Grad-CAM maps of an untrained ViT are often all zero (the ReLU of a class score that every
    token lowers), which leaves the correlation undefined (NaN): for sv_vit_t the re-inits with
    seeds 1 and 3 have all-zero Grad-CAM maps. Three seeds are pooled, and at least a third of
    the correlations must be defined."""
    model, hw = zoo[model_name]
    x = _images(hw, n=6)
    kind = models.surface(model).kind
    for method in A.methods_for(kind):
        rho = torch.cat([A.randomisation_check(method, model, x, seed=s, **FAST.get(method, {}))
                         for s in (1, 2, 3)])
        assert rho.shape == (18,) and int(rho.isfinite().sum()) >= 6, (method, rho)
        assert float(rho.nanmean()) < (0.7 if method in ("ig_smoothgrad", "gradient") else 0.5), (method, rho)


def test_randomise_keeps_masks_and_original():
    from sparsevis import prune

    torch.manual_seed(0)
    model = models.create("timm/sv_resnet_s", num_classes=10)
    prune.global_magnitude(model, 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clone = A.randomise(model, seed=1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert prune.sparsity(clone) == pytest.approx(prune.sparsity(model))
    assert not torch.equal(clone.fc.weight, model.fc.weight)
    maps = A.attribute("guided_gradcam", model, _images((32, 32), n=2))     # pruned models just work
    assert maps.shape == (2, 32, 32)


# ------------------------------------------------------------------------------ errors
def test_errors(zoo):
    cnn, hw = zoo["sv_resnet_s"]
    vit, _ = zoo["sv_vit_t"]
    x = _images(hw, n=1)
    with pytest.raises(ValueError, match=r"'lime'.*accepted: ig_smoothgrad, gradcam, guided_gradcam"):
        A.attribute("lime", cnn, x)
    with pytest.raises(ValueError, match=r"'cls_attention' does not support .*cnn.*kinds: vit.*"
                                         r"Methods for a cnn: ig_smoothgrad, gradcam, guided_gradcam, gradient"):
        A.attribute("cls_attention", cnn, x)
    with pytest.raises(ValueError, match="'guided_gradcam' does not support.*vit"):
        A.attribute("guided_gradcam", vit, x)
    with pytest.raises(ValueError, match="unknown parameter.*n_step.*accepted: n_steps"):
        A.attribute("ig_smoothgrad", cnn, x, n_step=3)
    with pytest.raises(ValueError, match="stdevs"):
        A.attribute("ig_smoothgrad", cnn, x, stdevs=-1.0)
    with pytest.raises(ValueError, match="vit_layer"):
        A.attribute("gradcam", vit, x, vit_layer="last")
    with pytest.raises(ValueError, match="images"):
        A.attribute("gradient", cnn, x[0])
    with pytest.raises(ValueError, match="batch_size"):
        A.attribute("gradient", cnn, x, batch_size=0)


@pytest.mark.parametrize("name", ["sv_resnet_s", "tv_mobilenet_v2", "tv_resnet18"])
def test_cnn_gradcam_matches_captum(zoo, name):
    """The CNN Grad-CAM is computed without captum; captum's LayerGradCam is the reference."""
    from captum.attr import LayerGradCam

    model, _ = zoo[name]
    model.eval()
    hw = (128, 96)                                 # a 4 x 3 grid at stride 32: maps that vary
    x = _images(hw, n=4)
    target = torch.tensor([0, 1, 2, 1])
    layer = models.surface(model).last_stage
    with torch.enable_grad():
        cam = LayerGradCam(model, layer).attribute(x.clone().requires_grad_(True), target=target,
                                                   relu_attributions=True)[:, 0]
    expected = A.minmax(A.upsample(cam.detach(), hw))
    assert expected.flatten(1).amax(1).gt(0).sum() >= 2     # not a case of all-zero maps
    torch.testing.assert_close(A.attribute("gradcam", model, x, target=target), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right",
                                  "riemann_middle"])
def test_ig_integration_rules_are_captums(rule):
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters(rule)
    for n in (2, 3, 8, 50):
        points, weights = A.gradients.integration_points(rule, n)
        torch.testing.assert_close(torch.tensor(points, dtype=torch.float64),   # captum's linspace: float32
                                   torch.tensor(alphas(n), dtype=torch.float64), atol=1e-7, rtol=0)
        assert abs(sum(weights) - 1) < 1e-12
        # captum's trapezoid weighs points 1/(n-1) apart with 1/n: its weights sum to (n-1)/n
        captum_weights = torch.tensor(step_sizes(n), dtype=torch.float64) * (
            n / (n - 1) if rule == "riemann_trapezoid" else 1)
        torch.testing.assert_close(torch.tensor(weights, dtype=torch.float64), captum_weights, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", ["sv_resnet_s", "tv_mobilenet_v2", "sv_vit_t"])
def test_ig_smoothgrad_matches_captum(zoo, name):
    """IG-SmoothGrad is computed without captum (on a CNN through its BatchNorm-folded,
    channels-last copy); captum's IntegratedGradients is the reference: without noise directly,
    with noise on the same noisy copies (the seed's draw), averaged over them as NoiseTunnel's
    smoothgrad does."""
    from captum.attr import IntegratedGradients

    model, hw = zoo[name]
    model.eval()
    x = _images(hw, n=3)
    target = torch.tensor([0, 3, 1])
    baseline = torch.full((3, *hw), 0.25)

    def captum_ig(images, steps, rule="gausslegendre"):
        with torch.enable_grad():
            return IntegratedGradients(model).attribute(images.clone().requires_grad_(True), baselines=baseline.expand_as(images),
                                                        target=target, n_steps=steps, method=rule).detach()

    for steps, rule, chunk in ((5, "gausslegendre", None), (4, "riemann_middle", 7), (3, "riemann_left", 2)):
        ours = A.attribute("ig_smoothgrad", model, x, target=target, stdevs=0.0, nt_samples=1, n_steps=steps,
                           baseline=baseline, integration=rule, internal_batch_size=chunk)
        expected = captum_ig(x, steps, rule).pow(2).sum(1)
        assert expected.flatten(1).amax(1).gt(0).all()
        torch.testing.assert_close(ours, expected, atol=1e-7 * float(expected.max()), rtol=1e-3)
    ours = A.attribute("ig_smoothgrad", model, x, target=target, stdevs=0.5, nt_samples=3, n_steps=3,
                       baseline=baseline, seed=11)
    with A.base.seeded(11, x.device):
        noisy = x + 0.5 * torch.randn((3, *x.shape))
    expected = torch.stack([captum_ig(n, 3) for n in noisy]).mean(0).pow(2).sum(1)
    torch.testing.assert_close(ours, expected, atol=1e-7 * float(expected.max()), rtol=1e-3)
    sliced = A.attribute("ig_smoothgrad", model, x, target=target, stdevs=0.5, nt_samples=3, n_steps=3,
                         baseline=baseline, seed=11, internal_batch_size=2)   # passes of 2 images and 1
    torch.testing.assert_close(sliced, expected, atol=1e-7 * float(expected.max()), rtol=1e-3)


def test_gradient_matches_captum_saliency(zoo):
    from captum.attr import Saliency

    model, hw = zoo["tv_mobilenet_v2"]
    model.eval()
    x, target = _images(hw, n=3), torch.tensor([2, 0, 5])
    with torch.enable_grad():
        expected = Saliency(model).attribute(x.clone().requires_grad_(True), target=target, abs=True).sum(1)
    torch.testing.assert_close(A.attribute("gradient", model, x, target=target), expected, atol=1e-6, rtol=1e-4)
