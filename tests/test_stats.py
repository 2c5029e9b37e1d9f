"""IQM, stratified bootstrap intervals and run summaries."""

import numpy as np
import pytest

from zsrl.results import format_summary, summarise
from zsrl.stats import iqm, stratified_bootstrap_ci


def test_iqm_by_hand():
    assert iqm(np.arange(1, 9)) == pytest.approx((3 + 4 + 5 + 6) / 4)
    assert iqm(np.array([[0, 0], [1000, 1], [2, 3], [4, 5]])) == pytest.approx((2 + 3 + 4 + 1) / 4)


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_data():
    rng = np.random.default_rng(0)
    small = rng.normal(100, 20, size=(3, 4))
    large = rng.normal(100, 20, size=(30, 4))
    p1, lo1, hi1 = stratified_bootstrap_ci(small, reps=500)
    p2, lo2, hi2 = stratified_bootstrap_ci(large, reps=500)
    assert lo1 <= p1 <= hi1 and lo2 <= p2 <= hi2
    assert hi2 - lo2 < hi1 - lo1


def test_bootstrap_is_stratified_by_task():
    # each task's runs agree, so resampling runs within a task never changes the scores
    scores = np.tile(np.array([[1.0, 5.0, 9.0, 13.0]]), (5, 1))
    point, low, high = stratified_bootstrap_ci(scores, reps=200)
    assert point == low == high == pytest.approx(iqm(scores))


def test_bootstrap_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="runs x tasks"):
        stratified_bootstrap_ci(np.zeros(5))


def record(seed, scores_by_step):
    tasks = list(scores_by_step[0][1])
    return {
        "tasks": tasks,
        "config": {"train": {"seed": seed}},
        "steps_done": scores_by_step[-1][0],
        "wall_time_s": 1.0,
        "scale": "quick",
        "method": "fb",
        "domain": "point_mass_maze",
        "dataset": {"name": "uniform-reset"},
        "command": "python -m zsrl train",
        "evaluations": [
            {
                "step": step,
                "mean_score": float(np.mean(list(s.values()))),
                "scores": s,
                "tasks": {t: {"final_distance": [0.1 * seed]} for t in tasks},
            }
            for step, s in scores_by_step
        ],
    }


def test_summary_separates_last_and_best():
    records = [
        record(seed, [(10, {"a": 100.0 * seed, "b": 0.0}), (20, {"a": 10.0, "b": 0.0})])
        for seed in (1, 2, 3)
    ]
    summary = summarise(records, reps=200)
    assert summary["last"]["scores"] == [[10.0, 0.0]] * 3
    assert summary["best"]["steps"] == [10, 10, 10]
    assert summary["best"]["mean_per_task"]["a"] == pytest.approx(200.0)
    assert summary["last"]["mean_final_distance"]["a"] == pytest.approx(0.2)
    assert "95% CI" in format_summary(summary)
