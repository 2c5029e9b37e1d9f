"""The quadruped domain against dm_control: observations, rewards, stepping and starts agree with
dm_control's environments (ExORL's tasks with their formulas, escape with dm_control's own reward),
and the domain collects and trains from the command line."""

from __future__ import annotations

import json

import mujoco
import numpy as np
import pytest
from dm_control.suite import common
from dm_control.suite import quadruped as dm_quadruped

from zsrl.cli import main
from zsrl.data import collect, default_spec
from zsrl.envs import BatchSim, get_domain
from zsrl.envs.quadruped import TASKS, Physics, load, model_xml, start_states
from zsrl.envs.registry import PHYSICS_STATE

STEPS = 150
KEYS = ["egocentric_state", "torso_velocity", "torso_upright", "imu", "force_torque"]
# observation entries that dm_control's environment reads from the last physics substep: the
# accelerometer (imu's first 3) and the toes' force/torque sensors
SUBSTEP = np.r_[48:51, 54:78]
STATE_ONLY = np.setdiff1d(np.arange(78), SUBSTEP)


def physics_state(physics) -> np.ndarray:
    out = np.empty(mujoco.mj_stateSize(physics.model.ptr, PHYSICS_STATE))  # P
    mujoco.mj_getState(physics.model.ptr, physics.data.ptr, out, PHYSICS_STATE)
    return out


def flat_observation(observation) -> np.ndarray:
    assert list(observation) == KEYS
    return np.concatenate([np.atleast_1d(observation[key]) for key in KEYS])  # 78


@pytest.fixture(scope="module")
def episodes() -> dict[str, dict[str, np.ndarray]]:
    """Per task: a dm_control episode of STEPS random actions, its physics states (STEPS + 1 x P),
    actions (STEPS x 12), observations (STEPS + 1 x 78), rewards (STEPS) and, read from the
    environment's physics after each step, the torso's upright, velocimeter (3), centre-of-mass
    height and workspace position (3)."""
    out = {}
    for k, task in enumerate(TASKS):
        env = load(task, seed=k)
        rng = np.random.default_rng(k)
        timestep = env.reset()
        states, observations = (
            [physics_state(env.physics)],
            [flat_observation(timestep.observation)],
        )
        rewards, actions, measures = [], [], []
        for _ in range(STEPS):
            action = rng.uniform(-1.0, 1.0, size=12)  # 12
            timestep = env.step(action)
            named = env.physics.named.data
            measures.append(
                np.r_[
                    named.xmat["torso", "zz"],
                    named.sensordata["velocimeter"],
                    named.sensordata["center_of_mass"][2],
                    named.site_xpos["workspace"],
                ]
            )
            states.append(physics_state(env.physics))
            observations.append(flat_observation(timestep.observation))
            rewards.append(timestep.reward)
            actions.append(action)
        out[task] = dict(
            states=np.array(states),
            actions=np.array(actions),
            observations=np.array(observations),
            rewards=np.array(rewards),
            measures=np.array(measures),
        )
    return out


def test_sizes_timing_and_model_are_exorls():
    domain = get_domain("quadruped")
    env = load("jump", seed=0)
    model = domain.model()
    assert domain.physics_steps * model.opt.timestep == pytest.approx(env.control_timestep())
    assert domain.physics_steps == round(env.control_timestep() / env.physics.timestep()) == 4
    assert domain.episode_steps * env.control_timestep() == pytest.approx(20.0)
    assert domain.action_dim == env.action_spec().shape[0] == model.nu == 12
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
            expected.append(flat_observation(dm_quadruped._common_observations(physics)))
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
    run = episodes[task]
    reward = get_domain("quadruped").task(task).reward
    ours = reward(run["states"][1:], run["actions"])  # STEPS
    np.testing.assert_allclose(ours, run["rewards"], rtol=0, atol=1e-12)
    # vectorised over any leading shape
    shaped = run["states"][1:].reshape(3, STEPS // 3, -1)
    batched = reward(shaped, run["actions"].reshape(3, -1, 12))
    np.testing.assert_array_equal(batched, ours.reshape(3, -1))


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
    sim = BatchSim(get_domain("quadruped"), len(runs))
    sim.set_states(np.stack([run["states"][0] for run in runs]))
    for t in range(STEPS):
        after = sim.step(np.stack([run["actions"][t] for run in runs]))  # 7 x P
        expected = np.stack([run["states"][t + 1] for run in runs])  # 7 x P
        np.testing.assert_allclose(after, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("task", ["jump", "run", "escape"])
def test_starts_are_dm_controls_resets(task):
    env = load(task, seed=5)
    resets = []
    for _ in range(3):
        env.reset()
        resets.append(physics_state(env.physics))
    np.testing.assert_array_equal(start_states(5, 3), np.array(resets))


def test_starts_are_random_orientations_at_rest_without_contacts():
    domain = get_domain("quadruped")
    first = domain.sample_start(np.random.default_rng(0), 20)  # 20 x P
    np.testing.assert_array_equal(first, domain.sample_start(np.random.default_rng(0), 20))
    assert not np.array_equal(first, domain.sample_start(np.random.default_rng(1), 20))
    model = domain.model()
    qpos, rest = first[:, : model.nq], first[:, model.nq :]
    assert np.all(rest == 0) and np.all(qpos[:, 7:] == 0)  # velocities, activations, joints
    assert np.all(qpos[:, :2] == 0) and np.all(qpos[:, 2] >= 0)  # above the origin
    np.testing.assert_allclose(np.linalg.norm(qpos[:, 3:7], axis=1), 1.0)
    assert np.ptp(qpos[:, 3:7], axis=0).min() > 0.5  # orientations spread
    sim = BatchSim(domain, len(first))
    sim.set_states(first)
    assert all(data.ncon == 0 for data in sim.datas)


def test_random_collection_steps_as_batch_simulation_does():
    data = collect(default_spec("quadruped", "random", episodes=2), progress=False)
    T = 1000
    assert len(data) == 2 * T and data.observation.shape == (2 * T, 78)
    domain = get_domain("quadruped")
    np.testing.assert_array_equal(data.observation[:5], domain.observe(data.physics[:5]))
    # the collector's float64 actions, of which it stores float32 copies: its generator's first draw
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, size=(2, T, 12))  # episodes x T x 12
    np.testing.assert_array_equal(actions.reshape(2 * T, 12).astype(np.float32), data.action)
    sim = BatchSim(domain, 2)
    sim.set_states(data.physics[::T])  # each episode's first state
    for t in range(T):
        expected = sim.step(actions[:, t])  # 2 x P
        np.testing.assert_allclose(data.next_physics[t::T], expected, rtol=0, atol=1e-9)


def test_collect_and_train_from_the_command_line(tmp_path, capsys):
    data_dir, out = str(tmp_path / "data"), tmp_path / "run"
    args = ["--domain", "quadruped", "--dataset", "random", "--data-dir", data_dir]
    assert main(["collect", *args, "--episodes", "2"]) == 0
    assert "quadruped__random__2x1000__seed0: 2000 transitions" in capsys.readouterr().out
    settings = ["data.episodes=2", "train.steps=20", "train.eval_every=20", "train.log_every=10"]
    settings += ["train.checkpoint_every=20", "eval.episodes=1", "eval.inference_samples=1000"]
    train = ["train", *args, "--method", "fb", "--scale", "quick", "--threads", "1"]
    train += ["--tasks", "jump", "escape", "--no-progress", "--out", str(out), "--set", *settings]
    assert main(train) == 0
    record = json.loads((out / "record.json").read_text())
    assert record["complete"] and record["domain"] == "quadruped"
    assert record["tasks"] == ["jump", "escape"] and record["dataset"]["transitions"] == 2000
    for task in ("jump", "escape"):
        returns = record["evaluations"][-1]["tasks"][task]["returns"]
        assert len(returns) == 1 and 0 <= returns[0] <= 1000
