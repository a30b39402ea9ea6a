"""The study notebooks run end to end with papermill on the tiny profile and draw their figures.

Each notebook runs (or finds cached) its study stage itself, as it does when run by hand. The
run store is the session's (``conftest.session_store``, shared with test_explorer.py), so the
prune stage runs once for the session. Without the model-vs-human stimuli (``$SPARSEVIS_DATA_DIR``
or ``../shared/data``) the notebooks run on the synthetic track only.
"""
from __future__ import annotations

import ast
import json
import os
import time
from pathlib import Path

import pytest

pm = pytest.importorskip("papermill")

from tests.conftest import DATA, ROOT
STUDY_NOTEBOOKS = ("interpretability", "object_discovery", "human_alignment")
PARAMETERS = {"profile", "track", "archs", "methods", "device", "seed", "result_dirs", "checkpoints"}
EXPLORER_PARAMETERS = {"profile", "run", "method", "n_images", "device", "result_dirs"}
ALL_NOTEBOOKS = ("pruning", "interpretability", "object_discovery", "human_alignment", "sweet_spots", "explorer")
GLUE_LINES = 4   # the longest function a notebook may hold: its figures live in sparsevis.figures


def _outputs(nb: dict, mime: str) -> list:
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
            if o.get("output_type") in ("display_data", "execute_result") and mime in o.get("data", {})]


@pytest.mark.parametrize("name", STUDY_NOTEBOOKS + ("explorer",))
def test_notebook_is_committed_clean(name):
    nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        f"notebooks/{name}.ipynb is committed with outputs"
    assert "Open in Colab" in "".join(nb["cells"][0]["source"])
    assert "google.colab" in "".join(code[0]["source"])
    declared = set(pm.inspect_notebook(str(ROOT / "notebooks" / f"{name}.ipynb")))
    assert declared == (EXPLORER_PARAMETERS if name == "explorer" else PARAMETERS)


@pytest.mark.parametrize("name", ALL_NOTEBOOKS)
def test_notebook_holds_no_long_function(name):
    nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    long = []
    for k, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        for node in ast.walk(ast.parse("".join(cell["source"]))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                n = node.end_lineno - node.lineno + 1
                if n > GLUE_LINES:
                    long.append(f"code cell {k}: {getattr(node, 'name', 'lambda')} ({n} lines)")
    assert not long, f"notebooks/{name}.ipynb: move these into sparsevis.figures: {long}"


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDY_NOTEBOOKS)
def test_notebook_runs_on_tiny(name, run_store, tmp_path):
    params = {"profile": "tiny", "device": "cpu"}
    if DATA is None:
        params["track"] = "synthetic"
    t = time.time()
    pm.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
                        parameters=params, cwd=str(tmp_path), kernel_name="python3",
                        progress_bar=False, log_output=False)   # raises on any error in a cell
    print(f"\n{name} on tiny: {time.time() - t:.0f} s")
    nb = json.loads((tmp_path / f"{name}.ipynb").read_text())
    shown = _outputs(nb, "image/png") + _outputs(nb, "image/jpeg")
    assert len(shown) >= 3, f"{name}: only {len(shown)} figures"
    # every figure is followed by its caption with provenance (track, profile, run ids)
    captions = [o["data"]["text/markdown"] for o in _outputs(nb, "text/markdown")
                if "made by the executed notebook" in "".join(o["data"]["text/markdown"])]
    assert len(captions) >= len(shown)
    assert all("profile: `tiny`" in "".join(c) for c in captions)
    # the kernel-free slider (interpretability, discovery) and the files behind each figure
    if name != "human_alignment":
        assert any('class="sv-slider"' in "".join(o["data"]["text/html"]) for o in _outputs(nb, "text/html"))
    figures = Path(os.environ["SPARSEVIS_FIGURES_DIR"])
    prefix = {"interpretability": "interpretability-", "object_discovery": "discovery-",
              "human_alignment": "alignment-"}[name]
    # a plot as PNG + SVG, a figure of images as one JPEG or PNG: an SVG never wraps pixels
    on_disk = sorted(figures.glob(f"{prefix}*"))
    assert on_disk and all(p.suffix in (".png", ".jpg", ".svg") for p in on_disk)
    for svg in (p for p in on_disk if p.suffix == ".svg"):
        assert svg.with_suffix(".png").is_file() and b"<image" not in svg.read_bytes(), svg.name


@pytest.mark.slow
def test_explorer_notebook_runs_on_tiny(run_store, tmp_path):
    """The explorer page: the widget is built, updates are timed, and the static figure and
    kernel-free slider are drawn (the book page has no kernel)."""
    t = time.time()
    pm.execute_notebook(str(ROOT / "notebooks" / "explorer.ipynb"), str(tmp_path / "explorer.ipynb"),
                        parameters={"profile": "tiny", "device": "cpu"}, cwd=str(tmp_path),
                        kernel_name="python3", progress_bar=False, log_output=False)
    print(f"\nexplorer on tiny: {time.time() - t:.0f} s")
    nb = json.loads((tmp_path / "explorer.ipynb").read_text())
    assert _outputs(nb, "application/vnd.jupyter.widget-view+json"), "no widget displayed"
    assert _outputs(nb, "image/png") + _outputs(nb, "image/jpeg"), "no static figure"
    assert any('class="sv-slider"' in "".join(o["data"]["text/html"]) for o in _outputs(nb, "text/html"))
    timing = [o for o in _outputs(nb, "text/markdown") if "Median update" in "".join(o["data"]["text/markdown"])]
    assert timing
