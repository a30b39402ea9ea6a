"""Stage 3 of the build: the Jupyter Book HTML, offline and within its page-weight budget."""
from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from sparsevis.fileio import (
    atomic_write_bytes,
    atomic_write_text,
    remove_stale_temp_files,
    sha256_file,
)
from sparsevis.runtime import die_with_parent

from .chapters import GENERATED, HTML, BookError, _log
from .vendor import install_vendor, vendor_cache

_EXTERNAL = [
    re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?((?:https?:)?//[^\"'\s>]+)", re.I),
    re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?((?:https?:)?//[^\"'\s>]+)[^>]*>", re.I),
    re.compile(r"@import\s+(?:url\()?[\"']?((?:https?:)?//[^\"')\s]+)", re.I),
    re.compile(r"url\(\s*[\"']?((?:https?:)?//[^\"')\s]+)", re.I),
    re.compile(r"<img\b[^>]*\bsrc\s*=\s*[\"']?((?:https?:)?//[^\"'\s>]+)", re.I),
]
_LINK_OK = re.compile(r"\brel\s*=\s*[\"']?(canonical|alternate|author|license|me)\b", re.I)


def check_offline(html_dir: Path) -> list[str]:
    """Every external resource a built page would load: ``<script src>``, stylesheet/preload
    ``<link>``, ``<img src>``, CSS ``@import`` and ``url()`` with an http(s) or protocol-relative
    address, in the HTML pages and the CSS files. Returns "file: url" strings (empty = offline)."""
    found = []
    for f in sorted(list(html_dir.rglob("*.html")) + list(html_dir.rglob("*.css"))):
        if "vendor" in f.relative_to(html_dir).parts:
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        if f.suffix == ".html":
            # inline scripts may load code themselves: any address of a .js/.css file counts;
            # otherwise (widget state, JSON) they are data, and only the markup is checked
            for body in re.findall(r"<script\b(?![^>]*\bsrc=)[^>]*>(.*?)</script>", text, flags=re.S | re.I):
                found += [f"{f.relative_to(html_dir)}: {u} (inline script)" for u in
                          re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}/[^\s\"'`]*?\.(?:m?js|css)\b", body)]
            text = re.sub(r"<script\b(?![^>]*\bsrc=)[^>]*>.*?</script>", "", text, flags=re.S | re.I)
        for pat in _EXTERNAL:
            for m in pat.finditer(text):
                if pat.pattern.startswith("<link") and _LINK_OK.search(m.group(0)):
                    continue
                found.append(f"{f.relative_to(html_dir)}: {m.group(1)}")
    return list(dict.fromkeys(found))


def _copy_beside_pages(root: Path, html_dir: Path) -> None:
    gen, target = root / GENERATED, html_dir / GENERATED
    target.mkdir(parents=True, exist_ok=True)
    for f in gen.glob("*.ipynb"):
        if not f.name.startswith("."):
            shutil.copyfile(f, target / f.name)
    if (gen / "figures").is_dir():
        remove_stale_temp_files(gen / "figures")   # a killed figure writer's: not for the site
        shutil.copytree(gen / "figures", target / "figures", dirs_exist_ok=True)


def build_html(root: Path, quiet: bool = False) -> Path:
    """``jupyter-book build`` (execution off, see _config.yml), then vendor JS, the executed
    notebooks beside their pages without their images (:func:`strip_notebook_images`), inline
    images out into files (:func:`extract_inline_images`), one copy of each file
    (:func:`drop_duplicates`), no file that no page links (:func:`drop_unreferenced`), and
    check: offline, and within the page-weight budget.

    A build that did not finish (killed, or failed) leaves ``_build/.html-incomplete``; the next
    one starts from an empty ``_build/html`` and Sphinx environment, since Sphinx rewrites only
    the pages older than their sources and would keep half-written or unprocessed ones."""
    incomplete = root / HTML.parent / ".html-incomplete"
    if incomplete.exists():
        _log("the last HTML build did not finish: building every page again")
        for d in (root / HTML, root / HTML.parent / ".doctrees"):
            shutil.rmtree(d, ignore_errors=True)
    atomic_write_text(incomplete, "an HTML build is running or was interrupted\n")
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
           "build", str(root), "--path-output", str(root)]
    t = time.time()
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, preexec_fn=die_with_parent)   # no orphan writing into _build
    log = proc.stdout + proc.stderr
    warnings = [ln for ln in log.splitlines() if "WARNING" in ln or "ERROR" in ln]
    for ln in warnings[:40]:
        print(f"    {ln}", flush=True)
    html_dir = root / HTML
    if proc.returncode != 0 or not (html_dir / "index.html").is_file():
        print(log[-6000:], file=sys.stderr)
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}); see the log above")
    _log(f"jupyter-book build: {time.time() - t:.0f} s, {len(warnings)} warnings")
    install_vendor(html_dir, vendor_cache(root))
    _copy_beside_pages(root, html_dir)
    n_stripped = strip_notebook_images(html_dir)
    n_images = extract_inline_images(html_dir)
    n_twins = drop_duplicates(html_dir)
    n_stale = drop_unreferenced(html_dir)
    _log(f"page weight: {n_stripped} image outputs left out of the notebooks, {n_images} inline images "
         f"moved to files, {n_twins} duplicate and {n_stale} unlinked files dropped; "
         f"site {site_weight(html_dir) / 2**20:.1f} MB")
    external = check_offline(html_dir)
    if external:
        raise BookError("the built book loads external resources (it must build offline):\n  "
                           + "\n  ".join(external[:30]))
    over = check_page_weight(html_dir)
    if any(not line.startswith("the whole site") for line in over):
        raise BookError("pages of the built book are too heavy:\n  " + "\n  ".join(over))
    for line in over:   # the site's total depends on the profile: said, not fatal
        _log(f"WARNING: over the page-weight budget: {line}")
    incomplete.unlink()
    return html_dir


# Page weight: the budget of one HTML page and of the whole site, in bytes.
PAGE_BUDGET = 3 * 2**20
SITE_BUDGET = 60 * 2**20
_INLINE_IMAGE = re.compile(
    r"<img\b(?P<before>[^>]*?)\bsrc\s*=\s*(?P<q>[\"'])data:image/(?P<kind>png|jpeg|gif|webp);base64,"
    r"(?P<data>[A-Za-z0-9+/=\s]+)(?P=q)(?P<after>[^>]*?)(?P<end>/?)>", re.I)
_EXTENSION = {"png": "png", "jpeg": "jpg", "gif": "gif", "webp": "webp"}


def _image_tag(m: re.Match, src: str, size: tuple[int, int]) -> str:
    attrs = f"{m.group('before')}{m.group('after')}"
    extra = "".join(f' {name}="{value}"' for name, value in
                    (("width", size[0]), ("height", size[1]), ("loading", "lazy"), ("decoding", "async"))
                    if not re.search(rf"\b{name}\s*=", attrs, re.I))
    return f'<img{m.group("before")}src="{src}"{m.group("after")}{extra}{m.group("end")}>'


_LEFT_OUT = "[image left out of this copy of the notebook: see the book page {page}]"
_LEFT_OUT_NOTE = (
    "**The figures are on the book page.** This copy of the executed notebook leaves out its image "
    "outputs (figures and slider frames) to keep the book light: each is replaced by a line of text, "
    "and the text, tables and captions are all here. The figures are on the page [{page}]({page}), "
    "where each caption links the figure's files (PNG and SVG for a plot, in `figures/` beside the "
    "page; JPEG or PNG for a figure of images). Running the notebook draws them again.")


def strip_notebook_images(html_dir: Path) -> int:
    """The site's notebooks (the executed chapters beside their pages, Sphinx's copies in
    ``_sources``) without the images their pages show: every image output (PNG, JPEG, SVG, ...)
    and every HTML output holding an inline image (a slider's frames) becomes a line of text
    naming the page; text, tables, markdown and captions stay. A note after the title says so.
    The executed notebooks the pages are built from (``book/_generated``) keep everything.
    Returns the outputs stripped."""
    import nbformat

    stripped = 0
    for path in sorted(html_dir.rglob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        page = f"{path.stem}.html"
        n = 0
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                data = out.get("data", {})
                images = [k for k, v in data.items() if k.startswith("image/")
                          or (k == "text/html" and "data:image/" in "".join(v))]
                if not images:
                    continue
                for k in images:
                    data.pop(k)
                    out.get("metadata", {}).pop(k, None)
                data["text/plain"] = _LEFT_OUT.format(page=page)
                n += 1
        if n:   # a notebook stripped before has no image left: unchanged
            note = nbformat.v4.new_markdown_cell(_LEFT_OUT_NOTE.format(page=page), id="sparsevis-images-left-out")
            nb.cells.insert(1 if nb.cells else 0, note)   # a fixed id: the copies stay byte-identical twins
            atomic_write_text(path, nbformat.writes(nb))
            stripped += n
    return stripped


def extract_inline_images(html_dir: Path) -> int:
    """Move every base64 ``<img>`` of every page into a file beside the page.

    The images of ``dir/page.html`` go to ``dir/page-img/<sha256 prefix>.<ext>`` (the same
    image once, however often it appears); the tag gets the file as ``src``, its ``width`` and
    ``height`` (the browser reserves the space before the file arrives) and ``loading="lazy"``:
    a frame of a kernel-free sparsity slider is hidden (``display:none``) until the slider
    reaches it, and a lazy image that is not displayed is not fetched, so the frames load on
    demand. Images inside scripts (widget state) are data and stay. Returns the images moved.
    """
    from PIL import Image

    moved = 0
    for page in sorted(html_dir.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        if "base64," not in text:
            continue
        folder = page.with_name(f"{page.stem}-img")
        scripts = [(m.start(), m.end()) for m in re.finditer(r"<script\b.*?</script>", text, flags=re.S | re.I)]

        def move(m: re.Match) -> str:
            nonlocal moved
            if any(a <= m.start() < b for a, b in scripts):
                return m.group(0)
            data = base64.b64decode(re.sub(r"\s+", "", m.group("data")))
            name = f"{hashlib.sha256(data).hexdigest()[:20]}.{_EXTENSION[m.group('kind').lower()]}"
            target = folder / name
            if not target.is_file():
                folder.mkdir(exist_ok=True)
                atomic_write_bytes(target, data)
            with Image.open(target) as im:
                size = im.size
            moved += 1
            return _image_tag(m, f"{folder.name}/{name}", size)

        new = _INLINE_IMAGE.sub(move, text)
        if new != text:
            atomic_write_text(page, new)
    return moved


def drop_duplicates(html_dir: Path) -> int:
    """Keep one copy of the files the build writes twice, and point the pages' links at it.

    Sphinx copies every source into ``_sources/``, so each executed notebook is there and
    beside its page (:func:`_copy_beside_pages`): the copy beside the page stays. MyST-NB
    writes each figure's PNG or JPEG output to ``_images/`` and the same file is also among the
    figure files beside the page (``figures/``, linked from its caption): the ``_images`` copy
    stays. Only byte-identical files are dropped. Returns the number of files removed.
    """
    pairs = ((html_dir / "_sources", list(html_dir.glob(f"{GENERATED.as_posix()}/*.ipynb"))),
             (html_dir / GENERATED / "figures", list((html_dir / "_images").glob("*"))))
    twins = {}
    for drop_dir, keep in pairs:
        by_hash = {sha256_file(f): f for f in keep if f.is_file()}
        for f in sorted(drop_dir.rglob("*")):
            twin = by_hash.get(sha256_file(f)) if f.is_file() else None
            if twin is not None:
                twins[f] = twin
    if not twins:
        return 0
    for page in sorted(html_dir.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        new = text
        for f, twin in twins.items():
            old_rel, new_rel = (os.path.relpath(x, page.parent).replace(os.sep, "/") for x in (f, twin))
            new = new.replace(f'"{old_rel}"', f'"{new_rel}"')
        if new != text:
            atomic_write_text(page, new)
    for f in twins:
        f.unlink()
    return len(twins)


_LINK = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"'#?]+)""", re.I)


def drop_unreferenced(html_dir: Path) -> int:
    """Remove the images and figure files that no page links: those of earlier builds.

    The HTML build is incremental: Sphinx adds each new figure output to ``_images/`` and never
    removes one, and so do :func:`extract_inline_images` (``<page>-img/``) and
    :func:`_copy_beside_pages` (``figures/``); a figure drawn anew, or in another format, would
    leave its old files in the site. Only those three folders are cleaned. Returns the number of
    files removed.
    """
    linked = set()
    for page in html_dir.rglob("*.html"):
        for m in _LINK.finditer(page.read_text(encoding="utf-8")):
            url = urllib.parse.unquote(m.group(1))
            if not re.match(r"^[a-z][a-z0-9+.-]*:|^/", url, re.I):   # relative: a file of the site
                linked.add(os.path.normpath(page.parent / url))
    folders = [html_dir / "_images", html_dir / GENERATED / "figures",
               *(d for d in html_dir.rglob("*-img") if d.with_name(f"{d.name[:-4]}.html").is_file())]
    unlinked = [f for d in folders if d.is_dir() for f in d.iterdir()
                if f.is_file() and os.path.normpath(f) not in linked]
    for f in unlinked:
        f.unlink()
    return len(unlinked)


def page_weights(html_dir: Path) -> dict[str, int]:
    """Bytes of each HTML page (the page alone: its images are separate files), by path
    relative to ``html_dir``."""
    return {p.relative_to(html_dir).as_posix(): p.stat().st_size for p in sorted(html_dir.rglob("*.html"))}


def site_weight(html_dir: Path) -> int:
    """Bytes of every file of the built site."""
    return sum(p.stat().st_size for p in html_dir.rglob("*") if p.is_file())


def check_page_weight(html_dir: Path, page_budget: int = PAGE_BUDGET, site_budget: int = SITE_BUDGET) -> list[str]:
    """The pages over ``page_budget`` and the site if over ``site_budget`` (empty: within)."""
    over = [f"{name}: {size / 2**20:.1f} MB > {page_budget / 2**20:g} MB"
            for name, size in page_weights(html_dir).items() if size > page_budget]
    total = site_weight(html_dir)
    if total > site_budget:
        over.append(f"the whole site: {total / 2**20:.1f} MB > {site_budget / 2**20:g} MB")
    return over


