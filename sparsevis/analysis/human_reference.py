"""The human observers' own numbers on the model-vs-human datasets, from their raw responses:
what every human-alignment figure draws as the human reference.

Per (dataset, condition) the table of :func:`sparsevis.alignment.human_reference` (accuracy
per observer and their mean, shape bias per observer and pooled, error and observed
consistency per pair of observers and their mean). Per dataset, over the conditions that
model-vs-human keeps for its benchmark (:data:`sparsevis.alignment.EXCLUDED_CONDITIONS`
dropped), the numbers the chapter sets beside a model's benchmark rows:

- ``accuracy``: per observer, the share of correct trials pooled over the kept conditions
  (as a model's benchmark accuracy is pooled); ``value`` the mean over observers, ``low`` /
  ``high`` the lowest and highest observer;
- ``error_consistency`` / ``observed_consistency``: per pair of observers, the mean over the
  kept conditions (as a model's is per observer); ``value`` the mean over pairs, ``low`` /
  ``high`` their range (pairs with an undefined kappa left out);
- ``shape_bias`` (cue-conflict): ``value`` pooled over the observers, ``low`` / ``high`` the
  range of the observers' own.

Datasets whose images or responses are not under the data root are listed in ``missing``
with what to do, not an error. Output folder: ``<runs>/analysis/human_reference-<id>/`` with
``conditions.csv``, ``datasets.csv``, ``missing.csv``, ``inputs.json`` (the CSV files read with
their SHA-256, and their digest) and ``DONE``; the id hashes the inputs and this module's code
version, so that new or changed raw data make a new folder.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sparsevis import alignment, provenance
from sparsevis.data import mvh
from sparsevis.data.mvh.catalog import how_to_get
from sparsevis.fileio import atomic_write_text, sha256_file, stable_hash
from sparsevis.store import runs_dir

NAME = "human_reference"
DATASET_COLUMNS = ("dataset", "metric", "value", "low", "high", "n_observers", "n_conditions")
AGGREGATED = ("accuracy", "error_consistency", "observed_consistency", "shape_bias")


def raw_files(root=None) -> tuple[dict[str, list[Path]], dict[str, str]]:
    """Per dataset of :data:`~sparsevis.data.mvh.DATASETS` its raw-data CSV files, and per
    dataset without images or responses under ``root`` why it is left out."""
    base = mvh.mvh_root(root)
    found, missing = {}, {}
    for ds in mvh.DATASETS:
        images, raw = base / "datasets" / ds, base / "raw-data" / ds
        files = sorted(p for p in raw.glob("*.csv") if p.is_file() and not p.name.startswith(".")) \
            if raw.is_dir() else []
        if not images.is_dir() or not files:
            what = f"images (datasets/{ds}/)" if not images.is_dir() else f"human responses (raw-data/{ds}/*.csv)"
            missing[ds] = f"{ds}: no {what} in the local model-vs-human copy. {how_to_get(ds)}"
        else:
            found[ds] = files
    return found, missing


def dataset_values(conditions: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """The per-dataset rows (see the module docstring) of one dataset's ``trials`` and its
    per-condition table ``conditions`` (:func:`sparsevis.alignment.human_reference`)."""
    ds = str(trials["dataset"].iloc[0])
    excluded = set(alignment.EXCLUDED_CONDITIONS.get(ds, ()))
    kept = trials[~trials["condition"].astype(str).isin(excluded)]
    cond = conditions[~conditions["condition"].astype(str).isin(excluded)]
    n_cond = kept["condition"].nunique()
    rows = []

    def add(metric, value, values, n_obs):
        values = np.asarray(values, dtype=np.float64)
        values = values[~np.isnan(values)]
        rows.append({"dataset": ds, "metric": metric, "value": float(value),
                     "low": float(values.min()) if len(values) else np.nan,
                     "high": float(values.max()) if len(values) else np.nan,
                     "n_observers": int(n_obs), "n_conditions": int(n_cond)})

    per_obs = kept.groupby("subj")["correct"].mean()
    add("accuracy", per_obs.mean(), per_obs, len(per_obs))
    for metric in ("error_consistency", "observed_consistency"):
        pairs = cond[(cond["metric"] == metric) & (cond["other"].astype(str) != "")]
        if len(pairs):
            per_pair = pairs.groupby(["subj", "other"])["value"].mean().dropna()
            add(metric, per_pair.mean() if len(per_pair) else np.nan, per_pair, len(per_obs))
    sb = cond[cond["metric"] == "shape_bias"]
    if len(sb):
        pooled = sb.loc[sb["subj"] == "pooled", "value"]
        add("shape_bias", pooled.iloc[0], sb.loc[sb["subj"] != "pooled", "value"], len(per_obs))
    return pd.DataFrame(rows, columns=list(DATASET_COLUMNS))


def run(root=None) -> Path:
    """Compute the human reference values from the raw data under ``root`` (default: the data
    root), or find them computed; returns the folder."""
    found, missing = raw_files(root)
    base = mvh.mvh_root(root)
    files = [[ds, f.relative_to(base).as_posix(), sha256_file(f)] for ds, fs in found.items() for f in fs]
    digest = stable_hash(files)
    out = runs_dir() / "analysis" / f"{NAME}-{stable_hash({'inputs': digest, 'code': provenance.code_version(__name__)})}"
    if (out / "DONE").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    per_condition, per_dataset = [], []
    for ds in found:
        trials = mvh.load_trials(ds, root)
        conditions = alignment.human_reference(trials)
        per_condition.append(conditions)
        per_dataset.append(dataset_values(conditions, trials))
    empty = pd.DataFrame(columns=list(alignment.HUMAN_REFERENCE_COLUMNS))
    tables = {"conditions": pd.concat(per_condition, ignore_index=True) if per_condition else empty,
              "datasets": pd.concat(per_dataset, ignore_index=True) if per_dataset
              else pd.DataFrame(columns=list(DATASET_COLUMNS)),
              "missing": pd.DataFrame({"dataset": list(missing), "reason": list(missing.values())})}
    for name, table in tables.items():
        atomic_write_text(out / f"{name}.csv", table.to_csv(index=False))
    atomic_write_text(out / "inputs.json", json.dumps({"digest": digest, "files": files}, indent=1) + "\n")
    atomic_write_text(out / "DONE", "complete\n")
    return out


@dataclass
class HumanReference:
    """The tables of a finished folder (see the module docstring)."""

    folder: Path
    conditions: pd.DataFrame
    datasets: pd.DataFrame
    missing: pd.DataFrame
    digest: str
    n_files: int

    def value(self, dataset: str, metric: str) -> pd.Series | None:
        """The per-dataset row of ``metric`` on ``dataset`` (value, low, high ...), or None."""
        r = self.datasets[(self.datasets["dataset"] == dataset) & (self.datasets["metric"] == metric)]
        return None if r.empty else r.iloc[0]

    def per_condition(self, dataset: str, metric: str) -> pd.DataFrame:
        """Per condition of ``dataset``: the mean over observers (or pairs) of ``metric``
        (``value``) with the range of the observers (or pairs) (``low``, ``high``)."""
        c = self.conditions[(self.conditions["dataset"] == dataset) & (self.conditions["metric"] == metric)]
        single = c[~c["subj"].isin(["mean", "pooled"])]
        out = single.groupby("condition", sort=False)["value"].agg(low="min", high="max")
        mean = c[c["subj"] == "mean"].set_index("condition")["value"]
        return out.assign(value=mean.reindex(out.index)).reset_index()

    @property
    def caption(self) -> str:
        """Where the numbers come from, for a figure caption."""
        present = list(dict.fromkeys(self.datasets["dataset"]))
        return (f"Human reference values computed from model-vs-human's raw human responses: "
                f"{len(present)} of {len(mvh.DATASETS)} datasets present ({self.n_files} CSV files, "
                f"digest {self.digest}).")


def read(folder) -> HumanReference:
    d = Path(folder)
    if not (d / "DONE").exists():
        raise FileNotFoundError(f"{d}: not a finished human-reference folder (no DONE)")
    tables = {name: pd.read_csv(d / f"{name}.csv", dtype={"condition": str, "subj": str, "other": str},
                                keep_default_na=False, na_values=[""]) for name in ("conditions", "datasets", "missing")}
    tables["conditions"]["other"] = tables["conditions"]["other"].fillna("")
    inputs = json.loads((d / "inputs.json").read_text())
    return HumanReference(d, tables["conditions"], tables["datasets"], tables["missing"], inputs["digest"],
                          len(inputs["files"]))


def load(root=None) -> HumanReference:
    """:func:`run`, then :func:`read`."""
    return read(run(root))
