"""Which model-vs-human datasets exist, their conditions and observers, and where they live.

Layout (what the model-vs-human v0.1 release archives and its ``raw-data/`` folder hold) under
``<data root>/model-vs-human/`` (``data root`` = ``$SPARSEVIS_DATA_DIR``, else
``~/.cache/sparsevis``; see :func:`sparsevis.data.paths.data_root`)::

    datasets/<dataset>/<category>/<file>.png                 edge, silhouette, cue-conflict
    datasets/<dataset>/dnn/session-<k>/<file>.png            the other 14 datasets
    raw-data/<dataset>/<dataset>_subject-NN_session_1.csv    one file per human observer
"""
from __future__ import annotations

import os
from pathlib import Path

from ..paths import data_root, require_dataset

#: The 12 parametric ("noise generalisation") datasets of model-vs-human.
NOISE_DATASETS: tuple[str, ...] = (
    "colour", "contrast", "high-pass", "low-pass", "phase-scrambling", "power-equalisation",
    "false-colour", "rotation", "eidolonI", "eidolonII", "eidolonIII", "uniform-noise",
)
#: Stored ImageFolder-style: ``datasets/<name>/<category>/<file>``.
TEXTURE_SHAPE_DATASETS: tuple[str, ...] = ("edge", "silhouette", "cue-conflict")
#: Stored as ``datasets/<name>/dnn/session-<k>/<file>`` with condition and category in the name.
SESSION_DATASETS: tuple[str, ...] = NOISE_DATASETS + ("sketch", "stylized")
#: All 17 datasets of the benchmark, with model-vs-human's directory spellings.
DATASETS: tuple[str, ...] = NOISE_DATASETS + ("sketch", "stylized") + TEXTURE_SHAPE_DATASETS
#: The datasets of the embedded real-stimuli track (present in the project's shared copy).
LOCAL_DATASETS: tuple[str, ...] = ("cue-conflict", "edge", "silhouette")

#: Conditions ("data_conditions") of the parametric datasets, in model-vs-human's order
#: (``modelvshuman/datasets/experiments.py``); "0" for datasets without levels. sketch and
#: stylized have no experiment definition there (None): their conditions are what the files say.
CONDITIONS: dict[str, tuple[str, ...] | None] = {
    "colour": ("cr", "bw"),
    "contrast": ("c100", "c50", "c30", "c15", "c10", "c05", "c03", "c01"),
    "high-pass": ("inf", "3.0", "1.5", "1.0", "0.7", "0.55", "0.45", "0.4"),
    "low-pass": ("0", "1", "3", "5", "7", "10", "15", "40"),
    "phase-scrambling": ("0", "30", "60", "90", "120", "150", "180"),
    "power-equalisation": ("0", "pow"),
    "false-colour": ("True", "False"),
    "rotation": ("0", "90", "180", "270"),
    "eidolonI": ("1-10-10", "2-10-10", "4-10-10", "8-10-10", "16-10-10", "32-10-10", "64-10-10", "128-10-10"),
    "eidolonII": ("1-3-10", "2-3-10", "4-3-10", "8-3-10", "16-3-10", "32-3-10", "64-3-10", "128-3-10"),
    "eidolonIII": ("1-0-10", "2-0-10", "4-0-10", "8-0-10", "16-0-10", "32-0-10", "64-0-10", "128-0-10"),
    "uniform-noise": ("0.0", "0.03", "0.05", "0.1", "0.2", "0.35", "0.6", "0.9"),
    "sketch": None,
    "stylized": None,
    "edge": ("0",),
    "silhouette": ("0",),
    "cue-conflict": ("0",),
}

#: Human observers per dataset in model-vs-human's ``raw-data`` (subject-01 .. subject-NN).
#: 10 for the three local datasets is checked on the shared copy; the others are the counts in
#: the model-vs-human repository (4 per parametric dataset, 7 sketch, 5 stylized) and are only
#: used by :func:`~sparsevis.data.mvh.fetch` to name the files to download (``subjects=`` overrides them).
N_SUBJECTS: dict[str, int] = {**{d: 4 for d in NOISE_DATASETS}, "sketch": 7, "stylized": 5,
                              "edge": 10, "silhouette": 10, "cue-conflict": 10}


def how_to_get(dataset: str) -> str:
    """What to run or copy to get ``dataset`` (for the errors that say it is missing)."""
    return (f"Run sparsevis.data.mvh.fetch({dataset!r}) to download it (model-vs-human v0.1 release "
            f"archive {dataset}.tar.gz and the raw-data CSVs), or copy model-vs-human's "
            f"datasets/{dataset}/ and raw-data/{dataset}/ into <data root>/model-vs-human/.")


def check_dataset(dataset: str) -> str:
    """``dataset`` if it is one of :data:`DATASETS`, else ValueError listing them."""
    if dataset not in DATASETS:
        hint = [d for d in DATASETS if d.lower().replace("-", "").replace("_", "")
                == str(dataset).lower().replace("-", "").replace("_", "")]
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"dataset={dataset!r}: not a model-vs-human dataset{extra}; "
                         f"expected one of {', '.join(DATASETS)}")
    return dataset


def mvh_root(root: str | os.PathLike | None = None) -> Path:
    """``<root>/model-vs-human`` (``root`` defaults to :func:`data_root`)."""
    return (data_root() if root is None else Path(root)) / "model-vs-human"


def dataset_dir(dataset: str, root: str | os.PathLike | None = None) -> Path:
    """``<mvh root>/datasets/<dataset>``, checked to exist (FileNotFoundError says how to get it)."""
    check_dataset(dataset)
    return require_dataset(mvh_root(root) / "datasets" / dataset, f"model-vs-human {dataset} images",
                           how_to_get(dataset))


def raw_data_dir(dataset: str, root: str | os.PathLike | None = None) -> Path:
    """``<mvh root>/raw-data/<dataset>``, checked to exist."""
    check_dataset(dataset)
    return require_dataset(mvh_root(root) / "raw-data" / dataset,
                           f"model-vs-human {dataset} human responses", how_to_get(dataset))

