"""Stage 2 of the build: every chapter's notebook executed by papermill, skipped when its cache
key (the notebook, its parameters, its code version, its configuration and the results it
reads) is unchanged."""
from __future__ import annotations

import json
import os
import re
import time
import warnings
from pathlib import Path

from sparsevis import provenance
from sparsevis.fileio import atomic_write_text, remove_stale_temp_files, sha256_file, stable_hash, temp_path
from sparsevis.runtime import cpu_cores, run_parallel

from .chapters import CHAPTERS, GENERATED, NOTEBOOKS, BookError, Chapter, _log
from .results import _results_digest, _runs_root, config_hash

CACHE_FORMAT = 1


_IMPORT = re.compile(r"^\s*(?:from\s+(sparsevis[\w.]*)\s+import\s+([\w\s,()]+)|import\s+(sparsevis[\w.]*))", re.M)


def notebook_code_version(source: Path) -> str:
    """The code version of a notebook: the import closure of the sparsevis modules its code
    cells import (see :mod:`sparsevis.provenance`)."""
    nb = json.loads(Path(source).read_text(encoding="utf-8"))
    entries = set()
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        for m in _IMPORT.finditer("".join(cell.get("source", ""))):
            if m.group(3):
                entries.add(m.group(3))
                continue
            entries.add(m.group(1))
            for name in re.split(r"[\s,()]+", m.group(2)):
                if name and provenance.module_path(f"{m.group(1)}.{name}") is not None:
                    entries.add(f"{m.group(1)}.{name}")
    return provenance.code_version(*sorted(entries)) if entries else "none"


def _declared_parameters(path: Path) -> set[str]:
    import papermill as pm

    return set(pm.inspect_notebook(str(path)))


def notebook_parameters(chapter: Chapter, profile: str, device: str, result_dirs: dict,
                        declared: set[str]) -> dict:
    """The parameters the book injects: those of profile / device / result_dirs the notebook
    declares, plus the chapter's own."""
    offered = {"profile": profile, "device": device,
               "result_dirs": {s: list(result_dirs.get(s, [])) for s in chapter.stages}}
    params = {k: v for k, v in offered.items() if k in declared}
    params.update(chapter.parameters)
    return params


def cache_key(chapter: Chapter, source: Path, params: dict, profile: str, result_dirs: dict) -> tuple[str, dict]:
    """(key, what it hashes) of one chapter's executed notebook."""
    inputs = {
        "format": CACHE_FORMAT,
        "notebook": sha256_file(source)[:16],
        "parameters": params,
        "code": notebook_code_version(source),
        "config": config_hash(profile, chapter.stages),
        "results": _results_digest(result_dirs, chapter.stages),
    }
    return stable_hash(inputs, length=16), inputs


def _stored_key(path: Path) -> str | None:
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return nb.get("metadata", {}).get("sparsevis", {}).get("cache_key")


def _placeholder(chapter: Chapter, source: Path) -> str:
    return (f"# {chapter.title}\n\n```{{note}}\nThis chapter's notebook, `{source.as_posix()}`, "
            f"is not in this checkout yet, so the chapter is empty in this build.\n```\n")


# A cell that runs longer than this is taken for a lost kernel connection (seen once under heavy
# load: kernel idle, client waiting for ever); the notebook is then run again, once.
CELL_TIMEOUT = int(os.environ.get("SPARSEVIS_CELL_TIMEOUT", "900"))


def _execute(src: Path, out: Path, params: dict, cwd: Path, progress: bool) -> None:
    """papermill ``src`` -> ``out``; a failed cell is a BookError naming the executed copy."""
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    for attempt in (1, 2):
        try:
            with warnings.catch_warnings():   # the output is a temp file (.part), by design
                warnings.filterwarnings("ignore", message=r"The specified file .* does not end in")
                pm.execute_notebook(str(src), str(out), parameters=params, cwd=str(cwd),
                                    kernel_name="python3", progress_bar=progress, log_output=False,
                                    request_save_on_cell_execute=False, execution_timeout=CELL_TIMEOUT)
            return
        except (CellTimeoutError, DeadKernelError, TimeoutError) as e:
            if attempt == 2:
                raise BookError(f"notebook {src.name}: the kernel stopped answering twice ({e})") from None
            _log(f"{src.name}: kernel lost ({type(e).__name__}); running it again")
        except pm.PapermillExecutionError as e:
            failed = out.with_name(f"{src.stem}.failed.ipynb")
            if out.exists():
                os.replace(out, failed)
            raise BookError(f"notebook {src} failed in cell {e.exec_count} ({e.ename}: {e.evalue}); "
                            f"the executed copy with the traceback is {failed}") from None


def _run_chapter(tag: str, src: Path, gen: Path, params: dict, key: str, inputs: dict, profile: str,
                 progress: bool) -> str:
    """Execute one chapter into ``gen`` (a worker-pool task): the finished notebook appears,
    atomically and carrying its cache key, only when every cell has run."""
    _log(f"{tag}: executing with {json.dumps({k: v for k, v in params.items() if k != 'result_dirs'})}")
    t = time.time()
    tmp = temp_path(gen / f"{src.stem}.ipynb")   # a killed build's is removed by the next one
    _execute(src, tmp, params, gen, progress)
    nb = json.loads(tmp.read_text(encoding="utf-8"))
    nb.setdefault("metadata", {})["sparsevis"] = {"cache_key": key, "inputs": inputs, "profile": profile}
    atomic_write_text(gen / f"{src.stem}.ipynb", json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    tmp.unlink(missing_ok=True)
    (gen / f"{src.stem}.failed.ipynb").unlink(missing_ok=True)
    _log(f"{tag}: done in {time.time() - t:.0f} s")
    return "executed"


def execute_notebooks(profile: str, device: str, result_dirs: dict, root: Path,
                      progress: bool = True, jobs: int | None = None) -> dict[str, str]:
    """Execute every chapter (or skip it on a cache hit); returns {notebook: status}.

    Chapters read only the run store, never each other, so they run ``jobs`` at a time (one
    kernel each; default: one per core)."""
    gen = root / GENERATED
    (gen / "figures").mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(gen)   # notebooks a killed build was executing
    env_before = {k: os.environ.get(k) for k in ("SPARSEVIS_RUNS_DIR", "SPARSEVIS_FIGURES_DIR", "TQDM_DISABLE")}
    os.environ["SPARSEVIS_RUNS_DIR"] = str(_runs_root().resolve())
    os.environ["SPARSEVIS_FIGURES_DIR"] = str((gen / "figures").resolve())
    os.environ["TQDM_DISABLE"] = "1"   # no progress bars inside the published notebooks
    status, tasks = {}, []
    try:
        for i, ch in enumerate(CHAPTERS, 1):
            src = root / NOTEBOOKS / f"{ch.notebook}.ipynb"
            out = gen / f"{ch.notebook}.ipynb"
            md = gen / f"{ch.notebook}.md"
            tag = f"[{i}/{len(CHAPTERS)}] {ch.notebook}"
            if not src.is_file():
                out.unlink(missing_ok=True)
                if not md.is_file() or md.read_text() != _placeholder(ch, src.relative_to(root)):
                    atomic_write_text(md, _placeholder(ch, src.relative_to(root)))
                _log(f"{tag}: {src.relative_to(root)} missing; placeholder page")
                status[ch.notebook] = "missing"
                continue
            md.unlink(missing_ok=True)
            params = notebook_parameters(ch, profile, device, result_dirs, _declared_parameters(src))
            key, inputs = cache_key(ch, src, params, profile, result_dirs)
            if out.is_file() and _stored_key(out) == key:
                _log(f"{tag}: cached (key {key})")
                status[ch.notebook] = "cached"
                continue
            tasks.append((ch.seconds, (tag, src, gen, params, key, inputs, profile, progress)))
        tasks = [task for _, task in sorted(tasks, key=lambda t: -t[0])]   # the longest first
        jobs = max(1, min(len(tasks), cpu_cores())) if jobs is None else jobs
        if jobs > 1:   # several papermill progress bars would garble each other
            tasks = [(*task[:-1], False) for task in tasks]
        done = run_parallel(_run_chapter, tasks, jobs) if tasks else []
        status.update({task[1].stem: result for task, result in zip(tasks, done)})
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {ch.notebook: status[ch.notebook] for ch in CHAPTERS}
