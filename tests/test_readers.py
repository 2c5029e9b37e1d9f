"""File readers: ExORL directories and D4RL HDF5 files, read back exactly and fed to the trainer."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from zsrl.config import apply_overrides, preset
from zsrl.data import Dataset, DatasetError, collect, default_spec, get_source
from zsrl.data.readers import d4rl_normalized_score, read_d4rl, read_exorl
from zsrl.data.readers.d4rl import D4RL_REFERENCE_RETURNS
from zsrl.envs import get_domain
from zsrl.train import Trainer

MAZE = get_domain("point_mass_maze")
TASK = "reach_top_left"


@pytest.fixture(scope="module")
def collected() -> Dataset:
    """Three random maze episodes of our collector (3 x 1000 transitions)."""
    return collect(default_spec("point_mass_maze", "random", episodes=3), progress=False)


def write_exorl(folder: Path, data: Dataset) -> list[Path]:
    """``data``'s episodes as ExORL episode files in ``folder/buffer``: T+1 rows each, row 0 the
    reset state with a dummy action."""
    buffer = folder / "buffer"
    buffer.mkdir(parents=True)
    files = []
    for index, episode in enumerate(np.unique(data.episode)):
        rows = np.flatnonzero(data.episode == episode)  # T
        steps = len(rows)
        file = buffer / f"20220101T000000_{index}_{steps}.npz"
        np.savez_compressed(
            file,
            observation=np.r_[data.observation[rows[:1]], data.next_observation[rows]],  # T+1 x O
            action=np.r_[np.zeros((1, 2), np.float32), data.action[rows]],  # T+1 x A
            reward=np.zeros((steps + 1, 1), np.float32),
            discount=np.ones((steps + 1, 1), np.float32),
            physics=np.r_[data.physics[rows[:1]], data.next_physics[rows]],  # T+1 x P
        )
        files.append(file)
    return files


def run_config(method: str, *settings: str):
    quick = ["train.steps=20", "train.eval_every=10", "train.log_every=10"]
    quick += ["train.checkpoint_every=10", "eval.episodes=1", f"eval.tasks=['{TASK}']"]
    return apply_overrides(preset(method, "point_mass_maze", "quick"), [*settings, *quick])


def test_an_exorl_directory_gives_back_the_collected_transitions(collected, tmp_path):
    write_exorl(tmp_path / "random", collected)
    for path in (tmp_path / "random", tmp_path / "random" / "buffer"):  # the agent dir or buffer/
        data = read_exorl(path, "point_mass_maze")
        for name in ("observation", "action", "next_observation", "physics", "next_physics"):
            np.testing.assert_array_equal(getattr(data, name), getattr(collected, name), name)
        np.testing.assert_array_equal(data.episode, collected.episode)
        np.testing.assert_array_equal(data.step, collected.step)
        for task in (TASK, "reach_bottom_right"):
            np.testing.assert_array_equal(
                data.rewards(MAZE.task(task)), collected.rewards(MAZE.task(task))
            )
        assert data.terminal is None and data.reward is None
        meta = data.meta
        assert meta["source"] == "exorl" and meta["name"] == "exorl-random"
        assert meta["path"] == str(path)
        assert (meta["episodes"], meta["transitions"]) == (3, 3000)
        # the maze observes its physics state (x, y, vx, vy): the stored observations come back
        assert meta["observe_check"]["matches"] and meta["observe_check"]["max_abs_error"] == 0.0


def test_exorl_observations_the_domain_does_not_reproduce_are_recorded(collected, tmp_path):
    files = write_exorl(tmp_path / "shifted", collected)
    with np.load(files[1]) as npz:
        arrays = dict(npz)
    arrays["observation"] = arrays["observation"] + 0.5
    np.savez_compressed(files[1], **arrays)
    with pytest.warns(UserWarning, match="observe\\(physics\\) differs"):
        data = read_exorl(tmp_path / "shifted", "point_mass_maze")
    assert not data.meta["observe_check"]["matches"]


def test_damaged_exorl_files_are_one_clear_error_naming_the_file(collected, tmp_path):
    files = write_exorl(tmp_path / "wide", collected)
    with np.load(files[2]) as npz:
        arrays = dict(npz)
    arrays["observation"] = np.c_[arrays["observation"], np.zeros(len(arrays["observation"]))]
    np.savez_compressed(files[2], **arrays)
    with pytest.raises(DatasetError, match=f"{files[2]}: observation has shape \\(1001, 5\\)"):
        read_exorl(tmp_path / "wide", "point_mass_maze")

    files = write_exorl(tmp_path / "cut", collected)
    content = files[0].read_bytes()
    files[0].write_bytes(content[: len(content) // 2])
    with pytest.raises(DatasetError, match=f"{files[0]} is truncated or corrupt"):
        read_exorl(tmp_path / "cut", "point_mass_maze")

    def damaged(name: str, change) -> Path:
        """The collected episodes in ExORL files, the second file's arrays changed by ``change``."""
        files = write_exorl(tmp_path / name, collected)
        with np.load(files[1]) as npz:
            arrays = dict(npz)
        change(arrays)
        np.savez_compressed(files[1], **arrays)
        return files[1]

    def dummy(arrays):  # row 0's action is the reset's: no data, whatever it holds
        arrays["action"][0] = [5.0, -5.0]

    read_exorl(damaged("dummy", dummy).parents[1], "point_mass_maze")
    for name, change, words in [
        ("strong", lambda a: a["action"].__setitem__((5, 1), 7.0),
         "'s action 5 is \\[.*7.0\\], outside domain 'point_mass_maze''s range \\[-1.0, 1.0\\] in "
         "dimension 1"),
        ("nan", lambda a: a["physics"].__setitem__((9, 0), np.nan),
         "'s physics are not all finite \\(row 9\\)"),
        ("short", lambda a: [a.__setitem__(k, a[k][:1]) for k in list(a)],
         " holds 1 step\\(s\\): no transition"),
        ("keyless", lambda a: a.pop("physics"), " lacks arrays \\['physics'\\]"),
    ]:  # fmt: skip
        file = damaged(name, change)
        with pytest.raises(DatasetError, match=f"ExORL episode file {file}{words}"):
            read_exorl(tmp_path / name, "point_mass_maze")

    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no episode files"):
        read_exorl(tmp_path / "empty", "point_mass_maze")
    cfg = run_config("fb", "data.source='exorl'")
    with pytest.raises(DatasetError, match="'exorl' reads an ExORL directory.*--data-path PATH"):
        get_source("exorl")(cfg, None, False)
    cfg = run_config("fb", "data.source='exorl'", f"data.path='{tmp_path / 'absent'}'")
    with pytest.raises(DatasetError, match="absent' does not exist"):
        get_source("exorl")(cfg, None, False)


# Two episodes of a D4RL file: rows 0-3 end in a timeout (row 3), rows 4-6 in a terminal (row 6).
ROWS = 7
OBSERVATIONS = (np.arange(ROWS)[:, None] + np.array([0, 0.1, 0.2, 0.3])).astype(np.float32)  # 7 x 4
ACTIONS = np.linspace(-1, 1, 2 * ROWS, dtype=np.float32).reshape(ROWS, 2)  # 7 x 2
REWARDS = np.arange(ROWS, dtype=np.float32) / 10  # 7
TERMINALS = np.array([0, 0, 0, 0, 0, 0, 1], bool)  # 7
TIMEOUTS = np.array([0, 0, 0, 1, 0, 0, 0], bool)  # 7


def write_d4rl(file: Path, next_observations: bool, **arrays: np.ndarray) -> Path:
    columns = {
        "observations": OBSERVATIONS,
        "actions": ACTIONS,
        "rewards": REWARDS,
        "terminals": TERMINALS,
        "timeouts": TIMEOUTS,
    }
    if next_observations:
        columns["next_observations"] = OBSERVATIONS + 100  # unlike observations[i + 1]
    with h5py.File(file, "w") as f:
        for key, value in {**columns, **arrays}.items():
            f.create_dataset(key, data=value)
    return file


def test_a_d4rl_file_reads_as_qlearning_dataset_does(tmp_path):
    # Without next_observations (qlearning_dataset itself): rows 0..5 have a successor; the
    # timeout's row 3 goes; row 5 ends the data without a terminal, so it is a truncation too.
    data = read_d4rl(write_d4rl(tmp_path / "plain.hdf5", False), TASK, "point_mass_maze")
    kept = [0, 1, 2, 4, 5]
    np.testing.assert_array_equal(data.observation, OBSERVATIONS[kept])
    np.testing.assert_array_equal(data.action, ACTIONS[kept])
    np.testing.assert_array_equal(data.next_observation, OBSERVATIONS[[1, 2, 3, 5, 6]])
    np.testing.assert_array_equal(data.reward, REWARDS[kept])
    np.testing.assert_array_equal(data.terminal, [0, 0, 0, 0, 0])
    np.testing.assert_array_equal(data.truncation, [0, 0, 1, 0, 1])
    np.testing.assert_array_equal(data.episode, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(data.step, [0, 1, 2, 0, 1])
    assert data.physics is None and data.next_physics is None
    assert data.meta["source"] == "d4rl" and data.meta["name"] == "plain"
    assert (data.meta["episodes"], data.meta["transitions"], data.meta["rows"]) == (2, 5, 7)

    # With next_observations every row has a successor: only the timeout's row goes.
    data = read_d4rl(write_d4rl(tmp_path / "next.hdf5", True), TASK, "point_mass_maze")
    kept = [0, 1, 2, 4, 5, 6]
    np.testing.assert_array_equal(data.observation, OBSERVATIONS[kept])
    np.testing.assert_array_equal(data.next_observation, OBSERVATIONS[kept] + 100)
    np.testing.assert_array_equal(data.action, ACTIONS[kept])
    np.testing.assert_array_equal(data.reward, REWARDS[kept])
    np.testing.assert_array_equal(data.terminal, [0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(data.truncation, [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(data.episode, [0, 0, 0, 1, 1, 1])

    # A terminal with a successor row: without next_observations that row is the next episode's
    # first state (qlearning_dataset's way), which FB would see: a warning says so.
    early = np.array([0, 1, 0, 0, 0, 0, 0], bool)  # row 1 ends its episode
    with pytest.warns(UserWarning, match="no next_observations.*1 terminal transitions"):
        cut = read_d4rl(write_d4rl(tmp_path / "early.hdf5", False, terminals=early), TASK)
    np.testing.assert_array_equal(cut.next_observation[1], OBSERVATIONS[2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # with next_observations: nothing to warn of
        read_d4rl(write_d4rl(tmp_path / "early_next.hdf5", True, terminals=early), TASK)

    # the stored rewards are the named task's only
    np.testing.assert_array_equal(data.rewards(MAZE.task(TASK)), REWARDS[kept])
    with pytest.raises(DatasetError, match="cannot be relabelled for task 'reach_top_right'"):
        data.rewards(MAZE.task("reach_top_right"))


def test_damaged_or_misnamed_d4rl_files_are_clear_errors(tmp_path):
    file = write_d4rl(tmp_path / "cut.hdf5", True)
    content = file.read_bytes()
    file.write_bytes(content[: len(content) // 2])
    with pytest.raises(DatasetError, match=f"{file} is truncated or corrupt"):
        read_d4rl(file, TASK)
    file = write_d4rl(tmp_path / "wide.hdf5", False, observations=np.zeros((ROWS, 17)))
    with pytest.raises(DatasetError, match="wide.hdf5: observations has width 17.*width 4"):
        read_d4rl(file, TASK, "point_mass_maze")
    with h5py.File(tmp_path / "bare.hdf5", "w") as f:
        f.create_dataset("observations", data=OBSERVATIONS)
    with pytest.raises(DatasetError, match="bare.hdf5 lacks arrays \\['actions'"):
        read_d4rl(tmp_path / "bare.hdf5", TASK)
    strong = ACTIONS.copy()
    strong[4, 0] = -1.5
    file = write_d4rl(tmp_path / "strong.hdf5", True, actions=strong)
    read_d4rl(file, TASK)  # no domain: no range to check
    with pytest.raises(
        DatasetError,
        match="strong.hdf5's action 4 is \\[-1.5, .*outside domain 'point_mass_maze''s range "
        "\\[-1.0, 1.0\\] in dimension 0",
    ):
        read_d4rl(file, TASK, "point_mass_maze")
    rewards = REWARDS.copy()
    rewards[2] = np.inf
    file = write_d4rl(tmp_path / "inf.hdf5", True, rewards=rewards)
    with pytest.raises(DatasetError, match="inf.hdf5's rewards are not all finite \\(row 2\\)"):
        read_d4rl(file, TASK)
    cfg = apply_overrides(
        preset("fb", "point_mass_maze", "quick"), ["data.source='d4rl'", "data.path='x.hdf5'"]
    )
    with pytest.raises(DatasetError, match="name the task.*--tasks NAME"):
        get_source("d4rl")(cfg, None, False)


def test_d4rl_normalised_scores():
    for name, (low, high) in D4RL_REFERENCE_RETURNS.items():
        assert d4rl_normalized_score(name, low) == 0.0
        assert d4rl_normalized_score(name, high) == pytest.approx(100.0)
        np.testing.assert_allclose(
            d4rl_normalized_score(f"{name}-medium-v2", np.array([low, high])), [0.0, 100.0]
        )
    assert D4RL_REFERENCE_RETURNS == {  # D4RL's infos.py
        "walker2d": (1.629008, 4592.3),
        "halfcheetah": (-280.178953, 12135.0),
    }
    assert d4rl_normalized_score("walker2d", 4592.3) == pytest.approx(100.0)
    assert d4rl_normalized_score("halfcheetah", -280.178953) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="no D4RL reference returns for 'hopper'"):
        d4rl_normalized_score("hopper", 1.0)


def test_a_maze_shaped_d4rl_file_trains_td3(tmp_path):
    rng = np.random.default_rng(0)
    rows = 600  # six episodes of 100 steps, ending alternately in a terminal and a timeout
    ends = np.arange(rows) % 100 == 99
    odd = (np.arange(rows) // 100) % 2 == 1
    file = write_d4rl(
        tmp_path / "maze.hdf5",
        False,
        observations=rng.uniform(-0.29, 0.29, (rows, 4)).astype(np.float32),
        actions=rng.uniform(-1, 1, (rows, 2)).astype(np.float32),
        rewards=rng.uniform(0, 1, rows).astype(np.float32),
        terminals=ends & ~odd,
        timeouts=ends & odd,
    )
    cfg = run_config("td3", "data.source='d4rl'", f"data.path='{file}'")
    with pytest.warns(UserWarning, match="no next_observations"):  # 3 terminals before a row
        record = Trainer(cfg, tmp_path / "run", progress=False).run()
    assert (
        record["complete"] and record["dataset"]["transitions"] == rows - 3
    )  # timeouts: 199, 399, 599 (the last)
    assert record["dataset"]["name"] == "maze"


def test_an_exorl_directory_trains_fb(collected, tmp_path):
    write_exorl(tmp_path / "random", collected)
    cfg = run_config("fb", "data.source='exorl'", f"data.path='{tmp_path / 'random'}'")
    record = Trainer(cfg, tmp_path / "run", progress=False).run()
    assert record["complete"] and record["dataset"]["transitions"] == 3000


def test_run_experiment_trains_from_an_exorl_directory(collected, tmp_path, monkeypatch):
    """The notebook's `data_source` and `data_path` parameters: the same reader as the command line."""
    from test_book import run_notebook

    write_exorl(tmp_path / "random", collected)
    record = run_notebook(
        tmp_path,
        monkeypatch,
        data_source="exorl",
        data_path=str(tmp_path / "random"),
        tasks=TASK,
        steps=10,
    )
    assert record["complete"] and record["dataset"]["transitions"] == 3000
    assert record["config"]["data"]["source"] == "exorl"
    assert f"-p data_source exorl -p data_path {tmp_path / 'random'}" in record["command"]
