"""The book's parts: its chapters (one parameterised notebook each), its pages, its table of
contents, and the names the build shares."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sparsevis.analysis import stage as analysis

PACKAGE_DIR = Path(__file__).resolve().parents[1]
STUDY_STAGES = ("interpretability", "discovery", "alignment")
ALL_STAGES = ("prune",) + STUDY_STAGES
ANALYSIS = analysis.NAME   # after every study: the sweet spots over their per-item values
GENERATED = Path("book") / "_generated"       # executed notebooks, relative to the book root
NOTEBOOKS = Path("notebooks")
HTML = Path("_build") / "html"


@dataclass(frozen=True)
class Chapter:
    """One notebook chapter of the book.

    notebook: ``notebooks/<notebook>.ipynb``; title: its page title in ``_toc.yml``;
    stages: the results tables it reads (their contents are part of its cache key);
    parameters: extra papermill parameters; seconds: about how long the demo profile's
    notebook runs (the build starts the longest first). The package code its outputs depend
    on is found from the notebook's own imports (:func:`notebook_code_version`).
    """

    notebook: str
    title: str
    stages: tuple[str, ...]
    parameters: dict = field(default_factory=dict)
    seconds: float = 30.0


# The book's notebook chapters, in reading order: the single table that the build loop, the
# cache and the table of contents check (``_toc.yml`` must list them in this order).
CHAPTERS: tuple[Chapter, ...] = (
    Chapter("pruning", "Pruning", ("prune",), seconds=30),
    Chapter("interpretability", "Interpretability", ("prune", "interpretability"), seconds=67),
    Chapter("object_discovery", "Object discovery", ("prune", "discovery"), seconds=37),
    Chapter("human_alignment", "Human alignment", ("prune", "alignment"), seconds=18),
    Chapter("sweet_spots", "Sweet spots", ALL_STAGES + (ANALYSIS,), seconds=9),
    Chapter("explorer", "Explorer", ("prune",), seconds=21),
)
# Markdown pages around them, in ``_toc.yml`` order (the root first).
ROOT_PAGE = "book/intro"
PAGES_AFTER = ("book/reproduce", "book/api")

def chapter_of(notebook: str) -> Chapter:
    """The :data:`CHAPTERS` entry of a notebook name (``"pruning"``)."""
    for ch in CHAPTERS:
        if ch.notebook == Path(notebook).stem:
            return ch
    raise ValueError(f"notebook {notebook!r} is not a chapter; expected one of "
                     f"{[c.notebook for c in CHAPTERS]}")


class BookError(RuntimeError):
    """A notebook failed, or the HTML build did: the message says which and where to look."""


def _log(msg: str) -> None:
    print(f"[sparsevis] book: {msg}", flush=True)


def book_root(root: str | os.PathLike | None = None) -> Path:
    """The directory holding ``_config.yml`` and ``_toc.yml``: ``root``, the current directory
    when it has them, else the checkout this package sits in."""
    if root is not None:
        p = Path(root)
    elif Path("_config.yml").is_file() and Path("_toc.yml").is_file():
        p = Path(".")
    else:
        p = PACKAGE_DIR.parent
    if not (p / "_config.yml").is_file():
        raise FileNotFoundError(f"book root {p.resolve()}: no _config.yml (expected the repository root)")
    return p.resolve()


def toc_files(root: Path) -> list[str]:
    """The files ``_toc.yml`` lists, in order (root first)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("sections"))
            for part in e.get("parts", []) if isinstance(e, dict) else []:
                walk(part.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return files


def expected_toc() -> list[str]:
    return [ROOT_PAGE] + [(GENERATED / c.notebook).as_posix() for c in CHAPTERS] + list(PAGES_AFTER)


def check_toc(root: Path) -> None:
    found, expected = toc_files(root), expected_toc()
    if found != expected:
        raise ValueError(f"{root / '_toc.yml'} lists {found}; sparsevis.book.CHAPTERS expects {expected}")


