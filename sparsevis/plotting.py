"""One plotting style for every figure, provenance captions, and a kernel-free sparsity slider.

Every notebook of the book draws through this module::

    plotting.use_style()                                   # seaborn theme, fonts, palette, dpi
    data = chapters.load("interpretability", profile, notebook="interpretability")
    fig, ax = plt.subplots()
    plotting.line_with_band(ax, rows["sparsity"], rows["value"], rows["ci_low"], rows["ci_high"])
    plotting.sparsity_axis(ax)                             # x = sparsity on a -log10(1 - s) scale
    prov = data.provenance("synthetic")                    # track, profile, run ids, config, lineage
    plotting.show(fig, "rma-resnet", "What is plotted ...", prov)  # files, figure + caption
    display(plotting.sparsity_slider(frames, labels))      # static HTML/JS: works with no kernel

The sparsity axis spreads the high sparsities that iterative pruning reaches: iterative
magnitude pruning removes a fixed fraction of the remaining weights per iteration, so on a
``-log10(1 - s)`` scale its iterations are evenly spaced (0, 50, 90, 99 % sit at 0, 0.3, 1, 2).
Captions say what is plotted; the provenance line under each figure names the track, profile,
run ids, configuration hash and the executed notebook, and links the figure's files: PNG and
SVG for a vector figure, one JPEG (or PNG) for a figure of raster images (:func:`savefig`).
"""
from __future__ import annotations

import base64
import html
import io
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib
import numpy as np

from sparsevis.fileio import atomic_write_bytes

# The repository the Colab badges and set-up cells point at: the one place to change it.
GITHUB_REPO = "sparsevis/sparsevis"
GITHUB_BRANCH = "main"

# Reference lines of the paper's figures (protocol.md): about 0 / 50 / 90 / 99 % sparsity.
REFERENCE_SPARSITIES = (0.0, 0.5, 0.9, 0.99)
SPARSITY_TICKS = (0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)
STUDIES = ("prune", "interpretability", "discovery", "alignment")
STUDY_COLORS = {"prune": "#4c4c4c", "interpretability": "#1b9e77", "discovery": "#d95f02",
                "alignment": "#7570b3"}
FIGURE_WIDTH = 7.5       # inches: the book's text column at the PNG dpi below
PNG_DPI = 150
SLIDER_DPI = 110         # slider frames are inlined in the page: smaller
# Figures of raster images (photographs, heat maps) as JPEG at this quality with full-resolution
# colour (4:4:4): 2-3x smaller than PNG, and the thin mask outlines and the labels stay sharp
# (WebP would halve the colour resolution and blur them).
JPEG_QUALITY = 90
MIME = {"png": "image/png", "jpg": "image/jpeg"}
_MAX_S = 0.9999          # the sparsity scale is undefined at 1


def colab_url(notebook: str) -> str:
    """'Open in Colab' address of ``notebooks/<notebook>`` in :data:`GITHUB_REPO`."""
    name = notebook if notebook.endswith(".ipynb") else f"{notebook}.ipynb"
    return (f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{GITHUB_BRANCH}/"
            f"notebooks/{name}")


# --------------------------------------------------------------------------------------------
# Style
# --------------------------------------------------------------------------------------------
def use_style() -> None:
    """Apply the book's one figure style (seaborn whitegrid, colour-blind palette, sizes)."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind", font_scale=0.9,
                  rc={
                      "figure.figsize": (FIGURE_WIDTH, 3.6),
                      "figure.dpi": 100,
                      "savefig.dpi": PNG_DPI,
                      "savefig.bbox": "tight",
                      "font.family": "sans-serif",
                      "font.sans-serif": ["DejaVu Sans"],
                      "axes.titlesize": 11,
                      "axes.titleweight": "bold",
                      "axes.labelsize": 10,
                      "legend.fontsize": 8.5,
                      "legend.title_fontsize": 9,
                      "xtick.labelsize": 8.5,
                      "ytick.labelsize": 8.5,
                      "axes.spines.top": False,
                      "axes.spines.right": False,
                      "lines.linewidth": 1.8,
                      "lines.markersize": 5,
                      "svg.fonttype": "none",
                  })


def palette(keys: Iterable[str]) -> dict[str, tuple]:
    """A stable colour per key (sorted), from the style's colour-blind palette."""
    import seaborn as sns

    keys = sorted(dict.fromkeys(keys))
    colors = sns.color_palette("colorblind", max(len(keys), 1))
    if len(keys) > len(colors):
        colors = sns.color_palette("husl", len(keys))
    return dict(zip(keys, colors))


# --------------------------------------------------------------------------------------------
# Sparsity axis
# --------------------------------------------------------------------------------------------
def _forward(s):
    s = np.clip(np.asarray(s, dtype=float), 0.0, _MAX_S)
    return -np.log10(1.0 - s)


def _inverse(t):
    return 1.0 - 10.0 ** (-np.asarray(t, dtype=float))


def sparsity_position(s) -> np.ndarray:
    """Where sparsity ``s`` sits on the book's sparsity axis: ``-log10(1 - s)``."""
    return _forward(s)


def format_sparsity(s: float) -> str:
    """0.9 -> '90 %', 0.956 -> '95.6 %', 0.999 -> '99.9 %'."""
    pct = 100 * float(s)
    return f"{pct:.0f} %" if abs(pct - round(pct)) < 0.05 else f"{pct:.1f} %"


def sparsity_axis(ax, max_sparsity: float | None = None, references: bool = True,
                  axis: str = "x", label: str = "sparsity (prunable weights removed)") -> None:
    """Put sparsity on ``ax``'s x (or y) axis on a ``-log10(1 - s)`` scale, ticks in percent.

    Data stay in sparsity units (0..1). Reference lines at 50 / 90 / 99 % (protocol.md) are drawn
    where they fall inside the axis range.
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    set_scale = ax.set_xscale if axis == "x" else ax.set_yscale
    set_scale("function", functions=(_forward, _inverse))
    target = ax.xaxis if axis == "x" else ax.yaxis
    hi = max_sparsity if max_sparsity is not None else max(
        (ax.get_xlim() if axis == "x" else ax.get_ylim())[1], 0.5)
    hi = min(max(hi, 0.0), _MAX_S)
    ticks = [t for t in SPARSITY_TICKS if t <= hi + 1e-9 and (t != 0.25 or hi <= 0.8)] or [0.0]
    target.set_major_locator(FixedLocator(ticks))
    target.set_minor_locator(NullLocator())
    target.set_major_formatter(FuncFormatter(lambda v, _: format_sparsity(v)))
    pad = 0.06 * max(_forward(hi), 0.3)
    lim = (_inverse(-pad), _inverse(_forward(hi) + pad))
    (ax.set_xlim if axis == "x" else ax.set_ylim)(*lim)
    (ax.set_xlabel if axis == "x" else ax.set_ylabel)(label)
    if references:
        for s in REFERENCE_SPARSITIES[1:]:
            if s <= hi + 1e-9:
                (ax.axvline if axis == "x" else ax.axhline)(s, color="0.55", lw=0.8, ls=":", zorder=0)


def line_with_band(ax, x, y, low=None, high=None, label=None, color=None, marker="o", ls="-",
                   alpha=0.18, **kw):
    """One line with markers and its confidence band (``low``..``high``) where given."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    order = np.argsort(x)
    (line,) = ax.plot(x[order], y[order], marker=marker, ls=ls, label=label, color=color, **kw)
    if low is not None and high is not None:
        lo, hi = np.asarray(low, float)[order], np.asarray(high, float)[order]
        ok = ~(np.isnan(lo) | np.isnan(hi))
        if ok.any():
            ax.fill_between(x[order][ok], lo[ok], hi[ok], color=line.get_color(), alpha=alpha, lw=0)
    return line


def example_order(datasets: Sequence[str], n: int | None = None) -> list[int]:
    """Indices of a study's stored examples taken in turn from each dataset (the first image of
    every dataset, then the second of every dataset, ...), at most ``n``: a figure of a few
    examples then shows every dataset, not only the first one's images. ``datasets`` names the
    dataset of each example; one dataset gives ``0, 1, 2, ...``."""
    first = {d: k for k, d in enumerate(dict.fromkeys(datasets))}
    rank: dict[str, int] = {}
    keys = []
    for i, d in enumerate(datasets):
        keys.append((rank.get(d, 0), first[d], i))
        rank[d] = rank.get(d, 0) + 1
    return [i for *_, i in sorted(keys)][:n]


# --------------------------------------------------------------------------------------------
# Image panels: maps over images, masks, boxes, the accuracy twin axis
# --------------------------------------------------------------------------------------------
MASK_COLOR = "#00c8e6"   # the object outline: visible on the dark synthetic and the white edge images
BOX_COLORS = {"gt": "#1b9e77", "lost": "#d95f02", "tokencut": "#1f78b4", "seed": "#e7298a"}
ACCURACY_STYLE = dict(color="0.45", ls=":", marker="s", markersize=2.5)   # line and legend entry


def study_examples(folder: str | os.PathLike) -> tuple[dict, list[dict]]:
    """A study folder's stored examples: ``images.pt`` and every checkpoint's
    ``iter-NN.examples.pt``, in iteration order."""
    import torch

    folder = Path(folder)
    imgs = torch.load(folder / "images.pt", weights_only=False)
    iters = sorted((torch.load(p, weights_only=False) for p in folder.glob("iter-*.examples.pt")),
                   key=lambda e: e["iteration"])
    return imgs, iters


def example_image(imgs: dict, k: int) -> np.ndarray:
    """Stored example ``k`` of :func:`study_examples` as an (H, W, 3) array for ``imshow``."""
    return imgs["display"][k].permute(1, 2, 0).numpy()


def image_panel(ax) -> None:
    """An image panel: no ticks, no grid, a thin grey frame all round (white images need one)."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for sp in ax.spines.values():
        sp.set_visible(True)
        sp.set_color("0.75")
        sp.set_linewidth(0.6)


def heat_scale(amap, percentile: float = 99.5) -> np.ndarray:
    """``amap`` divided by its ``percentile``-th percentile and clipped to 0..1 (IG-SmoothGrad's
    squared norms are too peaked for a plain maximum); all zeros where that percentile is 0."""
    amap = np.asarray(amap)
    peak = float(np.percentile(amap, percentile)) if amap.size else 0.0
    return np.clip(amap / peak, 0, 1) if peak > 0 else np.zeros_like(amap)


def heat_alpha(scaled: np.ndarray) -> np.ndarray:
    """Opacity of a :func:`heat_scale`-d map over its image: 0.15 where it is 0, 1 at its top."""
    return np.clip(0.15 + 0.85 * scaled, 0, 1)


def overlay(ax, img, amap, mask=None, mask_color: str = MASK_COLOR, mask_width: float = 0.8) -> None:
    """A map over a grey copy of an (H, W, 3) 0..255 image: colour (inferno) and opacity
    (0.15..1) grow with the map scaled by :func:`heat_scale`; ``mask`` outlined when given."""
    ax.imshow(np.asarray(img).mean(axis=2), cmap="gray", vmin=0, vmax=255)
    m = heat_scale(amap)
    ax.imshow(m, cmap="inferno", vmin=0, vmax=1, alpha=heat_alpha(m))
    if mask is not None:
        outline(ax, mask, mask_color, mask_width)


def outline(ax, mask, color: str = MASK_COLOR, width: float = 0.8) -> None:
    """The outline of a boolean (H, W) mask."""
    ax.contour(mask, levels=[0.5], colors=color, linewidths=width)


def box(ax, b, fill: bool = False, **kw):
    """Rectangle ``b`` = (x1, y1, x2, y2) in data (pixel) coordinates; unfilled unless ``fill``."""
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = (float(v) for v in b)
    return ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=fill, **kw))


def accuracy_rows(rows):
    """The prune stage's test-accuracy rows of a chapter's results."""
    return rows[(rows["study"] == "prune") & (rows["metric"] == "accuracy")]


def accuracy_label(rows, track: str) -> str:
    """'test accuracy (<datasets>)' of ``track``: the legend entry of :func:`accuracy_twin`."""
    acc = accuracy_rows(rows)
    return f"test accuracy ({', '.join(sorted(acc[acc.track == track].dataset.unique()))})"


MAX_MODEL_COLUMNS = 4    # models side by side in a curves figure; more wrap onto further rows


class ModelPanels(NamedTuple):
    """A curves figure: ``rows`` panel rows (metrics, datasets) per model, the models in blocks of
    at most :data:`MAX_MODEL_COLUMNS` columns, one block under the other."""

    fig: object
    axes: np.ndarray
    rows: int
    cols: int

    def ax(self, i: int, j: int):
        """The panel of row ``i`` for model ``j``."""
        return self.axes[(j // self.cols) * self.rows + i, j % self.cols]

    def first_column(self, j: int) -> bool:
        return j % self.cols == 0

    def last_column(self, j: int, n_models: int) -> bool:
        return j % self.cols == self.cols - 1 or j == n_models - 1


def model_panels(rows: int, n_models: int, row_height: float, **kw) -> ModelPanels:
    """The figure and panels of a curves figure (:class:`ModelPanels`); ``kw`` go to
    ``plt.subplots`` (e.g. ``sharey``). Panels of the last block left without a model are hidden."""
    import matplotlib.pyplot as plt

    cols = max(1, min(n_models, MAX_MODEL_COLUMNS))
    blocks = -(-n_models // cols)
    fig, axes = plt.subplots(rows * blocks, cols, squeeze=False,
                             figsize=(FIGURE_WIDTH, 0.9 + row_height * rows * blocks), **kw)
    panels = ModelPanels(fig, axes, rows, cols)
    for j in range(n_models, blocks * cols):
        for i in range(rows):
            panels.ax(i, j).set_visible(False)
    return panels


def accuracy_twin(ax, acc, labelled: bool) -> None:
    """Test accuracy (rows with sparsity, value, ci_low, ci_high) on a right-hand 0..1 axis behind
    ``ax``'s own lines; ``labelled``: tick labels and title on this panel (one per row)."""
    twin = ax.twinx()
    line_with_band(twin, acc["sparsity"], acc["value"], acc["ci_low"], acc["ci_high"], alpha=0.07, lw=1.2,
                   **ACCURACY_STYLE)
    twin.set_ylim(0, 1.05)
    twin.grid(False)
    twin.spines["right"].set_visible(labelled)
    twin.tick_params(axis="y", colors="0.4", labelsize=7)
    if labelled:
        twin.set_ylabel("accuracy", color="0.4", fontsize=8)
    else:
        twin.set_yticklabels([])
        twin.tick_params(axis="y", length=0)
    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)


# --------------------------------------------------------------------------------------------
# Saving, captions and provenance
# --------------------------------------------------------------------------------------------
def figures_dir(out_dir: str | os.PathLike | None = None) -> Path:
    """Where figures go: ``out_dir``, else ``$SPARSEVIS_FIGURES_DIR``, else ``./figures``."""
    return Path(out_dir or os.environ.get("SPARSEVIS_FIGURES_DIR", "figures"))


def file_stem(text: str) -> str:
    """``text`` (e.g. a model label "sv_resnet_s · imp · seed 0") as a figure-file stem: runs
    of anything but letters, digits, ``_``, ``.`` and ``-`` become one ``-``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def draws_images(fig) -> bool:
    """Whether ``fig`` draws raster images (``imshow``, ``figimage``) or rasterized artists."""
    from matplotlib.image import AxesImage, BboxImage, FigureImage

    return bool(fig.findobj(lambda a: isinstance(a, (AxesImage, BboxImage, FigureImage)) or a.get_rasterized()))


def encode(fig, dpi: int = PNG_DPI) -> tuple[str, bytes]:
    """``fig`` as ``(kind, bytes)``, kind ``"png"`` or ``"jpg"`` (:data:`MIME`): a figure of
    raster images as JPEG (:data:`JPEG_QUALITY`) where that is smaller than its PNG; a vector
    figure, or a flat image that PNG stores exactly in fewer bytes (a small matrix), as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    png = buf.getvalue()
    if not draws_images(fig):
        return "png", png
    with Image.open(io.BytesIO(png)) as im:
        rgba = im.convert("RGBA")
    flat = Image.new("RGBA", rgba.size, "white")   # a transparent background is white, as on the page
    buf = io.BytesIO()
    Image.alpha_composite(flat, rgba).convert("RGB").save(buf, format="JPEG", quality=JPEG_QUALITY,
                                                          subsampling=0, optimize=True)
    jpg = buf.getvalue()
    return ("jpg", jpg) if len(jpg) < len(png) else ("png", png)


def savefig(fig, name: str, out_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write ``fig`` into the figures folder; returns {kind: path}.

    A vector figure: ``<name>.png`` (shown on the page) and ``<name>.svg`` (to download, scalable).
    A figure of raster images: one ``<name>.jpg`` or ``<name>.png`` (:func:`encode`), no SVG: it
    would only wrap the same pixels, several times larger. Files of ``name`` in the other
    formats (an earlier version of the figure) are removed.
    """
    if not name or any(c in name for c in "/\\ "):
        raise ValueError(f"figure name {name!r}: expected a file stem without spaces or slashes")
    out = figures_dir(out_dir)
    kind, data = encode(fig)
    paths = {kind: atomic_write_bytes(out / f"{name}.{kind}", data)}
    if not draws_images(fig):
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", dpi=PNG_DPI, bbox_inches="tight", metadata={"Date": None})
        paths["svg"] = atomic_write_bytes(out / f"{name}.svg", buf.getvalue())
    for other in ("png", "jpg", "svg"):
        if other not in paths:
            (out / f"{name}.{other}").unlink(missing_ok=True)
    return paths


def provenance(track, profile: str, run_ids, config_hash: str, notebook: str) -> str:
    """Markdown provenance line for a figure: track(s), profile, run ids, config hash, notebook.

    ``notebook`` is the executed notebook's file name; the link is relative, and the book puts
    the executed notebook beside the page that shows it.
    """
    tracks = [track] if isinstance(track, str) else sorted(dict.fromkeys(track))
    ids = [run_ids] if isinstance(run_ids, str) else list(dict.fromkeys(run_ids))
    nb = notebook if notebook.endswith(".ipynb") else f"{notebook}.ipynb"
    return (f"track: {', '.join(tracks) or 'n/a'} · profile: `{profile}` · "
            f"runs: {', '.join(f'`{r}`' for r in ids) or 'n/a'} · config: `{config_hash}` · "
            f"made by the executed notebook [{nb}]({nb})")


def _md_inline_to_html(text: str) -> str:
    """The little markdown captions use: `code`, **bold**, [text](link); everything else escaped."""
    import re

    out = html.escape(text, quote=False)
    out = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)",
                 lambda m: f'<a href="{html.escape(m.group(2))}">{m.group(1)}</a>', out)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"(?<![*\w])\*([^*]+)\*(?!\*)", r"<em>\1</em>", out)
    return out


class Caption:
    """A figure caption that renders as HTML in the book and as markdown elsewhere."""

    def __init__(self, text: str, prov: str | None = None, files: dict | None = None,
                 number: str | None = None):
        self.text, self.prov, self.files, self.number = text, prov, files or {}, number

    def _links(self, fmt: str) -> str:
        parts = []
        for kind, label in (("png", "PNG"), ("jpg", "JPEG"), ("svg", "SVG")):
            if kind in self.files:
                rel = f"figures/{Path(self.files[kind]).name}"
                parts.append(f'<a href="{rel}">{label}</a>' if fmt == "html" else f"[{label}]({rel})")
        return " · ".join(parts)

    def _repr_html_(self) -> str:
        head = f"<strong>{html.escape(self.number)}</strong> " if self.number else ""
        body = f'<p class="sv-caption-text">{head}{_md_inline_to_html(self.text)}</p>'
        if self.prov:
            links = self._links("html")
            body += (f'<p class="sv-provenance">{_md_inline_to_html(self.prov)}'
                     f'{" · " + links if links else ""}</p>')
        return (f'<div class="sv-caption" style="font-size:0.86em;line-height:1.35;color:#333;'
                f'border-left:3px solid #bbb;padding:0.1em 0 0.1em 0.7em;margin:0.2em 0 1.4em 0">'
                f'{body}</div>')

    def _repr_markdown_(self) -> str:
        head = f"**{self.number}** " if self.number else ""
        text = f"{head}{self.text}"
        if self.prov:
            links = self._links("md")
            text += f"\n\n<small>{self.prov}{' · ' + links if links else ''}</small>"
        return text

    def __str__(self) -> str:
        return self._repr_markdown_()


_counter = {"n": 0}


def show(fig, name: str, caption: str, prov: str | None = None,
         out_dir: str | os.PathLike | None = None, number: bool = True) -> None:
    """Save ``fig`` (:func:`savefig`), display it with its caption and provenance beneath, close it.

    The caption says what is plotted; ``prov`` comes from :func:`provenance`. The files are
    ``<figures dir>/<name>.png`` and ``.svg``, or one ``.jpg``/``.png`` for a figure of raster
    images (:func:`figures_dir`); the caption links them. The page shows the PNG or JPEG file.
    """
    from IPython.display import Image, display

    paths = savefig(fig, name, out_dir)
    import matplotlib.pyplot as plt

    plt.close(fig)
    _counter["n"] += 1
    shown = paths.get("jpg", paths.get("png"))
    display(Image(data=shown.read_bytes(), format=shown.suffix[1:]))
    display(Caption(caption, prov, paths, f"Figure {_counter['n']}." if number else None))


def note(text: str, kind: str = "note"):
    """A highlighted markdown/HTML note in a notebook's output (e.g. 'no results for ...')."""
    class _Note:
        def _repr_markdown_(self):
            return f"> **{kind.capitalize()}.** {text}"

        def _repr_html_(self):
            color = {"note": "#e7f2fa", "warning": "#fff4e5"}.get(kind, "#eee")
            return (f'<div class="sv-note" style="background:{color};padding:0.6em 0.9em;'
                    f'border-radius:4px;margin:0.5em 0"><strong>{html.escape(kind.capitalize())}.</strong> '
                    f'{_md_inline_to_html(text)}</div>')

    return _Note()


# --------------------------------------------------------------------------------------------
# Kernel-free slider
# --------------------------------------------------------------------------------------------
def frame_image(frame) -> tuple[str, bytes]:
    """``(kind, bytes)`` (kind a key of :data:`MIME`) of a slider frame: a matplotlib Figure
    (:func:`encode` at :data:`SLIDER_DPI`; the figure is closed), PNG or JPEG bytes, a path to
    such a file, or an image array (as PNG, exactly)."""
    if isinstance(frame, (str, os.PathLike)):
        frame = Path(frame).read_bytes()
    if isinstance(frame, (bytes, bytearray)):
        kind = "png" if frame[:8] == b"\x89PNG\r\n\x1a\n" else "jpg" if frame[:3] == b"\xff\xd8\xff" else None
        if kind is None:
            raise ValueError(f"slider frame: expected PNG or JPEG bytes, got bytes starting {bytes(frame[:8])!r}")
        return kind, bytes(frame)
    if isinstance(frame, matplotlib.figure.Figure):
        import matplotlib.pyplot as plt

        encoded = encode(frame, SLIDER_DPI)
        plt.close(frame)
        return encoded
    arr = np.asarray(frame)
    if arr.ndim not in (2, 3):
        raise ValueError(f"slider frame: expected a Figure, PNG/JPEG bytes, a path or an (H,W[,C]) array, "
                         f"got {type(frame).__name__} of shape {arr.shape}")
    from PIL import Image

    if arr.dtype != np.uint8:
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        arr = ((arr - lo) / (hi - lo if hi > lo else 1.0) * 255).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return "png", buf.getvalue()


class SliderHTML:
    """Self-contained HTML (inline PNG/JPEG frames, an ``<input type=range>``, a few lines of inline
    JavaScript): displays in notebooks and works on a static page with no kernel and no external
    script."""

    def __init__(self, html_text: str):
        self.html = html_text

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html


def sparsity_slider(frames: Sequence, labels: Sequence[str], title: str | None = None,
                    caption: str | None = None, start: int = 0, width: str = "100%") -> SliderHTML:
    """A kernel-free slider over precomputed frames (e.g. one figure per sparsity level).

    frames: what :func:`frame_image` takes (Figures are closed after encoding).
    labels: one label per frame (e.g. ``format_sparsity(s)``), shown beside the slider.
    Returns an object whose HTML display is the slider; ``str()`` gives the HTML.
    """
    frames, labels = list(frames), [str(x) for x in labels]
    if not frames or len(frames) != len(labels):
        raise ValueError(f"sparsity_slider: expected as many labels as frames (>= 1), got "
                         f"{len(frames)} frames and {len(labels)} labels")
    if not 0 <= start < len(frames):
        raise ValueError(f"sparsity_slider: start={start} outside 0..{len(frames) - 1}")
    uid = "svslider-" + uuid.uuid4().hex[:10]
    imgs = []
    for i, (frame, label) in enumerate(zip(frames, labels)):
        kind, data = frame_image(frame)
        style = "" if i == start else "display:none;"
        imgs.append(f'<img class="sv-frame" data-index="{i}" alt="{html.escape(label)}" '
                    f'style="{style}max-width:{width};height:auto" '
                    f'src="data:{MIME[kind]};base64,{base64.b64encode(data).decode("ascii")}"/>')
    label_json = "[" + ",".join('"' + html.escape(x).replace('"', "&quot;") + '"' for x in labels) + "]"
    head = f'<div class="sv-slider-title" style="font-weight:bold;margin-bottom:0.3em">{html.escape(title)}</div>' if title else ""
    cap = f'<div class="sv-slider-caption" style="font-size:0.86em;color:#333;margin-top:0.3em">{_md_inline_to_html(caption)}</div>' if caption else ""
    text = f"""<div class="sv-slider" id="{uid}" style="margin:0.5em 0 1.2em 0">
{head}<div class="sv-slider-frames">{''.join(imgs)}</div>
<div class="sv-slider-controls" style="display:flex;align-items:center;gap:0.8em;max-width:40em">
<button type="button" class="sv-prev" aria-label="previous">&#9664;</button>
<input type="range" class="sv-range" min="0" max="{len(frames) - 1}" step="1" value="{start}" style="flex:1" aria-label="sparsity"/>
<button type="button" class="sv-next" aria-label="next">&#9654;</button>
<span class="sv-label" style="min-width:9em;font-variant-numeric:tabular-nums">{html.escape(labels[start])}</span>
</div>{cap}
<script>
(function() {{
  var root = document.getElementById("{uid}");
  if (!root) return;
  var labels = {label_json};
  var frames = root.querySelectorAll(".sv-frame");
  var range = root.querySelector(".sv-range");
  var label = root.querySelector(".sv-label");
  function show(i) {{
    i = Math.max(0, Math.min(frames.length - 1, i));
    for (var k = 0; k < frames.length; k++) frames[k].style.display = (k === i) ? "" : "none";
    range.value = i;
    var t = document.createElement("textarea"); t.innerHTML = labels[i]; label.textContent = t.value;
  }}
  range.addEventListener("input", function() {{ show(parseInt(range.value, 10)); }});
  root.querySelector(".sv-prev").addEventListener("click", function() {{ show(parseInt(range.value, 10) - 1); }});
  root.querySelector(".sv-next").addEventListener("click", function() {{ show(parseInt(range.value, 10) + 1); }});
}})();
</script>
</div>"""
    return SliderHTML(text)


# --------------------------------------------------------------------------------------------
# Figure records and reference lines (the chapters' figure modules, sparsevis.figures)
# --------------------------------------------------------------------------------------------
class Drawn(NamedTuple):
    """A drawn figure with what :func:`show` needs: file stem, caption, provenance line."""

    fig: object
    name: str
    caption: str
    prov: str | None = None


def show_all(drawn: Iterable[Drawn], empty: str | None = None) -> None:
    """:func:`show` each figure of a figure function, in order; when there is none and
    ``empty`` is given, display it as a :func:`note`."""
    from IPython.display import display

    drawn = list(drawn)
    for d in drawn:
        show(d.fig, d.name, d.caption, d.prov)
    if not drawn and empty:
        display(note(empty))


def reference_band(ax, value: float, low: float | None = None, high: float | None = None,
                   label: str | None = None, color="black", ls="-", alpha: float = 0.25) -> None:
    """A horizontal reference (e.g. the human observers): a line at ``value`` and, where given,
    a grey band from ``low`` to ``high`` (their range), behind the data."""
    if low is not None and high is not None and not (np.isnan(low) or np.isnan(high)):
        ax.axhspan(low, high, color="0.6", alpha=alpha, lw=0, zorder=0)
    if value is not None and not np.isnan(value):
        ax.axhline(value, color=color, lw=1.3, ls=ls, zorder=1, label=label)


class LinkList:
    """A bulleted list of relative links to files beside the page, as (text, href, after)
    triples: HTML in the book (the page's markdown parser would treat a file path as a
    cross-reference), markdown elsewhere."""

    def __init__(self, items: Sequence[tuple[str, str, str]]):
        self.items = list(items)

    def _repr_html_(self) -> str:
        return "<ul>" + "".join(f'<li><a href="{html.escape(href)}">{html.escape(text)}</a>{html.escape(after)}</li>'
                                for text, href, after in self.items) + "</ul>"

    def _repr_markdown_(self) -> str:
        return "\n".join(f"- [{text}]({href}){after}" for text, href, after in self.items)
