"""The device self-check on the CPU: every check named, CUDA comparisons skipped with a reason."""
from __future__ import annotations

import json
import time

import torch

from sparsevis import selfcheck


def test_selfcheck_on_cpu_names_every_check_and_skips_cuda_comparisons(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    start = time.perf_counter()
    report = selfcheck.run(device="cpu", out=tmp_path / "selfcheck.json")
    assert time.perf_counter() - start < 30
    assert json.loads((tmp_path / "selfcheck.json").read_text()) == report
    checks = {c["name"]: c for c in report["checks"]}
    assert tuple(checks) == selfcheck.CHECKS
    assert report["device"] == "cpu" and report["precision"] == "fp32"
    for name in ("features_fp32", "lost_boxes", "metric_kernels"):
        assert checks[name]["status"] == "skipped" and checks[name]["reason"] == "skipped: no CUDA"
    assert checks["masks"]["status"] == "pass" and abs(checks["masks"]["realised"] - 0.5) < 1e-3
    assert checks["train_step"]["status"] == "pass" and checks["train_step"]["precision"] == "fp32"
    for name in ("throughput_train", "throughput_features"):
        assert checks[name]["ratio"] > 0 and checks[name]["ours_img_s"] > 0, checks[name]
        assert checks[name]["status"] in ("pass", "fail")   # a loaded test machine may be slow
    assert report["ok"] == all(c["status"] != "fail" for c in report["checks"])


def test_a_failing_check_is_reported_and_the_others_run(monkeypatch):
    def broken(device, compare):
        raise RuntimeError("device lost")

    monkeypatch.setattr(selfcheck, "_check_masks", broken)
    monkeypatch.setattr(selfcheck, "_check_throughput_train", lambda *a: {"status": "pass"})
    monkeypatch.setattr(selfcheck, "_check_throughput_features", lambda *a: {"status": "pass"})
    report = selfcheck.run(device="cpu", out=None)
    masks = report["checks"][0]
    assert masks["status"] == "fail" and masks["error"] == "RuntimeError: device lost"
    assert report["checks"][1]["status"] == "pass" and not report["ok"]
