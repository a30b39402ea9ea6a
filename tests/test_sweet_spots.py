"""Sweet spots: the family-wise corrected paired rule, its calibration on null series, its
power on a planted effect, and hand-built cases with known answers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from sparsevis.analysis import (
    compare_with_control,
    paired_effects,
    sweet_spots,
    verdict,
    versus_control,
)
from sparsevis.analysis.sweet_spots import _effects

SPARSITY = np.r_[0.0, 1 - 0.8 ** np.arange(1, 30)]


def long_table(values: np.ndarray, **series) -> pd.DataFrame:
    """(seeds, items, checkpoints) array -> the long per-item table; checkpoint k is iteration k."""
    s, i, k = np.meshgrid(*(np.arange(n) for n in values.shape), indexing="ij")
    return pd.DataFrame({**series, "seed": s.ravel(), "iteration": k.ravel(),
                         "sparsity": SPARSITY[k.ravel()], "item": i.ravel(), "value": values.ravel()})


# ---- calibration ---------------------------------------------------------------------------
N_ITEMS, SIGMA = 96, 0.1
SE_DIFF = np.sqrt(2) * SIGMA / np.sqrt(N_ITEMS)   # standard error of a paired mean difference


def simulate(shape: str, n_series: int, n_ckpt: int, rng) -> np.ndarray:
    """(series, 1 seed, items, dense + checkpoints): per-item values whose item effects are shared
    by every checkpoint (so pairing matters), under a null where no checkpoint beats dense."""
    size = (n_series, 1, N_ITEMS, n_ckpt + 1)
    item = rng.normal(0.5, 0.2, size[:3] + (1,))
    if shape == "flat":
        return item + rng.normal(0, SIGMA, size)
    if shape == "noisy":   # per-item hits (pointing game, CorLoc): Bernoulli, far from normal
        return (rng.random(size) < np.clip(item, 0.05, 0.95)).astype(np.float64)
    if shape == "declining":   # dense best, then half a standard error worse per checkpoint
        return item + rng.normal(0, SIGMA, size) - 0.5 * SE_DIFF * np.arange(n_ckpt + 1)
    if shape == "correlated":  # pruned checkpoints share most of their noise (rho = 0.8)
        common = rng.normal(0, SIGMA, size[:3] + (1,))
        noise = rng.normal(0, SIGMA, size)
        noise[..., 1:] = np.sqrt(0.8) * common + np.sqrt(0.2) * noise[..., 1:]
        return item + noise
    raise AssertionError(shape)


def claims(values: np.ndarray, n_boot: int = 500) -> np.ndarray:
    """(series, checkpoints) improved flags of the rule, by the core paired_effects runs."""
    return np.array([_effects(v, True, "difference", n_boot, 0.05, r)["improved"] for r, v in enumerate(values)])


N_SERIES = 200   # per shape and number of checkpoints: 400 per shape
# A rule exactly at 5 % exceeds these counts with probability 1 % (binomial upper quantile): the
# Monte-Carlo tolerance; the simulations are seeded, so a pass or fail does not vary by run.
PER_SHAPE_MAX = sps.binom.ppf(0.99, 2 * N_SERIES, 0.05) / (2 * N_SERIES)
POOLED_MAX = sps.binom.ppf(0.99, 6 * N_SERIES, 0.05) / (6 * N_SERIES)


@pytest.fixture(scope="module")
def null_rates():
    rng = np.random.default_rng(2025)
    rates = {}
    for shape in ("flat", "noisy", "declining", "correlated"):
        for k in (3, 7):
            rates[shape, k] = claims(simulate(shape, N_SERIES, k, rng)).any(1).mean()
    print("\nfalse-positive rate (series with a claimed sweet spot), "
          f"{N_SERIES} series each, {N_ITEMS} items, n_boot 500:")
    for (shape, k), r in rates.items():
        print(f"  {shape:11s} {k} checkpoints: {r:.3f}")
    return rates


@pytest.mark.parametrize("shape", ["flat", "noisy", "declining", "correlated"])
def test_false_positive_rate_per_null_shape(null_rates, shape):
    rate = (null_rates[shape, 3] + null_rates[shape, 7]) / 2
    assert rate <= PER_SHAPE_MAX, f"{shape}: {rate:.3f} > {PER_SHAPE_MAX:.3f}"


def test_false_positive_rate_pooled_over_exact_nulls(null_rates):
    rate = np.mean([null_rates[s, k] for s in ("flat", "noisy", "correlated") for k in (3, 7)])
    assert rate <= POOLED_MAX, f"pooled: {rate:.3f} > {POOLED_MAX:.3f}"
    # dense is best in the declining shape, so the one-sided rule almost never fires there
    assert null_rates["declining", 7] <= 0.02


def test_uncorrected_marginal_rule_fails_the_same_nulls():
    """The simulation is hard enough to catch a rule without the family-wise correction: the
    checkpoints' own 95 % intervals above 0 at any of 7 checkpoints, on the flat null."""
    values = simulate("flat", N_SERIES, 7, np.random.default_rng(7))
    marginal = np.array([(_effects(v, True, "difference", 500, 0.05, r)["ci_low"] > 0).any()
                         for r, v in enumerate(values)])
    assert marginal.mean() > 0.08


@pytest.mark.parametrize("n_ckpt", [3, 7])
def test_power_on_a_planted_effect(n_ckpt):
    rng = np.random.default_rng(11 + n_ckpt)
    values = simulate("flat", N_SERIES, n_ckpt, rng)
    at = n_ckpt // 2 + 1
    values[..., at] += 3.5 * SE_DIFF
    found = claims(values)
    hit = found.any(1) & (np.where(found, SPARSITY[1:n_ckpt + 1], -1).argmax(1) + 1 == at)
    elsewhere = np.delete(found, at - 1, axis=1).any(1).mean()
    print(f"\npower, 3.5 SE at checkpoint {at} of {n_ckpt}: {hit.mean():.3f} "
          f"(another checkpoint also claimed: {elsewhere:.3f})")
    assert hit.mean() >= 0.80
    assert elsewhere <= PER_SHAPE_MAX


def test_several_seeds_keep_the_level():
    """Three seeds (training runs of the pruned checkpoints, same dense) without run-to-run
    spread: the seed resampling and the per-seed spread must not make the rule liberal."""
    rng = np.random.default_rng(12)
    values = simulate("flat", N_SERIES, 3, rng).repeat(3, axis=1)
    values[..., 1:] += rng.normal(0, SIGMA, values[..., 1:].shape)   # each run its own noise
    rate = claims(values).any(1).mean()
    print(f"\nfalse-positive rate, 3 seeds, flat, 3 checkpoints: {rate:.3f}")
    assert rate <= sps.binom.ppf(0.99, N_SERIES, 0.05) / N_SERIES


# ---- hand-built cases ----------------------------------------------------------------------
@pytest.fixture
def base_values():
    rng = np.random.default_rng(3)
    dense = rng.uniform(0.2, 0.8, 40)
    values = np.stack([dense + rng.normal(0, 0.05, 40) for _ in range(4)], 1)
    values[:, 0] = dense
    return values[None]   # one seed


def test_checkpoint_better_for_every_item_is_the_sweet_spot(base_values):
    values = base_values.copy()
    values[0, :, 2] = values[0, :, 0] + np.random.default_rng(4).uniform(0.03, 0.07, 40)
    eff = paired_effects(long_table(values), True, n_boot=1000)
    assert eff["iteration"].tolist() == [1, 2, 3]
    assert eff["n"].tolist() == [40, 40, 40]
    row = eff.set_index("iteration").loc[2]
    assert row["effect"] == pytest.approx(np.mean(values[0, :, 2] - values[0, :, 0]))
    assert row["ci_low"] > 0.03 and row["ci_high"] < 0.07 and row["simultaneous_low"] > 0
    assert row["p_adj"] < 0.01 and row["improved"]
    v = verdict(eff)
    assert v["sweet_spot"] and v["iteration"] == 2 and v["sparsity"] == pytest.approx(SPARSITY[2])
    assert v["n_improved"] == 1 and v["n_checkpoints"] == 3
    # the same values where lower is better: checkpoint 2 is now worse than dense for every item
    worse = paired_effects(long_table(values), False, n_boot=1000).set_index("iteration").loc[2]
    assert worse["effect"] == pytest.approx(-row["effect"]) and not worse["improved"]


def test_exact_shift_has_certain_sign_and_zero_shift_none(base_values):
    values = base_values.copy()
    values[0, :, 1] = values[0, :, 0] + 0.1     # every item exactly 0.1 better
    values[0, :, 3] = values[0, :, 0]           # every item exactly as dense
    eff = paired_effects(long_table(values), True, n_boot=500).set_index("iteration")
    assert eff.loc[1, "effect"] == pytest.approx(0.1)
    assert eff.loc[1, "ci_low"] == pytest.approx(0.1) and eff.loc[1, "p_adj"] == pytest.approx(1 / 501)
    assert eff.loc[1, "improved"]
    assert eff.loc[3, "effect"] == pytest.approx(0, abs=1e-12) and not eff.loc[3, "improved"]
    assert eff.loc[3, "p_adj"] > 0.5


def test_ratio_scale_and_its_error(base_values):
    values = base_values.copy()
    eff = paired_effects(long_table(values), True, scale="ratio", n_boot=200).set_index("iteration")
    expected = values[0, :, 1:].mean(0) / values[0, :, 0].mean() - 1
    np.testing.assert_allclose(eff["effect"], expected, rtol=0, atol=1e-12)
    low = paired_effects(long_table(values), False, scale="ratio", n_boot=200)
    np.testing.assert_allclose(low["effect"], values[0, :, 0].mean() / values[0, :, 1:].mean(0) - 1, rtol=0, atol=1e-12)
    values[0, 5, 2] = 0.0
    with pytest.raises(ValueError, match="ratio.*> 0.*found 0.0"):
        paired_effects(long_table(values), True, scale="ratio")
    # a zero is fine on the difference scale
    paired_effects(long_table(values), True, n_boot=200)


def test_nan_items_count_only_where_finite_at_checkpoint_and_dense(base_values):
    values = base_values.copy()
    values[0, 0, 0] = np.nan        # dense undefined: item 0 drops out everywhere
    values[0, 1, 2] = np.nan        # undefined at checkpoint 2 only
    values[0, 2:, 3] = np.nan       # checkpoint 3: only items 0 and 1 left, and 0 is out
    eff = paired_effects(long_table(values), True, n_boot=200).set_index("iteration")
    assert eff["n"].tolist() == [39, 38, 1]
    keep = np.ones(40, bool)
    keep[[0, 1]] = False
    assert eff.loc[2, "effect"] == pytest.approx(np.mean(values[0, keep, 2] - values[0, keep, 0]))
    # fewer than 2 usable items: no effect, no test, and the family is the other two
    assert np.isnan(eff.loc[3, "effect"]) and np.isnan(eff.loc[3, "p_adj"]) and not eff.loc[3, "improved"]
    assert verdict(eff.reset_index())["n_checkpoints"] == 2
    # an item missing from the table altogether is the same as NaN
    table = long_table(values)
    dropped = paired_effects(table[table["value"].notna()], True, n_boot=200).set_index("iteration")
    pd.testing.assert_frame_equal(dropped, eff)


def test_two_seeds_average_and_add_the_between_run_spread(base_values):
    rng = np.random.default_rng(5)
    a = base_values[0]
    b = a + rng.normal(0, 0.05, a.shape)
    b[:, 0] = a[:, 0]                 # same dense evaluation, another training run of the pruned ones
    a2, b2 = a.copy(), b.copy()
    a2[:, 1] += 0.04                  # the runs disagree about checkpoint 1
    b2[:, 1] -= 0.04
    both = paired_effects(long_table(np.stack([a2, b2])), True, n_boot=1000).set_index("iteration")
    per = [paired_effects(long_table(v[None]), True, n_boot=1000).set_index("iteration") for v in (a2, b2)]
    assert both["n_seeds"].eq(2).all() and both["n"].tolist() == [80, 80, 80]
    np.testing.assert_allclose(both["effect"], (per[0]["effect"] + per[1]["effect"]) / 2, rtol=1e-12)
    widths = [e.loc[1, "ci_high"] - e.loc[1, "ci_low"] for e in (both, *per)]
    assert widths[0] > 1.5 * max(widths[1:])
    with pytest.raises(ValueError, match="seed 1 has no rows for iteration 3"):
        t = long_table(np.stack([a, b]))
        paired_effects(t[~((t.seed == 1) & (t.iteration == 3))], True)


def test_deterministic_given_seed(base_values):
    t = long_table(base_values)
    first, again, other = (paired_effects(t, True, n_boot=300, seed=s) for s in (1, 1, 2))
    pd.testing.assert_frame_equal(first, again)
    assert not first["ci_low"].equals(other["ci_low"])


@pytest.mark.parametrize("change, kwargs, message", [
    (lambda t: t.drop(columns="item"), {}, r"missing column\(s\) \['item'\]"),
    (lambda t: pd.concat([t, t.iloc[:1]]), {}, "duplicate"),
    (lambda t: t[t.iteration > 0], {}, "no dense model"),
    (lambda t: t[t.iteration == 0], {}, "at least one pruned checkpoint"),
    (lambda t: t, {"scale": "log"}, "scale: expected one of"),
    (lambda t: t, {"n_boot": 10}, "n_boot: expected an int >= 100"),
    (lambda t: t, {"alpha": 1.5}, r"alpha: expected a level in \(0, 1\)"),
])
def test_bad_input_is_named(base_values, change, kwargs, message):
    with pytest.raises(ValueError, match=message):
        paired_effects(change(long_table(base_values)), True, **kwargs)


def test_direction_must_be_a_bool(base_values):
    with pytest.raises(TypeError, match="higher_is_better: expected a bool"):
        paired_effects(long_table(base_values), "higher")


# ---- many series ---------------------------------------------------------------------------
MODEL = {"track": "synthetic", "arch": "resnet_s", "prune_method": "magnitude", "prunable_set": "all"}


def planted_series(rng, shift_at=None, **series):
    values = simulate("flat", 1, 4, rng)[0]
    if shift_at is not None:
        values[..., shift_at] += 8 * SE_DIFF
    return long_table(values, **{**MODEL, "study": "interpretability", "dataset": "voc",
                                 "method": "gradcam", **series})


def test_sweet_spots_over_many_series_and_summary():
    rng = np.random.default_rng(8)
    items = pd.concat([
        planted_series(rng, 2, metric="rma"),
        planted_series(rng, None, metric="rra"),
        planted_series(rng, None, method="rise", metric="deletion_auc"),
    ], ignore_index=True)
    # lower is better for deletion AUC: a drop at iteration 1 is its sweet spot
    items.loc[(items.metric == "deletion_auc") & (items.iteration == 1), "value"] -= 8 * SE_DIFF
    directions = {"rma": True, "rra": True, "deletion_auc": False}
    out = sweet_spots(items, directions, is_extension=lambda method, metric: method == "rise", n_boot=500)
    assert len(out.effects) == 12 and set(out.effects["metric"]) == set(directions)
    v = out.verdicts.set_index("metric")
    assert v.loc["rma", "sweet_spot"] and v.loc["rma", "iteration"] == 2
    assert not v.loc["rra", "sweet_spot"]
    assert v.loc["deletion_auc", "sweet_spot"] and v.loc["deletion_auc", "iteration"] == 1
    assert v.loc["deletion_auc", "extension"] and not v.loc["rma", "extension"]
    s = out.summary.set_index("kind")
    assert s.loc["paper", "n_series"] == 2 and s.loc["paper", "n_sweet_spots"] == 1
    assert s.loc["paper", "sweet_spot_sparsities"] == [pytest.approx(SPARSITY[2])]
    assert s.loc["extension", "n_sweet_spots"] == 1
    # the same with the direction as a callable
    same = sweet_spots(items, directions.__getitem__, is_extension=lambda m, x: m == "rise", n_boot=500)
    pd.testing.assert_frame_equal(same.verdicts, out.verdicts)


def test_sweet_spots_names_the_series_at_fault():
    rng = np.random.default_rng(9)
    items = planted_series(rng, None, metric="rma")
    with pytest.raises(ValueError, match="no direction for metric 'rma'"):
        sweet_spots(items, {"rra": True})
    with pytest.raises(ValueError, match="series .*'metric': 'rma'.*ratio"):
        sweet_spots(items.assign(value=items["value"] - 1), {"rma": True}, scale="ratio")


def test_control_comparison():
    rng = np.random.default_rng(10)
    magnitude = planted_series(rng, 2, metric="rma")
    random_same = planted_series(rng, 2, metric="rma", prune_method="random")
    random_none = planted_series(rng, None, metric="rma", prune_method="random")
    def eff(items):
        return sweet_spots(items, {"rma": True}, n_boot=500).effects

    treated = eff(magnitude)
    shown = compare_with_control(treated, eff(random_same)).set_index("iteration")
    assert shown.loc[2, "improved"] and shown.loc[2, "control_improved"] and shown.loc[2, "shown_by_control"]
    assert shown.loc[2, "control_sparsity"] == pytest.approx(SPARSITY[2])
    assert not shown.loc[1, "shown_by_control"]
    alone = compare_with_control(treated, eff(random_none)).set_index("iteration")
    assert alone.loc[2, "improved"] and not alone.loc[2, "control_improved"] and not alone.loc[2, "shown_by_control"]
    # another dataset, or sparsities too far apart, match nothing
    other = compare_with_control(treated, eff(random_same.assign(dataset="coco")))
    assert other["control_effect"].isna().all() and not other["shown_by_control"].any()
    shifted = eff(random_same)
    shifted["sparsity"] += 0.05
    assert compare_with_control(treated, shifted)["control_p_adj"].isna().all()


# ---- the direct paired test against the control ----------------------------------------------
def _pair(rng, n_ckpt: int, planted: float = 0.0, at: int = 2):
    """Treated and control series on the same items, with item effects shared by every checkpoint
    of both; the control's sparsities are the treated ones within rounding; ``planted`` standard
    errors added to the treated series at checkpoint ``at`` only."""
    item = rng.normal(0.5, 0.2, (1, N_ITEMS, 1))
    treated = item + rng.normal(0, SIGMA, (1, N_ITEMS, n_ckpt + 1))
    control = item + rng.normal(0, SIGMA, (1, N_ITEMS, n_ckpt + 1))
    treated[..., at] += planted * SE_DIFF
    c = long_table(control)
    c["sparsity"] += np.where(c["iteration"] > 0, 1e-4, 0)
    return long_table(treated), c


def test_versus_control_false_positive_rate_and_power():
    rng = np.random.default_rng(31)
    null = [versus_control(*_pair(rng, 5), True, n_boot=500, seed=r)["better"].any() for r in range(N_SERIES)]
    planted = [versus_control(*_pair(rng, 5, planted=3.5), True, n_boot=500, seed=r) for r in range(N_SERIES)]
    hit = np.mean([bool(v.loc[v["iteration"] == 2, "better"].iloc[0]) for v in planted])
    print(f"\nversus control, 5 matched checkpoints: false positives {np.mean(null):.3f}, power {hit:.3f}")
    assert np.mean(null) <= PER_SHAPE_MAX
    assert hit >= 0.80


def test_versus_control_hand_built_matching_and_effect():
    """Treated = control + 0.1 exactly on every item at sparsity 0.2; -0.1 at 0.36; the control
    has a checkpoint (0.5) the treated series lacks, and a seed (1) it lacks: both left out."""
    items = np.arange(20, dtype=float)
    t = pd.DataFrame([(0, it, sp, i, v + d) for it, sp, d in ((0, 0.0, 0), (1, 0.2, 0.1), (2, 0.36, -0.1))
                      for i, v in enumerate(items)], columns=["seed", "iteration", "sparsity", "item", "value"])
    c = pd.DataFrame([(s, it, sp, i, v) for s in (0, 1) for it, sp in ((0, 0.0), (1, 0.2), (2, 0.36), (3, 0.5))
                      for i, v in enumerate(items)], columns=["seed", "iteration", "sparsity", "item", "value"])
    v = versus_control(t, c, True, n_boot=200)
    assert v["sparsity"].tolist() == pytest.approx([0.2, 0.36]) and v["control_iteration"].tolist() == [1, 2]
    assert v["effect"].tolist() == pytest.approx([0.1, -0.1]) and v["n"].tolist() == [20, 20]
    assert v["better"].tolist() == [True, False] and (v["n_seeds"] == 1).all()
    assert versus_control(t, c, False, n_boot=200)["better"].tolist() == [False, True]   # lower is better
    far = c.assign(sparsity=c["sparsity"] + 0.05 * (c["iteration"] > 0))
    assert versus_control(t, far, True, n_boot=200).empty   # nothing within the tolerance
    with pytest.raises(ValueError, match="sparsity_tol"):
        versus_control(t, c, True, sparsity_tol=-1)


def test_analysis_pairs_every_magnitude_series_with_its_random_control():
    from sparsevis.analysis import stage

    rng = np.random.default_rng(5)
    series = dict(track="synthetic", arch="timm/sv_resnet_s", prunable_set=np.nan, study="alignment",
                  dataset="synthscenes-clean", method="model", metric="accuracy")
    t, c = _pair(rng, 3, planted=6.0, at=2)
    lone = long_table(rng.normal(0.5, 0.1, (1, N_ITEMS, 4)), **{**series, "dataset": "only-magnitude"},
                      prune_method="imp")
    items = pd.concat([t.assign(**series, prune_method="imp"), c.assign(**series, prune_method="random"), lone])
    out = stage._versus_controls(items, n_boot=200, alpha=0.05, seed=0)
    assert set(out["dataset"]) == {"synthscenes-clean"}   # a series without a control is left out
    assert (out["prune_method"] == "imp").all() and (out["control_method"] == "random").all()
    assert out["iteration"].tolist() == [1, 2, 3] and out["better"].tolist()[1]
