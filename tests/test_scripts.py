"""The result scripts (rollouts, aggregate, overestimation) on two tiny trained runs."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from zsrl.config import apply_overrides, preset
from zsrl.envs.point_mass_maze.maps import EXTENT, coverage_histogram
from zsrl.losses import orthonormality_loss
from zsrl.plots import effective_rank, read_metrics
from zsrl.record import seal
from zsrl.train import Trainer, _save_atomically, load_checkpoint, load_run

pytest.importorskip("matplotlib")

TASKS = ["reach_top_left", "reach_top_right"]
SMALL = [
    "data.episodes=300",
    "train.steps=20",
    "train.log_every=10",
    "train.eval_every=10",
    "eval.episodes=2",
    f"eval.tasks={json.dumps(TASKS)}",
]


def script(name):
    path = Path(__file__).parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    data_root = tmp_path_factory.mktemp("data")
    base = tmp_path_factory.mktemp("runs")
    out = {}
    for method, seed in (("fb", 0), ("fb", 1), ("vcfb", 0)):
        cfg = apply_overrides(
            preset(method, "point_mass_maze", "quick"), [*SMALL, f"train.seed={seed}"]
        )
        run_dir = base / f"{method}_seed{seed}"
        record = Trainer(cfg, run_dir, command="pytest", data_root=data_root, progress=False).run()
        out[(method, seed)] = (run_dir, record)
    return data_root, out


def test_rollouts_redraw_the_best_evaluation(tmp_path, runs):
    data_root, out = runs
    run_dir, record = out[("vcfb", 0)]
    stem = tmp_path / "roll"
    argv = ["--run", f"VC={run_dir}", "--weights", "best", "--episodes", "2"]
    argv += ["--data-dir", str(data_root), "--out", str(stem)]
    assert script("rollouts").main(argv) == 0
    saved = json.loads(stem.with_suffix(".json").read_text())
    (entry,) = saved["runs"]
    assert entry["step"] == record["best"]["step"]
    for task in TASKS:  # the same seed and weights as the best evaluation: the same returns
        assert entry["tasks"][task]["score"] == pytest.approx(record["best"]["scores"][task])
    paths = np.load(stem.with_suffix(".npz"))
    assert paths[f"VC/{TASKS[0]}"].shape == (2, 201, 2)
    assert stem.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_rollouts_with_both_weights_draw_each_run_twice(tmp_path, runs):
    """Each run is drawn with its last and its best weights, each from its own file: here the best
    weights are another seed's last ones (same data, same step), so the two drawings score as the
    two seeds' last evaluations."""
    data_root, out = runs
    (run_dir, record), (other_dir, other) = out[("fb", 0)], out[("fb", 1)]
    run_copy = tmp_path / "run"
    shutil.copytree(run_dir, run_copy)
    best = load_checkpoint(run_copy / "best_model.pt")
    best["model"] = load_checkpoint(other_dir / "checkpoint.pt")["agent"]["model"]
    _save_atomically(best, run_copy / "best_model.pt")
    stem = tmp_path / "both"
    argv = ["--run", f"FB={run_copy}", "--weights", "last", "best"]  # episodes: the runs' (2)
    assert script("rollouts").main([*argv, "--data-dir", str(data_root), "--out", str(stem)]) == 0
    saved = json.loads(stem.with_suffix(".json").read_text())
    assert [(r["label"], r["weights"]) for r in saved["runs"]] == [
        ("FB, last", "last"),
        ("FB, best", "best"),
    ]
    for entry, expected in zip(saved["runs"], (record, other), strict=True):
        assert entry["episodes"] == 2
        for task in TASKS:
            score = expected["last"]["scores"][task]
            assert entry["tasks"][task]["score"] == pytest.approx(score, rel=1e-6, abs=0)
    assert record["last"]["scores"][TASKS[0]] != pytest.approx(other["last"]["scores"][TASKS[0]])
    paths = np.load(stem.with_suffix(".npz"))
    assert set(paths) == {f"FB, {w}/{t}" for w in ("last", "best") for t in TASKS}


def test_aggregate_compares_methods(tmp_path, runs):
    _, out = runs
    stem = tmp_path / "agg"
    argv = [
        "--method",
        f"FB={out[('fb', 0)][0].parent}/fb_seed*",
        "--method",
        f"VC={out[('vcfb', 0)][0]}",
    ]
    assert script("aggregate").main([*argv, "--out", str(stem), "--normalize-to", "FB"]) == 0
    saved = json.loads(stem.with_suffix(".json").read_text())
    assert saved["methods"]["FB"]["runs"] == 2 and saved["methods"]["VC"]["runs"] == 1
    assert set(saved["probability_of_improvement"]) == {"VC"}
    normalised = saved["normalised"]  # tiny runs may score 0: then it says why there is no 100 %
    assert normalised["to"] == "FB" and ("error" in normalised or "methods" in normalised)
    assert saved["command"].startswith("python scripts/aggregate.py --method 'FB=")
    with pytest.raises(SystemExit):
        script("aggregate").main(["--method", "X=/nonexistent/*", "--out", str(stem)])


def test_run_table_rounds_actor_q_without_a_negative_zero(tmp_path):
    (tmp_path / "metrics.csv").write_text("step,actor_q\n10,-0.2\n20,-1234.6\n")
    assert script("run_table").actor_q_at(tmp_path, [5, 10, 20]) == ["-", "0", "-1,235"]


def test_run_table_has_a_row_per_run_from_its_record(runs, capsys):
    _, out = runs
    dirs = [out[key][0] for key in (("vcfb", 0), ("fb", 1), ("fb", 0))]
    assert script("run_table").main([*map(str, dirs), "--q-at", "20", "10000"]) == 0
    head, rule, *rows = capsys.readouterr().out.strip().splitlines()
    assert "actor Q at 0.02k" in head and len(rows) == 3
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert [c[:2] for c in cells] == [["FB", "0"], ["FB", "1"], ["VC-FB", "0"]]  # sorted
    record = out[("fb", 0)][1]
    best = max(record["evaluations"], key=lambda e: e["mean_score"])
    assert cells[0][2].startswith(f"{best['mean_score']:.1f} ({best['step'] / 1000:g}k: ")
    assert cells[0][3] == f"{record['evaluations'][-1]['mean_score']:.1f}"
    metrics = read_metrics(out[("fb", 0)][0] / "metrics.csv")
    assert cells[0][4] == f"{round(float(metrics['actor_q'][metrics['step'] <= 20][-1])):,}"
    # the last row at or before 10k
    assert cells[0][5] == f"{round(float(metrics['actor_q'][-1])):,}"
    assert cells[0][6] == f"{record['steps_done'] / 1000:g}k"


def test_run_table_names_each_runs_departures_and_metrics(runs, capsys, tmp_path):
    _, out = runs
    run_dir, record = out[("fb", 0)]
    changed = json.loads(json.dumps(record))
    changed["config"]["agent"]["target_heads"] = "mean"
    changed["config"]["agent"]["lr_b_coefficient"] = 0.1
    (tmp_path / "record_x.json").write_text(json.dumps(seal(changed)))  # a record made so
    (tmp_path / "metrics_x.csv").write_text((run_dir / "metrics.csv").read_text())
    argv = [str(run_dir), str(tmp_path / "record_x.json"), "--departures"]
    argv += ["--at", "20", "--metrics", "fb_off_diag", "q_data", "nothing"]
    assert script("run_table").main(argv) == 0
    head, _, *rows = capsys.readouterr().out.strip().splitlines()
    assert head.startswith("| settings |") and "fb_off_diag at 0.02k" in head
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert sorted(c[0] for c in cells) == ["lr_b_coefficient 0.1, target_heads mean", "preset"]
    metrics = read_metrics(run_dir / "metrics.csv")
    off_diag = float(metrics["fb_off_diag"][metrics["step"] <= 20][-1])
    assert cells[0][-3] == f"{round(off_diag):,}" and cells[0][-1] == "-"


def test_overestimation_reads_the_logged_q(tmp_path, runs):
    _, out = runs
    stem = tmp_path / "fig2"
    run_dir, record = out[("fb", 0)]
    argv = ["--run", f"random/1000={run_dir}", "--out", str(stem)]
    assert script("overestimation").main(argv) == 0
    (entry,) = json.loads(stem.with_suffix(".json").read_text())["runs"]
    last_row = (run_dir / "metrics.csv").read_text().splitlines()[-1].split(",")
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert entry["actor_q_last"] == pytest.approx(float(last_row[header.index("actor_q")]))
    assert entry["best_mean_return"] == pytest.approx(record["best"]["mean_score"])
    with pytest.raises(SystemExit):
        script("overestimation").main(["--run", "random=x", "--out", str(stem)])


def test_value_maps_average_q_over_the_action_fans(tmp_path, runs):
    data_root, out = runs
    run_dir, _ = out[("fb", 0)]
    stem = tmp_path / "maps"
    argv = ["--run", f"FB={run_dir}", "--task", TASKS[1], "--bins", "12", "--weights", "last"]
    module = script("value_maps")
    assert module.main([*argv, "--data-dir", str(data_root), "--out", str(stem)]) == 0
    maps = np.load(stem.with_suffix(".npz"))
    left, right = maps["FB/left"], maps["FB/right"]
    assert left.shape == right.shape == (12, 12)
    walls = np.isnan(left)
    assert walls.any() and not walls.all() and np.array_equal(walls, np.isnan(right))
    fan_left, fan_right = module.action_fans()
    assert (fan_left[:, 0] < 0).all() and (fan_right[:, 0] > 0).all()
    saved = json.loads(stem.with_suffix(".json").read_text())
    assert saved["runs"][0]["mean_left_minus_right"] == pytest.approx(
        float(np.nanmean(left - right)), rel=1e-5
    )
    policy, reward, coverage = maps["FB/policy"], maps["FB/reward"], maps["FB/coverage"]
    assert np.array_equal(np.isnan(policy), walls) and np.array_equal(np.isnan(reward), walls)
    trainer, _ = load_run(run_dir, "last", data_root=data_root)
    np.testing.assert_array_equal(coverage, coverage_histogram(trainer.dataset, 12).T)  # [y, x]
    row, col = np.unravel_index(np.nanargmax(policy), policy.shape)
    centres = np.linspace(-EXTENT, EXTENT, 13)[:-1] + EXTENT / 12  # the 12 cell centres
    x, y = saved["runs"][0]["argmax_policy_value"]
    assert (x, y) == pytest.approx((centres[col], centres[row]))


def test_divergence_reads_q_level_and_rank(tmp_path, runs):
    _, out = runs
    stem = tmp_path / "div"
    argv = ["--run", f"FB={out[('fb', 0)][0]}", "--run", f"VC={out[('vcfb', 0)][0]}"]
    assert script("divergence").main([*argv, "--out", str(stem)]) == 0
    saved = json.loads(stem.with_suffix(".json").read_text())
    assert [r["label"] for r in saved["runs"]] == ["FB", "VC"]
    for entry, key in zip(saved["runs"], [("fb", 0), ("vcfb", 0)], strict=True):
        metrics = read_metrics(out[key][0] / "metrics.csv")
        assert entry["target_M_last"] == pytest.approx(metrics["target_M"][-1])
        assert 0 < entry["b_rank_last"] <= 16  # d = 16 at quick scale
    assert stem.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_effective_rank_from_the_ortho_loss():
    d, n = 8, 4000
    rng = np.random.default_rng(0)
    for rank in (1, 4, 8):  # B uniform on the √d sphere of a rank-dimensional subspace
        B = np.zeros((n, d))
        g = rng.standard_normal((n, rank))
        B[:, :rank] = np.sqrt(d) * g / np.linalg.norm(g, axis=1, keepdims=True)
        ortho = orthonormality_loss(torch.as_tensor(B), coefficient=2.0).item()
        assert effective_rank(ortho, d, coefficient=2.0) == pytest.approx(rank, rel=0.05)
