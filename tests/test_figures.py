"""Each chapter's figure functions (sparsevis.figures) and the shared drawing primitives
(sparsevis.plotting) on small hand-built data: what is drawn, labelled and where."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib import colormaps  # noqa: E402

from sparsevis import plotting  # noqa: E402
from sparsevis.figures import explorer as fx  # noqa: E402
from sparsevis.figures import interpretability as fi  # noqa: E402
from sparsevis.figures import object_discovery as fd  # noqa: E402
from sparsevis.figures import pruning as fp  # noqa: E402
from sparsevis.figures import sweet_spots as fs  # noqa: E402

SPARSITIES = (0.0, 0.5, 0.75)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _row(**kw):
    base = dict(track="synthetic", profile="tiny", dataset="synthscenes", n=8, ci_low=np.nan,
                ci_high=np.nan, n_params=2e6, run_id="r1", iteration=0)
    return {**base, **kw}


def _accuracy(models=("sv_resnet_s", "sv_vit_t"), track="synthetic", dataset="synthscenes"):
    return [_row(study="prune", metric="accuracy", method="", model=m, track=track, dataset=dataset,
                 arch=f"timm/{m}", sparsity=s, iteration=k, value=0.9 - 0.2 * s, ci_low=0.8 - 0.2 * s,
                 ci_high=0.95 - 0.2 * s) for m in models for k, s in enumerate(SPARSITIES)]


def _legend_labels(fig):
    return [t.get_text() for leg in fig.legends for t in leg.get_texts()]


# ------------------------------------------------------------------ plotting primitives
def _render(draw, size=100):
    fig = plt.figure(figsize=(1, 1), dpi=size)
    ax = fig.add_axes([0, 0, 1, 1])
    draw(ax)
    ax.set_axis_off()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float)


def test_overlay_pixels_are_the_map_blended_over_the_grey_image():
    img = np.full((4, 4, 3), 255, np.uint8)            # white: grey copy 255
    amap = np.zeros((4, 4))
    amap[:, 2:] = 10.0                                 # right half at the map's peak
    px = _render(lambda ax: plotting.overlay(ax, img, amap))
    # independent reference: alpha compositing of the colormap's end colours over white
    lo = np.asarray(colormaps["inferno"](0.0)[:3]) * 255
    hi = np.asarray(colormaps["inferno"](1.0)[:3]) * 255
    expect_left = 0.15 * lo + 0.85 * 255               # opacity 0.15 where the map is 0
    np.testing.assert_allclose(px[50, 20], expect_left, atol=2)
    np.testing.assert_allclose(px[50, 80], hi, atol=2)   # opaque at the peak


def test_overlay_half_way_up_the_map_on_a_grey_image():
    img = np.full((4, 4, 3), 100, np.uint8)
    amap = np.zeros((4, 4))
    amap[:, 1:3], amap[:, 3:] = 5.0, 10.0               # 0, half the peak, the peak
    px = _render(lambda ax: plotting.overlay(ax, img, amap))
    mid = np.asarray(colormaps["inferno"](0.5)[:3]) * 255
    alpha = 0.15 + 0.85 * 0.5
    np.testing.assert_allclose(px[50, 50], alpha * mid + (1 - alpha) * 100, atol=2)


def test_heat_scale_uses_the_995th_percentile():
    amap = np.arange(1000, dtype=float)
    peak = sorted(amap)[0] + 0.995 * 999                # linear interpolation of the percentile
    m = plotting.heat_scale(amap)
    assert m[500] == pytest.approx(500 / peak)
    assert m[999] == 1.0 and m[0] == 0.0
    assert not plotting.heat_scale(np.zeros((3, 3))).any()


def test_box_and_outline():
    fig, ax = plt.subplots()
    r = plotting.box(ax, torch.tensor([1, 2, 5, 10]), ec="red")
    assert (r.get_x(), r.get_y(), r.get_width(), r.get_height()) == (1, 2, 4, 8)
    assert not r.get_fill()
    assert plotting.box(ax, (0, 0, 1, 1), fill=True, fc="pink").get_fill()
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True
    n = len(ax.collections)
    plotting.outline(ax, mask)
    assert len(ax.collections) > n


def test_accuracy_twin_labels_only_where_asked():
    acc = pd.DataFrame(_accuracy(("m",)))
    fig, axes = plt.subplots(1, 2)
    plotting.accuracy_twin(axes[0], acc, labelled=False)
    plotting.accuracy_twin(axes[1], acc, labelled=True)
    twins = fig.axes[2:]
    assert [t.get_ylim() for t in twins] == [(0, 1.05), (0, 1.05)]
    assert [t.get_ylabel() for t in twins] == ["", "accuracy"]
    assert len(twins[1].lines[0].get_xdata()) == len(SPARSITIES)
    assert axes[0].get_zorder() > twins[0].get_zorder()


def test_study_examples_in_iteration_order(tmp_path):
    torch.save({"display": torch.zeros(1, 3, 4, 4)}, tmp_path / "images.pt")
    for it in (2, 0, 1):
        torch.save({"iteration": it}, tmp_path / f"iter-{it:02d}.examples.pt")
    imgs, iters = plotting.study_examples(tmp_path)
    assert [e["iteration"] for e in iters] == [0, 1, 2]
    assert plotting.example_image(imgs, 0).shape == (4, 4, 3)


# ------------------------------------------------------------------ pruning
def test_pruning_accuracy_one_panel_per_track_one_line_per_model():
    acc = pd.DataFrame(_accuracy() + _accuracy(("mobilenet_v2",), track="real", dataset="cue-conflict"))
    fig = fp.accuracy_figure(acc)
    assert len(fig.axes) == 2
    syn, real = fig.axes
    assert syn.get_title() == "synthetic · synthscenes" and real.get_title() == "real · cue-conflict"
    assert [t.get_text() for t in syn.get_legend().get_texts()] == ["sv_resnet_s", "sv_vit_t"]
    chance = [ln for ln in syn.lines if ln.get_linestyle() == "--"]
    assert [tuple(ln.get_ydata()) for ln in chance] == [(0.1, 0.1)]     # 10 classes
    assert any(tuple(ln.get_ydata()) == (1 / 16, 1 / 16) for ln in real.lines)


def test_layer_sparsity_one_panel_per_run_and_bnrecal_left_out(monkeypatch):
    def rep(n_layers):
        return pd.DataFrame([dict(name=f"l{k}.weight", iteration=i, sparsity=s, overall=s)
                             for i, s in enumerate(SPARSITIES) for k in range(n_layers)])

    monkeypatch.setattr(fp.reports, "layer_sparsity", lambda d: rep(3 if "a" in str(d) else 5))
    layers = fp.layer_reports({"run-a": "a", "run-b": "b", "run-b-bnrecal": "c", "other-bnrecal": "a"})
    assert list(layers) == ["run-a", "run-b", "other-bnrecal"]
    fig = fp.layer_sparsity_figure(layers)
    panels = [ax for ax in fig.axes if ax.get_title(loc="left")]
    assert [ax.get_title(loc="left") for ax in panels] == ["run-a", "run-b", "other-bnrecal"]
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["l0", "l1", "l2"]
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["0 %", "50 %", "75 %"]
    assert len(fig.axes) == 4                            # three panels and the colour bar


def test_presets_bars_and_labels():
    shares = pd.DataFrame([dict(model=f"{m} (1.00 M)", preset=p, share=v) for m in ("a", "b")
                           for p, v in zip(fp.PRESETS, (1.0, 0.9, 0.5))])
    fig = fp.presets_figure(shares)
    ax = fig.axes[0]
    assert len(ax.patches) == 6
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(fp.PRESETS)
    assert sorted(round(p.get_width(), 6) for p in ax.patches) == [50, 50, 90, 90, 100, 100]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a (1.00 M)", "b (1.00 M)"]


# ------------------------------------------------------------------ interpretability
def _interp_rows():
    rows = _accuracy()
    for m in ("sv_resnet_s", "sv_vit_t"):
        for method in ("gradcam", "gradient", "ig_smoothgrad[n_steps=4]"):
            for metric in ("relevance_mass_accuracy", "relevance_rank_accuracy", "degenerate_maps"):
                rows += [_row(study="interpretability", metric=metric, method=method, model=m,
                              arch=f"timm/{m}", sparsity=s, value=0.3) for s in SPARSITIES]
    return pd.DataFrame(rows)


def test_method_names_from_the_registry():
    assert fi.method_label("ig_smoothgrad[n_steps=4]") == "IG-SmoothGrad (n_steps=4)"
    assert fi.method_label("gradient") == "gradient (extension)"
    assert fi.methods_in(fi.study_rows(_interp_rows())) == ["ig_smoothgrad[n_steps=4]", "gradcam", "gradient"]
    assert list(fi.study_rows(_interp_rows(), methods="ig_smoothgrad")["method"].unique()) == [
        "ig_smoothgrad[n_steps=4]"]


def test_interpretability_curves_panels_lines_legend():
    df = _interp_rows()
    fig = fi.curves_figure(df, "synthetic", "tiny")
    assert len(fig.axes) == 8                            # 2 metrics x 2 models, each with its twin
    assert [fig.axes[0].get_ylabel(), fig.axes[2].get_ylabel()] == ["RMA", "RRA"]
    assert fig.axes[0].get_title() == "sv_resnet_s\n2.00 M params"
    assert len([ln for ln in fig.axes[0].lines if ln.get_marker() == "o"]) == 3      # one per method
    assert _legend_labels(fig) == ["IG-SmoothGrad (n_steps=4)", "Grad-CAM", "gradient (extension)",
                                   "test accuracy (synthscenes)"]
    assert "synthetic track · profile tiny" in fig._suptitle.get_text()


def test_flat_maps_table():
    table = fi.flat_maps_table(_interp_rows(), methods=["gradcam"])
    assert list(table.columns) == ["0 %", "50 %", "75 %"]
    assert set(table.values.ravel()) == {"30%"}
    assert table.index.get_level_values("method").unique().tolist() == ["Grad-CAM"]
    assert fi.flat_maps_table(_interp_rows()[lambda d: d.metric != "degenerate_maps"]).empty
    # another model at other sparsities (the real track's one-shot levels): columns in order, a dash
    # where a model has no checkpoint (was "nan%")
    other = _interp_rows()[lambda d: (d.model == "sv_resnet_s") & (d.sparsity > 0)].assign(
        model="mobilenet_v2", sparsity=lambda d: d.sparsity - 0.3)
    table = fi.flat_maps_table(pd.concat([_interp_rows(), other]), methods=["gradcam"])
    assert list(table.columns) == ["0 %", "20 %", "45 %", "50 %", "75 %"]
    assert table.loc[("synthetic", "mobilenet_v2", "Grad-CAM")].tolist() == ["–", "30%", "30%", "–", "–"]
    assert "nan" not in " ".join(table.values.ravel())


def test_model_panels_wrap_at_four_columns():
    panels = plotting.model_panels(3, 6, 2.0, sharey="row")
    assert panels.axes.shape == (6, 4) and panels.cols == 4
    assert panels.ax(2, 5) is panels.axes[5, 1] and panels.ax(0, 3) is panels.axes[0, 3]
    assert [panels.first_column(j) for j in range(6)] == [True, False, False, False, True, False]
    assert [panels.last_column(j, 6) for j in range(6)] == [False, False, False, True, False, True]
    hidden = [ax for ax in panels.fig.axes if not ax.get_visible()]
    assert len(hidden) == 6 and panels.ax(0, 6) in hidden        # the empty places of the last block
    assert plotting.model_panels(2, 3, 2.0).axes.shape == (2, 3)    # few models: one block


def _examples(n=5, hw=(8, 8), datasets=None):
    imgs = {"display": torch.randint(0, 255, (n, 3, *hw), dtype=torch.uint8),
            "masks": torch.zeros(n, *hw, dtype=torch.bool), "ids": [f"img{k}" for k in range(n)],
            "boxes": [torch.tensor([[1.0, 1.0, 5.0, 6.0]]) for _ in range(n)],
            "datasets": datasets or ["synthscenes"] * n}
    imgs["masks"][:, 2:6, 2:6] = True
    h, w = hw[0] // 4, hw[1] // 4
    iters = [{"iteration": k, "sparsity": s, "maps": {"gradcam": torch.rand(n, *hw), "gradient": torch.rand(n, *hw)},
              "lost_boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0]] * n), "tokencut_boxes": torch.tensor([[4.0, 4.0, 8.0, 8.0]] * n),
              "grid": [(h, w)] * n, "stride": 4, "seed": torch.tensor([3] * n),
              "degree": torch.arange(h * w, dtype=torch.float).repeat(n, 1) * (k + 1),
              "score_map": torch.randn(n, h, w)} for k, s in enumerate(SPARSITIES)]
    return imgs, iters


def test_heatmap_grid_and_slider_frame():
    imgs, iters = _examples()
    fig = fi.heatmap_grid(imgs, iters, "gradcam", "title")
    assert len(fig.axes) == fi.N_ROWS * (1 + len(SPARSITIES))
    assert [ax.get_title() for ax in fig.axes[:4]] == ["image", "0 %", "50 %", "75 %"]
    assert all(len(ax.images) == 2 for ax in fig.axes[1:4])   # grey image and the map over it
    frame = fi.maps_frame(imgs, iters[1], ["gradcam", "gradient"], "t")
    assert len(frame.axes) == 2 * 5                           # 5 images (< N_COLS), 2 methods
    assert frame.axes[5].get_ylabel() == "gradient\n(extension)"
    # the slider's frames come from one figure whose maps change: each one as drawn afresh
    import io

    from PIL import Image

    def pixels(data):
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)

    titles = ["t"] * len(iters)
    frames = fi.maps_frames(imgs, iters, ["gradcam", "gradient"], titles)
    assert len(frames) == len(iters) and len(set(frames)) == len(iters)
    for it, data in zip(iters, frames):
        fresh = plotting.encode(fi.maps_frame(imgs, it, ["gradcam", "gradient"], "t"), plotting.SLIDER_DPI)[1]
        assert pixels(data).shape == pixels(fresh).shape
        assert np.abs(pixels(data) - pixels(fresh)).max() <= 2      # JPEG of the same drawing
    # the grids of a run's methods, likewise from one figure
    grids = []
    for m, fig in fi.heatmap_grids(imgs, iters, ["gradcam", "gradient"], ["a", "b"]):
        grids.append((m, plotting.encode(fig)[1]))
        plt.close(fig)                                           # as plotting.show does
    assert [m for m, _ in grids] == ["gradcam", "gradient"]
    for (m, data), title in zip(grids, ["a", "b"]):
        fresh_fig = fi.heatmap_grid(imgs, iters, m, title)
        fresh = plotting.encode(fresh_fig)[1]
        plt.close(fresh_fig)
        assert pixels(data).shape == pixels(fresh).shape
        assert np.abs(pixels(data) - pixels(fresh)).max() <= 2
    assert list(fi.heatmap_grids(imgs, iters, [], [])) == []
    assert fi.grid_name("synthetic-a-s0", "ig_smoothgrad[n_steps=4]") == \
        "interpretability-grid-synthetic-a-s0-ig_smoothgrad-n_steps-4"


# ------------------------------------------------------------------ object discovery
def _corloc_rows(values=(0.5, 0.7, 0.2), ci=0.05):
    rows = _accuracy()
    for m in ("sv_resnet_s", "sv_vit_t"):
        for method in ("lost", "tokencut", fd.BASELINE):
            rows += [_row(study="discovery", metric="corloc", method=method, model=m, arch=f"timm/{m}",
                          sparsity=s, iteration=k, value=v, ci_low=v - ci, ci_high=v + ci)
                     for k, (s, v) in enumerate(zip(SPARSITIES, values))]
    return pd.DataFrame(rows)


def test_discovery_curves_styles_and_legend():
    fig = fd.curves_figure(_corloc_rows(), "synthetic", "tiny")
    assert len(fig.axes) == 4
    leg = fig.legends[0]
    styles = {t.get_text(): ln.get_linestyle() for t, ln in zip(leg.get_texts(), leg.get_lines())}
    assert styles == {"LOST": "-", "TokenCut (extension)": "--", "whole-image box (baseline)": "-.",
                      "test accuracy (synthscenes)": ":"}
    assert fig.axes[0].get_ylabel() == "CorLoc" and fig.axes[0].get_ylim() == (-0.02, 1.02)


def test_discovery_verdicts_known_answers():
    text = fd.verdicts(fd.study_rows(_corloc_rows(), methods="lost"))
    assert text.count("\n") == 1                         # two models, one method
    assert "highest at 50 %: 0.70 [0.65, 0.75] vs. dense 0.50 [0.45, 0.55]; the intervals do not overlap" in text
    close = fd.verdicts(fd.study_rows(_corloc_rows(ci=0.15), methods="lost"))
    assert "the intervals overlap" in close
    dense = fd.verdicts(fd.study_rows(_corloc_rows(values=(0.9, 0.7, 0.2)), methods="lost"))
    assert "highest at the dense model (0.90 [0.85, 0.95])" in dense


def test_boxes_drawn_where_the_study_put_them():
    imgs, iters = _examples()
    assert fd.seed_box(iters[0], 0) == (4, 4, 8, 8)      # patch 3 of a 2 x 2 grid, 4-pixel patches
    fig, ax = plt.subplots()
    fd.draw_boxes(ax, plotting.example_image(imgs, 0), fd.gt_boxes(imgs, 0), iters[0], 0, ["lost", "tokencut"])
    xy = [(p.get_x(), p.get_y(), p.get_width(), p.get_height()) for p in ax.patches]
    assert xy == [(1, 1, 4, 5), (4, 4, 4, 4), (0, 0, 4, 4), (4, 4, 4, 4)]   # gt, TokenCut, LOST, seed
    assert [p.get_fill() for p in ax.patches] == [False, False, False, True]
    fig, ax = plt.subplots()
    fd.draw_boxes(ax, plotting.example_image(imgs, 0), fd.gt_boxes(imgs, 0), iters[0], 0, ["tokencut"])
    assert len(ax.patches) == 2


def test_boxes_grid_takes_examples_from_each_dataset():
    imgs, iters = _examples(datasets=["voc07", "voc07", "voc07", "coco", "coco"])
    fig = fd.boxes_grid(imgs, iters, ["lost"], "t")
    assert len(fig.axes) == 4 * len(SPARSITIES)
    ylabels = [fig.axes[i * len(SPARSITIES)].get_ylabel() for i in range(4)]
    assert ylabels == ["voc07", "coco", "voc07", "coco"]
    assert _legend_labels(fig) == ["ground truth", "LOST", "LOST seed"]
    frame = fd.boxes_frame(imgs, iters[0], ["lost", "tokencut"], "t")
    assert sum(ax.get_visible() for ax in frame.axes) == 5
    assert _legend_labels(frame)[-1] == "TokenCut (extension)"


def test_lost_maps_figure():
    imgs, iters = _examples()
    fig = fd.lost_maps_figure(imgs, iters, "t")
    assert len(fig.axes) == 2 * (1 + len(SPARSITIES)) + 2       # panels and two colour bars
    deg = fig.axes[1].images[0]
    assert deg.get_clim() == (0, 3 * 3)                  # one scale: the largest degree of all
    assert not fig.axes[1 + len(SPARSITIES)].get_visible()   # no bottom-left panel


# ------------------------------------------------------------------ sweet spots
def _sweet_tables(controls=True):
    eff, ver = [], []
    for study in ("interpretability", "discovery"):
        for pm in ("imp",) + (("random",) if controls else ()):
            key = dict(track="synthetic", arch="timm/sv_resnet_s", prune_method=pm, prunable_set="all",
                       study=study, dataset="d", method="m", metric="x")
            eff += [dict(key, sparsity=s, effect=e, improved=(e > 0.1 and pm == "imp"))
                    for s, e in zip(SPARSITIES, (0.0, 0.2, -0.1))]
            ver.append(dict(key, extension=False, sweet_spot=pm == "imp", sparsity=0.5, effect=0.2,
                            ci_low=0.1, ci_high=0.3, p_adj=0.01))
            ver.append(dict(key, metric="ext", extension=True, sweet_spot=False, sparsity=0.5, effect=0.0,
                            ci_low=-0.1, ci_high=0.1, p_adj=0.5))
    ctl = pd.DataFrame([dict(v, shown_by_control=v["study"] == "interpretability") for v in ver
                        if v["prune_method"] == "imp" and not v["extension"]])
    return {"effects": pd.DataFrame(eff), "verdicts": pd.DataFrame(ver), "controls": ctl}


def test_sweet_spot_legend_explains_line_styles_not_one_study():
    effects, verdicts, controls = fs.prepare(_sweet_tables())
    fig = fs.effects_figure(effects, "synthetic", "tiny")
    leg = fig.legends[0]
    assert [t.get_text() for t in leg.get_texts()] == [
        "magnitude pruning (median over series)", "random pruning, control (median)",
        "better than dense (corrected)"]
    lines = leg.get_lines()
    assert [ln.get_linestyle() for ln in lines] == ["-", "--", "None"]
    assert lines[2].get_marker() == "o"
    study_colors = {matplotlib.colors.to_hex(c) for c in plotting.STUDY_COLORS.values()}
    assert not {matplotlib.colors.to_hex(ln.get_color()) for ln in lines} & study_colors
    assert [ax.get_title() for ax in fig.axes] == ["interpretability", "object discovery"]
    # each panel: its study's colour for magnitude pruning, grey dashed for the control
    ax = fig.axes[1]
    assert matplotlib.colors.to_hex(plotting.STUDY_COLORS["discovery"]) in {
        matplotlib.colors.to_hex(ln.get_color()) for ln in ax.lines}
    assert any(ln.get_linestyle() == "--" and ln.get_color() == fs.CONTROL_COLOR for ln in ax.lines)


def test_sweet_spot_legend_without_controls():
    effects, _, _ = fs.prepare(_sweet_tables(controls=False))
    fig = fs.effects_figure(effects, "synthetic", "tiny")
    assert _legend_labels(fig) == ["magnitude pruning (median over series)", "better than dense (corrected)"]


def test_verdict_table_and_strongest():
    effects, verdicts, controls = fs.prepare(_sweet_tables())
    table = fs.verdict_table(verdicts, controls)
    imp = table[table["model"] == "sv_resnet_s · imp"].set_index("study")
    assert imp.loc["interpretability", "paper metrics: sweet spots"] == "1 of 1"
    assert imp.loc["interpretability", "also with random pruning"] == "1 of 1"
    assert imp.loc["object discovery", "also with random pruning"] == "0 of 1"
    assert imp.loc["interpretability", "at"] == "50 %"
    assert imp.loc["interpretability", "extensions: sweet spots"] == "0 of 1"
    rnd = table[table["model"] == "sv_resnet_s · random"].iloc[0]
    assert rnd["paper metrics: sweet spots"] == "0 of 1" and rnd["at"] == "—"
    top = fs.strongest(verdicts)
    assert len(top) == 2 and top.loc[0, "effect [95 % CI]"] == "+0.200 [+0.100, +0.300]"
    assert top.loc[0, "corrected p"] == "0.010"
    assert fs.verdict_table(pd.DataFrame(), controls).empty and fs.strongest(pd.DataFrame()).empty


# ------------------------------------------------------------------ explorer
def _update(sparsity=0.5, extra=0.0, pretrained=False, correct=True):
    return dict(run="synthetic-a", track="synthetic", profile="tiny", image=np.full((8, 8, 3), 200, np.uint8),
                map=np.random.rand(8, 8), mask=np.eye(8, dtype=bool), gt_boxes=np.array([[1.0, 1, 5, 5]]),
                box=np.array([0.0, 0, 4, 4]), seed_box=np.array([0.0, 0, 4, 4]), score_map=np.random.randn(2, 2),
                stride=4, label="cat", prediction="dog", probability=0.6, correct=correct, sparsity=sparsity,
                extra_pruned=extra, pretrained=pretrained, method="gradcam", method_label="gradcam", paper=True,
                checkpoint=dict(iteration=1, sparsity=0.5))


def test_explorer_update_figure():
    fig = fx.update_figure(_update(extra=0.1))
    assert len(fig.axes) == 3
    assert fig.axes[0].get_title() == "image · true: cat"
    assert fig.axes[1].get_title() == "gradcam (paper)"
    assert len(fig.axes[2].patches) == 3                 # ground truth, LOST's box, its seed
    assert "checkpoint 1 (50 %), pruned further without retraining" in fig._suptitle.get_text()


def test_explorer_preview_columns_and_labels():
    outs = [_update(s, extra=max(0.0, s - 0.5)) for s in np.linspace(0, 0.9, 10)]
    fig = fx.preview_figure(outs, "Grad-CAM")
    assert len(fig.axes) == 2 * fx.N_PREVIEW
    assert fig.axes[0].get_ylabel() == "Grad-CAM"
    assert "The explorer at 6 sparsities · synthetic-a · synthetic track · profile tiny" == fig._suptitle.get_text()
    assert [fx.frame_label(o) for o in (_update(0.0, pretrained=True), _update(0.5), _update(0.7, extra=0.2))] == [
        "0 % · dense", "50 % · checkpoint", "70 % · no retraining"]


def test_versus_table_counts_series_beating_their_control_on_paper_metrics():
    series = dict(track="synthetic", arch="timm/sv_resnet_s", prune_method="imp", prunable_set="all",
                  study="alignment", dataset="clean", method="model")
    versus = pd.DataFrame([
        {**series, "metric": "accuracy", "control_method": "random", "sparsity": 0.4, "better": True},
        {**series, "metric": "accuracy", "control_method": "random", "sparsity": 0.64, "better": False},
        {**series, "metric": "shape_bias", "control_method": "random", "sparsity": 0.4, "better": False},
        {**series, "metric": "ext", "control_method": "random", "sparsity": 0.4, "better": True},
    ])
    verdicts = pd.DataFrame([{**series, "metric": m, "extension": m == "ext"} for m in ("accuracy", "shape_bias", "ext")])
    table = fs.versus_table(versus, verdicts)
    assert table.to_dict("records") == [{
        "track": "synthetic", "model": "sv_resnet_s · imp vs random", "study": "human alignment",
        "series better than random": "1 of 2", "at": plotting.format_sparsity(0.4),
        "matched checkpoints better": "1 of 3"}]
    assert fs.versus_table(versus.iloc[:0], verdicts).empty


def test_file_stem_of_model_labels():
    assert plotting.file_stem("sv_resnet_s · imp · seed 0") == "sv_resnet_s-imp-seed-0"
    assert plotting.file_stem("mobilenet_v2 · oneshot+bnrecal") == "mobilenet_v2-oneshot-bnrecal"
