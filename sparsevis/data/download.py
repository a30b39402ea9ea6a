"""Downloading for the data fetchers: every network access of :mod:`sparsevis.data` goes here.

The pieces a fetcher composes: open a URL with errors that name it (:func:`open_url`), stream
it into a file with a progress bar (:func:`download`), check a sha256 sum against a trusted
value or, lacking one, against a per-folder record of earlier downloads (:func:`verify_sha256`),
extract a tar archive safely (:func:`extract_tar`), move a finished folder into place
(:func:`replace_dir`) and hash a folder's content (:func:`tree_sha256`). ``file://`` URLs work
(the tests use them). The model-vs-human fetcher is :func:`sparsevis.data.mvh.fetch`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from ..fileio import atomic_write_json, sha256_file


def tree_sha256(path: str | os.PathLike) -> str:
    """sha256 over the sorted lines ``<relative posix path>\\t<sha256 of file>`` of every regular,
    non-hidden file below ``path``: one hash for a dataset folder's content."""
    path = Path(path)
    lines = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            if f.startswith("."):
                continue
            p = Path(dirpath) / f
            if p.is_file() and not p.is_symlink():
                lines.append(f"{p.relative_to(path).as_posix()}\t{sha256_file(p)}\n")
    return hashlib.sha256("".join(sorted(lines)).encode("utf-8")).hexdigest()


def open_url(url: str, timeout: float):
    """``urlopen(url)``; an HTTP or URL error becomes an OSError that names the URL."""
    try:
        return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (http(s) and file URLs on purpose)
    except urllib.error.HTTPError as e:
        raise OSError(f"download failed: {url}: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise OSError(f"download failed: {url}: {e.reason}") from e


def download(url: str, dest: Path, timeout: float, progress: bool) -> None:
    """Stream ``url`` into the file ``dest`` (flushed and fsynced), with a progress bar."""
    from tqdm.auto import tqdm

    with open_url(url, timeout) as resp, open(dest, "wb") as f:
        total = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
        with tqdm(total=int(total) if total else None, unit="B", unit_scale=True, desc=Path(url).name,
                  disable=not progress, leave=False) as bar:
            while block := resp.read(1 << 20):
                f.write(block)
                bar.update(len(block))
        f.flush()
        os.fsync(f.fileno())


def _recorded(record_path: Path) -> dict:
    if not record_path.is_file():
        return {}
    try:
        return json.loads(record_path.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{record_path}: not a readable checksum record ({e}); delete it to start a new one") from e


def verify_sha256(url: str, got: str, expected: str | None, record_path: Path, what: str) -> None:
    """Raise on a mismatch of ``got`` (the sha256 of what ``url`` gave) with ``expected``; without
    an expected sum, check it against the JSON record ``{url: sha256}`` at ``record_path``, or
    warn and add it there (a later download of the same URL then has to match it)."""
    if expected:
        if got.lower() != expected.lower():
            raise ValueError(f"checksum mismatch for {url}: sha256 {got}, expected {expected}; "
                             f"the download was discarded")
        return
    record = _recorded(record_path)
    if url in record:
        if record[url] != got:
            raise ValueError(f"checksum mismatch for {url}: sha256 {got}, but an earlier fetch recorded "
                             f"{record[url]} in {record_path}; the download was discarded "
                             f"(delete that entry if the upstream file changed on purpose)")
        return
    warnings.warn(f"no known sha256 for {what} {url}: computed {got}; recorded in "
                  f"{record_path} (pass sha256= to verify against a trusted value)", stacklevel=3)
    record[url] = got
    atomic_write_json(record_path, record)


def extract_tar(archive: Path, folder: str, workdir: Path) -> Path:
    """Extract safely below ``workdir``; return the archive's one top-level folder ``folder``."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(workdir, filter="data")  # rejects absolute paths, '..', devices, links out
            else:  # Python without extraction filters (< 3.10.12 / 3.11.4): regular files and folders only
                for m in tar.getmembers():
                    parts = Path(m.name).parts
                    if Path(m.name).is_absolute() or ".." in parts or not (m.isfile() or m.isdir()):
                        raise tarfile.TarError(f"unsafe member {m.name!r}")
                tar.extractall(workdir)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ValueError(f"{archive}: could not extract the archive ({e})") from e
    top = [p for p in workdir.iterdir() if not p.name.startswith(".") and not p.name.startswith("__MACOSX")]
    if len(top) == 1 and top[0].is_dir() and top[0].name == folder:
        return top[0]
    if (workdir / folder).is_dir():
        return workdir / folder
    raise ValueError(f"{archive}: expected the archive to hold one top-level folder {folder}/, "
                     f"found {sorted(p.name for p in top)}")


def replace_dir(src: Path, dest: Path) -> None:
    """Move the finished folder ``src`` to ``dest`` (same file system), replacing ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.rename(dest, old)
    os.rename(src, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
