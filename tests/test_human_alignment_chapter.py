"""The human-alignment chapter: the human reference values from model-vs-human's raw data
(hand-built observers with known answers), and the notebook on the paper track with papermill,
on paper-format result folders made by the alignment study's own code from fixture stimuli."""
from __future__ import annotations

import csv
import json
import zipfile
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sparsevis import results, tracks
from sparsevis.analysis import human_reference
from sparsevis.chapters import ChapterData
from sparsevis.config import get_profile
from sparsevis.data import mvh
from sparsevis.figures import human_alignment as figures
from sparsevis.studies import alignment as alignment_study
from sparsevis.studies.base import Rows, base_row
from sparsevis.tracks import AlignmentSet

ROOT = Path(__file__).resolve().parents[1]
CATS = ("airplane", "bear", "bicycle", "bird")


# ----------------------------------------------------------------------------- fixture stimuli
def _write_csv(path: Path, rows: list[tuple]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(mvh.RAW_COLUMNS)
        w.writerows(rows)


def add_session_dataset(base: Path, ds: str, conditions: tuple[str, ...], responses: dict[str, list[str]]) -> list:
    """``ds`` with one image per category in ``CATS`` per condition (files named as
    model-vs-human's session datasets; empty: nothing here decodes them) and one CSV per
    observer; ``responses[subj]`` lists the answers in (condition, category) order."""
    trials = [(c, cat, f"n0000000{k}_{k}.png") for c in conditions for k, cat in enumerate(CATS)]
    folder = base / "datasets" / ds / "dnn" / "session-1"
    folder.mkdir(parents=True, exist_ok=True)
    for t, (cond, cat, image) in enumerate(trials, start=1):
        (folder / f"{t:04d}_x_dnn_{cond}_{cat}_00_{image}").touch()
    for subj, answers in responses.items():
        assert len(answers) == len(trials)
        _write_csv(base / "raw-data" / ds / f"{ds}_{subj}_session_1.csv",
                   [(subj, 1, t, 0.5, a, cat, cond, f"{t:04d}_x_s01_{cond}_{cat}_00_{image}")
                    for t, ((cond, cat, image), a) in enumerate(zip(trials, answers), start=1)])
    return trials


CC_FILES = ("airplane1-bear2.png", "bear1-bird1.png", "bicycle1-bicycle2.png", "bird1-airplane3.png")


def add_cue_conflict(base: Path, responses: dict[str, list[str]]) -> None:
    for f in CC_FILES:
        shape = mvh.parse_cue_conflict(f)[0]
        (base / "datasets/cue-conflict" / shape).mkdir(parents=True, exist_ok=True)
        (base / "datasets/cue-conflict" / shape / f).touch()
    for subj, answers in responses.items():
        _write_csv(base / "raw-data/cue-conflict" / f"cue-conflict_{subj}_session_1.csv",
                   [(subj, 1, t, 0.5, a, mvh.parse_cue_conflict(f)[0], 0, f"{t:04d}_cc_s01_0_x_00_{f}")
                    for t, (f, a) in enumerate(zip(CC_FILES, answers), start=1)])


# rotation: conditions 0 (left out of the benchmark), 90, 180; images in CATS order per condition
ROTATION = {
    "subject-01": ["airplane", "bear", "bicycle", "bird",   "airplane", "bear", "bird", "bird",    "bear", "bear", "na", "bird"],
    "subject-02": ["airplane", "bear", "bicycle", "bear",   "airplane", "bird", "bicycle", "bird",  "bear", "bear", "bicycle", "airplane"],
    "subject-03": ["airplane", "bear", "bicycle", "bird",   "bear", "bear", "bicycle", "bird",      "airplane", "bird", "bicycle", "bird"],
}
# cue-conflict (shape, texture): (airplane, bear) (bear, bird) (bicycle, bicycle) (bird, airplane)
CUE_CONFLICT = {"subject-01": ["airplane", "bird", "bicycle", "airplane"],    # shape, texture, -, texture
                "subject-02": ["airplane", "bear", "bird", "bird"]}          # shape, shape, -, shape


@pytest.fixture
def humans(tmp_path, monkeypatch):
    base = tmp_path / "data" / "model-vs-human"
    add_session_dataset(base, "rotation", ("0", "90", "180"), ROTATION)
    add_cue_conflict(base, CUE_CONFLICT)
    monkeypatch.setenv("SPARSEVIS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(tmp_path / "runs"))
    return base


def _kappa(a: list[bool], b: list[bool]) -> float:
    """Cohen's kappa of two correctness vectors, by hand (Geirhos et al. 2020)."""
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    pa, pb = sum(a) / n, sum(b) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    return (observed - expected) / (1 - expected)


def test_human_reference_values_by_hand(humans):
    ref = human_reference.load()
    truth = [cat for _ in range(3) for cat in CATS]
    cond = [c for c in ("0", "90", "180") for _ in CATS]
    correct = {s: [a == t for a, t in zip(ans, truth)] for s, ans in ROTATION.items()}

    # accuracy: per observer pooled over 90 and 180 (0 is left out), mean over observers
    kept = [i for i, c in enumerate(cond) if c != "0"]
    per_obs = [np.mean([correct[s][i] for i in kept]) for s in ROTATION]     # 5/8, 5/8, 6/8
    acc = ref.value("rotation", "accuracy")
    assert acc["value"] == pytest.approx(np.mean(per_obs)) == pytest.approx(16 / 24)
    assert (acc["low"], acc["high"]) == pytest.approx((5 / 8, 6 / 8))
    assert acc["n_observers"] == 3 and acc["n_conditions"] == 2

    # error consistency: per pair, kappa per kept condition, mean over conditions; then over pairs
    per_pair = []
    for a, b in combinations(ROTATION, 2):
        ks = [_kappa([correct[a][i] for i in range(12) if cond[i] == c], [correct[b][i] for i in range(12) if cond[i] == c])
              for c in ("90", "180")]
        per_pair.append(np.mean(ks))
    ec = ref.value("rotation", "error_consistency")
    assert ec["value"] == pytest.approx(np.mean(per_pair))
    assert (ec["low"], ec["high"]) == pytest.approx((min(per_pair), max(per_pair)))

    # per condition: the mean over observers and their range (condition 0 included here)
    by = ref.per_condition("rotation", "accuracy").set_index("condition")
    for c in ("0", "90", "180"):
        accs = [np.mean([correct[s][i] for i in range(12) if cond[i] == c]) for s in ROTATION]
        assert by.loc[c, "value"] == pytest.approx(np.mean(accs))
        assert (by.loc[c, "low"], by.loc[c, "high"]) == pytest.approx((min(accs), max(accs)))

    # shape bias: pooled over observers, the shape == texture image left out: 4 shape of 6
    sb = ref.value("cue-conflict", "shape_bias")
    assert sb["value"] == pytest.approx(4 / 6)
    assert (sb["low"], sb["high"]) == pytest.approx((1 / 3, 1.0))

    # the 15 datasets not here are listed with how to get them, not an error
    assert set(ref.missing["dataset"]) == set(mvh.DATASETS) - {"rotation", "cue-conflict"}
    assert ref.missing["reason"].str.contains("fetch").all()
    assert "2 of 17 datasets" in ref.caption


def test_human_reference_is_cached_by_its_inputs(humans):
    first = human_reference.run()
    assert human_reference.run() == first
    inputs = json.loads((first / "inputs.json").read_text())
    assert len(inputs["files"]) == 5 and all(len(f[2]) == 64 for f in inputs["files"])
    f = humans / "raw-data/cue-conflict/cue-conflict_subject-02_session_1.csv"
    f.write_text(f.read_text().replace("0.5,bird,bird", "0.5,airplane,bird"))   # a shape decision -> texture
    second = human_reference.run()
    assert second != first
    assert human_reference.read(second).value("cue-conflict", "shape_bias")["value"] == pytest.approx(3 / 6)


def test_a_broken_raw_file_names_itself(humans):
    f = humans / "raw-data/rotation/rotation_subject-01_session_1.csv"
    f.write_text(f.read_text().replace("imagename", "image_name"))
    with pytest.raises(ValueError, match="rotation_subject-01_session_1.csv.*imagename"):
        human_reference.run()


# ----------------------------------------------------------------------------- the paper-track chapter
ITERATIONS = 3


class Decider(torch.nn.Module):
    """A stand-in ImageNet classifier (1000 logits) over tiny inputs: decisions that differ per
    checkpoint, through the alignment study's real code path."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = torch.nn.Linear(3 * 4 * 4, 1000)

    def forward(self, x):
        return self.fc(x.flatten(1))


def paper_results(runs_root: Path) -> dict:
    """Series and alignment-study folders of every run of the paper profile, in the results
    schema, made by :func:`sparsevis.studies.alignment.evaluate` on the fixture stimuli."""
    track = tracks.get("paper")
    sets = []
    for ds in mvh.DATASETS:
        try:
            images, trials = mvh.load_images(ds), mvh.load_trials(ds)
        except FileNotFoundError:
            continue
        x = torch.randn(len(images), 3, 4, 4, generator=torch.Generator().manual_seed(len(sets)))
        sets.append(AlignmentSet(ds, x, list(images["image"]), images=images, trials=trials))
    dirs = {"prune": [], "alignment": []}
    for k, run in enumerate(get_profile("paper").runs):
        series_id = f"{k:012x}"
        series, study = (runs_root / "prune" / "paper" / f"{run.label}-{series_id}",
                         runs_root / "alignment" / "paper" / f"{run.label}-{'a' * 11}{k}")
        prune_rows, context = [], {}
        for it in range(ITERATIONS):
            meta = {"iteration": it, "sparsity": 1 - 0.8 ** it, "sparsity_all": 0.9 * (1 - 0.8 ** it), "preset": "all"}
            base = base_row(run, "paper", meta, 1000 * (k + 1), "alignment", series_id)
            prune_rows.append(dict(base, study="prune", dataset="imagenet-val", method="", metric="accuracy",
                                   value=0.7 - 0.1 * it, n=50, ci_low=0.6 - 0.1 * it, ci_high=0.8 - 0.1 * it))
            rows = Rows(base, n_boot=20)
            context["raw_data"] = (study / "raw-data", f"{run.label}-it{it:02d}")
            ex = alignment_study.evaluate(Decider(100 * k + it), track, sets, {}, "cpu", rows, context)
            context.setdefault("dense", ex["decisions"])
            results.write(rows.rows, study / f"iter-{it:02d}.csv")
        results.write(prune_rows, series / "results.csv")
        results.write(pd.concat([results.read(p) for p in sorted(study.glob("iter-*.csv"))]), study / "results.csv")
        for stage, d in (("prune", series), ("alignment", study)):
            dirs[stage].append(d.relative_to(runs_root).as_posix())
    return dirs


@pytest.mark.slow
def test_paper_chapter_with_papermill(tmp_path, monkeypatch):
    pm = pytest.importorskip("papermill")
    import matplotlib.image

    base = tmp_path / "data" / "model-vs-human"
    add_session_dataset(base, "rotation", ("0", "90", "180", "270"),
                        {s: ans + ans[:4] for s, ans in ROTATION.items()})
    add_cue_conflict(base, CUE_CONFLICT)
    for ds in ("edge", "silhouette"):
        for k, cat in enumerate(CATS):
            (base / "datasets" / ds / cat).mkdir(parents=True, exist_ok=True)
            (base / "datasets" / ds / cat / f"{cat}{k}.png").touch()
    for subj, answers in (("subject-01", CATS), ("subject-02", ("bear", "bear", "bicycle", "na"))):
        _write_csv(base / "raw-data/edge" / f"edge_{subj}_session_1.csv",
                   [(subj, 1, t, 0.5, a, cat, 0, f"{t:04d}_e_s01_0_{cat}_00_{cat}{t - 1}.png")
                    for t, (cat, a) in enumerate(zip(CATS, answers), start=1)])
    runs, figures = tmp_path / "runs", tmp_path / "figures"
    for k, v in (("SPARSEVIS_DATA_DIR", tmp_path / "data"), ("SPARSEVIS_RUNS_DIR", runs),
                 ("SPARSEVIS_FIGURES_DIR", figures), ("TQDM_DISABLE", "1")):
        monkeypatch.setenv(k, str(v))
    dirs = paper_results(runs)

    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(ROOT / "notebooks" / "human_alignment.ipynb"), str(out),
                        parameters={"profile": "paper", "device": "cpu", "result_dirs": dirs},
                        cwd=str(tmp_path), kernel_name="python3", progress_bar=False, log_output=False)
    nb = json.loads(out.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    text = "\n".join("".join(o.get("data", {}).get("text/markdown", "")) + "".join(o.get("text", "")) for o in outputs)
    page = "\n".join("".join(o.get("data", {}).get("text/html", "")) for o in outputs)
    drawn = {p.stem for p in figures.glob("alignment-*.png")}
    assert {"alignment-ood-paper", "alignment-rotation-paper", "alignment-error-consistency-paper",
            "alignment-shape-bias"} <= drawn, sorted(drawn)
    assert not drawn & {"alignment-ood-synthetic", "alignment-observers-real"}
    for stem in drawn:
        h, w, _ = matplotlib.image.imread(figures / f"{stem}.png").shape
        assert h > 300 and w > 600

    # the paper track's shape bias is set against the observers of these files, not the literature
    assert "not SynthScenes" not in text and "observers' range and pooled value" in text
    assert "No human data here for 14 of the 17" in text and "3 of 17 datasets present" in text
    assert "one panel per angle (0, 90, 180, 270 degrees)" in text
    assert "the observers range from 0.33 to 1.00" in text          # 1/3 and 1, by hand above
    assert "No human data here for colour, contrast" in text         # the 17-dataset caption
    assert "profile: `paper`" in text and "paper-resnet18-imp-s0" in text

    # one archive per series, linked relatively, readable as model-vs-human raw data
    for label in (r.label for r in get_profile("paper").runs):
        assert f'<a href="figures/raw-data-{label}.zip">' in page    # what the book renders
    with zipfile.ZipFile(figures / "raw-data-paper-resnet50-imp-s0.zip") as z:
        names = z.namelist()
        assert "raw-data/rotation/rotation_paper-resnet50-imp-s0-it02_session-1.csv" in names
        assert {z.getinfo(n).date_time for n in names} == {(1980, 1, 1, 0, 0, 0)}   # same study, same bytes
        z.extractall(tmp_path / "unzipped")
    back = mvh.load_trials("rotation", raw_dir=tmp_path / "unzipped/raw-data/rotation",
                           pattern="*-it01_session-1.csv")
    study = runs / dirs["alignment"][1]
    rows = results.read(study / "results.csv")
    acc = rows[(rows["iteration"] == 1) & (rows["dataset"] == "rotation:90") & (rows["metric"] == "accuracy")
               & (rows["method"] == "model")]["value"].iloc[0]
    assert back[back["condition"] == "90"]["correct"].mean() == pytest.approx(acc)


def test_paper_chapter_without_humans_keeps_going(tmp_path, monkeypatch):
    """No model-vs-human data at all: every dataset is listed as missing, nothing raises."""
    monkeypatch.setenv("SPARSEVIS_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(tmp_path / "runs"))
    ref = human_reference.load()
    assert ref.datasets.empty and len(ref.missing) == 17
    assert ref.value("rotation", "accuracy") is None and ref.per_condition("rotation", "accuracy").empty


def test_shape_bias_is_the_cue_conflict_one(tmp_path, monkeypatch):
    """SynthScenes stores a shape bias on every OOD split (its distorted scenes keep their
    texture labels); the shape-bias figure and summary take the cue-conflict one only."""
    monkeypatch.setenv("SPARSEVIS_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", str(tmp_path / "runs"))
    base = {"track": "synthetic", "study": "alignment", "method": "model", "metric": "shape_bias", "model": "m",
            "label": "m", "run_id": "r", "arch": "timm/m", "ci_low": np.nan, "ci_high": np.nan, "n": 16}
    rows = pd.DataFrame([{**base, "dataset": d, "iteration": i, "sparsity": s, "value": v}
                         for d, vals in (("cue-conflict", (0.2, 0.4)), ("colour:bw", (0.9, 0.95)))
                         for i, (s, v) in enumerate(zip((0.0, 0.5), vals))])
    data = ChapterData("tiny", "alignment", [], {}, {}, rows, "cfg", "human_alignment")
    a = figures.prepare(data, human_reference.load())
    assert figures.shape_bias_summary(a) == "- **m** (synthetic): dense 0.20, highest 0.40 at 50 %."
