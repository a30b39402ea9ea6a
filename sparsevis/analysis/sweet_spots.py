"""Sweet spots: is a pruned checkpoint significantly better than its dense model?

The input is a long table of per-item values (one row per seed, checkpoint and evaluation item:
columns ``seed, iteration, sparsity, item, value``; iteration 0 is the dense model). Every
checkpoint of a seed is evaluated on the same items, so a checkpoint is compared with dense
*item by item* (paired), and all the pruned checkpoints of a series are tested together with a
family-wise correction, so that looking for the best of many checkpoints does not manufacture
sweet spots out of noise.

The rule, per series:

1. Effect of checkpoint k: the mean over items of the checkpoint minus the mean over the *same*
   items of the dense model, per seed, averaged over seeds; signed so that positive = better than
   dense (``scale="difference"``), or the ratio of those two means minus 1, inverted when lower
   is better (``scale="ratio"``). An item counts at checkpoint k of a seed only where its value
   is finite both at k and at dense; ``n`` reports how many item values that left (summed over
   seeds).
2. Bootstrap: each replicate draws items with replacement *once* and uses those item indices
   for every checkpoint and every seed (items are the same images everywhere, so the draw keeps
   the pairing and the item effects shared across checkpoints and seeds); with several seeds it
   also draws seeds with replacement (a second level: a seed is a training run).
3. Family-wise p-value (one-sided, H0: checkpoint k is no better than dense), by the single-step
   max-T bootstrap (Westfall & Young 1993; Romano & Wolf 2005) with bootstrap-t studentising:
   t_k = effect_k / s_k, s_k the delta-method standard error over items (plus the
   spread of the per-seed effects when there are several seeds); the null distribution of
   max_k t_k is that of the maximum over checkpoints of the centred replicates
   (effect*_k - effect_k) / s*_k, each replicate studentised by its own s*_k; p_k = (1 + #{max*
   >= t_k}) / (1 + n_boot). This bounds the chance of *any* false "better than dense" in the
   series by ``alpha``, whatever the checkpoints' true effects and their correlation (up to the
   bootstrap's approximation; tests/test_sweet_spots.py measures it). On the ratio scale the
   statistics use the log of the ratio.
4. ``improved`` = p_adj < alpha and effect > 0; a series has a **sweet spot** when any checkpoint
   is improved, and its sweet spot is the improved checkpoint with the largest effect.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd

ITEM_COLUMNS = ("seed", "iteration", "sparsity", "item", "value")
SERIES_COLUMNS = ("track", "arch", "prune_method", "prunable_set", "study", "dataset", "method", "metric")
MODEL_COLUMNS = SERIES_COLUMNS[:4]
SCALES = ("difference", "ratio")
EFFECT_COLUMNS = ("iteration", "sparsity", "n", "n_seeds", "effect", "se", "ci_low", "ci_high",
                  "simultaneous_low", "p_adj", "improved")
_MAX_ELEMENTS = 1 << 22  # count-matrix or feature-product entries held at once


def _validate_items(items: pd.DataFrame, series: tuple[str, ...] = ()) -> None:
    if not isinstance(items, pd.DataFrame):
        raise TypeError(f"items: expected a pandas DataFrame, got {type(items).__name__}")
    missing = [c for c in ITEM_COLUMNS if c not in items.columns]
    if missing:
        raise ValueError(f"items: missing column(s) {missing}; expected at least {list(ITEM_COLUMNS)}")
    key = [*series, "seed", "iteration", "item"]
    dup = items.duplicated(key)
    if dup.any():
        first = items.loc[dup, key].iloc[0].tolist()
        raise ValueError(f"items: {int(dup.sum())} duplicate ({', '.join(key)}) rows, e.g. {first}; "
                         "expected one value per item and checkpoint of a seed")


def _plain(value):
    """A NumPy scalar as the Python one, so that messages read ``1``, not ``np.int64(1)``."""
    return value.item() if isinstance(value, np.generic) else value


def _cube(items: pd.DataFrame, seeds=None, item_ids=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values as (seeds, items, checkpoints) with the dense model in column 0, plus the pruned
    checkpoints' iterations and sparsities (mean over seeds). An item absent from a seed is NaN.
    ``seeds``, ``item_ids``: the order of those axes (default: sorted; rows of other seeds or
    items are left out), so that two series' cubes line up."""
    if seeds is not None or item_ids is not None:
        keep = np.ones(len(items), bool)
        if seeds is not None:
            keep &= items["seed"].isin(seeds).to_numpy()
        if item_ids is not None:
            keep &= items["item"].isin(item_ids).to_numpy()
        items = items[keep]
    iterations = np.sort(items["iteration"].unique())
    if iterations[0] != 0:
        raise ValueError(f"items: no dense model (iteration 0); iterations present: {iterations.tolist()}")
    if len(iterations) < 2:
        raise ValueError("items: only the dense model (iteration 0); expected at least one pruned checkpoint")
    if seeds is None:
        seed_code, seeds = pd.factorize(items["seed"], sort=True)
    else:
        seed_code = pd.Index(seeds).get_indexer(items["seed"])
    if item_ids is None:
        item_code, item_ids = pd.factorize(items["item"], sort=True)
    else:
        item_code = pd.Index(item_ids).get_indexer(items["item"])
    it_code = np.searchsorted(iterations, items["iteration"].to_numpy())
    present = np.zeros((len(seeds), len(iterations)), bool)
    present[seed_code, it_code] = True
    if not present.all():
        s, k = np.argwhere(~present)[0]
        raise ValueError(f"items: seed {_plain(seeds[s])!r} has no rows for iteration {iterations[k]}; "
                         "every seed needs every checkpoint of the series")
    per_ckpt = items.groupby(["seed", "iteration"])["sparsity"].nunique()
    if (per_ckpt > 1).any():
        seed, it = per_ckpt[per_ckpt > 1].index[0]
        raise ValueError(f"items: seed {_plain(seed)!r} iteration {it} has several sparsities; "
                         "expected one per checkpoint")
    values = np.full((len(seeds), len(item_ids), len(iterations)), np.nan)
    values[seed_code, item_code, it_code] = items["value"].to_numpy(np.float64)
    sparsity = np.bincount(it_code, items["sparsity"].to_numpy(np.float64)) / np.bincount(it_code)
    return values, iterations[1:], sparsity[1:]


def _replicates(counts, seed_weights, feats, prods, base, scale: str, higher_is_better: bool):
    """Effect (test scale) and its squared item-level standard error, (replicates, checkpoints).

    counts (b, items): item multiplicities; seed_weights (b, seeds); feats (items, 3, seeds, k):
    the usable-masked checkpoint and dense values, centred on their full-sample means, and the
    usable mask; prods (items, 3, seeds, 3, seeds, k) their pairwise products; base (2, seeds, k):
    the full-sample means the features were centred on. The standard error is the delta-method
    (influence) one over items, evaluated on the resample: sum_i c_i psi_i^2 with psi_i linear
    in the features, so it comes from the count-weighted Gram matrix of the features.
    """
    b, n_items = counts.shape
    n_seeds = seed_weights.shape[1]
    sums = _weighted_sums(counts, feats.reshape(n_items, -1)).reshape(b, *feats.shape[1:])
    gram = _weighted_sums(counts, prods.reshape(n_items, -1)).reshape(b, *prods.shape[1:])
    g = seed_weights[:, :, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        m = sums[:, 2]
        dx, d0 = sums[:, 0] / m, sums[:, 1] / m          # resample means minus full-sample means
        mean_x = ((base[0] + dx) * g).sum(1) / n_seeds
        mean_0 = ((base[1] + d0) * g).sum(1) / n_seeds
        w = g / (n_seeds * m)
        if scale == "difference":
            theta = mean_x - mean_0
            coef = np.stack([w, -w, -w * (dx - d0)], 1)
        else:
            theta = np.log(mean_x) - np.log(mean_0)
            a, z = mean_x[:, None], mean_0[:, None]
            coef = np.stack([w / a, -w / z, -w * (dx / a - d0 / z)], 1)
        var = ((gram * coef[:, None, None]).sum((3, 4)) * coef).sum((1, 2))
        if n_seeds > 1:
            # the spread of the per-seed effects: training runs differ, and items alone miss it
            per_seed = (base[0] + dx) - (base[1] + d0) if scale == "difference" else \
                np.log((base[0] + dx) / (base[1] + d0))
            centre = (per_seed * g).sum(1, keepdims=True) / n_seeds
            var = var + (g * (per_seed - centre) ** 2).sum(1) / (n_seeds * (n_seeds - 1))
    return (theta if higher_is_better else -theta), np.clip(var, 0, None)


def _weighted_sums(counts: np.ndarray, a: np.ndarray) -> np.ndarray:
    """counts @ a; small products by einsum's single-threaded loop, since a multithreaded BLAS
    call on a busy machine costs tens of times more than the arithmetic."""
    if counts.size * a.shape[1] < 1 << 26:
        return np.einsum("bi,if->bf", counts, a)
    return counts @ a


def _t(diff, var, tol):
    """diff / sqrt(var); a numerically zero standard error gives +-inf, or 0 for a zero diff."""
    se = np.sqrt(var)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(se > tol, diff / se, np.where(np.abs(diff) > tol, np.sign(diff) * np.inf, 0.0))


def _to_effect(t_scale: np.ndarray, scale: str) -> np.ndarray:
    return t_scale if scale == "difference" else np.expm1(t_scale)


def paired_effects(items: pd.DataFrame, higher_is_better: bool, *, scale: str = "difference",
                   n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """Effect of every pruned checkpoint of one series against its dense model, FWER-corrected.

    items: long table with columns ``seed, iteration, sparsity, item, value`` for one series
    (iteration 0 = dense; every seed has every iteration). Returns one row per pruned checkpoint,
    by iteration, with columns:

    - ``n``: item values used (finite at the checkpoint *and* at dense), summed over seeds;
      ``n_seeds``.
    - ``effect``: mean(checkpoint) - mean(dense) over those items (``scale="difference"``) or
      mean(checkpoint) / mean(dense) - 1 (``"ratio"``, dense / checkpoint - 1 when lower is
      better); means are per seed, then averaged over seeds; positive = better than dense.
    - ``se``: bootstrap standard deviation of the effect on the test scale (the difference, or
      the log ratio).
    - ``ci_low, ci_high``: this checkpoint's own (marginal) 1 - alpha percentile bootstrap interval.
    - ``simultaneous_low``: a lower bound holding for all checkpoints of the series at once with
      probability 1 - alpha (effect - c * se_items, c the 1 - alpha quantile of the bootstrap
      max-T); above 0 exactly when p_adj < alpha, up to the bootstrap's discreteness.
    - ``p_adj``: one-sided, family-wise (max-T over the pruned checkpoints) p-value of "better
      than dense"; ``improved``: p_adj < alpha and effect > 0.

    The t statistics are studentised in every replicate (bootstrap-t) by the delta-method
    standard error over items (se_items), which keeps the test at its level with a few dozen
    items, where a fixed bootstrap standard error is too small in the tails. With several seeds
    se_items also adds the spread of the per-seed effects, and seeds are resampled. Few seeds
    cannot pin that spread down: on null series whose training runs differ by 2 item standard
    errors per checkpoint, the measured false-positive rate was 10 % with 2 seeds, 8 % with 3
    and 5 % with 5 (1.7 % with 3 seeds and no run-to-run spread); so with 2-3 seeds read a
    sweet spot as a statement about these runs more than about training runs in general.

    A checkpoint where some seed has fewer than 2 usable items has effect/p NaN, is left out of
    the family and is never improved. Bootstrap replicates whose resample of a seed holds no
    usable item count as exceeding every statistic (conservative). The ``ratio`` scale needs
    every finite value > 0 (ValueError otherwise). Deterministic given ``seed``.
    """
    if scale not in SCALES:
        raise ValueError(f"scale: expected one of {SCALES}, got {scale!r}")
    if not isinstance(higher_is_better, (bool, np.bool_)):
        raise TypeError(f"higher_is_better: expected a bool, got {higher_is_better!r}")
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 100:
        raise ValueError(f"n_boot: expected an int >= 100 (the max-T quantiles need it), got {n_boot!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a level in (0, 1), got {alpha!r}")
    _validate_items(items)
    values, iterations, sparsity = _cube(items)
    result = _effects(values, higher_is_better, scale, n_boot, alpha, seed)
    return pd.DataFrame({"iteration": iterations, "sparsity": sparsity, **result})[list(EFFECT_COLUMNS)]


def _effects(values: np.ndarray, higher_is_better: bool, scale: str, n_boot: int, alpha: float,
             seed: int, baseline: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The columns of :func:`paired_effects` but iteration and sparsity, from a (seeds, items,
    checkpoints) array with dense in column 0 (NaN = missing); arguments already checked.
    ``baseline`` (seeds, items, checkpoints - 1): what each pruned checkpoint is compared with,
    instead of dense (e.g. the control at the same sparsity)."""
    reference = values[:, :, :1] if baseline is None else baseline
    finite = np.isfinite(values)
    finite_ref = np.isfinite(reference)
    both = np.concatenate([values[finite], reference[finite_ref]])
    if scale == "ratio" and (both <= 0).any():
        bad = float(both[both <= 0][0])
        raise ValueError(f"scale='ratio': needs every value > 0 (a ratio to dense of a signed or zero "
                         f"metric is meaningless), found {bad}; use scale='difference'")
    n_seeds, n_items, _ = values.shape
    n_ckpt = values.shape[2] - 1
    # usable[s, i, k]: item i of seed s is finite at pruned checkpoint k and at its reference
    usable = finite[:, :, 1:] & finite_ref
    count = usable.sum(1)
    testable = (count >= 2).all(0)
    # a standard error below this is rounding noise around an exactly known effect
    tol = 1e-9 * (max(1.0, float(np.abs(both).max(initial=0))) if scale == "difference" else 1.0)

    rng = np.random.default_rng(seed)
    block = max(1, _MAX_ELEMENTS // n_items)
    draws = []
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        # item multiplicities of each replicate: one draw shared by every seed and checkpoint
        idx = rng.integers(0, n_items, size=(b, n_items)) + n_items * np.arange(b)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n_items).reshape(b, n_items).astype(np.float64)
        seed_idx = rng.integers(0, n_seeds, size=(b, n_seeds)) + n_seeds * np.arange(b)[:, None]
        seed_weights = np.bincount(seed_idx.ravel(), minlength=b * n_seeds).reshape(b, n_seeds).astype(np.float64)
        draws.append((counts, seed_weights))

    estimate, var = np.full(n_ckpt, np.nan), np.full(n_ckpt, np.nan)
    theta_star, var_star = np.full((n_boot, n_ckpt), np.nan), np.full((n_boot, n_ckpt), np.nan)
    ckpts = np.flatnonzero(testable)
    step = max(1, _MAX_ELEMENTS // (9 * n_seeds ** 2 * n_items))  # checkpoints whose products fit at once
    for chunk in (ckpts[i:i + step] for i in range(0, len(ckpts), step)):
        w = usable[:, :, chunk]
        x, x0 = values[:, :, chunk + 1], (reference if baseline is None else reference[:, :, chunk])
        base = np.stack([np.where(w, x, 0).sum(1), np.where(w, x0, 0).sum(1)]) / count[:, chunk]
        feats = np.stack([np.where(w, x - base[0][:, None], 0), np.where(w, x0 - base[1][:, None], 0), w],
                         0).transpose(2, 0, 1, 3)
        prods = feats[:, :, :, None, None, :] * feats[:, None, None, :, :, :]
        est, v = _replicates(np.ones((1, n_items)), np.ones((1, n_seeds)), feats, prods, base, scale,
                             higher_is_better)
        estimate[chunk], var[chunk] = est[0], v[0]
        at = 0
        for counts, seed_weights in draws:
            rows = slice(at, at + len(counts))
            theta_star[rows, chunk], var_star[rows, chunk] = _replicates(counts, seed_weights, feats, prods,
                                                                         base, scale, higher_is_better)
            at += len(counts)

    defined = np.isfinite(theta_star)
    t = _t(estimate, var, tol)
    centred = np.where(defined, _t(theta_star - estimate, var_star, tol), np.inf)[:, testable]
    max_t = centred.max(1) if testable.any() else np.full(n_boot, np.nan)
    p_adj = np.full(n_ckpt, np.nan)
    p_adj[testable] = (1 + (max_t[:, None] >= t[testable]).sum(0)) / (1 + n_boot)
    critical = np.quantile(max_t, 1 - alpha) if testable.any() else np.nan
    se, quantiles = np.full(n_ckpt, np.nan), np.full((n_ckpt, 2), np.nan)
    for k in np.flatnonzero(testable & (defined.sum(0) > 1)):
        reps = theta_star[:, k] if defined[:, k].all() else theta_star[defined[:, k], k]
        se[k] = reps.std(ddof=1)
        quantiles[k] = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    simultaneous_low = np.where(np.sqrt(var) > tol, estimate - critical * np.sqrt(var), estimate)
    effect = _to_effect(estimate, scale)
    return {"n": count.sum(0), "n_seeds": np.full(n_ckpt, n_seeds), "effect": effect, "se": se,
            "ci_low": _to_effect(quantiles[:, 0], scale), "ci_high": _to_effect(quantiles[:, 1], scale),
            "simultaneous_low": _to_effect(simultaneous_low, scale),
            "p_adj": p_adj, "improved": (p_adj < alpha) & (effect > 0)}


VERDICT_COLUMNS = ("sweet_spot", "iteration", "sparsity", "effect", "ci_low", "ci_high", "simultaneous_low",
                   "p_adj", "n_checkpoints", "n_improved")


def verdict(effects: pd.DataFrame) -> pd.Series:
    """Whether one series (the output of :func:`paired_effects`) has a sweet spot, and where.

    The sweet spot is the improved checkpoint with the largest effect; its effect, intervals and
    corrected p-value are reported. Without one, ``sweet_spot`` is False and the location fields
    are NaN; ``p_adj`` is then the smallest corrected p-value of the series (how close it came).
    """
    missing = [c for c in EFFECT_COLUMNS if c not in effects.columns]
    if missing:
        raise ValueError(f"effects: missing column(s) {missing}; expected the output of paired_effects")
    improved = effects[effects["improved"].astype(bool)]
    base = {"n_checkpoints": int(effects["p_adj"].notna().sum()), "n_improved": len(improved)}
    if improved.empty:
        p_min = effects["p_adj"].min()
        return pd.Series({"sweet_spot": False, **{c: np.nan for c in VERDICT_COLUMNS[1:7]},
                          "p_adj": p_min, **base})[list(VERDICT_COLUMNS)]
    best = improved.loc[improved["effect"].idxmax()]
    return pd.Series({"sweet_spot": True, **{c: best[c] for c in VERDICT_COLUMNS[1:8]}, **base}
                     )[list(VERDICT_COLUMNS)]


class SweetSpots(NamedTuple):
    effects: pd.DataFrame   # one row per pruned checkpoint of every series
    verdicts: pd.DataFrame  # one row per series
    summary: pd.DataFrame   # one row per model, study and kind (paper / extension)


def _direction(higher_is_better: Callable[[str], bool] | Mapping[str, bool], metric: str) -> bool:
    if isinstance(higher_is_better, Mapping):
        if metric not in higher_is_better:
            raise ValueError(f"higher_is_better: no direction for metric {metric!r}; "
                             f"known: {sorted(higher_is_better)}")
        return bool(higher_is_better[metric])
    return bool(higher_is_better(metric))


def sweet_spots(items: pd.DataFrame, higher_is_better: Callable[[str], bool] | Mapping[str, bool], *,
                is_extension: Callable[[str, str], bool] | None = None, scale: str = "difference",
                n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> SweetSpots:
    """:func:`paired_effects` and :func:`verdict` for every series of a long per-item table.

    items: columns :data:`SERIES_COLUMNS` (a series is one value of them; missing group values
    such as a NaN ``prunable_set`` form their own group) plus :data:`ITEM_COLUMNS`.
    higher_is_better: metric name -> direction (a callable such as
    ``sparsevis.metrics.higher_is_better``, or a mapping). is_extension(method, metric): True for
    metrics outside the paper's protocol; they are counted apart in the summary (None: none are).

    The summary has one row per model (track, arch, prune_method, prunable_set), study and kind
    ("paper" or "extension"): ``n_series``, ``n_sweet_spots`` and ``sweet_spot_sparsities`` (the
    sorted sparsities of those sweet spots). Each series is corrected over its own checkpoints
    only: the count of sweet spots over many series is not itself corrected, so read it as "how
    many series", not as one more test.
    """
    missing = [c for c in SERIES_COLUMNS if c not in items.columns]
    if missing:
        raise ValueError(f"items: missing series column(s) {missing}; expected {list(SERIES_COLUMNS)}")
    _validate_items(items, SERIES_COLUMNS)
    effects, verdicts = [], []
    for key, g in items.groupby(list(SERIES_COLUMNS), sort=True, dropna=False):
        ident = dict(zip(SERIES_COLUMNS, key))
        try:
            e = paired_effects(g, _direction(higher_is_better, ident["metric"]), scale=scale,
                               n_boot=n_boot, alpha=alpha, seed=seed)
        except ValueError as err:
            raise ValueError(f"series {ident}: {err}") from None
        effects.append(e.assign(**ident))
        extension = bool(is_extension(ident["method"], ident["metric"])) if is_extension else False
        verdicts.append({**ident, "extension": extension, **verdict(e).to_dict()})
    if not effects:
        raise ValueError("items: no rows, so no series")
    effects = pd.concat(effects, ignore_index=True)[[*SERIES_COLUMNS, *EFFECT_COLUMNS]]
    verdicts = pd.DataFrame(verdicts)
    return SweetSpots(effects, verdicts, summarise(verdicts))


def summarise(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Per model, study and kind (paper / extension): how many series have a sweet spot, and where."""
    kind = np.where(verdicts["extension"].astype(bool), "extension", "paper")
    rows = []
    for key, g in verdicts.assign(kind=kind).groupby([*MODEL_COLUMNS, "study", "kind"], sort=True, dropna=False):
        sweet = g[g["sweet_spot"].astype(bool)]
        rows.append({**dict(zip([*MODEL_COLUMNS, "study", "kind"], key)), "n_series": len(g),
                     "n_sweet_spots": len(sweet),
                     "sweet_spot_sparsities": sorted(sweet["sparsity"].round(6).tolist())})
    return pd.DataFrame(rows)


CONTROL_COLUMNS = ("effect", "ci_low", "ci_high", "p_adj", "improved")


def compare_with_control(treated: pd.DataFrame, control: pd.DataFrame, *, sparsity_tol: float = 0.01
                         ) -> pd.DataFrame:
    """Is a checkpoint's benefit also shown by a matched control (e.g. random pruning)?

    treated, control: per-checkpoint effects (from :func:`sweet_spots` ``.effects``, or from
    :func:`paired_effects` for one pair of series), e.g. magnitude pruning and random pruning of
    the same architecture. Series are matched on every :data:`SERIES_COLUMNS` entry present in
    both tables except ``prune_method``; checkpoints on sparsity, the nearest control checkpoint
    within ``sparsity_tol`` (absolute), else the control columns are NaN.

    Returns the treated table with the control's ``control_effect, control_ci_low,
    control_ci_high, control_p_adj, control_improved`` and ``shown_by_control`` = treated improved
    and the control, judged by its *own* family-wise corrected test at the matched sparsity,
    improved too ("random pruning also shows it"). A treated improvement that the control does
    not show is only that: the control's test failing is not evidence that the treated method is
    better than the control; that needs a direct paired comparison of the two.
    """
    if not sparsity_tol >= 0:
        raise ValueError(f"sparsity_tol: expected a tolerance >= 0, got {sparsity_tol!r}")
    for name, table in (("treated", treated), ("control", control)):
        missing = [c for c in ("sparsity", *CONTROL_COLUMNS) if c not in table.columns]
        if missing:
            raise ValueError(f"{name}: missing column(s) {missing}; expected per-checkpoint effects")
    keys = [c for c in SERIES_COLUMNS if c != "prune_method" and c in treated.columns and c in control.columns]
    out = treated.reset_index(drop=True)
    ctrl = control.reset_index(drop=True)
    by_series: dict[tuple, list[int]] = {}
    for j, key in enumerate(_series_keys(ctrl, keys)):
        by_series.setdefault(key, []).append(j)
    ctrl_sparsity = ctrl["sparsity"].to_numpy(np.float64)
    match = np.full(len(out), -1)
    for i, (key, sp) in enumerate(zip(_series_keys(out, keys), out["sparsity"].to_numpy(np.float64))):
        rows = np.asarray(by_series.get(key, []), dtype=int)
        if len(rows):
            gap = np.abs(ctrl_sparsity[rows] - sp)
            if gap.min() <= sparsity_tol:
                match[i] = rows[np.argmin(gap)]
    found = match >= 0
    for c in ("sparsity", *CONTROL_COLUMNS):
        col = pd.Series(np.nan, index=out.index, dtype=object if c == "improved" else np.float64)
        col[found] = ctrl[c].to_numpy()[match[found]]
        out[f"control_{c}"] = col.astype("boolean") if c == "improved" else col
    out["shown_by_control"] = out["improved"].astype(bool) & out["control_improved"].fillna(False).astype(bool)
    return out


VERSUS_COLUMNS = ("iteration", "sparsity", "control_iteration", "control_sparsity", "n", "n_seeds", "effect",
                  "se", "ci_low", "ci_high", "simultaneous_low", "p_adj", "better")


def versus_control(treated: pd.DataFrame, control: pd.DataFrame, higher_is_better: bool, *,
                   sparsity_tol: float = 0.01, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
                   ) -> pd.DataFrame:
    """Is a series better than its control at the same sparsity, item by item?

    The direct paired test that :func:`compare_with_control` is not: treated and control are the
    item tables (:data:`ITEM_COLUMNS`) of one series each (e.g. magnitude and random pruning of one
    model, one metric), evaluated on the same items. Each pruned treated checkpoint is matched
    with the control's pruned checkpoint of nearest sparsity within ``sparsity_tol``, on the
    seeds both have; the effect is treated minus control (positive = better, by
    ``higher_is_better``), with the same paired bootstrap, seeds level and max-T family-wise
    correction over the matched checkpoints as :func:`paired_effects`. ``better`` = p_adj < alpha
    and effect > 0. Returns one row per matched checkpoint (:data:`VERSUS_COLUMNS`); empty when no
    sparsity or seed matches.
    """
    if not sparsity_tol >= 0:
        raise ValueError(f"sparsity_tol: expected a tolerance >= 0, got {sparsity_tol!r}")
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 100:
        raise ValueError(f"n_boot: expected an int >= 100 (the max-T quantiles need it), got {n_boot!r}")
    _validate_items(treated)
    _validate_items(control)
    seeds = np.sort(np.intersect1d(treated["seed"].unique(), control["seed"].unique()))
    item_ids = np.sort(np.union1d(treated["item"].astype(str).unique(), control["item"].astype(str).unique()))
    if not len(seeds):
        return pd.DataFrame(columns=list(VERSUS_COLUMNS))
    t_vals, t_it, t_sp = _cube(treated.assign(item=treated["item"].astype(str)), seeds, item_ids)
    c_vals, c_it, c_sp = _cube(control.assign(item=control["item"].astype(str)), seeds, item_ids)
    gap = np.abs(t_sp[:, None] - c_sp[None, :])
    nearest = gap.argmin(1)
    mt = np.flatnonzero(gap[np.arange(len(t_sp)), nearest] <= sparsity_tol)
    if not len(mt):
        return pd.DataFrame(columns=list(VERSUS_COLUMNS))
    mc = nearest[mt]
    values = np.concatenate([t_vals[:, :, :1], t_vals[:, :, mt + 1]], axis=2)
    result = _effects(values, bool(higher_is_better), "difference", n_boot, alpha, seed,
                      baseline=c_vals[:, :, mc + 1])
    result["better"] = result.pop("improved")
    return pd.DataFrame({"iteration": t_it[mt], "sparsity": t_sp[mt], "control_iteration": c_it[mc],
                         "control_sparsity": c_sp[mc], **result})[list(VERSUS_COLUMNS)]


def _series_keys(table: pd.DataFrame, keys: list[str]) -> list[tuple]:
    """One hashable key per row; NaN and None compare equal (a missing prunable set is one group)."""
    return [tuple(None if pd.isna(v) else v for v in row)
            for row in table[keys].itertuples(index=False, name=None)] if keys else [()] * len(table)
