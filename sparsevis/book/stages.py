"""Stage 1 of the build: the prune stage, the studies and the sweet-spot analysis of a profile."""
from __future__ import annotations

import time
from dataclasses import replace
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
    prune runs and the (study, run) pairs are spread over ``jobs`` worker processes (default:
    one per core), each pair as soon as its run's checkpoints are there. Training a
    paper-track run never starts here: the build stops with the command that does it."""
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
    # one task graph: each (study, run) starts when its run's prune stage is done, a random
    # control's prune stage when its twin's is (it starts from the twin's dense model), so no
    # worker waits for a whole phase to end. Priority: the prune stage first; the embedded real
    # track's studies (224 px images) take the longest, so they come first; the random controls last
    rank = sorted(range(len(runs)), key=lambda i: (runs[i].track == "synthetic",
                                                    runs[i].method in ("random", "oneshot-random")))
    pairs = [("prune", i) for i in rank] + [(stage, i) for i in rank for stage in STUDY_STAGES if stage in stages]
    prune_task = {i: k for k, (stage, i) in enumerate(pairs) if stage == "prune"}
    twin = {i: runs.index(replace(run, method="imp")) for i, run in enumerate(runs)
            if run.method == "random" and replace(run, method="imp") in runs}
    after = [((prune_task[twin[i]],) if i in twin else ()) if stage == "prune" else (prune_task[i],)
             for stage, i in pairs]
    tasks = [(_series, runs[i], profile, device) if stage == "prune" else (studies.run_study, stage, runs[i], profile, device)
             for stage, i in pairs]
    n = jobs or default_jobs(len(tasks), device)

    def log(k, result):
        stage, i = pairs[k]
        _log(f"{stage} [{i + 1}/{len(runs)}] {runs[i].label}: {Path(result[0]).name} ({result[1]:.0f} s)")

    t = time.time()
    try:
        done = run_parallel(_timed, tasks, n, on_result=log, after=after)
    except TrainingRequired as e:
        raise BookError(str(e)) from None
    dirs = {stage: [_rel(Path(out)) for (s, i), (out, _) in sorted(zip(pairs, done), key=lambda p: p[0][1]) if s == stage]
            for stage in ("prune", *stages)}
    if tasks:
        _log(f"{' + '.join(dict.fromkeys(s for s, _ in pairs))}: {time.time() - t:.0f} s with "
             f"{min(n, len(tasks))} worker process(es)")
    if all(s in stages for s in STUDY_STAGES):
        t = time.time()
        out = analysis.run(profile, [resolve_run_path(d) for s in STUDY_STAGES for d in dirs[s]],
                           n_boot=get_profile(profile).n_boot)
        dirs[ANALYSIS] = [_rel(out)]
        _log(f"{ANALYSIS}: {out.name} ({time.time() - t:.0f} s)")
    return dirs


