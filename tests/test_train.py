"""The training loop: recipe options against hand-computed values, channels-last, host syncs,
the divergence guard, resume with every option on, precision choice (CUDA simulated)."""
from __future__ import annotations

import contextlib
import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from sparsevis import models, precision, prune, recipes
from sparsevis import train as T
from sparsevis.config import TrainConfig

CPU = torch.device("cpu")


class Batches:
    """A data object for train(): fixed batches per epoch; ``poison`` = {(epoch, step)} whose
    inputs are NaN, ``stop`` = (epoch, step) where the run is killed."""

    def __init__(self, xs, ys, poison=(), stop=None):
        self.xs, self.ys, self.poison, self.stop = xs, ys, set(poison), stop

    def n_batches(self, batch_size):
        return len(self.xs)

    def epoch(self, epoch, batch_size, seed, shuffle=True):
        for step, (x, y) in enumerate(zip(self.xs, self.ys)):
            if (epoch, step) == self.stop:
                raise KeyboardInterrupt
            yield (torch.full_like(x, float("nan")) if (epoch, step) in self.poison else x.clone()), y


def _images(n_batches=2, bs=8, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ([torch.randn(bs, 3, size, size, generator=g) for _ in range(n_batches)],
            [torch.randint(0, 10, (bs,), generator=g) for _ in range(n_batches)])


def _resnet():
    torch.manual_seed(0)
    return models.create("timm/sv_resnet_s", num_classes=10)


def test_channels_last_same_loss_as_contiguous():
    xs, ys = _images()
    cfg = TrainConfig(epochs=1, lr=0.01, batch_size=8, amp=False)
    formats = []
    model = _resnet()
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    conv.register_forward_pre_hook(
        lambda m, args: formats.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    cl = T.train(model, Batches(xs, ys), cfg, seed=0, device=CPU, channels_last=True)
    assert formats[-2:] == [True, True]   # the two training steps (is_cnn may probe the model first)
    assert all(p.is_contiguous() for p in model.parameters())   # restored after training
    ref_model = _resnet()
    ref = T.train(ref_model, Batches(xs, ys), cfg, seed=0, device=CPU, channels_last=False)
    assert cl["train_loss"] == pytest.approx(ref["train_loss"], rel=1e-5)
    for p, q in zip(model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_pointwise_strided_convolutions_subsampled_are_the_same_function():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, 1, stride=2, bias=True)
    other = nn.Conv2d(8, 8, 3, stride=2, padding=1)      # not 1x1: left alone
    net = nn.Sequential(other, conv)
    x = torch.randn(2, 8, 13, 13, requires_grad=True)
    ref = net(x)
    g_ref = torch.autograd.grad(ref.square().sum(), (x, conv.weight, conv.bias))
    with T._pointwise_strides_subsampled(net, True):
        assert conv.stride == (1, 1) and other.stride == (2, 2)
        out = net(x)
        g = torch.autograd.grad(out.square().sum(), (x, conv.weight, conv.bias))
    assert conv.stride == (2, 2) and not conv._forward_pre_hooks   # restored
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_channels_last_training_on_the_cpu_survives_large_images():
    """torch 2.14's channels-last weight gradient of a 1x1 stride-2 convolution kills the
    process on the CPU from ~48 px of input; train() must go around it (in a subprocess: the
    failure is a dead process, not an exception)."""
    script = (
        "import torch\n"
        "from sparsevis import models, train as T\n"
        "from sparsevis.config import TrainConfig\n"
        "from tests.test_train import Batches, _images\n"
        "torch.set_num_threads(1)\n"
        "torch.manual_seed(0)\n"
        "m = models.create('timm/sv_resnet_s', num_classes=10)\n"
        "xs, ys = _images(n_batches=2, bs=4, size=112)\n"
        "T.train(m, Batches(xs, ys), TrainConfig(epochs=1, lr=0.01, batch_size=4, amp=False), seed=0,\n"
        "        device=torch.device('cpu'))\n"
        "print('trained')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and "trained" in done.stdout, done.stderr[-2000:]


def test_loss_read_from_device_once_per_interval(monkeypatch):
    xs, ys = _images(n_batches=5, bs=4, size=16)
    items, drains = [], []
    real_item, real_drain = torch.Tensor.item, T._drain
    monkeypatch.setattr(torch.Tensor, "item", lambda t: items.append(1) or real_item(t))
    monkeypatch.setattr(T, "_drain", lambda window, *a: drains.append(len(window)) or real_drain(window, *a))
    cfg = recipes.RecipeConfig(epochs=2, lr=0.01, batch_size=4, amp=False, log_interval=2)
    out = T.train(_resnet(), Batches(xs, ys), cfg, seed=0, device=CPU)
    assert items == []                              # no per-step .item()
    assert drains == [2, 2, 1, 2, 2, 1]             # every 2 steps and at each epoch's end
    assert len(out["train_loss"]) == 2 and all(math.isfinite(v) for v in out["train_loss"])


def test_non_finite_loss_stops_with_epoch_step_and_lr():
    xs, ys = _images(n_batches=4, bs=4, size=16)
    cfg = TrainConfig(epochs=2, lr=0.01, batch_size=4, amp=False, schedule="step", step_size=1, gamma=0.5)
    with pytest.raises(T.DivergenceError, match=r"epoch 2/2, step 3/4 \(lr 0\.005\)"):
        T.train(_resnet(), Batches(xs, ys, poison={(1, 2)}), cfg, seed=0, device=CPU)


def test_mixup_and_cutmix_hand_computed():
    class Rng:   # fixed draws: choice, Beta sample, box centre
        def __init__(self, choice, lam, centre=(0, 0)):
            self.choice, self.lam, self.centre = choice, lam, list(centre)

        def random(self):
            return self.choice

        def beta(self, a, b):
            return self.lam

        def integers(self, n):
            return self.centre.pop(0)

    a, b = torch.full((1, 2, 2), 1.0), torch.full((1, 2, 2), 5.0)
    x, y = torch.stack([a, b]), torch.tensor([3, 7])
    mixed, y_a, y_b, lam = T.mix_batch(x, y, 0.2, 1.0, Rng(0.9, 0.25))   # 0.9 >= 0.5: mixup
    assert lam == 0.25 and y_a.tolist() == [3, 7] and y_b.tolist() == [7, 3]
    assert torch.equal(mixed, torch.stack([torch.full((1, 2, 2), 4.0), torch.full((1, 2, 2), 2.0)]))
    x = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 1, 4, 4)
    cut, _, y_b, lam = T.mix_batch(x, y, 0.2, 1.0, Rng(0.1, 0.75, centre=(2, 2)))  # cutmix
    # half side = int(0.5 * sqrt(0.25) * 4) = 1: rows and columns 1..2 come from the other image
    inside = torch.zeros(4, 4, dtype=torch.bool)
    inside[1:3, 1:3] = True
    assert lam == 1 - 4 / 16 and y_b.tolist() == [7, 3]
    assert torch.equal(cut[0, 0][inside], x[1, 0][inside]) and torch.equal(cut[0, 0][~inside], x[0, 0][~inside])
    assert torch.equal(cut[1, 0][inside], x[0, 0][inside])
    assert T.mix_batch(x, y, 0.0, 0.0, Rng(0.1, 0.5))[3] == 1.0   # off: unchanged


def test_mixed_label_smoothed_loss_is_soft_target_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5]])
    lam, eps, k = 0.7, 0.1, 4
    got = T.mixed_loss(logits, torch.tensor([0]), torch.tensor([1]), lam, eps)
    target = [eps / k + (1 - eps) * (lam if c == 0 else (1 - lam) if c == 1 else 0) for c in range(k)]
    z = [2.0, 0.0, -1.0, 0.5]
    log_norm = math.log(sum(math.exp(v) for v in z))
    expected = -sum(t * (v - log_norm) for t, v in zip(target, z))
    assert float(got) == pytest.approx(expected, rel=1e-6)
    plain = T.mixed_loss(logits, torch.tensor([0]), torch.tensor([0]), 1.0)
    assert float(plain) == pytest.approx(-(2.0 - log_norm), rel=1e-6)


def test_gradient_clipping_hand_computed():
    model = nn.Linear(2, 2, bias=False)
    nn.init.zeros_(model.weight)
    data = Batches([torch.tensor([[1.0, 0.0]])], [torch.tensor([0])])
    cfg = recipes.RecipeConfig(epochs=1, lr=1.0, batch_size=1, weight_decay=0.0, amp=False,
                               clip_grad_norm=0.5)
    T.train(model, data, cfg, seed=0, device=CPU)
    # softmax(0, 0) = 0.5 each: grad = [[-0.5, 0], [0.5, 0]], norm sqrt(0.5), scaled to norm 0.5
    g = 0.5 / math.sqrt(0.5) * 0.5
    torch.testing.assert_close(model.weight, torch.tensor([[g, 0.0], [-g, 0.0]]))


def test_weight_average_hand_computed_and_masks_respected():
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    prune.global_magnitude(model, 0.5)                 # keeps 3 and 4
    # decay 0.75, batch 1, every 2 steps, 2 epochs: effective 1 - (0.25 * 1 * 2 / 2) = 0.75
    ema = T.WeightAverage(model, 0.75, steps=2, batch_size=1, epochs=2)
    assert ema.decay == pytest.approx(0.75)
    with torch.no_grad():
        model.weight.add_(4.0)                         # as if trained; pruned entries revived too
    ema.update(step=0, warmup=False)                   # not an update step
    assert torch.equal(ema.shadow["weight"], torch.tensor([[0.0, 0.0], [3.0, 4.0]]))
    ema.update(step=1, warmup=False)
    torch.testing.assert_close(ema.shadow["weight"], torch.tensor([[0.0, 0.0], [4.0, 5.0]]))
    ema.update(step=3, warmup=True)                    # warm-up: the average restarts from the weights
    assert torch.equal(ema.shadow["weight"], torch.tensor([[0.0, 0.0], [7.0, 8.0]]))
    ema.copy_to_model()
    assert torch.equal(model.weight, ema.shadow["weight"])


def test_warmup_decay_and_cosine_floor_hand_computed():
    cfg = recipes.RecipeConfig(epochs=4, lr=1.0, batch_size=1, warmup_epochs=2, warmup_decay=0.1, lr_min=0.2)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = T._schedule(opt, cfg, steps_per_epoch=1)
    lrs = []
    for _ in range(4):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    # warm-up 0.1 -> 0.55 (linear from 0.1 over 2 steps), then cosine from 1 down towards 0.2
    assert lrs == pytest.approx([0.1, 0.55, 1.0, 0.2 + 0.8 * 0.5])
    # without the new options the schedule is the old one
    plain = T._schedule(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0),
                        TrainConfig(epochs=4, lr=1.0, warmup_epochs=2), steps_per_epoch=1)
    assert plain.get_last_lr()[0] == pytest.approx(0.5)


def test_resume_bit_identical_with_every_recipe_option(tmp_path):
    xs, ys = _images(n_batches=3, bs=4, size=16)
    cfg = recipes.get("vit_b_32").train_config(epochs=2, lr=0.01, batch_size=4, warmup_epochs=1,
                                               ema_steps=2, amp=False)
    full = _resnet()
    out_full = T.train(full, Batches(xs, ys), cfg, seed=3, device=CPU)
    killed, state = _resnet(), tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        T.train(killed, Batches(xs, ys, stop=(1, 1)), cfg, seed=3, device=CPU, state_path=state)
    assert "ema" in torch.load(state, weights_only=True)
    resumed = _resnet()
    out = T.train(resumed, Batches(xs, ys), cfg, seed=3, device=CPU, state_path=state)
    assert out["train_loss"] == out_full["train_loss"] and out["precision"] == "fp32"
    for (name, p), q in zip(full.named_parameters(), resumed.parameters()):
        assert torch.equal(p, q), name


class _Augmented(torch.utils.data.Dataset):
    """Images with a random shift drawn from the global torch generator, as torchvision's
    transforms draw in a DataLoader without workers."""

    def __init__(self, xs, ys):
        self.x, self.y = torch.cat(xs), torch.cat(ys)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i] + torch.rand(()), self.y[i]


def test_resume_bit_identical_with_augmentation_in_the_training_process(tmp_path):
    """LoaderData with 0 workers (the CPU default): the augmentation's draws come from the global
    generator, which train() seeds per (seed, epoch, rank), so a resumed run is the same."""
    class Killed(T.LoaderData):
        def epoch(self, epoch, batch_size, seed, shuffle=True):
            for step, batch in enumerate(super().epoch(epoch, batch_size, seed, shuffle)):
                if (epoch, step) == (1, 1):
                    raise KeyboardInterrupt
                yield batch

    xs, ys = _images(n_batches=3, bs=4, size=16)
    cfg = TrainConfig(epochs=2, lr=0.01, batch_size=4, amp=False)
    full = _resnet()
    out_full = T.train(full, T.LoaderData(_Augmented(xs, ys), num_workers=0), cfg, seed=3, device=CPU)
    killed, state = _resnet(), tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        T.train(killed, Killed(_Augmented(xs, ys), num_workers=0), cfg, seed=3, device=CPU, state_path=state)
    torch.rand(5)   # the caller's draws between the kill and the resume change nothing
    resumed = _resnet()
    out = T.train(resumed, T.LoaderData(_Augmented(xs, ys), num_workers=0), cfg, seed=3, device=CPU,
                  state_path=state)
    assert out["train_loss"] == out_full["train_loss"]
    for (name, p), q in zip(full.named_parameters(), resumed.parameters()):
        assert torch.equal(p, q), name


def test_precision_choice_per_device(monkeypatch):
    assert precision.resolve("auto", "cpu") == "fp32"
    assert precision.resolve("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="precision='fp16' on device cpu"):
        precision.resolve("fp16", "cpu")
    with pytest.raises(ValueError, match="precision='half'"):
        precision.resolve("half", "cpu")
    # a simulated GPU: bf16 where native (Ampere and later), fp16 with a scaler otherwise
    native = {"value": True}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "device", lambda d: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native["value"])
    assert precision.resolve("auto", "cuda:1") == "bf16"
    native["value"] = False
    assert precision.resolve("auto", "cuda:1") == "fp16"
    with pytest.raises(ValueError, match="no native bf16"):
        precision.resolve("bf16", "cuda:1")
    assert precision.resolve("fp32", "cuda:1") == "fp32"
    assert precision.grad_scaler("fp16", CPU).is_enabled() and not precision.grad_scaler("bf16", CPU).is_enabled()


def test_recipes_match_the_torchvision_reference():
    vit = recipes.for_arch("torchvision/vit_b_32").train_config()
    assert (vit.optimizer, vit.lr, vit.weight_decay, vit.epochs, vit.warmup_epochs, vit.warmup_decay,
            vit.label_smoothing, vit.mixup_alpha, vit.cutmix_alpha, vit.clip_grad_norm, vit.batch_size) == (
        "adamw", 0.003, 0.3, 300, 30, 0.033, 0.11, 0.2, 1.0, 1.0, 4096)
    swin = recipes.for_arch("swin_v2_t").train_config()
    assert (swin.lr, swin.weight_decay, swin.warmup_epochs, swin.warmup_decay, swin.lr_min, swin.mixup_alpha,
            swin.clip_grad_norm, swin.label_smoothing) == (0.001, 0.05, 20, 0.01, 1e-5, 0.8, 5.0, 0.1)
    sgd = recipes.for_arch("resnet50")
    assert sgd.name == "paper-sgd"
    assert (sgd.train_config().schedule, sgd.train_config().step_size, sgd.train_config().lr) == ("step", 30, 0.1)
    with pytest.raises(ValueError, match="unknown fields"):
        sgd.train_config(mixup=0.2)
    with pytest.raises(ValueError, match="no recipe for arch"):
        recipes.for_arch("alexnet")
    with pytest.raises(ValueError, match="warmup_decay"):
        recipes.RecipeConfig(epochs=1, lr=0.1, warmup_decay=0.0)


def test_every_recipe_field_is_read_by_train():
    """A recipe option train() does not know would be silently ignored: each field of
    RecipeConfig beyond TrainConfig's (but the recipe's name) has its off-default in train."""
    plain = {f.name for f in dataclasses.fields(TrainConfig)}
    extra = {f.name: f.default for f in dataclasses.fields(recipes.RecipeConfig) if f.name not in plain}
    assert extra.pop("recipe") is None
    assert extra == T.OPTIONAL_DEFAULTS
    for recipe in recipes.RECIPES.values():
        assert set(recipe.train) <= plain | set(T.OPTIONAL_DEFAULTS), recipe.name


@pytest.mark.parametrize("make, bias_decay", [
    (lambda **kw: TrainConfig(**kw), 0.0),                                     # plain: none on biases
    (lambda **kw: recipes.RecipeConfig(norm_weight_decay=0.25, **kw), 0.25),   # the ResNet/ViT recipes' way
])
def test_weight_decay_of_norms_and_biases_hand_computed(make, bias_decay):
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        model.bias.fill_(1.0)
    # x = 0: the weight's gradient is 0, the bias's is softmax(1, 1) - onehot(0) = [-0.5, 0.5]
    data = Batches([torch.zeros(1, 2)], [torch.tensor([0])])
    cfg = make(epochs=1, lr=1.0, batch_size=1, momentum=0.0, weight_decay=0.5, amp=False)
    T.train(model, data, cfg, seed=0, device=CPU)
    torch.testing.assert_close(model.weight, torch.tensor([[0.5, 1.0], [1.5, 2.0]]))   # W - 0.5 W
    torch.testing.assert_close(model.bias, torch.tensor([1.5, 0.5]) - bias_decay)


def test_recipe_weight_decay_of_norms_follows_torchvision():
    # torchvision's ResNet and ViT commands set no --norm-weight-decay (all parameters decay);
    # Swin's sets --norm-weight-decay 0.0 --bias-weight-decay 0.0
    assert recipes.get("paper-sgd").train_config().norm_weight_decay == 1e-4
    assert recipes.get("vit_b_32").train_config().norm_weight_decay == 0.3
    assert recipes.get("swin_v2_t").train_config().norm_weight_decay == 0.0
    assert recipes.get("vit_b_32").train_config(epochs=5).recipe == "vit_b_32"
    with pytest.raises(ValueError, match="recipe='adam'"):
        recipes.RecipeConfig(epochs=1, lr=0.1, recipe="adam")


def test_momentum_and_label_smoothing_through_train_hand_computed():
    """Two SGD steps (momentum 0.5, label smoothing 0.2, lr 1) of a zero-initialised linear
    model on x = [1, 0], label 0: the smoothed target is (0.9, 0.1)."""
    model = nn.Linear(2, 2, bias=False)
    nn.init.zeros_(model.weight)
    data = Batches([torch.tensor([[1.0, 0.0]])] * 2, [torch.tensor([0])] * 2)
    cfg = TrainConfig(epochs=1, lr=1.0, batch_size=1, momentum=0.5, weight_decay=0.0, label_smoothing=0.2,
                      schedule="step", step_size=10, amp=False)
    T.train(model, data, cfg, seed=0, device=CPU)
    g1 = 0.5 - 0.9                                     # dL/dlogit_0 at logits (0, 0)
    w = -g1                                            # step 1: the momentum buffer is the gradient
    p0 = 1 / (1 + math.exp(-2 * w))                    # softmax(w, -w)[0]
    g2 = p0 - 0.9
    w -= 0.5 * g1 + g2                                 # step 2: buffer = 0.5 * g1 + g2
    torch.testing.assert_close(model.weight, torch.tensor([[w, 0.0], [-w, 0.0]]))
