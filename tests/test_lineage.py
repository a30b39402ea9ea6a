"""Checkpoints are evidence: a series is found by its configuration, a code change never hides
it (a warning, or a refusal under --strict), nothing expensive starts implicitly, imported
checkpoints are a series like any other, and a killed study resumes to the same results."""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision

from sparsevis import book, chapters, explorer, prune, runner, studies, tracks
from sparsevis.cli import main
from sparsevis import config
from sparsevis.config import PruneRun, SynthData, TrainConfig, get_profile
from sparsevis.importer import import_checkpoints, imported_run
from sparsevis.store import Series, run_dir, runs_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from fixtures import make_voc, sigkill_when  # noqa: E402
RUN = PruneRun("synthetic", "timm/sv_resnet_s", "imp", rate=0.5, iterations=1, seed=7,
               data=SynthData(n_train=64, n_test=32),
               train=TrainConfig(epochs=1, lr=0.05, batch_size=32),
               retrain=TrainConfig(epochs=1, lr=0.05, batch_size=32))


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_store_is_found_the_same_from_any_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("SPARSEVIS_RUNS_DIR", raising=False)
    here = runs_dir()
    monkeypatch.chdir(tmp_path)
    assert runs_dir() == here == ROOT / "runs"
    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert runs_dir() == tmp_path / "elsewhere"


def test_code_change_warns_strict_refuses_retrain_keeps_the_old(store, monkeypatch, caplog):
    first = runner.run_prune(RUN, device="cpu")
    hashes = Series.at(first).hashes
    monkeypatch.setattr(runner, "code_version", lambda track, *a: "0123456789ab")
    with caplog.at_level(logging.WARNING, logger="sparsevis"):
        again = runner.run_prune(RUN, device="cpu")
    assert again == first and Series.at(again).hashes == hashes          # used, not retrained
    assert "from code version" in caplog.text and "current 0123456789ab" in caplog.text
    with pytest.raises(ValueError, match="--strict"):
        runner.run_prune(RUN, device="cpu", strict=True)
    retrained = runner.run_prune(RUN, device="cpu", retrain=True)
    assert retrained == first and (retrained / "DONE").exists()
    kept = list(first.parent.glob(first.name + ".superseded-*"))
    assert len(kept) == 1 and Series.at(kept[0]).hashes == hashes       # the old evidence is kept


def test_deleted_checkpoint_and_results_are_rebuilt(store):
    out = runner.run_prune(RUN, device="cpu")
    hashes = Series.at(out).hashes
    (out / "iter-01.pt").unlink()
    (out / "results.csv").unlink()
    assert runner.run_prune(RUN, device="cpu") == out
    assert Series.at(out).hashes == hashes and (out / "results.csv").is_file()


def test_no_entry_point_trains_a_paper_track_run(store, capsys, tmp_path, monkeypatch):
    run = PruneRun("paper", "torchvision/resnet50", "imp", iterations=1,
                   train=TrainConfig(epochs=1, lr=0.1), retrain=TrainConfig(epochs=1, lr=0.1))
    with pytest.raises(runner.TrainingRequired, match="torchrun .* prune --profile paper --track paper --arch resnet50"):
        runner.ensure_series(run, "paper")
    with pytest.raises(book.BookError, match="torchrun"):
        book.run_stages("paper", "cpu", ("prune",))
    make_voc(tmp_path / "data", "2012")        # the study's own data is there; ImageNet is not
    monkeypatch.setenv("SPARSEVIS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setitem(config.PROFILES, "paper", replace(get_profile("paper"), n_images=None))
    assert main(["study", "interpretability", "--profile", "paper", "--arch", "resnet50"]) == 2
    assert "torchrun" in capsys.readouterr().err
    # what the notebooks (papermill) and the explorer call
    with pytest.raises(runner.TrainingRequired, match="torchrun"):
        chapters.load("interpretability", "paper", notebook="interpretability", archs="resnet50")
    with pytest.raises(runner.TrainingRequired, match="torchrun"):
        explorer.Explorer("paper", "resnet50", device="cpu")
    assert not (store / "prune").exists()     # nothing was started


def _plain_state_dicts(folder: Path, levels=(0.0, 0.5, 0.8)) -> None:
    """Stock torchvision MobileNetV2 state dicts (no sparsevis buffers), magnitude-pruned by hand."""
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2()
    folder.mkdir()
    for s in levels:
        state = {k: v.clone() for k, v in model.state_dict().items()}
        weights = [k for k, v in state.items() if k.endswith("weight") and v.ndim in (2, 4)]
        flat = torch.cat([state[k].abs().flatten() for k in weights])
        cut = flat.kthvalue(max(1, int(s * flat.numel()))).values if s else -1
        for k in weights:
            state[k][state[k].abs() <= cut] = 0
        torch.save(state, folder / f"mnv2-{int(s * 100):02d}.pth")


def test_import_plain_state_dicts_reads_their_sparsity(store, tmp_path):
    src = tmp_path / "mine"
    _plain_state_dicts(src)
    out = import_checkpoints(src, "torchvision/mobilenet_v2", label="mine")
    series = Series.at(out)
    assert len(series.checkpoints) == 3 and out.parent.name == "imported"
    sparsities = [prune.read(p)["meta"]["sparsity"] for p in series.checkpoints]
    assert sparsities[0] == pytest.approx(0.0, abs=1e-4)
    assert sparsities[1] == pytest.approx(0.5, abs=1e-3) and sparsities[2] == pytest.approx(0.8, abs=1e-3)
    run = imported_run("mine")
    assert run.label == "real-mobilenet_v2-imported-mine" and run_dir(run) == out
    assert import_checkpoints(src, "torchvision/mobilenet_v2", label="mine") == out   # idempotent


def test_import_errors_name_the_file(store, tmp_path):
    src = tmp_path / "bad"
    _plain_state_dicts(src, levels=(0.0, 0.5))
    with pytest.raises(ValueError, match=r"mnv2-00\.pth.*resnet18"):
        import_checkpoints(src, "torchvision/resnet18")          # wrong architecture
    (src / "mnv2-50.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"mnv2-50\.pth"):
        import_checkpoints(src, "torchvision/mobilenet_v2")      # corrupt file
    torch.save(torchvision.models.resnet18().state_dict(), src / "mnv2-50.pth")
    with pytest.raises(ValueError, match=r"mnv2-50\.pth"):
        import_checkpoints(src, "torchvision/mobilenet_v2")      # mixed architectures
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .pt or .pth"):
        import_checkpoints(tmp_path / "empty", "torchvision/mobilenet_v2")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        import_checkpoints(tmp_path / "nowhere", "torchvision/mobilenet_v2")


def _private_mvh(tmp_path, monkeypatch, kinds: tuple[str, ...], datasets) -> Path:
    """A copy of the model-vs-human folders ``kinds`` of ``datasets`` that a test may change,
    set as the data dir; the test is skipped without the shared stimuli."""
    shared = Path(os.environ.get("SPARSEVIS_DATA_DIR", ROOT.parent / "shared" / "data")) / "model-vs-human"
    if not all((shared / kind / "edge").is_dir() for kind in kinds):
        pytest.skip("model-vs-human stimuli not available")
    mvh = tmp_path / "data" / "model-vs-human"
    for kind in kinds:
        for d in datasets:
            shutil.copytree(shared / kind / d, mvh / kind / d)
    monkeypatch.setenv("SPARSEVIS_DATA_DIR", str(tmp_path / "data"))
    return mvh


REAL_RUN = PruneRun("real", "torchvision/mobilenet_v2", "oneshot", levels=(0.0, 0.5))


def test_a_changed_image_list_is_a_new_study(tmp_path, monkeypatch):
    mvh = _private_mvh(tmp_path, monkeypatch, ("datasets",), ("edge", "silhouette"))
    real, run = tracks.get("real"), REAL_RUN
    before = real.inputs("interpretability", run, None)
    victim = next((mvh / "datasets" / "edge").rglob("*.png"))
    victim.unlink()
    after = real.inputs("interpretability", run, None)
    assert len(after) == len(before) - 1 and victim.name not in after
    series = Series(tmp_path, "x", (), ("abc",))
    monkeypatch.setattr(real, "inputs", lambda *a: before)
    old = studies.stage.study_dir(studies.get("interpretability"), run, "tiny", series)
    monkeypatch.setattr(real, "inputs", lambda *a: after)
    assert studies.stage.study_dir(studies.get("interpretability"), run, "tiny", series) != old


def test_changed_human_responses_are_a_new_alignment_study(tmp_path, monkeypatch):
    real = tracks.get("real")
    mvh = _private_mvh(tmp_path, monkeypatch, ("datasets", "raw-data"), real.alignment_datasets)
    before = real.inputs("alignment", REAL_RUN, None)
    trials = sorted((mvh / "raw-data" / "edge").glob("*.csv"))[0]
    lines = trials.read_text().splitlines(keepends=True)
    trials.write_text("".join(lines[:-1]))          # one human trial fewer, the same images
    after = real.inputs("alignment", REAL_RUN, None)
    assert [a[:2] for a in after] == [b[:2] for b in before] and after != before


CHILD = """
from sparsevis import studies
from tests.test_lineage import RUN
studies.run_study("interpretability", RUN, "tiny", device="cpu")
"""


@pytest.mark.slow
def test_killed_study_resumes_to_the_same_results(store, tmp_path):
    runner.run_prune(RUN, device="cpu")
    sigkill_when(CHILD, store, "interpretability/tiny/*/iter-00.csv")
    out = next(store.glob("interpretability/tiny/*"))
    assert not (out / "DONE").exists(), "the child finished before it was killed"
    resumed = studies.run_study("interpretability", RUN, "tiny", device="cpu")
    assert resumed == out and (out / "DONE").exists()
    clean_store = tmp_path / "clean"
    shutil.copytree(store / "prune", clean_store / "prune")
    os.environ["SPARSEVIS_RUNS_DIR"] = str(clean_store)
    clean = studies.run_study("interpretability", RUN, "tiny", device="cpu")
    pd.testing.assert_frame_equal(pd.read_csv(resumed / "results.csv"), pd.read_csv(clean / "results.csv"))
    a = pd.concat(pd.read_csv(p) for p in sorted(resumed.glob("*.items.csv.gz")))
    b = pd.concat(pd.read_csv(p) for p in sorted(clean.glob("*.items.csv.gz")))
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


@pytest.mark.slow
def test_imported_series_goes_through_every_study_and_the_sweet_spot_chapter(store, tmp_path):
    """Plain torchvision state dicts at three sparsities: imported, then the three studies and
    the sweet-spot chapter under papermill take them like a sparsevis run."""
    pm = pytest.importorskip("papermill")
    from tests.conftest import DATA

    if DATA is None:
        pytest.skip("model-vs-human stimuli not available")
    src = tmp_path / "mine"
    _plain_state_dicts(src)
    import_checkpoints(src, "torchvision/mobilenet_v2", label="mine")
    env = {"SPARSEVIS_DATA_DIR": str(DATA), "SPARSEVIS_FIGURES_DIR": str(tmp_path / "figures")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        out = tmp_path / "sweet_spots.ipynb"
        pm.execute_notebook(str(ROOT / "notebooks" / "sweet_spots.ipynb"), str(out),
                            parameters={"profile": "tiny", "device": "cpu", "checkpoints": "mine", "n_boot": 200},
                            cwd=str(tmp_path), kernel_name="python3", progress_bar=False, log_output=False)
    for stage in studies.STAGES:
        (folder,) = store.glob(f"{stage}/tiny/real-mobilenet_v2-imported-mine-*")
        rows = pd.read_csv(folder / "results.csv")
        assert sorted(rows["iteration"].unique()) == [0, 1, 2] and (rows["prune_method"] == "imported").all()
    (analysis,) = store.glob("analysis/tiny/sweet_spots-*")
    verdicts = pd.read_csv(analysis / "verdicts.csv")
    assert set(verdicts["study"]) == set(studies.STAGES) and (verdicts["prune_method"] == "imported").all()
    text = out.read_text()
    assert "Effect of pruning" in text and (tmp_path / "figures" / "sweet-spots-effects-real.png").is_file()


def test_a_resumed_run_keeps_its_thread_count(store):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = runner.run_prune(RUN, device="cpu")
    finally:
        torch.set_num_threads(before)
    assert json.loads((out / "config.json").read_text())["threads"] == 1
    hashes = Series.at(out).hashes
    (out / "iter-01.pt").unlink()
    torch.set_num_threads(2)
    try:   # resumed in another layout: it trains with the recorded count, so the same weights
        runner.run_prune(RUN, device="cpu")
    finally:
        torch.set_num_threads(before)
    assert Series.at(out).hashes == hashes


TWO = """
import sys, time
from sparsevis import runner
from tests.test_lineage import RUN
t = time.time()
out = runner.run_prune(RUN, device="cpu")
print(out, round(time.time() - t, 1))
"""


@pytest.mark.slow
def test_two_processes_on_one_store_train_a_series_once(store):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    procs = [subprocess.Popen([sys.executable, "-c", TWO], env=env, cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    dirs = {o.strip().splitlines()[-1].split()[0] for o, _ in outs}
    assert len(dirs) == 1
    assert sum("another process is working" in err for _, err in outs) == 1   # one waited
    assert len(Series.at(Path(dirs.pop())).checkpoints) == 2


def test_chapters_keep_the_profiles_seeds_unless_one_is_asked_for():
    """The demo profile trains sv_resnet_s at seeds 0, 1 and 2: a chapter selects all three (it
    once put every run at seed 0, which loaded seed 0's series three times)."""
    runs = chapters.select_runs("demo", archs="sv_resnet_s")
    assert sorted((r.method, r.seed) for r in runs) == [("imp", 0), ("imp", 1), ("imp", 2), ("random", 0)]
    one = chapters.select_runs("demo", archs="sv_resnet_s", seed=1)
    assert sorted((r.method, r.seed) for r in one) == [("imp", 1), ("random", 1)]
    assert len({r.label for r in one}) == len(one)
