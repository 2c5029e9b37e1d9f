"""Evaluation statistics: IQM and stratified bootstrap confidence intervals (rliable-style).

Scores are arrays of runs x tasks. The IQM is the mean of the middle 50 % of all scores; its interval
comes from a bootstrap that resamples runs independently within each task (stratified by task).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats as scipy_stats


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all entries: the 25 %-trimmed mean (``scipy.stats.trim_mean``)."""
    return float(scipy_stats.trim_mean(np.asarray(scores, dtype=np.float64).ravel(), 0.25))


def stratified_bootstrap_ci(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], float] = iqm,
    reps: int = 2_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point estimate, low, high) of ``statistic`` over a runs x tasks array.

    Each replicate resamples the runs with replacement separately for every task (column), as rliable's
    stratified bootstrap does, and the interval is the percentile interval of the replicates.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be runs x tasks, got shape {scores.shape}")
    runs, tasks = scores.shape
    rng = np.random.default_rng(seed)
    index = rng.integers(0, runs, size=(reps, runs, tasks))  # reps x runs x tasks
    resampled = np.take_along_axis(scores[None], index, axis=1)  # reps x runs x tasks
    replicates = np.array([statistic(r) for r in resampled])  # reps
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return statistic(scores), float(low), float(high)
