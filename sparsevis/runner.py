"""The prune stage: dense training, then prune -> retrain (learning-rate rewinding) per iteration.

Outputs live in the run store (``$SPARSEVIS_RUNS_DIR``, default ``./runs``) under
``prune/<label>-<run id>/``; the run id hashes the run's config, the version of the code it
depends on and its inputs (data digest, weights file), so the same config is a cache hit.
Every file is written atomically and a run killed at any moment resumes from its last finished
epoch; ``DONE`` marks a complete run. Checkpoints carry the accuracy of their iteration.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from sparsevis import distributed, models, prune, results
from sparsevis.config import PruneRun
from sparsevis.fileio import atomic_write_json, atomic_write_text, sha256_file, stable_hash
from sparsevis.runtime import resolve_device, seed_everything
from sparsevis.stats import bootstrap_ci
from sparsevis.train import TensorData, accuracy, predict, recalibrate_bn, train

PACKAGE_DIR = Path(__file__).resolve().parent
# Source files whose change invalidates prune-stage results (studies and plotting do not).
PRUNE_CODE = ("models.py", "train.py", "features.py", "runner.py", "prune", "paper.py", "data/synthscenes.py",
              "data/mvh.py", "data/imagenet16.py", "data/imagenet.py", "data/paths.py")


def runs_dir() -> Path:
    return Path(os.environ.get("SPARSEVIS_RUNS_DIR", "runs"))


def code_version(paths=PRUNE_CODE) -> str:
    """Hash of the named package sources (files or folders of .py files)."""
    h = hashlib.sha256()
    for rel in paths:
        p = PACKAGE_DIR / rel
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            h.update(str(f.relative_to(PACKAGE_DIR)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


# --------------------------------------------------------------------------------------------
# Track data
# --------------------------------------------------------------------------------------------
@dataclass
class TrackData:
    train: TensorData | None
    test: TensorData
    num_classes: int
    digest: str
    dataset: str
    calibration: torch.Tensor | None = None   # real track: images for BN recalibration
    calibration_ids: tuple[str, ...] = ()
    to_decision: object = None                # logits -> class index


def synthetic_data(run: PruneRun) -> TrackData:
    from sparsevis.data import synthscenes as ss

    d = run.data
    kw = dict(seed=run.seed, size=d.size, texture_prob=d.texture_prob)
    tr, te = ss.make_split("train", d.n_train, **kw), ss.make_split("clean", d.n_test, **kw)
    return TrackData(TensorData(tr.images, tr.labels, ss.normalize),
                     TensorData(te.images, te.labels, ss.normalize, augment=False),
                     len(ss.CLASSES), stable_hash([tr.digest(), te.digest()]), "synthscenes-clean",
                     to_decision=lambda logits: logits.argmax(1))


# Real track: accuracy on the edge and silhouette stimuli (16-way, as model-vs-human decides);
# BN recalibration uses a seeded held-out set of cue-conflict images, recorded in the checkpoint
# so that studies exclude them for that run.
REAL_ACCURACY_DATASETS = ("edge", "silhouette")
N_CALIBRATION = 128


def real_data(run: PruneRun) -> TrackData:
    import numpy as np

    from sparsevis.data import imagenet16, mvh

    frames = [mvh.load_images(d) for d in REAL_ACCURACY_DATASETS]
    images, labels, files = [], [], []
    for df in frames:
        if run.n_eval:
            df = df.sort_values("image").iloc[: run.n_eval]
        ds = mvh.MVHImages(images=df)
        images += [ds[i][0] for i in range(len(ds))]
        labels += [imagenet16.category_index(c) for c in df["category"]]
        files += list(df["path"])
    x = torch.stack(images)
    y = torch.tensor(labels)
    digest = stable_hash([sha256_file(f) for f in files])
    calibration, ids = None, ()
    if run.bn_recalibration:
        cc = mvh.load_images("cue-conflict").sort_values("image")
        pick = np.sort(np.random.default_rng(run.seed).permutation(len(cc))[:N_CALIBRATION])
        sub = cc.iloc[pick]
        ds = mvh.MVHImages(images=sub)
        calibration = torch.stack([ds[i][0] for i in range(len(ds))])
        ids = tuple(sub["image"])
        digest = stable_hash([digest, [sha256_file(f) for f in sub["path"]]])
    return TrackData(None, TensorData(x, y, lambda t: t, augment=False), 1000, digest,
                     "+".join(REAL_ACCURACY_DATASETS), calibration, ids,
                     to_decision=lambda logits: imagenet16.decide(imagenet16.decision_from_logits(logits)))


def track_data(run: PruneRun) -> TrackData:
    if run.track == "synthetic":
        return synthetic_data(run)
    if run.track == "real":
        return real_data(run)
    from sparsevis import paper

    return paper.track_data(run)


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------
def run_id(run: PruneRun, data: TrackData) -> str:
    weights = run.weights
    if weights and Path(weights).is_file():
        weights = sha256_file(weights)
    return stable_hash({"run": run.record(), "code": code_version(), "data": data.digest,
                        "weights": weights})


@functools.lru_cache(maxsize=None)
def _cached_run_id(run: PruneRun) -> str:
    """The run id, computed once per process (building the data to hash it takes seconds)."""
    return run_id(run, track_data(run))


def run_dir(run: PruneRun) -> Path:
    return runs_dir() / "prune" / f"{run.label}-{_cached_run_id(run)}"


def checkpoints(directory: str | Path) -> list[Path]:
    """Finished checkpoints of a prune run, in iteration order."""
    return sorted(Path(directory).glob("iter-[0-9][0-9].pt"))


def _evaluate(model, data: TrackData, device) -> tuple[float, int, float, float]:
    logits = predict(model, data.test, device)
    labels = getattr(data.test, "labels", None)   # TensorData, paper.EvalData: no second pass
    if labels is None:
        labels = torch.cat([y for _, y in data.test.epoch(0, 256, 0, shuffle=False)])
    correct = (data.to_decision(logits) == labels).float().numpy()
    ci = bootstrap_ci(correct, n_boot=1000, seed=0)
    return ci.estimate, ci.n, ci.low, ci.high


def run_prune(run: PruneRun, device: str = "auto", store: Path | None = None) -> Path:
    """Run (or resume, or find cached) one prune experiment; returns its directory."""
    device = resolve_device(device)
    rid = _cached_run_id(run)
    out = (store or runs_dir()) / "prune" / f"{run.label}-{rid}"
    if (out / "DONE").exists():
        return out
    data = track_data(run)
    main = distributed.is_main()   # under torchrun rank 0 writes; the others wait at barriers
    if main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", {"run": run.record(), "run_id": rid,
                                                "code_version": code_version(), "data": data.digest})
    distributed.barrier()
    parent = None
    levels = run.sparsities
    bar = tqdm(list(enumerate(levels)), desc=run.label, disable=not main)
    for k, target in bar:
        ckpt = out / f"iter-{k:02d}.pt"
        if ckpt.exists():
            parent = prune.read(ckpt)["sha256"]
            continue
        bar.set_postfix(sparsity=f"{target:.3f}")
        model = _make_iteration(run, data, k, target, out, device)
        distributed.broadcast_buffers(model)   # rank 0's BatchNorm statistics on every rank
        if main:  # rank 0 evaluates the whole test split and writes the checkpoint
            acc, n, lo, hi = _evaluate(model, data, device)
            meta = dict(run_id=rid, track=run.track, iteration=k, target_sparsity=target,
                        accuracy=acc, accuracy_n=n, accuracy_ci=[lo, hi], eval_dataset=data.dataset,
                        parent=parent, seed=run.seed, label=run.label,
                        calibration_images=list(data.calibration_ids))
            parent = prune.save(model, ckpt, **meta)
            (out / f"iter-{k:02d}.state.pt").unlink(missing_ok=True)
        parent = distributed.broadcast_object(parent)
        distributed.barrier()
    if main:
        _write_results(run, out, rid)
        atomic_write_text(out / "DONE", "complete\n")
    distributed.barrier()
    return out


def _make_iteration(run: PruneRun, data: TrackData, k: int, target: float, out: Path, device):
    """The model of iteration k: trained dense (k=0), or pruned from iteration k-1 and retrained."""
    seed_everything(run.seed * 1000 + k)
    state = out / f"iter-{k:02d}.state.pt"
    if run.method in ("imp", "random"):
        if k == 0:
            model = models.create(run.arch, num_classes=data.num_classes, weights=run.weights)
            cfg = run.train
        else:
            model = prune.load(out / f"iter-{k - 1:02d}.pt")
            if run.method == "imp":
                prune.global_magnitude(model, target, preset=run.preset)
            else:
                prune.random_prune(model, target, preset=run.preset, seed=run.seed * 1000 + k)
            cfg = run.retrain
        if cfg is not None and cfg.epochs > 0:
            train(model, data.train, cfg, seed=run.seed * 1000 + k, device=device, state_path=state,
                  desc=f"{run.label} it{k}")
        return model
    if run.method == "oneshot":
        model = models.create(run.arch, weights=run.weights)
        prune.global_magnitude(model, target, preset=run.preset)
        if run.bn_recalibration:
            recalibrate_bn(model, data.calibration.split(32), device)
        return model
    # snip: prune at initialisation with saliencies from a few training batches, then train
    model = models.create(run.arch, num_classes=data.num_classes, weights=run.weights)
    batches = [b for _, b in zip(range(4), data.train.epoch(0, run.train.batch_size, run.seed))]
    prune.snip(model, batches, target, preset=run.preset, device=device)
    train(model, data.train, run.train, seed=run.seed, device=device, state_path=state,
          desc=f"{run.label} snip{target:.2f}")
    return model


def _write_results(run: PruneRun, out: Path, rid: str) -> None:
    rows = []
    for ckpt in checkpoints(out):
        meta = prune.read(ckpt)["meta"]
        n_params = sum(p.numel() for p in models.create(run.arch, num_classes=meta.get("num_classes")).parameters())
        rows.append(dict(track=run.track, profile="", arch=run.arch, n_params=n_params,
                         prune_method=run.method + ("+bnrecal" if run.bn_recalibration else ""),
                         prunable_set=meta["preset"] if "preset" in meta else run.preset,
                         iteration=meta["iteration"], sparsity=meta.get("sparsity", 0.0),
                         sparsity_all=meta.get("sparsity_all", 0.0), seed=run.seed, study="prune",
                         dataset=meta["eval_dataset"], method="top-1", metric="accuracy",
                         value=meta["accuracy"], n=meta["accuracy_n"], ci_low=meta["accuracy_ci"][0],
                         ci_high=meta["accuracy_ci"][1], run_id=rid))
    results.write(rows, out / "results.csv")
