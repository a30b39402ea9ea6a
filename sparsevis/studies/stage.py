"""The driver every study runs on: identity, resume, per-checkpoint rows and items."""
from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

import pandas as pd
import torch
from tqdm.auto import tqdm

from sparsevis import precision as prec
from sparsevis import provenance, prune, results, tracks
from sparsevis.config import PruneRun, get_profile
from sparsevis.features import is_cnn, logits_cache
from sparsevis.fileio import (
    atomic_torch_save,
    atomic_write_text,
    exclusive,
    remove_stale_temp_files,
    stable_hash,
)
from sparsevis.runner import ensure_series
from sparsevis.runtime import resolve_device
from sparsevis.store import Series, logits_cache_dir, runs_dir

from .base import Rows, base_row

log = logging.getLogger("sparsevis")
# What every study computes in: fp32 without TF32 (features' default, and attribution inside
# this driver's strict_fp32 block), recorded in each row's `precision` column.
STUDY_PRECISION = "fp32"


def study_params(stage: str, profile: str, track: str) -> dict:
    """A profile's settings for one study on one track (n_images, n_boot, method parameters)."""
    p = get_profile(profile)
    return {"n_images": p.n_images, "n_boot": p.n_boot, **p.studies.get(track, {}).get(stage, {})}


def code_version(study: ModuleType, track: str, package_dir: Path = provenance.PACKAGE_DIR) -> str:
    """A study's code version on a track: the import closure of its module, this driver and the
    track, not going through the registries (which import every study and track) nor the prune
    stage (a study reads checkpoints, it does not train them)."""
    return provenance.code_version(study.__name__, __name__, f"sparsevis.tracks.{track}",
                                   skip=("sparsevis.studies", "sparsevis.tracks", "sparsevis.runner"),
                                   package_dir=package_dir)


def study_dir(study: ModuleType, run: PruneRun, profile: str, series: Series) -> Path:
    """Where the study of ``series`` (a series of ``run``) lives; computes nothing expensive."""
    stage = study.NAME
    params = study_params(stage, profile, run.track)
    sid = stable_hash({"stage": stage, "checkpoints": series.hashes, "params": params,
                       "code": code_version(study, run.track),
                       "inputs": tracks.get(run.track).inputs(stage, run, params["n_images"])})
    return runs_dir() / stage / profile / f"{series.label}-{sid}"


def find_study(study: ModuleType, run: PruneRun, profile: str, series_dir: Path | None) -> Path | None:
    """The finished study of a found series, or None."""
    if series_dir is None:
        return None
    out = study_dir(study, run, profile, Series.at(series_dir))
    return out if (out / "DONE").exists() else None


def run_study(study: ModuleType, run: PruneRun, profile: str, device: str = "auto", strict: bool = False,
              series_dir: str | Path | None = None) -> Path:
    """Evaluate every checkpoint of ``run``'s series (or of the series at ``series_dir``, e.g.
    imported checkpoints) for one study; returns the study's directory."""
    stage = study.NAME
    device = resolve_device(device)
    track = tracks.get(run.track)
    params = study_params(stage, profile, run.track)
    # the data first: a missing dataset is reported before a prune stage that may take a while
    data = study.data(track, run, params)
    series = Series.at(series_dir if series_dir is not None else ensure_series(run, profile, str(device), strict))
    out = study_dir(study, run, profile, series)
    if (out / "DONE").exists():
        return out
    with exclusive(out, f"{stage} {series.label}"):   # a second process waits, then finds it done
        if not (out / "DONE").exists():
            _evaluate_series(study, run, profile, device, series, data, params, out)
    return out


def _evaluate_series(study, run, profile, device, series, data, params, out) -> None:
    stage = study.NAME
    track = tracks.get(run.track)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out)   # what a killed writer left
    context: dict = {}
    for ckpt, digest in tqdm(list(zip(series.checkpoints, series.hashes)), desc=f"{stage} {series.label}"):
        part, items, examples = (out / f"{ckpt.stem}.csv", out / f"{ckpt.stem}.items.csv.gz",
                                 out / f"{ckpt.stem}.examples.pt")
        done = part.exists() and items.exists() and examples.exists()
        if done and "dense" in context:
            continue
        if done:   # the dense checkpoint's decisions are what the later ones are compared with
            context["dense"] = torch.load(examples, weights_only=False).get("decisions")
            continue
        model = prune.load(ckpt, expect={"arch": run.arch}).to(device).eval()
        if model.sparsevis_checkpoint["sha256"] != digest:
            raise ValueError(f"{ckpt}: its content hash changed since the study started; rerun")
        if is_cnn(model):   # faster convolutions for attribution's backward passes too (1.25x on a CPU)
            model.to(memory_format=torch.channels_last)
        meta = model.sparsevis_checkpoint
        context["exclude"] = set(meta.get("calibration_images", []))
        context["raw_data"] = (out / "raw-data", f"{series.label}-it{meta['iteration']:02d}")
        rows = Rows(dict(base_row(run, profile, meta, sum(p.numel() for p in model.parameters()), stage,
                                  series.id), precision=prec.resolve(STUDY_PRECISION, device)), params["n_boot"])
        with prec.strict_fp32(), logits_cache(logits_cache_dir()):
            ex = study.evaluate(model, track, data, params, device, rows, context)
        context.setdefault("dense", ex.get("decisions"))
        item_frame = pd.DataFrame(rows.items, columns=["dataset", "method", "metric", "item", "value"])
        results.write_items(item_frame.assign(iteration=meta["iteration"], sparsity=meta.get("sparsity", 0.0),
                                              seed=run.seed, run_id=series.id), items)
        atomic_torch_save({"iteration": meta["iteration"], "sparsity": meta.get("sparsity", 0.0), **ex},
                          examples)
        results.write(rows.rows, part)   # last: its presence marks the checkpoint done
    figures = study.figures_data(data)
    if figures is not None:
        atomic_torch_save(figures, out / "images.pt")
    frames = [results.read(p) for p in sorted(out.glob("iter-*.csv"))]
    results.write(pd.concat(frames, ignore_index=True), out / "results.csv")
    atomic_write_text(out / "DONE", "complete\n")

