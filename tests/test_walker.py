"""The walker domain against dm_control: observations, rewards and stepping agree with the suite's
environments (and ExORL's flip with its formula), starts are dm_control's. What every domain meets
alike (sizes, random collection, training) is tested in test_domains.py, that the starts are every
task's resets in test_dm_control_domain.py."""

from __future__ import annotations

import numpy as np
import pytest
from environment_episodes import (
    assert_batch_simulation_steps_as_the_environment,
    assert_rewards_are_the_environments,
    dm_control_episodes,
)

from zsrl.envs import get_domain
from zsrl.envs.walker import TASKS, load

STEPS = 200
KEYS = ["orientations", "height", "velocity"]  # the environment's observation, in order


def torso_measures(physics) -> tuple[float, float, float]:
    """The torso's height, upright (the zz entry of its frame) and its subtree's angular momentum
    about y, which stand and flip read."""
    named = physics.named.data
    return named.xpos["torso", "z"], named.xmat["torso", "zz"], named.subtree_angmom["torso"][1]


@pytest.fixture(scope="module")
def episodes() -> dict[str, dict[str, np.ndarray]]:
    """Per task: a dm_control episode of STEPS random actions, with the torso's measures."""
    return dm_control_episodes(load, TASKS, STEPS, KEYS, torso_measures)


def test_sizes_and_tasks_are_dm_controls():
    """(test_domains.py checks the sizes against the environment's.)"""
    domain = get_domain("walker")
    assert (domain.physics_steps, domain.action_dim, domain.obs_dim) == (10, 6, 24)
    assert domain.episode_steps * load("walk", seed=0).control_timestep() == pytest.approx(25.0)
    assert set(domain.tasks) == {"stand", "walk", "run", "flip"}
    assert all(task.goal_observation is None for task in domain.tasks.values())


def test_observations_are_dm_controls_flattened(episodes):
    domain = get_domain("walker")
    for run in episodes.values():
        ours = domain.observe(run["states"])  # STEPS + 1 x 24
        assert ours.shape == (STEPS + 1, 24) and ours.dtype == np.float32
        np.testing.assert_array_equal(ours, run["observations"].astype(np.float32))


@pytest.mark.parametrize("task", TASKS)
def test_rewards_are_the_environments_at_every_step(episodes, task):
    assert_rewards_are_the_environments(get_domain("walker").task(task), episodes[task])


def test_flip_is_exorls_formula(episodes):
    run = episodes["flip"]
    height, upright, spin = run["measures"].T  # 3 of STEPS
    standing = np.where(height >= 1.2, 1.0, 0.1 ** (((1.2 - height) / 0.6) ** 2))
    stand = (3 * standing + (1 + upright) / 2) / 4
    move = np.clip(spin / 5.0, 0.0, 1.0)  # 1 from 5, linear to 0 at 0
    np.testing.assert_allclose(run["rewards"], stand * (5 * move + 1) / 6, rtol=1e-12, atol=1e-12)
    assert (spin > 0).any() and (spin < 0).any()  # the move term is exercised both ways


def test_batch_simulation_steps_as_the_environment_does(episodes):
    runs = [episodes[task] for task in TASKS]
    assert_batch_simulation_steps_as_the_environment(get_domain("walker"), runs)


def test_starts_are_uniform_joint_angles_at_rest():
    domain = get_domain("walker")
    first = domain.sample_start(np.random.default_rng(0), 50)  # 50 x P
    model = domain.model()
    qpos, qvel = first[:, : model.nq], first[:, model.nq : model.nq + model.nv]
    assert np.all(qvel == 0) and np.all(qpos[:, :2] == 0)  # rootz, rootx at rest at 0
    assert np.all(np.abs(qpos[:, 2]) <= np.pi)  # rooty
    low, high = model.jnt_range[3:].T  # the six limited joints
    assert np.all((qpos[:, 3:] >= low) & (qpos[:, 3:] <= high))
