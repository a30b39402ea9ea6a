import os
import shutil
import time
from pathlib import Path

import pytest

# No model hub or dataset host is reachable: fail fast instead of retrying for a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

from sparsevis import book  # noqa: E402 (after the environment it reads)
from sparsevis.runtime import cpu_cores  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    """The model-vs-human stimuli: ``$SPARSEVIS_DATA_DIR``, else ``../shared/data``; None without them."""
    candidates = [Path(os.environ["SPARSEVIS_DATA_DIR"])] if os.environ.get("SPARSEVIS_DATA_DIR") else []
    candidates.append(ROOT.parent / "shared" / "data")
    for c in candidates:
        if all((c / "model-vs-human" / k / d).is_dir() for k in ("datasets", "raw-data")
               for d in ("cue-conflict", "edge", "silhouette")):
            return c
    return None


DATA = shared_data()

# Under pytest-xdist (`make test` runs two workers) the tests that use the session's tiny book
# (fixture built) run on one worker, those that use its tiny run store (run_store) on another
# where they can: all workers share one store (its locks let processes share it without doing a
# unit of work twice), so each study is computed once and the book and the notebooks run side by
# side. Other tests are spread one by one. (xdist's own --dist loadgroup does not group under
# pytest 9: it renames item._nodeid, which pytest 9 no longer reads.)
SHARED_SESSION_FIXTURES = {"run_store", "built"}
WORKER_GROUPS = {"test_book.py": "book", "test_faults.py": "book", "test_page_weight.py": "book",
                 "test_notebooks.py": "store", "test_explorer.py": "store"}


def pytest_runtest_setup(item):
    if SHARED_SESSION_FIXTURES & set(getattr(item, "fixturenames", ())) and item.path.name not in WORKER_GROUPS:
        pytest.fail(f"{item.nodeid} uses {sorted(SHARED_SESSION_FIXTURES)}: add {item.path.name} to "
                    "WORKER_GROUPS in tests/conftest.py (one worker builds those fixtures)", pytrace=False)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class GroupedFiles(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return WORKER_GROUPS.get(nodeid.split("::")[0].rsplit("/", 1)[-1], nodeid)

    return GroupedFiles(config, log)


def session_store(tmp_path_factory) -> Path:
    """The session's tiny run store (one for all xdist workers of the session)."""
    base = tmp_path_factory.getbasetemp()
    store = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "sparsevis-runs"
    store.mkdir(exist_ok=True)
    return store


def pytest_configure(config):
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:   # the processes the tests start get the same count (a run records its count)
        import torch

        threads = max(1, cpu_cores() // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def run_store(tmp_path_factory):
    """One run store for the session; the kernels papermill starts inherit the environment."""
    store = session_store(tmp_path_factory)
    env = {"SPARSEVIS_RUNS_DIR": str(store), "TQDM_DISABLE": "1",
           "SPARSEVIS_FIGURES_DIR": str(tmp_path_factory.mktemp("figures"))}
    if DATA is not None:
        env["SPARSEVIS_DATA_DIR"] = str(DATA)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        yield store


def _copy_sources(dst: Path) -> None:
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, dst / name)
    shutil.copytree(ROOT / "notebooks", dst / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "figures"))
    shutil.copytree(ROOT / "book", dst / "book", ignore=shutil.ignore_patterns("_generated"))



@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The tiny book, built once for the session (and once more, to time a rerun)."""
    root = tmp_path_factory.mktemp("book")
    _copy_sources(root)
    store = session_store(tmp_path_factory)   # shared with the notebook tests
    env = {"SPARSEVIS_RUNS_DIR": str(store),
           # reuse the checkout's npm tarballs when a build there fetched them already
           "SPARSEVIS_VENDOR_DIR": str(ROOT / "_build" / "vendor")}
    # SPARSEVIS_TEST_BOOK_STAGES=prune limits the stages (a quick check of the book alone)
    stages = tuple(os.environ.get("SPARSEVIS_TEST_BOOK_STAGES", ",".join(book.ALL_STAGES)).split(","))
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        t = time.time()
        html = book.build("tiny", device="cpu", root=root, progress=False, stages=stages)
        first = time.time() - t
        t = time.time()
        book.build("tiny", device="cpu", root=root, progress=False, stages=stages)
        second = time.time() - t
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    print(f"\nbook on tiny: first build {first:.0f} s, rerun {second:.0f} s")
    return root, html, first, second


