"""The run store: where checkpoints and results live, and how a model series is found.

Location: ``$SPARSEVIS_RUNS_DIR`` if set; else ``runs/`` in the sparsevis checkout the package
is imported from (the folder with ``pyproject.toml`` and ``_config.yml`` above the package),
whatever the working directory; else ``$XDG_CACHE_HOME/sparsevis/runs`` (default
``~/.cache/sparsevis/runs``) for an installed package.

A *series* is an ordered set of checkpoints of one model at increasing sparsity: a sparsevis
prune run (``prune/<label>-<config hash>/``) or an imported folder
(``imported/<label>-<content hash>/``). Both hold ``iter-NN.pt`` checkpoints with their
``.json`` metadata and a ``config.json`` lineage record; locating one needs its config and the
store, never its training data. A checkpoint is evidence: a code change never hides it.
``cache/logits/`` holds logits the stages computed, one file per model (content-addressed,
safe to delete: what is missing is computed again).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sparsevis.fileio import stable_hash
from sparsevis.prune import read

PACKAGE_DIR = Path(__file__).resolve().parent


def runs_dir() -> Path:
    """The run store (see the module docstring)."""
    if os.environ.get("SPARSEVIS_RUNS_DIR"):
        return Path(os.environ["SPARSEVIS_RUNS_DIR"])
    checkout = PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "_config.yml").is_file():
        return checkout / "runs"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "sparsevis" / "runs"


def logits_cache_dir(store: Path | None = None) -> Path:
    """Where the stages of a store keep the logits they computed (:func:`sparsevis.features.logits_cache`)."""
    return (store or runs_dir()) / "cache" / "logits"


def series_key(run) -> str:
    """What names a prune run's folder: its configuration, nothing else (not the code version,
    not a digest of the training data; both are recorded in its lineage instead)."""
    return stable_hash(run.record())


def run_dir(run, store: Path | None = None) -> Path:
    kind = "imported" if run.method == "imported" else "prune"
    return (store or runs_dir()) / kind / f"{run.label}-{series_key(run)}"


def checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Finished checkpoints of a series, in iteration order."""
    return sorted(Path(directory).glob("iter-[0-9][0-9].pt"))


def checkpoint_hash(path: Path) -> str:
    """A checkpoint's content hash, from its metadata sidecar when it has one (the file itself
    is verified when a study loads it)."""
    side = Path(str(path) + ".json")
    try:
        return json.loads(side.read_text())["sha256"]
    except (OSError, ValueError, KeyError):
        return read(path)["sha256"]


def lineage(directory: str | os.PathLike) -> dict:
    """The ``config.json`` record of a series (empty if it has none)."""
    f = Path(directory) / "config.json"
    if not f.is_file():
        return {}
    try:
        return json.loads(f.read_text())
    except ValueError as e:
        raise ValueError(f"{f}: not a JSON lineage record ({e}); restore it or remove the folder") from None


@dataclass(frozen=True)
class Series:
    """A finished series: its folder, label, checkpoints and their content hashes."""

    directory: Path
    label: str
    checkpoints: tuple[Path, ...]
    hashes: tuple[str, ...]

    @classmethod
    def at(cls, directory: str | os.PathLike) -> "Series":
        d = Path(directory)
        ckpts = tuple(checkpoints(d))
        if not ckpts:
            raise FileNotFoundError(f"{d}: no checkpoints (iter-NN.pt)")
        return cls(d, d.name.rsplit("-", 1)[0], ckpts, tuple(checkpoint_hash(p) for p in ckpts))

    @property
    def id(self) -> str:
        return self.directory.name.rsplit("-", 1)[-1]
