"""Stage 1 of the build: the prune stage, the studies and the sweet-spot analysis of a profile."""
from __future__ import annotations

import time
from pathlib import Path

from sparsevis import studies, tracks
from sparsevis.analysis import stage as analysis
from sparsevis.config import get_profile
from sparsevis.runner import TrainingRequired, ensure_series, find_series
from sparsevis.runtime import default_jobs, run_parallel

from .chapters import ALL_STAGES, ANALYSIS, STUDY_STAGES, BookError, _log
from .results import _rel, resolve_run_path


def _timed(fn, *args):
    t = time.time()
    return fn(*args), time.time() - t


def _series(run, profile: str, device: str) -> str:
    """A run's series for the book: found, or made when that is cheap (see
    :func:`sparsevis.runner.ensure_series`)."""
    return str(ensure_series(run, profile, device))


def run_stages(profile: str, device: str = "auto", stages=ALL_STAGES,
               jobs: int | None = None) -> dict[str, list[str]]:
    """Find (or, on the embedded tracks, run) the prune stage, then run (or find cached) the
    study stages in ``stages``; returns {stage: [result directory relative to the run store]}.
    Runs are independent, and the studies of a run only read its checkpoints, so on the CPU the
    prune runs, then all the (study, run) pairs, are spread over ``jobs`` worker processes
    (default: one per core). Training a paper-track run never starts here: the build stops
    with the command that does it."""
    runs = []
    for run in get_profile(profile).runs:   # offline, a run whose weights cannot be had is left out
        note = tracks.get(run.track).missing(run) if find_series(run) is None else ""
        if note:
            _log(f"skipped {run.label}: {note}")
        else:
            runs.append(run)
    try:   # before any work: a missing paper-track series stops the build with its command
        for run in runs:
            if tracks.get(run.track).expensive_training:
                ensure_series(run, profile, device)
    except TrainingRequired as e:
        raise BookError(str(e)) from None
    dirs: dict[str, list[str]] = {s: [] for s in stages}
    for phase in (("prune",), tuple(s for s in STUDY_STAGES if s in stages)):
        pairs = [(stage, i, run) for stage in phase for i, run in enumerate(runs)]
        # the embedded real track's studies (224 px images) take the longest: start them first;
        # the random-pruning controls last, so that they find their twin's dense model trained
        pairs.sort(key=lambda p: (p[2].track == "synthetic", p[2].method in ("random", "oneshot-random")))
        tasks = [(_series, run, profile, device) if stage == "prune" else (studies.run_study, stage, run, profile, device)
                 for stage, _, run in pairs]
        n = jobs or default_jobs(len(tasks), device)

        def log(k, result, pairs=pairs):
            stage, i, run = pairs[k]
            _log(f"{stage} [{i + 1}/{len(runs)}] {run.label}: {Path(result[0]).name} ({result[1]:.0f} s)")

        t = time.time()
        try:
            done = run_parallel(_timed, tasks, n, on_result=log)
        except TrainingRequired as e:
            raise BookError(str(e)) from None
        for stage in phase:
            dirs[stage] = [_rel(Path(out)) for (s, i, _), (out, _) in sorted(zip(pairs, done), key=lambda p: p[0][1])
                           if s == stage]
        if tasks:
            _log(f"{' + '.join(phase)}: {time.time() - t:.0f} s with {min(n, len(tasks))} worker process(es)")
    if all(s in stages for s in STUDY_STAGES):
        t = time.time()
        out = analysis.run(profile, [resolve_run_path(d) for s in STUDY_STAGES for d in dirs[s]],
                           n_boot=get_profile(profile).n_boot)
        dirs[ANALYSIS] = [_rel(out)]
        _log(f"{ANALYSIS}: {out.name} ({time.time() - t:.0f} s)")
    return dirs


