"""The quadruped domain against dm_control: observations, rewards and stepping agree with
dm_control's environments (ExORL's tasks with their formulas, escape with dm_control's own reward),
starts are dm_control's. What every domain meets alike (sizes, random collection, training from the
command line) is tested in test_domains.py, that the starts are every task's resets in
test_dm_control_domain.py."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from dm_control.suite import common
from dm_control.suite import quadruped as dm_quadruped
from dm_control.suite.wrappers import action_scale
from environment_episodes import (
    assert_batch_simulation_steps_as_the_environment,
    assert_rewards_are_the_environments,
    dm_control_episodes,
    flat_observation,
)

from zsrl.data import collect, default_spec
from zsrl.data.readers import read_exorl
from zsrl.envs import BatchSim, get_domain
from zsrl.envs.quadruped import TASKS, Physics, from_action_scale, load, model_xml
from zsrl.envs.registry import PHYSICS_STATE

STEPS = 150
KEYS = ["egocentric_state", "torso_velocity", "torso_upright", "imu", "force_torque"]
# observation entries that dm_control's environment reads from the last physics substep: the
# accelerometer (imu's first 3) and the toes' force/torque sensors
SUBSTEP = np.r_[48:51, 54:78]
STATE_ONLY = np.setdiff1d(np.arange(78), SUBSTEP)


def measures(physics) -> np.ndarray:
    """What the rewards read (8): the torso's upright, velocimeter (3), centre-of-mass height and
    workspace position (3)."""
    named = physics.named.data
    return np.r_[
        named.xmat["torso", "zz"],
        named.sensordata["velocimeter"],
        named.sensordata["center_of_mass"][2],
        named.site_xpos["workspace"],
    ]


@pytest.fixture(scope="module")
def episodes() -> dict[str, dict[str, np.ndarray]]:
    """Per task: a dm_control episode of STEPS random actions, with the reward measures."""
    return dm_control_episodes(load, TASKS, STEPS, KEYS, measures)


def test_sizes_timing_and_model_are_exorls():
    """(test_domains.py checks the sizes against the environment's.)"""
    domain = get_domain("quadruped")
    env = load("jump", seed=0)
    model = domain.model()
    assert (domain.physics_steps, domain.action_dim, domain.obs_dim) == (4, 12, 78)
    assert domain.episode_steps * env.control_timestep() == pytest.approx(20.0)
    spec = env.observation_spec()
    assert domain.obs_dim == sum(int(np.prod(spec[key].shape)) for key in KEYS) == 78
    assert set(domain.tasks) == {"stand", "walk", "run", "jump", "roll", "roll_fast", "escape"}
    assert all(task.goal_observation is None for task in domain.tasks.values())
    # dm_control's flat model: floor half-size 10, no terrain geom, rangefinders, walls or ball
    dm = env.physics.model.ptr
    assert mujoco.mj_stateSize(model, PHYSICS_STATE) == mujoco.mj_stateSize(dm, PHYSICS_STATE) == 57
    names = {model.geom(i).name for i in range(model.ngeom)}
    assert names == {dm.geom(i).name for i in range(dm.ngeom)}
    assert not names & {"terrain", "ball", "wall_px"}
    assert model.geom("floor").size[0] == 10 and model.nbody == dm.nbody
    assert model.nsensor == dm.nsensor == 12  # no rangefinders


def test_observations_are_dm_controls_on_the_same_states(episodes):
    """All 78 numbers equal dm_control's observation functions on a physics set to the state; the
    environment's own observations agree at the reset and, after a step, in the 51 numbers that
    depend on the state alone."""
    domain = get_domain("quadruped")
    physics = Physics.from_xml_string(model_xml(), common.ASSETS)
    for run in episodes.values():
        ours = domain.observe(run["states"])  # STEPS + 1 x 78
        assert ours.shape == (STEPS + 1, 78) and ours.dtype == np.float32
        expected = []
        for state in run["states"]:
            mujoco.mj_resetData(physics.model.ptr, physics.data.ptr)
            mujoco.mj_setState(physics.model.ptr, physics.data.ptr, state, PHYSICS_STATE)
            physics.forward()
            observation = dm_quadruped._common_observations(physics)
            expected.append(flat_observation(observation, KEYS))
        np.testing.assert_array_equal(ours, np.array(expected).astype(np.float32))
        env_obs = run["observations"].astype(np.float32)  # STEPS + 1 x 78
        np.testing.assert_array_equal(ours[0], env_obs[0])
        np.testing.assert_array_equal(ours[:, STATE_ONLY], env_obs[:, STATE_ONLY])
        assert not np.allclose(ours[1:, SUBSTEP], env_obs[1:, SUBSTEP])  # see the next test


def test_the_environments_acceleration_readings_are_its_last_substeps(episodes):
    """Why 27 numbers differ after a step: dm_control's environment reads the acceleration-stage
    sensors that its last ``mj_step`` computed before integrating, as a batch simulation's data
    hold them after ``mj_step``."""
    run = episodes["jump"]
    sim = BatchSim(get_domain("quadruped"), 1)
    sim.set_states(run["states"][:1])
    data = sim.datas[0]
    model = sim.model
    imu_accel = slice(model.sensor("imu_accel").adr[0], model.sensor("imu_accel").adr[0] + 3)
    toes = np.r_[model.sensor("force_toe_front_left").adr[0] : model.nsensordata - 3]  # 24
    for t in range(STEPS):
        sim.step(run["actions"][t : t + 1])
        read = np.r_[data.sensordata[imu_accel], np.arcsinh(data.sensordata[toes])]  # 27
        np.testing.assert_allclose(read, run["observations"][t + 1, SUBSTEP], rtol=0, atol=1e-9)


@pytest.mark.parametrize("task", TASKS)
def test_rewards_are_the_environments_at_every_step(episodes, task):
    assert_rewards_are_the_environments(get_domain("quadruped").task(task), episodes[task], 3)


def test_rewards_are_exorls_and_dm_controls_formulas(episodes):
    def upright(zz, deviation_degrees=0.0):  # 1 within the deviation, linear to 0 upside down
        c = np.cos(np.deg2rad(deviation_degrees))
        return np.where(zz >= c, 1.0, 1 - (c - zz) / (1 + c))

    def reach(x, target):  # 1 from the target, linear to 0.5 at 0 and 0 at -target
        return np.where(x >= target, 1.0, np.maximum(0.0, 0.5 + 0.5 * x / target))

    formulas = {
        "stand": lambda zz, v, h, w: upright(zz),
        "walk": lambda zz, v, h, w: upright(zz) * reach(v[:, 0], 0.5),
        "run": lambda zz, v, h, w: upright(zz) * reach(v[:, 0], 5.0),
        "jump": lambda zz, v, h, w: upright(zz) * reach(h, 1.0),
        "roll": lambda zz, v, h, w: upright(zz) * reach(np.linalg.norm(v, axis=1), 0.5),
        "roll_fast": lambda zz, v, h, w: upright(zz) * reach(np.linalg.norm(v, axis=1), 5.0),
        "escape": lambda zz, v, h, w: (
            upright(zz, 20) * np.minimum(np.linalg.norm(w, axis=1) / 30, 1)
        ),
    }
    for task, formula in formulas.items():
        run = episodes[task]
        m = run["measures"]  # STEPS x 8
        expected = formula(m[:, 0], m[:, 1:4], m[:, 4], m[:, 5:8])
        np.testing.assert_allclose(run["rewards"], expected, rtol=1e-12, atol=1e-12)
    every = np.concatenate([run["measures"] for run in episodes.values()])
    assert (every[:, 0] < 0.9).any() and (every[:, 0] > 0.95).any()  # tilted and upright
    assert (every[:, 1] < 0).any() and (every[:, 1] > 0.5).any()  # both sides of the speeds


def test_batch_simulation_steps_as_the_environment_does(episodes):
    runs = [episodes[task] for task in TASKS]  # the suite's walk (floor 10) and run (floor 100) too
    assert_batch_simulation_steps_as_the_environment(get_domain("quadruped"), runs)


def test_starts_are_random_orientations_at_rest_without_contacts():
    domain = get_domain("quadruped")
    first = domain.sample_start(np.random.default_rng(0), 20)  # 20 x P
    model = domain.model()
    qpos, rest = first[:, : model.nq], first[:, model.nq :]
    assert np.all(rest == 0) and np.all(qpos[:, 7:] == 0)  # velocities, activations, joints
    assert np.all(qpos[:, :2] == 0) and np.all(qpos[:, 2] >= 0)  # above the origin
    np.testing.assert_allclose(np.linalg.norm(qpos[:, 3:7], axis=1), 1.0)
    assert np.ptp(qpos[:, 3:7], axis=0).min() > 0.5  # orientations spread
    sim = BatchSim(domain, len(first))
    sim.set_states(first)
    assert all(data.ncon == 0 for data in sim.datas)


def test_exorls_agent_actions_become_the_controls_dm_controls_action_scale_sends(tmp_path):
    """ExORL stored the agent's [-1, 1] actions and stepped through ``action_scale``; the domain
    takes raw controls, so its ExORL reader maps them to what that wrapper sent to MuJoCo."""
    rng = np.random.default_rng(0)
    agent = rng.uniform(-1, 1, (5, 12)).astype(np.float32)  # 5 x A
    env = action_scale.Wrapper(load("stand", 0), minimum=-1.0, maximum=1.0)
    env.reset()
    for a, control in zip(agent, from_action_scale(agent), strict=True):
        env.step(a)
        np.testing.assert_allclose(env.physics.data.ctrl, control, rtol=1e-6, atol=1e-6)

    data = collect(default_spec("quadruped", "random", episodes=1), progress=False)
    rows = np.flatnonzero(data.episode == 0)[:50]  # T
    stored = rng.uniform(-1, 1, (len(rows) + 1, 12)).astype(np.float32)  # T+1 x A, row 0 dummy
    (tmp_path / "buffer").mkdir()
    np.savez(
        tmp_path / "buffer" / "episode_0.npz",
        observation=np.r_[data.observation[rows[:1]], data.next_observation[rows]],  # T+1 x O
        action=stored,
        reward=np.zeros((len(rows) + 1, 1), np.float32),
        discount=np.ones((len(rows) + 1, 1), np.float32),
        physics=np.r_[data.physics[rows[:1]], data.next_physics[rows]],  # T+1 x P
    )
    read = read_exorl(tmp_path, "quadruped")
    np.testing.assert_array_equal(read.action, from_action_scale(stored[1:]))
    assert read.meta["actions"].startswith("mapped to raw controls")
