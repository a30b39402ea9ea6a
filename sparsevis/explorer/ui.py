"""The explorer's ipywidgets: model picker, attribution method, sparsity slider, image index, and
the frame of each update set as a JPEG or PNG on an ``ipywidgets.Image`` (widget state, not
output: see the package docstring)."""
from __future__ import annotations

from collections.abc import Callable

from sparsevis import attribution
from sparsevis.config import get_profile
from sparsevis.explorer.series import PRETRAINED, find_run, pretrained_weights
from sparsevis.plotting import MIME, format_sparsity, frame_image

NO_RETRAINING = ("Between checkpoints the model is pruned further by global magnitude from the "
                 "nearest checkpoint at or below the chosen sparsity, with no retraining (and no "
                 "BatchNorm recalibration): only the checkpoints themselves were retrained.")
ONE_SHOT = ("A pretrained model is pruned one-shot by global magnitude from its dense ImageNet "
            "weights, with no retraining (and no BatchNorm recalibration).")
MAX_SPARSITY = 0.99


def build(profile: str, make: Callable, *, runs, pretrained, n_images: int, start, method: str):
    """The widget of :func:`sparsevis.explorer.widget`; ``make(name)`` builds the explorer of a
    picked model or run (``start``: the one already built)."""
    import ipywidgets as W   # optional: the ``explorer`` extra

    bad = [m for m in pretrained if m not in PRETRAINED]
    if bad:
        raise ValueError(f"pretrained={bad!r}: expected names from {', '.join(PRETRAINED)}")
    weights = {m: pretrained_weights(m) for m in pretrained}
    labels = [find_run(profile, r).label for r in (runs or [r.label for r in get_profile(profile).runs])]
    options = [(m + (" (pretrained)" if w.available else " (unavailable)"), m) for m, w in weights.items()]
    options += [(f"{lab} (prune run)", lab) for lab in labels]
    explorers = {}
    if start is not None:
        explorers[start.label] = start
        if start.label not in [v for _, v in options]:
            options.insert(0, (start.label, start.label))
        first = start.label
    else:
        first = next((m for m, w in weights.items() if w.available), labels[0])

    def get(name: str):
        if name not in explorers:
            explorers[name] = make(name)
        return explorers[name]

    model_dd = W.Dropdown(options=options, value=first, description="model",
                          layout=W.Layout(width="30em"))
    sparsity = W.FloatSlider(value=0.0, min=0.0, max=MAX_SPARSITY, step=0.005, description="sparsity",
                             continuous_update=False, readout_format=".1%", layout=W.Layout(width="36em"))
    image = W.IntSlider(value=0, min=0, max=max(n_images - 1, 0), description="image",
                        continuous_update=False)
    method_dd = W.Dropdown(description="method", layout=W.Layout(width="20em"))
    info = W.HTML()
    missing = "".join(f"<br>{w.note}" for w in weights.values() if not w.available)
    note = W.HTML(f"<small><b>No retraining:</b> {NO_RETRAINING} {ONE_SHOT}{missing}</small>")
    frame = W.Image(format="png", layout=W.Layout(width="100%", max_width="60em"))
    busy = {"on": False}

    def error(e: Exception) -> None:   # shown in the widget instead of lost in a log
        info.value = f"<span style='color:#b00'>{type(e).__name__}: {e}</span>"

    def methods_of(ex):
        return [(f"{ex.method_label(m)}{'' if attribution.METHODS[m].paper else ' (extension)'}", m)
                for m in ex.methods]

    def redraw(*_):
        if busy["on"]:
            return
        try:
            ex = get(model_dd.value)
            res = ex.update(sparsity.value, int(image.value), method_dd.value)
        except Exception as e:
            error(e)
            return
        kind, data = frame_image(ex.figure(res))   # closes the figure
        with frame.hold_sync():   # one update: format and bytes together
            frame.format, frame.value = MIME[kind].split("/")[1], data
        ck = ("dense pretrained weights (pruned one-shot, live)" if ex.weights is not None else
              "checkpoints (iteration: sparsity): "
              + ", ".join(f"{c.iteration}: {format_sparsity(c.sparsity)}" for c in ex.checkpoints))
        info.value = f"<small>{ex.describe(res)}<br>{ck}</small>"

    def on_model(change=None):
        info.value = f"<small>loading {model_dd.value} ...</small>"
        try:
            ex = get(model_dd.value)
        except Exception as e:
            error(e)
            return
        busy["on"] = True
        try:
            opts = methods_of(ex)
            method_dd.options = opts
            names = [v for _, v in opts]
            method_dd.value = method if method in names else names[0]
            image.max = len(ex) - 1
            image.value = min(image.value, len(ex) - 1)
        finally:
            busy["on"] = False
        redraw()

    model_dd.observe(on_model, names="value")
    for w in (sparsity, image, method_dd):
        w.observe(redraw, names="value")
    on_model()
    return W.VBox([W.HBox([model_dd, method_dd]), W.HBox([sparsity, image]), note, info, frame])
