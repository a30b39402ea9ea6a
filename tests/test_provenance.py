"""Code versions are computed from the import closure over normalised source: comments and
docstrings never change an id; a statement changes the ids of exactly the stages that can run
it."""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from sparsevis import provenance, runner, studies
from sparsevis.config import TRACKS

PACKAGE = Path(provenance.__file__).resolve().parent


def _versions(package_dir: Path) -> dict:
    out = {("prune", t): runner.code_version(t, package_dir) for t in TRACKS}
    out.update({(s, t): studies.code_version(s, t, package_dir) for s in studies.STAGES for t in TRACKS})
    return out


@pytest.fixture
def copy(tmp_path) -> Path:
    dest = tmp_path / "sparsevis"
    shutil.copytree(PACKAGE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))


def test_comments_docstrings_and_formatting_change_no_version(copy):
    before = _versions(copy)
    for f in copy.rglob("*.py"):
        text = f.read_text()
        tree = ast.parse(text)
        doc = ast.get_docstring(tree, clean=False)
        if doc:   # every module docstring rewritten, a comment and blank lines added
            text = text.replace(doc, doc + " (edited)", 1)
        f.write_text("# a new comment\n\n" + text + "\n\n# another comment\n")
    assert _versions(copy) == before


def test_a_statement_changes_exactly_the_stages_that_can_run_it(copy):
    before = _versions(copy)
    # the bootstrap behind every interval: every stage uses it
    _edit(copy / "stats.py", "def bootstrap_ci(", "_CHANGED = 1\n\n\ndef bootstrap_ci(")
    after = _versions(copy)
    assert all(after[k] != before[k] for k in before), "stats.py is in every stage's closure"

    # LOST: only the discovery study, on every track
    before = after
    lost = copy / "discovery" / "lost.py"
    _edit(lost, "\ndef ", "\n_CHANGED = 1\n\n\ndef ")
    after = _versions(copy)
    changed = {k for k in before if after[k] != before[k]}
    assert changed == {("discovery", t) for t in TRACKS}

    # the paper track's data: only the paper track's stages
    before = after
    _edit(copy / "tracks" / "paper.py", "\nclass Paper(", "\n_CHANGED = 1\n\n\nclass Paper(")
    after = _versions(copy)
    assert {k for k in before if after[k] != before[k]} == {(s, "paper") for s in ("prune", *studies.STAGES)}

    # the training loop: the prune stage (and not a study, which only reads checkpoints)
    before = after
    _edit(copy / "runner.py", "\ndef _write_results(", "\n_CHANGED = 1\n\n\ndef _write_results(")
    after = _versions(copy)
    assert {k for k in before if after[k] != before[k]} == {("prune", t) for t in TRACKS}


def test_closure_follows_imports_inside_functions_and_relative_imports(tmp_path):
    pkg = tmp_path / "sparsevis"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from sparsevis import b\n    return b.g()\n")
    (pkg / "b.py").write_text("from .sub import c\n\ndef g():\n    return c.X\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("X = 1\n")
    (pkg / "d.py").write_text("Y = 2\n")
    mods = provenance.closure("sparsevis.a", package_dir=pkg)
    assert set(mods) == {"sparsevis", "sparsevis.a", "sparsevis.b", "sparsevis.sub", "sparsevis.sub.c"}
    v = provenance.code_version("sparsevis.a", package_dir=pkg)
    (pkg / "d.py").write_text("Y = 3\n")            # not imported: no change
    assert provenance.code_version("sparsevis.a", package_dir=pkg) == v
    (pkg / "sub" / "c.py").write_text("X = 2\n")    # reached through a relative import
    assert provenance.code_version("sparsevis.a", package_dir=pkg) != v
    with pytest.raises(ValueError, match="not a module"):
        provenance.closure("sparsevis.nothing", package_dir=pkg)
