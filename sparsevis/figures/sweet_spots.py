"""The sweet-spots chapter's figures and tables: the effect of pruning checkpoint by checkpoint,
the verdict per model and study, and the largest sweet spots.

Its data are the tables of :func:`sparsevis.chapters.sweet_spots` (effects, verdicts, controls,
versus_control),
made by :mod:`sparsevis.analysis`; nothing is computed here but their display."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D

from sparsevis import plotting

STUDIES = ("interpretability", "discovery", "alignment")
STUDY_NAMES = {"interpretability": "interpretability", "discovery": "object discovery",
               "alignment": "human alignment"}
SERIES = ["track", "arch", "prune_method", "prunable_set", "study", "dataset", "method", "metric"]
CONTROL_COLOR = "0.55"
LEGEND_COLOR = "0.2"    # the legend explains line styles; the colour is the panel's study


def prepare(tables: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Effects, verdicts and controls with a short ``model`` name, a ``control`` flag (random
    pruning) and, on the effects, each series' ``extension`` flag from its verdict."""
    effects, verdicts, controls = (tables[k].copy() for k in ("effects", "verdicts", "controls"))
    for frame in (effects, verdicts, controls):
        if len(frame):
            frame["model"] = frame["arch"].str.split("/").str[-1]
            frame["control"] = frame["prune_method"].str.contains("random")
    if len(effects):
        effects = effects.merge(verdicts[SERIES + ["extension"]], on=SERIES, how="left")
    return effects, verdicts, controls


def paper_effects(effects: pd.DataFrame, track: str) -> pd.DataFrame:
    """The effects of ``track``'s series on the paper's metrics."""
    if effects.empty:
        return effects
    return effects[(effects["track"] == track) & ~effects["extension"].astype(bool)]


def legend_handles(controls: bool, improved: bool) -> list[Line2D]:
    """Line styles, in a neutral colour: magnitude pruning solid, the random-pruning control
    dashed, checkpoints better than dense filled."""
    hs = [Line2D([], [], color=LEGEND_COLOR, lw=2.2, ls="-", label="magnitude pruning (median over series)")]
    if controls:
        hs.append(Line2D([], [], color=CONTROL_COLOR, lw=2.2, ls="--", label="random pruning, control (median)"))
    if improved:
        hs.append(Line2D([], [], color=LEGEND_COLOR, ls="", marker="o", ms=4,
                         label="better than dense (corrected)"))
    return hs


def effects_figure(effects: pd.DataFrame, track: str, profile: str):
    """Effect against dense per checkpoint: one row per model, one column per study; thin lines
    the series, thick the median; colour: the study (grey: random-pruning control)."""
    sub = paper_effects(effects, track)
    models = list(dict.fromkeys(sub["model"]))
    studies = [s for s in STUDIES if s in set(sub["study"])]
    fig, axes = plt.subplots(len(models), len(studies), squeeze=False, sharex=True, sharey=True,
                             figsize=(plotting.FIGURE_WIDTH, 0.8 + 2.2 * len(models)))
    for i, model in enumerate(models):
        for j, study in enumerate(studies):
            ax = axes[i, j]
            for control, style in ((False, "-"), (True, "--")):
                g = sub[(sub["model"] == model) & (sub["study"] == study) & (sub["control"] == control)]
                if g.empty:
                    continue
                color = CONTROL_COLOR if control else plotting.STUDY_COLORS.get(study, "0.3")
                for _, s in g.groupby(["prune_method", "dataset", "method", "metric"]):
                    s = s.sort_values("sparsity")
                    ax.plot(s["sparsity"], s["effect"], color=color, lw=0.7, alpha=0.3, ls=style)
                    hit = s[s["improved"].astype(bool)]
                    ax.plot(hit["sparsity"], hit["effect"], "o", color=color, ms=4, alpha=0.9)
                med = g.groupby("sparsity")["effect"].median()
                # a series of one pruned checkpoint is a point, not a line
                ax.plot(med.index, med.values, color=color, lw=2.2, ls=style, marker="_" if len(med) == 1 else None,
                        ms=12)
            ax.axhline(0, color="0.2", lw=0.9)
            plotting.sparsity_axis(ax, max_sparsity=sub["sparsity"].max(),
                                   label="sparsity" if i == len(models) - 1 else "")
            if i == 0:
                ax.set_title(STUDY_NAMES[study], fontsize=9.5)
            if j == 0:
                ax.set_ylabel(f"{model}\neffect vs dense")
    handles = legend_handles(bool(sub["control"].any()), bool(sub["improved"].astype(bool).any()))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=8)
    fig.suptitle(f"Effect of pruning against dense · {track} track · profile {profile}", fontsize=10.5)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def verdict_table(verdicts: pd.DataFrame, controls: pd.DataFrame) -> pd.DataFrame:
    """Per track, model, pruning method and study: sweet spots over the paper's metrics, where,
    how many random pruning shows too, and the extensions' count."""
    if verdicts.empty:
        return pd.DataFrame()
    shown = (controls[controls["shown_by_control"].astype(bool)][SERIES + ["sparsity"]]
             if len(controls) else pd.DataFrame(columns=SERIES + ["sparsity"]))
    rows = []
    for (track, model, method, study), g in verdicts.groupby(["track", "model", "prune_method", "study"], sort=False):
        paper, ext = g[~g["extension"].astype(bool)], g[g["extension"].astype(bool)]
        sweet = paper[paper["sweet_spot"].astype(bool)]
        both = sweet.merge(shown, on=SERIES + ["sparsity"]) if len(sweet) else sweet
        where = sorted({plotting.format_sparsity(s) for s in sweet["sparsity"]})
        rows.append({"track": track, "model": f"{model} · {method}", "study": STUDY_NAMES.get(study, study),
                     "paper metrics: sweet spots": f"{len(sweet)} of {len(paper)}",
                     "at": ", ".join(where) or "—",
                     "also with random pruning": (f"{len(both)} of {len(sweet)}" if len(sweet) and len(controls)
                                                  else "—"),
                     "extensions: sweet spots": f"{int(ext['sweet_spot'].astype(bool).sum())} of {len(ext)}"})
    return pd.DataFrame(rows)


def versus_table(versus: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """Per track, model and study: how many magnitude-pruned series on the paper's metrics beat
    their random-pruning control at some matched sparsity in the direct paired test, and where."""
    if versus.empty or verdicts.empty:
        return pd.DataFrame()
    v = versus.merge(verdicts[SERIES + ["extension"]], on=SERIES, how="left")
    v = v[~v["extension"].fillna(False).astype(bool)]
    rows = []
    for (track, arch, method, control, study), g in v.groupby(
            ["track", "arch", "prune_method", "control_method", "study"], sort=False):
        per_series = g.groupby(["dataset", "method", "metric"])["better"].apply(lambda b: b.astype(bool).any())
        better = g[g["better"].astype(bool)]
        rows.append({"track": track, "model": f"{arch.split('/')[-1]} · {method} vs {control}",
                     "study": STUDY_NAMES.get(study, study),
                     "series better than random": f"{int(per_series.sum())} of {len(per_series)}",
                     "at": ", ".join(sorted({plotting.format_sparsity(s) for s in better["sparsity"]})) or "—",
                     "matched checkpoints better": f"{len(better)} of {len(g)}"})
    return pd.DataFrame(rows)


def strongest(verdicts: pd.DataFrame, n: int = 12) -> pd.DataFrame:
    """The ``n`` largest sweet spots on the paper's metrics: series, sparsity, effect with its
    interval, corrected p; empty when there is none."""
    if verdicts.empty:
        return pd.DataFrame()
    top = (verdicts[verdicts["sweet_spot"].astype(bool) & ~verdicts["extension"].astype(bool)]
           .sort_values("effect", ascending=False).head(n))
    if top.empty:
        return pd.DataFrame()
    show = top.assign(series=top["model"] + " · " + top["prune_method"] + " · " + top["dataset"] + " · "
                      + top["method"] + " · " + top["metric"])
    show = show.assign(**{"sweet spot": show["sparsity"].map(plotting.format_sparsity),
                          "effect [95 % CI]": [f"{e:+.3f} [{lo:+.3f}, {hi:+.3f}]" for e, lo, hi in
                                               zip(show["effect"], show["ci_low"], show["ci_high"])],
                          "corrected p": show["p_adj"].map(lambda p: f"{p:.3f}")})
    return show[["series", "sweet spot", "effect [95 % CI]", "corrected p"]].reset_index(drop=True)
