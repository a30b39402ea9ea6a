"""Human alignment (protocol iii): model decisions on model-vs-human stimuli compared with the
human observers' trial-by-trial responses.

Pipeline::

    dec = model_decisions(model, "cue-conflict", device="auto")      # one row per image
    trials = mvh.load_trials("cue-conflict")                         # one row per human trial
    human_reference(trials)      # humans' own accuracy, shape bias, inter-observer consistency
    compare_to_humans(dec, trials, reference=dense_dec)   # model vs each observer, with CIs
    write_raw_csv(dec, "mobilenet_v2-s0.50", out_dir)     # model-vs-human's raw-data CSV schema

Definitions follow model-vs-human (Geirhos et al. 2021) and use the kernels in
:mod:`sparsevis.metrics`:

- accuracy: fraction of trials with decision == category (the shape category on cue-conflict;
  a human "na" - no answer - counts as wrong).
- accuracy_difference: (accuracy_model - accuracy_observer)^2 on the images that observer saw,
  averaged over observers (squared, as model-vs-human; lower is better).
- observed_consistency / error_consistency: agreement of the two correctness vectors on the
  images both saw, raw and as Cohen's kappa beyond the agreement expected from the
  accuracies (Geirhos, Meding, Wichmann 2020); computed against every observer, then averaged
  (observers for whom kappa is undefined are left out of the mean).
- shape_bias: shape decisions / (shape + texture decisions) on cue-conflict trials whose
  shape and texture differ. For humans also *pooled*: the decisions of all observers counted
  together (0.959 on the 10 observers of the shared copy).

All comparisons are per (dataset, condition); the three texture-shape datasets have the single
condition "0". Confidence intervals are percentile bootstraps over images
(:mod:`sparsevis.stats`), resampling the same images for the model and every observer.
"""
from __future__ import annotations

import os
import warnings
from itertools import combinations
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from .data import imagenet16
from .data.mvh import CONDITIONS, MVHImages
from .features import extract
from .fileio import atomic_write_text
from .metrics import (
    accuracy,
    accuracy_difference,
    error_consistency,
    observed_consistency,
    shape_bias,
)
from .metrics.error_consistency import (
    agreement_rates,
    difference_from_rates,
    kappa_from_rates,
    observed_from_rates,
)
from .runtime import resolve_device
from .stats import bootstrap_ci, bootstrap_ci_paired

__all__ = [
    "model_decisions", "human_reference", "compare_to_humans", "benchmark_aggregates", "EXCLUDED_CONDITIONS",
    "write_raw_csv",
    "raw_csv_path", "imagenet16_mapping", "softmax_mapping",
]

HUMAN_REFERENCE_COLUMNS = ("dataset", "condition", "metric", "subj", "other", "value", "n")
COMPARISON_COLUMNS = ("dataset", "condition", "metric", "against", "subj", "value", "ci_low", "ci_high",
                      "n", "n_observers")


# ----------------------------------------------------------------------------- decisions
def imagenet16_mapping(logits: torch.Tensor) -> torch.Tensor:
    """ImageNet-1k logits -> (B, 16) mean category probabilities (model-vs-human's mapping)."""
    return imagenet16.decision_from_logits(logits)


def softmax_mapping(logits: torch.Tensor) -> torch.Tensor:
    """The model's own classes: softmax of the logits (e.g. SynthScenes classifiers)."""
    return torch.softmax(logits.float(), dim=1)


def _meta_from(dataset, categories: Sequence[str]) -> pd.DataFrame | None:
    images = getattr(dataset, "images", None)
    if isinstance(images, pd.DataFrame):
        return images.reset_index(drop=True)
    batch = getattr(dataset, "batch", None)  # SynthScenes SceneDataset
    if batch is not None and hasattr(batch, "labels") and hasattr(batch, "texture_labels"):
        labels = batch.labels.tolist()
        textures = batch.texture_labels.tolist()
        if max(labels + textures, default=0) >= len(categories):
            raise ValueError(f"categories: {len(categories)} names, but the dataset has class ids up to "
                             f"{max(labels + textures)}")
        n = len(labels)
        return pd.DataFrame({
            "index": np.arange(n, dtype=np.int64),
            "dataset": list(getattr(batch, "dataset", ["?"] * n)),
            "image": [str(i) for i in range(n)],
            "category": [categories[k] for k in labels],
            "texture": [categories[k] for k in textures],
            "condition": list(getattr(batch, "condition", ["0"] * n)),
        })
    return None


def model_decisions(model: torch.nn.Module, dataset, device: str | torch.device | None = "auto",
                    batch_size: int = 64, mapping: str | Callable[[torch.Tensor], torch.Tensor] = "imagenet16",
                    categories: Sequence[str] | None = None, meta: pd.DataFrame | None = None,
                    root: str | os.PathLike | None = None, num_workers: int = 0, return_probs: bool = True,
                    progress: bool = True) -> pd.DataFrame:
    """Run ``model`` over ``dataset`` and return one row per image with its decision.

    dataset: a model-vs-human dataset name (loaded as :class:`sparsevis.data.mvh.MVHImages`
    under ``root``), or any torch Dataset whose items are ``(image, ...)``; items are taken in
    order (no shuffling) and row i of the result belongs to item i.
    mapping: ``"imagenet16"`` (ImageNet-1k logits -> 16 categories, mean softmax probability per
    category), ``"softmax"`` (the model's own classes, e.g. a SynthScenes model; pass
    ``categories``), or a callable ``logits (B, C) -> scores (B, K)``; the decision is the
    argmax, named by ``categories`` (default: the 16 categories for "imagenet16").
    meta: per-item metadata (one row per item, in order) to copy into the result; by default
    the dataset's ``images`` table (MVHImages) or, for a SynthScenes ``SceneDataset``, its
    labels, textures and conditions named by ``categories``.

    Columns: ``index`` plus the metadata (dataset, image, filename, category, texture,
    condition, session ...), ``decision`` (name), ``decision_index``, ``correct`` (when the
    metadata has a category), and with ``return_probs`` one ``p_<category>`` column per
    category. The model runs in eval mode under ``torch.inference_mode`` (its training flag is
    restored afterwards) on ``device``, through :func:`sparsevis.features.extract`.
    """
    from torch.utils.data import DataLoader, TensorDataset

    if isinstance(dataset, str):
        dataset = MVHImages(dataset, root=root)
    if mapping == "imagenet16":
        to_scores, categories = imagenet16_mapping, list(imagenet16.CATEGORIES if categories is None else categories)
    elif mapping == "softmax":
        to_scores = softmax_mapping
        categories = None if categories is None else list(categories)
    elif callable(mapping):
        to_scores = mapping
        categories = None if categories is None else list(categories)
    else:
        raise ValueError(f"mapping={mapping!r}: expected 'imagenet16', 'softmax' or a callable logits -> scores")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: expected a positive int")
    dev = resolve_device(device)
    n_items = len(dataset)
    if meta is None:
        meta = _meta_from(dataset, categories or [])
    if meta is not None and len(meta) != n_items:
        raise ValueError(f"meta: {len(meta)} rows for a dataset of {n_items} items; expected one row per item")

    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 1 and not num_workers:
        inputs = dataset.tensors[0]   # one tensor of images: what a features.logits_cache can see
    else:
        inputs = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    # the one inference path of every study (float32: no autocast, so decisions near a tie
    # do not depend on the device); the logits first, then the mapping on the CPU, so that a CNN
    # takes extract's BatchNorm-folded logits path
    if n_items:
        logits = extract(model, inputs, device=dev, batch_size=batch_size, amp=False, progress=progress,
                         desc="model decisions")
        scores = to_scores(logits[0] if isinstance(logits, (list, tuple)) else logits)
        if scores.ndim != 2 or scores.shape[0] != n_items:
            raise ValueError(f"mapping returned shape {tuple(scores.shape)} for {n_items} images; expected (N, K)")
    else:
        scores = torch.zeros(0, len(categories or []))
    k = scores.shape[1]
    if categories is None:
        categories = [str(i) for i in range(k)]
    if len(categories) != k:
        raise ValueError(f"categories: {len(categories)} names for {k} decision scores")
    decision_index = scores.argmax(dim=1).numpy() if len(scores) else np.zeros(0, dtype=np.int64)

    out = meta.reset_index(drop=True).copy() if meta is not None else pd.DataFrame(
        {"index": np.arange(n_items, dtype=np.int64)})
    if "index" not in out.columns:
        out.insert(0, "index", np.arange(n_items, dtype=np.int64))
    out = out.drop(columns=[c for c in ("path",) if c in out.columns])
    out["decision"] = np.asarray(categories, dtype=object)[decision_index] if n_items else []
    out["decision_index"] = decision_index.astype(np.int64)
    if "category" in out.columns:
        out["correct"] = (out["decision"].astype(str) == out["category"].astype(str)).to_numpy(dtype=bool)
    if return_probs:
        probs = pd.DataFrame(scores.numpy().astype(np.float64), columns=[f"p_{c}" for c in categories])
        out = pd.concat([out, probs], axis=1)
    return out


# ----------------------------------------------------------------------------- helpers
def _groups(df: pd.DataFrame):
    """(dataset, condition) groups in a stable order (condition order of the benchmark when known)."""

    keys = df[["dataset", "condition"]].drop_duplicates()

    def order(row):
        conds = CONDITIONS.get(row["dataset"]) or ()
        return (row["dataset"], conds.index(row["condition"]) if row["condition"] in conds else len(conds),
                row["condition"])

    return sorted(((r["dataset"], r["condition"]) for _, r in keys.iterrows()),
                  key=lambda t: order({"dataset": t[0], "condition": t[1]}))


def _check_unique(trials: pd.DataFrame) -> None:
    dup = trials.duplicated(["dataset", "condition", "subj", "index"], keep=False)
    if dup.any():
        r = trials[dup].iloc[0]
        where = f" ({r['file']} row {r['row']})" if "file" in trials and "row" in trials else ""
        raise ValueError(f"trials: observer {r['subj']!r} has {int(dup.sum())} repeated trials on the same image, "
                         f"e.g. {r['image']!r} in {r['dataset']}/{r['condition']}{where}; pairing by image "
                         f"needs one trial per observer and image")


def _check_trials(trials: pd.DataFrame, need=("dataset", "condition", "subj", "index", "category",
                                              "response", "correct")) -> None:
    missing = [c for c in need if c not in trials.columns]
    if missing:
        raise ValueError(f"trials: missing column(s) {missing}; expected the table from mvh.load_trials()")


def _correct_matrix(g: pd.DataFrame) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Pivot one (dataset, condition) group: images x observers, 1.0/0.0 correct, NaN = not seen."""
    piv = g.pivot(index="index", columns="subj", values="correct").astype("float64")
    return piv.index.to_numpy(), [str(c) for c in piv.columns], piv.to_numpy()


def _nanmean(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if len(v) else float("nan")


# ----------------------------------------------------------------------------- humans
def human_reference(trials: pd.DataFrame) -> pd.DataFrame:
    """The human observers' own numbers, per (dataset, condition), as a tidy table.

    Rows (columns :data:`HUMAN_REFERENCE_COLUMNS`; ``other`` is empty except for pairs):

    - ``accuracy``: one row per observer (``n`` = trials) and ``subj="mean"`` (mean over
      observers, ``n`` = observers);
    - ``shape_bias`` (datasets with texture labels, i.e. cue-conflict): per observer and
      ``subj="pooled"`` (shape and texture decisions of all observers counted together;
      ``n`` = conflict trials counted);
    - ``error_consistency`` and ``observed_consistency``: one row per pair of observers
      (``subj``, ``other``; ``n`` = images both saw) and ``subj="mean"`` (mean over pairs,
      ``n`` = pairs with a defined value).
    """
    _check_trials(trials)
    _check_unique(trials)
    rows = []

    def add(ds, cond, metric, subj, value, n, other=""):
        rows.append(dict(dataset=ds, condition=cond, metric=metric, subj=subj, other=other,
                         value=float(value), n=int(n)))

    for ds, cond in _groups(trials):
        g = trials[(trials["dataset"] == ds) & (trials["condition"] == cond)]
        acc = g.groupby("subj", sort=True)["correct"].agg(["mean", "size"])
        for s, r in acc.iterrows():
            add(ds, cond, "accuracy", s, r["mean"], r["size"])
        add(ds, cond, "accuracy", "mean", acc["mean"].mean(), len(acc))

        if "texture" in g.columns and g["texture"].notna().any():
            t = g[g["texture"].notna()]
            for s, h in t.groupby("subj", sort=True):
                add(ds, cond, "shape_bias", s, _shape_bias(h), _n_conflict(h))
            add(ds, cond, "shape_bias", "pooled", _shape_bias(t), _n_conflict(t))

        _, subjects, mat = _correct_matrix(g)
        ecs, ocs = [], []
        for (i, a), (j, b) in combinations(enumerate(subjects), 2):
            both = ~np.isnan(mat[:, i]) & ~np.isnan(mat[:, j])
            if not both.any():
                continue
            ca, cb = mat[both, i].astype(bool), mat[both, j].astype(bool)
            ec, oc = error_consistency(ca, cb), observed_consistency(ca, cb)
            ecs.append(ec)
            ocs.append(oc)
            add(ds, cond, "error_consistency", a, ec, both.sum(), other=b)
            add(ds, cond, "observed_consistency", a, oc, both.sum(), other=b)
        if ecs:
            add(ds, cond, "error_consistency", "mean", _nanmean(ecs), int(np.sum(~np.isnan(ecs))))
            add(ds, cond, "observed_consistency", "mean", _nanmean(ocs), len(ocs))
    return pd.DataFrame(rows, columns=list(HUMAN_REFERENCE_COLUMNS))


def _shape_bias(t: pd.DataFrame) -> float:
    def col(c):
        return t[c].astype(str).to_numpy(dtype=object)

    return shape_bias(col("response"), col("category"), col("texture"))


def _n_conflict(t: pd.DataFrame) -> int:
    conflict = t["category"] != t["texture"]
    return int((conflict & ((t["response"] == t["category"]) | (t["response"] == t["texture"]))).sum())


# ----------------------------------------------------------------------------- model vs humans
_FROM_RATES = {"accuracy_difference": difference_from_rates, "observed_consistency": observed_from_rates,
               "error_consistency": kappa_from_rates}


class _OverObservers:
    """A statistic of a model's correctness (n,) and the observers' (n, J; NaN where an
    observer did not see the image; or (n,) for one who saw all, a reference model): the mean
    over observers of a metric of the two on the images each saw (observers with no image, or
    an undefined value, left out). ``batched`` evaluates bootstrap replicates given as counts
    of each image (R, n), all at once."""

    def __init__(self, from_rates):
        self.from_rates = from_rates

    def __call__(self, model_correct, human) -> float:
        return float(self.batched(np.ones((1, len(model_correct))), model_correct, human)[0])

    def batched(self, counts: np.ndarray, model_correct, human) -> np.ndarray:
        human = np.asarray(human, dtype=np.float64)
        human = human[:, None] if human.ndim == 1 else human
        seen = ~np.isnan(human)
        values = self.from_rates(*agreement_rates(model_correct, np.nan_to_num(human).astype(bool), seen, counts))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # a replicate where every value is NaN
            return np.nanmean(values, axis=-1)


def _model_rows(decisions: pd.DataFrame, dataset: str | None) -> pd.DataFrame:
    need = [c for c in ("index", "decision") if c not in decisions.columns]
    if need:
        raise ValueError(f"decisions: missing column(s) {need}; expected the table from model_decisions()")
    d = decisions.copy()
    if "dataset" not in d.columns:
        if dataset is None:
            raise ValueError("decisions: no 'dataset' column; pass dataset=")
        d["dataset"] = dataset
    dup = d.duplicated(["dataset", "index"], keep=False)
    if dup.any():
        r = d[dup].iloc[0]
        raise ValueError(f"decisions: image index {r['index']} of {r['dataset']} appears {int(dup.sum())} times")
    return d[["dataset", "index", "decision"]]


def _aligned(trials: pd.DataFrame, dec: pd.DataFrame, what: str, allow_missing: bool) -> pd.DataFrame:
    m = trials.merge(dec.rename(columns={"decision": "model_decision"}), on=["dataset", "index"], how="left")
    miss = m["model_decision"].isna()
    if miss.any():
        if not allow_missing:
            r = m[miss].iloc[0]
            raise ValueError(f"{what}: no decision for {m.loc[miss, 'index'].nunique()} image(s) the observers "
                             f"saw, e.g. {r['image']!r} (index {r['index']}) of {r['dataset']}; run the model on "
                             f"the whole dataset or pass allow_missing=True")
        m = m[~miss]
    m["model_decision"] = m["model_decision"].astype(str)
    return m


def compare_to_humans(decisions: pd.DataFrame, trials: pd.DataFrame, reference: pd.DataFrame | None = None,
                      dataset: str | None = None, n_boot: int = 1000, ci: float = 0.95, seed: int = 0,
                      allow_missing: bool = False, per_observer: bool = True,
                      progress: bool = True) -> pd.DataFrame:
    """Compare a model's decisions with the human observers (and optionally a reference model).

    decisions / reference: tables from :func:`model_decisions` (``index`` + ``decision``, and
    ``dataset`` or the ``dataset=`` argument); trials: :func:`sparsevis.data.mvh.load_trials`.
    Per (dataset, condition) of the trials, on the images the observers saw:

    - against="model": ``accuracy`` and (cue-conflict) ``shape_bias`` of the model itself;
    - against="humans": ``accuracy_difference``, ``observed_consistency``,
      ``error_consistency`` against each observer (rows ``subj=<observer>`` when
      ``per_observer``) and their mean over observers (``subj="mean"``);
    - against="reference" (when ``reference`` is given, e.g. the dense model):
      ``error_consistency`` and ``observed_consistency`` of model vs reference.

    ``value`` is the estimate on all images; ``ci_low``/``ci_high`` a percentile bootstrap
    interval over images (``n_boot`` replicates, coverage ``ci``, ``seed``; the same resamples
    for every metric of a group; NaN on per-observer rows and when ``n_boot=0``); ``n`` = images,
    ``n_observers`` = observers averaged over. Images without a model decision are an error
    unless ``allow_missing``.
    """
    from tqdm.auto import tqdm

    _check_trials(trials)
    _check_unique(trials)
    dec = _model_rows(decisions, dataset)
    ref = _model_rows(reference, dataset) if reference is not None else None
    tr = _aligned(trials, dec, "decisions", allow_missing)
    rows = []

    def add(ds, cond, metric, against, subj, est, n, n_obs, low=np.nan, high=np.nan):
        rows.append(dict(dataset=ds, condition=cond, metric=metric, against=against, subj=subj,
                         value=float(est), ci_low=float(low), ci_high=float(high), n=int(n), n_observers=int(n_obs)))

    def boot(*arrays, statistic):
        if n_boot == 0:
            return statistic(*arrays), np.nan, np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r = bootstrap_ci_paired(*arrays, statistic=statistic, n_boot=n_boot, ci=ci, seed=seed,
                                    batched=getattr(statistic, "batched", None))
        return r.estimate, r.low, r.high

    groups = _groups(tr)
    for ds, cond in tqdm(groups, desc="compare to humans", disable=not progress or len(groups) < 2, leave=False):
        g = tr[(tr["dataset"] == ds) & (tr["condition"] == cond)]
        img_index, subjects, human = _correct_matrix(g)
        per_img = g.drop_duplicates("index").set_index("index").loc[img_index]
        model_dec = per_img["model_decision"].to_numpy(dtype=object)
        category = per_img["category"].astype(str).to_numpy(dtype=object)
        model_correct = model_dec == category
        n_img, n_obs = len(img_index), len(subjects)

        if n_boot:
            r = bootstrap_ci(model_correct.astype(np.float64), n_boot=n_boot, ci=ci, seed=seed)
            add(ds, cond, "accuracy", "model", "", r.estimate, n_img, 0, r.low, r.high)
        else:
            add(ds, cond, "accuracy", "model", "", accuracy(model_correct), n_img, 0)
        if "texture" in per_img.columns and per_img["texture"].notna().all():
            texture = per_img["texture"].astype(str).to_numpy(dtype=object)
            est, lo, hi = boot(model_dec, category, texture, statistic=shape_bias)
            add(ds, cond, "shape_bias", "model", "", est, n_img, 0, lo, hi)

        for name, metric in (("accuracy_difference", accuracy_difference), ("observed_consistency", observed_consistency),
                             ("error_consistency", error_consistency)):
            if per_observer:
                for j, s in enumerate(subjects):
                    seen = ~np.isnan(human[:, j])
                    add(ds, cond, name, "humans", s, metric(model_correct[seen], human[seen, j].astype(bool)),
                        seen.sum(), 1)
            est, lo, hi = boot(model_correct, human, statistic=_OverObservers(_FROM_RATES[name]))
            add(ds, cond, name, "humans", "mean", est, n_img, n_obs, lo, hi)

        if ref is not None:
            rm = pd.DataFrame({"dataset": ds, "index": img_index}).merge(ref, on=["dataset", "index"], how="left")
            have = rm["decision"].notna().to_numpy()
            if not have.all() and not allow_missing:
                raise ValueError(f"reference: no decision for {int((~have).sum())} image(s) of {ds}/{cond}; "
                                 f"run the reference model on the whole dataset or pass allow_missing=True")
            ref_correct = rm["decision"].astype(str).to_numpy(dtype=object)[have] == category[have]
            for name in ("error_consistency", "observed_consistency"):   # the reference: one observer
                est, lo, hi = boot(model_correct[have], ref_correct, statistic=_OverObservers(_FROM_RATES[name]))
                add(ds, cond, name, "reference", "reference", est, int(have.sum()), 0, lo, hi)
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


# ----------------------------------------------------------------------------- benchmark aggregates
#: Conditions model-vs-human leaves out of its benchmark numbers (``EXCLUDE_CONDITIONS`` in
#: ``modelvshuman/plotting/plot.py``): control conditions without the manipulation (e.g. 100 %
#: contrast, colour images of the colour experiment) and those where mean human accuracy is
#: below 0.2, so that consistency is not meaningful. Datasets not listed keep every condition.
EXCLUDED_CONDITIONS: dict[str, tuple[str, ...]] = {
    "colour": ("cr",),
    "contrast": ("c100", "c03", "c01"),
    "high-pass": ("inf", "0.55", "0.45", "0.4"),
    "low-pass": ("0", "15", "40"),
    "phase-scrambling": ("0", "150", "180"),
    "power-equalisation": ("0",),
    "false-colour": ("True",),
    "rotation": ("0",),
    "eidolonI": ("1-10-10", "64-10-10", "128-10-10"),
    "eidolonII": ("1-3-10", "32-3-10", "64-3-10", "128-3-10"),
    "eidolonIII": ("1-0-10", "16-0-10", "32-0-10", "64-0-10", "128-0-10"),
    "uniform-noise": ("0.0", "0.6", "0.9"),
}
#: ``condition`` of the aggregate rows; ``dataset`` ``"all"`` holds the means over datasets.
BENCHMARK = "benchmark"
_HUMANLIKE = ("accuracy_difference", "observed_consistency", "error_consistency")


def benchmark_aggregates(comparison: pd.DataFrame) -> pd.DataFrame:
    """model-vs-human's benchmark numbers from the per-condition rows of :func:`compare_to_humans`.

    The toolbox first drops :data:`EXCLUDED_CONDITIONS`, then, per dataset (rows with
    ``condition="benchmark"``):

    - ``accuracy`` (against="model"): pooled over the trials of the kept conditions, i.e. the
      per-condition accuracies weighted by their ``n``;
    - ``accuracy_difference``, ``observed_consistency``, ``error_consistency``
      (against="humans", subj="mean"): per observer the mean over the kept conditions, then the
      mean over observers (the order of its ``format_benchmark_df``); from the per-observer
      rows, so ``compare_to_humans(..., per_observer=True)`` is needed for these; observers
      or conditions with an undefined value (NaN kappa) are left out of the means.

    and over datasets (``dataset="all"``): the plain mean of each dataset's value (the "OOD
    accuracy" of its benchmark table for accuracy). ``n``: trials (accuracy) or datasets /
    conditions averaged; ``n_observers``: observers averaged; CIs are NaN. Columns as
    :data:`COMPARISON_COLUMNS`. Shape bias and comparisons with a reference model have no
    benchmark aggregate and are not returned.
    """
    missing = [c for c in COMPARISON_COLUMNS if c not in comparison.columns]
    if missing:
        raise ValueError(f"comparison: missing column(s) {missing}; expected the table from compare_to_humans()")
    excluded = comparison.apply(lambda r: str(r["condition"]) in EXCLUDED_CONDITIONS.get(r["dataset"], ()), axis=1) \
        if len(comparison) else pd.Series([], dtype=bool)
    kept = comparison[~excluded.to_numpy(dtype=bool)]
    rows = []

    def add(ds, metric, against, value, n, n_obs):
        rows.append(dict(dataset=ds, condition=BENCHMARK, metric=metric, against=against,
                         subj="mean" if against == "humans" else "", value=float(value), ci_low=np.nan,
                         ci_high=np.nan, n=int(n), n_observers=int(n_obs)))

    for ds in dict.fromkeys(kept["dataset"]):
        g = kept[kept["dataset"] == ds]
        acc = g[(g["metric"] == "accuracy") & (g["against"] == "model")]
        if len(acc):
            add(ds, "accuracy", "model", np.average(acc["value"], weights=acc["n"]), acc["n"].sum(), 0)
        for metric in _HUMANLIKE:
            per = g[(g["metric"] == metric) & (g["against"] == "humans") & (g["subj"] != "mean")]
            if not len(per) and ((g["metric"] == metric) & (g["against"] == "humans")).any():
                raise ValueError(f"comparison: no per-observer {metric} rows for {ds}; run "
                                 f"compare_to_humans(..., per_observer=True)")
            by_obs = per.groupby("subj")["value"].mean().dropna()   # conditions, then observers
            if len(by_obs):
                add(ds, metric, "humans", by_obs.mean(), per["condition"].nunique(), len(by_obs))
    agg = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    for (metric, against), g in agg.groupby(["metric", "against"], sort=False):
        add("all", metric, against, g["value"].mean(), len(g), g["n_observers"].max())
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


# ----------------------------------------------------------------------------- raw-data CSV
def raw_csv_path(out_dir: str | os.PathLike, dataset: str, model_id: str, session: int = 1) -> Path:
    """``<out_dir>/<dataset>/<dataset>_<model-id>_session-<session>.csv`` (model-vs-human's
    naming: the model id with '_' replaced by '-')."""
    safe = str(model_id).replace("_", "-").replace("/", "-").replace(os.sep, "-")
    return Path(out_dir) / dataset / f"{dataset}_{safe}_session-{int(session)}.csv"


def write_raw_csv(decisions: pd.DataFrame, model_id: str, out_dir: str | os.PathLike,
                  dataset: str | None = None) -> list[Path]:
    """Write a model's decisions in model-vs-human's raw-data CSV schema, one file per dataset
    and session, as its ``ResultPrinter`` does.

    Columns ``subj, session, trial, rt, object_response, category, condition, imagename`` with
    subj = ``model_id``, session = the image's session (``session`` column, else 1; the
    parametric datasets have several), trial 1..N in image order within each session file, rt
    NaN, object_response = the decision, imagename = the stimulus file name (``filename``, else
    ``image``). condition is the decisions' (``"0"`` on edge / silhouette / cue-conflict, as
    in the human files; the toolbox writes "NaN" there and never reads it). Written atomically
    to :func:`raw_csv_path`, lines ending in "\\n" like the human files; the files can be
    read back with ``mvh.load_trials(dataset, raw_dir=<out_dir>/<dataset>)``. Returns the
    paths written.
    """
    import csv
    import io

    if not str(model_id).strip():
        raise ValueError("model_id: expected a non-empty model id")
    d = decisions.copy()
    if "dataset" not in d.columns:
        if dataset is None:
            raise ValueError("decisions: no 'dataset' column; pass dataset=")
        d["dataset"] = dataset
    need = [c for c in ("index", "decision", "category", "condition") if c not in d.columns]
    if "filename" not in d.columns and "image" not in d.columns:
        need.append("filename or image")
    if need:
        raise ValueError(f"decisions: missing column(s) {need}; expected the table from model_decisions()")
    name_col = "filename" if "filename" in d.columns else "image"
    paths = []
    sessions = d["session"].astype(int) if "session" in d.columns else pd.Series(1, index=d.index)
    for ds in sorted(d["dataset"].astype(str).unique()):
        for session in sorted(sessions[d["dataset"] == ds].unique()):
            g = d[(d["dataset"] == ds) & (sessions == session)].sort_values("index", kind="stable")
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["subj", "session", "trial", "rt", "object_response", "category", "condition", "imagename"])
            for t, (_, r) in enumerate(g.iterrows(), start=1):
                w.writerow([model_id, int(session), t, "NaN", r["decision"], r["category"], r["condition"],
                            r[name_col]])
            path = raw_csv_path(out_dir, ds, model_id, session)
            atomic_write_text(path, buf.getvalue())
            paths.append(path)
    return paths
