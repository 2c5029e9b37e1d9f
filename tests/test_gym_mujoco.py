"""Gymnasium's Walker2d-v5 and HalfCheetah-v5 as domains: observations, rewards, terminations,
stepping and starts agree with Gymnasium's environments on the same trajectories, and the domains
collect (ending episodes at terminal states), evaluate (with D4RL's normalised score) and read D4RL
files. What every domain meets alike (random collection, training) is tested in test_domains.py."""

from __future__ import annotations

import gymnasium
import h5py
import mujoco
import numpy as np
import pytest
import torch
from environment_episodes import (
    assert_batch_simulation_steps_as_the_environment,
    assert_rewards_are_the_environments,
)

from zsrl.config import apply_overrides, preset
from zsrl.data import DatasetError, collect, default_spec, get_source
from zsrl.data.readers import D4RL_REFERENCE_RETURNS, d4rl_domain, d4rl_normalized_score
from zsrl.envs import get_domain
from zsrl.envs.gym_mujoco import ENVIRONMENTS, TASK, start_states
from zsrl.envs.registry import PHYSICS_STATE, physics_state
from zsrl.evaluate import evaluate

DOMAINS = ("walker2d", "halfcheetah")
STEPS = 200


def make_env(domain: str) -> gymnasium.Env:
    return gymnasium.make(ENVIRONMENTS[domain].env_id)


def gym_state(env: gymnasium.Env) -> np.ndarray:
    """The physics state (P,) of a Gymnasium MuJoCo environment."""
    return physics_state(env.unwrapped.model, env.unwrapped.data)


@pytest.fixture(scope="module")
def episodes() -> dict[str, dict[str, np.ndarray]]:
    """Per domain: STEPS random actions in the Gymnasium environment (stepped on past Walker2d's
    terminal states, which the environment allows), its physics states (STEPS + 1 x P), actions
    (STEPS x 6), observations (STEPS + 1 x 17), rewards and terminations (STEPS each)."""
    out = {}
    for k, name in enumerate(DOMAINS):
        env = make_env(name)
        rng = np.random.default_rng(k)
        obs, _ = env.reset(seed=k)
        run = dict(states=[gym_state(env)], observations=[obs], actions=[], rewards=[])
        run["terminated"] = []
        for _ in range(STEPS):
            action = rng.uniform(-1.0, 1.0, size=6)  # 6
            obs, reward, terminated, _, _ = env.unwrapped.step(action)
            for key, value in zip(
                ("states", "observations", "actions", "rewards", "terminated"),
                (gym_state(env), obs, action, reward, terminated),
                strict=True,
            ):
                run[key].append(value)
        out[name] = {key: np.array(value) for key, value in run.items()}
    return out


@pytest.mark.parametrize("name", DOMAINS)
def test_sizes_timing_and_model_are_gymnasiums(name):
    domain, env = get_domain(name), make_env(name)
    unwrapped = env.unwrapped
    assert str(domain.xml_path) == unwrapped.fullpath
    assert domain.physics_steps == unwrapped.frame_skip
    assert domain.physics_steps * domain.model().opt.timestep == unwrapped.dt
    assert ENVIRONMENTS[name].dt == unwrapped.dt
    assert domain.episode_steps == env.spec.max_episode_steps == 1000
    assert domain.obs_dim == env.observation_space.shape[0] == 17
    assert domain.action_dim == env.action_space.shape[0] == 6
    assert len(gym_state(env)) == unwrapped.model.nq + unwrapped.model.nv
    assert list(domain.tasks) == [TASK] and domain.task(TASK).reward_needs_state
    assert domain.d4rl_name == name and d4rl_domain(f"{name}-medium-v2") == name
    assert domain.max_return == D4RL_REFERENCE_RETURNS[name][1]
    assert (domain.terminated is not None) == (name == "walker2d")


@pytest.mark.parametrize("name", DOMAINS)
def test_observations_are_the_environments(episodes, name):
    run = episodes[name]
    ours = get_domain(name).observe(run["states"])  # STEPS + 1 x 17
    assert ours.shape == (STEPS + 1, 17) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, run["observations"].astype(np.float32))
    if name == "walker2d":  # the velocity clip is exercised
        assert np.abs(run["states"][:, 9:]).max() > 10


@pytest.mark.parametrize("name", DOMAINS)
def test_rewards_and_terminations_are_the_environments_at_every_step(episodes, name):
    run, domain = episodes[name], get_domain(name)
    task = domain.task(TASK)
    assert_rewards_are_the_environments(task, run)
    with pytest.raises(ValueError, match="needs the physics state before the step"):
        task.reward(run["states"][1:], run["actions"])
    if name == "walker2d":
        np.testing.assert_array_equal(domain.terminated(run["states"][1:]), run["terminated"])
        assert run["terminated"].any() and not run["terminated"].all()
    else:
        assert not run["terminated"].any()


def test_walker2d_health_is_the_environments_at_its_bounds():
    env = make_env("walker2d")
    env.reset(seed=0)
    unwrapped = env.unwrapped
    domain = get_domain("walker2d")
    qvel = np.zeros(unwrapped.model.nv)
    for z in (0.8, 0.8 + 1e-9, 1.25, 2.0 - 1e-9, 2.0):
        for angle in (-1.0, -1.0 + 1e-9, 0.0, 1.0 - 1e-9, 1.0):
            qpos = unwrapped.init_qpos.copy()
            qpos[1:3] = z, angle
            unwrapped.set_state(qpos, qvel)
            assert bool(domain.terminated(gym_state(env))) == (not unwrapped.is_healthy)


@pytest.mark.parametrize("name", DOMAINS)
def test_batch_simulation_steps_as_the_environment_does(episodes, name):
    assert_batch_simulation_steps_as_the_environment(get_domain(name), [episodes[name]])


@pytest.mark.parametrize("name", DOMAINS)
def test_starts_are_the_environments_resets(name):
    env = make_env(name)
    resets = []
    for k in range(3):
        env.reset(seed=5 if k == 0 else None)
        resets.append(gym_state(env))
    np.testing.assert_array_equal(start_states(5, 3, ENVIRONMENTS[name]), np.array(resets))
    domain = get_domain(name)
    first = domain.sample_start(np.random.default_rng(0), 20)  # 20 x P
    assert len(np.unique(first[:, 0])) == 20  # every reset draws its own noise


def test_random_collection_ends_walker2d_episodes_at_terminal_states():
    name, E = "walker2d", 3
    data = collect(default_spec(name, "random", episodes=E), progress=False)
    domain, task = get_domain(name), get_domain(name).task(TASK)
    T = domain.episode_steps
    ends = np.r_[data.episode[1:] != data.episode[:-1], True]  # n: last step of an episode
    np.testing.assert_array_equal(np.unique(data.episode), np.arange(E))
    assert len(data) < E * T and data.terminal.any()
    np.testing.assert_array_equal(data.terminal | data.truncation, ends)
    assert not (data.terminal & data.truncation).any()
    np.testing.assert_array_equal(data.observation, domain.observe(data.physics))
    # the collector's actions: its generator's first draw, each episode cut after its end
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, size=(E, T, 6))  # E x T x 6
    rewards = np.empty(len(data))  # n: the environment's
    for e in range(E):
        rows = np.flatnonzero(data.episode == e)
        np.testing.assert_array_equal(data.step[rows], np.arange(len(rows)))
        np.testing.assert_array_equal(data.action[rows], actions[e, : len(rows)].astype(np.float32))
        # Gymnasium's environment, from the episode's start with the same actions, ends it there
        env = make_env(name)
        env.reset(seed=0)
        nq = env.unwrapped.model.nq
        env.unwrapped.set_state(data.physics[rows[0], :nq], data.physics[rows[0], nq:])
        for t, row in enumerate(rows):
            obs, reward, terminated, _, _ = env.unwrapped.step(actions[e, t])
            np.testing.assert_allclose(gym_state(env), data.next_physics[row], atol=1e-9)
            assert terminated == data.terminal[row]
            rewards[row] = reward
    # relabelled from the stored physics states and the float32 actions the dataset holds
    np.testing.assert_allclose(data.rewards(task), rewards, rtol=1e-5, atol=1e-5)


def test_random_walker2d_episodes_are_each_a_fresh_simulations():
    """Collection steps the episodes one after another in one MjData; each is, bitwise, what a
    fresh MjData steps from the same start with the same actions."""
    name, E = "walker2d", 4
    data = collect(default_spec(name, "random", episodes=E), progress=False)
    domain = get_domain(name)
    model = domain.model()
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, size=(E, domain.episode_steps, 6))
    state = np.empty(mujoco.mj_stateSize(model, PHYSICS_STATE))  # P
    for e in range(E):
        rows = np.flatnonzero(data.episode == e)
        fresh = mujoco.MjData(model)
        mujoco.mj_setState(model, fresh, data.physics[rows[0]], PHYSICS_STATE)
        mujoco.mj_forward(model, fresh)
        for t, row in enumerate(rows):
            fresh.ctrl[:] = actions[e, t]
            mujoco.mj_step(model, fresh, nstep=domain.physics_steps)
            mujoco.mj_getState(model, fresh, state, PHYSICS_STATE)
            np.testing.assert_array_equal(state, data.next_physics[row])


class LinearPolicy:
    """A stand-in model: a fixed linear map of the observation, squashed to the action range."""

    def __init__(self, seed: int = 0):
        self.obs_mean = torch.zeros(17)
        self.weights = torch.as_tensor(np.random.default_rng(seed).normal(0, 0.3, (17, 6)))

    def task_contexts(self, tasks, *args):
        return None

    def act(self, obs, context):
        return torch.tanh(obs.double() @ self.weights)  # n x 6


@pytest.mark.parametrize("name", DOMAINS)
def test_evaluation_returns_are_the_environments_until_termination(name):
    domain, policy = get_domain(name), LinearPolicy()
    episodes, seed = 3, 0
    results = evaluate(policy, domain, episodes=episodes, seed=seed)
    starts = domain.sample_start(np.random.default_rng(seed), episodes)  # episodes x P
    expected, lengths = [], []
    for start in starts:
        env = make_env(name)
        env.reset(seed=0)
        nq = env.unwrapped.model.nq
        env.unwrapped.set_state(start[:nq], start[nq:])
        obs, total, steps, terminated = env.unwrapped._get_obs(), 0.0, 0, False
        while steps < domain.episode_steps and not terminated:
            action = policy.act(torch.as_tensor(obs.astype(np.float32))[None], None)[0]
            obs, reward, terminated, _, _ = env.unwrapped.step(action.numpy())
            total, steps = total + reward, steps + 1
        expected.append(total)
        lengths.append(steps)
    result = results[TASK]
    np.testing.assert_allclose(result.returns, expected, rtol=1e-6, atol=1e-6)
    if name == "walker2d":
        # the episodes were ended by falling, at different steps (one stops accruing before another)
        assert max(lengths) < domain.episode_steps and len(set(lengths)) > 1
    assert result.normalized_score == pytest.approx(d4rl_normalized_score(name, result.score))
    assert result.to_dict()["normalized_score"] == result.normalized_score


def test_d4rl_files_are_read_as_their_domains_data(tmp_path):
    assert d4rl_domain("walker2d_medium-v2") == "walker2d"
    assert d4rl_domain("halfcheetah-medium-replay-v2") == "halfcheetah"
    assert d4rl_domain("hopper-medium-v2") is None and d4rl_domain("dataset") is None
    rows, rng = 50, np.random.default_rng(0)
    file = tmp_path / "walker2d_medium-v2.hdf5"
    with h5py.File(file, "w") as f:
        f["observations"] = rng.normal(size=(rows, 17)).astype(np.float32)
        f["actions"] = rng.uniform(-1, 1, (rows, 6)).astype(np.float32)
        f["rewards"] = rng.normal(size=rows).astype(np.float32)
        f["terminals"] = np.arange(rows) == rows - 1
        f["timeouts"] = np.zeros(rows, bool)
    settings = ["data.source='d4rl'", f"data.path='{file}'"]
    data = get_source("d4rl")(
        apply_overrides(preset("fb", "walker2d", "quick"), settings), None, False
    )
    assert data.meta["reward_task"] == TASK and len(data) == rows - 1  # the domain's one task
    with pytest.raises(DatasetError, match="holds data of domain 'walker2d'.*'halfcheetah'"):
        get_source("d4rl")(
            apply_overrides(preset("fb", "halfcheetah", "quick"), settings), None, False
        )
