"""The human-alignment chapter's figures (``notebooks/human_alignment.ipynb``).

:func:`prepare` turns the chapter's rows (:func:`sparsevis.chapters.load` of the alignment
stage) and the human reference values (:mod:`sparsevis.analysis.human_reference`) into one
:class:`Alignment`; every figure function takes it and returns the figures it draws
(:class:`sparsevis.plotting.Drawn`, none when the selection holds nothing for it).
Synthetic track: SynthScenes, no human data (the literature's human shape bias, labelled).
Real and paper tracks: model-vs-human stimuli with the observers' raw responses; the paper
track has all 17 datasets, the rotation comparison of ResNet-18 and ResNet-50, and
model-vs-human's benchmark rows (``<dataset>:benchmark``).
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from sparsevis import plotting
from sparsevis.analysis.human_reference import HumanReference
from sparsevis.chapters import ChapterData, as_set
from sparsevis.data import mvh
from sparsevis.data.synthscenes import OOD_CONDITIONS
from sparsevis.fileio import atomic_write_bytes

W = plotting.FIGURE_WIDTH
#: The literature's human shape bias on model-vs-human's cue-conflict images (Geirhos et al.
#: 2019, 2021: about 0.96): the synthetic track's only human reference, where no human data exist.
LITERATURE_HUMAN_SHAPE_BIAS = 0.96
CITE = "Stimuli and human data: model-vs-human (Geirhos et al. 2019, 2021)."
#: Older studies name the model's own metrics "vs-model" and the dense reference "vs-reference".
METHOD_ALIASES = {"vs-model": "model", "vs-reference": "vs-dense"}
BENCHMARK = "benchmark"          # condition of model-vs-human's per-dataset benchmark rows
HUMAN_TRACKS = ("real", "paper")  # tracks whose stimuli people were tested on
ROTATION_ARCHS = ("resnet18", "resnet50")


@dataclass
class Alignment:
    """The chapter's alignment rows (``ds``, ``condition`` split out of ``dataset``), the
    prune stage's accuracy, the human reference values and the provenance."""

    data: ChapterData
    al: pd.DataFrame
    acc: pd.DataFrame
    humans: HumanReference
    colors: dict

    @property
    def profile(self) -> str:
        return self.data.profile

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(self.al["model"]))

    def note(self, track) -> str:
        return " ".join(self.data.note(t) for t in ([track] if isinstance(track, str) else track))

    def drawn(self, fig, name: str, caption: str, track, rows: pd.DataFrame) -> plotting.Drawn:
        return plotting.Drawn(fig, name, caption, self.data.provenance(track, rows["run_id"].unique()))

    def observers(self, metric: str, ds: str) -> pd.DataFrame:
        """Per-observer values of one metric on one single-condition dataset."""
        h = self.humans.conditions
        h = h[(h["metric"] == metric) & (h["dataset"] == ds) & (h["other"] == "")]
        return h[~h["subj"].isin(["mean", "pooled"])]

    def pairs(self, metric: str, ds: str) -> pd.Series:
        """Observer-pair values (error / observed consistency) on one single-condition dataset."""
        h = self.humans.conditions
        return h[(h["metric"] == metric) & (h["dataset"] == ds) & (h["other"] != "")]["value"].dropna()


def prepare(data: ChapterData, humans: HumanReference, methods=None) -> Alignment:
    """The chapter's :class:`Alignment` from its rows (``methods``: the comparisons to keep)."""
    al = data.rows[data.rows["study"] == data.stage].copy()
    al["method"] = al["method"].replace(METHOD_ALIASES)
    if methods is not None:
        al = al[al["method"].isin(as_set(methods))]
    split = al["dataset"].str.split(":", n=1)
    al["ds"], al["condition"] = split.str[0], split.str[1].fillna("")
    # the alignment stage names condition "0" of a model-vs-human dataset by the bare dataset
    # name ("rotation", not "rotation:0"), as it does the single condition of edge or cue-conflict
    levels = {d for d, c in mvh.CONDITIONS.items() if c and len(c) > 1 and "0" in c}
    bare = al["track"].isin(HUMAN_TRACKS) & al["ds"].isin(levels) & (al["condition"] == "")
    al.loc[bare, "condition"] = "0"
    acc = data.rows[(data.rows["study"] == "prune") & (data.rows["metric"] == "accuracy")]
    return Alignment(data, al, acc, humans, plotting.palette(dict.fromkeys(al["model"])))


def _finish(ax, smax, ylabel=None):
    plotting.sparsity_axis(ax, max_sparsity=smax, label="sparsity")
    ax.tick_params(axis="x", labelsize=7)
    if ylabel:
        ax.set_ylabel(ylabel)


def _grid(n: int, ncol: int, height: float, **kw):
    ncol = min(ncol, n)
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, squeeze=False, figsize=(W, 1.0 + height * nrow), **kw)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def _legend_below(fig, handles, ncol):
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, fontsize=7.5)
    fig.tight_layout(rect=(0, (0.1 + 0.2 * -(-len(handles) // ncol)) / fig.get_figheight(), 1, 1))


def _model_handles(a: Alignment, rows: pd.DataFrame) -> list:
    return [Line2D([], [], color=a.colors[m], marker="o", label=m) for m in a.models if (rows["model"] == m).any()]


def _title_and_legend(fig, a: Alignment, rows: pd.DataFrame, human_label: str, title: str) -> None:
    """A paper-track figure's title, and its legend below: the models in ``rows``, then the
    human reference (black line, grey band) as ``human_label``."""
    handles = _model_handles(a, rows) + [Line2D([], [], color="black", lw=1.3, label=human_label)]
    fig.suptitle(title, fontsize=10.5)
    _legend_below(fig, handles, 3)


# ----------------------------------------------------------------------------- synthetic track
def ood_synthetic(a: Alignment) -> list[plotting.Drawn]:
    """Accuracy on every SynthScenes OOD dataset (mean over its levels) against sparsity."""
    al = a.al
    syn = al[(al["track"] == "synthetic") & (al["method"] == "model") & (al["metric"] == "accuracy")]
    if syn.empty:
        return []
    ds_order = list(dict.fromkeys(syn["ds"]))
    colors = plotting.palette(ds_order)
    smodels = list(dict.fromkeys(syn["model"]))
    fig, axes = _grid(len(smodels), 3, 2.6, sharey=True)
    for ax, model in zip(axes.flat, smodels):
        sub = syn[syn["model"] == model]
        mean = sub.groupby(["ds", "sparsity"], sort=False)["value"].mean().reset_index()
        for ds in ds_order:
            g = mean[mean["ds"] == ds]
            plotting.line_with_band(ax, g["sparsity"], g["value"], color=colors[ds],
                                    ls="--" if ds == "cue-conflict" else "-", lw=1.3, markersize=3)
        acc = a.acc[a.acc["model"] == model]
        plotting.line_with_band(ax, acc["sparsity"], acc["value"], acc["ci_low"], acc["ci_high"], color="black",
                                lw=2.0, markersize=3, alpha=0.1)
        ax.axhline(0.1, color="0.5", lw=0.8, ls=":")
        _finish(ax, syn["sparsity"].max())
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{model}\n{sub['n_params'].iloc[0] / 1e6:.2f} M params", fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    handles = [Line2D([], [], color="black", lw=2.0, label="clean (test set)")]
    handles += [Line2D([], [], color=colors[d], ls="--" if d == "cue-conflict" else "-",
                       label=d + (" (shape label)" if d == "cue-conflict" else "")) for d in ds_order]
    handles.append(Line2D([], [], color="0.5", ls=":", label="chance (10 classes)"))
    fig.suptitle(f"Accuracy on the OOD datasets against sparsity · synthetic track · profile {a.profile}",
                 fontsize=10.5)
    _legend_below(fig, handles, 4)
    return [a.drawn(fig, "alignment-ood-synthetic",
        f"Accuracy on every SynthScenes OOD dataset (mean over its levels, {int(syn['n'].max())} images per "
        f"level) and on cue-conflict images (dashed; correct = the shape class) against sparsity, one panel "
        f"per model; black: clean test accuracy from the prune stage with its 95 % bootstrap interval. "
        f"The SynthScenes counterpart of the paper's 17-curve figure (model-vs-human's datasets, Geirhos et al. "
        f"2021). {a.note('synthetic')}", "synthetic", syn)]


def levels_synthetic(a: Alignment) -> list[plotting.Drawn]:
    """Per model: accuracy on each level of every parametric SynthScenes distortion."""
    al = a.al
    syn = al[(al["track"] == "synthetic") & (al["method"] == "model") & (al["metric"] == "accuracy")]
    param = [d for d in dict.fromkeys(syn["ds"]) if syn.loc[syn["ds"] == d, "condition"].nunique() > 1]
    out = []
    for model in dict.fromkeys(syn["model"]):
        sub = syn[(syn["model"] == model) & syn["ds"].isin(param)]
        its = sorted(sub["sparsity"].unique())
        cmap = plt.get_cmap("viridis")
        fig, axes = _grid(len(param), 4, 2.2, sharey=True, layout="constrained")
        fig.set_figheight(0.9 + 2.2 * axes.shape[0])
        for ax, ds in zip(axes.flat, param):
            levels = list(OOD_CONDITIONS.get(ds, ())) or list(dict.fromkeys(sub.loc[sub["ds"] == ds, "condition"]))
            for k, s in enumerate(its):
                g = sub[(sub["ds"] == ds) & (sub["sparsity"] == s)].set_index("condition").reindex(levels)
                ax.plot(range(len(levels)), g["value"], marker="o", markersize=2.5, lw=1.2,
                        color=cmap(k / max(len(its) - 1, 1)))
            ax.set_xticks(range(len(levels)), levels, rotation=45, fontsize=6.5)
            ax.set_title(ds, fontsize=9)
            ax.set_ylim(0, 1.02)
            ax.axhline(0.1, color="0.5", lw=0.8, ls=":")
        for ax in axes[:, 0]:
            ax.set_ylabel("accuracy")
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, max(len(its) - 1, 1)))
        cb = fig.colorbar(sm, ax=axes.ravel().tolist(), fraction=0.025, pad=0.01, ticks=range(len(its)))
        cb.ax.set_yticklabels([plotting.format_sparsity(s) for s in its], fontsize=7)
        cb.set_label("sparsity", fontsize=8)
        fig.suptitle(f"Accuracy per distortion level · {model} · synthetic track · profile {a.profile}", fontsize=10)
        out.append(a.drawn(fig, f"alignment-levels-synthetic-{plotting.file_stem(model)}",
            f"Accuracy of {model} on each level of every parametric SynthScenes distortion (x: levels from "
            f"mild to severe, as model-vs-human names them), one line per checkpoint coloured by its sparsity; "
            f"dotted: chance. {int(sub['n'].max())} images per level; no intervals drawn (each point has its "
            f"own in the results table). {a.note('synthetic')}", "synthetic", sub))
    return out


def error_consistency_synthetic(a: Alignment) -> list[plotting.Drawn]:
    """Error consistency of each pruned checkpoint with its own dense model, per SynthScenes dataset."""
    ec = a.al[(a.al["metric"] == "error_consistency") & (a.al["track"] == "synthetic") & (a.al["method"] == "vs-dense")]
    if ec.empty:
        return []
    smodels = list(dict.fromkeys(ec["model"]))
    fig, axes = _grid(len(smodels), 3, 2.6, sharey=True)
    colors = plotting.palette(dict.fromkeys(ec["ds"]))
    for ax, model in zip(axes.flat, smodels):
        mean = ec[ec["model"] == model].groupby(["ds", "sparsity"], sort=False)["value"].mean().reset_index()
        for ds in dict.fromkeys(mean["ds"]):
            g = mean[mean["ds"] == ds]
            plotting.line_with_band(ax, g["sparsity"], g["value"], color=colors[ds], lw=1.3, markersize=3,
                                    ls="--" if ds == "cue-conflict" else "-")
        ax.axhline(0, color="0.5", lw=0.8, ls=":")
        _finish(ax, ec["sparsity"].max())
        ax.set_title(model, fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel("error consistency with dense (κ)")
    handles = [Line2D([], [], color=colors[d], ls="--" if d == "cue-conflict" else "-", label=d) for d in colors]
    fig.suptitle(f"Error consistency with the dense model · synthetic track · profile {a.profile}", fontsize=10.5)
    _legend_below(fig, handles, 5)
    return [a.drawn(fig, "alignment-error-consistency-synthetic",
        f"Error consistency (κ) of each pruned checkpoint with its own dense model on every SynthScenes "
        f"dataset (mean over the dataset's levels) against sparsity, one panel per model; 1 = the same "
        f"images wrong as dense. No human comparison exists for SynthScenes. {a.note('synthetic')}",
        "synthetic", ec)]


# ----------------------------------------------------------------------------- real track
def observers_real(a: Alignment) -> list[plotting.Drawn]:
    """Accuracy and shape bias against sparsity, beside the observers of each dataset."""
    real = a.al[a.al["track"] == "real"]
    if real.empty or a.humans.datasets.empty:
        return []
    panels = [("accuracy", d) for d in ("cue-conflict", "edge", "silhouette")] + [("shape_bias", "cue-conflict")]
    panels = [p for p in panels if ((real["metric"] == p[0]) & (real["ds"] == p[1])).any()]
    fig = plt.figure(figsize=(W, 0.9 + 2.5 * (-(-len(panels) // 2))))
    gs = fig.add_gridspec(-(-len(panels) // 2), 5, width_ratios=[4, 0.9, 0.8, 4, 0.9], wspace=0.08, hspace=0.6)
    rng = np.random.default_rng(0)
    for k, (metric, ds) in enumerate(panels):
        r, c = divmod(k, 2)
        ax = fig.add_subplot(gs[r, 3 * c])
        hx = fig.add_subplot(gs[r, 3 * c + 1], sharey=ax)
        for model in a.models:
            g = real[(real["model"] == model) & (real["metric"] == metric) & (real["ds"] == ds) & (real["method"] == "model")]
            if len(g):
                plotting.line_with_band(ax, g["sparsity"], g["value"], g["ci_low"], g["ci_high"],
                                        color=a.colors[model], label=model)
        obs = a.observers(metric, ds)
        hx.scatter(rng.uniform(-0.25, 0.25, len(obs)), obs["value"], s=14, color="0.25", zorder=3)
        if len(obs):
            hx.hlines(obs["value"].mean(), -0.4, 0.4, color="black", lw=2)
        hx.set_xlim(-0.6, 0.6)
        hx.set_xticks([0], ["humans"], fontsize=7.5)
        hx.tick_params(axis="y", labelleft=False)
        hx.grid(axis="x", visible=False)
        _finish(ax, real["sparsity"].max())
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(metric.replace("_", " "), fontsize=9)
        ax.set_title(f"{metric.replace('_', ' ')} · {ds}", fontsize=9)
    handles = _model_handles(a, real)
    handles += [Line2D([], [], color="0.25", marker="o", ls="", label="human observer"),
                Line2D([], [], color="black", lw=2, label="observers' mean")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=7.5)
    fig.suptitle(f"Models and human observers · real track · profile {a.profile}", fontsize=10.5)
    fig.subplots_adjust(bottom=0.5 / fig.get_figheight() + 0.1, top=1 - 0.55 / fig.get_figheight())
    n_obs = a.observers("accuracy", "cue-conflict")["subj"].nunique()
    return [a.drawn(fig, "alignment-observers-real",
        f"Accuracy on cue-conflict (shape category correct), edge and silhouette stimuli and shape bias on "
        f"cue-conflict, against sparsity (bands: 95 % bootstrap intervals over "
        f"{int(real['n'].max())} images at most), beside the {n_obs} human observers of each dataset "
        f"(points; bar: their mean) computed from their raw responses. {a.note('real')} {CITE}", "real", real)]


def error_consistency_real(a: Alignment) -> list[plotting.Drawn]:
    """Error consistency with the observers (and with dense) per real-track dataset."""
    ec = a.al[(a.al["metric"] == "error_consistency") & (a.al["track"] == "real")]
    if ec.empty:
        return []
    dss = list(dict.fromkeys(ec["ds"]))
    fig, axes = plt.subplots(1, len(dss), squeeze=False, sharey=True, figsize=(W, 3.3))
    for ax, ds in zip(axes[0], dss):
        for model in a.models:
            for method, ls in (("vs-humans", "-"), ("vs-dense", "--")):
                g = ec[(ec["model"] == model) & (ec["ds"] == ds) & (ec["method"] == method)]
                if len(g):
                    plotting.line_with_band(ax, g["sparsity"], g["value"], g["ci_low"], g["ci_high"],
                                            color=a.colors[model], ls=ls)
        p = a.pairs("error_consistency", ds)
        if len(p):
            plotting.reference_band(ax, p.mean(), p.min(), p.max())
        ax.axhline(0, color="0.5", lw=0.8, ls=":")
        _finish(ax, ec["sparsity"].max())
        ax.set_title(ds, fontsize=9.5)
    axes[0, 0].set_ylabel("error consistency (κ)")
    has_dense = (ec["method"] == "vs-dense").any()
    handles = _model_handles(a, ec) + [Line2D([], [], color="0.3", ls="-", label="model vs. humans")]
    if has_dense:
        handles.append(Line2D([], [], color="0.3", ls="--", label="model vs. its dense checkpoint"))
    handles.append(Line2D([], [], color="black", lw=1.3, label="human vs. human (mean; band: range)"))
    fig.suptitle(f"Error consistency against sparsity · real track · profile {a.profile}", fontsize=10.5)
    _legend_below(fig, handles, 3)
    return [a.drawn(fig, "alignment-error-consistency-real",
        "Error consistency (Cohen's κ beyond chance, Geirhos et al. 2020) of each model with the human "
        "observers (solid: mean over observers; band: 95 % bootstrap interval over images)"
        + (", and with its dense checkpoint (dashed)" if has_dense else
           "; the results hold no model-vs-dense value for this track")
        + f", against sparsity, one panel per dataset. Black line and grey band: the observers' consistency "
        f"with each other (mean and range over observer pairs, from their raw responses); dotted: 0. "
        f"{a.note('real')} {CITE}", "real", ec)]


def human_likeness_real(a: Alignment) -> list[plotting.Drawn]:
    """Accuracy difference and observed consistency with the observers, per real-track dataset."""
    hl = a.al[(a.al["track"] == "real") & (a.al["method"] == "vs-humans")
              & a.al["metric"].isin(["accuracy_difference", "observed_consistency"])]
    if hl.empty:
        return []
    dss = list(dict.fromkeys(hl["ds"]))
    mets = [m for m in ("accuracy_difference", "observed_consistency") if m in set(hl["metric"])]
    fig, axes = plt.subplots(len(mets), len(dss), squeeze=False, sharey="row", figsize=(W, 0.9 + 2.4 * len(mets)))
    for i, metric in enumerate(mets):
        for j, ds in enumerate(dss):
            ax = axes[i, j]
            for model in a.models:
                g = hl[(hl["model"] == model) & (hl["ds"] == ds) & (hl["metric"] == metric)]
                if len(g):
                    plotting.line_with_band(ax, g["sparsity"], g["value"], g["ci_low"], g["ci_high"],
                                            color=a.colors[model])
            p = a.pairs(metric, ds) if metric == "observed_consistency" else pd.Series(dtype=float)
            if len(p):
                plotting.reference_band(ax, p.mean(), p.min(), p.max())
            arrow = " ↓" if metric == "accuracy_difference" else " ↑"
            _finish(ax, hl["sparsity"].max(), metric.replace("_", " ") + arrow if j == 0 else None)
            if i == 0:
                ax.set_title(ds, fontsize=9.5)
            if i < len(mets) - 1:
                ax.set_xlabel("")
    handles = _model_handles(a, hl) + [Line2D([], [], color="black", lw=1.3, label="human vs. human (mean; band: range)")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=7.5)
    fig.suptitle(f"Accuracy difference and observed consistency · real track · profile {a.profile}", fontsize=10.5)
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight(), 1, 1))
    return [a.drawn(fig, "alignment-human-likeness-real",
        f"Accuracy difference (↓, squared, mean over observers) and observed consistency (↑) of each model with "
        f"the human observers against sparsity, one column per dataset; bands: 95 % bootstrap intervals over "
        f"images. Black line and grey band (observed consistency): the observers with each other, mean and "
        f"range over pairs. {a.note('real')} {CITE}", "real", hl)]


# ----------------------------------------------------------------------------- shape bias (every track)
def _shape_bias_rows(a: Alignment) -> pd.DataFrame:
    """The models' shape bias on cue-conflict images (SynthScenes stores one on every OOD split
    too, since its distorted scenes keep their texture labels: not what these figures show)."""
    return a.al[(a.al["metric"] == "shape_bias") & (a.al["method"] == "model") & (a.al["ds"] == "cue-conflict")]


def shape_bias(a: Alignment) -> list[plotting.Drawn]:
    """Shape bias against sparsity, one panel per track, with the human reference that applies."""
    sb = _shape_bias_rows(a)
    if sb.empty:
        return []
    tracks = [t for t in a.data.tracks if (sb["track"] == t).any()]
    fig, axes = plt.subplots(1, len(tracks), squeeze=False, figsize=(W, 3.4), sharey=True)
    human = a.humans.value("cue-conflict", "shape_bias")
    for ax, tr in zip(axes[0], tracks):
        sub = sb[sb["track"] == tr]
        for model in dict.fromkeys(sub["model"]):
            g = sub[sub["model"] == model]
            plotting.line_with_band(ax, g["sparsity"], g["value"], g["ci_low"], g["ci_high"],
                                    color=a.colors[model], label=model)
        if tr in HUMAN_TRACKS and human is not None:
            ax.axhspan(human["low"], human["high"], color="0.6", alpha=0.3, lw=0, zorder=0,
                       label=f"{int(human['n_observers'])} observers: range")
            ax.axhline(human["value"], color="black", lw=1.5, label=f"observers pooled ({human['value']:.3f})")
        elif tr in HUMAN_TRACKS:
            ax.axhline(LITERATURE_HUMAN_SHAPE_BIAS, color="black", lw=1.2, ls="--",
                       label=f"humans, literature ≈ {LITERATURE_HUMAN_SHAPE_BIAS}\n(no raw data here)")
        else:
            ax.axhline(LITERATURE_HUMAN_SHAPE_BIAS, color="black", lw=1.2, ls="--",
                       label=f"humans, literature ≈ {LITERATURE_HUMAN_SHAPE_BIAS}\n(Geirhos et al.; not SynthScenes)")
        ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
        _finish(ax, sub["sparsity"].max())
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{tr} track", fontsize=9.5)
        ax.legend(fontsize=7, loc="lower left")
    axes[0, 0].set_ylabel("shape bias")
    fig.suptitle(f"Shape bias against sparsity · profile {a.profile}", fontsize=10.5)
    fig.tight_layout()
    human_text = ("grey band and black line: the human observers' range and pooled value from their raw "
                  "responses" if human is not None else "dashed: the literature's human value (no raw human "
                  "data here)")
    return [a.drawn(fig, "alignment-shape-bias",
        f"Shape bias (shape / (shape + texture) decisions on cue-conflict images whose shape and texture "
        f"differ) against sparsity, one panel per track. Real and paper tracks (model-vs-human's cue-conflict "
        f"images): bands are 95 % bootstrap intervals over images; {human_text}. Synthetic track: no interval "
        f"is stored for shape bias; dashed: the literature's human value on model-vs-human's cue-conflict "
        f"images, a reference only. Dotted: 0.5. " + a.note(tracks) + f" {CITE}", tracks, sb)]


def shape_bias_summary(a: Alignment) -> str:
    """Markdown lines: each model's dense and highest shape bias, and the observers' range."""
    sb = _shape_bias_rows(a)
    human = a.humans.value("cue-conflict", "shape_bias")
    lines = []

    def ci(r):
        return "" if pd.isna(r["ci_low"]) else f" [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"

    for (tr, model), g in sb.groupby(["track", "model"], sort=False):
        g = g.sort_values("sparsity").dropna(subset=["value"])
        if g.empty:
            continue
        d, best = g.iloc[0], g.loc[g["value"].idxmax()]
        text = f"- **{model}** ({tr}): dense {d['value']:.2f}{ci(d)}"
        if best["iteration"] != d["iteration"]:
            text += f", highest {best['value']:.2f}{ci(best)} at {plotting.format_sparsity(best['sparsity'])}"
        if tr in HUMAN_TRACKS and human is not None:
            text += f"; the observers range from {human['low']:.2f} to {human['high']:.2f}"
        lines.append(text + ".")
    missing = sb[sb["value"].isna()]
    if len(missing):
        lines.append(f"- {len(missing)} checkpoint(s) gave no shape bias (no shape or texture decision "
                     f"among the cue-conflict images), e.g. {missing['model'].iloc[0]} at "
                     f"{plotting.format_sparsity(missing['sparsity'].iloc[0])}.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- paper track
def _per_dataset(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, checkpoint, dataset): model-vs-human's benchmark row where the dataset
    has several conditions, else its single condition's row."""
    bench = rows[rows["condition"] == BENCHMARK]
    single = rows[(rows["condition"] == "") & ~rows["ds"].isin(set(bench["ds"]))]
    return pd.concat([bench, single], ignore_index=True)


def _paper_panels(a: Alignment, rows: pd.DataFrame, ylabel: str, human_metric: str, ylim=None) -> tuple:
    """One panel per model-vs-human dataset: the models against sparsity, the observers beside."""
    fig, axes = _grid(len(mvh.DATASETS), 4, 2.0, sharey=True)
    smax = rows["sparsity"].max()
    for ax, ds in zip(axes.flat, mvh.DATASETS):
        for model in a.models:
            g = rows[(rows["model"] == model) & (rows["ds"] == ds)]
            if len(g):
                plotting.line_with_band(ax, g["sparsity"], g["value"], g["ci_low"], g["ci_high"],
                                        color=a.colors[model], markersize=2.5, lw=1.2)
        h = a.humans.value(ds, human_metric)
        if h is not None:
            plotting.reference_band(ax, h["value"], h["low"], h["high"])
        title = ds + ("" if h is not None else "\n(no human data here)") + ("" if (rows["ds"] == ds).any()
                                                                           else "\n(no model results)")
        ax.set_title(title, fontsize=8)
        if ylim:
            ax.set_ylim(*ylim)
        _finish(ax, smax)
        ax.set_xlabel("")
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=8)
    return fig, axes


def ood_paper(a: Alignment) -> list[plotting.Drawn]:
    """The paper's 17-dataset figure: accuracy per model-vs-human dataset against sparsity for
    every model, with the human observers' accuracy on the same dataset."""
    rows = a.al[(a.al["track"] == "paper") & (a.al["method"] == "model") & (a.al["metric"] == "accuracy")]
    if rows.empty:
        return []
    per = _per_dataset(rows)
    fig, _ = _paper_panels(a, per, "accuracy", "accuracy", (0, 1.02))
    _title_and_legend(fig, a, per, "humans (mean of observers; band: range)",
                      f"Accuracy on the 17 model-vs-human datasets · paper track · profile {a.profile}")
    missing = [d for d in mvh.DATASETS if a.humans.value(d, "accuracy") is None]
    return [a.drawn(fig, "alignment-ood-paper",
        f"Accuracy on each of model-vs-human's 17 OOD datasets against sparsity, one panel per dataset, one "
        f"line per model (16-way decisions; cue-conflict: the shape category counts). Datasets with levels: "
        f"model-vs-human's benchmark accuracy, pooled over the conditions it keeps (its control and "
        f"near-chance conditions left out); bands: 95 % bootstrap intervals over images where stored. Black "
        f"line and grey band: the human observers on the same conditions (mean and range of the observers' "
        f"pooled accuracy). {a.humans.caption}"
        + (f" No human data here for {', '.join(missing)}." if missing else "")
        + f" {a.note('paper')} {CITE}", "paper", per)]


def rotation_paper(a: Alignment) -> list[plotting.Drawn]:
    """ResNet-18 against ResNet-50: accuracy per rotation angle against sparsity, with the humans."""
    rows = a.al[(a.al["track"] == "paper") & (a.al["method"] == "model") & (a.al["metric"] == "accuracy")
                & (a.al["ds"] == "rotation") & ~a.al["condition"].isin(["", BENCHMARK])]
    rows = rows[rows["arch"].str.split("/").str[-1].isin(ROTATION_ARCHS)]
    if rows.empty:
        return []
    angles = [c for c in mvh.CONDITIONS["rotation"] if (rows["condition"] == c).any()]
    human = a.humans.per_condition("rotation", "accuracy").set_index("condition")
    fig, axes = plt.subplots(1, len(angles), squeeze=False, sharey=True, figsize=(W, 3.2))
    for ax, angle in zip(axes[0], angles):
        for model in a.models:
            g = rows[(rows["model"] == model) & (rows["condition"] == angle)]
            if len(g):
                plotting.line_with_band(ax, g["sparsity"], g["value"], g["ci_low"], g["ci_high"],
                                        color=a.colors[model])
        if angle in human.index:
            h = human.loc[angle]
            plotting.reference_band(ax, h["value"], h["low"], h["high"])
        ax.axhline(1 / 16, color="0.5", lw=0.8, ls=":")
        ax.set_ylim(0, 1.02)
        _finish(ax, rows["sparsity"].max())
        ax.set_title(f"rotated {angle}°", fontsize=9.5)
    axes[0, 0].set_ylabel("accuracy")
    archs = sorted(rows["arch"].str.split("/").str[-1].unique())
    _title_and_legend(fig, a, rows, "humans (mean; band: observers' range)",
                      f"ResNet-18 vs ResNet-50 on rotated images · paper track · profile {a.profile}")
    absent = [x for x in ROTATION_ARCHS if x not in archs]
    return [a.drawn(fig, "alignment-rotation-paper",
        f"Accuracy of {' and '.join(archs)} on model-vs-human's rotation dataset, one panel per angle "
        f"({', '.join(angles)} degrees), against "
        f"sparsity (bands: 95 % bootstrap intervals over images); black line and grey band: the human "
        f"observers at the same angle (mean and range, from their raw responses); dotted: chance (1/16). "
        f"The paper's ResNet-18 vs ResNet-50 comparison."
        + (f" No results for {', '.join(absent)} in this selection." if absent else "")
        + f" {a.note('paper')} {CITE}", "paper", rows)]


def error_consistency_paper(a: Alignment) -> list[plotting.Drawn]:
    """Error consistency with the observers per model-vs-human dataset, with the observers'
    consistency with each other."""
    rows = a.al[(a.al["track"] == "paper") & (a.al["method"] == "vs-humans") & (a.al["metric"] == "error_consistency")]
    if rows.empty:
        return []
    per = _per_dataset(rows)
    fig, axes = _paper_panels(a, per, "error consistency (κ)", "error_consistency")
    for ax in axes.flat:
        ax.axhline(0, color="0.5", lw=0.8, ls=":")
    _title_and_legend(fig, a, per, "human vs. human (mean over pairs; band: range)",
                      f"Error consistency with the observers · paper track · profile {a.profile}")
    return [a.drawn(fig, "alignment-error-consistency-paper",
        f"Error consistency (Cohen's κ beyond chance, Geirhos et al. 2020) of each model with the human "
        f"observers against sparsity, one panel per model-vs-human dataset: per observer the mean over the "
        f"conditions model-vs-human keeps, then the mean over observers (bands: 95 % bootstrap intervals "
        f"over images where stored). Black line and grey band: the observers with each other on the same "
        f"conditions (mean and range over observer pairs). Dotted: 0. {a.humans.caption} {a.note('paper')} "
        f"{CITE}", "paper", per)]


# ----------------------------------------------------------------------------- raw-data files
def raw_data_archives(a: Alignment, out_dir=None) -> list[tuple[str, Path, int]]:
    """Zip each series' model-vs-human raw-data CSVs (``<study>/raw-data/<dataset>/*.csv``,
    written by the alignment stage) into ``<figures dir>/raw-data-<label>.zip``, laid out as
    model-vs-human's ``raw-data/<dataset>/`` folder; returns (label, zip, number of CSVs) of
    each series that has them. The zips are deterministic (fixed file dates), so an unchanged
    study gives byte-identical files."""
    out = []
    for label, study in a.data.dirs.items():
        raw = Path(study) / "raw-data"
        files = sorted(raw.rglob("*.csv")) if raw.is_dir() else []
        if not files:
            continue
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for f in files:
                info = zipfile.ZipInfo(f"raw-data/{f.relative_to(raw).as_posix()}", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, f.read_bytes())
        path = atomic_write_bytes(plotting.figures_dir(out_dir) / f"raw-data-{label}.zip", buf.getvalue())
        out.append((label, path, len(files)))
    return out


def raw_data_links(archives: list[tuple[str, Path, int]]):
    """Relative links to each archive (the book puts ``figures/`` beside the page), or a note."""
    if not archives:
        return plotting.note("No raw-data CSVs in the selected studies (studies made before the alignment "
                             "stage wrote them: rerun the stage to get them).")
    return plotting.LinkList([(path.name, f"figures/{path.name}", f": {label}, {n} CSV files")
                              for label, path, n in archives])
