"""The book's maze grid read back from synthetic records: grouping, partial grids, the experiments'
tables, CQL's 100 % line and every branch of the verdict rule."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from zsrl.data import medium
from zsrl.envs import get_domain
from zsrl.grid_results import (
    NO_DIFFERENCE,
    OPPOSITE,
    PARTLY,
    REPRODUCED,
    UNDECIDED,
    Interval,
    Progress,
    Verdict,
    aggregate_table,
    combine_outcomes,
    didactic_table,
    group_runs,
    high_quality_table,
    load_grid_results,
    method_table,
    outcome,
    overestimation_table,
    size_table,
    task_scores,
    training_curves,
    verdict_didactic,
    verdict_high_quality,
    verdict_low_quality,
    verdict_size,
    verdict_values,
)
from zsrl.record import seal
from zsrl.sweep import load_grid

BOOK_GRID = Path(__file__).parents[1] / "results" / "grids" / "book_maze.toml"
MAZE = get_domain("point_mass_maze")
TASKS = list(MAZE.tasks)
REPS = 300


@pytest.fixture(scope="module")
def book_grid():
    return load_grid(BOOK_GRID)


def land(folder, cell, best, last=None, best_finals=None, last_finals=None, actor_q=None):
    """Write a finished cell's sealed record (and metrics) into a results folder, as a sweep does.

    Two evaluations, the best (scores ``best``) first and the last (``last``, default the best's)
    second; a score or a final-distance list is one value for every task or a {task: value} dict.
    ``actor_q``: the metrics' last value of the actor's Q.
    """
    cfg = cell.config()
    tasks = [cell.task] if cell.task else TASKS
    per_task = lambda v: {t: (v[t] if isinstance(v, dict) else v) for t in tasks}  # noqa: E731

    def evaluation(step, scores, finals):
        scores, finals = per_task(scores), per_task(finals if finals is not None else [1.0] * 5)
        return {
            "step": step,
            "mean_score": float(np.mean(list(scores.values()))),
            "scores": scores,
            "tasks": {t: {"score": scores[t], "final_distance": finals[t]} for t in tasks},
        }

    evaluations = [
        evaluation(15_000, best, best_finals),
        evaluation(30_000, best if last is None else last, last_finals or best_finals),
    ]
    record = {
        "command": cell.command(Path("runs") / cell.run_name),
        "method": cell.method,
        "domain": cell.domain,
        "scale": cell.scale,
        "config": cfg.to_dict(),
        "single_task": cfg.single_task,
        "dataset": {"name": cell.dataset},
        "environment": {},
        "wall_time_s": 1.0,
        "steps_done": 30_000,
        "complete": True,
        "tasks": tasks,
        "evaluations": evaluations,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"record_{cell.run_name}.json").write_text(json.dumps(seal(record)))
    if actor_q is not None:
        rows = [f"{step},{actor_q * step / 30_000}" for step in (15_000, 30_000)]
        (folder / f"metrics_{cell.run_name}.csv").write_text("step,actor_q\n" + "\n".join(rows))


def cells(grid, pattern):
    return grid.select([pattern])


# ---------------------------------------------------------------------------------------------------
# Grouping and partial grids

SMALL_GRID = """
domain = "point_mass_maze"
scale = "book"

[[block]]
method = ["fb", "vcfb"]
dataset = "uniform-reset"
seed = [0, 1]

[[block]]
method = ["fb", "cql"]
dataset = "random"
n_transitions = 1_000
seed = 0

[[block]]
method = "fb"
dataset = "uniform-reset"
seed = [1, 2]
"""


def test_runs_are_paired_with_their_records_and_grouped_by_block_and_axes(tmp_path):
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(SMALL_GRID)
    grid, folder = load_grid(grid_file), tmp_path / "results"
    assert load_grid_results(grid_file, folder).progress == Progress(0, len(grid))  # no folder yet
    by_name = {cell.run_name: cell for cell in grid.cells}
    land(folder, by_name["fb_uniform-reset_seed1"], 10.0)
    land(folder, by_name["cql_random_n1000_reach_top_left_seed0"], 5.0)
    land(folder, by_name["vcfb_uniform-reset_seed0"], 1.0)
    unfinished = json.loads((folder / "record_vcfb_uniform-reset_seed0.json").read_text())
    unfinished["complete"] = False  # a run that stopped early is not done
    (folder / "record_vcfb_uniform-reset_seed0.json").write_text(json.dumps(seal(unfinished)))

    results = load_grid_results(grid_file, folder)
    landed = sorted(p.name for p in folder.glob("record_*.json"))
    assert [r.cell.run_name for r in results.runs] == [c.run_name for c in grid.cells]
    assert results.progress == Progress(2, 4 + 1 + 4 + 1)
    assert len(landed) == 3
    # blocks keep their own cells, the shared one (fb seed 1) in both
    blocks = [(b.number, b.progress) for b in results.blocks]
    assert blocks == [(1, Progress(1, 4)), (2, Progress(1, 5)), (3, Progress(1, 2))]
    assert "CQL" in results.blocks[1].describe() and "random-1k" in results.blocks[1].describe()

    groups = group_runs(results.runs, ("method", "dataset"))
    assert list(groups) == [("fb", "uniform-reset"), ("vcfb", "uniform-reset"), ("fb", "random"),
                            ("cql", "random")]  # fmt: skip
    assert [r.cell.seed for r in groups["fb", "uniform-reset"]] == [0, 1, 2]
    assert {r.size for r in results.runs if r.cell.dataset == "uniform-reset"} == {100_000}
    assert [r.cell.task for r in results.select(method="cql")] == TASKS
    assert len(results.select(size=1_000)) == 5
    assert len(results.select(action_filter=None)) == len(grid)
    done = [r.cell.run_name for r in results.runs if r.done]
    assert done == ["fb_uniform-reset_seed1", "cql_random_n1000_reach_top_left_seed0"]
    assert results.select(task="reach_top_left")[0].record["single_task"] == "reach_top_left"
    with pytest.raises(ValueError, match="unknown axes \\['colour'\\]; valid choices"):
        results.select(colour="red")


def test_a_record_under_another_cells_name_is_an_error(tmp_path):
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(SMALL_GRID)
    by_name = {cell.run_name: cell for cell in load_grid(grid_file).cells}
    land(tmp_path, by_name["vcfb_uniform-reset_seed1"], 1.0)
    (tmp_path / "record_vcfb_uniform-reset_seed1.json").rename(
        tmp_path / "record_fb_uniform-reset_seed1.json"
    )
    with pytest.raises(ValueError, match="is not the record of cell fb_uniform-reset_seed1"):
        load_grid_results(grid_file, tmp_path)


def test_a_run_that_stopped_early_is_counted_apart_and_not_done(tmp_path):
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(SMALL_GRID)
    (cell,) = load_grid(grid_file).select(["vcfb_uniform-reset_seed1"])
    land(tmp_path, cell, 1.0)
    record = json.loads((tmp_path / "record_vcfb_uniform-reset_seed1.json").read_text())
    record |= {"complete": False, "stopped": "non-finite ['fb_loss'] near step 7500"}
    (tmp_path / "record_vcfb_uniform-reset_seed1.json").write_text(json.dumps(seal(record)))
    results = load_grid_results(grid_file, tmp_path)
    (run,) = results.select(method="vcfb", seed=1)
    assert not run.done and run.stopped == record["stopped"]
    assert results.progress == Progress(0, 10, stopped=1)
    assert str(results.progress) == "0 of 10 runs; 1 stopped early by a non-finite loss"


@pytest.mark.parametrize(
    ("change", "words"),
    [  # the record's value -> the cell's
        ({"scale": "quick"}, "scale: 'quick' -> 'book'"),
        ({"steps": 300}, "train.steps: 300 -> 30000"),
        ({"overrides": ("agent.conservative.lagrange=False",)}, "lagrange: False -> True"),
    ],
)
def test_a_record_of_the_cell_trained_otherwise_is_an_error(tmp_path, change, words):
    """A quick run, a shorter one or one with another setting, under a book cell's name, is not it."""
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(SMALL_GRID)
    (cell,) = load_grid(grid_file).select(["vcfb_uniform-reset_seed1"])
    land(tmp_path, cell, 1.0)
    assert load_grid_results(grid_file, tmp_path).select(method="vcfb")[1].done
    land(tmp_path, replace(cell, **change), 1.0)
    with pytest.raises(
        ValueError, match="another configuration than cell vcfb_uniform-reset_seed1"
    ) as e:
        load_grid_results(grid_file, tmp_path)
    assert words in str(e.value)


def test_the_domains_grid_names_each_dataset_by_its_size_and_domain(tmp_path):
    grid_file = BOOK_GRID.with_name("book_domains.toml")
    results = load_grid_results(grid_file, tmp_path / "none")
    assert [b.describe() for b in results.blocks] == [
        "FB, VC-FB, MC-FB on rnd-100k (walker), seeds 0–2",
        "FB, VC-FB, MC-FB on random-100k (walker), seeds 0–2",
        "FB on random-100k (quadruped), seeds 0",
        "FB on random-100k (jaco), seeds 0",
        "FB on medium-100k (walker2d), seeds 0",
        "FB on medium-100k (halfcheetah), seeds 0",
    ]
    assert [r.cell.run_name for r in results.select(domain="jaco")] == ["jaco_fb_random_seed0"]
    # a record of another domain under a cell's name is not that cell's
    (cell,) = load_grid(grid_file).select(["quadruped_fb_random_seed0"])
    land(tmp_path, replace(cell, domain="point_mass_maze", name=""), 0.0)
    (tmp_path / "record_fb_random_seed0.json").rename(tmp_path / f"record_{cell.run_name}.json")
    with pytest.raises(ValueError, match=r"are \('point_mass_maze', 'fb'.*plans \('quadruped'"):
        load_grid_results(grid_file, tmp_path)


def test_sizes_known_only_once_collected_and_one_dataset_per_method_table(tmp_path):
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(
        'scale = "quick"\ndomain = "walker2d"\n\n[[block]]\nmethod = "fb"\n'
        'dataset = ["random", "medium"]\nseed = 0\n'
    )
    results = load_grid_results(grid_file, tmp_path / "none")
    assert [r.size for r in results.runs] == [None, medium.SCALES["quick"].policy_transitions]
    assert results.blocks[0].describe() == "FB on random, medium-2k (walker2d), seeds 0"
    assert [r.cell.dataset for r in results.select(size=None)] == ["random"]
    with pytest.raises(ValueError, match=r"compares methods on one dataset; the runs have 2"):
        method_table(results.runs, reps=10)


def test_each_experiment_plans_the_grid_cells_named_for_it(tmp_path, book_grid):
    """With no record yet, every table counts the cells whose directory names belong to it."""
    results = load_grid_results(BOOK_GRID, tmp_path / "nothing")
    assert results.progress == Progress(0, len(book_grid))

    def planned(*patterns):
        return len(book_grid.select(patterns))

    didactic = didactic_table(results, REPS)
    assert didactic["progress"] == Progress(0, planned("*_no_left_seed*"))
    assert high_quality_table(results, REPS)["progress"] == Progress(
        0, planned("*fb_uniform-reset_seed*")
    )
    for dataset, name in (("rnd", "rnd_n100000"), ("random", "random")):
        table = aggregate_table(results, dataset, REPS)
        assert table["progress"] == Progress(0, planned(f"*_{name}_seed*", f"cql_{name}_reach_*"))
        assert table["progress_fb_family"] == Progress(
            0, planned(*(f"{m}_{name}_seed*" for m in ("fb", "vcfb", "mcfb")))
        )
        assert table["normalised"] == {} and all(
            "scores" not in e for e in table["methods"].values()
        )
    fb_sizes = ("rnd_n1000", "rnd_n10000", "rnd_n100000", "random_n1000", "random_n10000", "random")
    values = overestimation_table(results, REPS)
    assert values["progress"] == Progress(0, planned(*(f"fb_{d}_seed*" for d in fb_sizes)))
    assert all(row["iqm"] is None for row in values["rows"])
    ablation = size_table(results, REPS)
    names = [f"{m}_rnd_n{n}_seed*" for m in ("fb", "vcfb", "mcfb") for n in (10**4, 10**5, 10**6)]
    assert ablation["progress"] == Progress(0, planned(*names))
    verdicts = [
        verdict_values(values),
        verdict_didactic(didactic),
        verdict_high_quality(high_quality_table(results, REPS), "last"),
        verdict_size(ablation),
    ]
    for verdict in verdicts:
        assert verdict.outcome == f"pending (0 of {verdict.progress.planned} runs)"
        assert verdict.comparisons == ()


# ---------------------------------------------------------------------------------------------------
# The didactic maze: success rates and final distances, best and last


def test_didactic_success_rates_and_distances_best_and_last(tmp_path, book_grid):
    radius = {t: MAZE.tasks[t].success_distance for t in TASKS}
    for cell in cells(book_grid, "*_uniform-reset_no_left_seed*"):
        near = cell.method != "fb"  # the conservative runs end near the goals at their best
        inside = [0.5 * radius[t] for t in TASKS]  # per task: a distance within its radius
        best = {t: (inside[k] if near else 1.0) for k, t in enumerate(TASKS)}
        # at the last evaluation, seed s reaches the goal in s of 5 episodes
        last = {t: [inside[k]] * cell.seed + [2.0] * (5 - cell.seed) for k, t in enumerate(TASKS)}
        land(tmp_path, cell, 300.0 if near else 20.0, 10.0, {t: [d] * 5 for t, d in best.items()},
             last)  # fmt: skip
    table = didactic_table(load_grid_results(BOOK_GRID, tmp_path), REPS)
    assert table["progress"] == Progress(15, 30)
    partial = table["datasets"]["rnd-100k, no_left"]
    assert partial["rows"] == [] and partial["progress"] == Progress(0, 15)
    entry = table["datasets"]["uniform-reset-100k, no_left"]
    rows = {(row["method"], row["task"]): row for row in entry["rows"]}
    assert sorted(rows) == sorted((m, t) for m in ("FB", "VC-FB", "MC-FB") for t in TASKS)
    seeds = np.arange(5)
    for (method, task), row in rows.items():
        assert row["runs"] == 5
        reached = 0.0 if method == "FB" else 1.0
        assert row["best"]["success"] == (reached, reached, reached)
        last = row["last"]["success"]
        assert last.point == pytest.approx(np.mean(seeds / 5))
        assert last.low < last.point < last.high
        distances = [np.mean([0.5 * radius[task]] * s + [2.0] * (5 - s)) for s in seeds]
        assert row["last"]["distance"].point == pytest.approx(np.mean(distances))
    assert entry["improvement"]["best"]["VC-FB"] == (1.0, 1.0, 1.0)
    same = entry["improvement"]["last"]["MC-FB"]  # the same success rates as FB's
    assert same.point == pytest.approx(0.5) and same.low < 0.5 < same.high
    assert entry["closer"]["best"]["MC-FB"] == (1.0, 1.0, 1.0)  # within the radius, FB 1.0 away
    same = entry["closer"]["last"]["VC-FB"]  # the same final distances as FB's
    assert same.point == pytest.approx(0.5) and same.low < 0.5 < same.high
    assert verdict_didactic(table).outcome == "pending (15 of 30 runs)"

    (one,) = cells(book_grid, "fb_rnd_n100000_no_left_seed0")  # one run: no interval to show
    land(tmp_path, one, 20.0, 10.0, [1.0] * 5, [2.0] * 5)
    partial = didactic_table(load_grid_results(BOOK_GRID, tmp_path), REPS)
    row = partial["datasets"]["rnd-100k, no_left"]["rows"][0]
    assert row["runs"] == 1 and f"{row['best']['distance']:.2f}" == "1.00 (one run)"

    for cell in cells(book_grid, "*_rnd_n100000_no_left_seed*"):
        near = cell.method != "fb"
        land(tmp_path, cell, 300.0 if near else 20.0, 10.0,
             [0.0] * 5 if near else [1.0] * 5, [2.0] * 5)  # fmt: skip
    table = didactic_table(load_grid_results(BOOK_GRID, tmp_path), REPS)
    best, last = verdict_didactic(table, "best"), verdict_didactic(table, "last")
    assert best.outcome == REPRODUCED and len(best.comparisons) == 4
    assert last.outcome == NO_DIFFERENCE
    assert "C2" in str(best) and "best evaluation: reproduced" in str(best)


# ---------------------------------------------------------------------------------------------------
# The aggregate: rliable's statistics and CQL's 100 % line


def land_methods(folder, grid, data, scores, last=None):
    """Land the FB family's cells on ``data``: ``scores[method](seed)`` at the best evaluation."""
    for method in ("fb", "vcfb", "mcfb"):
        for cell in cells(grid, f"{method}_{data}_seed*"):
            value = scores[method](cell.seed)
            land(folder, cell, value, None if last is None else last[method](cell.seed))


def test_training_curves_per_method_and_seed(tmp_path, book_grid):
    folder = tmp_path / "results"
    for cell in cells(book_grid, "*_uniform-reset_no_left_seed[01]"):
        land(folder, cell, 0.0, actor_q=100.0 if cell.method == "fb" else 10.0)
    (cell,) = cells(book_grid, "vcfb_uniform-reset_no_left_seed0")
    with (folder / f"metrics_{cell.run_name}.csv").open("w") as f:
        f.write("step,actor_q,alpha\n500,1.5,0.9\n1000,2.5,0.8\n")
    (cell,) = cells(book_grid, "mcfb_uniform-reset_no_left_seed1")
    (folder / f"metrics_{cell.run_name}.csv").unlink()  # landed without metrics: left out
    results = load_grid_results(BOOK_GRID, folder)
    curves = training_curves(results.select(action_filter="no_left"), ["alpha", "actor_q"])
    assert {label: [e["seed"] for e in entries] for label, entries in curves.items()} == {
        "FB": [0, 1],
        "VC-FB": [0, 1],
        "MC-FB": [0],
    }
    first = curves["VC-FB"][0]
    np.testing.assert_array_equal(first["step"], [500, 1000])
    np.testing.assert_array_equal(first["alpha"], [0.9, 0.8])
    np.testing.assert_array_equal(first["actor_q"], [1.5, 2.5])
    assert "alpha" not in curves["FB"][0] and curves["FB"][1]["actor_q"][-1] == 100.0


def test_task_scores_at_the_best_and_the_last_evaluation():
    def evaluation(step, score, normalized=None):
        result = {"score": score} | ({"normalized_score": normalized} if normalized else {})
        return {"step": step, "mean_score": score, "tasks": {"forward": result}}

    record = {
        "evaluations": [evaluation(0, 1.0, 3.0), evaluation(10, 50.0, 9.0), evaluation(20, 7.0)]
    }
    assert task_scores(record, "best") == {
        "forward": {"step": 10, "score": 50.0, "normalized": 9.0}
    }
    assert task_scores(record, "last") == {
        "forward": {"step": 20, "score": 7.0, "normalized": None}
    }
    with pytest.raises(ValueError, match="unknown evaluation 'first'"):
        task_scores(record, "first")


def test_aggregate_statistics_and_the_cql_normalisation(tmp_path, book_grid):
    fb = lambda seed: {t: 40.0 * seed + k for k, t in enumerate(TASKS)}  # noqa: E731
    land_methods(tmp_path, book_grid, "random", {"fb": fb, "vcfb": fb, "mcfb": fb})
    for cell in cells(book_grid, "cql_random_reach_*"):
        if cell.seed < 2 or cell.task in TASKS[:2]:  # seed 2 has two of its four tasks
            land(tmp_path, cell, 0.0)
    table = aggregate_table(load_grid_results(BOOK_GRID, tmp_path), "random", REPS)
    assert table["methods"]["CQL"]["progress"] == Progress(10, 12)
    assert table["methods"]["CQL"]["runs"] == 2 and "DVC-FB" in table["methods"]
    assert table["notes"] == ["CQL seed 2: 2 of its 4 single-task runs: left out"]
    for which in ("best", "last"):
        normalised = table["normalised"][which]
        assert "methods" not in normalised and "under 1" in normalised["error"]
        pooled = np.array([list(fb(seed).values()) for seed in range(5)])  # runs x tasks
        fb_stats = table["methods"]["FB"][which]
        assert fb_stats["iqm"].point == pytest.approx(scipy_stats.trim_mean(pooled, 0.25, None))
        assert fb_stats["mean"].point == pytest.approx(pooled.mean())
        assert fb_stats["median"].point == pytest.approx(np.median(pooled.mean(0)))
        gap = np.maximum(MAZE.max_return - pooled, 0).mean()
        assert fb_stats["optimality_gap"].point == pytest.approx(gap)
        assert table["improvement"][which]["VC-FB"].point == pytest.approx(0.5)

    for cell in cells(book_grid, "cql_random_reach_*"):
        land(tmp_path, cell, 100.0 + 50.0 * cell.seed)  # now every seed, every task, above 1
    table = aggregate_table(load_grid_results(BOOK_GRID, tmp_path), "random", REPS)
    cql = np.array([[100.0 + 50.0 * seed] * 4 for seed in range(3)])
    normalised = table["normalised"]["best"]
    assert normalised["base_iqm"] == pytest.approx(scipy_stats.trim_mean(cql, 0.25, None))
    expected = 100 * scipy_stats.trim_mean(pooled, 0.25, None) / normalised["base_iqm"]
    assert normalised["methods"]["FB"]["point"] == pytest.approx(expected)
    assert normalised["methods"]["CQL"]["point"] == pytest.approx(100.0)
    assert table["notes"] == []


@pytest.mark.parametrize(
    ("vcfb", "mcfb", "expected"),
    [
        (500.0, 500.0, REPRODUCED),
        (0.0, 0.0, f"{OPPOSITE} in 4 of 4 comparisons"),
        (100.0, 100.0, NO_DIFFERENCE),
        (500.0, 100.0, f"{PARTLY} (2 of 4 comparisons)"),
    ],
)
def test_low_quality_verdict_branches(tmp_path, book_grid, vcfb, mcfb, expected):
    """FB scores 100 + seed on every task; each conservative method a constant + seed."""
    scores = {
        "fb": lambda seed: 100.0 + seed,
        "vcfb": lambda seed: vcfb + seed,
        "mcfb": lambda seed: mcfb + seed,
    }
    land_methods(tmp_path, book_grid, "rnd_n100000", scores)
    results = load_grid_results(BOOK_GRID, tmp_path)
    tables = [aggregate_table(results, d, REPS) for d in ("rnd", "random")]
    assert verdict_low_quality(tables).outcome == "pending (15 of 30 runs)"
    land_methods(tmp_path, book_grid, "random", scores)
    results = load_grid_results(BOOK_GRID, tmp_path)
    tables = [aggregate_table(results, d, REPS) for d in ("rnd", "random")]
    verdict = verdict_low_quality(tables, "last")
    assert verdict.outcome == expected
    assert [c.what for c in verdict.comparisons][:2] == ["P(VC-FB > FB), rnd-100k",
                                                         "P(MC-FB > FB), rnd-100k"]  # fmt: skip


@pytest.mark.parametrize(("conservative", "expected"), [(100.0, REPRODUCED), (0.0, OPPOSITE)])
def test_high_quality_verdict_no_worse_than_fb(tmp_path, book_grid, conservative, expected):
    same = lambda seed: 100.0 + seed  # noqa: E731
    other = lambda seed: conservative + seed  # noqa: E731
    nothing = lambda seed: 0.0  # noqa: E731
    land_methods(tmp_path, book_grid, "uniform-reset", {"fb": same, "vcfb": other, "mcfb": other},
                 last={"fb": nothing, "vcfb": nothing, "mcfb": nothing})  # fmt: skip
    table = high_quality_table(load_grid_results(BOOK_GRID, tmp_path), REPS)
    assert table["methods"]["VC-FB"]["best"]["iqm"].point == pytest.approx(
        scipy_stats.trim_mean(conservative + np.arange(5), 0.25)
    )
    assert table["methods"]["FB"]["last"]["iqm"] == (0.0, 0.0, 0.0)
    assert verdict_high_quality(table, "best").outcome.startswith(expected)
    assert verdict_high_quality(table, "last").outcome == REPRODUCED  # ties are no worse


# ---------------------------------------------------------------------------------------------------
# Values against size and quality; the size ablation


def test_overestimation_table_and_verdict(tmp_path, book_grid):
    level = {"rnd": 10.0, "random": 100.0}  # random (narrower) above rnd, 1k above 10k above 100k
    planned = cells(book_grid, "fb_rnd_n*_seed*") + cells(book_grid, "fb_random_*seed*")
    planned = [c for c in planned if c.n_transitions != 1_000_000 and not c.action_filter]
    q = lambda cell: level[cell.dataset] * 1e5 / (cell.n_transitions or 1e5) + cell.seed  # noqa: E731
    for cell in planned[1:]:
        land(tmp_path, cell, 0.0, actor_q=q(cell))
    table = overestimation_table(load_grid_results(BOOK_GRID, tmp_path), REPS)
    assert verdict_values(table).outcome == "pending (21 of 22 runs)"
    land(tmp_path, planned[0], 0.0, actor_q=q(planned[0]))
    table = overestimation_table(load_grid_results(BOOK_GRID, tmp_path), REPS)
    row = next(r for r in table["rows"] if r["dataset"] == "random" and r["size"] == 100_000)
    assert row["steps"] == [30_000] * 5 and row["actor_q"] == [100.0 + s for s in range(5)]
    assert row["iqm"].point == pytest.approx(scipy_stats.trim_mean(row["actor_q"], 0.25))
    verdict = verdict_values(table)
    assert verdict.outcome == REPRODUCED and len(verdict.comparisons) == 5
    assert all(c.interval == (1.0, 1.0, 1.0) for c in verdict.comparisons)


@pytest.mark.parametrize(
    ("gap_below_1m", "gap_at_1m", "expected"),
    [(300.0, 0.0, REPRODUCED), (300.0, 600.0, OPPOSITE), (0.0, -300.0, PARTLY)],
)
def test_size_ablation_table_and_verdict(tmp_path, book_grid, gap_below_1m, gap_at_1m, expected):
    """The conservative runs score ``gap_below_1m`` above FB at 10k and 100k, ``gap_at_1m`` above
    it at 1M. A gap that shrinks from nothing (0 then -300) is no gain shrinking: not reproduced."""
    for cell in cells(book_grid, "*fb_rnd_n*_seed*"):
        if cell.method in ("fb", "vcfb", "mcfb") and cell.n_transitions != 1_000:
            if cell.action_filter:
                continue  # the didactic runs
            gap = gap_at_1m if cell.n_transitions == 1_000_000 else gap_below_1m
            land(tmp_path, cell, 50.0 + 5 * cell.seed + (gap if cell.method != "fb" else 0.0))
    table = size_table(load_grid_results(BOOK_GRID, tmp_path), REPS)
    assert table["progress"] == Progress(33, 33)
    row = next(r for r in table["rows"] if r["method"] == "VC-FB" and r["size"] == 100_000)
    scores = np.repeat(50.0 + gap_below_1m + 5 * np.arange(5)[:, None], 4, axis=1)
    assert row["best"].point == pytest.approx(scipy_stats.trim_mean(scores, 0.25, None))
    verdict = verdict_size(table, "best", reps=REPS)
    assert verdict.outcome.startswith(expected) and len(verdict.comparisons) == 8
    gain, difference = verdict.comparisons[:2]  # VC-FB at 10k: its gap, then less the gap at 1M
    assert gain.what == "VC-FB's IQM gap over FB at 10k"
    assert gain.interval.point == pytest.approx(gap_below_1m)
    assert difference.interval.point == pytest.approx(gap_below_1m - gap_at_1m)


# ---------------------------------------------------------------------------------------------------
# The rule


def test_the_verdict_rule_for_one_comparison():
    assert outcome(Interval(0.8, 0.6, 0.9), 0.5) == REPRODUCED
    assert outcome(Interval(0.2, 0.1, 0.4), 0.5) == OPPOSITE
    assert outcome(Interval(0.6, 0.5, 0.9), 0.5) == NO_DIFFERENCE  # touching ½ is no evidence
    assert outcome(Interval(0.0, -1.0, 2.0), 0.0) == NO_DIFFERENCE
    assert outcome(Interval(0.4, 0.1, 0.6), 0.5, "no worse") == REPRODUCED
    assert outcome(Interval(0.3, 0.1, 0.45), 0.5, "no worse") == OPPOSITE
    with pytest.raises(ValueError, match="unknown comparison 'worse'; valid choices"):
        outcome(Interval(0.5, 0.5, 0.5), 0.5, "worse")


def test_the_verdict_rule_for_a_claim():
    assert combine_outcomes([REPRODUCED, REPRODUCED]) == REPRODUCED
    assert combine_outcomes([REPRODUCED, NO_DIFFERENCE]) == f"{PARTLY} (1 of 2 comparisons)"
    assert combine_outcomes([REPRODUCED, OPPOSITE]) == f"{OPPOSITE} in 1 of 2 comparisons"
    assert combine_outcomes([NO_DIFFERENCE, NO_DIFFERENCE]) == NO_DIFFERENCE
    with pytest.raises(ValueError, match="at least one comparison"):
        combine_outcomes([])


def test_a_claim_whose_runs_ended_with_some_stopped_early_is_undecided():
    """Every planned run ended, one by a non-finite loss: no verdict can come, nor is one coming."""
    ended = Verdict("C1", None, Progress(21, 22, stopped=1))
    assert ended.outcome == (f"{UNDECIDED} (21 of 22 runs; 1 stopped early by a non-finite loss)")
    assert Verdict("C1", None, Progress(20, 22, stopped=1)).outcome.startswith("pending (20 of")


def test_interval_formats_and_progress_adds():
    assert f"{Interval(1.0, 0.5, 2.25):.1f}" == "1.0 [0.5, 2.2]"
    assert f"{Interval(1.0, 0.5, 2.25):>16.1f}|{Interval(1, 0, 2):<12}|" == (
        "  1.0 [0.5, 2.2]|1 [0, 2]    |"
    )
    assert f"{Interval.over_runs(0.25, 0.25, 0.25, runs=1):.2f}" == "0.25 (one run)"
    assert f"{Interval.over_runs(0.25, 0.2, 0.3, runs=2):.2f}" == "0.25 [0.20, 0.30]"
    assert str(Progress(2, 5) + Progress(1, 3)) == "3 of 8 runs"
    assert not Progress(0, 0).complete and Progress(3, 3).complete
