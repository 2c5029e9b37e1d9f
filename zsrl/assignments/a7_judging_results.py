"""Assignment 7: judging results the way the field does (rliable's statistics, :mod:`zsrl.stats`).

Three functions of a table of scores, runs x tasks (one row per seed, one column per task):

Part 1 (:func:`check_iqm`). ``iqm(scores)``: the interquartile mean of all runs x tasks scores
pooled, the mean of the middle half once the lowest and highest ⌊n/4⌋ of the n scores are dropped.
Compared with :func:`zsrl.stats.iqm`; the usual mistakes (averaging over runs before trimming,
trimming each task or each run separately, rounding the cut, percentile bounds, one tail only, no
trimming, the median) are named.

Part 2 (:func:`check_bootstrap`). ``stratified_bootstrap_ci(scores, statistic, reps, confidence,
seed)``: (point, low, high), the statistic of the table and the percentile interval of its
replicates, each replicate resampling the runs with replacement within every task. Drawn as the
library draws (``np.random.default_rng(seed).integers(0, runs, size=(reps, runs, tasks))``) it
matches :func:`zsrl.stats.stratified_bootstrap_ci` exactly; any other stratified bootstrap passes
when its endpoints lie within Monte Carlo error (:data:`TOLERANCE` of the interval's width) of the
library's. Bootstrapping without stratification (pooling runs x tasks, resampling whole runs, or
resampling tasks), the wrong percentiles, a seed that is ignored and a point taken from the
replicates are named.

Part 3 (:func:`check_improvement`). ``probability_of_improvement(x, y)``: P(X > Y) + ½ P(X = Y),
each run of X against each run of Y on the same task, averaged over tasks, against
:func:`zsrl.stats.probability_of_improvement`; ties ignored or counted as wins, pooling across
tasks, pairing runs by index, comparing task means and the reversed comparison are named.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from zsrl import stats
from zsrl.assignments import Report, as_array, call, compare, diagnose, matches

NAME_IQM = "A7 part 1, the IQM"
NAME_BOOTSTRAP = "A7 part 2, the stratified bootstrap"
NAME_IMPROVEMENT = "A7 part 3, the probability of improvement"

SEED = 7
TOLERANCE = 0.05  # of the interval's width: a correct bootstrap's Monte Carlo error is about 1 %
CHECK_REPS = 10_000  # the student's replicates in the statistical comparison
REFERENCE_REPS = 40_000  # the library's (and the mistakes') replicates there
RANK_TOLERANCE = 0.008  # of an endpoint's rank among the replicates (Monte Carlo error about 0.002)

Bootstrap = Callable[[np.ndarray, Callable[[np.ndarray], float], int, float, int], Any]


def score_table(runs: int, tasks: int, seed: int, integers: bool = False) -> np.ndarray:
    """A runs x tasks table of returns in [0, 1000]: tasks of very different difficulty, and a run
    effect (a seed that does well on every task), as real results have. ``integers`` rounds the
    scores to multiples of 100 so that runs tie."""
    rng = np.random.default_rng(seed)
    task_level = np.linspace(50, 900, tasks)  # tasks
    run_effect = rng.normal(0, 100, size=(runs, 1))  # runs x 1
    scores = task_level + run_effect + rng.normal(0, 40, size=(runs, tasks))  # runs x tasks
    scores = np.clip(scores, 0, 1000)
    return np.round(scores, -2) if integers else scores


# ---------------------------------------------------------------------------------------------------
# Part 1: the IQM

# (runs, tasks, share of zeros): 25, 35, 40 and 24 scores, so that n/4 is whole or not, and rounding
# it down, to the nearest integer or up gives different cuts somewhere; every table has at least four
# tasks (with three, the IQM of the task means trims nothing), and the first so many zeros that they
# tie across the 25th percentile.
IQM_TABLES = ((5, 5, 0.35), (7, 5, 0.2), (10, 4, 0.2), (4, 6, 0.2))


def iqm_table(runs: int, tasks: int, seed: int, zeros: float = 0.2) -> np.ndarray:
    """A runs x tasks table of skewed returns in [0, 1000], about a share ``zeros`` of them exactly
    0 (failed runs, as on the maze), so that scores tie at the bottom."""
    rng = np.random.default_rng(seed)
    scores = np.minimum(rng.gamma(2.0, 150.0, size=(runs, tasks)), 1000.0)  # runs x tasks
    scores[rng.random((runs, tasks)) < zeros] = 0.0
    return scores


def _trim(values: np.ndarray, cut: int, upper: bool = True) -> float:
    """The mean of the sorted values without the ``cut`` lowest (and, if ``upper``, highest)."""
    ordered = np.sort(values.ravel())
    return float(ordered[cut : len(ordered) - cut if upper else None].mean())


def _iqm(values: np.ndarray) -> float:
    return _trim(values, values.size // 4)


def iqm_mistakes(scores: np.ndarray) -> dict[str, float]:
    """What the usual wrong IQMs give on ``scores`` (runs x tasks), keyed by the hint for each."""
    n = scores.size
    low, high = np.percentile(scores, [25, 75])
    return {
        "you averaged before trimming: the mean over runs of each task, then the IQM of those "
        "task means. The IQM pools every run of every task and trims the pooled scores; "
        "averaging first hides the runs' spread, which the IQM is meant to be robust to": _iqm(
            scores.mean(0)
        ),
        "you trimmed each task separately (the mean of per-task IQMs): the IQM pools all runs x "
        "tasks scores and trims them once": float(np.mean([_iqm(c) for c in scores.T])),
        "you trimmed each run separately (the mean of per-run IQMs): the IQM pools all runs x "
        "tasks scores and trims them once": float(np.mean([_iqm(r) for r in scores])),
        "you rounded n/4 to the nearest integer: drop ⌊n/4⌋ scores at each end (scipy's "
        "trim_mean(x, 0.25) cuts int(0.25·n))": _trim(scores, int(np.round(n / 4))),
        "you rounded n/4 up: drop ⌊n/4⌋ scores at each end": _trim(scores, math.ceil(n / 4)),
        "you kept the scores between the 25th and 75th percentiles (np.percentile interpolates "
        "between scores): drop ⌊n/4⌋ sorted scores at each end instead": float(
            scores[(scores >= low) & (scores <= high)].mean()
        ),
        "you trimmed the lowest quarter only: drop ⌊n/4⌋ scores at EACH end": _trim(
            scores, n // 4, upper=False
        ),
        "you dropped 12.5 % at each end: the IQM drops a quarter at each end and keeps the middle "
        "half": _trim(scores, n // 8),
        "that is the mean of all scores: the IQM drops the lowest and highest quarter first": float(
            scores.mean()
        ),
        "that is the median: the IQM is the MEAN of the middle half of the sorted scores": float(
            np.median(scores)
        ),
    }


def check_iqm(student_fn: Callable[[np.ndarray], float]) -> Report:
    """Compare ``student_fn(scores)`` with :func:`zsrl.stats.iqm` on tables of runs x tasks."""
    report = Report(NAME_IQM)
    for index, (runs, tasks, zeros) in enumerate(IQM_TABLES):
        scores = iqm_table(runs, tasks, SEED + index, zeros)
        context = f" on table {index} ({runs} runs x {tasks} tasks = {scores.size} scores)"
        got = call(report, student_fn, scores.copy(), label=context)
        if got is None:
            return report
        want = stats.iqm(scores)
        if not matches(got, want, rtol=1e-9, atol=1e-9):
            hint = diagnose(got, iqm_mistakes(scores), rtol=1e-9, atol=1e-9)
            if hint is not None:
                report.fail(f"the IQM{context} is not the interquartile mean: {hint}")
            compare(report, "the IQM", got, want, rtol=1e-9, atol=1e-9, context=context)
            return report
    report.messages.append(
        f"matches zsrl.stats.iqm on {len(IQM_TABLES)} tables "
        f"({', '.join(f'{r} x {t}' for r, t, _ in IQM_TABLES)} runs x tasks, with ties at 0)"
    )
    return report


# ---------------------------------------------------------------------------------------------------
# Part 2: the stratified bootstrap

# (runs, tasks, statistic, confidence): both statistics, and a confidence other than 95 %.
BOOTSTRAP_CASES = (
    (8, 5, stats.iqm, 0.95),
    (6, 3, stats.mean, 0.95),
    (10, 4, stats.iqm, 0.8),
)


def _replicates(scores: np.ndarray, statistic, reps: int, seed: int, kind: str) -> np.ndarray:
    """The statistic of ``reps`` bootstrap replicates of ``scores``, resampled as ``kind`` says."""
    rng = np.random.default_rng(seed)
    runs, tasks = scores.shape
    if kind == "stratified":  # the runs of each task, independently per task
        index = rng.integers(0, runs, size=(reps, runs, tasks))
        resampled = np.take_along_axis(scores[None], index, axis=1)  # reps x runs x tasks
    elif kind == "pooled":  # any score of the table, whatever its task
        flat = scores.ravel()
        resampled = flat[rng.integers(0, flat.size, size=(reps, flat.size))].reshape(
            reps, runs, tasks
        )
    elif kind == "rows":  # whole runs: one run index for every task
        resampled = scores[rng.integers(0, runs, size=(reps, runs))]  # reps x runs x tasks
    else:  # "tasks": the columns
        resampled = scores[:, rng.integers(0, tasks, size=(reps, tasks))].transpose(1, 0, 2)
    return np.array([statistic(r) for r in resampled])  # reps


def _interval(replicates: np.ndarray, confidence: float) -> np.ndarray:
    """The percentile interval of the replicates at ``confidence``: (low, high)."""
    tail = (1 - confidence) / 2
    return np.percentile(replicates, [100 * tail, 100 * (1 - tail)])


BOOTSTRAP_MISTAKES = {
    "pooled": "you bootstrapped without stratification, resampling the pooled runs x tasks scores: "
    "a replicate can then hold five scores of an easy task and none of a hard one, which widens "
    "the interval by the spread between tasks. Resample the runs within each task (column) "
    "separately",
    "rows": "you resampled whole runs, one run index for every task: that is not stratified by "
    "task. Draw the run index independently for each task (an index array reps x runs x tasks)",
    "tasks": "you resampled the tasks (columns): the stratified bootstrap keeps every task in "
    "every replicate and resamples the runs within each",
    "percentiles": "the percentiles are wrong: a confidence c gives the interval between the "
    "100·(1 − c)/2 and 100·(1 + c)/2 percentiles (2.5 and 97.5 for 95 %)",
    "fractions": "np.percentile takes percents, not fractions: np.percentile(x, [2.5, 97.5]) or "
    "np.quantile(x, [0.025, 0.975])",
}


def _bootstrap_mistake(
    scores: np.ndarray, statistic, confidence: float, endpoints: np.ndarray
) -> str | None:
    """The key of :data:`BOOTSTRAP_MISTAKES` whose interval ``endpoints`` (low, high) reproduce.

    A resampling mistake is recognised by its own interval (within :data:`TOLERANCE` of its width);
    a percentile mistake by where the endpoints fall among the stratified replicates: at the ranks
    1 − c and c, or, for fractions passed as percents, within the lowest 1.2 %.
    """
    for kind in ("pooled", "rows", "tasks"):
        interval = _interval(_replicates(scores, statistic, REFERENCE_REPS, SEED, kind), confidence)
        if _close(endpoints, interval, interval[1] - interval[0]):
            return kind
    replicates = _replicates(scores, statistic, REFERENCE_REPS, SEED, "stratified")
    ranks = np.array([(replicates <= value).mean() for value in endpoints])  # low, high
    if np.all(np.abs(ranks - [1 - confidence, confidence]) <= RANK_TOLERANCE):
        return "percentiles"
    if np.all(ranks <= 0.012):
        return "fractions"
    return None


def _close(got: np.ndarray, want: np.ndarray, width: float) -> bool:
    return bool(np.all(np.abs(np.asarray(got) - np.asarray(want)) <= TOLERANCE * width))


def _triple(report: Report, got: Any, context: str) -> np.ndarray | None:
    values = as_array(got)
    if values is None or values.shape != (3,) or not np.all(np.isfinite(values)):
        shape = "?" if values is None else values.shape
        report.fail(
            f"the bootstrap{context} returned {type(got).__name__} of shape {shape}: return "
            "(point, low, high), three finite numbers"
        )
        return None
    return values


def check_bootstrap(student_fn: Bootstrap) -> Report:
    """Compare ``student_fn(scores, statistic, reps, confidence, seed)`` with the library's
    stratified bootstrap interval: exactly when drawn as the library draws, else within
    :data:`TOLERANCE` of the interval's width at :data:`CHECK_REPS` replicates."""
    report = Report(NAME_BOOTSTRAP)
    exact = 0
    for index, (runs, tasks, statistic, confidence) in enumerate(BOOTSTRAP_CASES):
        scores = score_table(runs, tasks, SEED + 10 + index)
        context = (
            f" on table {index} ({runs} runs x {tasks} tasks, {statistic.__name__}, "
            f"{confidence:.0%} interval)"
        )
        args = (statistic, 2_000, confidence, SEED)
        got = call(report, student_fn, scores.copy(), *args, label=context)
        if got is None:
            return report
        values = _triple(report, got, context)
        if values is None:
            return report
        want = np.array(stats.stratified_bootstrap_ci(scores, *args))
        if matches(values, want, rtol=1e-9, atol=1e-9):
            exact += 1
            continue
        point = statistic(scores)
        if not matches(values[0], point, rtol=1e-9, atol=1e-9):
            if values[1] <= values[0] <= values[2] or not (values[0] <= values[1] <= values[2]):
                return report.fail(
                    f"the point estimate{context} is {values[0]:.6g}, expected {point:.6g}: it is "
                    "statistic(scores), the statistic of the table itself, not of the replicates "
                    "(not their mean or median)"
                )
            return report.fail(
                f"the bootstrap{context} returned {tuple(np.round(values, 4))}: return "
                "(point, low, high), the point estimate first"
            )
        again = call(report, student_fn, scores.copy(), *args, label=context)
        if again is None or (again := _triple(report, again, context)) is None:
            return report
        if not np.array_equal(values, again):
            return report.fail(
                f"two calls with the same seed{context} gave different intervals: draw every "
                "index from np.random.default_rng(seed), so that a seed gives one interval"
            )
        many = (statistic, CHECK_REPS, confidence, SEED + 1)
        values = call(report, student_fn, scores.copy(), *many, label=context)
        if values is None or (values := _triple(report, values, context)) is None:
            return report
        want = np.array(
            stats.stratified_bootstrap_ci(scores, statistic, REFERENCE_REPS, confidence)
        )
        width = want[2] - want[1]
        if _close(values[1:], want[1:], width):
            continue
        mistake = _bootstrap_mistake(scores, statistic, confidence, values[1:])
        if mistake is not None:
            return report.fail(
                f"the interval{context} is not the stratified one: {BOOTSTRAP_MISTAKES[mistake]}"
            )
        return report.fail(
            f"the interval{context} with {CHECK_REPS} replicates is [{values[1]:.4g}, "
            f"{values[2]:.4g}], expected about [{want[1]:.4g}, {want[2]:.4g}] (within "
            f"{TOLERANCE * width:.3g}, {TOLERANCE:.0%} of its width)"
        )
    how = (
        "exactly, drawn as the library draws"
        if exact == len(BOOTSTRAP_CASES)
        else f"within Monte Carlo error ({len(BOOTSTRAP_CASES) - exact} of them not drawn as the "
        "library draws)"
    )
    report.messages.append(
        f"matches zsrl.stats.stratified_bootstrap_ci on {len(BOOTSTRAP_CASES)} tables (IQM and "
        f"mean, 95 % and 80 % intervals), {how}"
    )
    return report


# ---------------------------------------------------------------------------------------------------
# Part 3: the probability of improvement

# (runs of X, runs of Y, tasks): the same number of runs first, then different ones.
IMPROVEMENT_CASES = ((4, 4, 3), (5, 3, 4), (6, 6, 5))


def improvement_pair(runs_x: int, runs_y: int, tasks: int, seed: int):
    """Two methods' tables (runs x tasks, rounded so that runs tie): X a little better than Y."""
    x = score_table(runs_x, tasks, seed, integers=True)  # runs_x x tasks
    y = np.clip(score_table(runs_y, tasks, seed + 100, integers=True) - 100, 0, 1000)
    return x, y


def _wins(x: np.ndarray, y: np.ndarray, tie: float) -> np.ndarray:
    """1 where x beats y, ``tie`` where they are equal (any broadcastable shapes)."""
    return (x > y) + tie * (x == y)


def improvement_mistakes(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """What the usual wrong probabilities of improvement give, keyed by the hint for each."""
    pairs = lambda tie: _wins(x[:, None, :], y[None, :, :], tie).mean(axis=(0, 1))  # noqa: E731
    mistakes = {
        "ties count as losses: a tie counts half, P(X > Y) + ½ P(X = Y)": float(pairs(0.0).mean()),
        "ties count as wins: a tie counts half, P(X > Y) + ½ P(X = Y)": float(pairs(1.0).mean()),
        "you pooled the tasks, comparing every run-task score of X with every one of Y: compare "
        "runs on the same task only, then average over tasks": float(
            _wins(x.ravel()[:, None], y.ravel()[None, :], 0.5).mean()
        ),
        "you compared the tasks' mean scores: compare every run of X with every run of Y on each "
        "task": float(_wins(x.mean(0), y.mean(0), 0.5).mean()),
        "that is the probability that Y improves on X: compare X's runs against Y's": float(
            _wins(y[:, None, :], x[None, :, :], 0.5).mean()
        ),
    }
    if x.shape == y.shape:
        mistakes[
            "you paired run i of X with run i of Y: runs of different methods are independent; "
            "compare every run of X with every run of Y (runs_x x runs_y pairs per task)"
        ] = float(_wins(x, y, 0.5).mean())
    return mistakes


def check_improvement(student_fn: Callable[[np.ndarray, np.ndarray], float]) -> Report:
    """Compare ``student_fn(x, y)`` with :func:`zsrl.stats.probability_of_improvement`."""
    report = Report(NAME_IMPROVEMENT)
    for index, (runs_x, runs_y, tasks) in enumerate(IMPROVEMENT_CASES):
        x, y = improvement_pair(runs_x, runs_y, tasks, SEED + 20 + index)
        context = f" on pair {index} (X: {runs_x} runs, Y: {runs_y} runs, {tasks} tasks)"
        got = call(report, student_fn, x.copy(), y.copy(), label=context)
        if got is None:
            return report
        want = stats.probability_of_improvement(x, y)
        if not matches(got, want, rtol=1e-9, atol=1e-9):
            hint = diagnose(got, improvement_mistakes(x, y), rtol=1e-9, atol=1e-9)
            if hint is not None:
                report.fail(f"the probability{context} is wrong: {hint}")
            compare(report, "the probability", got, want, rtol=1e-9, atol=1e-9, context=context)
            return report
    report.messages.append(
        f"matches zsrl.stats.probability_of_improvement on {len(IMPROVEMENT_CASES)} pairs of "
        "tables with ties, equal and unequal numbers of runs"
    )
    return report


# ---------------------------------------------------------------------------------------------------
# Part 4: the book's results


def book_results(
    path: Path | None = None, which: str = "best"
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The runs x tasks scores of every method of a committed aggregate (``results/aggregate_rnd_book``
    by default), and the aggregate itself, whose intervals the book reports."""
    if path is None:
        path = Path(__file__).resolve().parents[2] / "results" / "aggregate_rnd_book"
    aggregate = json.loads((Path(path) / "aggregate.json").read_text())
    scores = {
        name: np.array(method[which]["scores"]) for name, method in aggregate["methods"].items()
    }
    return scores, aggregate
