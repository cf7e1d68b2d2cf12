"""Percentile bootstrap confidence intervals for metrics computed over N independent items."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def resample_indices(n_items: int, n_resamples: int, seed: int) -> np.ndarray:
    """Draw bootstrap resamples: row r holds the item indices of resample r.

    Returns an int64 array of shape (n_resamples, n_items), each row drawn uniformly with
    replacement from range(n_items) by numpy's PCG64 generator seeded with `seed`.
    """
    if n_items < 1:
        raise ValueError(f"bootstrap needs at least one item, got {n_items}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_items, size=(n_resamples, n_items))


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """Central `level` interval of the bootstrap distribution `samples` (shape (n_resamples,)).

    The percentile method: the (1 - level) / 2 and (1 + level) / 2 quantiles, linear interpolation.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    lo, hi = np.quantile(samples, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(lo), float(hi)


def bootstrap_ci(
    statistic: Callable[[np.ndarray], np.ndarray],
    n_items: int,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a statistic over N items.

    `statistic` maps resampled indices of shape (n_resamples, n_items) to one value per resample,
    shape (n_resamples,); vectorising over resamples keeps 1000 resamples of a POPE split fast.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    values = np.asarray(statistic(resample_indices(n_items, n_resamples, seed)), dtype=np.float64)
    return percentile_interval(values, level)
