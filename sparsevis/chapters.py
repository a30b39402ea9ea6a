"""What a chapter notebook needs, in one call: its results, the folders behind them and their
provenance.

``chapters.load(stage, profile, ...)`` selects the profile's runs (or an imported series,
``checkpoints=``), finds their series and studies (the book injects the exact folders as
``result_dirs``; by hand they are found, or run when that is cheap), and returns a
:class:`ChapterData` with the tidy rows of the study and of the prune stage, and the captions'
provenance: track notes, run ids, the configuration hash and, for checkpoints made by another
code version, a warning that every figure repeats.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sparsevis import plotting, results, runner, studies, tracks
from sparsevis.analysis import stage as analysis
from sparsevis.book.results import config_hash, label_of, resolve_run_path
from sparsevis.config import PruneRun, get_profile
from sparsevis.importer import imported_run
from sparsevis.store import lineage

PRUNE = "prune"


def as_set(x) -> set | None:
    """None (everything), one name or a list of names -> a set of names, or None."""
    return None if x is None else {x} if isinstance(x, str) else set(x)


def select_runs(profile: str, track=None, archs=None, seed: int | None = None, checkpoints=None) -> list[PruneRun]:
    """The profile's runs that ``track`` and ``archs`` select, plus the imported series named by
    ``checkpoints`` (a label or folder, or a list of them); with ``checkpoints`` alone, only
    those. ``seed``: None keeps the profile's seeds (several seeds of one configuration stay
    several runs); an int puts every selected run at that seed (once each)."""
    imported = [imported_run(c) for c in (as_set(checkpoints) or ())]
    if imported and track is None and archs is None:
        return imported
    tracks_, names = as_set(track), as_set(archs)
    p = get_profile(profile)
    runs = [r for r in p.runs if (tracks_ is None or r.track in tracks_)
            and (names is None or names & {r.arch, r.arch.split("/")[-1], r.label})]
    if not runs and not imported:
        raise ValueError(f"track={track!r}, archs={archs!r} select no run of profile {profile!r}; "
                         f"its runs: {', '.join(r.label for r in p.runs)}")
    if seed is not None:
        runs = list({r.label: r for r in (dataclasses.replace(r, seed=seed) for r in runs)}.values())
    return runs + imported


def lineage_note(run: PruneRun, series_dir: Path) -> str | None:
    """"checkpoints from code version X; current Y" when a series was made by other code."""
    if run.method == "imported":
        return None
    made_by, current = lineage(series_dir).get("code_version"), runner.code_version(run.track)
    if made_by and made_by != current:
        return f"checkpoints of {run.label} from code version {made_by}; current {current}"
    return None


@dataclass
class ChapterData:
    """A chapter's rows and provenance (see the module docstring)."""

    profile: str
    stage: str
    runs: list[PruneRun]
    dirs: dict[str, Path]          # run label -> the study's folder (the series' for "prune")
    series: dict[str, Path]        # run label -> the series' folder
    rows: pd.DataFrame             # the study's rows and the prune stage's, with label and model
    config: str
    notebook: str
    warnings: dict[str, str] = field(default_factory=dict)   # run label -> lineage note, or why it is left out

    @property
    def tracks(self) -> list[str]:
        return [t for t in tracks.REGISTRY if t in set(self.rows["track"])]

    def provenance(self, track, run_ids=None) -> str:
        """The provenance line of a figure of ``track`` (or tracks) drawn from the series
        ``run_ids`` (default: every run of those tracks), with the lineage warnings that apply."""
        wanted = as_set(track)
        rows = self.rows[self.rows["track"].isin(wanted)]
        if run_ids is not None:
            rows = rows[rows["run_id"].isin(as_set(list(run_ids)))]
        line = plotting.provenance(sorted(wanted), self.profile, rows["run_id"].unique(), self.config, self.notebook)
        notes = [self.warnings[lb] for lb in dict.fromkeys(rows["label"]) if lb in self.warnings]
        return line + "".join(f" · **{n}**" for n in notes)

    def note(self, track: str) -> str:
        return tracks.get(track).note


def _study_dir(stage: str, run: PruneRun, profile: str, device: str, given: dict) -> Path:
    if run.label in given:
        return given[run.label]
    if stage == PRUNE:
        return runner.ensure_series(run, profile, device)
    return Path(studies.run_study(stage, run, profile, device))


def load(stage: str, profile: str, *, notebook: str, track=None, archs=None, seed: int | None = None,
         result_dirs: dict | None = None, device: str = "auto", checkpoints=None) -> ChapterData:
    """The rows of ``stage`` ("prune" or a study) for the selected runs, with their provenance.

    ``result_dirs`` ({stage: [folder relative to the run store]}, as the book injects it) is
    used where it names a selected run; anything else is found, or run when that is cheap
    (never paper-track training: :class:`sparsevis.runner.TrainingRequired` names the command).
    """
    runs = select_runs(profile, track, archs, seed, checkpoints)
    given = {label_of(rel): resolve_run_path(rel) for rel in (result_dirs or {}).get(stage, [])}
    given_series = {label_of(rel): resolve_run_path(rel) for rel in (result_dirs or {}).get(PRUNE, [])}
    dirs, series, frames, warnings = {}, {}, [], {}
    for run in runs:
        if run.label not in given_series and runner.find_series(run) is None \
                and (note := tracks.get(run.track).missing(run)):
            warnings[run.label] = f"{run.label} left out: {note}"
            continue
        s = given_series.get(run.label) or runner.ensure_series(run, profile, device)
        d = s if stage == PRUNE else _study_dir(stage, run, profile, device, given)
        dirs[run.label], series[run.label] = d, s
        for part in ([results.read(s / "results.csv")] + ([] if stage == PRUNE else [results.read(d / "results.csv")])):
            frames.append(part.assign(label=run.label))
        if (w := lineage_note(run, s)) is not None:
            warnings[run.label] = w
    if not frames:
        raise FileNotFoundError(f"profile {profile!r}: none of its selected series can be made here: "
                                + "; ".join(warnings.values()))
    rows = pd.concat(frames, ignore_index=True).assign(profile=profile)
    model = rows["arch"].str.split("/").str[-1] + " · " + rows["prune_method"]
    # several training seeds of one configuration are several models in the figures
    seeds = rows.groupby(model)["seed"].transform("nunique")
    rows["model"] = model.where(seeds < 2, model + " · seed " + rows["seed"].astype(str))
    return ChapterData(profile, stage, [r for r in runs if r.label in dirs], dirs, series, rows, config_hash(profile),
                       notebook, warnings)


@dataclass
class SweetSpotData:
    """The sweet-spot chapter's tables (see :mod:`sparsevis.analysis.stage`), the study rows
    they come from, and their provenance."""

    tables: dict[str, pd.DataFrame]
    folder: Path
    studies: dict[str, ChapterData]

    def provenance(self, track) -> str:
        lines = [d.provenance(track) for d in self.studies.values() if set(as_set(track)) & set(d.tracks)]
        return lines[0] if len(lines) == 1 else " · ".join(dict.fromkeys(lines))


def sweet_spots(profile: str, *, notebook: str, result_dirs: dict | None = None, device: str = "auto",
                checkpoints=None, n_boot: int | None = None) -> SweetSpotData:
    """Every study of the profile's runs (found, or run when cheap), then the sweet-spot analysis
    of their per-item values (the book's, from ``result_dirs["sweet_spots"]``, else computed)."""
    data = {s: load(s, profile, notebook=notebook, result_dirs=result_dirs, device=device, checkpoints=checkpoints)
            for s in studies.STAGES}
    given = (result_dirs or {}).get(analysis.NAME)
    if given and n_boot is None and checkpoints is None:
        folder = resolve_run_path(given[0])
    else:
        folder = analysis.run(profile, [d for c in data.values() for d in c.dirs.values()],
                              n_boot=n_boot or get_profile(profile).n_boot)
    return SweetSpotData(analysis.read(folder), folder, data)
