"""The explorer's figures, drawn from the dicts :meth:`sparsevis.explorer.Explorer.update` returns:
one update (image, attribution map, LOST), and the chapter's preview over several sparsities."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from sparsevis import plotting
from sparsevis.plotting import BOX_COLORS, format_sparsity

N_PREVIEW = 6    # columns of the preview figure


def origin(out: dict) -> str:
    """What an update was pruned from: the dense pretrained weights or a run's checkpoint."""
    if out["pretrained"]:
        return "dense pretrained weights"
    ck = out["checkpoint"]
    return f"checkpoint {ck['iteration']} ({format_sparsity(ck['sparsity'])})"


def kind(out: dict) -> str:
    """'dense', 'checkpoint' or 'no retraining' (pruned further than its checkpoint)."""
    if out["extra_pruned"] > 0:
        return "no retraining"
    return "dense" if out["pretrained"] else "checkpoint"


def update_figure(out: dict, width: float = 7.5):
    """One update: the image with its mask and ground truth, the attribution map over it, and
    LOST's similarity map with its box and seed."""
    img = out["image"]
    fig, axes = plt.subplots(1, 3, figsize=(width, width / 3 + 0.9))
    for ax in axes:
        ax.imshow(img)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    plotting.outline(axes[0], out["mask"], "white", 1.0)
    for b in out["gt_boxes"]:
        plotting.box(axes[0], b, ec=BOX_COLORS["gt"], lw=1.6, ls="--")
    axes[0].set_title("image" if out["label"] is None else f"image · true: {out['label']}", fontsize=9)
    plotting.overlay(axes[1], img, out["map"], out["mask"], mask_color="white")
    axes[1].set_title(f"{out.get('method_label', out['method'])} ({'paper' if out['paper'] else 'extension'})",
                      fontsize=9)
    sm = out["score_map"]
    h, w = img.shape[:2]
    gh, gw = sm.shape
    s = out["stride"]
    lim = float(np.abs(sm).max()) or 1.0
    axes[2].imshow(img.mean(axis=2), cmap="gray", vmin=0, vmax=255)
    axes[2].imshow(sm, cmap="RdBu_r", vmin=-lim, vmax=lim, alpha=0.6, interpolation="nearest",
                   extent=(0, gw * s, gh * s, 0))
    axes[2].set_xlim(0, w)
    axes[2].set_ylim(h, 0)
    for b in out["gt_boxes"]:
        plotting.box(axes[2], b, ec=BOX_COLORS["gt"], lw=1.4, ls="--")
    plotting.box(axes[2], out["box"], ec=BOX_COLORS["lost"], lw=2.2)
    plotting.box(axes[2], out["seed_box"], fill=True, fc=BOX_COLORS["seed"], ec="white", lw=0.8, alpha=0.9)
    axes[2].set_title("LOST: box (orange), seed (pink)", fontsize=9)
    how = origin(out) + (", pruned further without retraining" if out["extra_pruned"] > 0 else "")
    fig.suptitle(f"{out['run']} · {out['track']} track · profile {out['profile']}\n"
                 f"sparsity {format_sparsity(out['sparsity'])} ({how}) · prediction: "
                 f"{out['prediction']} ({out['probability']:.2f}"
                 + ("" if out["correct"] is None else ", correct" if out["correct"] else ", wrong") + ")",
                 fontsize=9)
    fig.tight_layout()
    return fig


def preview_figure(outs: list[dict], method_label: str, n: int = N_PREVIEW):
    """Up to ``n`` updates of one image (columns: sparsity, spread evenly over ``outs``): top, the
    attribution map; bottom, LOST's box and seed with the ground truth and the prediction."""
    show = outs if len(outs) <= n else [outs[int(i)] for i in np.linspace(0, len(outs) - 1, n).round()]
    W = plotting.FIGURE_WIDTH
    fig, axes = plt.subplots(2, len(show), figsize=(W, W / len(show) * 2 + 1.0), squeeze=False)
    for j, o in enumerate(show):
        plotting.overlay(axes[0, j], o["image"], o["map"], o["mask"])
        axes[1, j].imshow(o["image"])
        for b in o["gt_boxes"]:
            plotting.box(axes[1, j], b, ec=BOX_COLORS["gt"], lw=1.2, ls="--")
        plotting.box(axes[1, j], o["box"], ec=BOX_COLORS["lost"], lw=1.8)
        plotting.box(axes[1, j], o["seed_box"], fill=True, fc=BOX_COLORS["seed"], ec="white", lw=0.6)
        axes[0, j].set_title(f"{format_sparsity(o['sparsity'])}\n({kind(o)})", fontsize=8)
        axes[1, j].set_xlabel(f"{o['prediction']} ({o['probability']:.2f})" + ("" if o["correct"] else " ✗"),
                              fontsize=7.5)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
    axes[0, 0].set_ylabel(method_label, fontsize=8)
    axes[1, 0].set_ylabel("LOST", fontsize=8)
    o = outs[0]
    fig.suptitle(f"The explorer at {len(show)} sparsities · {o['run']} · {o['track']} track · profile {o['profile']}",
                 fontsize=9.5)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.1 / fig.get_figheight()))
    return fig


def frame_label(out: dict) -> str:
    """A slider frame's label: its sparsity and how it was reached."""
    return f"{format_sparsity(out['sparsity'])} · {kind(out)}"
