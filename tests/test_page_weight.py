"""Page weight: inline images out of the HTML into files, duplicates dropped, budgets checked.

The unit tests build small sites by hand; the slow test checks the tiny book that
the session's ``built`` fixture (tests/conftest.py) builds, the one build of the session.
"""
from __future__ import annotations

import base64
import io
import re

import pytest

from sparsevis import book


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


def test_duplicates_are_dropped_and_links_follow(tmp_path):
    gen = tmp_path / book.GENERATED
    (gen / "figures").mkdir(parents=True)
    (tmp_path / "_sources" / book.GENERATED).mkdir(parents=True)
    (tmp_path / "_images").mkdir()
    png = _png(10, 10)
    (tmp_path / "_images" / "abc.png").write_bytes(png)
    (gen / "figures" / "fig.png").write_bytes(png)
    (gen / "figures" / "other.png").write_bytes(_png(10, 10, (1, 2, 3)))
    (gen / "nb.ipynb").write_text('{"cells": []}')
    (tmp_path / "_sources" / book.GENERATED / "nb.ipynb").write_text('{"cells": []}')
    (tmp_path / "_sources" / book.GENERATED / "changed.ipynb").write_text("{}")
    (gen / "changed.ipynb").write_text('{"x": 1}')
    page = gen / "nb.html"
    page.write_text('<a href="figures/fig.png">PNG</a><a href="figures/other.png">x</a>'
                    '<a href="../../_sources/book/_generated/nb.ipynb">.ipynb</a>')
    assert book.drop_duplicates(tmp_path) == 2
    text = page.read_text()
    assert '"../../_images/abc.png"' in text and '"nb.ipynb"' in text and '"figures/other.png"' in text
    assert not (gen / "figures" / "fig.png").exists() and (gen / "figures" / "other.png").exists()
    assert not (tmp_path / "_sources" / book.GENERATED / "nb.ipynb").exists()
    assert (tmp_path / "_sources" / book.GENERATED / "changed.ipynb").exists()   # not identical: kept


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
    assert book.site_weight(html_dir) <= book.SITE_BUDGET
    for name in weights:   # no image left inline in the markup
        text = (html_dir / name).read_text(encoding="utf-8")
        assert not re.search(r"<img\b[^>]*src=[\"']data:", text), name
    pruning = (html_dir / "book" / "_generated" / "pruning.html").read_text()
    frames = re.findall(r'<img class="sv-frame"[^>]*>', pruning)
    assert frames and all('loading="lazy"' in f and "width=" in f for f in frames)
