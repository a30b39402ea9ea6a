"""16-class decision mapping, model decisions, human reference numbers, model-vs-human
comparison and the raw-data CSV writer.

The real human data (shared copy, see test_mvh) checks the humans' pooled shape bias of 0.959;
the rest runs on constructed logits, tiny models and hand-made trial tables.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_mvh import SHARED, make_tiny_mvh, needs_shared  # noqa: E402

from sparsevis import alignment as al  # noqa: E402
from sparsevis.data import imagenet16 as i16  # noqa: E402
from sparsevis.data import mvh  # noqa: E402
from sparsevis.metrics import error_consistency, observed_consistency, shape_bias  # noqa: E402


# ----------------------------------------------------------------------------- 16-class mapping
# model-vs-human HumanCategories: number of ImageNet classes per category
BENCHMARK_SIZES = {"airplane": 1, "bear": 4, "bicycle": 2, "bird": 49, "boat": 5, "bottle": 7, "car": 3,
                   "cat": 6, "chair": 4, "clock": 3, "dog": 109, "elephant": 2, "keyboard": 2, "knife": 1,
                   "oven": 1, "truck": 8}


def test_category_lists():
    assert i16.CATEGORIES == tuple(sorted(BENCHMARK_SIZES))
    assert {c: len(ix) for c, ix in i16.IMAGENET_INDICES.items()} == BENCHMARK_SIZES
    all_ix = [i for c in i16.CATEGORIES for i in i16.IMAGENET_INDICES[c]]
    assert len(all_ix) == sum(BENCHMARK_SIZES.values()) == 207
    assert len(set(all_ix)) == 207  # disjoint, no repeats
    assert all(0 <= i < 1000 for i in all_ix)
    for c in i16.CATEGORIES:
        assert list(i16.IMAGENET_INDICES[c]) == sorted(i16.IMAGENET_INDICES[c])
    # spot checks against well-known ImageNet classes
    assert 404 in i16.IMAGENET_INDICES["airplane"]  # airliner
    assert 281 in i16.IMAGENET_INDICES["cat"]  # tabby
    assert 207 in i16.IMAGENET_INDICES["dog"]  # golden retriever


def test_aggregation_matrix():
    m = i16.aggregation_matrix(torch.float64)
    assert m.shape == (1000, 16)
    torch.testing.assert_close(m.sum(0), torch.ones(16, dtype=torch.float64))
    assert int((m.sum(1) > 0).sum()) == 207
    assert ((m > 0).sum(1) <= 1).all()


def test_logit_spike_gives_its_category():
    rows, expected = [], []
    for k, c in enumerate(i16.CATEGORIES):
        for i in i16.IMAGENET_INDICES[c]:
            row = torch.zeros(1000)
            row[i] = 12.0
            rows.append(row)
            expected.append(k)
    probs = i16.decision_from_logits(torch.stack(rows))
    assert probs.shape == (207, 16)
    assert i16.decide(probs).tolist() == expected
    assert i16.category_names(i16.decide(probs)[:2]) == ["airplane", "bear"]


def test_mapping_matches_loop_reference():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 1000, generator=g, dtype=torch.float64) * 3
    p = torch.softmax(logits, 1)
    ref = torch.stack([p[:, list(i16.IMAGENET_INDICES[c])].mean(1) for c in i16.CATEGORIES], 1)
    torch.testing.assert_close(i16.decision_from_logits(logits), ref)
    torch.testing.assert_close(i16.decision_from_logits(logits.float()), ref.float(), atol=1e-7, rtol=1e-5)
    flat = i16.decision_from_logits(torch.zeros(2, 1000))
    torch.testing.assert_close(flat, torch.full((2, 16), 1e-3))
    with pytest.raises(ValueError, match=r"\(B, 1000\)"):
        i16.decision_from_logits(torch.zeros(2, 10))
    with pytest.raises(ValueError, match=r"\(B, 16\)"):
        i16.decide(torch.zeros(2, 10))


# ----------------------------------------------------------------------------- model decisions
class SpikeByBrightness(torch.nn.Module):
    """Logit spike at the first ImageNet class of category (mean pixel value -> bucket)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.first = torch.tensor([i16.IMAGENET_INDICES[c][0] for c in i16.CATEGORIES])

    def forward(self, x):
        assert not torch.is_grad_enabled() and not self.training
        bright = x.mean(dim=(1, 2, 3))
        k = ((bright + 2.2) * 4).long().clamp(0, 15)
        out = torch.zeros(x.shape[0], 1000)
        out[torch.arange(x.shape[0]), self.first[k]] = 10.0 * self.w
        return out


def test_model_decisions_on_fixture(tmp_path):
    make_tiny_mvh(tmp_path)
    model = SpikeByBrightness().train()
    dec = al.model_decisions(model, "cue-conflict", device="cpu", batch_size=3, root=tmp_path, progress=False)
    assert model.training  # flag restored
    ds = mvh.MVHImages("cue-conflict", tmp_path)
    with torch.inference_mode():
        model.eval()
        ref = [i16.CATEGORIES[int(i16.decide(i16.decision_from_logits(model(ds[k][0][None]))))]
               for k in range(len(ds))]
    assert dec["decision"].tolist() == ref
    assert dec["index"].tolist() == [0, 1, 2, 3]
    assert dec["filename"].tolist() == ds.images["filename"].tolist()
    assert dec["correct"].tolist() == [d == c for d, c in zip(ref, ds.images["category"])]
    assert [c for c in dec.columns if c.startswith("p_")] == [f"p_{c}" for c in i16.CATEGORIES]
    assert "path" not in dec.columns  # no absolute paths in results
    dec1 = al.model_decisions(model, "cue-conflict", device="cpu", batch_size=1, root=tmp_path, progress=False)
    pd.testing.assert_frame_equal(dec, dec1)


def test_model_decisions_own_classes():
    x = torch.zeros(5, 2, 4, 4)
    x[:, 1] = torch.arange(5).float()[:, None, None]
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(3))
    model(x)
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([0.0, 1.0, 2.5]))
        model[1].weight[0, 16:] = 1 / 16  # logit of class 0 = the value of channel 1
    meta = pd.DataFrame({"image": [f"im{k}" for k in range(5)], "category": ["a", "b", "c", "a", "a"]})
    dec = al.model_decisions(model, torch.utils.data.TensorDataset(x), device="cpu", batch_size=2,
                             mapping="softmax", categories=["a", "b", "c"], meta=meta, progress=False)
    assert dec["decision"].tolist() == ["c", "c", "c", "a", "a"]
    assert dec["correct"].tolist() == [False, False, True, True, True]
    np.testing.assert_allclose(dec[["p_a", "p_b", "p_c"]].sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="mapping="):
        al.model_decisions(model, torch.utils.data.TensorDataset(x), device="cpu", mapping="max")


# ----------------------------------------------------------------------------- human reference
def _trials(rows) -> pd.DataFrame:
    """rows: (subj, index, category, texture, response)."""
    df = pd.DataFrame(rows, columns=["subj", "index", "category", "texture", "response"])
    df["dataset"] = "cue-conflict"
    df["condition"] = "0"
    df["image"] = [f"img{k}.png" for k in df["index"]]
    df["correct"] = df["response"] == df["category"]
    return df


SHAPES = ["cat", "dog", "car", "bird", "boat", "cat"]
TEXTURES = ["dog", "cat", "car", "clock", "bear", "knife"]  # image 2 has no conflict
RESP = {"s1": ["cat", "cat", "car", "bird", "na", "knife"],
        "s2": ["cat", "dog", "truck", "clock", "boat"]}  # s2 did not see image 5


def _toy_trials() -> pd.DataFrame:
    return _trials([(s, k, SHAPES[k], TEXTURES[k], r) for s, resp in RESP.items() for k, r in enumerate(resp)])


def test_human_reference_toy():
    ref = al.human_reference(_toy_trials())
    get = lambda m, s, o="": ref[(ref.metric == m) & (ref.subj == s) & (ref.other == o)]["value"].item()  # noqa: E731
    assert get("accuracy", "s1") == pytest.approx(3 / 6)
    assert get("accuracy", "s2") == pytest.approx(3 / 5)
    assert get("accuracy", "mean") == pytest.approx((3 / 6 + 3 / 5) / 2)
    # shape bias: s1 conflict trials -> shape on 0, 3; texture on 1, 5 -> 2/4; s2 -> shape 0, 1, 4; texture 3 -> 3/4
    assert get("shape_bias", "s1") == pytest.approx(2 / 4)
    assert get("shape_bias", "s2") == pytest.approx(3 / 4)
    assert get("shape_bias", "pooled") == pytest.approx(5 / 8)  # counted together, not the mean 0.625 by luck
    assert ref[(ref.metric == "shape_bias") & (ref.subj == "pooled")]["n"].item() == 8
    # consistency on the 5 images both saw
    c1 = np.array([True, False, True, True, False])
    c2 = np.array([True, True, False, False, True])
    assert get("error_consistency", "s1", "s2") == pytest.approx(error_consistency(c1, c2))
    assert get("observed_consistency", "s1", "s2") == pytest.approx(observed_consistency(c1, c2))
    assert ref[(ref.metric == "error_consistency") & (ref.other == "s2")]["n"].item() == 5
    assert get("error_consistency", "mean") == pytest.approx(error_consistency(c1, c2))


def test_shape_bias_pooled_differs_from_mean():
    t = _trials([("a", 0, "cat", "dog", "cat"), ("b", 0, "cat", "dog", "dog"), ("b", 1, "car", "bird", "bird"),
                 ("b", 2, "bear", "boat", "boat")])
    ref = al.human_reference(t)
    sb = ref[ref.metric == "shape_bias"].set_index("subj")["value"]
    assert sb["a"] == 1.0 and sb["b"] == 0.0 and sb["pooled"] == pytest.approx(1 / 4)


def test_repeated_trials_rejected():
    t = _toy_trials()
    t = pd.concat([t, t.iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match="repeated trials"):
        al.human_reference(t)


@needs_shared
def test_human_reference_shared():
    trials = pd.concat([mvh.load_trials(d, SHARED) for d in mvh.LOCAL_DATASETS], ignore_index=True)
    ref = al.human_reference(trials)
    pooled = ref[(ref.dataset == "cue-conflict") & (ref.metric == "shape_bias") & (ref.subj == "pooled")]
    assert round(pooled["value"].item(), 3) == 0.959
    # independent count straight from the trial table
    cc = trials[(trials.dataset == "cue-conflict") & (trials.category != trials.texture)]
    n_shape = int((cc.response == cc.category).sum())
    n_texture = int((cc.response == cc.texture).sum())
    assert pooled["value"].item() == pytest.approx(n_shape / (n_shape + n_texture))
    per_obs = ref[(ref.metric == "shape_bias") & ~ref.subj.isin(["pooled"])]
    assert len(per_obs) == 10 and per_obs["value"].between(0.9, 1.0).all()
    for d in mvh.LOCAL_DATASETS:
        r = ref[ref.dataset == d]
        acc = r[(r.metric == "accuracy") & (r.subj != "mean")]["value"]
        assert len(acc) == 10
        assert r[(r.metric == "accuracy") & (r.subj == "mean")]["value"].item() == pytest.approx(acc.mean())
        ec = r[(r.metric == "error_consistency") & (r.other != "")]
        assert len(ec) == 45 and (ec["n"] == ec["n"].iloc[0]).all()
        ec_mean = r[(r.metric == "error_consistency") & (r.subj == "mean")]["value"].item()
        assert 0.1 < ec_mean < 0.8 and ec_mean == pytest.approx(ec["value"].mean())


# ----------------------------------------------------------------------------- comparison
def _decisions(responses, dataset="cue-conflict"):
    return pd.DataFrame({"dataset": dataset, "index": range(len(responses)), "decision": responses})


def test_compare_toy():
    trials = _toy_trials()
    model = ["cat", "cat", "car", "bird", "bear", "knife"]  # s1's answers, with "na" -> wrong answer
    res = al.compare_to_humans(_decisions(model), trials, reference=_decisions(model), n_boot=200, seed=1,
                               progress=False)
    get = lambda m, a, s: res[(res.metric == m) & (res.against == a) & (res.subj == s)].iloc[0]  # noqa: E731
    assert get("accuracy", "model", "")["value"] == pytest.approx(3 / 6)
    assert get("error_consistency", "humans", "s1")["value"] == pytest.approx(1.0)
    assert get("observed_consistency", "humans", "s1")["value"] == pytest.approx(1.0)
    assert get("accuracy_difference", "humans", "s1")["value"] == pytest.approx(0.0)
    mc = np.array([True, False, True, True, False])
    c2 = np.array([True, True, False, False, True])
    assert get("error_consistency", "humans", "s2")["value"] == pytest.approx(error_consistency(mc, c2))
    assert get("accuracy_difference", "humans", "s2")["value"] == pytest.approx((3 / 5 - 3 / 5) ** 2)
    mean = get("error_consistency", "humans", "mean")
    assert mean["value"] == pytest.approx((1.0 + error_consistency(mc, c2)) / 2)
    assert mean["n"] == 6 and mean["n_observers"] == 2
    assert mean["ci_low"] <= mean["value"] <= mean["ci_high"]
    sb = get("shape_bias", "model", "")
    assert sb["value"] == pytest.approx(shape_bias(np.array(model), np.array(SHAPES), np.array(TEXTURES)))
    assert get("error_consistency", "reference", "reference")["value"] == pytest.approx(1.0)
    again = al.compare_to_humans(_decisions(model), trials, reference=_decisions(model), n_boot=200, seed=1,
                                 progress=False)
    pd.testing.assert_frame_equal(res, again)
    no_ci = al.compare_to_humans(_decisions(model), trials, n_boot=0, per_observer=False, progress=False)
    assert no_ci["ci_low"].isna().all() and set(no_ci["subj"]) <= {"", "mean"}
    assert not (no_ci["against"] == "reference").any()


def test_compare_missing_decisions():
    with pytest.raises(ValueError, match="no decision for 1 image"):
        al.compare_to_humans(_decisions(["cat"] * 5), _toy_trials(), n_boot=0, progress=False)
    res = al.compare_to_humans(_decisions(["cat"] * 5), _toy_trials(), n_boot=0, allow_missing=True,
                               progress=False)
    assert res[res.metric == "accuracy"]["n"].item() == 5


@needs_shared
def test_compare_shared_shape_and_texture_models():
    trials = mvh.load_trials("cue-conflict", SHARED)
    images = mvh.load_images("cue-conflict", SHARED)
    shape_model = images.assign(decision=images["category"])[["dataset", "index", "decision"]]
    texture_model = images.assign(decision=images["texture"])[["dataset", "index", "decision"]]
    res = al.compare_to_humans(shape_model, trials, reference=texture_model, n_boot=50, per_observer=False,
                               progress=False)
    get = lambda m, a: res[(res.metric == m) & (res.against == a)]["value"].item()  # noqa: E731
    assert get("shape_bias", "model") == 1.0 and get("accuracy", "model") == 1.0
    # an always-correct model agrees with an observer exactly as often as expected from the
    # accuracies alone: kappa 0; observed consistency = human accuracy
    assert get("error_consistency", "humans") == pytest.approx(0.0, abs=1e-12)
    assert get("observed_consistency", "humans") == pytest.approx(trials.groupby("subj")["correct"].mean().mean())
    res_t = al.compare_to_humans(texture_model, trials, n_boot=50, per_observer=False, progress=False)
    assert res_t[res_t.metric == "shape_bias"]["value"].item() == 0.0
    assert res_t[res_t.metric == "accuracy"]["value"].item() == pytest.approx(80 / 1280)


# ----------------------------------------------------------------------------- raw-data CSV
def test_write_raw_csv_roundtrip(tmp_path):
    make_tiny_mvh(tmp_path)
    images = mvh.load_images("cue-conflict", tmp_path)
    dec = images.drop(columns=["path"]).assign(decision=["bird", "clock", "cat", "truck"])
    out = tmp_path / "results"
    (path,) = al.write_raw_csv(dec, "mobilenet_v2_s0.5", out)
    assert path == out / "cue-conflict" / "cue-conflict_mobilenet-v2-s0.5_session-1.csv"
    lines = path.read_text().splitlines()
    assert lines[0] == "subj,session,trial,rt,object_response,category,condition,imagename"
    assert lines[1] == "mobilenet_v2_s0.5,1,1,NaN,bird,bird,0,bird3-bird2.png"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # atomic: no temp file left
    back = mvh.load_trials("cue-conflict", tmp_path, raw_dir=path.parent)
    assert back["response"].tolist() == ["bird", "clock", "cat", "truck"]
    assert back["index"].tolist() == [0, 1, 2, 3] and back["trial"].tolist() == [1, 2, 3, 4]
    assert back["rt"].isna().all() and (back["subj"] == "mobilenet_v2_s0.5").all()
    with pytest.raises(ValueError, match="decision"):
        al.write_raw_csv(dec.drop(columns=["decision"]), "m", out)


# ---- model-vs-human benchmark aggregates ---------------------------------------------------

def _cmp_rows(rows):
    """A compare_to_humans-like table from (dataset, condition, metric, against, subj, value, n)."""
    return pd.DataFrame([dict(dataset=d, condition=c, metric=m, against=a, subj=s, value=v, ci_low=np.nan,
                              ci_high=np.nan, n=n, n_observers=0 if a == "model" else 1)
                         for d, c, m, a, s, v, n in rows], columns=list(al.COMPARISON_COLUMNS))


def test_benchmark_aggregates_hand_built():
    rows = [
        # contrast: c100 (control) and c01 (humans at chance) are excluded; c50 and c10 kept
        ("contrast", "c100", "accuracy", "model", "", 1.0, 10),
        ("contrast", "c50", "accuracy", "model", "", 0.8, 10),
        ("contrast", "c10", "accuracy", "model", "", 0.5, 30),
        ("contrast", "c01", "accuracy", "model", "", 0.0, 10),
        ("contrast", "c50", "error_consistency", "humans", "s1", 0.2, 10),
        ("contrast", "c50", "error_consistency", "humans", "s2", 0.4, 10),
        ("contrast", "c10", "error_consistency", "humans", "s1", 0.6, 30),
        ("contrast", "c10", "error_consistency", "humans", "s2", np.nan, 30),   # undefined kappa
        ("contrast", "c10", "error_consistency", "humans", "mean", 0.6, 30),   # ignored: per observer
        ("contrast", "c01", "error_consistency", "humans", "s1", -1.0, 10),
        ("edge", "0", "accuracy", "model", "", 0.25, 160),                      # single condition
        ("edge", "0", "error_consistency", "humans", "s1", 0.1, 160),
        ("edge", "0", "shape_bias", "model", "", 0.3, 160),                     # no aggregate
    ]
    agg = al.benchmark_aggregates(_cmp_rows(rows))
    assert list(agg.columns) == list(al.COMPARISON_COLUMNS) and (agg["condition"] == "benchmark").all()
    get = lambda d, m: agg[(agg.dataset == d) & (agg.metric == m)].iloc[0]  # noqa: E731
    acc = get("contrast", "accuracy")
    assert acc["value"] == pytest.approx((0.8 * 10 + 0.5 * 30) / 40) and acc["n"] == 40   # pooled trials
    ec = get("contrast", "error_consistency")
    # s1: mean(0.2, 0.6) = 0.4; s2: mean(0.4) = 0.4 (NaN condition left out); over observers 0.4
    assert ec["value"] == pytest.approx(0.4) and ec["n_observers"] == 2 and ec["subj"] == "mean"
    assert get("edge", "accuracy")["value"] == pytest.approx(0.25)
    assert get("all", "accuracy")["value"] == pytest.approx(((0.8 * 10 + 0.5 * 30) / 40 + 0.25) / 2)
    assert get("all", "accuracy")["n"] == 2
    assert get("all", "error_consistency")["value"] == pytest.approx((0.4 + 0.1) / 2)
    assert "shape_bias" not in set(agg["metric"]) and agg["ci_low"].isna().all()


def test_benchmark_aggregates_exclusions_match_model_vs_human():
    assert set(al.EXCLUDED_CONDITIONS) == set(mvh.NOISE_DATASETS)
    for ds, conds in al.EXCLUDED_CONDITIONS.items():
        assert set(conds) <= set(mvh.CONDITIONS[ds]), ds
    assert al.EXCLUDED_CONDITIONS["eidolonIII"] == ("1-0-10", "16-0-10", "32-0-10", "64-0-10", "128-0-10")
    with pytest.raises(ValueError, match="per-observer error_consistency rows for edge"):
        al.benchmark_aggregates(_cmp_rows([("edge", "0", "error_consistency", "humans", "mean", 0.1, 160)]))
    with pytest.raises(ValueError, match="comparison: missing column"):
        al.benchmark_aggregates(pd.DataFrame({"dataset": ["edge"]}))


def test_benchmark_aggregates_on_compare_output():
    trials = _toy_trials()
    model = ["cat", "cat", "car", "bird", "bear", "knife"]
    res = al.compare_to_humans(_decisions(model), trials, n_boot=0, progress=False)
    agg = al.benchmark_aggregates(res)
    one = agg[agg.dataset != "all"]
    for metric in ("accuracy", "error_consistency", "observed_consistency", "accuracy_difference"):
        want = res[(res.metric == metric) & (res.subj.isin(["", "mean"]))]["value"].iloc[0]
        assert one[one.metric == metric]["value"].iloc[0] == pytest.approx(want), metric


def test_write_raw_csv_one_file_per_session(tmp_path):
    """model-vs-human's ResultPrinter: a file per session, trials numbered within each."""
    dec = pd.DataFrame(dict(index=[0, 1, 2], dataset="contrast", session=[1, 2, 2], condition=["c50", "c10", "c50"],
                            category=["cat", "dog", "car"], decision=["cat", "cat", "car"],
                            filename=["0001_cop_dnn_c50_cat_00_x.png", "0001_cop_dnn_c10_dog_00_y.png",
                                      "0002_cop_dnn_c50_car_00_z.png"]))
    paths = al.write_raw_csv(dec, "resnet_50", tmp_path)
    assert [p.name for p in paths] == ["contrast_resnet-50_session-1.csv", "contrast_resnet-50_session-2.csv"]
    assert paths[1].read_text().splitlines() == [
        "subj,session,trial,rt,object_response,category,condition,imagename",
        "resnet_50,2,1,NaN,cat,dog,c10,0001_cop_dnn_c10_dog_00_y.png",
        "resnet_50,2,2,NaN,car,car,c50,0002_cop_dnn_c50_car_00_z.png"]


@pytest.mark.parametrize("name", ["accuracy_difference", "observed_consistency", "error_consistency"])
def test_observer_mean_statistic_and_its_batched_bootstrap(name):
    """The mean over observers that compare_to_humans bootstraps, against a plain loop over
    observers (each on the images it saw); its batched replicates against the loop over
    replicates with the same resamples."""
    from sparsevis.metrics import accuracy_difference
    from sparsevis.stats import bootstrap_ci_paired

    metric = {"accuracy_difference": accuracy_difference, "observed_consistency": observed_consistency,
              "error_consistency": error_consistency}[name]

    def reference(model_correct, human):
        values = []
        for j in range(human.shape[1]):
            seen = ~np.isnan(human[:, j])
            if seen.any():
                values.append(metric(model_correct[seen], human[seen, j].astype(bool)))
        values = [v for v in values if not np.isnan(v)]
        return float(np.mean(values)) if values else float("nan")

    rng = np.random.default_rng(3)
    model_correct = rng.random(60) < 0.7
    human = np.where(rng.random((60, 5)) < 0.8, (rng.random((60, 5)) < 0.75).astype(float), np.nan)
    human[:, 4] = np.nan                     # an observer who saw nothing
    human[:, 3] = np.where(np.isnan(human[:, 3]), np.nan, 1.0)   # one always right: kappa NaN on some resamples
    stat = al._OverObservers(al._FROM_RATES[name])
    assert stat(model_correct, human) == pytest.approx(reference(model_correct, human), abs=1e-12)
    loop = bootstrap_ci_paired(model_correct, human, statistic=reference, n_boot=300, seed=2)
    fast = bootstrap_ci_paired(model_correct, human, statistic=stat, n_boot=300, seed=2, batched=stat.batched)
    assert fast.n_boot == loop.n_boot and fast.n == loop.n
    for got, want in zip(fast, loop):
        assert got == pytest.approx(want, abs=1e-12)
    # one observer who saw every image (the reference model): the metric itself
    other = rng.random(60) < 0.6
    assert stat(model_correct, other) == pytest.approx(metric(model_correct, other), abs=1e-12)
