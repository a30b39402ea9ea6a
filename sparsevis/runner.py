"""The prune stage: dense training, then prune -> retrain (learning-rate rewinding) per iteration.

Outputs live in the run store (:mod:`sparsevis.store`) under ``prune/<label>-<config hash>/``.
The folder is named by the run's configuration alone; what made its checkpoints (the code
version of this stage, the digest of the training data, each checkpoint's parent) is recorded
in ``config.json`` and in every checkpoint, so that a change to the code never hides a
checkpoint. Checkpoints made by another code version are used with a warning (``strict``
refuses them); a new training run happens only when asked (``retrain``). Every file is written
atomically and a run killed at any moment resumes from its last finished epoch; ``DONE`` marks
a complete run. Checkpoints carry the accuracy of their iteration.
"""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from sparsevis import distributed, models, provenance, prune, results, tracks
from sparsevis import precision as prec
from sparsevis.config import PruneRun
from sparsevis.features import logits_cache
from sparsevis.fileio import (
    atomic_write_json,
    atomic_write_text,
    exclusive,
    remove_stale_temp_files,
    sha256_file,
)
from sparsevis.runtime import seed_everything, torch_threads
from sparsevis.stats import bootstrap_ci
from sparsevis.store import checkpoints, lineage, logits_cache_dir, run_dir, runs_dir, series_key
from sparsevis.train import EVAL_PRECISION, predict, recalibrate_bn, train

log = logging.getLogger("sparsevis")


class TrainingRequired(RuntimeError):
    """A series is missing and making it is expensive: the message names the command."""


def code_version(track: str, package_dir: Path = provenance.PACKAGE_DIR) -> str:
    """The prune stage's code version for a track: every module that trains a run of it."""
    return provenance.code_version(__name__, f"sparsevis.tracks.{track}", skip=("sparsevis.tracks",),
                                   package_dir=package_dir)


def prune_command(run: PruneRun, profile: str) -> str:
    arch = run.arch.split("/")[-1]
    launcher = "torchrun --nproc_per_node=<GPUs> -m sparsevis" if run.track == "paper" else "python -m sparsevis"
    return f"{launcher} prune --profile {profile} --track {run.track} --arch {arch}"


def _weights_identity(run: PruneRun):
    if run.weights and Path(run.weights).is_file():
        return sha256_file(run.weights)
    return run.weights


def _check_lineage(run: PruneRun, out: Path, strict: bool) -> None:
    """Warn (or, ``strict``, refuse) when a series was made by another code version."""
    made_by = lineage(out).get("code_version")
    current = code_version(run.track)
    if made_by and made_by != current:
        msg = (f"{run.label}: checkpoints in {out} are from code version {made_by}; current {current}")
        if strict:
            raise ValueError(f"{msg} (--strict: retrain with `--retrain`, or drop --strict to use them)")
        log.warning("%s; using them (pass --strict to refuse, --retrain to train anew)", msg)


def find_series(run: PruneRun, store: Path | None = None, strict: bool = False) -> Path | None:
    """The finished series of ``run`` in the store, or None; never computes anything."""
    out = run_dir(run, store)
    if not (out / "DONE").exists():
        return None
    missing = [k for k in range(len(run.sparsities)) if not (out / f"iter-{k:02d}.pt").exists()]
    if missing:   # a checkpoint deleted by hand: the series is not finished any more
        log.warning("%s: %s missing from %s; the series is resumed to rebuild it", run.label,
                    ", ".join(f"iter-{k:02d}.pt" for k in missing), out)
        (out / "DONE").unlink()
        return None
    _check_lineage(run, out, strict)
    try:
        results.read(out / "results.csv")
    except (OSError, ValueError):   # deleted or damaged: it is made from the checkpoints alone
        _write_results(run, out, series_key(run))
    return out


def ensure_series(run: PruneRun, profile: str, device: str = "auto", strict: bool = False) -> Path:
    """The series of ``run`` for a study, notebook or the explorer: found, or made first when
    that is cheap (synthetic and real tracks, said in the log); a track whose training takes
    GPU-days is never trained here: :class:`TrainingRequired` names the command."""
    found = find_series(run, strict=strict)
    if found is not None:
        return found
    if run.method == "imported":
        raise FileNotFoundError(f"imported series {run.label}: not in {runs_dir().resolve()}; register it with "
                                f"`python -m sparsevis import-checkpoints DIR --arch {run.arch} --label {run.name}`")
    if tracks.get(run.track).expensive_training:
        raise TrainingRequired(
            f"no checkpoints of {run.label} in {runs_dir().resolve()}; training them takes GPU-days and "
            f"starts only on its own command:\n  {prune_command(run, profile)}\n"
            "(or `python -m sparsevis import-checkpoints DIR --arch NAME` for checkpoints you have)")
    log.warning("%s: no checkpoints in the run store yet; running its prune stage first", run.label)
    return run_prune(run, device=device, strict=strict)


def _evaluate(model, data: tracks.TrackData, device) -> tuple[float, int, float, float]:
    logits = predict(model, data.test, device)
    labels = getattr(data.test, "labels", None)   # TensorData, tracks.paper.EvalData: no second pass
    if labels is None:
        labels = torch.cat([y for _, y in data.test.epoch(0, 256, 0, shuffle=False)])
    correct = (data.to_decision(logits) == labels).float().numpy()
    ci = bootstrap_ci(correct, n_boot=1000, seed=0)
    return ci.estimate, ci.n, ci.low, ci.high


def run_prune(run: PruneRun, device: str = "auto", store: Path | None = None, strict: bool = False,
              retrain: bool = False) -> Path:
    """Run (or resume, or find finished) one prune experiment; returns its directory.

    ``retrain``: keep the existing series under ``<dir>.superseded-<time>`` and train anew.
    A track whose training takes GPU-days does not train on the CPU unless ``device="cpu"``
    says so. Two processes on one run store never train the same series: the second waits for
    the first (a lock on the series' folder) and then finds it finished.
    """
    if run.method == "imported":
        raise ValueError(f"{run.label}: an imported series is registered by import-checkpoints, not trained")
    requested = str(device)
    device = distributed.process_device(device)   # under torchrun: this rank's own GPU
    if tracks.get(run.track).expensive_training and device.type == "cpu" and requested != "cpu":
        raise ValueError(f"{run.label}: device={requested!r} resolved to the CPU (no usable GPU: check the "
                         "driver with torch.cuda.is_available()); training this track on the CPU takes "
                         "months. Pass --device cpu to do it anyway.")
    out = run_dir(run, store)
    if retrain and out.exists() and distributed.is_main():
        shutil.move(str(out), f"{out}.superseded-{time.strftime('%Y%m%d-%H%M%S')}")
    distributed.barrier()
    found = find_series(run, store, strict)
    if found is not None:
        return found
    if not distributed.is_main():   # rank 0 holds the lock; the others follow it at its barriers
        return _train_series(run, out, device, strict)
    with exclusive(out, run.label):
        return find_series(run, store, strict) or _train_series(run, out, device, strict)


def _train_series(run: PruneRun, out: Path, device, strict: bool) -> Path:
    if out.exists():
        _check_lineage(run, out, strict)
    track = tracks.get(run.track)
    data = track.train_data(run)
    version = code_version(run.track)
    main = distributed.is_main()   # under torchrun rank 0 writes; the others wait at barriers
    threads = lineage(out).get("threads") if device.type == "cpu" else None
    if main:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(out)   # what a killed writer left
        record = lineage(out)
        if record.get("data") not in (None, data.digest):
            log.warning("%s: the training data changed since this run started (digest %s, now %s)",
                        run.label, record["data"], data.digest)
        # CPU kernels reduce in an order that depends on the thread count: a run resumes with the
        # count it started with, and records it, so its checkpoints do not depend on the layout
        atomic_write_json(out / "config.json", {"run": run.record(), "run_id": series_key(run),
                                                "code_version": record.get("code_version", version),
                                                "resumed_with": version, "data": data.digest,
                                                "weights": _weights_identity(run), "device": device.type,
                                                "threads": threads or torch.get_num_threads(),
                                                "world_size": distributed.world_size(),
                                                **({"data_pipeline": data.pipeline} if data.pipeline else {})})
    log.info("prune %s: device %s, world size %d, %d CPU threads", run.label, device, distributed.world_size(),
             threads or torch.get_num_threads())
    distributed.barrier()
    with torch_threads(threads):
        _iterations(run, data, out, device, version)
    return out


def _iterations(run: PruneRun, data: tracks.TrackData, out: Path, device, version: str) -> None:
    main = distributed.is_main()
    rid = series_key(run)
    parent = None
    levels = run.sparsities
    bar = tqdm(list(enumerate(levels)), desc=run.label, disable=not main)
    for k, target in bar:
        ckpt = out / f"iter-{k:02d}.pt"
        if ckpt.exists():
            stored = prune.read(ckpt, expect={"run_id": rid, "arch": run.arch})
            if main and not Path(f"{ckpt}.json").exists():   # killed between the file and its sidecar
                prune.write_sidecar(ckpt, stored)
            parent = stored["sha256"]
            continue
        bar.set_postfix(sparsity=f"{target:.3f}")
        model, train_precision = _make_iteration(run, data, k, target, out, device)
        distributed.broadcast_buffers(model)   # rank 0's BatchNorm statistics on every rank
        if main:  # rank 0 evaluates the whole test split and writes the checkpoint
            with logits_cache(logits_cache_dir(out.parents[1])):   # the studies see these images too
                acc, n, lo, hi = _evaluate(model, data, device)
            meta = dict(run_id=rid, track=run.track, iteration=k, target_sparsity=target,
                        accuracy=acc, accuracy_n=n, accuracy_ci=[lo, hi], eval_dataset=data.dataset,
                        eval_precision=prec.resolve(EVAL_PRECISION, device),
                        parent=parent, seed=run.seed, label=run.label, code_version=version,
                        data_digest=data.digest, calibration_images=list(data.calibration_ids),
                        **({"train_precision": train_precision} if train_precision else {}),
                        **({"data_pipeline": data.pipeline} if data.pipeline else {}))
            parent = prune.save(model, ckpt, **meta)
            (out / f"iter-{k:02d}.state.pt").unlink(missing_ok=True)
        parent = distributed.broadcast_object(parent)
        distributed.barrier()
    if main:
        _write_results(run, out, rid)
        atomic_write_text(out / "DONE", "complete\n")
    distributed.barrier()


def _make_iteration(run: PruneRun, data: tracks.TrackData, k: int, target: float, out: Path, device):
    """The model of iteration k: trained dense (k=0), or pruned from iteration k-1 and retrained;
    with the precision its weights were trained in (None: not trained here, e.g. pretrained
    weights pruned one-shot, or a parent checkpoint that does not say)."""
    seed_everything(run.seed * 1000 + k)
    state = out / f"iter-{k:02d}.state.pt"
    if run.method in ("imp", "random"):
        if k == 0 and (dense := _shared_dense(run)) is not None:
            return dense, dense.sparsevis_checkpoint.get("train_precision")
        precision = None
        if k == 0:
            model = models.create(run.arch, num_classes=data.num_classes, weights=run.weights)
            cfg = run.train
        else:
            model = prune.load(out / f"iter-{k - 1:02d}.pt", expect={"run_id": series_key(run), "arch": run.arch})
            precision = model.sparsevis_checkpoint.get("train_precision")   # if not retrained
            if run.method == "imp":
                prune.global_magnitude(model, target, preset=run.preset)
            else:
                prune.random_prune(model, target, preset=run.preset, seed=run.seed * 1000 + k)
            cfg = run.retrain
        if cfg is not None and cfg.epochs > 0:
            precision = train(model, data.train, cfg, seed=run.seed * 1000 + k, device=device, state_path=state,
                              desc=f"{run.label} it{k}")["precision"]
        return model, precision
    if run.method in ("oneshot", "oneshot-random"):
        model = models.create(run.arch, weights=run.weights)
        if run.method == "oneshot":
            prune.global_magnitude(model, target, preset=run.preset)
        else:   # the control: the same sparsity, weights chosen at random
            prune.random_prune(model, target, preset=run.preset, seed=run.seed * 1000 + k)
        if run.bn_recalibration:
            recalibrate_bn(model, data.calibration.split(32), device)
        return model, None
    # snip: prune at initialisation with saliencies from a few training batches, then train
    model = models.create(run.arch, num_classes=data.num_classes, weights=run.weights)
    batches = [b for _, b in zip(range(4), data.train.epoch(0, run.train.batch_size, run.seed))]
    prune.snip(model, batches, target, preset=run.preset, device=device)
    result = train(model, data.train, run.train, seed=run.seed, device=device, state_path=state,
                   desc=f"{run.label} snip{target:.2f}")
    return model, result["precision"]


def _shared_dense(run: PruneRun):
    """A random-pruning control starts from the dense model of its magnitude-pruning twin (the
    same configuration but the criterion) when that one is trained already: the two series then
    differ by the pruning criterion alone, and the dense training is not paid twice."""
    if run.method != "random":
        return None
    twin = replace(run, method="imp")
    ckpt = run_dir(twin) / "iter-00.pt"
    if not ckpt.exists():
        return None
    log.info("%s: dense model from %s", run.label, ckpt)
    return prune.load(ckpt, expect={"run_id": series_key(twin), "arch": run.arch})


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
                         ci_high=meta["accuracy_ci"][1], run_id=rid,
                         precision=meta.get("eval_precision", EVAL_PRECISION),
                         **({"train_precision": meta["train_precision"]} if "train_precision" in meta else {})))
    results.write(rows, out / "results.csv")
