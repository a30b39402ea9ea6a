"""Class activation maps: Grad-CAM and Guided Grad-CAM (paper methods)."""
from __future__ import annotations

import torch
from torch import nn

from .base import Attribution, channel_energy, check_choice, minmax, upsample
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


def cnn_cam(act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Grad-CAM on a CNN layer: activations and gradients (b, C, h, w) -> cam (b, h, w) >= 0."""
    weights = grad.mean(dim=(2, 3))
    return torch.relu((act * weights[:, :, None, None]).sum(dim=1))


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
            return cnn_cam(*activation_and_grad(self.model, surf.last_stage, x, target))
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


# the units whose gradient guided backpropagation overrides: captum's nn.ReLU, and ReLU6
# (MobileNetV2), where the same rule applies
GUIDED_UNITS = (nn.ReLU, nn.ReLU6)


def _pass_positive(grad: torch.Tensor) -> torch.Tensor:
    return grad.clamp(min=0)


def guided_gradients(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Guided backpropagation's gradient of the target logits w.r.t. the images, and the
    output of ``layer`` with its plain gradient (what Grad-CAM needs), in one forward and one
    backward pass where possible.

    Guided backpropagation (Springenberg et al. 2015) lets only positive gradients flow back
    into every :data:`GUIDED_UNITS` module (a tensor hook on each unit's output; its own
    backward then keeps its active inputs): captum ``GuidedBackprop``'s rule. When no such
    unit runs after ``layer`` (a CNN's last stage feeds pooling and a linear head), the
    gradient at the layer is the plain one, so both come from the same pass; otherwise the
    layer's plain gradient takes a second, unguided pass.
    """
    store: dict = {}
    units_after_layer = []

    def on_unit(module, inputs, out):
        if out.requires_grad:
            out.register_hook(_pass_positive)
        if "act" in store:
            units_after_layer.append(module)

    def on_layer(module, inputs, out):
        store["act"] = out = out.view_as(out)   # its gradient arrives before any unit's hook
        return out

    handles = [m.register_forward_hook(on_unit) for m in model.modules() if isinstance(m, GUIDED_UNITS)]
    handles.append(layer.register_forward_hook(on_layer))
    try:
        with torch.enable_grad():
            xi = x.detach().requires_grad_(True)
            picked = model(xi).gather(1, target[:, None]).sum()
            if "act" not in store:
                raise ValueError(f"guided_gradients: layer {type(layer).__name__} did not run in the "
                                 f"forward pass of {type(model).__name__}")
            if units_after_layer:
                (grad_x,) = torch.autograd.grad(picked, xi)
            else:
                grad_x, grad_act = torch.autograd.grad(picked, [xi, store["act"]])
    finally:
        for h in handles:
            h.remove()
    if units_after_layer:
        act, grad_act = activation_and_grad(model, layer, x, target)
    else:
        act = store["act"].detach()
    return grad_x, act, grad_act


@register
class GuidedGradCamMethod(Attribution):
    """Guided Grad-CAM (Selvaraju et al. 2017), paper method (CNNs only).

    captum ``GuidedGradCam``'s rule with the layer ``surface.last_stage``, computed here in one
    forward and backward pass (:func:`guided_gradients`; the tests check it against captum):
    guided backpropagation (Springenberg et al. 2015; ReLU and ReLU6 gradients overridden)
    times the Grad-CAM of the last stage upsampled to the image (``interpolate_mode``,
    captum's default "nearest").

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
        guided, act, grad = guided_gradients(self.model, self.surface.last_stage, x, target)
        cam = upsample(cnn_cam(act, grad), x.shape[-2:], self.params["interpolate_mode"])
        return channel_energy(guided * cam[:, None])
