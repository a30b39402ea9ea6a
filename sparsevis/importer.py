"""Bring your own checkpoints: a folder of state dicts, one per sparsity level, registered as a
series that every study, chapter and the explorer accept like a sparsevis run.

``python -m sparsevis import-checkpoints DIR --arch NAME [--label L] [--track real]`` reads
every ``*.pt``/``*.pth`` file of DIR (stock torchvision/timm state dicts, or sparsevis
checkpoints), loads each into ``NAME``'s definition, reads its realised sparsity from the zeros
over the named prunable set (``--preset``), and writes them in order of sparsity as sparsevis
checkpoints (masks = the non-zero weights) under ``imported/<label>-<hash>/`` of the run store,
with a lineage record naming every source file and its sha256.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from sparsevis import models, prune, results
from sparsevis.config import PruneRun
from sparsevis.fileio import atomic_write_json, atomic_write_text, sha256_file
from sparsevis.store import lineage, run_dir, runs_dir, series_key

SUFFIXES = (".pt", ".pth")


def _model_from(path: Path, arch: str, num_classes: int | None) -> torch.nn.Module:
    state = prune.load_state_dict_file(path, expected_arch=arch)
    model = models.create(arch, num_classes=num_classes)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path}: not a state dict of {arch} ({str(e).splitlines()[0]})") from None
    return model


def _mask_zeros(model: torch.nn.Module, preset: str, path: Path) -> float:
    """Mask exactly the zero weights of the prunable set; returns the realised sparsity."""
    items = prune.prunable(model, preset)
    if not items:
        raise ValueError(f"{path}: {type(model).__name__} has no prunable weights in preset {preset!r}")
    scores = {i.name: (i.weight.detach() != 0).float() for i in items}
    zeros = sum(int((i.weight.detach() == 0).sum()) for i in items)
    total = sum(i.weight.numel() for i in items)
    prune.prune_by_scores(model, scores, zeros / total, preset=preset, method="imported", verbose=False)
    return zeros / total


def import_checkpoints(directory: str | os.PathLike, arch: str, label: str | None = None,
                       track: str = "real", preset: str = "all", num_classes: int | None = None) -> Path:
    """Register the state dicts of ``directory`` as a series; returns its folder in the store."""
    src = Path(directory)
    if not src.is_dir():
        raise FileNotFoundError(f"import-checkpoints: {src} is not a folder of state dicts")
    files = sorted(p for p in src.iterdir() if p.suffix in SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"import-checkpoints: {src} holds no {' or '.join(SUFFIXES)} file")
    loaded = []
    for f in files:
        model = _model_from(f, arch, num_classes)
        loaded.append((_mask_zeros(model, preset, f), f, model))
    loaded.sort(key=lambda t: t[0])
    levels = tuple(round(s, 6) for s, _, _ in loaded)
    if len(set(levels)) < len(levels):
        raise ValueError(f"import-checkpoints: two files of {src} have the same sparsity {levels}; "
                         "expected one file per sparsity level")
    run = PruneRun(track, arch, "imported", preset=preset, levels=levels, name=label or src.name)
    out = run_dir(run)
    if (out / "DONE").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    sources = [{"file": str(f.resolve()), "sha256": sha256_file(f), "sparsity": s} for s, f, _ in loaded]
    atomic_write_json(out / "config.json", {"run": run.record(), "run_id": series_key(run), "imported": sources})
    parent = None
    for k, (s, f, model) in enumerate(loaded):
        parent = prune.save(model, out / f"iter-{k:02d}.pt", run_id=series_key(run), track=track, iteration=k,
                            target_sparsity=s, parent=parent, seed=0, label=run.label,
                            source_file=str(f.resolve()), source_sha256=sources[k]["sha256"])
    n_params = sum(p.numel() for p in loaded[0][2].parameters())
    # no accuracy rows (nothing says what these checkpoints were evaluated on): the sparsities
    results.write([dict(track=track, profile="", arch=arch, n_params=n_params, prune_method="imported",
                        prunable_set=preset, iteration=k, sparsity=s, sparsity_all=prune.sparsity(m, "all"),
                        seed=0, study="prune", dataset="", method="realised", metric="sparsity", value=s, n=1,
                        ci_low=s, ci_high=s, run_id=series_key(run)) for k, (s, _, m) in enumerate(loaded)],
                  out / "results.csv")
    atomic_write_text(out / "DONE", "complete\n")
    return out


def imported_run(label_or_dir: str | os.PathLike) -> PruneRun:
    """The :class:`PruneRun` record of an imported series, from its folder (or its label)."""
    p = Path(label_or_dir)
    if not (p / "config.json").is_file():   # a label (a folder of the store is taken as it is)
        matches = sorted((runs_dir() / "imported").glob(f"*-imported-{label_or_dir}-*"))
        if not matches:
            raise FileNotFoundError(f"checkpoints={label_or_dir!r}: neither an imported series' folder nor the "
                                    f"label of one in {runs_dir() / 'imported'} (import it with `python -m "
                                    "sparsevis import-checkpoints DIR --arch NAME --label L`)")
        p = matches[-1]
    record = lineage(p).get("run")
    if not record:
        raise ValueError(f"{p}: no config.json lineage record; not an imported series")
    return PruneRun(record["track"], record["arch"], "imported", preset=record["preset"],
                    levels=tuple(record["levels"]), name=record["name"])
