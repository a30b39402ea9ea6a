"""The `real` profile: the paper's architectures with ImageNet weights on the model-vs-human
stimuli. The loading path is torchvision's own: random-init weights are saved where torchvision
looks for the real files (a temporary TORCH_HOME), so nothing is downloaded."""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
import torchvision
import yaml

from sparsevis import book, config, studies, tracks, weights
from sparsevis.cli import build_parser
from sparsevis.config import get_profile
from tests.conftest import DATA

ARCHS = ("resnet50", "vit_b_32", "swin_v2_t")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """Random-init weights for ARCHS in torch's cache, as torchvision names the files."""
    home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    for arch in ARCHS:
        w = weights.pretrained(arch)
        w.file.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        torch.save(torchvision.models.get_model(arch).state_dict(), w.file)
    return home


def test_missing_weights_are_named_with_where_to_put_them(torch_home, monkeypatch, tmp_path):
    real = tracks.get("real")
    run = next(r for r in get_profile("real").runs if r.arch == "torchvision/resnet18")
    note = real.missing(run)
    assert "resnet18-" in note and str(torch_home) in note and "https://" in note
    assert real.missing(next(r for r in get_profile("real").runs if r.arch == "torchvision/resnet50")) == ""
    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(tmp_path / "runs"))
    tiny = replace(get_profile("real"), runs=(run,))
    monkeypatch.setitem(config.PROFILES, "real", tiny)
    assert book.run_stages("real", "cpu", ("prune",)) == {"prune": []}   # left out, not downloaded


@pytest.mark.slow
def test_real_profile_studies_run_end_to_end_on_tiny_sizes(torch_home, monkeypatch, tmp_path):
    if DATA is None:
        pytest.skip("model-vs-human stimuli not available")
    monkeypatch.setenv("SPARSEVIS_DATA_DIR", str(DATA))
    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(tmp_path / "runs"))
    runs = tuple(replace(r, levels=(0.0, 0.5), n_eval=4) for r in get_profile("real").runs
                 if r.arch.split("/")[-1] in ARCHS and r.method == "oneshot")
    # 2 images per study and dataset; IG with 2 steps of 1 noise sample: every method still runs;
    # 100 bootstrap replicates, the least the sweet-spot analysis accepts
    small = {"real": {s: {"n_images": 2} for s in studies.STAGES}}
    small["real"]["interpretability"]["method_params"] = {"ig_smoothgrad": {"n_steps": 2, "nt_samples": 1}}
    monkeypatch.setitem(config.PROFILES, "real", replace(get_profile("real"), runs=runs, n_boot=100, studies=small))
    # jobs=1: spawned workers would re-read the unpatched profile (full study sizes)
    dirs = book.run_stages("real", "cpu", ("prune", *studies.STAGES), jobs=1)
    assert len(dirs["prune"]) == len(ARCHS)
    for stage in studies.STAGES:
        rows = pd.concat(pd.read_csv(book.resolve_run_path(d) / "results.csv") for d in dirs[stage])
        assert set(rows["arch"]) == {f"torchvision/{a}" for a in ARCHS}
        assert set(rows["iteration"]) == {0, 1}
        if stage == "interpretability":   # the test's sizes, not the profile's
            assert rows["n"].max() <= 2 and "ig_smoothgrad[n_steps=2,nt_samples=1]" in set(rows["method"])
    raw = list(tmp_path.glob("runs/alignment/real/*/raw-data/*/*.csv"))
    assert raw, "the alignment study writes model-vs-human raw-data CSVs"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_published_build_includes_the_real_profile():
    """The Pages workflow (not runnable here: it downloads) runs `make` targets that exist, and
    between them they build the demo and the real profile's books into the site it uploads,
    the real one online."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "pages.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    targets = {t: s for s in steps for t in re.findall(r"^\s*make\s+([\w-]+)\s*$", s.get("run", ""), re.M)}
    commands = {}
    for target in targets:
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert dry.returncode == 0, f"make {target}: {dry.stderr}"
        commands[target] = dry.stdout
    built = {t: re.findall(r"-m sparsevis book --profile (\S+)", c) for t, c in commands.items()}
    assert sorted(p for ps in built.values() for p in ps) == ["demo", "real"]
    for profile in ("demo", "real"):
        build_parser().parse_args(["book", "--profile", get_profile(profile).name])
    real_target = next(t for t, ps in built.items() if ps == ["real"])
    # the real book is copied into the demo site, after the demo build that makes the site
    site = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact"))["with"]["path"]
    assert re.search(rf"cp -r \S+/_build/html {re.escape(site)}/real\b", commands[real_target])
    order = [i for i, s in enumerate(steps) if re.search(r"^\s*make\s+book\b", s.get("run", ""), re.M)]
    assert [re.search(r"make\s+([\w-]+)", steps[i]["run"]).group(1) for i in order] == ["book", real_target]
    # torchvision may download the weights in that step (the job is offline otherwise)
    assert str(targets[real_target].get("env", {}).get(weights.OFFLINE_ENV)) == "0"
