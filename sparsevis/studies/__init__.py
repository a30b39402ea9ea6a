"""Study stages: interpretability (i), object discovery (ii), human alignment (iii).

Each study is one module with the same surface (``data``, ``evaluate``, ``figures_data``);
:data:`STUDIES` is their registry. :func:`run_study` evaluates every checkpoint of a series
(features always from the pruned checkpoint being evaluated) and writes tidy rows
(:mod:`sparsevis.results`), the per-item values behind every mean, and a few per-image
examples for the figures, under ``<runs>/<study>/<profile>/<label>-<study id>/``.

A study's id hashes the content hashes of the series' checkpoints, the study's parameters, its
code version (the import closure of its module and the track's, see
:mod:`sparsevis.provenance`) and the list of its evaluation images: the same inputs again are a
cache hit, a changed image list or study code is a new study. Each checkpoint's results are
written atomically as they finish, so a killed study resumes.
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType

from sparsevis.config import PruneRun

from . import alignment, discovery, interpretability, stage
from .base import Rows
from .stage import study_params

STUDIES: dict[str, ModuleType] = {m.NAME: m for m in (interpretability, discovery, alignment)}
STAGES = tuple(STUDIES)


def get(name: str) -> ModuleType:
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; expected one of {STAGES}")
    return STUDIES[name]


def code_version(name: str, track: str, package_dir: Path = stage.provenance.PACKAGE_DIR) -> str:
    return stage.code_version(get(name), track, package_dir)


def run_study(name: str, run: PruneRun, profile: str, device: str = "auto", strict: bool = False,
              series_dir: str | Path | None = None) -> Path:
    """Run (or resume, or find finished) one study of a series: see :mod:`sparsevis.studies.stage`."""
    return stage.run_study(get(name), run, profile, device, strict, series_dir)


def find_study(name: str, run: PruneRun, profile: str, series_dir: Path | None) -> Path | None:
    return stage.find_study(get(name), run, profile, series_dir)


__all__ = ["STAGES", "STUDIES", "Rows", "code_version", "find_study", "get", "run_study", "study_params"]
