"""The sweet-spot analysis as a stage: the per-item values of a profile's finished studies in,
the corrected verdicts out, stored in the run store like any result.

Series are (track, arch, pruning method, prunable set, study, dataset, method, metric); the
seeds of one configuration are one series (a second level of the bootstrap). Left out: the
discovery baseline (it does not depend on the model) and ``degenerate_maps`` (a diagnostic
of the maps, reported beside them, not a quality to be better at). Every metric is compared
on the difference scale (pruned minus dense, signed so that positive is better), which is
defined for bounded and signed metrics alike. Random pruning (``random``, ``oneshot-random``)
is the control of magnitude pruning (``imp``, ``oneshot``) at matched sparsity.

Output folder: ``<runs>/analysis/<profile>/sweet_spots-<id>/`` with ``effects.csv`` (one row
per pruned checkpoint of every series), ``verdicts.csv`` (one per series), ``summary.csv``
(per model and study, paper metrics and extensions apart), ``controls.csv`` (each magnitude
checkpoint with its random-pruning control's own verdict), ``versus_control.csv`` (the direct
paired test of magnitude against random pruning at each matched sparsity, corrected over a
series' checkpoints) and ``DONE``; the id hashes the item files'
contents, the parameters and this stage's code version.
"""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from sparsevis import attribution, metrics, provenance, results
from sparsevis.fileio import atomic_write_text, sha256_file, stable_hash
from sparsevis.store import runs_dir
from sparsevis.studies import discovery

from .sweet_spots import SERIES_COLUMNS, VERSUS_COLUMNS, compare_with_control, sweet_spots, versus_control

NAME = "sweet_spots"
EXCLUDED_METRICS = ("degenerate_maps",)
CONTROLS = {"imp": "random", "oneshot": "oneshot-random"}   # magnitude pruning -> its random control


def is_extension(method: str, metric: str) -> bool:
    """True when the metric or the method is beyond the paper's protocol."""
    base = str(method).split("[", 1)[0]
    if base in attribution.METHODS and not attribution.METHODS[base].paper:
        return True
    if discovery.METHODS.get(base) == "extension":
        return True
    return metric in metrics.REGISTRY and not metrics.get(metric).paper


def items_of(study_dirs: list[Path]) -> pd.DataFrame:
    """The per-item values of finished study folders, with their series columns."""
    frames = []
    for d in study_dirs:
        rows = results.read(Path(d) / "results.csv")
        series = rows[["run_id", "iteration", "track", "arch", "prune_method", "prunable_set", "study"]].drop_duplicates()
        items = results.read_items(sorted(Path(d).glob("iter-*.items.csv.gz")))
        frames.append(items.merge(series, on=["run_id", "iteration"], how="left", validate="many_to_one"))
    if not frames:
        return pd.DataFrame(columns=[*SERIES_COLUMNS, "seed", "iteration", "sparsity", "item", "value"])
    items = pd.concat(frames, ignore_index=True)
    keep = ~items["metric"].isin(EXCLUDED_METRICS) & (items["method"].map(discovery.METHODS.get) != "baseline")
    return items[keep].reset_index(drop=True)


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    atomic_write_text(path, buf.getvalue())


def run(profile: str, study_dirs: list[str | Path], n_boot: int = 2000, alpha: float = 0.05,
        seed: int = 0) -> Path:
    """Analyse the items of ``study_dirs`` (or find the finished analysis); returns its folder."""
    study_dirs = sorted(Path(d) for d in study_dirs)
    files = [f for d in study_dirs for f in sorted(d.glob("iter-*.items.csv.gz"))]
    aid = stable_hash({"items": [sha256_file(f) for f in files], "n_boot": n_boot, "alpha": alpha, "seed": seed,
                       "code": provenance.code_version(__name__)})
    out = runs_dir() / "analysis" / profile / f"{NAME}-{aid}"
    if (out / "DONE").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    items = items_of(study_dirs)
    if items.empty:
        raise ValueError(f"sweet spots of profile {profile!r}: the studies {study_dirs} hold no per-item values")
    found = sweet_spots(items, metrics.higher_is_better, is_extension=is_extension, n_boot=n_boot, alpha=alpha,
                        seed=seed)
    _write_csv(found.effects, out / "effects.csv")
    _write_csv(found.verdicts, out / "verdicts.csv")
    _write_csv(found.summary, out / "summary.csv")
    controls = []
    for treated, control in CONTROLS.items():
        t = found.effects[found.effects["prune_method"].str.split("+").str[0] == treated]
        c = found.effects[found.effects["prune_method"].str.split("+").str[0] == control]
        if len(t) and len(c):
            controls.append(compare_with_control(t, c))
    _write_csv(pd.concat(controls, ignore_index=True) if controls else pd.DataFrame(), out / "controls.csv")
    _write_csv(_versus_controls(items, n_boot, alpha, seed), out / "versus_control.csv")
    atomic_write_text(out / "DONE", "complete\n")
    return out


def _versus_controls(items: pd.DataFrame, n_boot: int, alpha: float, seed: int) -> pd.DataFrame:
    """Each magnitude-pruned series against its random-pruning control, item by item at matched
    sparsities (:func:`versus_control`): one row per matched checkpoint."""
    keys = [c for c in SERIES_COLUMNS if c != "prune_method"]
    method = items["prune_method"].astype(str).str.split("+").str[0]
    found = []
    for treated, control in CONTROLS.items():
        controls = {_key(k): g for k, g in items[method == control].groupby(keys, sort=True, dropna=False)}
        for k, g in items[method == treated].groupby(keys, sort=True, dropna=False):
            c = controls.get(_key(k))
            if c is None:
                continue
            v = versus_control(g, c, metrics.higher_is_better(g["metric"].iloc[0]), n_boot=n_boot, alpha=alpha,
                               seed=seed)
            found.append(v.assign(**dict(zip(keys, k)), prune_method=g["prune_method"].iloc[0],
                                  control_method=c["prune_method"].iloc[0]))
    if not found:
        return pd.DataFrame(columns=[*SERIES_COLUMNS, "control_method", *VERSUS_COLUMNS])
    return pd.concat(found, ignore_index=True)[[*SERIES_COLUMNS, "control_method", *VERSUS_COLUMNS]]


def _key(values: tuple) -> tuple:
    """A group key where NaN equals NaN (a missing prunable set is one group)."""
    return tuple(None if pd.isna(v) else v for v in values)


def read(directory: str | Path) -> dict[str, pd.DataFrame]:
    """The tables of a finished analysis folder, by name."""
    d = Path(directory)
    if not (d / "DONE").exists():
        raise FileNotFoundError(f"{d}: not a finished sweet-spot analysis (no DONE)")
    out = {}
    for name in ("effects", "verdicts", "summary", "controls", "versus_control"):
        try:
            out[name] = pd.read_csv(d / f"{name}.csv")
        except pd.errors.EmptyDataError:
            out[name] = pd.DataFrame()
    return out
