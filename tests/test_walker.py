"""The walker domain against dm_control: observations, rewards, stepping and starts agree with the
suite's environments (and ExORL's flip with its formula), and the domain collects, trains and
evaluates."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from zsrl.config import apply_overrides, preset
from zsrl.data import collect, default_spec
from zsrl.envs import BatchSim, get_domain
from zsrl.envs.registry import PHYSICS_STATE
from zsrl.envs.walker import TASKS, load, start_states
from zsrl.train import Trainer

STEPS = 200


def physics_state(env) -> np.ndarray:
    physics = env.physics
    out = np.empty(mujoco.mj_stateSize(physics.model.ptr, PHYSICS_STATE))  # P
    mujoco.mj_getState(physics.model.ptr, physics.data.ptr, out, PHYSICS_STATE)
    return out


def flat_observation(timestep) -> np.ndarray:
    obs = timestep.observation
    assert list(obs) == ["orientations", "height", "velocity"]
    return np.concatenate([np.atleast_1d(obs[key]) for key in obs])  # 24


@pytest.fixture(scope="module")
def episodes() -> dict[str, dict[str, np.ndarray]]:
    """Per task: a dm_control episode of STEPS random actions, its physics states (STEPS + 1 x P),
    actions (STEPS x 6), observations (STEPS + 1 x 24), rewards (STEPS) and flip's hand measures."""
    out = {}
    for k, task in enumerate(TASKS):
        env = load(task, seed=k)
        rng = np.random.default_rng(k)
        timestep = env.reset()
        states, observations, rewards, actions, measures = [physics_state(env)], [], [], [], []
        observations.append(flat_observation(timestep))
        for _ in range(STEPS):
            action = rng.uniform(-1.0, 1.0, size=6)  # 6
            timestep = env.step(action)
            named = env.physics.named.data
            measures.append(
                (named.xpos["torso", "z"], named.xmat["torso", "zz"])
                + (named.subtree_angmom["torso"][1],)
            )
            states.append(physics_state(env))
            observations.append(flat_observation(timestep))
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


def test_sizes_and_timing_are_dm_controls():
    domain = get_domain("walker")
    env = load("walk", seed=0)
    assert domain.physics_steps * domain.model().opt.timestep == pytest.approx(
        env.control_timestep()
    )
    assert domain.physics_steps == round(env.control_timestep() / env.physics.timestep()) == 10
    assert domain.episode_steps * env.control_timestep() == pytest.approx(25.0)
    assert domain.action_dim == env.action_spec().shape[0] == 6
    assert domain.obs_dim == 24 and set(domain.tasks) == {"stand", "walk", "run", "flip"}
    assert all(task.goal_observation is None for task in domain.tasks.values())


def test_observations_are_dm_controls_flattened(episodes):
    domain = get_domain("walker")
    for run in episodes.values():
        ours = domain.observe(run["states"])  # STEPS + 1 x 24
        assert ours.shape == (STEPS + 1, 24) and ours.dtype == np.float32
        np.testing.assert_array_equal(ours, run["observations"].astype(np.float32))


@pytest.mark.parametrize("task", TASKS)
def test_rewards_are_the_environments_at_every_step(episodes, task):
    run = episodes[task]
    reward = get_domain("walker").task(task).reward
    ours = reward(run["states"][1:], run["actions"])  # STEPS
    np.testing.assert_allclose(ours, run["rewards"], rtol=0, atol=1e-12)
    # vectorised over any leading shape
    batched = reward(run["states"][1:].reshape(2, STEPS // 2, -1), run["actions"].reshape(2, -1, 6))
    np.testing.assert_array_equal(batched, ours.reshape(2, -1))


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
    sim = BatchSim(get_domain("walker"), len(runs))
    sim.set_states(np.stack([run["states"][0] for run in runs]))
    for t in range(STEPS):
        after = sim.step(np.stack([run["actions"][t] for run in runs]))  # 4 x P
        expected = np.stack([run["states"][t + 1] for run in runs])  # 4 x P
        np.testing.assert_allclose(after, expected, rtol=0, atol=1e-9)


def test_starts_are_dm_controls_resets():
    env = load("stand", seed=5)
    resets = []
    for _ in range(3):
        env.reset()
        resets.append(physics_state(env))
    np.testing.assert_array_equal(start_states(5, 3), np.array(resets))
    domain = get_domain("walker")
    first = domain.sample_start(np.random.default_rng(0), 50)  # 50 x P
    np.testing.assert_array_equal(first, domain.sample_start(np.random.default_rng(0), 50))
    assert not np.array_equal(first, domain.sample_start(np.random.default_rng(1), 50))
    model = domain.model()
    qpos, qvel = first[:, : model.nq], first[:, model.nq : model.nq + model.nv]
    assert np.all(qvel == 0) and np.all(qpos[:, :2] == 0)  # rootz, rootx at rest at 0
    assert np.all(np.abs(qpos[:, 2]) <= np.pi)  # rooty
    low, high = model.jnt_range[3:].T  # the six limited joints
    assert np.all((qpos[:, 3:] >= low) & (qpos[:, 3:] <= high))


def test_random_collection_steps_as_batch_simulation_does():
    data = collect(default_spec("walker", "random", episodes=2), progress=False)
    T = 1000
    assert len(data) == 2 * T and data.observation.shape == (2 * T, 24)
    domain = get_domain("walker")
    np.testing.assert_array_equal(data.observation[:5], domain.observe(data.physics[:5]))
    # the collector's float64 actions, of which it stores float32 copies: its generator's first draw
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, size=(2, T, 6))  # episodes x T x 6
    np.testing.assert_array_equal(actions.reshape(2 * T, 6).astype(np.float32), data.action)
    sim = BatchSim(domain, 2)
    sim.set_states(data.physics[::T])  # each episode's first state
    for t in range(T):
        expected = sim.step(actions[:, t])  # 2 x P
        np.testing.assert_allclose(data.next_physics[t::T], expected, rtol=0, atol=1e-9)


def test_forward_backward_trains_and_evaluates_on_walker(tmp_path):
    settings = ["data.name='random'", "data.episodes=3", "train.steps=20", "train.eval_every=10"]
    settings += ["train.log_every=10", "train.checkpoint_every=10", "eval.episodes=1"]
    settings += ["eval.tasks=['stand']"]
    cfg = apply_overrides(preset("fb", "walker", "quick"), settings)
    cfg.validate()
    record = Trainer(cfg, tmp_path / "run", data_root=tmp_path / "data", progress=False).run()
    assert record["complete"] and record["domain"] == "walker" and record["tasks"] == ["stand"]
    assert record["dataset"]["transitions"] == 3 * 1000
    returns = record["evaluations"][-1]["tasks"]["stand"]["returns"]
    assert len(returns) == 1 and 0 <= returns[0] <= 1000
