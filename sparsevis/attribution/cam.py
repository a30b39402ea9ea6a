"""Class activation maps: Grad-CAM and Guided Grad-CAM (paper methods)."""
from __future__ import annotations

import warnings

import torch
from captum.attr import GuidedBackprop, GuidedGradCam
from torch import nn

from .base import Attribution, _leaf, channel_energy, check_choice, minmax, upsample
from .registry import register

VIT_LAYERS = ("auto", "output", "attn_input")


def activation_and_grad(model: nn.Module, module: nn.Module, x: torch.Tensor,
                        target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Output of ``module`` during ``model(x)`` and the gradient of the target logits w.r.t. it.

    The logits of the images are summed before differentiating; in eval mode the images do not
    interact, so each image's gradient is its own.
    """
    store = {}
    handle = module.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        with torch.enable_grad():
            logits = model(x.detach().requires_grad_(True))
            act = store["a"]
            (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), act)
    finally:
        handle.remove()
    return act.detach(), grad


@register
class GradCam(Attribution):
    """Grad-CAM (Selvaraju et al. 2017), paper method.

    cnn: on ``surface.last_stage`` (captum ``LayerGradCam``'s rule, computed here without its
    hooks and copies; the tests check it against captum): channel weights = the
    target logit's gradient averaged over the grid, cam = relu(sum_c w_c A_c).
    swin: the same computed here on the channels-last output of the last stage.
    vit: the same on tokens, computed here: the prefix (CLS) tokens are dropped, weights = the
    gradient averaged over the patch tokens, and the patch tokens (index i = row * w + col) are
    reshaped to the (h, w) grid. ``vit_layer`` picks the tokens:
      "output"     the last block's output tokens;
      "attn_input" the tokens the last block's attention reads (its first LayerNorm's output,
                   timm ``norm1`` / torchvision ``ln_1``);
      "auto"       "attn_input" when the head reads only the CLS token (timm
                   ``global_pool="token"``, every torchvision ViT), else "output". With CLS
                   pooling the logits do not depend on the last block's *output* patch tokens at
                   all (LayerNorm and head act per token on CLS only), so their gradient - and
                   the CAM - is identically zero; the last place where patch tokens reach the
                   CLS token is the last block's attention, hence its input.
    The cam is upsampled bilinearly to the image size, then min-max normalised per image (a
    constant cam, e.g. all cells clipped by the ReLU, becomes all zeros).
    """

    name = "gradcam"
    label = "Grad-CAM"
    color = "#0173b2"
    paper = True
    kinds = ("cnn", "vit", "swin")
    pooling = "relu, bilinear upsampling, min-max per image (constant -> zeros)"
    defaults = dict(vit_layer="auto")
    reference = ("Selvaraju et al. Grad-CAM: visual explanations from deep networks via "
                 "gradient-based localization. ICCV 2017.")

    @classmethod
    def _validate(cls, p: dict) -> None:
        check_choice(cls.name, "vit_layer", p["vit_layer"], VIT_LAYERS)

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return minmax(upsample(self.cam(x, target), x.shape[-2:]))

    def cam(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The grid-level CAM (b, h, w) >= 0, before upsampling and normalisation."""
        surf = self.surface
        if surf.kind == "cnn":
            act, grad = activation_and_grad(self.model, surf.last_stage, x, target)  # (b, C, h, w)
            weights = grad.mean(dim=(2, 3))
            return torch.relu((act * weights[:, :, None, None]).sum(dim=1))
        if surf.kind == "swin":
            act, grad = activation_and_grad(self.model, surf.last_stage, x, target)  # (b, h, w, C)
            weights = grad.mean(dim=(1, 2))
            return torch.relu((act * weights[:, None, None, :]).sum(dim=-1))
        act, grad = activation_and_grad(self.model, self.vit_module(), x, target)  # (b, N, D)
        p = surf.num_prefix_tokens
        act, grad = act[:, p:], grad[:, p:]
        weights = grad.mean(dim=1)
        cam = torch.relu((act * weights[:, None, :]).sum(dim=-1))          # (b, h*w), row-major
        h, w = surf.grid(x.shape[-2:])
        return cam.reshape(len(x), h, w)

    def vit_module(self) -> nn.Module:
        """The module whose output tokens Grad-CAM uses on a ViT (see ``vit_layer``)."""
        block = self.surface.blocks[-1]
        layer = self.params["vit_layer"]
        if layer == "auto":
            pools_cls = getattr(self.model, "global_pool", "token") == "token"
            layer = "attn_input" if pools_cls else "output"
        if layer == "output":
            return block
        norm = getattr(block, "norm1", None)
        if norm is None:
            norm = getattr(block, "ln_1", None)
        if norm is None:
            raise ValueError(f"method {self.name!r}: vit_layer='attn_input' needs a block with norm1 "
                             f"(timm) or ln_1 (torchvision); {type(block).__name__} has neither")
        return norm


class _GuidedBackpropReLU6(GuidedBackprop):
    """captum's GuidedBackprop, also overriding the gradient of ReLU6 (MobileNetV2).

    captum hooks only ``nn.ReLU``; on ReLU6 the same rule applies (pass only positive
    gradients where the unit is active; ReLU6's own gradient already zeroes x <= 0 and x >= 6).
    """

    def _register_hooks(self, module: nn.Module) -> None:
        if isinstance(module, nn.ReLU6):
            from captum._utils.common import _register_backward_hook

            self.backward_hooks.extend(_register_backward_hook(module, self._backward_hook, self))
        else:
            super()._register_hooks(module)


@register
class GuidedGradCamMethod(Attribution):
    """Guided Grad-CAM (Selvaraju et al. 2017), paper method, via captum (CNNs only).

    captum ``GuidedGradCam`` with the layer ``surface.last_stage``: guided backpropagation
    (Springenberg et al. 2015; ReLU and ReLU6 gradients overridden) times the Grad-CAM of the
    last stage upsampled to the image (``interpolate_mode``, captum's default "nearest").

    Pooling: the result is a signed attribution per colour channel, pooled as the authors pool
    every 3-channel map (their evaluation code passes Guided Grad-CAM the same pooling as IG):
    the squared L2 norm over the channels, ``R = sum_c a_c**2``, not normalised. (Min-max
    would shift the map by its minimum and change RMA wherever that minimum is not 0.)
    """

    name = "guided_gradcam"
    label = "Guided Grad-CAM"
    color = "#d55e00"
    paper = True
    kinds = ("cnn",)
    pooling = "squared L2 norm over colour channels (sum_c a_c^2)"
    defaults = dict(interpolate_mode="nearest")
    reference = ("Selvaraju et al. Grad-CAM: visual explanations from deep networks via "
                 "gradient-based localization. ICCV 2017.")

    @classmethod
    def _validate(cls, p: dict) -> None:
        check_choice(cls.name, "interpolate_mode", p["interpolate_mode"], ("nearest", "bilinear", "bicubic", "area"))

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ggc = GuidedGradCam(self.model, self.surface.last_stage)
        ggc.guided_backprop = _GuidedBackpropReLU6(self.model)
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            attr = ggc.attribute(_leaf(x), target=target, interpolate_mode=self.params["interpolate_mode"])
        return channel_energy(attr)
