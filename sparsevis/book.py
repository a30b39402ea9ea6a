"""The book pipeline: stages -> executed notebooks (papermill, cached) -> Jupyter Book (offline).

``python -m sparsevis book --profile demo`` (``make book``) calls :func:`build`:

1. **stages**: the prune stage for every run of the profile (:func:`sparsevis.runner.run_prune`),
   then the study stages (:func:`sparsevis.studies.run_study`), the runs of each stage spread
   over CPU worker processes. Both are cached by run id, so a rerun only checks.
2. **notebooks**: every chapter of :data:`CHAPTERS`, in the book's order, is executed with
   papermill from ``notebooks/<name>.ipynb`` into ``book/_generated/<name>.ipynb`` with its
   parameters injected (papermill records them in the notebook). A notebook is skipped when
   its cache key is unchanged and its executed copy exists: the key hashes the notebook source,
   its parameters, the package sources it depends on, the part of the profile's configuration
   its results come from and the contents of every results table it reads: changing one study's
   setting re-runs that study and the chapters that read it, nothing else.
3. **HTML**: ``jupyter-book build`` with notebook execution off into ``_build/html``; then the
   pinned JavaScript (require.js, the ipywidgets HTML manager, MathJax) is fetched from the npm
   registry once (``_build/vendor``) and copied into ``_build/html/_static/vendor``, where
   ``_config.yml`` points; the executed notebooks and the figures' PNG/SVG files are copied
   beside their pages. Nothing is loaded from a CDN (:func:`check_offline` verifies it).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sparsevis import provenance, results, studies, tracks
from sparsevis.analysis import stage as analysis
from sparsevis.config import get_profile
from sparsevis.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    sha256_file,
    stable_hash,
)
from sparsevis.runner import TrainingRequired, ensure_series, find_series
from sparsevis.runtime import default_jobs, run_parallel
from sparsevis.store import runs_dir

PACKAGE_DIR = Path(__file__).resolve().parent
STUDY_STAGES = ("interpretability", "discovery", "alignment")
ALL_STAGES = ("prune",) + STUDY_STAGES
ANALYSIS = analysis.NAME   # after every study: the sweet spots over their per-item values
GENERATED = Path("book") / "_generated"       # executed notebooks, relative to the book root
NOTEBOOKS = Path("notebooks")
HTML = Path("_build") / "html"
VENDOR_CACHE = Path("_build") / "vendor"
CACHE_FORMAT = 1


@dataclass(frozen=True)
class Chapter:
    """One notebook chapter of the book.

    notebook: ``notebooks/<notebook>.ipynb``; title: its page title in ``_toc.yml``;
    stages: the results tables it reads (their contents are part of its cache key);
    parameters: extra papermill parameters. The package code its outputs depend on is found
    from the notebook's own imports (:func:`notebook_code_version`).
    """

    notebook: str
    title: str
    stages: tuple[str, ...]
    parameters: dict = field(default_factory=dict)


# The book's notebook chapters, in reading order: the single table that the build loop, the
# cache and the table of contents check (``_toc.yml`` must list them in this order).
CHAPTERS: tuple[Chapter, ...] = (
    Chapter("pruning", "Pruning", ("prune",)),
    Chapter("interpretability", "Interpretability", ("prune", "interpretability")),
    Chapter("object_discovery", "Object discovery", ("prune", "discovery")),
    Chapter("human_alignment", "Human alignment", ("prune", "alignment")),
    Chapter("sweet_spots", "Sweet spots", ALL_STAGES + (ANALYSIS,)),
    Chapter("explorer", "Explorer", ("prune",)),
)
# Markdown pages around them, in ``_toc.yml`` order (the root first).
ROOT_PAGE = "book/intro"
PAGES_AFTER = ("book/reproduce", "book/api")

# Pinned JavaScript from the npm registry: package, version, integrity (as npm records it),
# files to publish (globs inside the package) under _static/vendor/<key>/.
VENDOR = {
    "requirejs": ("requirejs", "2.3.7",
                  "sha512-DouTG8T1WanGok6Qjg2SXuCMzszOo0eHeH9hDZ5Y4x8Je+9JB38HdTLT4/VA8OaUhBa0JPVHJ0pyBkM1z+pDsw==",
                  ("require.js",)),
    "html-manager": ("@jupyter-widgets/html-manager", "1.0.15",
                     "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
                     ("dist/embed-amd.js", "dist/*.woff2", "dist/*.woff", "dist/*.ttf", "dist/*.eot",
                      "dist/*.svg")),
    "mathjax": ("mathjax", "3.2.2",
                "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
                ("es5/tex-mml-chtml.js", "es5/tex-chtml.js", "es5/input/**/*", "es5/output/chtml.js",
                 "es5/output/chtml/**/*", "es5/ui/**/*", "es5/a11y/**/*", "es5/adaptors/**/*",
                 "es5/core.js", "es5/startup.js", "es5/loader.js")),
}
NPM_REGISTRY = "https://registry.npmjs.org"


class BookError(RuntimeError):
    """A notebook failed, or the HTML build did: the message says which and where to look."""


def _log(msg: str) -> None:
    print(f"[sparsevis] book: {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# Paths, hashes, results
# --------------------------------------------------------------------------------------------
def book_root(root: str | os.PathLike | None = None) -> Path:
    """The directory holding ``_config.yml`` and ``_toc.yml``: ``root``, the current directory
    when it has them, else the checkout this package sits in."""
    if root is not None:
        p = Path(root)
    elif Path("_config.yml").is_file() and Path("_toc.yml").is_file():
        p = Path(".")
    else:
        p = PACKAGE_DIR.parent
    if not (p / "_config.yml").is_file():
        raise FileNotFoundError(f"book root {p.resolve()}: no _config.yml (expected the repository root)")
    return p.resolve()


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


def chapter_of(notebook: str) -> Chapter:
    """The :data:`CHAPTERS` entry of a notebook name (``"pruning"``)."""
    for ch in CHAPTERS:
        if ch.notebook == Path(notebook).stem:
            return ch
    raise ValueError(f"notebook {notebook!r} is not a chapter; expected one of "
                     f"{[c.notebook for c in CHAPTERS]}")


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
    import pandas as pd

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


# --------------------------------------------------------------------------------------------
# Stage 1: the stages
# --------------------------------------------------------------------------------------------
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
    runs = get_profile(profile).runs
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


# --------------------------------------------------------------------------------------------
# Stage 2: notebooks
# --------------------------------------------------------------------------------------------
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


def _execute(pm, src: Path, out: Path, params: dict, cwd: Path, progress: bool) -> None:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    for attempt in (1, 2):
        try:
            pm.execute_notebook(str(src), str(out), parameters=params, cwd=str(cwd),
                                kernel_name="python3", progress_bar=progress, log_output=False,
                                request_save_on_cell_execute=False, execution_timeout=CELL_TIMEOUT)
            return
        except (CellTimeoutError, DeadKernelError, TimeoutError) as e:
            if attempt == 2:
                raise BookError(f"notebook {src.name}: the kernel stopped answering twice ({e})") from None
            _log(f"{src.name}: kernel lost ({type(e).__name__}); running it again")


def execute_notebooks(profile: str, device: str, result_dirs: dict, root: Path,
                      progress: bool = True) -> dict[str, str]:
    """Execute every chapter (or skip it on a cache hit); returns {notebook: status}."""
    import papermill as pm

    gen = root / GENERATED
    (gen / "figures").mkdir(parents=True, exist_ok=True)
    env_before = {k: os.environ.get(k) for k in ("SPARSEVIS_RUNS_DIR", "SPARSEVIS_FIGURES_DIR", "TQDM_DISABLE")}
    os.environ["SPARSEVIS_RUNS_DIR"] = str(_runs_root().resolve())
    os.environ["SPARSEVIS_FIGURES_DIR"] = str((gen / "figures").resolve())
    os.environ["TQDM_DISABLE"] = "1"   # no progress bars inside the published notebooks
    status = {}
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
            _log(f"{tag}: executing with {json.dumps({k: v for k, v in params.items() if k != 'result_dirs'})}")
            t = time.time()
            tmp = gen / f".{ch.notebook}.running.ipynb"
            try:
                _execute(pm, src, tmp, params, gen, progress)
            except pm.PapermillExecutionError as e:
                failed = gen / f"{ch.notebook}.failed.ipynb"
                if tmp.exists():
                    os.replace(tmp, failed)
                raise BookError(f"notebook {src.relative_to(root)} failed in cell "
                                   f"{e.exec_count} ({e.ename}: {e.evalue}); the executed copy "
                                   f"with the traceback is {failed}") from None
            nb = json.loads(tmp.read_text(encoding="utf-8"))
            nb.setdefault("metadata", {})["sparsevis"] = {"cache_key": key, "inputs": inputs,
                                                          "profile": profile}
            atomic_write_text(out, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            tmp.unlink(missing_ok=True)
            (gen / f"{ch.notebook}.failed.ipynb").unlink(missing_ok=True)
            _log(f"{tag}: done in {time.time() - t:.0f} s")
            status[ch.notebook] = "executed"
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return status


# --------------------------------------------------------------------------------------------
# Stage 3: HTML
# --------------------------------------------------------------------------------------------
def toc_files(root: Path) -> list[str]:
    """The files ``_toc.yml`` lists, in order (root first)."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("sections"))
            for part in e.get("parts", []) if isinstance(e, dict) else []:
                walk(part.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return files


def expected_toc() -> list[str]:
    return [ROOT_PAGE] + [(GENERATED / c.notebook).as_posix() for c in CHAPTERS] + list(PAGES_AFTER)


def check_toc(root: Path) -> None:
    found, expected = toc_files(root), expected_toc()
    if found != expected:
        raise ValueError(f"{root / '_toc.yml'} lists {found}; sparsevis.book.CHAPTERS expects {expected}")


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def _tarball_name(package: str, version: str) -> str:
    return f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"


def vendor_cache(root: Path) -> Path:
    """Where the npm tarballs are kept: ``$SPARSEVIS_VENDOR_DIR``, else ``<root>/_build/vendor``."""
    env = os.environ.get("SPARSEVIS_VENDOR_DIR")
    return Path(env) if env else root / VENDOR_CACHE


def fetch_vendor(cache: Path) -> dict[str, Path]:
    """Download the pinned npm tarballs once (``npm pack``; a plain HTTPS GET of the same
    registry tarball where npm is missing), verify their integrity, unpack; {key: package dir}."""
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, (package, version, integrity, _) in VENDOR.items():
        tgz = cache / _tarball_name(package, version)
        if not tgz.is_file() or _integrity(tgz) != integrity:
            _log(f"fetching {package}@{version} from the npm registry")
            npm = shutil.which("npm")
            if npm:
                subprocess.run([npm, "pack", f"{package}@{version}", "--pack-destination", str(cache),
                                "--silent", "--registry", NPM_REGISTRY],
                               check=True, stdout=subprocess.DEVNULL)
            else:
                import urllib.request

                base = package.split("/")[-1]
                url = f"{NPM_REGISTRY}/{package}/-/{base}-{version}.tgz"
                with urllib.request.urlopen(url, timeout=60) as r:
                    atomic_write_bytes(tgz, r.read())
            if not tgz.is_file():
                raise FileNotFoundError(f"npm pack {package}@{version}: expected {tgz}")
            if _integrity(tgz) != integrity:
                raise ValueError(f"{tgz}: integrity {_integrity(tgz)[:24]}... does not match the pinned "
                                 f"{integrity[:24]}... of {package}@{version}")
        dest = cache / f"{key}-{version}"
        if not (dest / "package" / "package.json").is_file():
            shutil.rmtree(dest, ignore_errors=True)
            with tarfile.open(tgz) as tf:
                tf.extractall(dest, filter="data")
        out[key] = dest / "package"
    return out


def install_vendor(html_dir: Path, cache: Path) -> None:
    """Copy the vendored files into ``<html>/_static/vendor/<key>/`` (where _config.yml points)."""
    for key, pkg in fetch_vendor(cache).items():
        target = html_dir / "_static" / "vendor" / key
        n = 0
        for pattern in VENDOR[key][3]:
            for f in pkg.glob(pattern):
                if f.is_file():
                    rel = f.relative_to(pkg)
                    rel = Path(*rel.parts[1:]) if rel.parts[0] in ("es5", "dist") else rel
                    dst = target / rel
                    if not dst.is_file() or dst.stat().st_size != f.stat().st_size:
                        dst.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(f, dst)
                    n += 1
        if not n:
            raise FileNotFoundError(f"vendored package {key}: none of {VENDOR[key][3]} in {pkg}")


_EXTERNAL = [
    re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?((?:https?:)?//[^\"'\s>]+)", re.I),
    re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?((?:https?:)?//[^\"'\s>]+)[^>]*>", re.I),
    re.compile(r"@import\s+(?:url\()?[\"']?((?:https?:)?//[^\"')\s]+)", re.I),
    re.compile(r"url\(\s*[\"']?((?:https?:)?//[^\"')\s]+)", re.I),
    re.compile(r"<img\b[^>]*\bsrc\s*=\s*[\"']?((?:https?:)?//[^\"'\s>]+)", re.I),
]
_LINK_OK = re.compile(r"\brel\s*=\s*[\"']?(canonical|alternate|author|license|me)\b", re.I)


def check_offline(html_dir: Path) -> list[str]:
    """Every external resource a built page would load: ``<script src>``, stylesheet/preload
    ``<link>``, ``<img src>``, CSS ``@import`` and ``url()`` with an http(s) or protocol-relative
    address, in the HTML pages and the CSS files. Returns "file: url" strings (empty = offline)."""
    found = []
    for f in sorted(list(html_dir.rglob("*.html")) + list(html_dir.rglob("*.css"))):
        if "vendor" in f.relative_to(html_dir).parts:
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        if f.suffix == ".html":
            # inline scripts may load code themselves: any address of a .js/.css file counts;
            # otherwise (widget state, JSON) they are data, and only the markup is checked
            for body in re.findall(r"<script\b(?![^>]*\bsrc=)[^>]*>(.*?)</script>", text, flags=re.S | re.I):
                found += [f"{f.relative_to(html_dir)}: {u} (inline script)" for u in
                          re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}/[^\s\"'`]*?\.(?:m?js|css)\b", body)]
            text = re.sub(r"<script\b(?![^>]*\bsrc=)[^>]*>.*?</script>", "", text, flags=re.S | re.I)
        for pat in _EXTERNAL:
            for m in pat.finditer(text):
                if pat.pattern.startswith("<link") and _LINK_OK.search(m.group(0)):
                    continue
                found.append(f"{f.relative_to(html_dir)}: {m.group(1)}")
    return list(dict.fromkeys(found))


def _copy_beside_pages(root: Path, html_dir: Path) -> None:
    gen, target = root / GENERATED, html_dir / GENERATED
    target.mkdir(parents=True, exist_ok=True)
    for f in gen.glob("*.ipynb"):
        if not f.name.startswith("."):
            shutil.copyfile(f, target / f.name)
    if (gen / "figures").is_dir():
        shutil.copytree(gen / "figures", target / "figures", dirs_exist_ok=True)


def build_html(root: Path, quiet: bool = False) -> Path:
    """``jupyter-book build`` (execution off, see _config.yml), then vendor JS, the executed
    notebooks beside their pages, inline images out into files (:func:`extract_inline_images`,
    :func:`drop_duplicates`), and check: offline, and within the page-weight budget."""
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
           "build", str(root), "--path-output", str(root)]
    t = time.time()
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    warnings = [ln for ln in log.splitlines() if "WARNING" in ln or "ERROR" in ln]
    for ln in warnings[:40]:
        print(f"    {ln}", flush=True)
    html_dir = root / HTML
    if proc.returncode != 0 or not (html_dir / "index.html").is_file():
        print(log[-6000:], file=sys.stderr)
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}); see the log above")
    _log(f"jupyter-book build: {time.time() - t:.0f} s, {len(warnings)} warnings")
    install_vendor(html_dir, vendor_cache(root))
    _copy_beside_pages(root, html_dir)
    n_images = extract_inline_images(html_dir)
    n_twins = drop_duplicates(html_dir)
    _log(f"page weight: {n_images} inline images moved to files, {n_twins} duplicate files dropped; "
         f"site {site_weight(html_dir) / 2**20:.1f} MB")
    external = check_offline(html_dir)
    if external:
        raise BookError("the built book loads external resources (it must build offline):\n  "
                           + "\n  ".join(external[:30]))
    over = check_page_weight(html_dir)
    if any(not line.startswith("the whole site") for line in over):
        raise BookError("pages of the built book are too heavy:\n  " + "\n  ".join(over))
    for line in over:   # the site's total depends on the profile: said, not fatal
        _log(f"WARNING: over the page-weight budget: {line}")
    return html_dir


# Page weight: the budget of one HTML page and of the whole site, in bytes.
PAGE_BUDGET = 3 * 2**20
SITE_BUDGET = 60 * 2**20
_INLINE_IMAGE = re.compile(
    r"<img\b(?P<before>[^>]*?)\bsrc\s*=\s*(?P<q>[\"'])data:image/(?P<kind>png|jpeg|gif|webp);base64,"
    r"(?P<data>[A-Za-z0-9+/=\s]+)(?P=q)(?P<after>[^>]*?)(?P<end>/?)>", re.I)
_EXTENSION = {"png": "png", "jpeg": "jpg", "gif": "gif", "webp": "webp"}


def _image_tag(m: re.Match, src: str, size: tuple[int, int]) -> str:
    attrs = f"{m.group('before')}{m.group('after')}"
    extra = "".join(f' {name}="{value}"' for name, value in
                    (("width", size[0]), ("height", size[1]), ("loading", "lazy"), ("decoding", "async"))
                    if not re.search(rf"\b{name}\s*=", attrs, re.I))
    return f'<img{m.group("before")}src="{src}"{m.group("after")}{extra}{m.group("end")}>'


def extract_inline_images(html_dir: Path) -> int:
    """Move every base64 ``<img>`` of every page into a file beside the page.

    The images of ``dir/page.html`` go to ``dir/page-img/<sha256 prefix>.<ext>`` (the same
    image once, however often it appears); the tag gets the file as ``src``, its ``width`` and
    ``height`` (the browser reserves the space before the file arrives) and ``loading="lazy"``:
    a frame of a kernel-free sparsity slider is hidden (``display:none``) until the slider
    reaches it, and a lazy image that is not displayed is not fetched, so the frames load on
    demand. Images inside scripts (widget state) are data and stay. Returns the images moved.
    """
    from PIL import Image

    moved = 0
    for page in sorted(html_dir.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        if "base64," not in text:
            continue
        folder = page.with_name(f"{page.stem}-img")
        scripts = [(m.start(), m.end()) for m in re.finditer(r"<script\b.*?</script>", text, flags=re.S | re.I)]

        def move(m: re.Match) -> str:
            nonlocal moved
            if any(a <= m.start() < b for a, b in scripts):
                return m.group(0)
            data = base64.b64decode(re.sub(r"\s+", "", m.group("data")))
            name = f"{hashlib.sha256(data).hexdigest()[:20]}.{_EXTENSION[m.group('kind').lower()]}"
            target = folder / name
            if not target.is_file():
                folder.mkdir(exist_ok=True)
                atomic_write_bytes(target, data)
            with Image.open(target) as im:
                size = im.size
            moved += 1
            return _image_tag(m, f"{folder.name}/{name}", size)

        new = _INLINE_IMAGE.sub(move, text)
        if new != text:
            atomic_write_text(page, new)
    return moved


def drop_duplicates(html_dir: Path) -> int:
    """Keep one copy of the files the build writes twice, and point the pages' links at it.

    Sphinx copies every source into ``_sources/``, so each executed notebook is there and
    beside its page (:func:`_copy_beside_pages`): the copy beside the page stays. MyST-NB
    writes each figure's PNG output to ``_images/`` and the figure's PNG is also among the
    files beside the page (``figures/``, linked from its caption): the ``_images`` copy stays.
    Only byte-identical files are dropped. Returns the number of files removed.
    """
    pairs = ((html_dir / "_sources", "*.ipynb", [p for p in html_dir.glob(f"{GENERATED.as_posix()}/*.ipynb")]),
             (html_dir / GENERATED / "figures", "*.png", list((html_dir / "_images").glob("*.png"))))
    twins = {}
    for drop_dir, pattern, keep in pairs:
        by_hash = {sha256_file(f): f for f in keep}
        for f in sorted(drop_dir.rglob(pattern)):
            twin = by_hash.get(sha256_file(f))
            if twin is not None:
                twins[f] = twin
    if not twins:
        return 0
    for page in sorted(html_dir.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        new = text
        for f, twin in twins.items():
            old_rel, new_rel = (os.path.relpath(x, page.parent).replace(os.sep, "/") for x in (f, twin))
            new = new.replace(f'"{old_rel}"', f'"{new_rel}"')
        if new != text:
            atomic_write_text(page, new)
    for f in twins:
        f.unlink()
    return len(twins)


def page_weights(html_dir: Path) -> dict[str, int]:
    """Bytes of each HTML page (the page alone: its images are separate files), by path
    relative to ``html_dir``."""
    return {p.relative_to(html_dir).as_posix(): p.stat().st_size for p in sorted(html_dir.rglob("*.html"))}


def site_weight(html_dir: Path) -> int:
    """Bytes of every file of the built site."""
    return sum(p.stat().st_size for p in html_dir.rglob("*") if p.is_file())


def check_page_weight(html_dir: Path, page_budget: int = PAGE_BUDGET, site_budget: int = SITE_BUDGET) -> list[str]:
    """The pages over ``page_budget`` and the site if over ``site_budget`` (empty: within)."""
    over = [f"{name}: {size / 2**20:.1f} MB > {page_budget / 2**20:g} MB"
            for name, size in page_weights(html_dir).items() if size > page_budget]
    total = site_weight(html_dir)
    if total > site_budget:
        over.append(f"the whole site: {total / 2**20:.1f} MB > {site_budget / 2**20:g} MB")
    return over


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
def build(profile: str = "demo", device: str = "auto", execute_only: bool = False,
          root: str | os.PathLike | None = None, progress: bool = True,
          stages: tuple[str, ...] = ALL_STAGES, jobs: int | None = None) -> Path:
    """Stages, notebooks, book: everything ``make book`` does. Returns ``_build/html`` (or the
    executed-notebook folder with ``execute_only``).

    ``stages`` limits the stages run first (the prune stage always runs); chapters then read
    whatever results exist for the others. ``jobs``: worker processes for the stages (see
    :func:`run_stages`).
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
    status = execute_notebooks(profile, device, dirs, root, progress=progress)
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
