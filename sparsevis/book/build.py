"""The build's entry point: stages, notebooks, HTML."""
from __future__ import annotations

import os
import time
from pathlib import Path

from sparsevis.config import get_profile
from sparsevis.fileio import atomic_write_json

from .chapters import ALL_STAGES, ANALYSIS, GENERATED, _log, book_root, check_toc
from .html import build_html
from .notebooks import execute_notebooks
from .results import _runs_root, config_hash, find_result_dirs
from .stages import run_stages


def build(profile: str = "demo", device: str = "auto", execute_only: bool = False,
          root: str | os.PathLike | None = None, progress: bool = True,
          stages: tuple[str, ...] = ALL_STAGES, jobs: int | None = None) -> Path:
    """Stages, notebooks, book: everything ``make book`` does. Returns ``_build/html`` (or the
    executed-notebook folder with ``execute_only``).

    ``stages`` limits the stages run first (the prune stage always runs); chapters then read
    whatever results exist for the others. ``jobs``: worker processes for the stages (see
    :func:`run_stages`) and the notebooks (one kernel each).
    """
    get_profile(profile)  # validates the name
    root = book_root(root)
    check_toc(root)
    t0 = time.time()
    _log(f"profile {profile!r}, device {device!r}, run store {_runs_root().resolve()}")
    t = time.time()
    dirs = run_stages(profile, device, stages, jobs)
    for stage in ALL_STAGES:
        if stage not in stages:   # not run now: whatever a previous run left
            dirs[stage] = find_result_dirs(profile, (stage,))[stage]
    dirs.setdefault(ANALYSIS, [])   # without every study the chapter analyses what it finds
    _log(f"stages: {time.time() - t:.0f} s")
    t = time.time()
    status = execute_notebooks(profile, device, dirs, root, progress=progress, jobs=jobs)
    times = {"stages": round(t - t0, 1), "notebooks": round(time.time() - t, 1)}
    counts = {s: sum(v == s for v in status.values()) for s in ("executed", "cached", "missing")}
    _log(f"notebooks: {time.time() - t:.0f} s ({', '.join(f'{n} {s}' for s, n in counts.items() if n)})")
    out = root / GENERATED
    if not execute_only:
        t = time.time()
        out = build_html(root)
        times["html"] = round(time.time() - t, 1)
    times["total"] = round(time.time() - t0, 1)
    atomic_write_json(root / GENERATED / "build.json",
                      {"profile": profile, "config": config_hash(profile), "notebooks": status,
                       "result_dirs": dirs, "seconds": times, "execute_only": execute_only})
    _log(f"done in {times['total']:.0f} s: {out / 'index.html' if not execute_only else out}")
    return out
