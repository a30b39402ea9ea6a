"""A series' checkpoints as the explorer sees them: file, iteration, realised sparsity, prunable set."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sparsevis import prune


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint of a prune run: file, iteration, realised sparsity, prunable set."""

    path: Path
    iteration: int
    sparsity: float
    preset: str
    n_prunable: int | None


def checkpoint_info(path: Path, default_preset: str) -> CheckpointInfo:
    """The :class:`CheckpointInfo` of a checkpoint file (its sidecar verified: an edited sidecar
    or file is an error, not a label); ``default_preset`` where the file names none."""
    meta = prune.read(path)["meta"]
    return CheckpointInfo(Path(path), int(meta["iteration"]), float(meta.get("sparsity") or 0.0),
                          meta.get("preset") or default_preset, meta.get("n_prunable"))
