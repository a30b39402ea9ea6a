"""Models by timm or torchvision name, and one uniform surface over them.

``create("torchvision/resnet18")``, ``create("timm/vit_small_patch16_224")`` or a bare name
(torchvision first, then timm) builds a stock model definition, optionally from a local
weights file, so pruned checkpoints always load into the library's own classes.

``surface(model)`` gives the studies what they need without editing model code: the last-stage
feature map of a CNN, the tokens, true keys and CLS attention of a ViT's last block, the stem and
the classifier. The small ``sv_*`` architectures of the synthetic track are registered with timm
here, so they are timm names like any other.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
import torchvision
from timm.models import register_model
from torch import nn

from sparsevis.checkpoint_format import load_state_dict_file

SOURCES = ("torchvision", "timm")


# --------------------------------------------------------------------------------------------
# Synthetic-track architectures (64x64 inputs, stride 8 so LOST gets an 8x8 grid)
# --------------------------------------------------------------------------------------------
def _model_kwargs(kw: dict) -> dict:
    """Drop what timm's factory adds for hub-backed models (no pretrained configs here)."""
    return {k: v for k, v in kw.items() if k not in {"pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"}}


def _small_resnet(channels, layers, num_classes, **kw):
    from timm.models.resnet import BasicBlock, ResNet

    # timm's ResNet has four stages; output_stride=16 dilates the last one, and without the stem
    # max-pool the total stride is 8, so 64 px inputs give an 8x8 last-stage grid for LOST.
    # A "deep" stem (three 3x3 convs) is the only timm stem whose width follows stem_width.
    model = ResNet(BasicBlock, layers=layers, channels=channels, stem_type="deep",
                   stem_width=channels[0] // 2, output_stride=16, num_classes=num_classes,
                   **_model_kwargs(kw))
    model.maxpool = nn.Identity()
    return model


@register_model
def sv_resnet_s(pretrained=False, num_classes=10, **kw):
    """Small synthetic-track ResNet: stages (8, 16, 32, 64), one BasicBlock each (~80 k params)."""
    return _small_resnet((8, 16, 32, 64), (1, 1, 1, 1), num_classes, **kw)


@register_model
def sv_resnet_m(pretrained=False, num_classes=10, **kw):
    """Larger synthetic-track ResNet: stages (16, 32, 64, 128), one BasicBlock each (4x the params)."""
    return _small_resnet((16, 32, 64, 128), (1, 1, 1, 1), num_classes, **kw)


@register_model
def sv_vit_t(pretrained=False, num_classes=10, **kw):
    """Tiny synthetic-track ViT: 64 px, stride 8 (8x8 grid), width 64, 4 blocks, 4 heads.

    The 8x8 patchify convolution is replaced by a convolutional stem (three 3x3 stride-2
    conv-BN-ReLU and a 1x1 projection; Xiao et al. 2021, "Early convolutions help transformers
    see better"). With the plain patchify stem the model learnt only the texture shortcut
    (about 80 % clean accuracy, what texture alone gives); with this stem it learns shape.
    """
    from timm.models.vision_transformer import VisionTransformer

    args = dict(img_size=64, embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.0)
    args.update(_model_kwargs(kw))
    if args.pop("patch_size", 8) != 8:
        raise ValueError(f"sv_vit_t: patch_size={kw['patch_size']!r}; its convolutional stem has stride 8")
    model = VisionTransformer(num_classes=num_classes, patch_size=8, **args)
    width, layers = args["embed_dim"], []
    for c_in, c_out in ((3, width // 4), (width // 4, width // 2), (width // 2, width)):
        layers += [nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    model.patch_embed.proj = nn.Sequential(*layers, nn.Conv2d(width, width, 1))
    return model


# --------------------------------------------------------------------------------------------
# Creation
# --------------------------------------------------------------------------------------------
def resolve_name(name: str) -> tuple[str, str]:
    """``"timm/x"``, ``"torchvision/x"`` (or ``"tv/x"``) or a bare name -> (source, arch)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    source, _, arch = name.rpartition("/")
    source = {"tv": "torchvision"}.get(source, source)
    tv_names = set(torchvision.models.list_models())
    if source == "":
        if arch in tv_names:
            return "torchvision", arch
        if timm.is_model(arch):
            return "timm", arch
    elif source == "torchvision" and arch in tv_names:
        return source, arch
    elif source == "timm" and timm.is_model(arch):
        return source, arch
    elif source not in SOURCES:
        raise ValueError(f"unknown model source {source!r} in {name!r}; expected one of {SOURCES}")
    raise ValueError(
        f"unknown architecture {name!r}: not a torchvision model ({len(tv_names)} names, "
        f"torchvision.models.list_models()) nor a timm model (timm.list_models()); "
        f"synthetic-track names: {timm.list_models('sv_*')}"
    )


def create(name: str, num_classes: int | None = None, weights: str | Path | None = None,
           **kw) -> nn.Module:
    """Build a stock timm/torchvision model.

    weights: None (random init), a torchvision weights name such as ``"IMAGENET1K_V1"`` or
    ``"DEFAULT"`` (loaded from torch's checkpoint cache; nothing is downloaded when the file is
    there), or the path of a local state-dict file (a plain state dict or a sparsevis
    checkpoint), loaded strictly.
    """
    source, arch = resolve_name(name)
    local = weights is not None and (Path(str(weights)).suffix in {".pth", ".pt", ".bin"}
                                     or Path(str(weights)).exists())
    extra = dict(kw)
    if num_classes is not None:
        extra["num_classes"] = num_classes
    if source == "torchvision":
        model = torchvision.models.get_model(arch, weights=None if local else weights, **extra)
    else:
        if weights is not None and not local:
            raise ValueError(f"weights={weights!r}: timm models take a local weights file here "
                             "(no hub access); pass its path")
        model = timm.create_model(arch, pretrained=False, **extra)
    if local:
        model.load_state_dict(load_state_dict_file(weights, expected_arch=f"{source}/{arch}"))
    model.sparsevis_arch = f"{source}/{arch}"
    return model


def arch_name(model: nn.Module) -> str:
    """Canonical ``source/arch`` name of a model made by :func:`create` (else its class name)."""
    return getattr(model, "sparsevis_arch", type(model).__name__)


# --------------------------------------------------------------------------------------------
# Uniform surface
# --------------------------------------------------------------------------------------------
@dataclass
class Surface:
    """What the studies read from a model. Build it with :func:`surface`.

    kind: "cnn" (feature map from ``last_stage``), "vit" (tokens from ``blocks``, keys and
    attention from ``attention``) or "swin" (channels-last feature map from ``last_stage``).
    """

    model: nn.Module
    kind: str
    stem: nn.Module
    classifier: nn.Module
    stride: int
    last_stage: nn.Module | None = None
    blocks: nn.Module | None = None      # ViT: the block sequence; tokens = output of the last
    attention: nn.Module | None = None   # ViT: attention module of the last block
    num_prefix_tokens: int = 0
    num_heads: int = 0
    dilatable: list[nn.Module] | None = None  # CNN: modules from the last strided block on

    def grid(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        h, w = image_hw
        return h // self.stride, w // self.stride

    @contextlib.contextmanager
    def _capture(self, module: nn.Module, pre: bool = False):
        store = {}
        if pre:
            handle = module.register_forward_pre_hook(
                lambda m, args, kwargs: store.__setitem__("x", args[0] if args else kwargs["query"]),
                with_kwargs=True)
        else:
            handle = module.register_forward_hook(lambda m, i, o: store.__setitem__("x", o))
        try:
            yield store
        finally:
            handle.remove()

    def _forward(self, x: torch.Tensor) -> None:
        """The forward pass the hooks read. A torchvision ViT also runs at sizes other than its
        own (LOST at full resolution): its position embeddings are interpolated bicubically to
        the image's grid (like DINO's, which LOST uses); torchvision's forward would reject
        the size."""
        m = self.model
        if not isinstance(m, torchvision.models.VisionTransformer) or tuple(x.shape[-2:]) == (m.image_size,) * 2:
            self.model(x)
            return
        h, w = self.grid(x.shape[-2:])
        if (h * self.stride, w * self.stride) != tuple(x.shape[-2:]):
            raise ValueError(f"input of {tuple(x.shape[-2:])} px: a ViT with {self.stride} px patches "
                             "needs a multiple of the patch size (pad with discovery.pad_to_multiple)")
        pos = m.encoder.pos_embedding
        side = m.image_size // m.patch_size
        grid_pos = F.interpolate(pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2), size=(h, w),
                                 mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)
        patches = m.conv_proj(x).flatten(2).transpose(1, 2)
        z = torch.cat([m.class_token.expand(len(x), -1, -1), patches], 1) + torch.cat([pos[:, :1], grid_pos], 1)
        m.encoder.ln(m.encoder.layers(m.encoder.dropout(z)))

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Last-stage feature map (B, C, h, w) of a CNN or Swin."""
        if self.kind == "vit":
            tokens = self.tokens(x)[:, self.num_prefix_tokens:]
            h, w = self.grid(x.shape[-2:])
            return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, h, w)
        with self._capture(self.last_stage) as store:
            self.model(x)
        out = store["x"]
        return out.permute(0, 3, 1, 2) if self.kind == "swin" else out

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Output tokens (B, N, D) of the last ViT block, prefix (CLS) tokens included."""
        self._need("vit", "tokens")
        with self._capture(self.blocks[-1]) as store:
            self._forward(x)
        return store["x"]

    def _qk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries and keys of the last attention block, each (B, heads, N, head_dim)."""
        self._need("vit", "keys")
        att = self.attention
        if isinstance(att, nn.MultiheadAttention):  # torchvision: fused in_proj_weight
            with self._capture(att, pre=True) as store:
                self._forward(x)
            inp = store["x"] if att.batch_first else store["x"].transpose(0, 1)
            d = att.embed_dim
            w, b = att.in_proj_weight, att.in_proj_bias
            q = F.linear(inp, w[:d], None if b is None else b[:d])
            k = F.linear(inp, w[d:2 * d], None if b is None else b[d:2 * d])
        else:  # timm Attention: fused qkv Linear
            with self._capture(att.qkv) as store:
                self._forward(x)
            qkv = store["x"]
            d = qkv.shape[-1] // 3
            q, k = qkv[..., :d], qkv[..., d:2 * d]
        bsz, n, d = q.shape
        q, k = (t.reshape(bsz, n, self.num_heads, d // self.num_heads).transpose(1, 2) for t in (q, k))
        if hasattr(att, "q_norm"):
            q, k = att.q_norm(q), att.k_norm(k)
        return q, k

    def keys(self, x: torch.Tensor) -> torch.Tensor:
        """True keys of the last attention block, CLS dropped, heads concatenated: (B, N, D)."""
        _, k = self._qk(x)
        bsz, heads, n, hd = k.shape
        return k.transpose(1, 2).reshape(bsz, n, heads * hd)[:, self.num_prefix_tokens:]

    def cls_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Last block's attention from CLS to the patches, per head: (B, heads, h, w)."""
        q, k = self._qk(x)
        att = torch.softmax(q[:, :, :1] @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1)
        patches = att[:, :, 0, self.num_prefix_tokens:]
        h, w = self.grid(x.shape[-2:])
        return patches.reshape(*patches.shape[:2], h, w)

    def _need(self, kind: str, what: str):
        if self.kind != kind:
            raise ValueError(f"{what}() needs a {kind} model; {arch_name(self.model)} is a {self.kind}")


def surface(model: nn.Module) -> Surface:
    """Uniform access to a supported model (see :class:`Surface`)."""
    from timm.models.resnet import ResNet as TimmResNet
    from timm.models.vision_transformer import VisionTransformer as TimmViT
    from torchvision.models import (
        MobileNetV2,
        ResNet,
        SwinTransformer,
        VisionTransformer,
    )

    if isinstance(model, (ResNet, TimmResNet)):
        return Surface(model, "cnn", model.conv1, model.fc, _measured_stride(model, model.layer4),
                       last_stage=model.layer4, dilatable=[model.layer4])
    if isinstance(model, MobileNetV2):
        strided = [i for i, block in enumerate(model.features)
                   if any(isinstance(m, nn.Conv2d) and m.stride != (1, 1) for m in block.modules())]
        return Surface(model, "cnn", model.features[0][0], model.classifier[-1],
                       _measured_stride(model, model.features), last_stage=model.features,
                       dilatable=list(model.features[strided[-1]:]))
    if isinstance(model, VisionTransformer):
        att = model.encoder.layers[-1].self_attention
        return Surface(model, "vit", model.conv_proj, model.heads[-1], model.patch_size,
                       blocks=model.encoder.layers, attention=att, num_prefix_tokens=1,
                       num_heads=att.num_heads)
    if isinstance(model, TimmViT):
        att = model.blocks[-1].attn
        # the first convolution of the patch embedding (a convolutional stem's first layer)
        stem = next((m for m in model.patch_embed.proj.modules() if isinstance(m, nn.Conv2d)), None)
        if stem is None:
            raise ValueError(f"{arch_name(model)}: no Conv2d in patch_embed.proj; expected a patchify "
                             "convolution or a convolutional stem")
        return Surface(model, "vit", stem, model.get_classifier(),
                       model.patch_embed.patch_size[0], blocks=model.blocks, attention=att,
                       num_prefix_tokens=model.num_prefix_tokens, num_heads=att.num_heads)
    if isinstance(model, SwinTransformer):
        return Surface(model, "swin", model.features[0][0], model.head, 32,
                       last_stage=model.features[-1])
    raise ValueError(
        f"no surface for {arch_name(model)} ({type(model).__name__}); supported: torchvision/timm "
        "ResNet, torchvision MobileNetV2, torchvision/timm VisionTransformer, torchvision Swin")


def _measured_stride(model: nn.Module, last_stage: nn.Module, size: int = 64) -> int:
    """Total stride of a CNN's last stage, measured once with a small forward pass and cached
    on the model (:func:`dilate_last_stage` clears the cache)."""
    if getattr(model, "sparsevis_stride", None):
        return model.sparsevis_stride
    store = {}
    handle = last_stage.register_forward_hook(lambda m, i, o: store.__setitem__("shape", o.shape))
    was_training = model.training
    try:
        model.eval()
        param = next(model.parameters())
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device=param.device, dtype=param.dtype))
    finally:
        handle.remove()
        model.train(was_training)
    model.sparsevis_stride = size // store["shape"][-1]
    return model.sparsevis_stride


def dilatable(model: nn.Module) -> bool:
    """Whether :func:`dilate_last_stage` applies: a CNN whose last stage still has a strided
    convolution (torchvision's ResNets and MobileNetV2; not the synthetic ResNets, whose last
    stage is dilated already)."""
    surf = surface(model)
    return surf.kind == "cnn" and any(isinstance(m, nn.Conv2d) and m.stride != (1, 1)
                                      for block in surf.dilatable for m in block.modules())


def dilate_last_stage(model: nn.Module) -> nn.Module:
    """Replace the stride of a CNN's last stage by dilation (in place; weights unchanged).

    The first strided conv of the stage (and its shortcut) gets stride 1; every later spatial
    conv of the stage gets dilation 2 with matching padding, as torchvision's
    ``replace_stride_with_dilation`` does. The feature grid doubles in each direction.
    """
    surf = surface(model)
    if surf.kind != "cnn":
        raise ValueError(f"dilate_last_stage needs a CNN; {arch_name(model)} is a {surf.kind}")
    seen_stride = False
    convs = [m for block in surf.dilatable for m in block.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs:
        if conv.stride != (1, 1):
            conv.stride = (1, 1)
            seen_stride = True
        elif seen_stride and conv.kernel_size[0] > 1:
            conv.dilation = (2, 2)
            conv.padding = tuple(2 * (k // 2) for k in conv.kernel_size)
    if not seen_stride:
        raise ValueError(f"the last stage of {arch_name(model)} has no strided conv to dilate")
    model.sparsevis_stride = None
    return model
