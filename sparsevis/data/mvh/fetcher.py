"""The model-vs-human fetcher (online use), built on :mod:`sparsevis.data.download`.

:func:`fetch` downloads ``<dataset>.tar.gz`` from the model-vs-human
v0.1 GitHub release and the observers' CSVs from the repository, checks sha256 sums (see
:data:`ARCHIVE_SHA256` for what is and is not known), and moves everything into place
atomically.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterable

from ...fileio import atomic_write_bytes, sha256_bytes, sha256_file
from ..download import (
    download,
    extract_tar,
    open_url,
    replace_dir,
    tree_sha256,
    verify_sha256,
)
from .catalog import N_SUBJECTS, check_dataset, mvh_root
from .images import is_image_file
from .trials import read_raw_csv

RELEASE_URL = "https://github.com/bethgelab/model-vs-human/releases/download/v0.1"
RAW_DATA_URL = "https://raw.githubusercontent.com/bethgelab/model-vs-human/master/raw-data"

#: sha256 of the release archives ``<dataset>.tar.gz``. Empty on purpose: the archives could not
#: be downloaded where this code was written, and a checksum that nobody computed is worse than
#: none. :func:`fetch` verifies against ``sha256=`` when given, else against this table, else it
#: computes the sum, warns, and records it in ``<mvh root>/checksums.json`` (a later fetch of
#: the same URL then has to match it). Add entries here only from a verified download.
ARCHIVE_SHA256: dict[str, str] = {}

#: Content hashes (:func:`~sparsevis.data.download.tree_sha256`) of the copy of ``datasets/<d>`` and ``raw-data/<d>``
#: that this project's tests and reference numbers were computed on. Files of a fresh download
#: are compared against these; a difference is reported as a warning (not an error): the
#: shared copy was assembled from the texture-vs-shape and model-vs-human repositories, and
#: whether the release archive's bytes equal it could not be checked offline.
REFERENCE_TREE_SHA256: dict[tuple[str, str], str] = {
    ("datasets", "cue-conflict"): "2b1e91cbbb8e9329de7433090e12a93067439c10f9c97f7ccaf2cebb7a6184f4",
    ("datasets", "edge"): "1dff862ff7827ca13cb7b7d2d05b00aad01e3410d01b100b5c187d6c6c97fd6b",
    ("datasets", "silhouette"): "70b98b8d0d92d2c2cde2712f3b2ad3c069f8d87ec172696166b16f84dae97afb",
    ("raw-data", "cue-conflict"): "3e0e663b5891920840e40658e226125e874b4cff22420fc007c7b831f4d81343",
    ("raw-data", "edge"): "53913056c2f40e3dfd8d80da411431510d2ad7ac457e5ff0c587498942ecf11d",
    ("raw-data", "silhouette"): "651c6c33a73c13e2ec2afc72be4ccf1700623df61d2ccb91e73d69c1cf86d72c",
}


def _record(root) -> Path:
    """Where sha256 sums of downloads without a trusted sum are recorded."""
    return mvh_root(root) / "checksums.json"


def _check_reference(kind: str, dataset: str, folder: Path) -> None:
    ref = REFERENCE_TREE_SHA256.get((kind, dataset))
    if ref:
        got = tree_sha256(folder)
        if got != ref:
            warnings.warn(f"{folder}: content differs from the copy this project's reference numbers were "
                          f"computed on (tree sha256 {got}, reference {ref})", stacklevel=3)


def fetch(dataset: str, root: str | os.PathLike | None = None, *, base_url: str = RELEASE_URL,
          raw_base_url: str = RAW_DATA_URL, sha256: str | None = None,
          raw_sha256: dict[str, str] | None = None, subjects: Iterable[int] | None = None,
          images: bool = True, raw_data: bool = True, force: bool = False, timeout: float = 60.0,
          progress: bool = True) -> Path:
    """Download a model-vs-human dataset and its human responses into ``<root>/model-vs-human``.

    Images: ``<base_url>/<dataset>.tar.gz`` (default: the v0.1 GitHub release), verified against
    ``sha256`` (or :data:`ARCHIVE_SHA256`; with neither, the computed sum is warned about and
    recorded in ``checksums.json``, and later fetches must match it), extracted into a temporary
    folder beside the target and renamed to ``datasets/<dataset>`` only when complete.
    Human responses: ``<raw_base_url>/<dataset>/<dataset>_subject-NN_session_1.csv`` for
    ``subjects`` (default ``1..N_SUBJECTS[dataset]``), each checked for the required columns
    and against ``raw_sha256[file name]`` when given (else recorded as above), written into a
    temporary folder renamed to ``raw-data/<dataset>`` when all are there. Parts already
    present are kept unless ``force``. ``file://`` URLs work (tests use them). Returns the
    model-vs-human root.
    """
    check_dataset(dataset)
    base = mvh_root(root)
    if images:
        dest = base / "datasets" / dataset
        if force or not dest.exists():
            url = f"{base_url.rstrip('/')}/{dataset}.tar.gz"
            dest.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=f".fetch-{dataset}-", dir=dest.parent) as tmp:
                tmp = Path(tmp)
                archive = tmp / f"{dataset}.tar.gz"
                download(url, archive, timeout, progress)
                verify_sha256(url, sha256_file(archive), sha256 or ARCHIVE_SHA256.get(dataset), _record(root),
                              "archive")
                content = extract_tar(archive, dataset, tmp / "x")
                if not any(is_image_file(p.name) for p in content.rglob("*")):
                    raise ValueError(f"{url}: the archive holds no images under {dataset}/")
                replace_dir(content, dest)
            _check_reference("datasets", dataset, dest)
    if raw_data:
        dest = base / "raw-data" / dataset
        if force or not dest.exists():
            subj = list(range(1, N_SUBJECTS[dataset] + 1)) if subjects is None else [int(s) for s in subjects]
            if not subj:
                raise ValueError("subjects: expected at least one subject number")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=f".fetch-raw-{dataset}-", dir=dest.parent) as tmp:
                tmp = Path(tmp) / dataset
                tmp.mkdir()
                for s in subj:
                    name = f"{dataset}_subject-{s:02d}_session_1.csv"
                    url = f"{raw_base_url.rstrip('/')}/{dataset}/{name}"
                    with open_url(url, timeout) as resp:
                        data = resp.read()
                    read_raw_csv(url, data=data)  # columns present, numbers parse
                    verify_sha256(url, sha256_bytes(data), (raw_sha256 or {}).get(name), _record(root),
                                  "raw-data file")
                    atomic_write_bytes(tmp / name, data)
                replace_dir(tmp, dest)
            _check_reference("raw-data", dataset, dest)
    return base

