"""Evaluation statistics in the style of rliable (Agarwal et al. 2021), written from the definitions.

Scores are arrays of runs x tasks (runs = seeds). The aggregate metrics are rliable's: the IQM, the
mean and the optimality gap pool every run of every task, and the median is the median over tasks of
each task's mean over runs (rliable's ``aggregate_median``, the paper's Table 8). Their intervals
come from a stratified bootstrap that resamples the runs with replacement independently within each
task, so every replicate keeps every task. Performance profiles give the fraction of runs x tasks
above each score threshold, and the probability of improvement compares two methods task by task.
Report the interval, not only the point.

The bootstrap is vectorised: one draw of a reps x runs x tasks index array, then every metric is
computed on all replicates at once (sorting for the IQM and the median, run multiplicities and a
matrix product for profiles and the probability of improvement). Memory is a few times
``reps x runs x tasks`` floats.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

METRICS = ("iqm", "mean", "median", "optimality_gap")


# ---------------------------------------------------------------------------------------------------
# Shapes


def _as_scores(scores: Any, name: str = "scores") -> np.ndarray:
    """Any non-empty array of scores as float64 (the aggregate metrics pool all its entries)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError(f"{name} must hold at least one score, got shape {scores.shape}")
    return scores


def _as_runs_by_tasks(scores: Any, name: str = "scores") -> np.ndarray:
    """A runs x tasks float64 array with at least one run and one task, or a ValueError naming the shape."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(
            f"{name} must be a non-empty runs x tasks (2-D) array, got shape {scores.shape}"
        )
    return scores


def _as_taus(taus: Any) -> np.ndarray:
    taus = np.asarray(taus, dtype=np.float64)
    if taus.ndim != 1 or taus.size == 0:
        raise ValueError(
            f"taus must be a non-empty 1-D array of thresholds, got shape {taus.shape}"
        )
    return taus


def _check_bootstrap(reps: int, confidence: float) -> None:
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")


# ---------------------------------------------------------------------------------------------------
# Metrics on replicates: each takes a reps x runs x tasks array and returns reps values. The public
# metrics call them on a single replicate, so point estimates and replicates share one formula.


def _iqm_rows(rows: np.ndarray) -> np.ndarray:
    pooled = rows.reshape(len(rows), -1)  # reps x runs·tasks
    n = pooled.shape[-1]
    cut = n // 4  # = int(0.25 * n), as scipy.stats.trim_mean(rows, 0.25) cuts
    return np.sort(pooled, axis=-1)[:, cut : n - cut].mean(axis=-1)  # reps


def _mean_rows(rows: np.ndarray) -> np.ndarray:
    return rows.reshape(len(rows), -1).mean(axis=-1)  # reps


def _median_rows(rows: np.ndarray) -> np.ndarray:
    return np.median(rows.mean(axis=1), axis=-1)  # reps: median over tasks of the runs' mean


def _optimality_gap_rows(rows: np.ndarray, threshold: float) -> np.ndarray:
    return np.maximum(threshold - rows.reshape(len(rows), -1), 0.0).mean(axis=-1)  # reps


def _one_replicate(scores: Any) -> np.ndarray:
    """Scores as a 1 x runs x tasks array; a 1-D array is one run of several tasks."""
    scores = _as_scores(scores)
    if scores.ndim > 2:
        raise ValueError(f"scores must be runs x tasks (or 1-D), got shape {scores.shape}")
    return scores.reshape(1, -1, scores.shape[-1]) if scores.ndim else scores.reshape(1, 1, 1)


# ---------------------------------------------------------------------------------------------------
# Aggregate metrics over all runs x tasks


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all entries: the mean of the middle 50 % of the sorted scores.

    With n scores, the lowest and the highest ``floor(n / 4)`` are dropped and the rest averaged (the
    25 %-trimmed mean, ``scipy.stats.trim_mean(scores, 0.25)``). Unlike the mean it ignores outlying
    runs; unlike the median it uses half of the data, so its interval is narrower.
    """
    return float(_iqm_rows(_one_replicate(scores))[0])


def mean(scores: np.ndarray) -> float:
    """Mean of all entries. Sensitive to a few outlying runs or tasks, which is why IQM is preferred."""
    return float(_mean_rows(_one_replicate(scores))[0])


def median(scores: np.ndarray) -> float:
    """Median over tasks of each task's mean over runs, rliable's ``aggregate_median``.

    Not the median of the pooled runs x tasks scores: with runs [[0, 100], [90, 0], [95, 10]] the
    task means are 61.7 and 36.7 and the median is their mean, 49.2, where the pooled median is 50.
    A 1-D array is one run of several tasks.
    """
    return float(_median_rows(_one_replicate(scores))[0])


def optimality_gap(scores: np.ndarray, threshold: float) -> float:
    """Mean of ``max(threshold - score, 0)`` over all entries: how far the scores fall short of a target.

    ``threshold`` is in the scores' units (1000 for DMC and maze returns, 1.0 for normalised scores).
    Scores above it count as zero shortfall, so a method gains nothing from exceeding the target on
    some tasks and is charged for every shortfall. Lower is better.
    """
    return float(_optimality_gap_rows(_one_replicate(scores), float(threshold))[0])


_ROWS: dict[Callable[..., float], Callable[[np.ndarray], np.ndarray]] = {
    iqm: _iqm_rows,
    mean: _mean_rows,
    median: _median_rows,
}


# ---------------------------------------------------------------------------------------------------
# Stratified bootstrap


def _bootstrap_index(rng: np.random.Generator, runs: int, tasks: int, reps: int) -> np.ndarray:
    """Which run each replicate takes at every (run, task) slot, drawn independently per task."""
    return rng.integers(0, runs, size=(reps, runs, tasks))  # reps x runs x tasks


def _resample(scores: np.ndarray, index: np.ndarray) -> np.ndarray:
    return np.take_along_axis(scores[None], index, axis=1)  # reps x runs x tasks


def _run_counts(index: np.ndarray, runs: int) -> np.ndarray:
    """How many times each run is drawn in each task of each replicate (sums to ``runs`` per task)."""
    reps, _, tasks = index.shape
    slot = (
        np.arange(reps)[:, None, None] * tasks + np.arange(tasks)[None, None, :]
    )  # reps x 1 x tasks
    key = (slot * runs + index).ravel()  # reps·runs·tasks
    counts = np.bincount(key, minlength=reps * tasks * runs).reshape(reps, tasks, runs)
    return counts.transpose(0, 2, 1).astype(np.float64)  # reps x runs x tasks


def _percentile_interval(
    replicates: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over the first (replicate) axis."""
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail], axis=0)
    return low, high


def stratified_bootstrap_ci(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], float] = iqm,
    reps: int = 2_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point estimate, low, high) of ``statistic`` over a runs x tasks array.

    Each replicate resamples the runs with replacement separately for every task (column), as rliable's
    stratified bootstrap does, and the interval is the percentile interval of the replicates. For
    ``iqm``, ``mean`` and ``median`` all replicates are computed at once; any other callable is
    applied to each replicate in turn.
    """
    scores = _as_runs_by_tasks(scores)
    _check_bootstrap(reps, confidence)
    runs, tasks = scores.shape
    index = _bootstrap_index(np.random.default_rng(seed), runs, tasks, reps)
    resampled = _resample(scores, index)  # reps x runs x tasks
    rows = _ROWS.get(statistic)
    if rows is not None:
        replicates = rows(resampled)  # reps
    else:
        replicates = np.array([statistic(r) for r in resampled])  # reps
    low, high = _percentile_interval(replicates, confidence)
    return float(statistic(scores)), float(low), float(high)


def aggregate_with_ci(
    scores: np.ndarray,
    metrics: Sequence[str] = METRICS,
    reps: int = 2_000,
    confidence: float = 0.95,
    seed: int = 0,
    threshold: float | None = None,
) -> dict[str, tuple[float, float, float]]:
    """{metric: (point, low, high)} for each named aggregate metric over a runs x tasks array.

    ``metrics`` are names from ``METRICS``. All metrics share the same stratified bootstrap replicates
    (runs resampled with replacement within each task) and percentile intervals at ``confidence``.
    ``threshold`` is the optimality gap's target in the scores' units (1000 for returns, 1.0 for
    normalised scores); it has no default because a wrong unit silently gives a meaningless gap.
    """
    scores = _as_runs_by_tasks(scores)
    _check_bootstrap(reps, confidence)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {list(METRICS)}")
    rows_of = {metric: _metric_rows(metric, threshold) for metric in metrics}
    runs, tasks = scores.shape
    index = _bootstrap_index(np.random.default_rng(seed), runs, tasks, reps)
    resampled = _resample(scores, index)  # reps x runs x tasks
    out = {}
    for metric in metrics:
        point = rows_of[metric](scores[None])[0]
        low, high = _percentile_interval(rows_of[metric](resampled), confidence)
        out[metric] = (float(point), float(low), float(high))
    return out


def _metric_rows(metric: str, threshold: float | None) -> Callable[[np.ndarray], np.ndarray]:
    """The replicate function of a metric named in ``METRICS``, or a ValueError."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {list(METRICS)}")
    if metric == "optimality_gap":
        if threshold is None:
            raise ValueError(
                "optimality_gap needs a threshold in the scores' units, e.g. 1000 or 1.0"
            )
        return lambda rows: _optimality_gap_rows(rows, float(threshold))
    return {"iqm": _iqm_rows, "mean": _mean_rows, "median": _median_rows}[metric]


def aggregate_replicates(
    scores: np.ndarray,
    metric: str = "iqm",
    reps: int = 2_000,
    seed: int = 0,
    threshold: float | None = None,
) -> np.ndarray:
    """The ``reps`` stratified-bootstrap replicates of one aggregate metric over a runs x tasks array.

    The same replicates as :func:`aggregate_with_ci` draws with this ``seed``. They give intervals of
    quantities that combine several methods' aggregates, such as a difference of two IQMs: draw each
    method's replicates with its own seed (independent resampling), combine them replicate by
    replicate, and take the percentile interval of the result.
    """
    scores = _as_runs_by_tasks(scores)
    _check_bootstrap(reps, 0.95)
    rows = _metric_rows(metric, threshold)
    runs, tasks = scores.shape
    index = _bootstrap_index(np.random.default_rng(seed), runs, tasks, reps)
    return rows(_resample(scores, index))  # reps


# ---------------------------------------------------------------------------------------------------
# Performance profiles


def _exceeds(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    return (scores[..., None] > taus).astype(np.float64)  # runs x tasks x taus


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """For each threshold τ, the fraction of all runs x tasks with score > τ (a run-score distribution).

    This is the empirical tail distribution of the pooled scores: non-increasing in τ, 1 below the
    lowest score and 0 at or above the highest. It shows the whole distribution where an aggregate
    shows one number, and a profile that lies above another everywhere dominates it (rliable, strict >).
    """
    scores, taus = _as_scores(scores), _as_taus(taus)
    return _exceeds(scores.reshape(-1), taus).mean(axis=0)  # taus


def performance_profile_ci(
    scores: np.ndarray,
    taus: np.ndarray,
    reps: int = 2_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(point, low, high), each one value per τ: the profile with pointwise stratified-bootstrap bands.

    Replicates resample runs with replacement within each task; the band at each τ is the percentile
    interval of the replicates' profiles at that τ.
    """
    scores, taus = _as_runs_by_tasks(scores), _as_taus(taus)
    _check_bootstrap(reps, confidence)
    runs, tasks = scores.shape
    index = _bootstrap_index(np.random.default_rng(seed), runs, tasks, reps)
    counts = _run_counts(index, runs).reshape(reps, -1)  # reps x runs·tasks
    exceeds = _exceeds(scores, taus).reshape(runs * tasks, -1)  # runs·tasks x taus
    replicates = counts @ exceeds / (runs * tasks)  # reps x taus
    point = exceeds.sum(axis=0) / (runs * tasks)  # taus
    low, high = _percentile_interval(replicates, confidence)
    return point, low, high


# ---------------------------------------------------------------------------------------------------
# Probability of improvement


def _pairwise_wins(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 where x's run beats y's run on a task, ½ on a tie, 0 otherwise."""
    xi, yj = x[:, None, :], y[None, :, :]
    return (xi > yj) + 0.5 * (xi == yj)  # runs_x x runs_y x tasks


def _probability_from_counts(cx: np.ndarray, cy: np.ndarray, wins: np.ndarray) -> np.ndarray:
    """Per replicate, the task-averaged win probability with runs weighted by their draw counts."""
    runs_x, runs_y, _ = wins.shape
    per_task = np.einsum("rit,ijt,rjt->rt", cx, wins, cy) / (runs_x * runs_y)  # reps x tasks
    return per_task.mean(axis=1)  # reps


def _check_pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_runs_by_tasks(x, "x"), _as_runs_by_tasks(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must score the same tasks, got shapes {x.shape} and {y.shape}")
    return x, y


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + ½ P(X = Y) averaged over tasks, for two methods' runs x tasks scores.

    On each task it compares every run of X with every run of Y (the Mann-Whitney U statistic divided
    by the number of pairs), so the run counts may differ; tasks are then weighted equally. 0.5 means
    neither method tends to score higher, 1 that every run of X beats every run of Y on every task.
    """
    x, y = _check_pair(x, y)
    ones_x, ones_y = np.ones((1, *x.shape)), np.ones((1, *y.shape))
    return float(_probability_from_counts(ones_x, ones_y, _pairwise_wins(x, y))[0])


def probability_of_improvement_ci(
    x: np.ndarray,
    y: np.ndarray,
    reps: int = 2_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point, low, high) of ``probability_of_improvement(x, y)`` from a stratified bootstrap.

    Each replicate resamples X's runs and Y's runs with replacement, independently of each other and
    within each task.
    """
    x, y = _check_pair(x, y)
    _check_bootstrap(reps, confidence)
    rng = np.random.default_rng(seed)
    cx = _run_counts(
        _bootstrap_index(rng, x.shape[0], x.shape[1], reps), x.shape[0]
    )  # reps x rx x t
    cy = _run_counts(
        _bootstrap_index(rng, y.shape[0], y.shape[1], reps), y.shape[0]
    )  # reps x ry x t
    replicates = _probability_from_counts(cx, cy, _pairwise_wins(x, y))  # reps
    low, high = _percentile_interval(replicates, confidence)
    return probability_of_improvement(x, y), float(low), float(high)


# ---------------------------------------------------------------------------------------------------
# Plotting (matplotlib is optional: imported only here)


def plot_performance_profiles(
    profiles: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    ax: Any = None,
    xlabel: str = "score τ",
    ylabel: str = "fraction of runs with score > τ",
) -> Any:
    """Draw one line with its shaded band per method from ``{name: (taus, point, low, high)}``.

    ``point``, ``low`` and ``high`` are what ``performance_profile_ci`` returns. Draws on ``ax`` or on
    a new figure's axes, and returns the axes. Needs matplotlib (the ``book`` extra).
    """
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5.0, 3.5), layout="constrained")
    for name, (taus, point, low, high) in profiles.items():
        (line,) = ax.plot(taus, point, label=name)
        ax.fill_between(taus, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(frameon=False)
    return ax
