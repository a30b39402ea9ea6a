"""The batched feature-extraction path: on the CPU it equals a plain per-batch loop exactly."""
from __future__ import annotations

import functools

import pytest
import torch

from sparsevis import features, models


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return models.create(name, num_classes=10)


def _images(n: int = 10, size: int = 64) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def _plain(fn, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The reference: a per-batch loop, no loader, no autocast."""
    with torch.no_grad():
        return torch.cat([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


@pytest.fixture(scope="module")
def resnet():
    return _model("timm/sv_resnet_s").eval()


@pytest.fixture(scope="module")
def vit():
    return _model("timm/sv_vit_t").eval()


@pytest.mark.parametrize("which", ["resnet", "vit"])
def test_logits_equal_plain_loop(which, request):
    model = request.getfixturevalue(which)
    x = _images()
    ref = _plain(model, x, 4)
    # amp / compile are CUDA-only; channels-last (CNNs) changes the CPU results by rounding only
    same = torch.equal if which == "vit" else functools.partial(torch.allclose, rtol=1e-4, atol=1e-5)
    got = features.extract(model, x, device="cpu", batch_size=4, amp=True, channels_last=True,
                           compile=True, progress=False)
    assert got.dtype == torch.float32 and got.shape == (10, 10)
    assert same(got, ref)
    exact = features.extract(model, x, device="cpu", batch_size=4, channels_last=False, progress=False)
    assert torch.equal(exact, ref)
    assert next(model.parameters()).is_contiguous()   # the memory format is restored
    # the same through a DataLoader of (image, label) pairs and a Dataset
    ds = torch.utils.data.TensorDataset(x, torch.arange(10))
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    got2, labels = features.extract(model, loader, device="cpu", progress=False, return_rest=True)
    assert same(got2, ref) and torch.equal(labels[0], torch.arange(10))
    assert same(features.extract(model, ds, device="cpu", batch_size=4, progress=False), ref)


def test_cpu_slices_of_a_cnn_batch(resnet, vit, monkeypatch):
    """On the CPU a CNN's batch runs in cache-sized slices: the same outputs within rounding,
    for logits and surface outputs; not for ViTs nor for callables (their outputs may not be
    batch-major), nor on the exact path."""
    assert [features.cpu_slice(torch.empty(10, 3, s, s)) for s in (224, 112, 64, 32)] == [4, 16, 10, 10]
    assert features.cpu_slice(torch.empty(2, 3, 1024, 1024)) == 1
    x = _images(10)
    sizes = []
    monkeypatch.setattr(features, "cpu_slice", lambda t: sizes.append(len(t)) or 3)
    logits = features.extract(resnet, x, device="cpu", batch_size=8, progress=False)
    fmap = features.extract(resnet, x, "feature_map", device="cpu", batch_size=8, progress=False)
    assert sizes == [8, 2, 8, 2]
    torch.testing.assert_close(logits, _plain(resnet, x, 8), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fmap, _plain(models.surface(resnet).feature_map, x, 8), rtol=1e-4, atol=1e-5)
    features.extract(resnet, x, device="cpu", batch_size=8, channels_last=False, progress=False)
    features.extract(resnet, x, lambda t: resnet(t).sum(), device="cpu", batch_size=8, progress=False)
    features.extract(vit, x, device="cpu", batch_size=8, progress=False)
    assert sizes == [8, 2, 8, 2]


def test_surface_outputs_equal_plain_loop(resnet, vit):
    x = _images(6)
    surf_r, surf_v = models.surface(resnet), models.surface(vit)
    fmap = features.extract(resnet, x, "feature_map", device="cpu", batch_size=4, channels_last=False,
                            progress=False)
    assert torch.equal(fmap, _plain(surf_r.feature_map, x, 4))
    assert fmap.shape == (6, 64, 8, 8)
    keys = features.extract(vit, x, "keys", device="cpu", batch_size=4, progress=False)
    assert torch.equal(keys, _plain(surf_v.keys, x, 4))
    assert keys.shape == (6, 64, 64)
    # a bound surface method works as the callable too
    assert torch.equal(features.extract(vit, x, surf_v.cls_attention, device="cpu", batch_size=4,
                                        progress=False), _plain(surf_v.cls_attention, x, 4))


def test_structured_outputs_and_iterate(vit):
    x = _images(5)
    both = features.extract(vit, x, lambda t: {"logits": vit(t), "tokens": (vit.forward_features(t),)},
                            device="cpu", batch_size=2, progress=False)
    assert both["logits"].shape == (5, 10) and both["tokens"][0].shape == (5, 65, 64)
    parts = []
    for out, rest in features.iterate(vit, (x, torch.arange(5)), device="cpu", batch_size=2, progress=False):
        # the caller's code between batches runs in its own grad mode, not in inference mode
        assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
        parts.append((out, rest))
    assert [len(o) for o, _ in parts] == [2, 2, 1]
    assert torch.equal(torch.cat([r[0] for _, r in parts]), torch.arange(5))
    out = parts[0][0]
    out.add_(1)  # outputs are ordinary tensors, not inference tensors
    assert not out.is_inference()


def test_model_state_restored_and_errors(resnet):
    resnet.train()
    features.extract(resnet, _images(2), device="cpu", progress=False)
    assert resnet.training
    resnet.eval()
    with pytest.raises(ValueError, match="fn="):
        features.extract(resnet, _images(2), "attention_maps", device="cpu", progress=False)
    with pytest.raises(ValueError, match="no batch"):
        features.extract(resnet, torch.empty(0, 3, 64, 64), device="cpu", progress=False)
    with pytest.raises(ValueError, match="different shapes"):
        features.extract(resnet, [torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 32, 32)], "feature_map",
                         device="cpu", progress=False)


def test_make_loader_defaults():
    x = torch.arange(10).float()
    loader = features.make_loader(x, batch_size=4, device="cpu")
    assert loader.num_workers == 0 and not loader.pin_memory
    assert [b.tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert features.is_cnn(models.create("timm/sv_resnet_s")) and not features.is_cnn(models.create("timm/sv_vit_t"))


class _FakeStream:
    def __init__(self, device):
        self.device = device


def test_sync_event_recorded_on_target_device_stream(monkeypatch):
    """With device=cuda:1 while cuda:0 is current, the fence of a batch's non-blocking copies must
    sit on cuda:1's stream (where they were queued), and be waited on before the host reads."""
    log = []

    class FakeEvent:
        def record(self, stream=None):   # torch records on the current device's stream by default
            self.stream = stream or torch.cuda.current_stream()
            log.append(("record", self.stream.device))

        def synchronize(self):
            log.append(("synchronize", self.stream.device))

    def current_stream(device=None):
        return _FakeStream(torch.device("cuda", 0) if device is None else torch.device(device))

    monkeypatch.setattr(torch.cuda, "current_stream", current_stream)
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    target = torch.device("cuda", 1)
    event = features._sync_point(target)
    host = torch.zeros(2)
    out, rest = features._finish(({"x": host}, "labels", event))
    assert log == [("record", target), ("synchronize", target)]
    assert out["x"] is host and rest == "labels"


def test_extract_runs_strict_fp32_unless_asked(resnet):
    """LOST features and decisions feed thresholds: fp32 without TF32 by default; autocast only
    when a precision asks for it."""
    seen = []

    def spy(x):
        seen.append((torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision,
                     torch.is_autocast_enabled("cpu")))
        return resnet(x)

    before = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    x = _images(2)
    out = features.extract(resnet, x, spy, device="cpu", progress=False)
    assert seen == [("ieee", "ieee", False)] and out.dtype == torch.float32
    assert (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision) == before
    seen.clear()
    out = features.extract(resnet, x, spy, device="cpu", precision="bf16", progress=False)
    assert seen[0][2] and out.dtype == torch.float32   # autocast in bf16, returned as fp32
    with pytest.raises(ValueError, match="give one of them"):
        features.extract(resnet, x, device="cpu", precision="bf16", amp=False, progress=False)
    with pytest.raises(ValueError, match="precision='fp16' on device cpu"):
        features.extract(resnet, x, device="cpu", precision="fp16", progress=False)


def _conv_bn_net() -> torch.nn.Module:
    """Conv -> BN -> ReLU twice, with BN statistics and affine parameters far from identity and
    half of the first convolution's weights pruned to zero."""
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    with torch.no_grad():
        for bn in (net[1], net[4]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 3)
            bn.weight.uniform_(0.5, 2)
            bn.bias.uniform_(-1, 1)
        net[0].weight.view(-1)[::2] = 0
    return net.eval()


def test_fold_batchnorm_same_function_and_zeros_kept(monkeypatch):
    net = _conv_bn_net()
    folded = features.fold_batchnorm(net)
    assert folded is not None
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = _images(4, 16)
    with torch.no_grad():
        assert torch.allclose(folded(x), net(x), atol=1e-5)
    conv = next(m for m in folded.modules() if isinstance(m, torch.nn.Conv2d))
    assert torch.equal(conv.weight.view(-1)[::2], torch.zeros_like(conv.weight.view(-1)[::2]))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())   # the model is untouched
    # extract's fast path (channels-last CNN, logits) runs the folded copy: equal within rounding
    calls = []
    monkeypatch.setattr(features, "fold_batchnorm", lambda m: calls.append(m) or folded)
    fast = features.extract(net, x, channels_last=True, progress=False, device="cpu")
    assert calls == [net] and torch.allclose(fast, _plain(net, x, 64), atol=1e-5)
    features.extract(net, x, channels_last=False, progress=False, device="cpu")
    features.extract(net, x, lambda t: net[:3](t), channels_last=True, progress=False, device="cpu")
    assert calls == [net]   # not on the exact path, nor for other outputs than the logits


def test_fold_batchnorm_refuses_training_mode_and_skips_what_it_cannot_fold(vit):
    with pytest.raises(ValueError, match="eval mode"):
        features.fold_batchnorm(_conv_bn_net().train())
    no_norm = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten()).eval()
    assert features.fold_batchnorm(no_norm) is None
    bn_first = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 4, 3)).eval()
    assert features.fold_batchnorm(bn_first) is None   # a BatchNorm before a convolution stays


def test_logits_cache_computes_each_image_once_per_model(tmp_path, caplog):
    model = _model("timm/sv_resnet_s").eval()
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(len(args[0])))   # unfolded path: hooks run
    x = _images(12, size=32)
    plain = features.extract(model, x, device="cpu", channels_last=False, progress=False)
    assert not list(tmp_path.iterdir()) and sum(seen) == 12          # no cache outside the block
    with features.logits_cache(tmp_path):
        first = features.extract(model, x[:8], device="cpu", channels_last=False, progress=False)
        seen.clear()
        again = features.extract(model, x[[7, 2, 5]], device="cpu", channels_last=False, progress=False)
        assert seen == []                                          # every image known: no forward
        both = features.extract(model, x, device="cpu", channels_last=False, batch_size=3, progress=False)
        assert sum(seen) == 4                                      # only the 4 new images
        torch.testing.assert_close(first, plain[:8], rtol=1e-5, atol=1e-5)
        assert torch.equal(again, first[[7, 2, 5]]) and torch.equal(both[:8], first)
        torch.testing.assert_close(both, plain, rtol=1e-5, atol=1e-5)
        # other weights (one weight pruned) are another model: computed, not served
        with torch.no_grad():
            next(model.parameters()).view(-1)[0] = 0
        seen.clear()
        features.extract(model, x[:2], device="cpu", channels_last=False, progress=False)
        assert sum(seen) == 2 and len(list(tmp_path.glob("*.pt"))) == 2
        # not logits: nothing cached
        features.extract(model, x[:2], "feature_map", device="cpu", channels_last=False, progress=False)
        assert len(list(tmp_path.glob("*.pt"))) == 2
        # a damaged file is computed again and replaced
        for f in tmp_path.glob("*.pt"):
            f.write_bytes(b"garbage")
        seen.clear()
        with caplog.at_level("WARNING", logger="sparsevis"):
            features.extract(model, x[:2], device="cpu", channels_last=False, progress=False)
        assert sum(seen) == 2 and "unreadable" in caplog.text
        seen.clear()
        features.extract(model, x[:2], device="cpu", channels_last=False, progress=False)
        assert seen == []
        # an image given twice is computed for both places and stored once
        dup = torch.cat([x[9:11], x[9:11]])
        seen.clear()
        twice = features.extract(model, dup, device="cpu", channels_last=False, progress=False)
        assert sum(seen) == 4 and torch.equal(twice[:2], twice[2:])
        seen.clear()
        assert torch.equal(features.extract(model, x[9:11], device="cpu", channels_last=False, progress=False),
                           twice[:2]) and seen == []
        # images changed in place are other images (their digests are remembered per tensor)
        features.extract(model, x, device="cpu", channels_last=False, progress=False)
        seen.clear()
        x.mul_(1.5)
        changed = features.extract(model, x, device="cpu", channels_last=False, progress=False)
        assert sum(seen) == 12
        torch.testing.assert_close(changed, features.extract(model, x, device="cpu", channels_last=False,
                                                             progress=False))
        # a file under this model's key with logits of another width (foreign): all computed anew
        x = _images(4, size=32) + 7            # images no model here has seen
        features.extract(model, x[:2], device="cpu", channels_last=False, progress=False)
        newest = max(tmp_path.glob("*.pt"), key=lambda f: f.stat().st_mtime_ns)
        stored = torch.load(newest, weights_only=True)
        torch.save({"digests": stored["digests"], "logits": torch.zeros(len(stored["digests"]), 3)}, newest)
        seen.clear()
        anew = features.extract(model, x[:4], device="cpu", channels_last=False, progress=False)
        assert sum(seen) == 6 and anew.shape == (4, 10)   # the 2 new images, then all 4
        torch.testing.assert_close(anew, features.extract(model, x[:4], device="cpu", channels_last=False,
                                                          progress=False, batch_size=4))
