"""Attention maps of ViTs: last-block CLS attention (paper) and attention rollout (extension).

:func:`block_qk` generalises ``Surface._qk`` (queries and keys of the *last* block) to every
block, capturing all of them in one forward pass.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sparsevis.models import Surface

from .base import Attribution, check_choice, minmax, upsample
from .registry import register


def attention_modules(surf: Surface) -> list[nn.Module]:
    """The attention module of every block of a ViT, first to last."""
    surf._need("vit", "attention_modules")
    return [block.attn if hasattr(block, "attn") else block.self_attention for block in surf.blocks]


def block_qk(surf: Surface, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Queries and keys of every attention block, each (B, heads, N, head_dim), one forward pass.

    timm ``Attention``: the fused ``qkv`` Linear's output split in thirds, then ``q_norm`` /
    ``k_norm``; torchvision ``MultiheadAttention``: the block's query input projected with the
    first two thirds of ``in_proj_weight`` (as ``Surface._qk`` does for the last block).
    """
    mods = attention_modules(surf)
    store: dict[int, torch.Tensor] = {}
    handles = []
    try:
        for i, att in enumerate(mods):
            if isinstance(att, nn.MultiheadAttention):
                def pre(m, args, kwargs, i=i):
                    store[i] = args[0] if args else kwargs["query"]
                handles.append(att.register_forward_pre_hook(pre, with_kwargs=True))
            else:
                handles.append(att.qkv.register_forward_hook(lambda m, a, o, i=i: store.__setitem__(i, o)))
        surf.model(x)
    finally:
        for h in handles:
            h.remove()
    out = []
    for i, att in enumerate(mods):
        if isinstance(att, nn.MultiheadAttention):
            inp = store[i] if att.batch_first else store[i].transpose(0, 1)
            d = att.embed_dim
            w, b = att.in_proj_weight, att.in_proj_bias
            q = F.linear(inp, w[:d], None if b is None else b[:d])
            k = F.linear(inp, w[d:2 * d], None if b is None else b[d:2 * d])
        else:
            qkv = store[i]
            d = qkv.shape[-1] // 3
            q, k = qkv[..., :d], qkv[..., d:2 * d]
        bsz, n, d = q.shape
        heads = att.num_heads
        q, k = (t.reshape(bsz, n, heads, d // heads).transpose(1, 2) for t in (q, k))
        if hasattr(att, "q_norm"):
            q, k = att.q_norm(q), att.k_norm(k)
        out.append((q, k))
    return out


def block_attention(surf: Surface, x: torch.Tensor) -> list[torch.Tensor]:
    """Attention probabilities of every block, each (B, heads, N, N), rows = queries."""
    return [torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1)
            for q, k in block_qk(surf, x)]


def _need_cls(method: Attribution) -> None:
    if method.surface.num_prefix_tokens < 1:
        raise ValueError(f"method {method.name!r} reads the CLS token's attention, but this ViT has "
                         "no prefix (CLS) token (num_prefix_tokens=0)")


@register
class ClsAttention(Attribution):
    """Last-block CLS attention summed over heads (paper method, ViT only).

    ``surface.cls_attention(x)`` (B, heads, h, w) - patch index i = row * w + col, the order
    the patch embedding flattens the grid in (the released code transposed it) - summed over
    heads, upsampled bilinearly to the image size and min-max normalised per image (constant ->
    zeros).
    """

    name = "cls_attention"
    label = "CLS attention"
    color = "#029e73"
    paper = True
    kinds = ("vit",)
    pooling = "sum over heads, bilinear upsampling, min-max per image (constant -> zeros)"
    defaults: dict = {}
    reference = ("Caron et al. Emerging properties in self-supervised vision transformers. "
                 "ICCV 2021 (last-block CLS attention maps).")

    def __init__(self, model, **params):
        super().__init__(model, **params)
        _need_cls(self)

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            att = self.surface.cls_attention(x).sum(dim=1)
        return minmax(upsample(att, x.shape[-2:]))


@register
class Rollout(Attribution):
    """Attention rollout (Abnar & Zuidema 2020) - an *extension beyond the paper* (ViT only).

    For each block the attention probabilities are fused over heads (``head_fusion``: mean,
    as in the paper, or max / min), the identity is added for the residual connection and the
    rows are renormalised to sum to 1; the rollout is the product through the blocks,
    ``R = A_L ... A_2 A_1``. The CLS token's row of R over the patch tokens (index
    i = row * w + col) is reshaped to the grid, upsampled bilinearly and min-max normalised
    (constant -> zeros). Class-agnostic: ``target`` is ignored.
    """

    name = "rollout"
    label = "attention rollout"
    color = "#ca9161"
    paper = False
    kinds = ("vit",)
    pooling = "CLS row over patches, bilinear upsampling, min-max per image (constant -> zeros)"
    defaults = dict(head_fusion="mean")
    reference = "Abnar, Zuidema. Quantifying attention flow in transformers. ACL 2020."

    def __init__(self, model, **params):
        super().__init__(model, **params)
        _need_cls(self)

    @classmethod
    def _validate(cls, p: dict) -> None:
        check_choice(cls.name, "head_fusion", p["head_fusion"], ("mean", "max", "min"))

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fuse = {"mean": lambda a: a.mean(dim=1), "max": lambda a: a.amax(dim=1),
                "min": lambda a: a.amin(dim=1)}[self.params["head_fusion"]]
        with torch.no_grad():
            rollout = None
            for att in block_attention(self.surface, x):
                a = fuse(att)
                a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
                a = a / a.sum(dim=-1, keepdim=True)
                rollout = a if rollout is None else a @ rollout
            patches = rollout[:, 0, self.surface.num_prefix_tokens:]
        h, w = self.surface.grid(x.shape[-2:])
        return minmax(upsample(patches.reshape(len(x), h, w), x.shape[-2:]))
