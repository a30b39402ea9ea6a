"""The Colab set-up cell: every notebook's first code cell is the one template
(sparsevis.colab), it does nothing outside Colab, and its install keeps the torch already there.

The install check runs offline. A fresh virtual environment (no system site-packages) gets
stand-in distributions named ``torch`` 2.3.0 and ``torchvision`` 0.18.0 (metadata-only wheels
built here), as Colab has its own torch. A local wheelhouse offers those, a newer stand-in torch
2.14.0 / torchvision 0.29.2 (the versions constraints.txt pins) and a stand-in of every other
requirement of ``sparsevis[explorer]``. The pip command the cell runs in Colab (captured by
executing the cell itself) is then resolved with ``--dry-run --report`` against a copy of this
project, built as a wheel here (``--no-index --find-links``, so no network): pip must install sparsevis and its missing
requirements and leave torch and torchvision alone. As a control, the same resolution with
``--upgrade-strategy eager`` does pick the newer torch, so the wheelhouse really offers a
replacement and the check can fail.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement

from sparsevis import colab, plotting

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
COLAB_TORCH = {"torch": "2.3.0", "torchvision": "0.18.0"}       # what the "Colab" venv has
NEWER = {"torch": "2.14.0", "torchvision": "0.29.2"}             # offered in the wheelhouse


def _setup_cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return nb.cells[colab.setup_cell_index(nb)].source


def _run_cell(source: str, in_colab: bool, monkeypatch) -> list[list[str]]:
    """Execute a set-up cell with subprocess.run recorded instead of run; the commands."""
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append([str(c) for c in cmd]))
    if in_colab:
        monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(source, "<colab cell>", "exec"), {})
    return calls


def test_notebooks_are_there():
    assert len(NOTEBOOKS) >= 6, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_cell_is_the_template(path):
    assert _setup_cell(path) == colab.cell_source(), \
        f"{path.name}: the set-up cell differs from sparsevis.colab.cell_source(); run python -m sparsevis.colab"


def test_setup_cell_installs_from_the_one_repository_setting(monkeypatch):
    src = colab.cell_source()
    assert _run_cell(src, in_colab=False, monkeypatch=monkeypatch) == []
    pip, weights, data = _run_cell(src, in_colab=True, monkeypatch=monkeypatch)
    assert pip == [sys.executable, "-m", "pip", "install", "-q",
                   f"sparsevis[explorer] @ git+https://github.com/{plotting.GITHUB_REPO}"]
    assert weights[1:] == ["-m", "sparsevis", "fetch-weights"]
    assert data[1:4] == ["-m", "sparsevis", "fetch-data"] and set(data[4:]) == set(colab.DATASETS)
    other = _run_cell(colab.cell_source("someone/fork"), in_colab=True, monkeypatch=monkeypatch)
    assert other[0][-1] == "sparsevis[explorer] @ git+https://github.com/someone/fork"


def test_write_cells_replaces_only_the_setup_cell(tmp_path):
    for p in NOTEBOOKS[:2]:
        shutil.copy(p, tmp_path / p.name)
    nb = nbformat.read(tmp_path / NOTEBOOKS[0].name, as_version=4)
    i = colab.setup_cell_index(nb)
    rest = [c.source for c in nb.cells[i + 1:]]
    nb.cells[i].source = "print('old set-up')"
    nbformat.write(nb, tmp_path / NOTEBOOKS[0].name)
    assert colab.write_cells(tmp_path) == [tmp_path / NOTEBOOKS[0].name]
    nb = nbformat.read(tmp_path / NOTEBOOKS[0].name, as_version=4)
    assert nb.cells[i].source == colab.cell_source() and [c.source for c in nb.cells[i + 1:]] == rest
    assert colab.write_cells(tmp_path) == []


# ------------------------------------------------------------------------ the install resolution
def _stub_wheel(folder: Path, name: str, version: str, requires=()) -> Path:
    """A metadata-only wheel: pip resolves and installs it like the real distribution's."""
    dist = f"{re.sub(r'[-_.]+', '_', name)}-{version}"
    files = {
        f"{dist}.dist-info/METADATA": "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                                               *(f"Requires-Dist: {r}\n" for r in requires)]),
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: sparsevis-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{dist}.dist-info/RECORD"] = "".join(f"{f},,\n" for f in files) + f"{dist}.dist-info/RECORD,,\n"
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for f, text in files.items():
            zf.writestr(f, text)
    return path


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"][colab.EXTRA]]


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"pip {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_colab_install_keeps_the_torch_there(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for versions in (COLAB_TORCH, NEWER):
        _stub_wheel(wheels, "torch", versions["torch"])
        _stub_wheel(wheels, "torchvision", versions["torchvision"], [f"torch=={versions['torch']}"])
    for req in _requirements():
        if req.name in COLAB_TORCH:
            assert not req.specifier or req.specifier.contains(COLAB_TORCH[req.name]), \
                f"pyproject.toml: {req} excludes Colab-like {req.name} {COLAB_TORCH[req.name]}"
            continue
        version = metadata.version(req.name)   # the tested version, from this environment
        assert req.specifier.contains(version), f"pyproject.toml: {req} excludes the tested {version}"
        _stub_wheel(wheels, req.name, version)

    project = tmp_path / "project"             # the package as the cell would fetch it, built
    project.mkdir()                            # here (setuptools is in this environment, not the venv)
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, project / f)
    shutil.copytree(ROOT / "sparsevis", project / "sparsevis", ignore=shutil.ignore_patterns("__pycache__"))
    _pip(Path(sys.executable), "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", str(tmp_path / "dist"), str(project))
    (built,) = (tmp_path / "dist").glob("sparsevis-*.whl")

    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True, timeout=300)
    python = tmp_path / "venv" / "bin" / "python"
    offline = ["--no-index", "--find-links", str(wheels)]
    _pip(python, "install", "-q", *offline, *(f"{k}=={v}" for k, v in COLAB_TORCH.items()))

    pip_cmd = _run_cell(_setup_cell(ROOT / "notebooks" / "explorer.ipynb"), True, monkeypatch)[0]
    assert pip_cmd[1:4] == ["-m", "pip", "install"]
    requirement = pip_cmd[-1].replace(f"git+https://github.com/{plotting.GITHUB_REPO}", built.as_uri())
    assert requirement != pip_cmd[-1]
    monkeypatch.undo()                          # subprocess.run is ours again

    def resolve(*extra: str) -> dict[str, str]:
        report = tmp_path / "report.json"
        _pip(python, *pip_cmd[3:-1], "--dry-run", "--report", str(report), *offline, *extra, requirement)
        return {i["metadata"]["name"].lower(): i["metadata"]["version"]
                for i in json.loads(report.read_text())["install"]}

    installs = resolve()
    assert installs.get("sparsevis") == "0.1.0" and "ipywidgets" in installs, installs
    assert "torch" not in installs and "torchvision" not in installs, \
        f"the Colab install would replace torch/torchvision: {installs}"
    eager = resolve("--upgrade", "--upgrade-strategy", "eager")     # control: a newer torch is on offer
    assert eager.get("torch") == NEWER["torch"] and eager.get("torchvision") == NEWER["torchvision"], eager
