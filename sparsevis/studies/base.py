"""What the three studies share: the rows they write, per checkpoint, with the per-item values
behind every mean (the paired analysis of :mod:`sparsevis.analysis` resamples those)."""
from __future__ import annotations

import numpy as np

from sparsevis.stats import bootstrap_ci


def base_row(run, profile: str, meta: dict, n_params: int, study: str, series_id: str) -> dict:
    """The columns every row of one checkpoint shares (``train_precision`` where the checkpoint
    records the precision its weights were trained in)."""
    return dict(track=run.track, profile=profile, arch=run.arch, n_params=n_params,
                prune_method=run.method + ("+bnrecal" if run.bn_recalibration else ""),
                prunable_set=meta.get("preset", run.preset), iteration=meta["iteration"],
                sparsity=meta.get("sparsity", 0.0), sparsity_all=meta.get("sparsity_all", 0.0),
                seed=run.seed, study=study, run_id=series_id,
                **({"train_precision": meta["train_precision"]} if meta.get("train_precision") else {}))


class Rows:
    """The rows of one checkpoint: :meth:`mean` for a metric that is a mean over items (a
    bootstrap interval, and the item values kept), :meth:`value` for one that is not."""

    def __init__(self, base: dict, n_boot: int):
        self.base, self.n_boot = base, n_boot
        self.rows: list[dict] = []
        self.items: list[dict] = []

    def mean(self, dataset: str, method: str, metric: str, values, ids) -> None:
        values = np.asarray(values, dtype=float)
        if len(values) != len(ids):
            raise ValueError(f"{dataset}/{method}/{metric}: {len(values)} values for {len(ids)} items")
        ci = bootstrap_ci(values, n_boot=self.n_boot, seed=0)
        self.rows.append(dict(self.base, dataset=dataset, method=method, metric=metric, value=ci.estimate,
                              n=ci.n, ci_low=ci.low, ci_high=ci.high))
        self.items += [dict(dataset=dataset, method=method, metric=metric, item=str(i), value=v)
                       for i, v in zip(ids, values)]

    def value(self, dataset: str, method: str, metric: str, value: float, n: int,
              ci_low: float = np.nan, ci_high: float = np.nan) -> None:
        self.rows.append(dict(self.base, dataset=dataset, method=method, metric=metric, value=float(value),
                              n=int(n), ci_low=ci_low, ci_high=ci_high))
