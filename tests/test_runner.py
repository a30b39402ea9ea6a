import time
from dataclasses import replace
from pathlib import Path

import pytest

from sparsevis import prune, results
from sparsevis.cli import main
from sparsevis.config import PruneRun, SynthData, TrainConfig, get_profile
from tests.fixtures import sigkill_when

RUN = PruneRun("synthetic", "timm/sv_resnet_s", "imp", rate=0.5, iterations=1, seed=3,
               data=SynthData(n_train=96, n_test=32),
               train=TrainConfig(epochs=1, lr=0.05, batch_size=32),
               retrain=TrainConfig(epochs=3, lr=0.05, batch_size=32))

CHILD = """
import sys
from sparsevis.runner import run_prune
from tests.test_runner import RUN
run_prune(RUN, device="cpu")
"""


def _hashes(directory: Path) -> list[str]:
    from sparsevis.runner import checkpoints

    return [prune.read(p)["sha256"] for p in checkpoints(directory)]


@pytest.mark.slow
def test_kill_and_resume_gives_identical_checkpoints(tmp_path, monkeypatch):
    from sparsevis.runner import run_prune

    killed_store = tmp_path / "killed"
    # kill -9 in the middle of iteration 1's retraining, after it saved an epoch state
    sigkill_when(CHILD, killed_store, "prune/*/iter-01.state.pt", timeout=240)
    run_dir = next((killed_store / "prune").iterdir())
    assert list(run_dir.glob("iter-01.state.pt")), "the child was not killed mid-iteration"
    assert not (run_dir / "DONE").exists()

    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(killed_store))
    resumed = run_prune(RUN, device="cpu")
    assert resumed == run_dir and (run_dir / "DONE").exists()

    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(tmp_path / "clean"))
    clean = run_prune(RUN, device="cpu")
    assert _hashes(resumed) == _hashes(clean)
    assert len(_hashes(clean)) == 2


def test_same_config_is_a_cache_hit(tmp_path, monkeypatch):
    from sparsevis.runner import run_prune

    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(tmp_path))
    run = replace(RUN, retrain=replace(RUN.retrain, epochs=1))
    first = run_prune(run, device="cpu")
    stamps = {p: p.stat().st_mtime_ns for p in first.iterdir()}
    again = run_prune(run, device="cpu")
    assert again == first and {p: p.stat().st_mtime_ns for p in first.iterdir()} == stamps
    table = results.read(first / "results.csv")
    assert list(table["iteration"]) == [0, 1]
    assert table["sparsity"].tolist()[1] == pytest.approx(0.5, abs=1e-3)
    assert (table["metric"] == "accuracy").all()
    # another seed is another run
    assert run_prune(replace(run, seed=4), device="cpu") != first


@pytest.mark.slow
def test_runs_in_worker_processes_equal_serial_runs(tmp_path, monkeypatch):
    import torch

    from sparsevis.runner import run_prune
    from sparsevis.runtime import cpu_cores, run_parallel

    runs = [replace(RUN, retrain=replace(RUN.retrain, epochs=1), seed=s) for s in (5, 6)]
    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(tmp_path / "parallel"))
    parallel = run_parallel(run_prune, [(run, "cpu") for run in runs], jobs=2)
    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(tmp_path / "serial"))
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, cpu_cores() // 2))  # what each of the two workers used
    try:
        serial = [run_prune(run, device="cpu") for run in runs]
    finally:
        torch.set_num_threads(threads)
    assert [p.name for p in parallel] == [p.name for p in serial]   # in task order
    assert [_hashes(p) for p in parallel] == [_hashes(p) for p in serial]
    with pytest.raises(ValueError, match="invalid literal"):
        run_parallel(int, [("1",), ("x",)], jobs=2)   # a worker's error reaches the caller
    with pytest.raises(ValueError, match="jobs=0"):
        run_parallel(int, [("1",)], jobs=0)


def test_unknown_profile_is_a_clear_error(capsys):
    with pytest.raises(ValueError, match="unknown profile 'huge'.*'tiny', 'demo', 'real', 'paper'"):
        get_profile("huge")
    with pytest.raises(SystemExit):
        main(["prune", "--profile", "huge"])
    assert "invalid choice: 'huge'" in capsys.readouterr().err


def test_bad_run_config_names_the_field():
    with pytest.raises(ValueError, match="method='lottery'"):
        PruneRun("synthetic", "timm/sv_resnet_s", "lottery")
    with pytest.raises(ValueError, match="levels=.*needs sparsity levels"):
        PruneRun("real", "torchvision/mobilenet_v2", "oneshot", levels=(0.5, 1.2))
    with pytest.raises(ValueError, match="optimizer='adam'"):
        TrainConfig(epochs=1, lr=0.1, optimizer="adam")


def test_help_lists_profiles_and_stages(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for word in ("tiny", "demo", "paper", "prune", "interpretability", "discovery", "alignment", "book"):
        assert word in out


def test_worker_results_are_reported_as_they_finish():
    from sparsevis.runtime import run_parallel

    stamps = []
    run_parallel(time.sleep, [(0.1,), (6,)], jobs=2, on_result=lambda i, _: stamps.append((i, time.monotonic())))
    assert [i for i, _ in stamps] == [0, 1]
    assert stamps[1][1] - stamps[0][1] > 3    # the quick task was logged long before the slow one ended


def test_tasks_wait_for_the_tasks_they_come_after():
    from sparsevis.runtime import run_parallel

    order = []
    # task 1 waits for the slow task 0; task 2 takes the free worker meanwhile
    run_parallel(time.sleep, [(2,), (0.1,), (0.1,)], jobs=2, after=[(), (0,), ()],
                 on_result=lambda i, _: order.append(i))
    assert order == [2, 0, 1]
    order.clear()
    run_parallel(order.append, [(0,), (1,), (2,)], jobs=1, after=[(2,), (), ()])
    assert order == [1, 2, 0]                 # in list order among the ready ones
    with pytest.raises(ValueError, match="cycle"):
        run_parallel(order.append, [(0,), (1,)], jobs=1, after=[(1,), (0,)])
    with pytest.raises(ValueError, match="after"):
        run_parallel(order.append, [(0,), (1,)], jobs=1, after=[(0,), ()])


def test_checkpoints_and_rows_record_the_training_precision(tmp_path, monkeypatch):
    """Each checkpoint says the precision its weights were trained in (fp32 on the CPU); an
    iteration that is pruned but not retrained keeps its parent's. Checkpoints written before
    the record load, and their rows leave the column out (no guess)."""
    from sparsevis import runner
    from sparsevis.studies.base import base_row

    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(tmp_path))
    run = replace(RUN, iterations=2, retrain=replace(RUN.retrain, epochs=0))   # iterations 1, 2: pruned only
    out = runner.run_prune(run, device="cpu")
    metas = [prune.read(c)["meta"] for c in runner.checkpoints(out)]
    assert [m["train_precision"] for m in metas] == ["fp32"] * 3
    table = results.read(out / "results.csv")
    assert table["train_precision"].tolist() == ["fp32"] * 3 and table["precision"].tolist() == ["fp32"] * 3
    assert base_row(run, "tiny", metas[0], 1, "alignment", "x")["train_precision"] == "fp32"

    # as written before the record existed: no train_precision in any checkpoint
    for c in runner.checkpoints(out):
        model = prune.load(c)
        meta = {k: v for k, v in prune.read(c)["meta"].items() if k != "train_precision"}
        prune.save(model, c, **meta)
    (out / "results.csv").unlink()
    assert runner.find_series(run) == out                # loads them, rewrites the table
    table = results.read(out / "results.csv")
    assert "train_precision" not in table.columns and table["precision"].tolist() == ["fp32"] * 3
    assert "train_precision" not in base_row(run, "tiny", prune.read(runner.checkpoints(out)[0])["meta"], 1,
                                             "alignment", "x")
    # an iteration made from an old parent without retraining does not invent a precision
    for f in ("iter-02.pt", "iter-02.pt.json", "DONE"):
        (out / f).unlink()
    runner.run_prune(run, device="cpu")
    assert "train_precision" not in prune.read(out / "iter-02.pt")["meta"]
    # a run killed between a checkpoint and its sidecar: the resumed run writes the sidecar
    sidecar = out / "iter-01.pt.json"
    before = sidecar.read_text()
    for f in (sidecar, out / "DONE"):
        f.unlink()
    runner.run_prune(run, device="cpu")
    assert sidecar.read_text() == before
