"""The pruning chapter's figures: accuracy against sparsity, every layer's sparsity at every
checkpoint, the surviving weight magnitudes, and the prunable-set presets."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sparsevis import models, plotting, prune
from sparsevis.analysis import checkpoints as reports

TRACKS = ("synthetic", "real", "paper")
CHANCE_CLASSES = {"synthetic": 10, "real": 16}   # SynthScenes classes, model-vs-human categories
PRESETS = ("all", "paper", "all-nostem-noclassifier")
PAPER_ARCHS = ("torchvision/resnet18", "torchvision/resnet50", "torchvision/vit_b_32", "torchvision/swin_v2_t")


def accuracy_figure(acc: pd.DataFrame):
    """Top-1 accuracy against sparsity, one panel per track, one line per model, chance dashed."""
    tracks = [t for t in TRACKS if t in set(acc.track)]
    colors = plotting.palette(acc["model"])
    fig, axes = plt.subplots(1, len(tracks), figsize=(plotting.FIGURE_WIDTH, 3.4), squeeze=False)
    for ax, track in zip(axes[0], tracks):
        sub = acc[acc.track == track]
        for model, g in sub.groupby("model"):
            plotting.line_with_band(ax, g.sparsity, g.value, g.ci_low, g.ci_high, label=model,
                                    color=colors[model])
        classes = CHANCE_CLASSES.get(track)
        if classes:
            ax.axhline(1 / classes, color="0.3", lw=1, ls="--", zorder=0)
            ax.annotate("chance", (sub.sparsity.max(), 1 / classes), xytext=(0, 3),
                        textcoords="offset points", ha="right", fontsize=7.5, color="0.3")
        plotting.sparsity_axis(ax, max_sparsity=sub.sparsity.max())
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{track} · {', '.join(sorted(sub.dataset.unique()))}", fontsize=9.5)
        ax.set_ylabel("top-1 accuracy")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False, ncol=1)
    fig.tight_layout()
    return fig


def layer_reports(series: dict[str, Path]) -> dict[str, pd.DataFrame]:
    """Every layer's sparsity per checkpoint, by run label; a run with BatchNorm recalibration
    changes no mask, so it is left out when its one-shot run is there."""
    return {label: reports.layer_sparsity(d) for label, d in series.items()
            if not ("-bnrecal" in label and label.replace("-bnrecal", "") in series)}


def _short(name: str) -> str:
    return name.removesuffix(".weight").replace("features.", "f").replace(".conv.", ".c")


def layer_sparsity_figure(layers: dict[str, pd.DataFrame]):
    """One heatmap per run: layers (rows, network order) by checkpoints (columns)."""
    heights = [max(4, min(rep["name"].nunique(), 30)) for rep in layers.values()]
    fig = plt.figure(figsize=(plotting.FIGURE_WIDTH, 1.0 + 0.15 * sum(heights) + 0.5 * len(heights)))
    grid = fig.add_gridspec(len(layers), 2, height_ratios=heights, width_ratios=[40, 1], hspace=0.35)
    cax = fig.add_subplot(grid[:, 1])
    for i, (label, rep) in enumerate(layers.items()):
        ax = fig.add_subplot(grid[i, 0])
        mat = rep.pivot_table(index="name", columns="iteration", values="sparsity", sort=False)
        overall = rep.groupby("iteration")["overall"].first()
        im = ax.imshow(100 * mat.to_numpy(), aspect="auto", cmap="magma_r", vmin=0, vmax=100,
                       interpolation="nearest")
        step = max(1, -(-len(mat) // 24))   # at most ~24 labels per panel, every `step`-th layer
        ticks = list(range(0, len(mat), step))
        ax.set_yticks(ticks, [f"{_short(mat.index[k])} ({k + 1})" if step > 1 else _short(mat.index[k])
                              for k in ticks], fontsize=7)
        ax.set_xticks(range(mat.shape[1]), [plotting.format_sparsity(overall[k]) for k in mat.columns],
                      fontsize=7.5)
        ax.set_title(label, fontsize=9.5, loc="left")
        ax.grid(False)
        if i == len(layers) - 1:
            ax.set_xlabel("checkpoint (overall sparsity of the prunable set)")
    fig.colorbar(im, cax=cax, label="layer sparsity (%)")
    return fig


def magnitude_frames(run_path: Path, label: str) -> tuple[list, list[str]]:
    """Slider frames: a histogram of |w| over the remaining prunable weights at each checkpoint
    (log-spaced bins, common axes), and their labels."""
    mags, labels = [], []
    for meta, m in reports.surviving_magnitudes(run_path):
        mags.append(m)
        labels.append(f"iteration {meta['iteration']} · sparsity {plotting.format_sparsity(meta.get('sparsity', 0))} · "
                      f"{len(m):,} weights left")
    lo = np.log10(max(min(m.min() for m in mags if len(m)), 1e-6))
    hi = np.log10(max(m.max() for m in mags if len(m)))
    bins = np.logspace(lo, hi, 60)
    ymax = max(np.histogram(m, bins)[0].max() for m in mags if len(m)) * 1.05
    frames = []
    for m, text in zip(mags, labels):
        fig, ax = plt.subplots(figsize=(6.4, 2.6))
        ax.hist(m, bins=bins, color=plotting.palette([label])[label])
        ax.set_xscale("log")
        ax.set_ylim(0, ymax)
        ax.set_xlabel("|weight| of the remaining prunable weights")
        ax.set_ylabel("weights")
        ax.set_title(text, fontsize=9, loc="left")
        fig.tight_layout()
        frames.append(fig)
    return frames, labels


def preset_shares(archs: list[str]) -> pd.DataFrame:
    """Per architecture and preset: parameters, prunable weights and their share (models built
    with random weights: the counts do not depend on them)."""
    rows = []
    for arch in archs:
        model = models.create(arch)
        total = sum(p.numel() for p in model.parameters())
        for preset in PRESETS:
            n = sum(item.weight.numel() for item in prune.prunable(model, preset))
            rows.append(dict(arch=arch.split("/")[-1], params=total, preset=preset, prunable=n, share=n / total))
        del model
    shares = pd.DataFrame(rows)
    shares["model"] = shares.apply(lambda r: f"{r.arch} ({r.params / 1e6:.2f} M)", axis=1)
    return shares


def presets_figure(shares: pd.DataFrame):
    """Horizontal bars: each architecture's share of parameters in each preset."""
    order = list(dict.fromkeys(shares["model"]))
    presets = list(dict.fromkeys(shares["preset"]))
    fig, ax = plt.subplots(figsize=(plotting.FIGURE_WIDTH, 0.8 + 0.62 * len(order)))
    height = 0.8 / len(presets)
    colors = plotting.palette(presets)
    for j, preset in enumerate(presets):
        sub = shares[shares.preset == preset].set_index("model").loc[order]
        y = np.arange(len(order)) + (j - (len(presets) - 1) / 2) * height
        ax.barh(y, 100 * sub.share, height=height, label=preset, color=colors[preset])
        for yy, v in zip(y, sub.share):
            ax.text(100 * v + 0.6, yy, f"{100 * v:.1f}", va="center", fontsize=6.5)
    ax.set_yticks(range(len(order)), order)
    ax.invert_yaxis()
    ax.set_xlim(0, 109)
    ax.set_xlabel("share of all parameters in the prunable set (%)")
    ax.legend(title="preset", loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig
