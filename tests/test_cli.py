"""The command line: help, clear errors for bad input, collect/train/eval."""

import json
import os
import subprocess
import sys

import pytest

from zsrl.cli import main
from zsrl.config import RunConfig, apply_overrides, preset
from zsrl.methods import get_method, method_names

QUICK = ["--scale", "quick", "--no-progress"]
SMALL = [
    "--set",
    "data.episodes=500",
    "train.steps=20",
    "train.eval_every=20",
    "eval.episodes=1",
    "train.log_every=10",
    "train.checkpoint_every=20",
]


@pytest.fixture()
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data"))


def run_main(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_runs():
    for args in ([], ["train"], ["collect"], ["eval"], ["sweep"]):
        result = subprocess.run(
            [sys.executable, "-m", "zsrl", *args, "--help"],
            capture_output=True,
            text=True,
            env={**os.environ},
        )
        assert result.returncode == 0 and "usage" in result.stdout


@pytest.mark.parametrize(
    "flag, value, listed",
    [
        ("--method", "dqn", "fb"),
        ("--domain", "cartpole", "point_mass_maze"),
        ("--scale", "huge", "quick"),
        ("--dataset", "rnd-10m", "uniform-reset"),
        ("--tasks", "reach_moon", "reach_top_left"),
        ("--action-filter", "no_sideways", "no_left"),
    ],
)
def test_bad_choices_name_the_value_and_list_the_valid_ones(flag, value, listed, capsys, tmp_path):
    code, _, err = run_main(["train", *QUICK, flag, value, "--out", str(tmp_path)], capsys)
    assert code == 2
    assert repr(value) in err and listed in err


def test_bad_override_is_an_error(capsys, tmp_path):
    code, _, err = run_main(["train", "--set", "agent.lr_critic=1", "--out", str(tmp_path)], capsys)
    assert code == 2 and "agent.lr_critic" in err and "lr_fb" in err


def test_collect_train_eval(capsys, tmp_path, data_dir):
    code, out, _ = run_main(["collect", "--episodes", "500", "--data-dir", data_dir], capsys)
    assert code == 0 and "5000 transitions" in out
    run = tmp_path / "run"
    code, out, err = run_main(
        ["train", *QUICK, *SMALL, "--out", str(run), "--data-dir", data_dir], capsys
    )
    assert code == 0, err
    assert "reach_bottom_right" in out
    record = json.loads((run / "record.json").read_text())
    assert record["command"].startswith("python -m zsrl ")
    code, out, _ = run_main(["eval", str(run), "--data-dir", data_dir], capsys)
    assert code == 0 and "step 20" in out and "final distance" in out


def test_corrupt_dataset_is_named(capsys, tmp_path, data_dir):
    run_main(["collect", "--episodes", "500", "--data-dir", data_dir], capsys)
    (path,) = [p for p in os.scandir(data_dir) if p.name.endswith(".npz")]
    with open(path.path, "r+b") as f:
        f.truncate(500)
    code, _, err = run_main(
        ["train", *QUICK, *SMALL, "--out", str(tmp_path), "--data-dir", data_dir], capsys
    )
    assert code == 2 and path.name in err


def test_eval_without_checkpoint_is_an_error(capsys, tmp_path):
    code, _, err = run_main(["eval", str(tmp_path)], capsys)
    assert code == 2 and "no checkpoint" in err


def test_config_round_trip_and_strict_keys():
    cfg = preset("fb", "point_mass_maze", "paper")
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    # the maze overrides (reference: ref-fb-optimisation)
    assert cfg.agent.z_dim == 100 and cfg.agent.discount == 0.99
    assert cfg.agent.preprocessor_hidden == 1024 and cfg.agent.batch_size == 512
    with pytest.raises(ValueError, match="unknown config keys"):
        RunConfig.from_dict({**cfg.to_dict(), "optimiser": "sgd"})
    assert apply_overrides(cfg, ["agent.lr_actor=3e-5"]).agent.lr_actor == 3e-5


@pytest.mark.parametrize("method", ["vcfb", "mcfb", "dvcfb"])
def test_conservative_methods_train_and_eval(method, capsys, tmp_path, data_dir):
    run = tmp_path / method
    argv = ["train", "--method", method, *QUICK, *SMALL, "--out", str(run), "--data-dir", data_dir]
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    record = json.loads((run / "record.json").read_text())
    assert record["method"] == method and record["config"]["agent"]["lr_actor"] == 3e-5
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"penalty", "alpha", "q_data", "q_uniform", "q_policy"} <= set(header)
    code, out, _ = run_main(["eval", str(run), "--data-dir", data_dir], capsys)
    assert code == 0 and "q_uniform" in out


@pytest.mark.parametrize("scale", ["book", "paper"])
@pytest.mark.parametrize("method", method_names("baseline"))
def test_baselines_train_and_eval_at_the_larger_scales(method, scale, capsys, tmp_path, data_dir):
    """Two updates with each scale's networks and batch (quick scale: the trainer's own tests)."""
    run = tmp_path / method
    tasks = ["--tasks", "reach_top_left"] if get_method(method).single_task else []
    argv = ["train", "--method", method, "--scale", scale, *tasks, "--no-progress"]
    steps = ["train.steps=2", "train.eval_every=2", "train.checkpoint_every=2"]  # after SMALL's
    code, _, err = run_main(
        [*argv, *SMALL, *steps, "--out", str(run), "--data-dir", data_dir], capsys
    )
    assert code == 0, err
    record = json.loads((run / "record.json").read_text())
    assert record["scale"] == scale and record["steps_done"] == 2 and record["complete"]
    assert record["config"]["agent"] == preset(method, "point_mass_maze", scale).to_dict()["agent"]
    assert sorted(record["evaluations"][-1]["scores"]) == sorted(record["tasks"])
    code, out, _ = run_main(["eval", str(run), "--data-dir", data_dir], capsys)
    assert code == 0 and "step 2" in out


def test_book_maze_preset_is_the_configuration_that_learns_the_maze():
    """results/fb_maze_uniform-reset_book_gamma995/: γ 0.995, τ 0.005, actor lr 3e-5 at book scale."""
    book = preset("fb", "point_mass_maze", "book").agent
    assert (book.discount, book.target_tau, book.lr_actor) == (0.995, 0.005, 3e-5)
    paper = preset("fb", "point_mass_maze", "paper").agent
    # the paper's values (reference: ref-fb-optimisation)
    assert (paper.discount, paper.target_tau, paper.lr_actor) == (0.99, 0.01, 1e-4)


@pytest.mark.parametrize("domain", ["walker", "quadruped", "jaco", "walker2d", "halfcheetah"])
def test_domains_without_free_space_default_to_random_data(domain, capsys):
    """`uniform-reset` needs the maze's free-space sampler; every other domain's runs default to
    `random`, and the printed config says why."""
    assert preset("fb", "point_mass_maze", "quick").data.name == "uniform-reset"
    cfg = preset("fb", domain, "paper")
    assert cfg.data.name == "random"
    # the paper's values outside the maze (reference: ref-fb-optimisation)
    assert cfg.agent.z_dim == 50 and cfg.agent.discount == 0.98
    code, out, _ = run_main(["config", "--domain", domain, "--scale", "quick"], capsys)
    assert code == 0 and "data.name = 'random'" in out and f"the {domain} domain's default" in out


def test_runs_from_files_are_named_after_the_file():
    from pathlib import Path

    from zsrl.cli import default_out

    cfg = apply_overrides(
        preset("fb", "walker2d", "quick"),
        ["data.source='d4rl'", "data.path='/data/walker2d_medium-v2.hdf5'"],
    )
    assert default_out(cfg) == Path("runs/fb_walker2d_d4rl-walker2d_medium-v2.hdf5_quick_seed42")
