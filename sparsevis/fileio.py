"""Atomic writes and content hashes.

Every file the project writes goes through here, so that a killed run never leaves a
half-written file that a later run would take for a finished one: data is written to a
temporary file in the same directory, flushed, fsynced and renamed over the target. The file
gets the mode a plain ``open()`` would give (0666 less the umask), so a web server can read
a built book. A killed writer leaves its temporary file, named ``.<target>.<pid>.<token>.part``;
:func:`remove_stale_temp_files` removes those of writers that are gone (stages call it on resume).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import torch

TEMP_SUFFIX = ".part"
# .<target>.<pid>.<token>.part (this module), or .<target>.<8 chars>.part (mkstemp, before)
_TEMP_NAME = re.compile(r"^\..+\.(?:(?P<pid>\d+)\.[0-9a-f]{16}|[A-Za-z0-9_]{8})\.part$")
_STARTED = time.time()   # this module's import: no later than this process's first write


def temp_path(path: str | os.PathLike) -> Path:
    """A temporary name beside ``path`` that :func:`remove_stale_temp_files` recognises (for
    writers that cannot go through :func:`atomic_write_bytes`, e.g. papermill)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}{TEMP_SUFFIX}")


def _open_temp(path: Path) -> tuple[int, Path]:
    """Create a fresh temporary file beside ``path``; the kernel applies the umask to 0666."""
    while True:
        tmp = temp_path(path)
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                           0o666), tmp
        except FileExistsError:
            continue


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if sys.platform == "win32":   # os.kill(pid, 0) would signal it there; assume alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's live process
        return True
    return True


def remove_stale_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Delete temporary files that killed writers left in ``directory`` (not recursive).

    A temporary file is stale when the process named in it no longer runs, or, for a name
    without a process id (older versions), when it was last written before this process
    started. Files of live writers are kept. Returns the removed paths.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for f in directory.iterdir():
        match = _TEMP_NAME.match(f.name)
        if not match or not f.is_file():
            continue
        pid = match.group("pid")
        try:
            stale = not _alive(int(pid)) if pid else f.stat().st_mtime < _STARTED
            if stale:
                f.unlink()
                removed.append(f)
        except FileNotFoundError:   # its writer renamed or removed it meanwhile
            continue
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def stable_hash(obj: Any, length: int = 12) -> str:
    """Short hash of a JSON-serialisable object, independent of dict order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return sha256_bytes(text.encode("utf-8"))[:length]


@contextlib.contextmanager
def exclusive(directory: str | os.PathLike, what: str = "") -> Iterator[None]:
    """Hold ``directory``'s lock (its ``.lock`` file, POSIX ``flock``) for the block, so that two
    processes on one run store never compute the same unit of work: the second waits (saying
    so) and then finds it done. The kernel drops the lock of a killed process."""
    path = Path(directory) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logging.getLogger("sparsevis").warning("%s: another process is working on %s; waiting for it",
                                                   what or Path(directory).name, directory)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
