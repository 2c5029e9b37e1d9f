"""Grids of runs: grid files, the local and Ray backends, skipping finished cells, resuming."""

import json

import pytest

from zsrl.cli import main
from zsrl.sweep import CellResult, Grid, cell_status, grid_status, load_grid, parse_grid, sweep

SMALL = [
    "data.episodes=500",
    "train.eval_every=20",
    "train.checkpoint_every=20",
    "train.log_every=10",
    "eval.episodes=1",
]
GRID = f"""
domain = "point_mass_maze"
scale = "quick"
steps = 40
overrides = {json.dumps(SMALL)}

[[block]]
method = ["fb", "vcfb"]
dataset = "uniform-reset"
seed = 3
"""


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def grid_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("grids") / "two.toml"
    path.write_text(GRID)
    return path


@pytest.fixture(scope="module")
def local_run(grid_file, data_root, tmp_path_factory):
    """The two-cell quick grid on the local process pool."""
    out = tmp_path_factory.mktemp("local")
    results = sweep(load_grid(grid_file), out, workers=2, data_root=data_root, progress=False)
    return out, results


def comparable(record):
    """What must agree between two runs of one cell: all but times, paths and the machine."""
    keep = ("config", "steps_done", "complete", "tasks", "last", "best")
    evaluations = [
        {k: v for k, v in e.items() if k != "eval_time_s"} for e in record["evaluations"]
    ]
    return {k: record[k] for k in keep} | {
        "evaluations": evaluations,
        "sha256": record["dataset"]["sha256"],
    }


def test_blocks_are_products_and_single_task_methods_get_a_cell_per_task():
    cells = parse_grid(
        {
            "scale": "quick",
            "block": [
                {"method": ["fb", "mcfb"], "dataset": "random", "seed": [0, 1, 2]},
                {"method": "cql", "dataset": "random", "seed": 0, "n_transitions": 1000},
                {
                    "name": "slow",
                    "method": "fb",
                    "dataset": "random",
                    "seed": 0,
                    "overrides": ["agent.lr_actor=1e-5"],
                },
            ],
        }
    )
    names = [c.run_name for c in cells]
    assert len(cells) == 6 + 4 + 1
    assert names[:2] == ["fb_random_seed0", "fb_random_seed1"]
    assert "cql_random_n1000_reach_top_left_seed0" in names
    assert names[-1] == "slow_fb_random_seed0"
    assert cells[-1].config().agent.lr_actor == 1e-5
    assert '--set "agent.lr_actor=1e-5"' in cells[-1].command("runs/x")


@pytest.mark.parametrize(
    "grid, message",
    [
        (
            {"block": [{"method": "fb", "dataset": "random", "seed": 0, "sead": 1}]},
            r"block 1: unknown keys \['sead'\]; valid keys: \[.*'seed'",
        ),
        (
            {"block": [{"method": "fbb", "dataset": "random", "seed": 0}]},
            r"cell fbb_random_seed0: unknown method 'fbb'; valid choices: \[.*'fb'",
        ),
        ({"block": [{"method": "fb", "dataset": "random"}]}, r"block 1: no 'seed'"),
        ({"scale": "quick"}, "no \\[\\[block\\]\\]"),
        (
            {"block": [{"method": "fb", "dataset": "random", "seed": 0, "n_transitions": 0}]},
            "n_transitions must be at least 1, got 0",
        ),
        (
            {"block": [{"method": "fb", "dataset": "random", "seed": 0, "overrides": "a=1"}]},
            "overrides must be a list",
        ),
        (
            {
                "block": [
                    {"method": "fb", "dataset": "random", "seed": 0},
                    {"method": "fb", "dataset": "random", "seed": 0, "steps": 5},
                ]
            },
            "two different cells share the directory 'fb_random_seed0'",
        ),
        ({"block": [1, 2]}, "block 1 is 1, not a table of keys"),
        (
            {"block": [{"method": 3, "dataset": "random", "seed": 0}]},
            "block 1: method must be a string or a non-empty list of them, got 3",
        ),
        (
            {"block": [{"method": [], "dataset": "random", "seed": 0}]},
            "method must be .*got \\[\\]",
        ),
        (
            {
                "block": [
                    {"method": "cql", "dataset": "random", "seed": 0, "tasks": "reach_top_left"}
                ]
            },
            "tasks must be a list of task names, got 'reach_top_left'",
        ),
        (
            {"block": [{"method": "fb", "dataset": "random", "seed": True}]},
            "seed must be an integer or a non-empty list of them, got True",
        ),
        (
            {"block": [{"name": "../../out", "method": "fb", "dataset": "random", "seed": 0}]},
            "name '../../out' must be a plain directory name",
        ),
    ],
)
def test_bad_grid_files_are_one_clear_error(grid, message):
    with pytest.raises(ValueError, match=message):
        parse_grid(grid)


def test_a_bad_grid_file_fails_before_any_file_is_written(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('scale = "quick"\n[[block]]\nmethod = "fb"\ndataset = "rdn"\nseed = 0\n')
    out = tmp_path / "runs"
    assert main(["sweep", str(bad), "--out-root", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'rdn'" in err and "uniform-reset" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.toml"], "grid file missing.toml does not exist"),
        (["{tmp}"], "grid file {tmp} cannot be read: Is a directory"),
        (["{grid}", "--workers", "0"], "workers must be a positive integer, got 0"),
        (["{grid}", "--results", "{grid}"], "--results {grid} is a file, not a folder"),
    ],
)
def test_bad_sweep_arguments_are_one_line_before_anything_is_printed(
    grid_file, tmp_path, capsys, args, message
):
    argv = [a.format(grid=grid_file, tmp=tmp_path) for a in args]
    assert main(["sweep", *argv, "--out-root", str(tmp_path / "runs")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"error: {message.format(tmp=tmp_path, grid=grid_file)}\n"
    assert not (tmp_path / "runs").exists()


def test_local_grid_runs_every_cell_and_skips_them_when_run_again(local_run, grid_file, data_root):
    out, results = local_run
    assert [r.status for r in results] == ["done", "done"]
    assert [r.run_name for r in results] == ["fb_uniform-reset_seed3", "vcfb_uniform-reset_seed3"]
    for r in results:
        record = json.loads((out / r.run_name / "record.json").read_text())
        assert record["complete"] and record["steps_done"] == 40
        assert record["command"].startswith("python -m zsrl train --method ")
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = sweep(load_grid(grid_file), out, data_root=data_root, progress=False)
    assert [r.status for r in again] == ["skipped", "skipped"]
    assert stamps == {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


def test_ray_backend_gives_the_local_records(local_run, grid_file, data_root, tmp_path):
    ray = pytest.importorskip("ray")  # a dev dependency: installed by `make test`
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        results = sweep(
            load_grid(grid_file),
            tmp_path / "ray",
            backend="ray",
            data_root=data_root,
            results=tmp_path / "collected",
            progress=False,
        )
    finally:
        ray.shutdown()
    assert [r.status for r in results] == ["done", "done"]
    local_out, _ = local_run
    for r in results:
        ours = json.loads((tmp_path / "ray" / r.run_name / "record.json").read_text())
        theirs = json.loads((local_out / r.run_name / "record.json").read_text())
        assert comparable(ours) == comparable(theirs)
        collected = tmp_path / "collected" / f"record_{r.run_name}.json"
        assert json.loads(collected.read_text()) == ours
        assert (tmp_path / "collected" / f"metrics_{r.run_name}.csv").exists()
    summary = json.loads((tmp_path / "collected" / "grid.json").read_text())
    assert summary["grid"] == GRID and len(summary["cells"]) == 2


def test_a_cell_killed_midway_resumes_to_the_uninterrupted_record(
    local_run, grid_file, data_root, tmp_path, monkeypatch
):
    from zsrl.train import Trainer

    grid = load_grid(grid_file)
    cell = grid.cells[1]  # vcfb
    out = tmp_path / "runs"
    save = Trainer.save_checkpoint

    def save_then_die(self):
        save(self)
        raise KeyboardInterrupt  # killed right after its first checkpoint (step 20 of 40)

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_die)
    trainer = Trainer(cell.config(), out / cell.run_name, data_root=data_root, progress=False)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    monkeypatch.undo()
    assert cell_status(out / cell.run_name) == "partial"
    results = sweep(Grid([cell]), out, data_root=data_root, progress=False)
    assert results[0].status == "done"
    resumed = json.loads((out / cell.run_name / "record.json").read_text())
    whole = json.loads((local_run[0] / cell.run_name / "record.json").read_text())
    assert comparable(resumed) == comparable(whole)
    rows = (out / cell.run_name / "metrics.csv").read_text().splitlines()[1:]
    steps = [row.split(",")[0] for row in rows]
    assert steps == sorted(set(steps), key=int)  # each logged step once


def test_sweep_status_lists_cells_by_state(local_run, grid_file, capsys):
    out, _ = local_run
    assert main(["sweep", str(grid_file), "--out-root", str(out), "--status"]) == 0
    text = capsys.readouterr().out
    assert "2 cells" in text and "2 done" in text and "done     fb_uniform-reset_seed3" in text


def test_the_committed_grid_files_resolve_every_cell():
    from pathlib import Path

    grids = sorted((Path(__file__).parents[1] / "results" / "grids").glob("*.toml"))
    assert {g.stem for g in grids} >= {"book_maze", "paper_maze", "pilots_fb_stability"}
    for path in grids:
        grid = load_grid(path)
        assert len(grid) > (100 if path.stem in ("book_maze", "paper_maze") else 5), path
        assert len({c.run_name for c in grid.cells}) == len(grid)


def test_a_run_stopped_by_a_non_finite_loss_lands_its_record_and_a_crash_does_not(
    grid_file, tmp_path, monkeypatch, capsys
):
    """The results folder shows which cells stopped early for good; other failures leave nothing."""

    def fail(jobs, workers, data_root):
        (fb, fb_out), (vcfb, vcfb_out) = jobs
        (tmp_path / "runs" / fb.run_name).mkdir(parents=True)
        stopped = {"complete": False, "stopped": "non-finite ['fb_loss'] near step 20"}
        (tmp_path / "runs" / fb.run_name / "record.json").write_text(json.dumps(stopped))
        return iter([CellResult(c.run_name, o, "failed", error="x") for c, o in jobs])

    monkeypatch.setattr("zsrl.sweep._run_local", fail)
    monkeypatch.setattr("zsrl.sweep._prepare_datasets", lambda cells, root: None)
    results = tmp_path / "results"
    sweep(load_grid(grid_file), tmp_path / "runs", progress=False, results=results)
    landed = sorted(p.name for p in results.glob("record_*.json"))
    assert landed == ["record_fb_uniform-reset_seed3.json"]
    log = capsys.readouterr().out.splitlines()  # a line per cell as it ends, progress bar or not
    assert [line.split()[:3] for line in log] == [
        ["[1/2]", "failed", "fb_uniform-reset_seed3"],
        ["[2/2]", "failed", "vcfb_uniform-reset_seed3"],
    ]


def test_status_estimates_the_time_left_from_the_finished_cells(tmp_path, capsys):
    """Each cell left costs the mean wall time of its method's finished cells (of all finished
    cells where its method has none), less the share of its updates already done."""
    grid_file = tmp_path / "three.toml"
    grid_file.write_text(GRID.replace("seed = 3", "seed = [3, 4]"))
    out = tmp_path / "runs"
    records = {  # fb seed 3: done in 2 h; vcfb seed 3: a quarter done; fb and vcfb seed 4: to start
        "fb_uniform-reset_seed3": {"complete": True, "wall_time_s": 7200},
        "vcfb_uniform-reset_seed3": {"complete": False, "steps_done": 10,
                                     "config": {"train": {"steps": 40}}},
    }  # fmt: skip
    for name, record in records.items():
        (out / name).mkdir(parents=True)
        (out / name / "record.json").write_text(json.dumps(record))
    status = grid_status(load_grid(grid_file), out)
    assert (status.done, status.partial, sorted(status.todo)) == (
        ["fb_uniform-reset_seed3"],
        ["vcfb_uniform-reset_seed3"],
        ["fb_uniform-reset_seed4", "vcfb_uniform-reset_seed4"],
    )
    assert status.hours_left(load_grid(grid_file)) == pytest.approx(2 * 0.75 + 2 + 2)
    assert main(["sweep", str(grid_file), "--out-root", str(out), "--status"]) == 0
    assert "about 6 cell-hours at the wall times of the 1 finished cells, 3 h on 2 workers" in (
        capsys.readouterr().out
    )
    assert (
        grid_status(load_grid(grid_file), tmp_path / "none").hours_left(load_grid(grid_file))
        is None
    )


def test_first_starts_the_cells_it_names_before_the_others(
    grid_file, tmp_path, monkeypatch, capsys
):
    """One pool, the named cells submitted first; a pattern that matches nothing is an error."""
    submitted = []

    def record_jobs(jobs, workers, data_root):  # runs nothing: each cell reports a failure
        submitted.extend(cell.run_name for cell, _ in jobs)
        return iter(
            [CellResult(cell.run_name, out, "failed", error="not run") for cell, out in jobs]
        )

    monkeypatch.setattr("zsrl.sweep._run_local", record_jobs)
    monkeypatch.setattr("zsrl.sweep._prepare_datasets", lambda cells, root: None)
    grid = load_grid(grid_file)
    sweep(grid, tmp_path, progress=False)
    assert submitted == ["fb_uniform-reset_seed3", "vcfb_uniform-reset_seed3"]  # the grid's order
    submitted.clear()
    sweep(grid, tmp_path, progress=False, first=["vcfb_*"])
    assert submitted == ["vcfb_uniform-reset_seed3", "fb_uniform-reset_seed3"]
    with pytest.raises(ValueError, match=r"no cell of the grid matches \['sac_\*'\]"):
        sweep(grid, tmp_path, progress=False, first=["sac_*"])
    code = main(["sweep", str(grid_file), "--out-root", str(tmp_path), "--first", "sac_*"])
    assert code == 2 and "no cell of the grid matches ['sac_*']" in capsys.readouterr().err


def test_only_runs_the_cells_it_names(grid_file, data_root, tmp_path, capsys):
    """Two sweeps can share a grid: `--only fb_*` trains the FB cell and leaves the other alone."""
    grid = load_grid(grid_file)
    results = sweep(grid, tmp_path, data_root=data_root, progress=False, only=["fb_*"])
    status = {r.run_name: r.status for r in results}
    assert status == {"fb_uniform-reset_seed3": "done", "vcfb_uniform-reset_seed3": "not selected"}
    assert not (tmp_path / "vcfb_uniform-reset_seed3").exists()
    code = main(["sweep", str(grid_file), "--out-root", str(tmp_path), "--only", "cql_*"])
    err = capsys.readouterr().err
    assert code == 2 and "no cell of the grid matches ['cql_*']; its cells: ['fb_uniform" in err
