import shutil
import warnings

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from sparsevis import models, prune

ARCHS = ["timm/resnet18", "timm/resnet50", "timm/vit_small_patch16_224",
         "torchvision/vit_b_32", "torchvision/swin_v2_t"]


def _pruned_count(model, preset):
    return int(prune.report(model, preset)["pruned"].sum())


@pytest.mark.parametrize("name", ARCHS)
def test_realised_sparsity_within_one_weight(name):
    torch.manual_seed(0)
    model = models.create(name)
    n = sum(i.weight.numel() for i in prune.prunable(model, "all"))
    for target in (0.5, 0.9, 0.99):
        prune.global_magnitude(model, target, verbose=False)
        assert abs(_pruned_count(model, "all") - target * n) <= 1
        assert abs(prune.sparsity(model) - target) <= 1 / n
        # pruned weights are really zero, attention projections included
        for item in prune.prunable(model, "all"):
            mask = getattr(item.module, item.param_name + "_mask")
            assert not item.weight[~mask].any()
    report = prune.report(model)
    assert list(report.columns) == ["name", "shape", "count", "pruned", "zeros", "sparsity"]
    assert (report["zeros"] >= report["pruned"]).all()


def test_all_preset_covers_attention_projections():
    vit = models.create("torchvision/vit_b_32")
    names = {i.name for i in prune.prunable(vit, "all")}
    assert "encoder.layers.encoder_layer_0.self_attention.in_proj_weight" in names
    assert "encoder.layers.encoder_layer_0.self_attention.out_proj.weight" in names
    timm_vit = models.create("timm/vit_small_patch16_224")
    assert "blocks.0.attn.qkv.weight" in {i.name for i in prune.prunable(timm_vit, "all")}


def test_paper_preset_on_vit_b_32_leaves_fused_qkv_dense():
    model = models.create("torchvision/vit_b_32")
    items = prune.prunable(model, "paper")
    assert sum(i.weight.numel() for i in items) == 66_828_288
    assert not any(i.param_name == "in_proj_weight" for i in items)
    before = [layer.self_attention.in_proj_weight.detach().clone() for layer in model.encoder.layers]
    prune.global_magnitude(model, 0.9, preset="paper", verbose=False)
    for layer, w in zip(model.encoder.layers, before):
        assert torch.equal(layer.self_attention.in_proj_weight, w)
        assert not hasattr(layer.self_attention, "in_proj_weight_mask")
    assert prune.pruning_info(model)["preset"] == "paper"


def test_imp_schedule_matches_protocol():
    sched = prune.imp_schedule(0.2, 13)
    assert len(sched) == 14 and sched[0] == 0
    for k, s in enumerate(sched):
        assert s == pytest.approx(1 - 0.8 ** k)
    # protocol.md lists the percentages to one decimal
    listed = [20, 36, 48.8, 59.0, 67.2, 73.8, 79.0, 83.2, 86.6, 89.3, 91.4, 93.1, 94.5, 95.6]
    assert [round(100 * s, 1) for s in sched[1:14]] == pytest.approx(listed[:13], abs=0.051)


def _small_tv_vit():
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2,
                                                 num_heads=2, hidden_dim=32, mlp_dim=64,
                                                 num_classes=5)
    model.sparsevis_arch = "test/tv_vit"
    return model


def _small_models():
    return [_small_tv_vit(), models.create("timm/sv_vit_t", num_classes=5),
            models.create("timm/sv_resnet_s", num_classes=5)]


def _assert_pruned_zero(model):
    for item in prune.prunable(model, "all"):
        mask = getattr(item.module, item.param_name + "_mask")
        assert not item.weight[~mask].any(), item.name


@pytest.mark.parametrize("opt_name", ["sgd", "adamw"])
def test_pruned_weights_stay_zero_through_training(opt_name):
    """No call from the training loop: the masks hold under an optimizer the user makes."""
    torch.manual_seed(0)
    for model in _small_models():
        size = 32 if model.sparsevis_arch == "test/tv_vit" else 64
        prune.global_magnitude(model, 0.8, verbose=False)
        if opt_name == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
        before = {i.name: i.weight.detach().clone() for i in prune.prunable(model, "all")}
        for step in range(50):
            x = torch.randn(4, 3, size, size)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=step % 2 == 1):
                loss = nn.functional.cross_entropy(model(x), torch.randint(0, 5, (4,)))
            opt.zero_grad()
            loss.backward()
            opt.step()
        _assert_pruned_zero(model)
        for item in prune.prunable(model, "all"):
            mask = getattr(item.module, item.param_name + "_mask")
            if mask.any():  # global pruning may empty a whole layer
                assert not torch.equal(item.weight[mask], before[item.name][mask]), "kept weights must train"
        assert prune.sparsity(model) == pytest.approx(0.8, abs=1e-4)


def test_fresh_adamw_does_not_revive_vit_small():
    """The reported case: timm ViT-S pruned to 0.9, then AdamW (weight decay 0.1) made afresh."""
    torch.manual_seed(0)
    model = models.create("timm/vit_small_patch16_224")
    prune.global_magnitude(model, 0.9, verbose=False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    for _ in range(3):
        loss = model(torch.randn(2, 3, 224, 224)).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    _assert_pruned_zero(model)


def test_optimizer_state_from_before_pruning_does_not_revive():
    """SGD momentum built up while dense keeps pushing pruned weights unless masks re-apply."""
    torch.manual_seed(0)
    model = models.create("timm/sv_resnet_s", num_classes=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    for prune_now in (False, True, False, False):
        if prune_now:
            prune.global_magnitude(model, 0.8, verbose=False)
        loss = model(torch.randn(4, 3, 64, 64)).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    _assert_pruned_zero(model)
    assert prune.sparsity(model) == pytest.approx(0.8, abs=1e-4)


def test_manual_update_loop_keeps_pruned_weights_zero():
    """No optimizer at all: the gradient hook zeroes the pruned entries of every gradient."""
    torch.manual_seed(0)
    model = models.create("timm/sv_vit_t", num_classes=5)
    prune.global_magnitude(model, 0.7, verbose=False)
    for _ in range(3):
        model.zero_grad()
        model(torch.randn(4, 3, 64, 64)).logsumexp(1).mean().backward()
        with torch.no_grad():
            for p in model.parameters():
                p.data -= 0.1 * p.grad
    _assert_pruned_zero(model)
    for item in prune.prunable(model, "all"):
        mask = getattr(item.module, item.param_name + "_mask")
        assert not item.weight.grad[~mask].any(), item.name


def test_masks_hold_after_load_and_move(tmp_path):
    """A loaded checkpoint (new modules, masks moved with ``.to``) is guarded the same way."""
    model = models.create("timm/sv_resnet_s", num_classes=5)
    prune.global_magnitude(model, 0.8, verbose=False)
    prune.save(model, tmp_path / "m.pt")
    loaded = prune.load(tmp_path / "m.pt").to(torch.float64).to(torch.float32)
    opt = torch.optim.AdamW(loaded.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(2):
        opt.zero_grad()
        loaded(torch.randn(4, 3, 64, 64)).logsumexp(1).mean().backward()
        opt.step()
    _assert_pruned_zero(loaded)


def test_pruning_is_cumulative():
    torch.manual_seed(0)
    model = models.create("timm/sv_resnet_m", num_classes=5)
    prune.global_magnitude(model, 0.5, verbose=False)
    first = {i.name: i.weight.eq(0).clone() for i in prune.prunable(model)}
    # perturb kept weights so the magnitude order changes; pruned ones must stay pruned
    with torch.no_grad():
        for i in prune.prunable(model):
            i.weight.mul_(torch.rand_like(i.weight))
    prune.global_magnitude(model, 0.7, verbose=False)
    for i in prune.prunable(model):
        assert i.weight[first[i.name]].eq(0).all()
    with pytest.raises(ValueError, match="never restores"):
        prune.global_magnitude(model, 0.6, verbose=False)


def test_random_and_snip_match_sparsity():
    torch.manual_seed(0)
    a = models.create("timm/sv_resnet_s", num_classes=5)
    b = models.create("timm/sv_resnet_s", num_classes=5)
    b.load_state_dict(a.state_dict())
    prune.random_prune(a, 0.7, seed=3, verbose=False)
    prune.random_prune(b, 0.7, seed=3, verbose=False)
    for x, y in zip(prune.prunable(a), prune.prunable(b)):
        assert torch.equal(x.weight, y.weight)
    assert prune.sparsity(a) == pytest.approx(0.7, abs=1e-5)

    c = models.create("timm/sv_resnet_s", num_classes=5)
    batches = [(torch.randn(8, 3, 64, 64), torch.randint(0, 5, (8,))) for _ in range(2)]
    prune.snip(c, batches, 0.9, verbose=False)
    assert prune.sparsity(c) == pytest.approx(0.9, abs=1e-5)
    assert prune.pruning_info(c)["method"] == "snip"


def test_snip_ranks_by_weight_times_gradient():
    """Hand-built: a linear model where |w * g| is known."""
    model = nn.Sequential(nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0, 3.0, 0.5]]))
    x = torch.tensor([[4.0, 1.0, 0.1, 1.0]])
    # loss = output, so dL/dw = x and |w*g| = [4, 2, 0.3, 0.5]
    prune.snip(model, [(x, torch.zeros(1))], 0.5, loss_fn=lambda out, _: out.sum(), verbose=False)
    assert model[0].weight.tolist() == [[1.0, -2.0, 0.0, 0.0]]


class _Placed(nn.Sequential):
    """Records each ``.to(device)``: on a CPU-only machine, the trace of a move to a device."""

    def __init__(self, *modules):
        super().__init__(*modules)
        self.placements = []

    def to(self, *args, **kwargs):
        self.placements.append(torch.device(args[0]))
        return super().to(*args, **kwargs)


def test_snip_runs_the_model_on_the_requested_device():
    model = _Placed(nn.Flatten(), nn.Linear(12, 3))
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(
        (m.placements[-1] if m.placements else None, args[0].device)))
    batches = [(torch.randn(2, 3, 2, 2), torch.randint(0, 3, (2,)))]
    prune.snip(model, batches, 0.5, device="cpu", verbose=False)
    assert seen == [(torch.device("cpu"), torch.device("cpu"))]   # model moved, then the batch
    assert model.placements[-1] == torch.device("cpu")             # and back where it was
    assert model[1].weight_mask.device == model[1].weight.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_snip_on_cuda_leaves_model_and_masks_on_cpu():
    model = models.create("timm/sv_resnet_s", num_classes=5)
    devices = []
    model.register_forward_pre_hook(lambda m, args: devices.append(
        (args[0].device.type, next(m.parameters()).device.type)))
    batches = [(torch.randn(4, 3, 64, 64), torch.randint(0, 5, (4,)))]
    prune.snip(model, batches, 0.5, device="cuda", verbose=False)
    assert devices == [("cuda", "cuda")]
    assert all(m.device.type == "cpu" for _, _, m in prune.masked_parameters(model))
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_exclude_stem_and_classifier():
    model = models.create("timm/resnet18")
    names = {i.name for i in prune.prunable(model, "all", )}
    trimmed = {i.name for i in prune.prunable(model, prune.canonical_preset(
        "all", exclude_stem=True, exclude_classifier=True))}
    assert names - trimmed == {"conv1.weight", "fc.weight"}
    prune.global_magnitude(model, 0.9, exclude_stem=True, verbose=False)
    assert (model.conv1.weight != 0).all()
    assert prune.pruning_info(model)["preset"] == "all-nostem"


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    for model in [models.create("timm/sv_vit_t", num_classes=5), models.create("torchvision/resnet18")]:
        prune.global_magnitude(model, 0.75, verbose=False)
        path = tmp_path / "model.pt"
        digest = prune.save(model, path, iteration=3, parent=None)
        loaded = prune.load(path)
        size = 64 if "sv_" in models.arch_name(model) else 224
        x = torch.randn(2, 3, size, size)
        model.eval(), loaded.eval()
        with torch.no_grad():
            assert torch.equal(model(x), loaded(x))
        for a, b in zip(prune.masked_parameters(model), prune.masked_parameters(loaded)):
            assert torch.equal(a[2], b[2])
        assert loaded.sparsevis_checkpoint["sha256"] == digest
        assert loaded.sparsevis_checkpoint["iteration"] == 3
        assert prune.sparsity(loaded) == prune.sparsity(model)
        # folded weights load into the stock definition
        stock = models.create(models.arch_name(model), num_classes=None if size == 224 else 5,
                              weights=path)
        stock.eval()
        with torch.no_grad():
            assert torch.equal(stock(x), model(x))


def test_masks_are_bit_packed(tmp_path):
    model = models.create("timm/sv_resnet_m", num_classes=5)
    prune.global_magnitude(model, 0.5, verbose=False)
    prune.save(model, tmp_path / "m.pt")
    ckpt = prune.read(tmp_path / "m.pt")
    n = sum(i.weight.numel() for i in prune.prunable(model))
    assert sum(m["bits"].numel() for m in ckpt["masks"].values()) <= n // 8 + len(ckpt["masks"])


def test_checkpoint_errors_name_the_file(tmp_path):
    model = models.create("timm/sv_resnet_s", num_classes=5)
    prune.global_magnitude(model, 0.5, verbose=False)
    path = tmp_path / "good.pt"
    prune.save(model, path)

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="corrupt.pt"):
        prune.load(corrupt)

    tampered = tmp_path / "tampered.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"]["fc.weight"][0, 0] += 1
    torch.save(ckpt, tampered)
    with pytest.raises(ValueError, match="tampered.pt.*hash mismatch"):
        prune.load(tampered)

    with pytest.raises(ValueError, match="good.pt.*sv_resnet_m"):
        prune.load(path, model=models.create("timm/sv_resnet_m", num_classes=5))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        prune.load(tmp_path / "missing.pt")


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, "half", True, float("nan"), np.float32(1.0),
                                 torch.tensor([0.5])])
def test_bad_sparsity(bad):
    with pytest.raises(ValueError, match=r"sparsity=.*\[0, 1\)"):
        prune.global_magnitude(models.create("timm/sv_resnet_s"), bad)


def _tiny_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))


def _prune_with(method, model, target):
    if method == "magnitude":
        return prune.global_magnitude(model, target, verbose=False)
    if method == "random":
        return prune.random_prune(model, target, verbose=False)
    return prune.snip(model, [(torch.randn(3, 4), torch.tensor([0, 1, 0]))], target, verbose=False)


@pytest.mark.parametrize("method", ["magnitude", "random", "snip"])
@pytest.mark.parametrize("scalar", [np.float32(0.5), np.float64(0.5), torch.tensor(0.5)])
def test_numpy_and_torch_scalars_are_sparsities(method, scalar):
    model = _prune_with(method, _tiny_mlp(), scalar)
    assert prune.sparsity(model) == pytest.approx(0.5, abs=1 / 112)
    assert isinstance(prune.pruning_info(model)["requested"], float)


@pytest.mark.parametrize("method", ["magnitude", "random", "snip"])
def test_sparsity_that_empties_the_model_is_refused_and_emptied_layers_warned(method):
    # 32 + 64 + 16 = 112 prunable weights in 3 layers
    with pytest.raises(ValueError, match=r"sparsity=0.999999999 rounds to all 112 .*at least one weight"):
        _prune_with(method, _tiny_mlp(), 0.999999999)
    with pytest.warns(UserWarning, match=r"keeps 2 of 112 weights for 3 prunable layers.*at least 1 layers"):
        _prune_with(method, _tiny_mlp(), 110 / 112)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _prune_with(method, _tiny_mlp(), 109 / 112)   # 3 weights can still reach 3 layers


def test_bad_preset_and_arch():
    with pytest.raises(ValueError, match="expected one of .*'all', 'paper'"):
        prune.global_magnitude(models.create("timm/sv_resnet_s"), 0.5, preset="everything")
    with pytest.raises(ValueError, match="unknown architecture 'resnet19'"):
        models.create("resnet19")
    with pytest.raises(ValueError, match="expected 'prunable' or 'all'"):
        prune.sparsity(models.create("timm/sv_resnet_s"), scope="some")


@pytest.fixture
def saved(tmp_path):
    model = models.create("timm/sv_resnet_s", num_classes=5)
    prune.global_magnitude(model, 0.5, verbose=False)
    path = tmp_path / "iter-01.pt"
    prune.save(model, path, run_id="run-a", iteration=1, accuracy=0.41)
    return path


def test_checkpoint_metadata_is_covered_by_the_hash(saved, tmp_path):
    ckpt = torch.load(saved, weights_only=True)
    for key, value in (("accuracy", 0.999), ("sparsity", 0.1), ("iteration", 7)):
        edited = tmp_path / f"edited-{key}.pt"
        torch.save({**ckpt, "meta": {**ckpt["meta"], key: value}}, edited)
        with pytest.raises(ValueError, match=f"edited-{key}.pt.*hash mismatch.*metadata"):
            prune.load(edited)
    loaded = prune.load(saved)
    assert loaded.sparsevis_checkpoint["meta_verified"] is True
    assert loaded.sparsevis_checkpoint["accuracy"] == 0.41


def test_sidecar_must_agree_with_the_checkpoint(saved):
    sidecar = saved.parent / "iter-01.pt.json"
    good = sidecar.read_text()
    sidecar.write_text(good.replace('"accuracy": 0.41', '"accuracy": 0.999'))
    with pytest.raises(ValueError, match=r"iter-01.pt.json disagrees with iter-01.pt on \['accuracy'\]"):
        prune.read(saved)
    sidecar.write_text(good[:40])
    with pytest.raises(ValueError, match="metadata .*iter-01.pt.json is corrupt"):
        prune.load(saved)
    sidecar.unlink()   # the sidecar is a convenience copy: without it the checkpoint still loads
    assert prune.read(saved)["meta"]["accuracy"] == 0.41


def test_expect_refuses_a_checkpoint_from_another_run(saved, tmp_path):
    other = models.create("timm/sv_vit_t", num_classes=5)
    prune.save(other, tmp_path / "vit.pt", run_id="run-b", iteration=1)
    shutil.copy(tmp_path / "vit.pt", saved)
    shutil.copy(tmp_path / "vit.pt.json", str(saved) + ".json")
    with pytest.raises(ValueError, match=r"iter-01.pt does not belong here: expected "
                                         r"run_id='run-a', found run_id='run-b'"):
        prune.load(saved, expect={"run_id": "run-a", "arch": "timm/sv_resnet_s"})
    with pytest.raises(ValueError, match=r"expected arch='timm/sv_resnet_s', found arch='timm/sv_vit_t'"):
        prune.read(saved, expect={"arch": "timm/sv_resnet_s"})
    assert prune.read(saved, expect={"run_id": "run-b"})["meta"]["arch"] == "timm/sv_vit_t"


def test_format_1_checkpoints_load_with_unverified_metadata(saved, tmp_path):
    from sparsevis.prune.checkpoint import content_hash

    ckpt = torch.load(saved, weights_only=True)
    old = tmp_path / "old.pt"
    torch.save({**ckpt, "format": "sparsevis-checkpoint/1",
                "sha256": content_hash(ckpt["state_dict"], ckpt["masks"])}, old)
    with pytest.warns(UserWarning, match="old.pt is a sparsevis-checkpoint/1 file.*metadata .*is not"):
        model = prune.load(old)
    assert model.sparsevis_checkpoint["meta_verified"] is False
    torch.save({**torch.load(old, weights_only=True), "state_dict": {
        **ckpt["state_dict"], "fc.bias": ckpt["state_dict"]["fc.bias"] + 1}}, old)
    with pytest.raises(ValueError, match="old.pt.*hash mismatch over its tensors"):
        prune.load(old)


class _Payload:
    def __reduce__(self):
        return (print, ("pickle code ran",))


def test_damaged_and_unsafe_checkpoints_name_the_file(saved, tmp_path):
    data = saved.read_bytes()
    (tmp_path / "empty.pt").write_bytes(b"")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10   # inside the tensor data
    (tmp_path / "flipped.pt").write_bytes(bytes(flipped))
    torch.save({"format": "sparsevis-checkpoint/2", "meta": _Payload()}, tmp_path / "pickle.pt")
    for name in ("empty.pt", "flipped.pt", "pickle.pt"):
        with pytest.raises(ValueError, match=f"{name}.*(corrupt|hash mismatch)"):
            prune.load(tmp_path / name)
