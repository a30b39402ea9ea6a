"""The book: notebooks, figure helpers, the offline check, and a full build on ``tiny``.

The full build (marked slow) copies the book's sources into a temporary root, runs every stage
into a temporary run store, executes the notebooks with papermill, builds the HTML with Jupyter
Book and checks it: every chapter present, every figure image present and captioned with its
provenance, nothing loaded from another host, the pinned JavaScript in place, the executed
notebooks beside their pages, a second run served from the cache, and a headless Chromium
screenshot of a chapter that shows a figure.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pytest
import yaml

from sparsevis import book, plotting

ROOT = Path(__file__).resolve().parents[1]
OWN_NOTEBOOKS = ("pruning", "sweet_spots")   # the ones that must exist now; the table lists all


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------
def test_toc_follows_the_chapter_table():
    book.check_toc(ROOT)
    files = book.toc_files(ROOT)
    assert files[0] == "book/intro" and files[-2:] == ["book/reproduce", "book/api"]
    assert [f.split("/")[-1] for f in files[1:-2]] == [c.notebook for c in book.CHAPTERS]


def test_config_is_offline_and_points_at_vendored_js():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert cfg["launch_buttons"]["thebe"] is False
    assert not any(cfg["launch_buttons"].get(k) for k in ("binderhub_url", "jupyterhub_url", "colab_url"))
    sphinx = cfg["sphinx"]["config"]
    assert "sphinx_thebe" not in sphinx["extensions"]
    assert sphinx["mathjax_path"].startswith("vendor/mathjax/")
    assert all(k.startswith("vendor/") for k in sphinx["nb_ipywidgets_js"])
    assert "://" not in json.dumps(sphinx["nb_ipywidgets_js"])
    assert cfg["repository"]["url"] == f"https://github.com/{plotting.GITHUB_REPO}"
    for key, (package, version, integrity, files) in book.VENDOR.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version) and integrity.startswith("sha512-"), key


@pytest.mark.parametrize("chapter", [c.notebook for c in book.CHAPTERS])
def test_notebook_conventions(chapter):
    path = ROOT / "notebooks" / f"{chapter}.ipynb"
    if not path.exists():
        if chapter in OWN_NOTEBOOKS:
            pytest.fail(f"{path} is missing")
        pytest.skip(f"{path} not written yet")
    nb = nbformat.read(path, as_version=4)
    first, setup = nb.cells[0], nb.cells[1]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert plotting.colab_url(chapter) in first.source, "first cell: 'Open in Colab' link to GITHUB_REPO"
    assert "<img" not in first.source and "colab-badge" not in first.source, "no remote badge image"
    assert setup.cell_type == "code" and "google.colab" in setup.source
    assert f'"{plotting.GITHUB_REPO}"' in setup.source
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "profile" in params[0].source and "device" in params[0].source
    for c in nb.cells:
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None, f"{path}: committed with outputs"


# --------------------------------------------------------------------------------------------
# Figure helpers
# --------------------------------------------------------------------------------------------
def test_provenance_names_everything():
    text = plotting.provenance(["synthetic", "real"], "tiny", ["abc123", "abc123", "def456"], "cfg0",
                               "pruning")
    for part in ("synthetic", "real", "`tiny`", "`abc123`", "`def456`", "`cfg0`", "[pruning.ipynb](pruning.ipynb)"):
        assert part in text
    cap = plotting.Caption("What is plotted.", text, {"png": Path("x/f.png"), "svg": Path("x/f.svg")}, "Figure 1.")
    html = cap._repr_html_()
    assert 'class="sv-provenance"' in html and '<a href="pruning.ipynb">' in html
    assert '<a href="figures/f.svg">SVG</a>' in html and "<code>tiny</code>" in html
    photo = plotting.Caption("Images.", text, {"jpg": Path("x/g.jpg")})
    assert '<a href="figures/g.jpg">JPEG</a>' in photo._repr_html_() and "SVG" not in photo._repr_html_()


def test_sparsity_slider_is_self_contained():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    frames = []
    for k in range(3):
        fig, ax = plt.subplots(figsize=(2, 1.5))
        ax.plot([0, 1], [0, k])
        frames.append(fig)
    frames.append(np.random.default_rng(0).random((8, 8)))
    html = str(plotting.sparsity_slider(frames, ["0 %", "50 %", "75 %", "87.5 %"], title="t"))
    assert html.count('src="data:image/png;base64,') == 4
    assert 'type="range"' in html and 'max="3"' in html
    # a frame of raster images (a heat map over a photograph) is a JPEG
    photo = str(plotting.sparsity_slider([_photo_figure(plt)], ["0 %"]))
    assert photo.count('src="data:image/jpeg;base64,') == 1
    with pytest.raises(ValueError, match="expected PNG or JPEG bytes"):
        plotting.sparsity_slider([b"GIF89a\x01\x00"], ["0 %"])
    assert not re.search(r"src=[\"']?(https?:)?//", html)
    with pytest.raises(ValueError, match="as many labels"):
        plotting.sparsity_slider(frames[:2], ["a"])


def test_sparsity_axis_spreads_high_sparsity():
    import numpy as np

    pos = plotting.sparsity_position([0.0, 0.5, 0.9, 0.99])
    assert np.allclose(pos, [0, np.log10(2), 1, 2])
    assert plotting.format_sparsity(0.9) == "90 %" and plotting.format_sparsity(0.956) == "95.6 %"


def test_savefig_writes_png_and_svg(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plotting.use_style()
    fig, ax = plt.subplots()
    plotting.sparsity_axis(ax, max_sparsity=0.95)
    ax.plot([0, 0.5, 0.9], [1, 0.9, 0.5])
    paths = plotting.savefig(fig, "f", tmp_path)
    assert paths["png"].read_bytes()[:4] == b"\x89PNG" and b"<svg" in paths["svg"].read_bytes()[:500]
    with pytest.raises(ValueError, match="file stem"):
        plotting.savefig(fig, "a/b", tmp_path)


def _photo_figure(plt, size: int = 96):
    """A figure like the heat-map grids: a photograph-like image with a map and a title."""
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] / size
    img = np.clip(np.stack([xx, yy, 1 - xx], axis=-1) * 200 + rng.normal(0, 25, (size, size, 3)), 0, 255)
    fig, axes = plt.subplots(1, 2, figsize=(5, 2.6))
    for ax in axes:
        plotting.overlay(ax, img.astype(np.uint8), np.exp(-((xx - 0.5) ** 2 + (yy - 0.4) ** 2) * 8))
        plotting.image_panel(ax)
    fig.suptitle("Grad-CAM · 90 %")
    return fig


def test_figures_of_images_get_one_faithful_jpeg_and_no_svg(tmp_path):
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    plotting.use_style()
    for stale in ("photo.png", "photo.svg"):   # an earlier version of the figure, as PNG + SVG
        (tmp_path / stale).write_bytes(b"old")
    fig = _photo_figure(plt)
    assert plotting.draws_images(fig)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=plotting.PNG_DPI, bbox_inches="tight")
    paths = plotting.savefig(fig, "photo", tmp_path)
    assert set(paths) == {"jpg"} and sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]
    jpg = paths["jpg"].read_bytes()
    assert jpg[:3] == b"\xff\xd8\xff" and len(jpg) < 0.6 * len(png.getvalue())
    ref = np.asarray(Image.open(png).convert("RGB"), dtype=float)
    got = np.asarray(Image.open(paths["jpg"]), dtype=float)
    assert got.shape == ref.shape and np.abs(got - ref).mean() < 2.0   # 0..255: visually the same

    # a flat image (a small matrix drawn as cells) PNG stores exactly and smaller: PNG, still no SVG
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.imshow(np.arange(12).reshape(3, 4), cmap="magma_r")
    assert set(plotting.savefig(fig, "matrix", tmp_path)) == {"png"}
    assert not (tmp_path / "matrix.svg").exists()
    # a plot of lines stays vector: PNG to show, SVG to download
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert not plotting.draws_images(fig) and set(plotting.savefig(fig, "lines", tmp_path)) == {"png", "svg"}


def test_check_offline_flags_cdn_resources(tmp_path):
    (tmp_path / "ok.html").write_text('<script src="_static/a.js"></script><link rel="stylesheet" '
                                      'href="_static/b.css"><a href="https://example.org">x</a>'
                                      '<link rel="canonical" href="https://example.org/p.html">')
    assert book.check_offline(tmp_path) == []
    (tmp_path / "bad.html").write_text('<script src="https://cdn.jsdelivr.net/npm/x.js"></script>'
                                       '<link href="//fonts.googleapis.com/css" rel="stylesheet">'
                                       '<script>const U = "https://unpkg.com/thebe@0.8.2/lib/index.js"</script>')
    (tmp_path / "s.css").write_text("@import url('https://fonts.googleapis.com/css?family=X');")
    found = book.check_offline(tmp_path)
    assert len(found) == 4, found


# --------------------------------------------------------------------------------------------
# The full build on `tiny`
# --------------------------------------------------------------------------------------------
def _images(html: str) -> list[str]:
    return re.findall(r"<img\b[^>]*\bsrc=\"([^\"]+)\"", html)


@pytest.fixture(scope="module")
def browser() -> str:
    """Headless Chromium's executable; the browser checks skip where it is not installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium): no browser check")
    return found


@pytest.mark.slow
def test_book_builds_on_tiny(built):
    root, html_dir, first, second = built
    assert html_dir == root / "_build" / "html" and (html_dir / "index.html").is_file()
    log = json.loads((root / "book" / "_generated" / "build.json").read_text())
    assert log["profile"] == "tiny" and log["result_dirs"]["prune"]

    # every chapter present, in the toc's order, with its title
    for entry in book.toc_files(root):
        page = html_dir / f"{entry}.html"
        assert page.is_file(), f"chapter {entry} missing from the HTML"
        assert "<h1>" in page.read_text() or "<h1 " in page.read_text()
    for ch in book.CHAPTERS:
        if log["notebooks"][ch.notebook] == "missing":
            assert ch.notebook not in OWN_NOTEBOOKS
            continue
        text = (html_dir / "book" / "_generated" / f"{ch.notebook}.html").read_text()
        assert ch.title.lower() in text.lower()
        # every figure image present on disk, and at least one figure per executed chapter
        images = _images(text)
        files = [src for src in images if not src.startswith("data:")]
        assert files, f"{ch.notebook}: no figure image"
        for src in files:
            assert (html_dir / "book" / "_generated" / src).resolve().is_file(), f"{ch.notebook}: {src} missing"
        # each figure carries its provenance and a link to the executed notebook beside the page
        assert text.count('class="sv-provenance"') >= len([s for s in files if "_images/" in s]), ch.notebook
        assert f'href="{ch.notebook}.ipynb"' in text
        executed = html_dir / "book" / "_generated" / f"{ch.notebook}.ipynb"
        nb = json.loads(executed.read_text())
        assert nb["metadata"]["papermill"]["parameters"]["profile"] == "tiny"
        assert nb["metadata"]["sparsevis"]["cache_key"]
        assert any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])

    pruning = (html_dir / "book" / "_generated" / "pruning.html").read_text()
    assert len([s for s in _images(pruning) if "_images/" in s]) >= 3
    assert 'class="sv-slider"' in pruning and 'type="range"' in pruning
    assert (html_dir / "book" / "_generated" / "figures" / "pruning-accuracy.svg").is_file()
    sweet = (html_dir / "book" / "_generated" / "sweet_spots.html").read_text()
    assert len([s for s in _images(sweet) if "_images/" in s]) >= 2
    api = (html_dir / "book" / "api.html").read_text()
    assert 'id="sparsevis.prune.global_magnitude"' in api and 'id="sparsevis.book.build"' in api

    # offline: nothing from another host, and the pinned JavaScript is where the config points
    assert book.check_offline(html_dir) == []
    for f in ("mathjax/tex-mml-chtml.js", "requirejs/require.js", "html-manager/embed-amd.js"):
        assert (html_dir / "_static" / "vendor" / f).is_file(), f
    intro = (html_dir / "book" / "intro.html").read_text()
    assert re.search(r'src="\.\./_static/vendor/mathjax/tex-mml-chtml\.js(\?v=\w+)?"', intro)

    # the second run: nothing changed, so every notebook comes from the cache
    assert log["notebooks"] == {c.notebook: ("missing" if log["notebooks"][c.notebook] == "missing"
                                             else "cached") for c in book.CHAPTERS}
    assert second < first


def _headless(browser: str, *args: str) -> str:
    """Run headless Chromium offline (no background networking) with a throw-away profile."""
    with tempfile.TemporaryDirectory() as profile_dir:
        return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                               "--disable-dev-shm-usage", "--disable-background-networking",
                               "--disable-component-update", f"--user-data-dir={profile_dir}", *args],
                              check=True, capture_output=True, text=True, timeout=120).stdout


@pytest.mark.slow
def test_chapter_screenshot_shows_a_figure(built, browser):
    from PIL import Image
    import numpy as np

    root, html_dir, _, _ = built
    shot = root / "_build" / "pruning-screenshot.png"
    _headless(browser, "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1280,2000",
              (html_dir / "book" / "_generated" / "pruning.html").as_uri())
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (2000, 1280)
    # a figure shows as saturated (coloured) pixels; the page chrome is grey, white and one blue
    saturation = img.max(axis=2) - img.min(axis=2)
    assert (saturation > 80).mean() > 0.003, f"no figure visible in {shot}"
    keep = os.environ.get("SPARSEVIS_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


@pytest.mark.slow
def test_slider_works_without_a_kernel(built, browser):
    """Move the static page's sparsity slider in headless Chromium and read what it shows."""
    root, html_dir, _, _ = built
    page = html_dir / "book" / "_generated" / "pruning.html"
    probe = page.with_name("pruning-slider-probe.html")
    probe.write_text(page.read_text().replace("</body>", """<script>
window.addEventListener("load", function () {
  var r = document.querySelector(".sv-slider .sv-range");
  r.value = r.max; r.dispatchEvent(new Event("input"));
  var shown = [].filter.call(document.querySelectorAll(".sv-slider .sv-frame"),
                             function (f) { return f.style.display !== "none"; });
  document.body.setAttribute("data-probe", shown.length + "|" + shown[0].dataset.index + "|" + r.max + "|" +
                             document.querySelector(".sv-slider .sv-label").textContent);
});
</script></body>"""))
    dom = _headless(browser, "--dump-dom", probe.as_uri())
    probe.unlink()
    n, index, last, label = re.search(r'data-probe="([^"]*)"', dom).group(1).split("|", 3)
    assert n == "1" and index == last != "0", dom[-500:]
    assert label.startswith(f"iteration {last}")


def test_cache_keys_follow_what_each_chapter_reads(tmp_path, monkeypatch):
    """Changing one study's results re-runs only the chapters that read it."""
    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(tmp_path))
    dirs = {}
    for stage in book.ALL_STAGES:
        d = tmp_path / stage / "tiny" / "synthetic-sv_resnet_s-imp-s0-0123456789ab"
        d.mkdir(parents=True)
        (d / "results.csv").write_text(f"{stage},1\n")
        dirs[stage] = [str(d.relative_to(tmp_path))]
    src = tmp_path / "nb.ipynb"
    src.write_text("{}")

    def keys():
        return {c.notebook: book.cache_key(c, src, {"profile": "tiny"}, "tiny", dirs)[0] for c in book.CHAPTERS}

    before = keys()
    (tmp_path / dirs["alignment"][0] / "results.csv").write_text("alignment,2\n")
    after = keys()
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {c.notebook for c in book.CHAPTERS if "alignment" in c.stages}
    assert changed == {"human_alignment", "sweet_spots"}
    assert book.cache_key(book.CHAPTERS[0], src, {"profile": "demo"}, "tiny", dirs)[0] != after["pruning"]
    src.write_text('{"cells": []}')
    assert keys()["pruning"] != after["pruning"]


def test_config_hash_covers_only_what_a_chapter_reads(monkeypatch):
    """A study setting changes the configuration hash of the chapters that read that study only."""
    import copy
    from dataclasses import replace

    from sparsevis import config

    before = {c.notebook: book.config_hash("tiny", chapter=c.notebook) for c in book.CHAPTERS}
    p = config.PROFILES["tiny"]
    studies = copy.deepcopy(p.studies)
    studies.setdefault("synthetic", {})["alignment"] = {"n_images": 7}
    monkeypatch.setitem(config.PROFILES, "tiny", replace(p, studies=studies))
    after = {c.notebook: book.config_hash("tiny", chapter=c.notebook) for c in book.CHAPTERS}
    assert {k for k in before if before[k] != after[k]} == {"human_alignment", "sweet_spots"}
    monkeypatch.setitem(config.PROFILES, "tiny", replace(p, n_boot=p.n_boot + 1))
    assert book.config_hash("tiny", chapter="pruning") == before["pruning"]
    assert book.config_hash("tiny", chapter="interpretability") != before["interpretability"]
