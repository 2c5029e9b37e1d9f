"""Aggregate metrics, stratified bootstrap intervals, performance profiles, probability of
improvement and run summaries."""

import time

import numpy as np
import pytest
from scipy import stats as scipy_stats

from zsrl.results import (
    combine_single_task,
    compare_methods,
    format_summary,
    metrics_path,
    summarize,
    write_summary,
)
from zsrl.stats import (
    aggregate_replicates,
    aggregate_with_ci,
    iqm,
    mean,
    median,
    optimality_gap,
    performance_profile,
    performance_profile_ci,
    plot_performance_profiles,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)


def test_iqm_by_hand():
    assert iqm(np.arange(1, 9)) == pytest.approx((3 + 4 + 5 + 6) / 4)
    assert iqm(np.array([[0, 0], [1000, 1], [2, 3], [4, 5]])) == pytest.approx((2 + 3 + 4 + 1) / 4)


def test_iqm_matches_scipy_trim_mean_for_every_size():
    rng = np.random.default_rng(1)
    for n in range(1, 23):
        x = rng.normal(size=n)
        assert iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25))


def test_mean_and_median_by_hand():
    scores = np.array([[1.0, 2.0], [3.0, 10.0]])
    assert mean(scores) == pytest.approx(4.0)
    # rliable's median: the median over tasks of each task's mean over runs (2 and 6), not the
    # median of the pooled scores 1, 2, 3, 10 (2.5)
    assert median(scores) == pytest.approx(4.0)
    assert median(np.array([[5.0, 1.0, 3.0]])) == pytest.approx(3.0)
    assert median(np.array([[0.0, 100.0], [90.0, 0.0], [95.0, 10.0]])) == pytest.approx(
        49.1667, abs=1e-3
    )


def test_optimality_gap_counts_only_shortfalls():
    # shortfalls 1000-400 = 600, 1000-900 = 100, none for 1000 and 1200
    scores = np.array([[400.0, 1000.0], [900.0, 1200.0]])
    assert optimality_gap(scores, 1000.0) == pytest.approx((600 + 100 + 0 + 0) / 4)
    assert optimality_gap(np.array([[0.5, 1.5]]), 1.0) == pytest.approx(0.25)
    assert optimality_gap(np.full((2, 2), 2000.0), 1000.0) == 0.0
    assert optimality_gap(np.zeros((2, 2)), 1000.0) == pytest.approx(1000.0)


def test_metrics_reject_empty_scores_naming_the_shape():
    with pytest.raises(ValueError, match=r"\(0, 3\)"):
        mean(np.zeros((0, 3)))


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
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        aggregate_with_ci(np.zeros((2, 3, 4)), threshold=1.0)


def test_bootstrap_accepts_any_statistic():
    scores = np.random.default_rng(2).normal(size=(4, 3))
    point, low, high = stratified_bootstrap_ci(scores, lambda s: float(s.max()), reps=100)
    assert point == pytest.approx(scores.max())
    assert low <= high <= point  # a resample never exceeds the largest score


def test_vectorised_bootstrap_matches_one_replicate_at_a_time():
    scores = np.random.default_rng(3).normal(100, 20, size=(5, 4))
    for fast in (iqm, mean, median):
        slow = stratified_bootstrap_ci(scores, lambda s, f=fast: f(s), reps=300, seed=4)
        assert stratified_bootstrap_ci(scores, fast, reps=300, seed=4) == pytest.approx(slow)


def test_aggregate_with_ci_points_intervals_and_speed():
    scores = np.random.default_rng(5).normal(500, 200, size=(5, 4))
    start = time.perf_counter()
    out = aggregate_with_ci(scores, reps=2_000, threshold=1000.0)
    assert time.perf_counter() - start < 1.0
    assert set(out) == {"iqm", "mean", "median", "optimality_gap"}
    assert out["iqm"][0] == pytest.approx(iqm(scores))
    assert out["mean"][0] == pytest.approx(mean(scores))
    assert out["median"][0] == pytest.approx(median(scores))
    assert out["optimality_gap"][0] == pytest.approx(optimality_gap(scores, 1000.0))
    for point, low, high in out.values():
        assert low <= point <= high and low < high
    # the IQM shares stratified_bootstrap_ci's replicates for the same seed
    assert out["iqm"] == pytest.approx(stratified_bootstrap_ci(scores, iqm, reps=2_000))


def test_aggregate_replicates_are_the_intervals_replicates():
    scores = np.random.default_rng(6).normal(500, 200, size=(5, 4))
    out = aggregate_with_ci(scores, reps=1_000, seed=3, threshold=1000.0)
    for metric in ("iqm", "median", "optimality_gap"):
        replicates = aggregate_replicates(scores, metric, reps=1_000, seed=3, threshold=1000.0)
        assert replicates.shape == (1_000,)
        assert np.percentile(replicates, [2.5, 97.5]) == pytest.approx(out[metric][1:])
    with pytest.raises(ValueError, match="unknown metric 'mode'; known"):
        aggregate_replicates(scores, "mode")
    with pytest.raises(ValueError, match="optimality_gap needs a threshold"):
        aggregate_replicates(scores, "optimality_gap")


def test_aggregate_intervals_shrink_as_runs_are_added():
    rng = np.random.default_rng(6)
    few, many = rng.normal(100, 20, size=(3, 4)), rng.normal(100, 20, size=(40, 4))
    a = aggregate_with_ci(few, reps=500, threshold=150.0)
    b = aggregate_with_ci(many, reps=500, threshold=150.0)
    for metric in a:
        assert b[metric][2] - b[metric][1] < a[metric][2] - a[metric][1], metric


def test_aggregate_intervals_are_degenerate_for_identical_runs():
    scores = np.tile(np.array([[0.1, 0.7, 3.3, 920.0]]), (6, 1))  # every run alike, tasks differ
    for point, low, high in aggregate_with_ci(scores, reps=300, threshold=1000.0).values():
        assert low == point == high


def test_bootstrap_resamples_each_task_independently():
    # every run's tasks sum to 1; reusing one run index for all tasks would pin the mean at ½
    scores = np.array([[0.0, 1.0], [1.0, 0.0]] * 3)
    point, low, high = aggregate_with_ci(scores, metrics=("mean",), reps=500)["mean"]
    assert point == 0.5 and low < 0.5 < high


def test_interval_widens_with_confidence():
    scores = np.random.default_rng(11).normal(100, 20, size=(6, 4))
    narrow = aggregate_with_ci(scores, metrics=("mean",), confidence=0.5, reps=1_000)["mean"]
    wide = aggregate_with_ci(scores, metrics=("mean",), confidence=0.95, reps=1_000)["mean"]
    assert wide[1] < narrow[1] < narrow[2] < wide[2]


def test_aggregate_with_ci_rejects_bad_arguments():
    scores = np.ones((3, 2))
    with pytest.raises(ValueError, match="threshold"):
        aggregate_with_ci(scores)
    with pytest.raises(ValueError, match="unknown metrics"):
        aggregate_with_ci(scores, metrics=("iqm", "max"))
    with pytest.raises(ValueError, match="confidence"):
        aggregate_with_ci(scores, metrics=("mean",), confidence=95)
    assert set(aggregate_with_ci(scores, metrics=("mean",))) == {"mean"}


def test_performance_profile_by_hand():
    scores = np.array([[1.0, 3.0], [2.0, 4.0]])
    taus = np.array([0.0, 1.0, 1.5, 2.0, 3.5, 4.0, 9.0])
    profile = performance_profile(scores, taus)
    np.testing.assert_allclose(profile, [1.0, 0.75, 0.75, 0.5, 0.25, 0.0, 0.0])


def test_performance_profile_is_monotone_from_one_to_zero():
    scores = np.random.default_rng(7).uniform(0, 1000, size=(5, 4))
    taus = np.linspace(-10, 1010, 103)
    profile = performance_profile(scores, taus)
    assert np.all(np.diff(profile) <= 0)
    assert profile[0] == 1.0
    assert performance_profile(scores, [scores.min() - 1e-9])[0] == 1.0
    assert performance_profile(scores, [scores.max()])[0] == 0.0


def test_performance_profile_bands():
    rng = np.random.default_rng(8)
    taus = np.linspace(0, 1000, 21)
    scores = rng.uniform(0, 1000, size=(5, 4))
    point, low, high = performance_profile_ci(scores, taus, reps=500)
    np.testing.assert_allclose(point, performance_profile(scores, taus))
    assert np.all(low <= point) and np.all(point <= high) and np.any(low < high)
    # identical runs: every replicate is the original, so the band collapses onto the profile
    same = np.tile(scores[:1], (5, 1))
    point, low, high = performance_profile_ci(same, taus, reps=200)
    assert np.array_equal(low, point) and np.array_equal(high, point)
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        performance_profile(scores, np.zeros((3, 2)))


def test_performance_profile_bootstrap_is_stratified_by_task():
    # task 0: every run scores 10; task 1: runs score 0 or 20. At τ = 5 task 0 always counts, so
    # the replicate fraction never drops below ½; an unstratified bootstrap could drop to 0.
    scores = np.array([[10.0, 0.0], [10.0, 20.0], [10.0, 0.0], [10.0, 20.0]])
    point, low, high = performance_profile_ci(scores, [5.0, 15.0], reps=2_000, confidence=0.999)
    assert low[0] == 0.5 and high[0] == 1.0
    assert low[1] == 0.0 and high[1] == 0.5  # only task 1 can exceed 15


def test_probability_of_improvement_by_hand():
    x = np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0]])
    assert probability_of_improvement(x, x) == pytest.approx(0.5)
    assert probability_of_improvement(x + 100, x) == pytest.approx(1.0)
    assert probability_of_improvement(x, x + 100) == pytest.approx(0.0)
    # task 0: x in {1, 2, 3} against y in {2, 2}; per y run, 1 < 2 (0), 2 = 2 (½), 3 > 2 (1),
    # so (0 + ½ + 1) · 2 / 6 pairs = ½. Task 1: x in {5, 6, 7} beats y in {0, 0}: 1. Average ¾.
    y = np.array([[2.0, 0.0], [2.0, 0.0]])
    assert probability_of_improvement(x, y) == pytest.approx(0.75)
    assert probability_of_improvement(y, x) == pytest.approx(0.25)


def test_probability_of_improvement_ci():
    rng = np.random.default_rng(9)
    x, y = rng.normal(1.0, 1.0, size=(5, 4)), rng.normal(0.0, 1.0, size=(7, 4))
    point, low, high = probability_of_improvement_ci(x, y, reps=1_000)
    assert point == pytest.approx(probability_of_improvement(x, y))
    assert 0.0 <= low < point < high <= 1.0
    assert probability_of_improvement_ci(x + 100, y, reps=200) == (1.0, 1.0, 1.0)
    same = np.tile(x[:1], (3, 1))
    assert probability_of_improvement_ci(same, same, reps=200) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match=r"\(5, 4\) and \(7, 3\)"):
        probability_of_improvement(x, y[:, :3])


def test_plot_performance_profiles_draws_a_line_and_band_per_method():
    figure = pytest.importorskip("matplotlib.figure")
    ax = figure.Figure().add_subplot()
    taus = np.linspace(0, 1000, 11)
    scores = np.random.default_rng(10).uniform(0, 1000, size=(3, 2))
    profiles = {
        "fb": (taus, *performance_profile_ci(scores, taus, reps=50)),
        "cql": (taus, *performance_profile_ci(scores / 2, taus, reps=50)),
    }
    assert plot_performance_profiles(profiles, ax=ax) is ax
    assert [line.get_label() for line in ax.get_lines()] == ["fb", "cql"]
    assert len(ax.collections) == 2


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
    summary = summarize(records, reps=200)
    assert summary["last"]["scores"] == [[10.0, 0.0]] * 3
    assert summary["best"]["steps"] == [10, 10, 10]
    assert summary["best"]["mean_per_task"]["a"] == pytest.approx(200.0)
    assert summary["last"]["mean_final_distance"]["a"] == pytest.approx(0.2)
    assert "95% CI" in format_summary(summary)


def test_runs_of_other_domains_or_tasks_are_not_summarised_together(tmp_path):
    maze = record(1, [(10, {"a": 1.0, "b": 0.0})])
    walker = record(2, [(10, {"a": 1.0, "b": 0.0})]) | {"domain": "walker"}
    with pytest.raises(ValueError, match=r"several domains \['point_mass_maze', 'walker'\]"):
        summarize([maze, walker], reps=20)
    other = record(2, [(10, {"a": 1.0, "c": 0.0})])
    with pytest.raises(ValueError, match=r"different tasks \[\['a', 'b'\], \['a', 'c'\]\]"):
        summarize([maze, other], reps=20)
    with pytest.raises(ValueError, match="is a folder; give the summary's file"):
        write_summary([tmp_path], tmp_path)


def test_summary_reports_every_aggregate_with_its_interval():
    records = [
        record(seed, [(10, {"a": 100.0 * seed, "b": 1200.0}), (20, {"a": 10.0 * seed, "b": 0.0})])
        for seed in (1, 2, 3, 4)
    ]
    summary = summarize(records, reps=200)
    for which in ("last", "best"):
        s = summary[which]
        scores = np.array(s["scores"])
        assert set(s["aggregates"]) == {"iqm", "mean", "median", "optimality_gap"}
        assert s["aggregates"]["iqm"] == {"point": s["iqm"], "ci95": s["ci95"]}
        assert s["aggregates"]["mean"]["point"] == pytest.approx(scores.mean())
        assert s["aggregates"]["median"]["point"] == pytest.approx(np.median(scores.mean(0)))
        gap = s["aggregates"]["optimality_gap"]
        assert gap["point"] == pytest.approx(np.maximum(1000.0 - scores, 0).mean())
        assert gap["ci95"][0] <= gap["point"] <= gap["ci95"][1]
    # best: a = 100·seed, b = 1200 (no shortfall): gap = mean(900, 800, 700, 600, 0, 0, 0, 0) = 375
    assert summary["best"]["aggregates"]["optimality_gap"]["point"] == pytest.approx(375.0)
    text = format_summary(summary)
    assert "optimality gap" in text and "median" in text


def test_compare_methods_scores_each_against_the_reference():
    low = [record(seed, [(10, {"a": 10.0 * seed, "b": 0.0})]) for seed in (1, 2, 3)]
    high = [record(seed, [(10, {"a": 500.0 + seed, "b": 50.0})]) for seed in (1, 2, 3)]
    comparison = compare_methods({"low": low, "high": high}, reps=200)
    assert comparison["reference"] == "low" and set(comparison["probability_of_improvement"]) == {
        "high"
    }
    # every run of "high" beats every run of "low" on both tasks
    assert comparison["probability_of_improvement"]["high"] == {"point": 1.0, "ci95": [1.0, 1.0]}
    assert comparison["methods"]["high"]["best"]["mean_per_task"]["a"] == pytest.approx(502.0)
    flipped = compare_methods({"low": low, "high": high}, reference="high", reps=200)
    assert flipped["probability_of_improvement"]["low"]["point"] == 0.0
    with pytest.raises(ValueError, match="valid: \\['low', 'high'\\]"):
        compare_methods({"low": low, "high": high}, reference="mid")
    other_tasks = [record(1, [(10, {"a": 1.0, "c": 2.0})])]
    with pytest.raises(ValueError, match="different tasks"):
        compare_methods({"low": low, "odd": other_tasks})


def test_metrics_path_of_a_run_directory_and_of_a_committed_record(tmp_path):
    assert metrics_path(tmp_path) == tmp_path / "metrics.csv"
    record = tmp_path / "record_vcfb_seed0.json"
    assert metrics_path(record) == tmp_path / "metrics_vcfb_seed0.csv"
    with pytest.raises(ValueError, match="neither a run directory nor a record"):
        metrics_path(tmp_path / "summary.json")


def single_task_record(seed, task, scores_by_step, method="cql"):
    r = record(seed, [(step, {task: score}) for step, score in scores_by_step])
    return r | {"single_task": task, "method": method, "command": f"train {task} {seed}"}


def test_single_task_runs_combine_per_seed_over_their_tasks():
    runs = [
        single_task_record(seed, task, [(10, 100.0 * seed + k), (20, 5.0 + k)])
        for seed in (1, 2)
        for k, task in enumerate(["b", "a"])  # tasks in any order
    ]
    combined = combine_single_task(runs)
    assert [r["config"]["train"]["seed"] for r in combined] == [1, 2]
    assert combined[0]["tasks"] == ["a", "b"] and combined[0]["single_task"] is None
    summary = summarize(runs, reps=200)
    assert summary["best"]["scores"] == [[101.0, 100.0], [201.0, 200.0]]  # each task's own run
    assert summary["last"]["scores"] == [[6.0, 5.0], [6.0, 5.0]]
    # a seed without a run for every task, two runs for one task, or mixed methods are refused
    with pytest.raises(ValueError, match="missing.*\\{2: \\['a'\\]\\}"):
        combine_single_task(runs[:3])
    with pytest.raises(ValueError, match="two runs of seed 1 for task 'b'"):
        combine_single_task([*runs, runs[0]])
    with pytest.raises(ValueError, match="different"):
        combine_single_task([*runs[:2], single_task_record(3, "a", [(10, 1.0)], method="td3")])
    with pytest.raises(ValueError, match="not a single-task run"):
        combine_single_task([record(1, [(10, {"a": 1.0})])])


def test_single_task_runs_compare_task_by_task_in_the_reference_order():
    # FB scores its tasks in the order (b, a); CQL's combined runs list theirs sorted, (a, b)
    fb = [record(seed, [(10, {"b": 10.0, "a": 300.0})]) for seed in (1, 2)]
    cql = [
        single_task_record(s, t, [(10, v)]) for s in (1, 2) for t, v in (("a", 400.0), ("b", 50.0))
    ]
    comparison = compare_methods({"FB": fb, "CQL": cql}, reps=200)
    for summary in comparison["methods"].values():
        assert summary["tasks"] == ["b", "a"]
    assert comparison["methods"]["CQL"]["best"]["scores"] == [[50.0, 400.0], [50.0, 400.0]]
    # CQL beats FB on both tasks in every run: 1 with aligned columns, 1/2 with crossed ones
    assert comparison["probability_of_improvement"]["CQL"]["point"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not the runs' tasks"):
        summarize(fb, reps=50, tasks=["a", "c"])


def test_iqm_normalised_to_a_reference_method():
    low = [record(seed, [(10, {"a": 100.0, "b": 100.0})]) for seed in (1, 2, 3)]
    high = [record(seed, [(10, {"a": 150.0, "b": 150.0})]) for seed in (1, 2, 3)]
    comparison = compare_methods({"CQL": low, "FB": high}, reps=200, normalize_to="CQL")
    normalised = comparison["normalised"]
    assert normalised["to"] == "CQL" and normalised["base_iqm"] == pytest.approx(100.0)
    assert normalised["methods"]["CQL"]["point"] == pytest.approx(100.0)
    assert normalised["methods"]["FB"] == {"point": pytest.approx(150.0), "ci95": [150.0, 150.0]}
    for nothing in (0.0, 1e-70, 0.9):  # the maze's reward is never exactly 0 far from the goal
        zero = [record(seed, [(10, {"a": nothing, "b": nothing})]) for seed in (1, 2, 3)]
        normalised = compare_methods({"CQL": zero, "FB": high}, reps=50, normalize_to="CQL")
        assert "no 100 % line" in normalised["normalised"]["error"]
        assert "methods" not in normalised["normalised"]
    one = [record(seed, [(10, {"a": 1.0, "b": 1.0})]) for seed in (1, 2, 3)]
    normalised = compare_methods({"CQL": one, "FB": high}, reps=50, normalize_to="CQL")
    assert normalised["normalised"]["methods"]["FB"]["point"] == pytest.approx(15000.0)
    with pytest.raises(ValueError, match="valid: \\['CQL', 'FB'\\]"):
        compare_methods({"CQL": low, "FB": high}, reps=50, normalize_to="TD3")


@pytest.mark.parametrize("shape", [(3, 4), (5, 7), (10, 1)])
def test_aggregates_and_intervals_equal_rliables(shape):
    """Point estimates equal rliable 1.2.0's on the same arrays (ties included), and the percentile
    intervals of its stratified bootstrap agree within bootstrap noise."""
    from rliable import library as rly
    from rliable import metrics as rly_metrics

    rng = np.random.default_rng(sum(shape))
    x = rng.integers(0, 6, size=shape) * 150.0  # coarse values: ties within and across methods
    y = rng.normal(400, 250, size=shape)
    for scores in (x, y):
        assert iqm(scores) == pytest.approx(rly_metrics.aggregate_iqm(scores))
        assert mean(scores) == pytest.approx(rly_metrics.aggregate_mean(scores))
        assert median(scores) == pytest.approx(rly_metrics.aggregate_median(scores))
        gap = rly_metrics.aggregate_optimality_gap(scores, 1000.0)
        assert optimality_gap(scores, 1000.0) == pytest.approx(gap)
    if shape[0] > 1:  # scipy's Mann-Whitney U needs more than one run
        assert probability_of_improvement(x, y) == pytest.approx(
            rly_metrics.probability_of_improvement(x, y)
        )
    theirs_fn = lambda s: np.array(  # noqa: E731
        [rly_metrics.aggregate_iqm(s), rly_metrics.aggregate_median(s)]
    )
    _, theirs = rly.get_interval_estimates({"y": y}, theirs_fn, reps=4_000)
    ours = aggregate_with_ci(y, metrics=("iqm", "median"), reps=4_000, seed=1)
    for k, metric in enumerate(("iqm", "median")):
        low, high = ours[metric][1:]
        width = high - low
        assert abs(low - theirs["y"][0, k]) < 0.1 * width + 1e-9, metric
        assert abs(high - theirs["y"][1, k]) < 0.1 * width + 1e-9, metric


def test_summary_gives_final_distance_and_success_rate_with_intervals_over_runs():
    finals = {1: [0.01, 0.2], 2: [0.01, 0.01], 3: [0.5, 0.5]}
    records = []
    for seed, distances in finals.items():
        r = record(seed, [(10, {"a": 1.0, "b": 2.0})])
        r["evaluations"][0]["tasks"]["a"]["final_distance"] = distances
        r["evaluations"][0]["tasks"]["b"]["final_distance"] = None  # a task without a goal
        records.append(r)
    unknown = summarize(records, reps=50)["last"]["goals"]["a"]  # "a" is no task of the maze
    assert unknown["success_rate"] is None and unknown["final_distance"]["mean"] > 0
    goals = summarize(records, reps=500, success_radius=0.015)["last"]["goals"]
    assert goals["b"] is None
    a = goals["a"]
    assert a["success_rate"]["per_run"] == [0.5, 1.0, 0.0]  # within the reward's 0.015
    assert a["success_rate"]["mean"] == pytest.approx(0.5)
    assert a["final_distance"]["per_run"] == pytest.approx([0.105, 0.01, 0.5])
    low, high = a["success_rate"]["ci95"]
    assert 0.0 <= low < 0.5 < high <= 1.0
    assert summarize(records, reps=50, success_radius=0.3)["last"]["goals"]["a"]["success_rate"][
        "per_run"
    ] == [1.0, 1.0, 0.0]
