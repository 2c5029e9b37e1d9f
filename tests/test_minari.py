"""Minari datasets: ours written and read back exactly, Gymnasium-recorded ones read with their
rewards, malformed ones a clear error, and a run trained from one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import gymnasium.envs.mujoco
import h5py
import minari
import numpy as np
import pytest
from gymnasium.spaces import Box
from minari.data_collector import EpisodeBuffer

from zsrl.cli import main
from zsrl.config import apply_overrides, preset
from zsrl.data import Dataset, DatasetError, collect, default_spec, get_source, prepare_dataset
from zsrl.data.readers import MINARI_DOMAINS, read_minari, write_minari
from zsrl.data.readers.minari import env_domain
from zsrl.envs import Domain, Task, domain_names, get_domain, register_domain, unregister_domain

MAZE = get_domain("point_mass_maze")
TASK = "reach_top_left"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch) -> Path:
    """A local Minari root of this test's own (Minari finds datasets by id there)."""
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


@pytest.fixture(scope="module")
def collected() -> Dataset:
    """Three random maze episodes of our collector (3 x 1000 transitions, with physics)."""
    return collect(default_spec("point_mass_maze", "random", episodes=3), progress=False)


def chained(episodes: int = 4, steps: int = 25, seed: int = 0) -> Dataset:
    """Whole maze-shaped episodes without physics, as a reader of other formats gives them: each
    transition starts where the one before ended; stored rewards, terminals and truncations."""
    rng = np.random.default_rng(seed)
    states = rng.uniform(-0.29, 0.29, (episodes, steps + 1, 4)).astype(np.float32)  # E x T+1 x O
    end = np.arange(episodes * steps) % steps == steps - 1  # n: each episode's last row
    odd = np.repeat(np.arange(episodes) % 2 == 1, steps)  # n
    return Dataset(
        observation=states[:, :-1].reshape(-1, 4),
        action=rng.uniform(-1, 1, (episodes * steps, 2)).astype(np.float32),
        next_observation=states[:, 1:].reshape(-1, 4),
        physics=None,
        next_physics=None,
        episode=np.repeat(np.arange(episodes), steps),
        reward=rng.uniform(0, 1, episodes * steps).astype(np.float32),
        terminal=end & odd,  # odd episodes end in a terminal state, even ones at a time limit
        truncation=end & ~odd,
        meta={"name": "chained", "reward_task": TASK, "spec": {"domain": "point_mass_maze"}},
    )


def write_raw(dataset_id: str, episodes: list[dict], obs_width: int = 4, **kwargs) -> Path:
    """Episodes written with minari's own API (no env, maze-shaped spaces unless given)."""
    buffers = [EpisodeBuffer(**episode) for episode in episodes]
    kwargs.setdefault("observation_space", Box(-np.inf, np.inf, (obs_width,), np.float32))
    kwargs.setdefault("action_space", Box(-1, 1, (2,), np.float32))
    with pytest.warns(UserWarning):  # minari warns of the optional fields left out
        dataset = minari.create_dataset_from_buffers(dataset_id, buffers, **kwargs)
    return dataset.storage.data_path.parent


def raw_episode(steps: int = 10, obs_width: int = 4, action_width: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {
        "observations": rng.uniform(-0.2, 0.2, (steps + 1, obs_width)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (steps, action_width)).astype(np.float32),
        "rewards": rng.uniform(0, 1, steps),
        "terminations": np.zeros(steps, bool),
        "truncations": np.arange(steps) == steps - 1,
    }


def test_our_collected_data_read_back_from_minari_exactly(collected, minari_root):
    directory = write_minari(collected, "zsrl/maze/random-v0", task=TASK)
    assert directory == minari_root / "zsrl/maze/random-v0"
    for source in ("zsrl/maze/random-v0", directory, directory / "data"):  # id, dir, data/
        data = read_minari(source, "point_mass_maze")
        for name in ("observation", "action", "next_observation", "physics", "next_physics"):
            np.testing.assert_array_equal(getattr(data, name), getattr(collected, name), name)
        np.testing.assert_array_equal(data.episode, collected.episode)
        np.testing.assert_array_equal(data.step, collected.step)
        # the collector's episodes end at its time limit: truncated at their last step
        last = np.r_[collected.episode[1:] != collected.episode[:-1], True]
        np.testing.assert_array_equal(data.truncation, last)
        assert not data.terminal.any()
        np.testing.assert_array_equal(data.reward, collected.rewards(MAZE.task(TASK)))
        for task in (TASK, "reach_bottom_right"):  # physics: every task is relabelled
            np.testing.assert_array_equal(
                data.rewards(MAZE.task(task)), collected.rewards(MAZE.task(task))
            )
        meta = data.meta
        assert meta["source"] == "minari" and meta["name"] == "zsrl/maze/random-v0"
        assert (meta["episodes"], meta["transitions"], meta["reward_task"]) == (3, 3000, TASK)
        assert meta["physics"] == "infos" and meta["observe_check"]["max_abs_error"] == 0.0
        assert meta["path"] == str(directory / "data") and len(meta["sha256"]) == 64

    # what minari itself sees: whole episodes, the maze's action box (its actuators' [-1, 1])
    stored = minari.load_dataset("zsrl/maze/random-v0")
    assert (stored.total_episodes, stored.total_steps) == (3, 3000)
    episode = stored[1]
    rows = np.flatnonzero(collected.episode == 1)
    np.testing.assert_array_equal(episode.observations[0], collected.observation[rows[0]])
    np.testing.assert_array_equal(episode.observations[1:], collected.next_observation[rows])
    np.testing.assert_array_equal(episode.infos["physics"][1:], collected.next_physics[rows])
    ctrlrange = MAZE.model().actuator_ctrlrange
    np.testing.assert_array_equal(stored.action_space.low, ctrlrange[:, 0])
    np.testing.assert_array_equal(stored.action_space.high, ctrlrange[:, 1])
    assert stored.observation_space.shape == (MAZE.obs_dim,)


def test_quadruped_data_beyond_its_actuators_ranges_read_back_exactly(minari_root):
    """Quadruped's extend actuators take [-0.8, 0.8] and its lift ones [-1, 1.1]; the agents and
    collectors act in [-1, 1] (ExORL's too), and MuJoCo clamps. Both must fit the action box."""
    data = collect(default_spec("quadruped", "random", episodes=1), progress=False)
    ctrlrange = get_domain("quadruped").model().actuator_ctrlrange  # A x 2
    assert (data.action > ctrlrange[:, 1]).any() or (data.action < ctrlrange[:, 0]).any()
    data.action[0, 1] = np.float32(1.1)  # a lift actuator's top, as float32 (above 1.1 in float64)
    write_minari(data, "zsrl/quadruped/random-v0", task="stand")
    back = read_minari("zsrl/quadruped/random-v0", "quadruped")
    for name in ("observation", "action", "next_observation", "physics", "next_physics"):
        np.testing.assert_array_equal(getattr(back, name), getattr(data, name), name)
    space = minari.load_dataset("zsrl/quadruped/random-v0").action_space
    np.testing.assert_array_equal(space.low, np.minimum(ctrlrange[:, 0], -1).astype(np.float32))
    np.testing.assert_array_equal(space.high, np.maximum(ctrlrange[:, 1], 1).astype(np.float32))


def test_stored_rewards_terminals_and_truncations_read_back_exactly():
    original = chained()
    write_minari(original, "zsrl/maze/chained-v0")  # the stored rewards, of their task
    data = read_minari("zsrl/maze/chained-v0", "point_mass_maze")
    for name in ("observation", "action", "next_observation", "episode", "step", "reward"):
        np.testing.assert_array_equal(getattr(data, name), getattr(original, name), name)
    np.testing.assert_array_equal(data.terminal, original.terminal)
    np.testing.assert_array_equal(data.truncation, original.truncation)
    assert data.physics is None and data.meta["physics"] is None
    assert data.meta["reward_task"] == TASK
    np.testing.assert_array_equal(data.rewards(MAZE.task(TASK)), original.reward)
    with pytest.raises(DatasetError, match="cannot be relabelled for task 'reach_top_right'"):
        data.rewards(MAZE.task("reach_top_right"))
    # the run naming another task: the dataset holds no rewards of it
    with pytest.raises(DatasetError, match="rewards of task 'reach_top_left'.*'reach_top_right'"):
        read_minari("zsrl/maze/chained-v0", "point_mass_maze", "reach_top_right")


def gymnasium_walker_obs(states: np.ndarray) -> np.ndarray:
    """Gymnasium's Walker2d-v5 observation of (qpos, qvel) states (n x 18): qpos without x, then
    qvel clipped to [-10, 10]."""
    return np.concatenate([states[:, 1:9], np.clip(states[:, 9:], -10, 10)], axis=1)


@pytest.fixture
def toy_walker2d(monkeypatch):
    """A walker2d-shaped domain on Gymnasium's own Walker2d-v5 model (17 observations, 6 actions,
    one task), standing in for the zsrl domain ``Walker2d`` maps to."""
    model = Path(gymnasium.envs.mujoco.__file__).parent / "assets" / "walker2d_v5.xml"
    domain = register_domain(
        Domain(
            name="toy_walker2d",
            xml_path=model,
            obs_dim=17,
            action_dim=6,
            episode_steps=1000,
            tasks={"forward": Task("forward", "toy_walker2d", lambda s, a: s[..., 9])},
            sample_start=lambda rng, n: np.zeros((n, 18)),
            observe=gymnasium_walker_obs,
        )
    )
    monkeypatch.setitem(MINARI_DOMAINS, "Walker2d", "toy_walker2d")
    yield domain
    unregister_domain("toy_walker2d")


def record_walker2d(dataset_id: str, states: bool = False, env_id: str = "Walker2d-v5") -> list:
    """Two short episodes of Gymnasium's Walker2d-v5 under random actions (a 40-step time limit),
    written as Minari's ``mujoco/<env>`` datasets are: the env's spaces and spec, float64
    observations; with ``states``, each step's qpos and qvel in the infos (T+1 rows)."""
    env = gym.make(env_id, max_episode_steps=40)
    env.action_space.seed(0)
    episodes = []
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        data = env.unwrapped.data
        episode = {"observations": [obs], "actions": [], "rewards": [], "terminations": []}
        episode |= {"truncations": [], "qpos": [data.qpos.copy()], "qvel": [data.qvel.copy()]}
        done = False
        while not done:
            action = env.action_space.sample()
            obs, reward, terminated, truncated, _ = env.step(action)
            for key, value in zip(
                ("observations", "actions", "rewards", "terminations", "truncations"),
                (obs, action, reward, terminated, truncated),
                strict=True,
            ):
                episode[key].append(value)
            episode["qpos"].append(data.qpos.copy())
            episode["qvel"].append(data.qvel.copy())
            done = terminated or truncated
        episodes.append({k: np.asarray(v) for k, v in episode.items()})
    buffers = [
        EpisodeBuffer(
            observations=e["observations"],
            actions=e["actions"],
            rewards=e["rewards"],
            terminations=e["terminations"],
            truncations=e["truncations"],
            infos={"qpos": e["qpos"], "qvel": e["qvel"]} if states else None,
        )
        for e in episodes
    ]
    with pytest.warns(UserWarning):  # minari warns of the optional fields left out
        minari.create_dataset_from_buffers(dataset_id, buffers, env=env)
    return episodes


def test_a_gymnasium_mujoco_dataset_reads_with_its_rewards(toy_walker2d):
    episodes = record_walker2d("mujoco/walker2d/synthetic-v0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # v5, the version the domain simulates: nothing to warn of
        data = read_minari("mujoco/walker2d/synthetic-v0", "toy_walker2d")
    steps = [len(e["rewards"]) for e in episodes]
    n = sum(steps)
    assert data.observation.shape == (n, 17) and data.action.shape == (n, 6)
    np.testing.assert_array_equal(
        data.observation, np.concatenate([e["observations"][:-1] for e in episodes]).astype("f4")
    )
    np.testing.assert_array_equal(
        data.next_observation,
        np.concatenate([e["observations"][1:] for e in episodes]).astype("f4"),
    )
    np.testing.assert_array_equal(data.action, np.concatenate([e["actions"] for e in episodes]))
    rewards = np.concatenate([e["rewards"] for e in episodes]).astype(np.float32)
    np.testing.assert_array_equal(data.reward, rewards)
    np.testing.assert_array_equal(
        data.terminal, np.concatenate([e["terminations"] for e in episodes])
    )
    np.testing.assert_array_equal(
        data.truncation, np.concatenate([e["truncations"] for e in episodes])
    )
    np.testing.assert_array_equal(data.episode, np.repeat([0, 1], steps))
    assert data.physics is None  # Minari's mujoco datasets keep observations only
    assert data.meta["env"] == "Walker2d-v5" and data.meta["domain"] == "toy_walker2d"
    # the environment's one reward is the domain's one task
    assert data.meta["reward_task"] == "forward"
    np.testing.assert_array_equal(data.rewards(toy_walker2d.task("forward")), rewards)
    # the run's domain comes from the env spec when the run does not give one
    assert read_minari("mujoco/walker2d/synthetic-v0").meta["domain"] == "toy_walker2d"


def test_data_of_an_earlier_environment_version_read_with_a_warning(toy_walker2d):
    with pytest.warns(DeprecationWarning, match="Walker2d-v4 is out of date"):  # Gymnasium's
        record_walker2d("mujoco/walker2d/old-v0", env_id="Walker2d-v4")
    with pytest.warns(UserWarning, match="recorded on Walker2d-v4.*simulates its v5"):
        data = read_minari("mujoco/walker2d/old-v0", "toy_walker2d")
    assert data.meta["env"] == "Walker2d-v4"


def test_states_in_the_infos_are_read_as_physics(toy_walker2d):
    episodes = record_walker2d("mujoco/walker2d/states-v0", states=True)
    data = read_minari("mujoco/walker2d/states-v0", "toy_walker2d")
    states = [np.c_[e["qpos"], e["qvel"]] for e in episodes]  # T+1 x 18 each
    np.testing.assert_array_equal(data.physics, np.concatenate([s[:-1] for s in states]))
    np.testing.assert_array_equal(data.next_physics, np.concatenate([s[1:] for s in states]))
    # Gymnasium's observations are the domain's observe of those states (float32 rounding aside)
    assert data.meta["physics"] == "infos" and data.meta["observe_check"]["matches"]


def test_the_table_maps_gymnasium_environments_to_domains():
    for name, domain in MINARI_DOMAINS.items():
        spec = gym.spec(f"{name}-v5")  # an environment Gymnasium knows
        assert env_domain(spec.id) == domain and env_domain(f"{name}-v4") == domain
        if domain in domain_names():  # where the domain is registered, its widths are the env's
            env = gym.make(spec.id)
            assert get_domain(domain).obs_dim == env.observation_space.shape[0]
            assert get_domain(domain).action_dim == env.action_space.shape[0]
    with pytest.raises(ValueError, match="no zsrl domain for environment 'Hopper-v5'; known"):
        env_domain("Hopper-v5")


def test_malformed_minari_datasets_are_one_clear_error(collected, minari_root, toy_walker2d):
    write_minari(collected, "zsrl/maze/random-v0", task=TASK)
    with pytest.raises(
        DatasetError,
        match="'zsrl/maze/random-v0' holds data of domain 'point_mass_maze', not of the run's "
        "domain 'walker'",
    ):
        read_minari("zsrl/maze/random-v0", "walker")
    record_walker2d("mujoco/walker2d/synthetic-v0")
    with pytest.raises(DatasetError, match="domain 'toy_walker2d' \\(environment Walker2d-v5\\)"):
        read_minari("mujoco/walker2d/synthetic-v0", "point_mass_maze")
    record_walker2d("mujoco/hopper/synthetic-v0", env_id="Hopper-v5")
    with pytest.raises(DatasetError, match="hopper/synthetic-v0': no zsrl domain for environment"):
        read_minari("mujoco/hopper/synthetic-v0", "toy_walker2d")

    # an array or a metadata key missing
    write_minari(chained(), "broken/rewards-v0")
    with h5py.File(minari_root / "broken/rewards-v0/data/main_data.hdf5", "a") as f:
        del f["episode_2/rewards"]
    with pytest.raises(
        DatasetError, match="'broken/rewards-v0': episode 2 lacks an array.*rewards"
    ):
        read_minari("broken/rewards-v0", "point_mass_maze")
    write_minari(chained(), "broken/metadata-v0")
    metadata = minari_root / "broken/metadata-v0/data/metadata.json"
    fields = json.loads(metadata.read_text())
    del fields["dataset_id"]
    metadata.write_text(json.dumps(fields))
    with pytest.raises(
        DatasetError, match="'broken/metadata-v0': its metadata.json lacks 'dataset_id'"
    ):
        read_minari("broken/metadata-v0", "point_mass_maze")

    # widths or actions that are not the domain's
    write_raw("broken/wide-v0", [raw_episode(obs_width=5)], obs_width=5)
    with pytest.raises(
        DatasetError,
        match="wide-v0': its observation space is Box.*\\(5,\\).*"
        "domain 'point_mass_maze' has observations of width 4",
    ):
        read_minari("broken/wide-v0", "point_mass_maze")
    write_raw("broken/actions-v0", [raw_episode(), raw_episode(action_width=3)])
    with pytest.raises(DatasetError, match="episode 1's actions have shape \\(10, 3\\), expected"):
        read_minari("broken/actions-v0", "point_mass_maze")
    blank = raw_episode()
    blank["observations"][3, 0] = np.nan
    write_raw("broken/nan-v0", [blank])
    with pytest.raises(DatasetError, match="episode 0's observations are not all finite"):
        read_minari("broken/nan-v0", "point_mass_maze")
    strong = raw_episode()
    strong["actions"][4, 1] = 1.5
    write_raw("broken/range-v0", [raw_episode(), strong])
    with pytest.raises(
        DatasetError,
        match="episode 1's action 4 is .*1.5.*outside domain "
        "'point_mass_maze''s range \\[-1.0, 1.0\\] in dimension 1",
    ):
        read_minari("broken/range-v0", "point_mass_maze")

    # nothing there, nothing named, no task for the rewards
    with pytest.raises(
        DatasetError,
        match="'mujoco/ant/medium-v0' is neither a dataset directory nor a dataset id in the "
        "local Minari root",
    ):
        read_minari("mujoco/ant/medium-v0", "point_mass_maze")
    write_raw("anonymous/data-v0", [raw_episode()])
    with pytest.raises(DatasetError, match="names no environment: give the domain"):
        read_minari("anonymous/data-v0")
    with pytest.raises(DatasetError, match="name the task they are for.*'reach_top_left'"):
        read_minari("anonymous/data-v0", "point_mass_maze")
    cfg = apply_overrides(preset("fb", "point_mass_maze", "quick"), ["data.source='minari'"])
    with pytest.raises(
        DatasetError, match="'minari' reads a Minari dataset: give its id.*--data-path"
    ):
        get_source("minari")(cfg, None, False)


def test_only_whole_episodes_of_a_known_domain_and_task_are_written(collected):
    with pytest.raises(DatasetError, match="episode 0 is not whole \\(a subsample"):
        write_minari(collected.subsample(2000), "zsrl/maze/subsample-v0", task=TASK)
    with pytest.raises(ValueError, match="no stored rewards: name the task.*'reach_top_left'"):
        write_minari(collected, "zsrl/maze/random-v0")
    with pytest.raises(ValueError, match="unknown task 'reach_moon'"):
        write_minari(collected, "zsrl/maze/random-v0", task="reach_moon")
    with pytest.raises(ValueError, match="observations have width 4, but domain 'walker' has"):
        write_minari(collected, "zsrl/walker/random-v0", domain="walker", task="run")


def test_subsample_and_action_filter_apply_to_minari_data(collected):
    write_minari(collected, "zsrl/maze/random-v0", task=TASK)
    settings = ["data.source='minari'", "data.path='zsrl/maze/random-v0'"]
    settings += ["data.n_transitions=1200", "data.action_filter='no_left'"]
    cfg = apply_overrides(preset("fb", "point_mass_maze", "quick"), settings)
    data = prepare_dataset(cfg, progress=False)
    expected = collected.subsample(1200, cfg.data.subsample_seed).filter_actions("no_left")
    for name in ("observation", "action", "next_observation", "physics", "episode", "step"):
        np.testing.assert_array_equal(getattr(data, name), getattr(expected, name), name)
    assert (data.action[:, 0] > 0).all() and data.meta["subsample"]["n"] == 1200


def test_python_m_zsrl_trains_from_a_minari_dataset(collected, minari_root, tmp_path, capsys):
    write_minari(collected, "zsrl/maze/random-v0", task=TASK)
    out = tmp_path / "run"
    args = ["train", "--method", "fb", "--scale", "quick", "--steps", "20", "--threads", "1"]
    args += ["--tasks", TASK, "--out", str(out), "--no-progress", "--data-source", "minari"]
    args += ["--data-path", "zsrl/maze/random-v0", "--set", "train.eval_every=10"]
    args += ["train.log_every=10", "train.checkpoint_every=10", "eval.episodes=1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "zsrl", *args], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "record.json").read_text())
    assert record["complete"] and record["steps_done"] == 20
    assert record["dataset"]["name"] == "zsrl/maze/random-v0"
    assert record["dataset"]["transitions"] == 3000
    # a dataset that is not there: the command's one-line error
    args[args.index("zsrl/maze/random-v0")] = "zsrl/maze/absent-v0"
    assert main(args) == 2
    assert "'zsrl/maze/absent-v0' is neither a dataset directory" in capsys.readouterr().err
