"""Percentile bootstrap confidence intervals over images or trials, deterministic given a seed."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

_STATISTICS = {"mean": np.mean, "median": np.median}
_MAX_ELEMENTS = 1 << 24  # resampled values held in memory at once


@dataclass(frozen=True)
class BootstrapCI:
    """A point estimate with its percentile interval; unpacks as ``(estimate, low, high)``.

    ``n`` is the number of values (or trials) the estimate used, after dropping NaN;
    ``n_boot`` the number of bootstrap replicates with a defined (non-NaN) statistic.
    """

    estimate: float
    low: float
    high: float
    n: int
    n_boot: int

    def __iter__(self) -> Iterator[float]:
        return iter((self.estimate, self.low, self.high))


def _as_numpy(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected one entry per image or trial along axis 0, got a scalar")
    return arr


def _check_ci(ci: float, n_boot: int) -> None:
    if not 0 < ci < 1:
        raise ValueError(f"ci: expected a coverage in (0, 1), got {ci!r}")
    if not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot: expected a positive int, got {n_boot!r}")


def _interval(estimate: float, replicates: np.ndarray, ci: float, n: int) -> BootstrapCI:
    replicates = replicates[~np.isnan(replicates)]
    if len(replicates) == 0:
        return BootstrapCI(float(estimate), float("nan"), float("nan"), n, 0)
    low, high = np.quantile(replicates, [(1 - ci) / 2, (1 + ci) / 2])
    return BootstrapCI(float(estimate), float(low), float(high), n, len(replicates))


def bootstrap_ci(values, n_boot: int = 1000, ci: float = 0.95, seed: int = 0,
                 statistic: str = "mean") -> BootstrapCI:
    """Percentile bootstrap CI of the mean (or median) of per-image values.

    values: 1-D array/tensor/sequence; NaN entries (undefined per-image metrics) are dropped
    and ``n`` reports how many remain. All replicates are drawn as one (n_boot, n) index array
    (in chunks when large). With no values left the result is all NaN with n = 0.
    """
    _check_ci(ci, n_boot)
    if statistic not in _STATISTICS:
        raise ValueError(f"statistic: expected one of {sorted(_STATISTICS)}, got {statistic!r}")
    x = _as_numpy(values, "values").astype(np.float64)
    if x.ndim != 1:
        raise ValueError(f"values: expected a 1-D vector of per-image values, got shape {x.shape}")
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return BootstrapCI(float("nan"), float("nan"), float("nan"), 0, 0)
    reduce = _STATISTICS[statistic]
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_ELEMENTS // n)
    replicates = np.concatenate([
        reduce(x[rng.integers(0, n, size=(min(chunk, n_boot - start), n))], axis=1)
        for start in range(0, n_boot, chunk)
    ])
    return _interval(reduce(x), replicates, ci, n)


def _draw_counts(idx: np.ndarray, n: int) -> np.ndarray:
    """(R, n) resampled indices -> (R, n) how many times each index was drawn per row."""
    rows = len(idx)
    return np.bincount((idx + n * np.arange(rows)[:, None]).ravel(), minlength=rows * n).reshape(rows, n)


def bootstrap_ci_paired(*arrays, statistic: Callable[..., float], n_boot: int = 1000, ci: float = 0.95,
                        seed: int = 0, batched: Callable[..., np.ndarray] | None = None) -> BootstrapCI:
    """Percentile bootstrap CI of ``statistic(*arrays)`` resampling the shared axis 0 jointly.

    For statistics of aligned per-trial data, e.g.
    ``bootstrap_ci_paired(model_correct, human_correct, statistic=error_consistency)`` or
    ``bootstrap_ci_paired(decisions, shapes, textures, statistic=shape_bias)``: replicate r
    evaluates the statistic on the same resampled trials of every array. Arrays may be tensors,
    arrays or sequences (strings too) and reach the statistic as NumPy arrays. The indices are
    drawn at once; the statistic is called once per replicate. Replicates where it is NaN (e.g.
    error consistency on an all-correct resample) are dropped, ``n_boot`` says how many remain.

    ``batched``: the same statistic for many replicates in one call, ``batched(counts,
    *arrays)`` with ``counts`` (R, n) how many times each trial is drawn in each replicate,
    returning R values (for statistics made of sums over trials); then it is called once per
    chunk of replicates instead of ``statistic`` once per replicate (the same resamples).
    """
    _check_ci(ci, n_boot)
    if not arrays:
        raise ValueError("arrays: expected at least one array")
    data = [_as_numpy(a, f"arrays[{i}]") for i, a in enumerate(arrays)]
    n = len(data[0])
    for i, a in enumerate(data[1:], start=1):
        if len(a) != n:
            raise ValueError(f"arrays[{i}]: expected {n} entries along axis 0 like arrays[0], got {len(a)}")
    if n == 0:
        return BootstrapCI(float("nan"), float("nan"), float("nan"), 0, 0)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    if batched is None:
        replicates = np.array([statistic(*(a[row] for a in data)) for row in idx], dtype=np.float64)
    else:
        chunk = max(1, _MAX_ELEMENTS // n)
        replicates = np.concatenate([np.asarray(batched(_draw_counts(idx[s:s + chunk], n), *data), dtype=np.float64)
                                     for s in range(0, n_boot, chunk)])
    return _interval(statistic(*data), replicates, ci, n)
