"""The Colab set-up cell: one template for the first code cell of every notebook in ``notebooks/``.

In Colab the cell installs sparsevis from its repository with the ``[explorer]`` extra (ipywidgets;
everything else the notebooks import is a core dependency) and nothing of the book's toolchain,
then fetches the MobileNetV2 weights and the model-vs-human stimuli; anywhere else it does
nothing. The requirements are ranges (``torch>=...``) and pip's default strategy upgrades a
dependency only when the installed version does not satisfy them, so Colab's own torch and
torchvision stay (tests/test_colab.py checks this offline against stand-in distributions).

The repository is one setting, :data:`sparsevis.plotting.GITHUB_REPO` (the "Open in Colab" links
use it too). The cell runs before sparsevis is installed, so it carries the repository as a
literal: regenerate the cells after changing the setting with ``python -m sparsevis.colab``
(tests/test_colab.py fails while any notebook's cell differs from :func:`cell_source`).
"""
from __future__ import annotations

import sys
from pathlib import Path

from sparsevis.plotting import GITHUB_REPO

EXTRA = "explorer"
DATASETS = ("cue-conflict", "edge", "silhouette")   # what the notebooks' real track reads
TEMPLATE = """\
# Set-up: in Colab, install sparsevis from its repository (keeping Colab's torch) with the
# stimuli and weights the notebooks use; anywhere else this cell does nothing.
# Generated from sparsevis/colab.py: edit it there and run `python -m sparsevis.colab`.
import subprocess, sys

REPO = "{repo}"   # sparsevis.plotting.GITHUB_REPO
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    f"sparsevis[{extra}] @ git+https://github.com/{{REPO}}"], check=True)
    subprocess.run([sys.executable, "-m", "sparsevis", "fetch-weights"], check=True)
    subprocess.run([sys.executable, "-m", "sparsevis", "fetch-data", {datasets}], check=True)"""


def cell_source(repo: str = GITHUB_REPO) -> str:
    """The set-up cell's code, installing from GitHub repository ``repo`` (owner/name)."""
    return TEMPLATE.format(repo=repo, extra=EXTRA, datasets=", ".join(f'"{d}"' for d in DATASETS))


def setup_cell_index(nb) -> int:
    """Index of a notebook's first code cell (the set-up cell); ValueError when it has none."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            return i
    raise ValueError("notebook has no code cell; expected the Colab set-up cell first")


def write_cells(notebooks: str | Path) -> list[Path]:
    """Set the first code cell of every ``*.ipynb`` in ``notebooks`` to :func:`cell_source`
    (its metadata kept); returns the notebooks changed."""
    import nbformat

    changed = []
    for path in sorted(Path(notebooks).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cell = nb.cells[setup_cell_index(nb)]
        if cell.source != cell_source():
            cell.source = cell_source()
            nbformat.write(nb, path)
            changed.append(path)
    return changed


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("notebooks")
    for p in write_cells(folder):
        print(f"updated {p}")
