"""The object-discovery chapter's figures: CorLoc against sparsity, the discovered boxes across
the checkpoints, and LOST's degree and similarity maps."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.lines import Line2D

from sparsevis import plotting

STAGE = "discovery"
N_ROWS = 4          # example images per boxes grid
N_SLIDER = 8        # example images per slider frame
BASELINE = "full-image (baseline)"
METHOD_NAMES = {"lost": "LOST", "tokencut": "TokenCut (extension)", BASELINE: "whole-image box (baseline)"}
PAPER = {"lost": True, "tokencut": False}
COLORS = {"lost": plotting.BOX_COLORS["lost"], "tokencut": plotting.BOX_COLORS["tokencut"], BASELINE: "0.6"}


def name(method: str) -> str:
    return METHOD_NAMES.get(method, f"{method} (extension)")


def linestyle(method: str) -> str:
    """The paper's method solid, extensions dashed, the trivial baseline dash-dotted."""
    return "-" if PAPER.get(method) else "-." if method == BASELINE else "--"


def study_rows(rows: pd.DataFrame, methods=None) -> pd.DataFrame:
    """The chapter's CorLoc rows (``methods``: a name or names; None: all)."""
    study = rows[(rows["study"] == STAGE) & (rows["metric"] == "corloc")]
    if methods is not None:
        study = study[study["method"].isin({methods} if isinstance(methods, str) else set(methods))]
    return study


def methods_in(study: pd.DataFrame) -> list[str]:
    """LOST, TokenCut, then any other method (the baseline among them) by name."""
    return [m for m in ("lost", "tokencut") if m in set(study["method"])] + sorted(
        set(study["method"]) - {"lost", "tokencut"})


def curves_figure(rows: pd.DataFrame, track: str, profile: str, methods=None):
    """CorLoc against sparsity: one column per model, one row per dataset, one line per method;
    test accuracy on a right-hand axis."""
    study = study_rows(rows, methods)
    here = methods_in(study)
    acc = plotting.accuracy_rows(rows)
    sub = study[study["track"] == track]
    models = list(dict.fromkeys(sub["model"]))
    datasets = list(dict.fromkeys(sub["dataset"]))
    panels = plotting.model_panels(len(datasets), len(models), 2.5, sharey=True)
    fig = panels.fig
    for i, dataset in enumerate(datasets):
        for j, model in enumerate(models):
            ax = panels.ax(i, j)
            for m in here:
                g = sub[(sub["model"] == model) & (sub["dataset"] == dataset) & (sub["method"] == m)]
                if len(g):
                    plotting.line_with_band(ax, g["sparsity"], g["value"], g["ci_low"], g["ci_high"],
                                            color=COLORS.get(m), ls=linestyle(m))
            plotting.accuracy_twin(ax, acc[acc["model"] == model], labelled=panels.last_column(j, len(models)))
            plotting.sparsity_axis(ax, max_sparsity=sub["sparsity"].max(),
                                   label="sparsity" if i == len(datasets) - 1 else "")
            ax.tick_params(axis="x", labelsize=7)
            ax.set_ylim(-0.02, 1.02)
            if i == 0:
                n = sub.loc[sub["model"] == model, "n_params"].iloc[0]
                ax.set_title(f"{model}\n{n / 1e6:.2f} M params", fontsize=9)
            if panels.first_column(j):
                ax.set_ylabel(f"CorLoc · {dataset}" if len(datasets) > 1 else "CorLoc")
    handles = [Line2D([], [], color=COLORS.get(m), ls=linestyle(m), marker="o", label=name(m)) for m in here]
    handles.append(Line2D([], [], label=plotting.accuracy_label(rows, track), **plotting.ACCURACY_STYLE))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=7.5)
    fig.suptitle(f"Object discovery against sparsity · {track} track · profile {profile}", fontsize=10.5)
    fig.tight_layout(rect=(0, 0.32 / fig.get_figheight(), 1, 1))
    return fig


def verdicts(study: pd.DataFrame) -> str:
    """Markdown: per model, dataset and method, where CorLoc is highest and whether its interval
    overlaps the dense model's."""
    fmt = plotting.format_sparsity
    lines = []
    several = study.groupby("track")["dataset"].nunique().to_dict()
    for (tr, model, dataset, m), g in study.groupby(["track", "model", "dataset", "method"], sort=False):
        g = g.dropna(subset=["value"]).sort_values("sparsity")
        if g.empty:
            continue
        best, dense = g.loc[g["value"].idxmax()], g[g["iteration"] == g["iteration"].min()].iloc[0]
        overlap = best["ci_low"] <= dense["ci_high"] and dense["ci_low"] <= best["ci_high"]
        if best["iteration"] == dense["iteration"]:
            verdict = f"highest at the dense model ({dense['value']:.2f} [{dense['ci_low']:.2f}, {dense['ci_high']:.2f}])"
        else:
            verdict = (f"highest at {fmt(best['sparsity'])}: {best['value']:.2f} [{best['ci_low']:.2f}, "
                       f"{best['ci_high']:.2f}] vs. dense {dense['value']:.2f} [{dense['ci_low']:.2f}, "
                       f"{dense['ci_high']:.2f}]; " + ("the intervals overlap, so it is not distinguishable from dense"
                                                      if overlap else "the intervals do not overlap"))
        on = f" on {dataset}" if several[tr] > 1 else ""
        lines.append(f"- **{model}** ({tr}), {name(m)}{on}: CorLoc {verdict}.")
    return "\n".join(lines) if lines else "No CorLoc results."


def seed_box(it: dict, k: int) -> tuple[float, float, float, float]:
    """LOST's seed patch of example ``k`` in pixels (x1, y1, x2, y2)."""
    h, w = it["grid"][k]    # per image: images differ in size on the paper track
    s = it["stride"]
    r, c = divmod(int(it["seed"][k]), w)
    return c * s, r * s, (c + 1) * s, (r + 1) * s


def gt_boxes(imgs: dict, k: int) -> np.ndarray:
    return torch.as_tensor(imgs["boxes"][k]).numpy().reshape(-1, 4)


def draw_boxes(ax, img, gt, it: dict, k: int, methods: list[str], lw: float = 1.6) -> None:
    """Example ``k`` with its ground truth (dashed), TokenCut's box (dotted), LOST's box and seed."""
    ax.imshow(img)
    H, W = img.shape[:2]
    for b in gt:
        plotting.box(ax, b, ec=plotting.BOX_COLORS["gt"], lw=lw, ls="--")
    if "tokencut" in methods and "tokencut_boxes" in it:
        plotting.box(ax, it["tokencut_boxes"][k], ec=COLORS["tokencut"], lw=lw, ls=":")
    if "lost" in methods:
        plotting.box(ax, it["lost_boxes"][k], ec=COLORS["lost"], lw=lw)
        plotting.box(ax, seed_box(it, k), fill=True, fc=plotting.BOX_COLORS["seed"], ec="white", lw=0.6,
                     alpha=0.85)
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)
    plotting.image_panel(ax)


def legend_handles(methods: list[str]) -> list[Line2D]:
    hs = [Line2D([], [], color=plotting.BOX_COLORS["gt"], ls="--", label="ground truth")]
    if "lost" in methods:
        hs += [Line2D([], [], color=COLORS["lost"], label="LOST"),
               Line2D([], [], color=plotting.BOX_COLORS["seed"], marker="s", ls="", label="LOST seed")]
    if "tokencut" in methods:
        hs.append(Line2D([], [], color=COLORS["tokencut"], ls=":", label="TokenCut (extension)"))
    return hs


def boxes_grid(imgs: dict, iters: list[dict], methods: list[str], title: str, n_rows: int = N_ROWS):
    """Example images (rows, taken in turn from each dataset) at every checkpoint (columns)."""
    rows = plotting.example_order(imgs["datasets"], n_rows)
    ncol = len(iters)
    cell = min(1.5, (plotting.FIGURE_WIDTH - 0.3) / ncol)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(cell * ncol + 0.3, cell * len(rows) + 1.0), squeeze=False)
    for i, k in enumerate(rows):
        img = plotting.example_image(imgs, k)
        for j, it in enumerate(iters):
            draw_boxes(axes[i, j], img, gt_boxes(imgs, k), it, k, methods, lw=1.2)
        if len(set(imgs["datasets"])) > 1:
            axes[i, 0].set_ylabel(imgs["datasets"][k], fontsize=7.5)
    for j, it in enumerate(iters):
        axes[0, j].set_title(plotting.format_sparsity(it["sparsity"]), fontsize=8)
    fig.suptitle(title, fontsize=9.5)
    wide = fig.get_figwidth() >= 5.5
    fig.legend(handles=legend_handles(methods), loc="lower center", ncol=4 if wide else 2, frameon=False,
               fontsize=7.5)
    fig.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.2,
                     rect=(0, (0.3 if wide else 0.5) / fig.get_figheight(), 1, 1 - 0.12 / fig.get_figheight()))
    return fig


def lost_maps_figure(imgs: dict, iters: list[dict], title: str, example: int = 0):
    """LOST on one example at every checkpoint (columns): top, each patch's degree (one colour
    scale; x: the seed); bottom, the similarity map with LOST's box."""
    img = plotting.example_image(imgs, example)
    H, W = img.shape[:2]
    ncol = 1 + len(iters)
    cell = min(1.15, (plotting.FIGURE_WIDTH - 0.9) / ncol)
    fig, axes = plt.subplots(2, ncol, figsize=(cell * ncol + 0.9, 2 * cell + 0.8), squeeze=False,
                             layout="constrained")
    n_max = max(float(it["degree"][example].max()) for it in iters)
    axes[0, 0].imshow(img)
    for b in gt_boxes(imgs, example):
        plotting.box(axes[0, 0], b, ec=plotting.BOX_COLORS["gt"], lw=1.2, ls="--")
    axes[0, 0].set_title("image", fontsize=8)
    axes[1, 0].set_visible(False)
    for j, it in enumerate(iters):
        h, w = it["grid"][example]
        s = it["stride"]
        ext = (0, w * s, h * s, 0)
        deg = it["degree"][example].reshape(h, w).numpy()
        im0 = axes[0, j + 1].imshow(deg, cmap="viridis", vmin=0, vmax=n_max, extent=ext, interpolation="nearest")
        r0, c0 = divmod(int(it["seed"][example]), w)
        axes[0, j + 1].plot((c0 + 0.5) * s, (r0 + 0.5) * s, "x", color=plotting.BOX_COLORS["seed"], ms=7, mew=2)
        sm = it["score_map"][example].numpy()
        lim = float(np.abs(sm).max()) or 1.0
        axes[1, j + 1].imshow(img.mean(axis=2), cmap="gray", vmin=0, vmax=255)
        im1 = axes[1, j + 1].imshow(sm / lim, cmap="RdBu_r", vmin=-1, vmax=1, alpha=0.7, extent=ext,
                                    interpolation="nearest")
        plotting.box(axes[1, j + 1], it["lost_boxes"][example], ec=COLORS["lost"], lw=1.4)
        axes[0, j + 1].set_title(plotting.format_sparsity(it["sparsity"]), fontsize=8)
    for ax in axes.flat:
        ax.set_xlim(0, W)
        ax.set_ylim(H, 0)
        plotting.image_panel(ax)
    axes[0, 1].set_ylabel("degree", fontsize=8)
    axes[1, 1].set_ylabel("similarity", fontsize=8)
    fig.colorbar(im0, ax=axes[0, -1], fraction=0.08, pad=0.03).ax.tick_params(labelsize=7)
    fig.colorbar(im1, ax=axes[1, -1], fraction=0.08, pad=0.03, ticks=[-1, 0, 1]).ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=9.5)
    return fig


def boxes_frame(imgs: dict, it: dict, methods: list[str], title: str, n: int = N_SLIDER):
    """One slider frame: the boxes of up to ``n`` examples (in turn from each dataset) at one checkpoint."""
    shown = plotting.example_order(imgs["datasets"], n)
    ncol = min(4, len(shown))
    nrow = -(-len(shown) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.4, 6.4 / ncol * nrow + 0.8), squeeze=False)
    for slot, ax in enumerate(axes.flat):
        if slot < len(shown):
            k = shown[slot]
            draw_boxes(ax, plotting.example_image(imgs, k), gt_boxes(imgs, k), it, k, methods)
        else:
            ax.set_visible(False)
    fig.suptitle(title, fontsize=9)
    fig.legend(handles=legend_handles(methods), loc="lower center", ncol=4, frameon=False, fontsize=7.5)
    fig.tight_layout(pad=0.3, rect=(0, 0.3 / fig.get_figheight(), 1, 1 - 0.1 / fig.get_figheight()))
    return fig
