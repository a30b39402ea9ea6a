"""Where a profile's results are, for the build and for notebooks run by hand."""
from __future__ import annotations

import os
import re
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from sparsevis import results, studies
from sparsevis.config import get_profile
from sparsevis.fileio import sha256_file, stable_hash
from sparsevis.runner import find_series
from sparsevis.store import runs_dir

from .chapters import ALL_STAGES, STUDY_STAGES, chapter_of


def config_hash(profile: str, stages=None, chapter: str | None = None) -> str:
    """Hash of the configuration behind a profile's results; figures cite it.

    With ``stages`` (or a ``chapter`` of :data:`CHAPTERS`, meaning its stages) only the part
    those results depend on counts: every run's record, plus the study sizes and the settings of
    the named study stages. Without either: the whole profile.
    """
    p = get_profile(profile)
    if chapter is not None:
        stages = chapter_of(chapter).stages
    if stages is None:
        return stable_hash(asdict(p))
    studies = [s for s in stages if s in STUDY_STAGES]
    record = {"runs": [r.record() for r in p.runs]}
    if studies:
        record.update(n_images=p.n_images, n_boot=p.n_boot, studies=_select(asdict(p)["studies"], studies))
    return stable_hash(record)


def _select(d, stages):
    """The study settings of ``stages`` in a (possibly per-track) ``Profile.studies`` dict."""
    if not isinstance(d, dict):
        return d
    if any(k in STUDY_STAGES for k in d):
        return {k: v for k, v in d.items() if k in stages}
    return {k: _select(v, stages) for k, v in d.items()}


def _runs_root() -> Path:
    return runs_dir()


def _rel(path: Path) -> str:
    root = _runs_root().resolve()
    path = Path(path).resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


_ID = re.compile(r"-[0-9a-f]{12}$")


def label_of(dirname: str) -> str:
    """Run label of a result directory: ``synthetic-sv_resnet_s-imp-s0-9218aefe4aac`` ->
    ``synthetic-sv_resnet_s-imp-s0``."""
    return _ID.sub("", Path(dirname).name)


def run_id_of(dirname: str) -> str:
    """Run (or study) id of a result directory: its trailing 12 hex digits."""
    m = _ID.search(Path(dirname).name)
    return m.group(0)[1:] if m else Path(dirname).name


def resolve_run_path(rel: str | os.PathLike) -> Path:
    """A result directory named relative to the run store (as ``result_dirs`` holds them)."""
    p = Path(rel)
    return p if p.is_absolute() else _runs_root() / p


def find_result_dirs(profile: str, stages=ALL_STAGES) -> dict[str, list[str]]:
    """Finished result directories (relative to the run store) of a profile, by stage,
    computing nothing: prune runs are located by their configuration
    (:func:`sparsevis.runner.find_series`), studies by the checkpoints they were computed on
    (:func:`sparsevis.studies.find_study`). The book passes the exact directories instead
    (notebook parameter ``result_dirs``); this is for notebooks run by hand."""
    out: dict[str, list[str]] = {stage: [] for stage in stages}
    for run in get_profile(profile).runs:
        series = find_series(run)
        for stage in stages:
            d = series if stage == "prune" else studies.find_study(stage, run, profile, series)
            if d is not None and (d / "results.csv").is_file():
                out[stage].append(_rel(d))
    return out


def load_results(profile: str, stages=ALL_STAGES, result_dirs: dict | None = None):
    """The tidy results of a profile's runs (``sparsevis.results.COLUMNS`` plus ``label`` and
    ``source``), read from ``result_dirs`` ({stage: [dir relative to the run store]}, as the book
    injects it) or found with :func:`find_result_dirs`. Missing stages give no rows."""
    dirs = result_dirs if result_dirs is not None else find_result_dirs(profile, stages)
    root = _runs_root()
    frames = []
    for stage in stages:
        for rel in dirs.get(stage, []):
            d = Path(rel) if Path(rel).is_absolute() else root / rel
            f = d / "results.csv" if d.is_dir() or not d.suffix else d
            if not f.is_file():
                raise FileNotFoundError(f"results of stage {stage!r}: {f} does not exist "
                                        f"(run `python -m sparsevis book --profile {profile}`)")
            df = results.read(f)
            df["source"] = f"{stage}/{f.parent.name}"
            df["label"] = label_of(f.parent.name)
            frames.append(df)
    if not frames:
        return pd.DataFrame(columns=results.COLUMNS + ["source", "label"])
    df = pd.concat(frames, ignore_index=True)
    df["profile"] = df["profile"].where(df["profile"].notna() & (df["profile"].astype(str) != ""), profile)
    return df


def _results_digest(result_dirs: dict[str, list[str]], stages) -> dict:
    root = _runs_root()
    out = {}
    for stage in stages:
        out[stage] = {}
        for rel in result_dirs.get(stage, []):
            f = (root / rel) / "results.csv"
            out[stage][rel] = sha256_file(f)[:16] if f.is_file() else None
    return out


