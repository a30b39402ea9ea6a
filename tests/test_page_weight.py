"""Page weight: notebooks without their images, inline images out of the HTML into files,
duplicates and unlinked files dropped, only the vendored files the pages load, budgets checked.

The unit tests build small sites by hand; the slow test checks the tiny book that
the session's ``built`` fixture (tests/conftest.py) builds, the one build of the session.
"""
from __future__ import annotations

import base64
import io
import re

import pytest

from sparsevis import book


# The demo site (make book) as measured: its _static folder (theme and vendored files, the same
# on every profile) and the number of figure and slider-frame images its pages show (48.2 MB in
# all); the tiny book's budget scales the demo's by these.
DEMO_STATIC = 14.5 * 2**20
DEMO_SHOWN = 227


def _png(width: int, height: int, colour=(200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return buf.getvalue()


def _inline(data: bytes, extra: str = "") -> str:
    return f'<img class="sv-frame"{extra} src="data:image/png;base64,{base64.b64encode(data).decode()}"/>'


def test_inline_images_become_lazy_files_beside_the_page(tmp_path):
    a, b = _png(30, 20), _png(8, 5, (0, 0, 255))
    page = tmp_path / "book" / "ch.html"
    page.parent.mkdir()
    script = f'<script>var state = "data:image/png;base64,{base64.b64encode(b).decode()}";</script>'
    page.write_text("<html><body>" + _inline(a) + _inline(a, ' style="display:none"') + _inline(b, ' width="4"')
                    + script + "</body></html>")
    assert book.extract_inline_images(tmp_path) == 3
    text = page.read_text()
    tags = re.findall(r"<img\b[^>]*>", text)
    assert len(tags) == 3 and not any("base64" in t for t in tags)
    srcs = [re.search(r'src="([^"]+)"', t).group(1) for t in tags]
    assert srcs[0] == srcs[1] != srcs[2] and all(s.startswith("ch-img/") for s in srcs)
    assert (page.parent / srcs[0]).read_bytes() == a and (page.parent / srcs[2]).read_bytes() == b
    assert 'width="30" height="20"' in tags[0] and 'style="display:none"' in tags[1]
    assert 'width="4"' in tags[2] and 'height="5"' in tags[2] and tags[2].count("width=") == 1
    assert all('loading="lazy"' in t for t in tags)
    assert script in text   # data inside scripts (widget state) is left alone
    assert book.extract_inline_images(tmp_path) == 0   # idempotent


def _notebook(path, outputs_per_cell):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Chapter")]
    for outputs in outputs_per_cell:
        nb.cells.append(nbformat.v4.new_code_cell("x", outputs=outputs))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def test_notebooks_keep_their_text_and_leave_out_their_images(tmp_path):
    import nbformat
    from nbformat.v4 import new_output

    png = base64.b64encode(_png(4, 4)).decode()
    slider = f'<div class="sv-slider"><img src="data:image/jpeg;base64,{png}"/></div>'
    table = "<table><tr><td>0.93</td></tr></table>"
    outputs = [[new_output("stream", name="stdout", text="accuracy 0.93\n")],
               [new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"},
                           metadata={"image/png": {"width": 4}}),
                new_output("display_data", data={"text/markdown": "**Figure 1.** caption", "text/html": "<p>c</p>"})],
               [new_output("display_data", data={"text/html": slider, "text/plain": "<SliderHTML>"})],
               [new_output("execute_result", data={"text/html": table, "text/plain": "   acc\n0  0.93"},
                           execution_count=3)],
               [new_output("display_data", data={"image/svg+xml": "<svg/>", "image/jpeg": png})]]
    beside = tmp_path / "book" / "_generated" / "ch.ipynb"
    _notebook(beside, outputs)
    source_copy = tmp_path / "_sources" / "book" / "_generated" / "ch.ipynb"   # Sphinx's copy
    source_copy.parent.mkdir(parents=True)
    source_copy.write_bytes(beside.read_bytes())
    assert book.strip_notebook_images(tmp_path) == 6   # three images in each copy
    nb = nbformat.read(beside, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].source == "# Chapter" and "figures are on the book page" in nb.cells[1].source
    assert "[ch.html](ch.html)" in nb.cells[1].source
    out = [c.outputs for c in nb.cells[2:]]
    assert out[0][0].text == "accuracy 0.93\n"   # text outputs, tables and captions stay as they were
    assert out[1][1].data == {"text/markdown": "**Figure 1.** caption", "text/html": "<p>c</p>"}
    assert out[3][0].data == {"text/html": table, "text/plain": "   acc\n0  0.93"}
    for o in (out[1][0], out[2][0], out[4][0]):   # each image became one line naming the page
        assert o.data == {"text/plain": "[image left out of this copy of the notebook: see the book page ch.html]"}
    assert out[1][0].metadata == {}
    assert "base64" not in beside.read_text()
    stripped = beside.read_bytes()
    assert source_copy.read_bytes() == stripped   # still twins: drop_duplicates keeps one
    assert book.strip_notebook_images(tmp_path) == 0 and beside.read_bytes() == stripped   # idempotent
    _notebook(tmp_path / "plain.ipynb", [outputs[0]])
    before = (tmp_path / "plain.ipynb").read_bytes()
    assert book.strip_notebook_images(tmp_path) == 0 and (tmp_path / "plain.ipynb").read_bytes() == before


def test_duplicates_are_dropped_and_links_follow(tmp_path):
    gen = tmp_path / book.GENERATED
    (gen / "figures").mkdir(parents=True)
    (tmp_path / "_sources" / book.GENERATED).mkdir(parents=True)
    (tmp_path / "_images").mkdir()
    png = _png(10, 10)
    (tmp_path / "_images" / "abc.png").write_bytes(png)
    (gen / "figures" / "fig.png").write_bytes(png)
    (gen / "figures" / "other.png").write_bytes(_png(10, 10, (1, 2, 3)))
    (tmp_path / "_images" / "def.jpg").write_bytes(b"\xff\xd8\xff jpeg")
    (gen / "figures" / "photo.jpg").write_bytes(b"\xff\xd8\xff jpeg")
    (gen / "nb.ipynb").write_text('{"cells": []}')
    (tmp_path / "_sources" / book.GENERATED / "nb.ipynb").write_text('{"cells": []}')
    (tmp_path / "_sources" / book.GENERATED / "changed.ipynb").write_text("{}")
    (gen / "changed.ipynb").write_text('{"x": 1}')
    page = gen / "nb.html"
    page.write_text('<a href="figures/fig.png">PNG</a><a href="figures/other.png">x</a>'
                    '<a href="figures/photo.jpg">JPEG</a>'
                    '<a href="../../_sources/book/_generated/nb.ipynb">.ipynb</a>')
    assert book.drop_duplicates(tmp_path) == 3
    text = page.read_text()
    assert '"../../_images/abc.png"' in text and '"nb.ipynb"' in text and '"figures/other.png"' in text
    assert '"../../_images/def.jpg"' in text and not (gen / "figures" / "photo.jpg").exists()
    assert not (gen / "figures" / "fig.png").exists() and (gen / "figures" / "other.png").exists()
    assert not (tmp_path / "_sources" / book.GENERATED / "nb.ipynb").exists()
    assert (tmp_path / "_sources" / book.GENERATED / "changed.ipynb").exists()   # not identical: kept


def test_files_no_page_links_are_removed(tmp_path):
    gen = tmp_path / book.GENERATED
    for d in (tmp_path / "_images", gen / "figures", gen / "ch-img", gen / "notes-img"):
        d.mkdir(parents=True)
    files = {name: tmp_path / name for name in (
        "_images/shown.jpg", "_images/old.png", "_images/a b.png",
        f"{book.GENERATED}/figures/curves.svg", f"{book.GENERATED}/figures/grid.svg",
        f"{book.GENERATED}/ch-img/frame.jpg", f"{book.GENERATED}/ch-img/old-frame.png",
        f"{book.GENERATED}/notes-img/mine.png",   # no notes.html beside it: not the build's folder
        "_static/logo.png")}
    for f in files.values():
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    (gen / "ch.html").write_text('<img src="../../_images/shown.jpg" loading="lazy"/>'
                                 "<a href='figures/curves.svg#top'>SVG</a><img src=\"ch-img/frame.jpg\">"
                                 '<a href="https://example.org/_images/old.png">x</a>')
    (tmp_path / "index.html").write_text('<img src="_images/a%20b.png">')
    assert book.drop_unreferenced(tmp_path) == 3
    gone = {"_images/old.png", f"{book.GENERATED}/figures/grid.svg", f"{book.GENERATED}/ch-img/old-frame.png"}
    assert {name for name, f in files.items() if not f.exists()} == gone
    assert book.drop_unreferenced(tmp_path) == 0


def test_vendor_publishes_only_the_listed_files(tmp_path, monkeypatch):
    from sparsevis.book import vendor

    pkgs = {}
    for key, (_, _, _, patterns) in book.VENDOR.items():
        pkg = tmp_path / "cache" / key / "package"
        for name in ("dist/embed-amd.js", "dist/icons.woff2", "dist/icons.ttf", "dist/icons.svg",
                     "es5/tex-mml-chtml.js", "es5/tex-chtml.js", "require.js"):
            (pkg / name).parent.mkdir(parents=True, exist_ok=True)
            (pkg / name).write_text(name)
        pkgs[key] = pkg
    monkeypatch.setattr(vendor, "fetch_vendor", lambda cache: pkgs)
    site = tmp_path / "html"
    stale = site / "_static" / "vendor" / "mathjax" / "tex-chtml.js"   # an earlier build published it
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    vendor.install_vendor(site, tmp_path / "cache")
    published = sorted(p.relative_to(site / "_static" / "vendor").as_posix()
                       for p in (site / "_static" / "vendor").rglob("*") if p.is_file())
    assert published == ["html-manager/embed-amd.js", "html-manager/icons.woff2", "mathjax/tex-mml-chtml.js",
                         "requirejs/require.js"]


def test_budget_names_the_heavy_page_and_the_site(tmp_path):
    (tmp_path / "light.html").write_text("x" * 100)
    (tmp_path / "heavy.html").write_text("x" * 3000)
    (tmp_path / "data.bin").write_bytes(b"0" * 5000)
    assert book.check_page_weight(tmp_path, page_budget=4000, site_budget=10_000) == []
    over = book.check_page_weight(tmp_path, page_budget=1000, site_budget=6000)
    assert len(over) == 2 and over[0].startswith("heavy.html") and over[1].startswith("the whole site")


@pytest.mark.slow
def test_tiny_book_is_within_the_page_weight_budget(built):  # noqa: F811
    _, html_dir, _, _ = built
    assert book.check_page_weight(html_dir) == []
    weights = book.page_weights(html_dir)
    assert max(weights.values()) <= book.PAGE_BUDGET
    # the demo's budget scaled to tiny: the same theme and vendored files (_static), and the rest
    # (figures, slider frames, pages, notebooks) in proportion to the figures and frames shown
    static = sum(f.stat().st_size for f in (html_dir / "_static").rglob("*") if f.is_file())
    shown = [f for f in html_dir.rglob("*") if f.suffix in (".png", ".jpg")
             and (f.parent.name == "_images" or f.parent.name.endswith("-img"))]
    budget = static + (book.SITE_BUDGET - DEMO_STATIC) * len(shown) / DEMO_SHOWN
    assert book.site_weight(html_dir) <= budget, (book.site_weight(html_dir) / 2**20, budget / 2**20)
    # what keeps it there: the notebooks without images, an SVG only for a plot, no stale file
    for nb in html_dir.rglob("*.ipynb"):
        text = nb.read_text(encoding="utf-8")
        assert '"image/' not in text and "data:image/" not in text, nb.name
    assert not list((html_dir / "_sources").rglob("*.ipynb"))
    svgs = list((html_dir / book.GENERATED / "figures").glob("*.svg"))
    assert svgs and not [f.name for f in svgs if b"<image" in f.read_bytes()]
    assert list(html_dir.rglob("*-img/*.jpg")) and list((html_dir / "_images").glob("*.jpg"))
    assert book.drop_unreferenced(html_dir) == 0 and book.drop_duplicates(html_dir) == 0
    for name in weights:   # no image left inline in the markup
        text = (html_dir / name).read_text(encoding="utf-8")
        assert not re.search(r"<img\b[^>]*src=[\"']data:", text), name
    pruning = (html_dir / "book" / "_generated" / "pruning.html").read_text()
    frames = re.findall(r'<img class="sv-frame"[^>]*>', pruning)
    assert frames and all('loading="lazy"' in f and "width=" in f for f in frames)
