"""benchmarks/run_all.py on tiny sizes: the table's structure, not its timings."""
from __future__ import annotations

import json
import math
import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_common  # noqa: E402
import run_all  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    out = run_all.main(["--tiny", "--out", str(tmp_path_factory.mktemp("bench"))])
    return json.loads((out / "latest.json").read_text()), (out / "latest.md").read_text()


def test_every_stage_and_kernel_has_a_row(table):
    data, _ = table
    pairs = {(r["group"], r["path"], r["bound"]) for r in data["rows"]}
    assert ("prune stage", "train.train (50 % pruned, 1 epoch)", "fwd+bwd+step loop") in pairs
    assert ("study stage", "features.extract", "forward loop") in pairs
    assert ("study stage", "attribution gradcam", "fwd+bwd loop") in pairs
    assert ("study stage", "attribution guided_gradcam", "fwd+bwd loop") in pairs
    assert any(g == "study stage" and p.startswith("attribution ig_smoothgrad") for g, p, b in pairs)
    for metric in ("relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game"):
        assert ("kernel", metric, "per-image reference") in pairs
        assert any(g == "kernel" and p == metric and b.startswith("bandwidth roof") for g, p, b in pairs)
    lost_bounds = {b for g, p, b in pairs if p == "lost"}
    assert {"per-image reference", "SYRK roof (Gram products alone)", "GEMM roof (SYRK FLOPs)"} <= lost_bounds


def test_ratios_are_finite_positive_and_consistent(table):
    data, _ = table
    for r in data["rows"]:
        assert set(r) == set(run_all.COLUMNS), r
        for key in ("path_rate", "bound_rate", "ratio"):
            assert math.isfinite(r[key]) and r[key] > 0, r
        assert r["ratio"] == pytest.approx(r["path_rate"] / r["bound_rate"])
    assert all(math.isfinite(v) and v > 0 for v in data["roofs"].values())


def test_table_names_the_machine(table):
    data, text = table
    m = data["machine"]
    assert m["cores"] >= 1 and m["torch_threads"] >= 1 and m["cpu"] and m["torch"]
    assert m["profile"] == "tiny"
    assert m["cpu"] in text and f"torch {m['torch']}" in text and f"{m['torch_threads']} torch threads" in text
    # one Markdown row per JSON row, under a header of as many columns
    body = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith("| group")]
    assert len(body) == len(data["rows"])
    assert all(ln.count("|") == len(run_all.COLUMNS) + 1 for ln in body)


def _table_rows(text: str) -> list[dict]:
    """The rows of the Markdown table, keyed by its header."""
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[1:]]


def test_reproduce_page_includes_the_latest_full_table():
    page = ROOT / "book" / "reproduce.md"
    includes = re.findall(r"^```\{include\}\s+(\S+)\s*$", page.read_text(), flags=re.MULTILINE)
    assert len(includes) == 1, includes
    md = (page.parent / includes[0]).resolve()
    assert md == (run_all.PAGE_TABLE / "latest.md").resolve() and md.is_file()
    data = json.loads(md.with_suffix(".json").read_text())
    text = md.read_text()
    assert not text.lstrip().startswith("#")   # no heading of its own inside the page's section
    m = data["machine"]
    assert m["profile"] == "default"           # the committed table is a full run, not --tiny
    assert m["cpu"] in text and f"torch {m['torch']}" in text and m["when"] in text
    rows = _table_rows(text)
    assert len(rows) == len(data["rows"]) > 0
    for row, r in zip(rows, data["rows"]):
        assert (row["group"], row["path"], row["bound"], row["unit"]) == (r["group"], r["path"], r["bound"], r["unit"])
        rate, bound, ratio = (float(row[k]) for k in ("path rate", "bound rate", "ratio"))
        assert ratio == pytest.approx(r["ratio"], rel=5e-3) and ratio == pytest.approx(rate / bound, rel=2e-2)
    paths = {(r["path"], r["bound"]) for r in data["rows"]}
    assert ("lost", "SYRK roof (Gram products alone)") in paths and ("lost", "per-image reference") in paths


def test_side_by_side_interleaves_and_takes_the_best_round():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    out = bench_common.side_by_side(fns, 3)
    # one warm-up round, then three interleaved rounds, every other one reversed
    assert "".join(calls) == "abc" + "abc" + "cba" + "abc"
    assert set(out) == set("abc") and all(v >= 0 for v in out.values())
    durations = iter([0.0, 0.1, 0.01, 0.05])   # warm-up, then three rounds: the best is 0.01 s
    out = bench_common.side_by_side({"s": lambda: time.sleep(next(durations))}, 3)
    assert 0.01 <= out["s"] < 0.05
    with pytest.raises(ValueError, match="repeat"):
        bench_common.side_by_side({"a": lambda: None}, 0)
