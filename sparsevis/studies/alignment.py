"""Study (iii), alignment with human perception: model-vs-human's metrics against the human
observers where people were tested (the real and paper tracks), and accuracy, shape bias and
agreement with the dense model on SynthScenes, where no human data exists (none is
simulated)."""
from __future__ import annotations

import pandas as pd
import torch

from sparsevis import alignment, metrics
from sparsevis.features import extract
from sparsevis.tracks import AlignmentSet, Track

from .base import Rows

NAME = "alignment"


def data(track: Track, run, params: dict) -> list[AlignmentSet]:
    return track.alignment_sets(run, params["n_images"])


def _without_humans(model, track: Track, s: AlignmentSet, device, rows: Rows, dense) -> torch.Tensor:
    dec = track.decide(extract(model, s.x, device=device, batch_size=256, progress=False))
    correct = (dec == s.labels).float().numpy()
    rows.mean(s.dataset, "model", "accuracy", correct, s.ids)
    if s.texture_labels is not None:
        rows.value(s.dataset, "model", "shape_bias", metrics.shape_bias(dec, s.labels, s.texture_labels), len(dec))
    if dense is not None:
        ref = (dense == s.labels).numpy()
        rows.value(s.dataset, "vs-dense", "error_consistency",
                   metrics.error_consistency(correct.astype(bool), ref), len(dec))
    return dec


def _with_humans(model, s: AlignmentSet, device, rows: Rows, dense, exclude: set):
    keep = ~s.images["image"].isin(exclude).to_numpy()
    images = s.images[keep].reset_index(drop=True)
    dec = alignment.model_decisions(model, torch.utils.data.TensorDataset(s.x[torch.from_numpy(keep)]),
                                    device=device, meta=images, progress=False)
    shown = set(images["image"])
    trials = s.trials[s.trials["image"].isin(shown)]
    ref = None if dense is None else dense[dense["image"].isin(shown)]
    for cond, g in dec.groupby(dec["condition"].astype(str), sort=False):
        name = s.dataset if cond in ("0", "", "nan") else f"{s.dataset}:{cond}"
        rows.items += [dict(dataset=name, method="model", metric="accuracy", item=str(i), value=float(v))
                       for i, v in zip(g["image"], g["correct"])]
    cmp = alignment.compare_to_humans(dec, trials, reference=ref, n_boot=rows.n_boot, progress=False)
    _comparison_rows(cmp, rows)
    return dec, cmp


def _comparison_rows(cmp, rows: Rows) -> None:
    for r in cmp.itertuples():
        if r.against == "humans" and r.subj != "mean":
            continue  # per-observer rows stay in the model-vs-human CSVs
        name = r.dataset if str(r.condition) in ("0", "", "nan") else f"{r.dataset}:{r.condition}"
        method = {"model": "model", "humans": "vs-humans", "reference": "vs-dense"}[r.against]
        rows.value(name, method, r.metric, r.value, r.n, r.ci_low, r.ci_high)


def evaluate(model, track: Track, sets: list[AlignmentSet], params: dict, device, rows: Rows,
             context: dict) -> dict:
    """``context``: ``dense`` the dense checkpoint's decisions per dataset (None while
    evaluating the dense checkpoint itself), ``exclude`` images held out of this series (its BN
    recalibration set), ``raw_data`` (folder, model id) where the decisions are written in
    model-vs-human's raw-data CSV schema (one model id per checkpoint)."""
    dense, exclude = context.get("dense"), context.get("exclude", set())
    decisions, comparisons = {}, []
    for s in sets:
        ref = None if dense is None else dense[s.dataset]
        if s.trials is None:
            decisions[s.dataset] = _without_humans(model, track, s, device, rows, ref)
        else:
            decisions[s.dataset], cmp = _with_humans(model, s, device, rows, ref, exclude)
            comparisons.append(cmp)
            if "raw_data" in context:   # model-vs-human's own analysis and plots read these unchanged
                folder, model_id = context["raw_data"]
                alignment.write_raw_csv(decisions[s.dataset], model_id, folder, dataset=s.dataset)
    if comparisons:   # model-vs-human's benchmark numbers: its condition exclusions, pooled accuracy
        cmp = pd.concat(comparisons, ignore_index=True)
        bench = alignment.benchmark_aggregates(cmp)
        # a dataset of one condition: its benchmark row would repeat that condition's row
        several = cmp.groupby("dataset")["condition"].nunique()
        bench = bench[(bench["dataset"] == "all") | bench["dataset"].map(several).gt(1)]
        bench = bench.assign(dataset=bench["dataset"].replace({"all": "all datasets"}))
        _comparison_rows(bench, rows)
    return {"decisions": decisions}


def figures_data(sets) -> None:
    return None

