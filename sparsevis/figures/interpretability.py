"""The interpretability chapter's figures: RMA/RRA curves against sparsity, heatmap grids across
the checkpoints, and the slider frames of every method's maps.

Method names, colours and the paper/extension flag come from :data:`sparsevis.attribution.METHODS`,
metric labels from :func:`sparsevis.metrics.for_study`: a new method or metric needs no edit here.
"""
from __future__ import annotations

import re
from collections.abc import Iterator

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sparsevis import attribution, metrics, plotting

STAGE = "interpretability"
N_ROWS = 4    # example images per heatmap grid (the study keeps 8)
N_COLS = 6    # example images per slider frame


def _map_metrics():
    return [m for m in metrics.for_study(STAGE) if m.inputs == "maps"]


def metric_labels() -> dict[str, str]:
    """The map metrics' axis labels (extensions marked), in the registry's order."""
    return {m.name: m.label + ("" if m.paper else " (ext.)") for m in _map_metrics()}


def base(method: str) -> str:
    """'ig_smoothgrad[n_steps=4]' -> 'ig_smoothgrad' (the results name a method run with other
    than the paper's parameters with them)."""
    return method.split("[", 1)[0]


def is_paper(method: str) -> bool:
    cls = attribution.METHODS.get(base(method))
    return bool(cls is not None and cls.paper)


def method_label(method: str) -> str:
    """The method's display name, its parameters in brackets, '(extension)' when not the paper's."""
    extra = method[len(base(method)):].strip("[]")
    return (attribution.METHODS[base(method)].label if base(method) in attribution.METHODS else base(method)) \
        + (f" ({extra})" if extra else "") + ("" if is_paper(method) else " (extension)")


def color(method: str):
    cls = attribution.METHODS.get(base(method))
    return cls.color if cls is not None else "0.3"


def _chosen(rows: pd.DataFrame, methods) -> pd.DataFrame:
    if methods is None:
        return rows
    wanted = {methods} if isinstance(methods, str) else set(methods)
    return rows[rows["method"].isin(wanted) | rows["method"].map(base).isin(wanted)]


def study_rows(rows: pd.DataFrame, methods=None) -> pd.DataFrame:
    """The chapter's map-metric rows (``methods``: names, with or without parameters; None: all)."""
    return _chosen(rows[(rows["study"] == STAGE) & rows["metric"].isin(list(metric_labels()))], methods)


def methods_in(study: pd.DataFrame) -> list[str]:
    """The methods of ``study``: the paper's first, then in registry order."""
    order = list(attribution.METHODS)
    return sorted(study["method"].unique(),
                  key=lambda m: (not is_paper(m), order.index(base(m)) if base(m) in order else 99, m))


def methods_note(methods: list[str]) -> str:
    return ("Methods in these results: " + ", ".join(
        f"**{method_label(m)}**" if is_paper(m) else method_label(m) for m in methods)
        + " (bold: the paper's methods; parameters in brackets: run with other than the paper's "
        "parameters, e.g. fewer integration steps to fit a CPU budget).")


def curves_figure(rows: pd.DataFrame, track: str, profile: str, methods=None):
    """RMA, RRA (and the extensions) against sparsity: one row per metric, one column per model,
    one line per method; test accuracy on a right-hand axis."""
    study = study_rows(rows, methods)
    sub = study[study["track"] == track]
    here = [m for m in methods_in(study) if (sub["method"] == m).any()]
    acc = plotting.accuracy_rows(rows)
    labels = metric_labels()
    models = list(dict.fromkeys(sub["model"]))
    metric_rows = [m for m in labels if m in set(sub["metric"])]
    panels = plotting.model_panels(len(metric_rows), len(models), 2.05, sharey="row")
    fig = panels.fig
    smax = sub["sparsity"].max()
    for j, model in enumerate(models):
        for i, metric in enumerate(metric_rows):
            ax = panels.ax(i, j)
            for m in here:
                g = sub[(sub["model"] == model) & (sub["metric"] == metric) & (sub["method"] == m)]
                if len(g):
                    plotting.line_with_band(ax, g["sparsity"], g["value"], g["ci_low"], g["ci_high"],
                                            color=color(m), ls="-" if is_paper(m) else "--",
                                            markersize=3.5, lw=1.5)
            plotting.accuracy_twin(ax, acc[acc["model"] == model], labelled=panels.last_column(j, len(models)))
            plotting.sparsity_axis(ax, max_sparsity=smax, label="sparsity" if i == len(metric_rows) - 1 else "")
            ax.tick_params(axis="x", labelsize=7)
            if i < len(metric_rows) - 1:
                ax.set_xticklabels([])
            if i == 0:
                n = sub.loc[sub["model"] == model, "n_params"].iloc[0]
                ax.set_title(f"{model}\n{n / 1e6:.2f} M params", fontsize=9)
            if panels.first_column(j):
                ax.set_ylabel(labels[metric])
    handles = [Line2D([], [], color=color(m), ls="-" if is_paper(m) else "--", marker="o", markersize=3.5,
                      label=method_label(m)) for m in here]
    handles.append(Line2D([], [], label=plotting.accuracy_label(rows, track), **plotting.ACCURACY_STYLE))
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), frameon=False,
               fontsize=7.5, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(f"Interpretability against sparsity · {track} track · profile {profile}", fontsize=10.5)
    legend_rows = -(-len(handles) // 4)
    fig.tight_layout(rect=(0, (0.1 + 0.22 * legend_rows) / fig.get_figheight(), 1, 1))
    return fig


def flat_maps_table(rows: pd.DataFrame, methods=None) -> pd.DataFrame:
    """Share of flat (degenerate) maps per model and method (rows) and checkpoint (columns);
    empty when the results carry no count of flat maps."""
    flat = _chosen(rows[(rows["study"] == STAGE) & (rows["metric"] == "degenerate_maps")], methods)
    if flat.empty:
        return pd.DataFrame()
    share = flat.assign(method=flat["method"].map(method_label),
                        label=flat["sparsity"].map(plotting.format_sparsity))
    # columns in order of sparsity; a model without a checkpoint at a column's sparsity shows a dash
    order = share.groupby("label")["sparsity"].min().sort_values().index
    table = share.pivot_table(index=["track", "model", "method"], columns="label", values="value",
                              sort=False)[list(order)]
    table.columns.name = "sparsity"
    return table.map(lambda v: "–" if pd.isna(v) else f"{v:.0%}")


def grid_methods(study: pd.DataFrame, methods=None) -> list[str]:
    """The methods that get a heatmap grid: the ones asked for, else the paper's."""
    here = methods_in(study)
    return here if methods is not None else [m for m in here if is_paper(m)]


def grid_name(label: str, method: str) -> str:
    """File stem of a heatmap grid (a method's parameters make no odd characters)."""
    return re.sub(r"[^\w.-]+", "-", f"interpretability-grid-{label}-{method}").strip("-")


def heatmap_grid(imgs: dict, iters: list[dict], method: str, title: str, n_rows: int = N_ROWS):
    """The paper's grid: example images (rows; first column the image with its object mask) and
    ``method``'s map at every checkpoint (columns: sparsity)."""
    n_rows = min(n_rows, len(imgs["display"]))
    ncol = 1 + len(iters)
    cell = min(1.0, (plotting.FIGURE_WIDTH - 0.3) / ncol)
    fig, axes = plt.subplots(n_rows, ncol, figsize=(cell * ncol + 0.3, cell * n_rows + 0.75), squeeze=False)
    for i in range(n_rows):
        img = plotting.example_image(imgs, i)
        mask = imgs["masks"][i].numpy().astype(bool)
        axes[i, 0].imshow(img)
        plotting.outline(axes[i, 0], mask)
        plotting.image_panel(axes[i, 0])
        for j, it in enumerate(iters):
            plotting.overlay(axes[i, j + 1], img, it["maps"][method][i].float().numpy(), mask)
            plotting.image_panel(axes[i, j + 1])
    axes[0, 0].set_title("image", fontsize=8)
    for j, it in enumerate(iters):
        axes[0, j + 1].set_title(plotting.format_sparsity(it["sparsity"]), fontsize=8)
    fig.suptitle(title, fontsize=9.5)
    _grid_layout(fig)
    return fig


def _grid_layout(fig) -> None:
    """Fit the grid to its title, from the default subplot positions (as a fresh figure is)."""
    fig.subplots_adjust(**{k: plt.rcParams[f"figure.subplot.{k}"]
                           for k in ("left", "right", "bottom", "top", "wspace", "hspace")})
    fig.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.2, rect=(0, 0, 1, 1 - 0.12 / fig.get_figheight()))


def heatmap_grids(imgs: dict, iters: list[dict], methods: list[str], titles: list[str],
                  n_rows: int = N_ROWS) -> Iterator[tuple[str, Figure]]:
    """``(method, figure)``: each method's :func:`heatmap_grid`, from one figure laid out once
    whose maps and title change from method to method (the images, masks and columns are the
    same in every grid; the layout is fitted again to each title, whose ink height moves it by
    a pixel). Save or show each figure before taking the next; the figure stays usable after
    :func:`sparsevis.plotting.show` closes it."""
    if not methods:
        return
    fig = heatmap_grid(imgs, iters, methods[0], titles[0], n_rows)
    axes = np.asarray(fig.axes).reshape(-1, 1 + len(iters))
    try:
        for m, title in zip(methods, titles, strict=True):
            for i, row in enumerate(axes):
                for ax, it in zip(row[1:], iters):
                    _set_heat(ax, it["maps"][m][i])
            if title != fig._suptitle.get_text():
                fig._suptitle.set_text(title)
                _grid_layout(fig)
            yield m, fig
    finally:
        plt.close(fig)


def _set_heat(ax, amap) -> None:
    """Replace the map drawn by :func:`sparsevis.plotting.overlay` on ``ax`` (over its grey image)."""
    heat = ax.images[1]
    scaled = plotting.heat_scale(amap.float().numpy())
    heat.set_data(scaled)
    heat.set_alpha(plotting.heat_alpha(scaled))


def maps_frame(imgs: dict, it: dict, methods: list[str], title: str, n_cols: int = N_COLS):
    """One slider frame: every method's maps (rows) on the first ``n_cols`` examples at one checkpoint."""
    n = min(n_cols, len(imgs["display"]))
    fig, axes = plt.subplots(len(methods), n, figsize=(6.6, 1.1 * len(methods) + 0.45), squeeze=False)
    for i, m in enumerate(methods):
        for k in range(n):
            plotting.overlay(axes[i, k], plotting.example_image(imgs, k), it["maps"][m][k].float().numpy(),
                             imgs["masks"][k].numpy().astype(bool))
            plotting.image_panel(axes[i, k])
        axes[i, 0].set_ylabel(method_label(m).replace(" (", "\n("), fontsize=7.5)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.2)
    return fig


def maps_frames(imgs: dict, iters: list[dict], methods: list[str], titles: list[str],
                n_cols: int = N_COLS) -> list[bytes]:
    """Every checkpoint's :func:`maps_frame`, encoded for :func:`sparsevis.plotting.sparsity_slider`:
    one figure laid out once, whose maps and title change from frame to frame (images and
    masks are the same in every frame; building the figure took half of each frame's time)."""
    fig = maps_frame(imgs, iters[0], methods, titles[0], n_cols)
    axes = np.asarray(fig.axes).reshape(len(methods), -1)
    frames = []
    for it, title in zip(iters, titles):
        for i, m in enumerate(methods):
            for k, ax in enumerate(axes[i]):
                _set_heat(ax, it["maps"][m][k])
        fig._suptitle.set_text(title)
        frames.append(plotting.encode(fig, plotting.SLIDER_DPI)[1])
    plt.close(fig)
    return frames
