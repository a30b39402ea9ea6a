"""The `real` profile: the paper's architectures with ImageNet weights on the model-vs-human
stimuli. The loading path is torchvision's own: random-init weights are saved where torchvision
looks for the real files (a temporary TORCH_HOME), so nothing is downloaded."""
from __future__ import annotations

import os
from dataclasses import replace

import pandas as pd
import pytest
import torch
import torchvision

from sparsevis import book, config, studies, tracks, weights
from sparsevis.config import get_profile
from tests.conftest import DATA

ARCHS = ("resnet50", "vit_b_32", "swin_v2_t")


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
@pytest.mark.skipif(os.environ.get("SPARSEVIS_HEAVY_TESTS") != "1",
                    reason="ResNet-50, ViT-B/32 and Swin-V2-T through every study take many minutes on 2 CPU "
                           "cores: opt in with SPARSEVIS_HEAVY_TESTS=1")
def test_real_profile_studies_run_end_to_end_on_tiny_sizes(torch_home, monkeypatch, tmp_path):
    if DATA is None:
        pytest.skip("model-vs-human stimuli not available")
    monkeypatch.setenv("SPARSEVIS_DATA_DIR", str(DATA))
    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(tmp_path / "runs"))
    runs = tuple(replace(r, levels=(0.0, 0.5), n_eval=4) for r in get_profile("real").runs
                 if r.arch.split("/")[-1] in ARCHS and r.method == "oneshot")
    small = {"real": {s: {"n_images": 2} for s in studies.STAGES}}
    small["real"]["interpretability"]["method_params"] = {"ig_smoothgrad": {"n_steps": 2}}
    monkeypatch.setitem(config.PROFILES, "real", replace(get_profile("real"), runs=runs, n_boot=20, studies=small))
    dirs = book.run_stages("real", "cpu", ("prune", *studies.STAGES))
    assert len(dirs["prune"]) == len(ARCHS)
    for stage in studies.STAGES:
        rows = pd.concat(pd.read_csv(book.resolve_run_path(d) / "results.csv") for d in dirs[stage])
        assert set(rows["arch"]) == {f"torchvision/{a}" for a in ARCHS}
        assert set(rows["iteration"]) == {0, 1}
    raw = list(tmp_path.glob("runs/alignment/real/*/raw-data/*/*.csv"))
    assert raw, "the alignment study writes model-vs-human raw-data CSVs"
