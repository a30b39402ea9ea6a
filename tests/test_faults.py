"""Faults outside the happy path: file modes, killed writers, killed parents, damaged tables.

Kept light at import time: run_parallel's spawned workers import this module for _report_pid.
"""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sparsevis import fileio, results

ROOT = Path(__file__).resolve().parents[1]


def test_atomic_writes_get_the_mode_of_a_plain_open(tmp_path):
    old = os.umask(0o022)
    try:
        fileio.atomic_write_text(tmp_path / "page.html", "<p>hi</p>")
        with open(tmp_path / "plain.html", "w") as f:
            f.write("<p>hi</p>")
        os.umask(0o027)
        fileio.atomic_write_bytes(tmp_path / "private.bin", b"x")
    finally:
        os.umask(old)
    mode = lambda name: (tmp_path / name).stat().st_mode & 0o777   # noqa: E731
    assert mode("page.html") == mode("plain.html") == 0o644
    assert mode("private.bin") == 0o640


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    fileio.atomic_write_text(tmp_path / "results.csv", "a\n1\n")
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]   # none left by a finished write
    dead = tmp_path / f".iter-01.pt.{_dead_pid()}.{'0' * 16}.part"
    alive = tmp_path / f".iter-02.pt.{os.getppid()}.{'1' * 16}.part"   # our parent runs
    legacy = tmp_path / ".iter-03.pt.k2_x9abc.part"                    # mkstemp, before pids
    for f in (dead, alive, legacy):
        f.write_bytes(b"half")
    os.utime(legacy, (time.time() - 3600, time.time() - 3600))
    other = tmp_path / "notes.part"                                    # not one of ours
    other.write_text("keep")
    running = fileio.temp_path(tmp_path / "pruning.ipynb")             # papermill's output, ours
    running.write_text("{}")
    assert sorted(fileio.remove_stale_temp_files(tmp_path)) == sorted([dead, legacy])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [alive.name, other.name, running.name, "results.csv"])
    dead_running = tmp_path / running.name.replace(f".{os.getpid()}.", f".{_dead_pid()}.")
    running.rename(dead_running)                                       # its writer killed
    assert fileio.remove_stale_temp_files(tmp_path) == [dead_running]
    assert fileio.remove_stale_temp_files(tmp_path / "missing") == []


def _report_pid(directory: str, name: str, seconds: float) -> None:
    """A run_parallel task: say which worker runs it, then hold the worker."""
    Path(directory, name).write_text(str(os.getpid()))
    time.sleep(seconds)


POOL = """
import sys
from sparsevis.runtime import run_parallel
from tests.test_faults import _report_pid
run_parallel(_report_pid, [(sys.argv[1], "busy", 120), (sys.argv[1], "idle", 0)], jobs=2)
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")   # a zombie waits only for its new parent to reap it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_exit_when_the_parent_is_killed(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    parent = subprocess.Popen([sys.executable, "-c", POOL, str(tmp_path)], env=env, cwd=ROOT)
    workers = []
    try:
        deadline = time.time() + 120   # two spawned workers import torch on a busy machine
        while time.time() < deadline and not all((tmp_path / n).exists() for n in ("busy", "idle")):
            assert parent.poll() is None, "the pool process ended early"
            time.sleep(0.1)
        time.sleep(0.2)   # the files are written before their text: read them once complete
        workers = [int((tmp_path / n).read_text()) for n in ("busy", "idle")]
        assert all(_running(pid) for pid in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 5
        while time.time() < deadline and any(_running(pid) for pid in workers):
            time.sleep(0.1)
        assert not [pid for pid in workers if _running(pid)], "workers outlived their parent"
    finally:
        parent.kill()
        for pid in workers:   # only on failure: do not leave them to the next test
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def _table(path: Path, n_rows: int) -> Path:
    rows = [{c: i for c in results.COLUMNS} for i in range(n_rows)]
    return results.write(rows if rows else results.frame([]), path)


@pytest.mark.parametrize("content, message", [
    (None, "has a header but no rows"),
    (b"", "is not a readable CSV"),
    (b"\x00\xff\xfe garbage \x89PNG\r\n", "(is not a readable CSV|lacks columns)"),
    (b"track,value\nsynthetic,0.5\n", r"lacks columns \['profile'"),
])
def test_damaged_results_tables_name_the_file(tmp_path, content, message):
    path = tmp_path / "study" / "results.csv"
    if content is None:
        _table(path, 0)
    else:
        path.parent.mkdir()
        path.write_bytes(content)
    good = _table(tmp_path / "good" / "results.csv", 2)
    expected = rf"results file {re.escape(str(path))}.*{message}.*(columns|row)"
    with pytest.raises(ValueError, match=expected):
        results.read(path)
    with pytest.raises(ValueError, match=expected):
        results.read(tmp_path)   # a directory: the damaged file among good ones
    assert len(results.read(good)) == 2


def test_clear_errors_instead_of_tracebacks(tmp_path, monkeypatch, capsys):
    from sparsevis.cli import main

    assert main(["plan", "--profile", "paper", "--gpus", "0"]) == 2
    assert "gpus=0" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["prune", "--profile", "tiny", "--arch", "sv_resnet_s", "--device", "cuda"]) == 2
        assert "no such CUDA device" in capsys.readouterr().err
    if not Path("/sys/kernel").is_dir():
        pytest.skip("needs Linux's /sys, where nobody may create a folder")
    monkeypatch.setenv("SPARSEVIS_RUNS_DIR", "/sys/kernel/sparsevis-runs")   # not writable, even as root
    assert main(["prune", "--profile", "tiny", "--arch", "sv_resnet_s", "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert "/sys/kernel/sparsevis-runs" in err and "writable" in err and "Traceback" not in err


def _executed_chapters(gen: Path, chapters) -> dict[str, str]:
    """{notebook: cache key} of the executed ``chapters``, each checked to be complete: every
    code cell run, no error output."""
    import json

    keys = {}
    for ch in chapters:
        nb = json.loads((gen / f"{ch.notebook}.ipynb").read_text(encoding="utf-8"))
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert code and all(c.get("execution_count") for c in code), f"{ch.notebook}: cells not run"
        assert not [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
        keys[ch.notebook] = nb["metadata"]["sparsevis"]["cache_key"]
    return keys


# Where `python -m sparsevis book --profile tiny` is killed, in build order: the kill comes once
# the file appears (under the run store or the book root; "kernel": once it exists and a notebook
# kernel runs in its folder), plus a delay to land inside the work. Papermill writes its output
# only at the end (or every 30 s), so the kernel is what shows a notebook running.
BOOK_KILLS = [
    ("prune stage", "store", "prune/*/iter-00.pt", 0.0),
    ("study stages", "store", "interpretability/tiny/*/iter-00.csv", 0.0),
    ("notebook execution", "kernel", "book/_generated/pruning.ipynb", 5.0),
    ("Sphinx", "root", "_build/html/*.html", 0.0),
    ("HTML post-processing", "root", "_build/html/_static/vendor", 0.0),
]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_book_build_resumes_to_the_uninterrupted_book(built, tmp_path_factory, tmp_path):
    """kill -9 of the book build at each of BOOK_KILLS in turn, each kill followed by a rerun
    that is killed at the next point; the last rerun finishes and must equal the session's
    uninterrupted build (`built`): the same results tables, notebooks with the same cache keys,
    the same figures and pages, nothing half-written, no temp file and no process left."""
    import json

    from PIL import Image

    from sparsevis import book
    from tests import fixtures
    from tests.conftest import DATA, _copy_sources, session_store

    ref_root, ref_html, _, _ = built
    ref_store = session_store(tmp_path_factory)
    root, store = tmp_path / "book", tmp_path / "runs"
    root.mkdir()
    _copy_sources(root)
    env = {"SPARSEVIS_RUNS_DIR": str(store), "SPARSEVIS_VENDOR_DIR": str(ROOT / "_build" / "vendor")}
    if DATA is not None:
        env["SPARSEVIS_DATA_DIR"] = str(DATA)
    args = ["book", "--profile", "tiny", "--device", "cpu"]
    for what, where, pattern, after in BOOK_KILLS:
        base = store if where == "store" else root
        if where == "kernel":
            def ready(f=root / pattern):
                return f.exists() and bool(fixtures.processes_in(f.parent))
        else:
            def ready(b=base, p=pattern):
                return any(b.glob(p))
        killed = fixtures.sigkill_cli_when(args, root, env, ready, after=after)
        assert killed, f"the build ended before the kill during the {what}"
        deadline = time.time() + 10
        while fixtures.processes_in(root) and time.time() < deadline:
            time.sleep(0.1)
        assert not fixtures.processes_in(root), f"processes outlived the build killed during the {what}"
    proc = subprocess.run([sys.executable, "-m", "sparsevis", *args], cwd=root, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1", **env))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    gen = root / book.GENERATED
    ref_build = json.loads((ref_root / book.GENERATED / "build.json").read_text())
    build = json.loads((gen / "build.json").read_text())
    assert build["result_dirs"] == ref_build["result_dirs"]   # the same run and study ids
    for dirs in build["result_dirs"].values():   # results.csv, per-checkpoint rows, analysis tables
        for d in dirs:
            tables = sorted(p.name for p in (ref_store / d).glob("*.csv"))
            assert tables and sorted(p.name for p in (store / d).glob("*.csv")) == tables, d
            for name in tables:   # byte for byte (a profile without controls has an empty table)
                assert (store / d / name).read_bytes() == (ref_store / d / name).read_bytes(), f"{d}/{name}"
    assert _executed_chapters(gen, book.CHAPTERS) == _executed_chapters(ref_root / book.GENERATED, book.CHAPTERS)
    figures = sorted(p.name for p in (gen / "figures").iterdir())
    assert figures == sorted(p.name for p in (ref_root / book.GENERATED / "figures").iterdir())
    for name in figures:
        if name.endswith(".png"):
            with Image.open(gen / "figures" / name) as im:
                im.verify()
    html = root / "_build" / "html"
    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html"))
    assert pages == sorted(p.relative_to(ref_html).as_posix() for p in ref_html.rglob("*.html"))
    def complete(site):   # the pages that end as a page does (redirects and macros do not)
        return [p for p in pages if (site / p).read_text(encoding="utf-8").rstrip().endswith("</html>")]

    assert complete(html) == complete(ref_html) and len(complete(html)) > len(book.CHAPTERS)
    leftovers = [p for base in (root, store) for pat in ("**/*.part", "**/*.failed.ipynb")
                 for p in base.glob(pat)]
    assert not leftovers
