"""The jaco domain against dm_control: observations, rewards and stepping agree with the tasks'
composer environments, a step with dm_control's own reach environment under ExORL's action scaling,
the rewards with ExORL's formula and targets, starts are dm_control's. What every domain meets alike
(sizes, random collection, training) is tested in test_domains.py, that the starts are every task's
resets in test_dm_control_domain.py."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from dm_control import manipulation
from dm_control.suite.wrappers import action_scale
from dm_control.utils import inverse_kinematics
from environment_episodes import (
    assert_batch_simulation_steps_as_the_environment,
    assert_rewards_are_the_environments,
    dm_control_episodes,
    dm_control_state,
)

from zsrl.envs import BatchSim, get_domain
from zsrl.envs.jaco import TASKS, load
from zsrl.envs.registry import PHYSICS_STATE

STEPS = 250  # a whole episode
OBSERVABLES = [  # the environment's observation, in order (dm_control; ExORL flattens it)
    "jaco_arm/joints_pos",
    "jaco_arm/joints_torque",
    "jaco_arm/joints_vel",
    "jaco_arm/jaco_hand/joints_pos",
    "jaco_arm/jaco_hand/joints_vel",
    "jaco_arm/jaco_hand/pinch_site_pos",
    "jaco_arm/jaco_hand/pinch_site_rmat",
]
TORQUE = slice(12, 18)  # the arm's joint torques in the flat observation
PINCH = "jaco_arm/jaco_hand/pinchsite"
EXORL_TARGETS = {  # custom_dmc_tasks/jaco.py's TASKS
    "reach_top_left": (-0.09, 0.09, 0.001),
    "reach_top_right": (0.09, 0.09, 0.001),
    "reach_bottom_left": (-0.09, -0.09, 0.001),
    "reach_bottom_right": (0.09, -0.09, 0.001),
}


def pinch_position(physics) -> np.ndarray:
    """The pinch site's position (3)."""
    return physics.named.data.site_xpos[PINCH]


@pytest.fixture(scope="module")
def episodes() -> dict[str, dict[str, np.ndarray]]:
    """Per task: a dm_control episode of STEPS random actions in [-1, 1], the whole of its 10 s,
    with the pinch site's positions (``tcp``, STEPS x 3) and the target site's position (3)."""
    out = dm_control_episodes(load, TASKS, STEPS, OBSERVABLES, pinch_position)
    for run in out.values():
        assert run["last"][-1] and not run["last"][:-1].any()  # 10 s
        run["tcp"] = run.pop("measures")
        run["target"] = run["env"].physics.named.data.site_xpos["target_site"].copy()
    return out


def test_sizes_and_timing_are_dm_controls():
    """(test_domains.py checks the sizes against the environment's.)"""
    domain = get_domain("jaco")
    env = load("reach_top_left", seed=0)
    assert (domain.physics_steps, domain.action_dim, domain.obs_dim) == (20, 9, 42)
    assert domain.episode_steps * env.control_timestep() == pytest.approx(10.0)
    spec = env.action_spec()
    assert np.all(spec.minimum == -1.0) and np.all(spec.maximum == 1.0)
    assert mujoco.mj_stateSize(domain.model(), PHYSICS_STATE) == 18
    assert set(domain.tasks) == set(EXORL_TARGETS) and domain.max_return == 250
    assert all(task.goal_observation is None for task in domain.tasks.values())
    with pytest.raises(ValueError, match="valid tasks"):
        load("reach_middle")


def test_observations_are_dm_controls_flattened_but_the_torques(episodes):
    domain = get_domain("jaco")
    for run in episodes.values():
        ours = domain.observe(run["states"])  # STEPS + 1 x 42
        assert ours.shape == (STEPS + 1, 42) and ours.dtype == np.float32
        theirs = run["observations"].astype(np.float32)  # STEPS + 1 x 42
        keep = np.ones(42, dtype=bool)
        keep[TORQUE] = False
        np.testing.assert_array_equal(ours[:, keep], theirs[:, keep])
        np.testing.assert_array_equal(ours[0], theirs[0])  # the reset's torques too
        # after a step the environment's torques depend on the last action, which a state lacks
        assert not np.allclose(ours[1:, TORQUE], theirs[1:, TORQUE], atol=1e-3)


def test_torques_are_dm_controls_after_a_reset(episodes):
    """dm_control's torque observable on each state set as a reset sets it (its ``reset_context``:
    fresh data, then ``mj_forward`` with actuation disabled)."""
    run = episodes["reach_top_left"]
    env = run["env"]
    states = run["states"][::10]  # 26 x P
    expected = []
    for state in states:
        with env.physics.reset_context():
            env.physics.set_state(state)
        expected.append(env.task.arm.observables.joints_torque(env.physics))
    ours = get_domain("jaco").observe(states)[:, TORQUE]  # 26 x 6
    np.testing.assert_array_equal(ours, np.array(expected).astype(np.float32))


@pytest.mark.parametrize("task", TASKS)
def test_rewards_are_the_environments_at_every_step(episodes, task):
    assert_rewards_are_the_environments(get_domain("jaco").task(task), episodes[task])


def test_rewards_are_exorls_formula_at_exorls_targets(episodes):
    for task, run in episodes.items():
        np.testing.assert_array_equal(run["target"], EXORL_TARGETS[task])
        distance = np.linalg.norm(run["tcp"] - np.array(EXORL_TARGETS[task]), axis=-1)  # STEPS
        near = np.where(distance <= 0.05, 1.0, 0.1 ** (((distance - 0.05) / 0.05) ** 2))
        np.testing.assert_allclose(run["rewards"], near, rtol=1e-12, atol=1e-12)
        ours = get_domain("jaco").task(task).distance(run["states"][1:])  # STEPS
        np.testing.assert_allclose(ours, distance, rtol=0, atol=1e-12)


def test_each_task_rewards_its_own_target():
    """With the pinch site moved onto each ExORL target by dm_control's inverse kinematics, that
    task's reward is 1 and every other task's nearly 0 (no task scored at another's target)."""
    domain = get_domain("jaco")
    env = load("reach_top_left", seed=0)
    env.reset()
    states = []
    for target in EXORL_TARGETS.values():
        result = inverse_kinematics.qpos_from_site_pose(env.physics, PINCH, target_pos=target)
        assert result.success
        state = dm_control_state(env)
        state[: len(result.qpos)] = result.qpos
        states.append(state)
    states = np.array(states)  # 4 x P: one per target
    rewards = np.array([domain.task(task).reward(states, None) for task in EXORL_TARGETS])
    np.testing.assert_allclose(np.diag(rewards), 1.0)
    assert np.all(rewards[~np.eye(4, dtype=bool)] < 1e-3)
    assert all(domain.task(t).success_distance == 0.05 for t in TASKS)


def test_batch_simulation_steps_as_the_environment_does(episodes):
    runs = [episodes[task] for task in TASKS]
    assert_batch_simulation_steps_as_the_environment(get_domain("jaco"), runs)


def test_a_step_is_dm_controls_under_exorls_action_scaling(episodes):
    """From each state of an episode, one control step of the domain's model (actions taken by
    rescaled gains) and one of dm_control's own reach environment (its actuators' ranges) under
    ``action_scale`` (actions rescaled, as ExORL does) agree up to rounding."""
    run = episodes["reach_top_right"]
    theirs = action_scale.Wrapper(manipulation.load("reach_site_features", seed=0), -1.0, 1.0)
    theirs.reset()
    low, high = theirs.physics.model.actuator_ctrlrange.T
    assert np.all(low == -high) and np.all(high != 1.0)  # the scaling matters
    sim = BatchSim(get_domain("jaco"), STEPS)
    sim.set_states(run["states"][:-1])
    ours = sim.step(run["actions"])  # STEPS x P
    for state, action, after in zip(run["states"][:-1], run["actions"], ours, strict=True):
        with theirs.physics.reset_context():
            theirs.physics.set_state(state)
        theirs.physics.forward()  # reset_context's runs without actuation: no actuator velocities
        theirs.step(action)
        np.testing.assert_allclose(dm_control_state(theirs), after, rtol=0, atol=1e-9)


def test_starts_are_closed_hands_pointing_down_at_rest():
    domain = get_domain("jaco")
    first = domain.sample_start(np.random.default_rng(0), 10)  # 10 x P
    model = domain.model()
    qpos, qvel = first[:, : model.nq], first[:, model.nq :]
    assert np.all(qvel == 0)
    fingers = qpos[:, 6:]  # 10 x 3: closed alike, within their range
    assert np.all(fingers == fingers[:, :1])
    low, high = model.jnt_range[6:].T
    assert np.all((fingers >= low) & (fingers <= high))
    data = mujoco.MjData(model)
    for state in first:
        mujoco.mj_setState(model, data, state, PHYSICS_STATE)
        mujoco.mj_kinematics(model, data)
        tcp = data.site(PINCH)
        assert np.all(np.abs(tcp.xpos[:2]) <= 0.2 + 1e-6) and 0.02 - 1e-6 <= tcp.xpos[2] <= 0.4
        assert tcp.xmat[8] == pytest.approx(-1.0, abs=1e-6)  # pointing down
