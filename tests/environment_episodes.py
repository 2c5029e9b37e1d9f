"""Episodes of a domain's own environment, and the checks each domain's tests make against them:
the domain's rewards are the environment's at every step, a batch simulation steps as the
environment does, its starts are the environment's resets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dm_env
import numpy as np

from zsrl.envs import BatchSim, Domain, Task
from zsrl.envs.registry import physics_state

Run = dict[str, Any]  # arrays, and the environment (``env``)


def dm_control_state(env: dm_env.Environment) -> np.ndarray:
    """The physics state (P,) of a dm_control environment."""
    return physics_state(env.physics.model.ptr, env.physics.data.ptr)


def flat_observation(observation: dict[str, np.ndarray], keys: Sequence[str]) -> np.ndarray:
    """A dm_control observation (its entries exactly ``keys``, in order) flattened, as ExORL
    flattens it."""
    assert list(observation) == list(keys)
    return np.concatenate([np.ravel(observation[key]) for key in keys])


def dm_control_episodes(
    load: Callable[[str, int], dm_env.Environment],
    tasks: Sequence[str],
    steps: int,
    keys: Sequence[str],
    measure: Callable[..., object] | None = None,
) -> dict[str, Run]:
    """Per task (the k-th of ``tasks``), an episode of ``steps`` uniform random actions in [-1, 1]
    (a generator seeded k) in the environment ``load(task, k)`` from its reset: its physics states
    (steps + 1 x P), actions (steps x A), flattened observations (steps + 1 x O), rewards (steps),
    whether each step ended the episode (steps), with ``measure`` what it reads from the physics
    after each step (steps x ...), and the environment (``env``)."""
    return {task: _episode(load(task, k), steps, k, keys, measure) for k, task in enumerate(tasks)}


def _episode(
    env: dm_env.Environment,
    steps: int,
    seed: int,
    keys: Sequence[str],
    measure: Callable[..., object] | None,
) -> Run:
    rng = np.random.default_rng(seed)
    timestep = env.reset()
    run = dict(states=[dm_control_state(env)], actions=[], rewards=[], last=[], measures=[])
    run["observations"] = [flat_observation(timestep.observation, keys)]
    for _ in range(steps):
        action = rng.uniform(-1.0, 1.0, size=env.action_spec().shape)  # A
        timestep = env.step(action)
        if measure is not None:
            run["measures"].append(np.array(measure(env.physics), dtype=np.float64))
        run["states"].append(dm_control_state(env))
        run["observations"].append(flat_observation(timestep.observation, keys))
        run["rewards"].append(timestep.reward)
        run["actions"].append(action)
        run["last"].append(timestep.last())
    if measure is None:
        del run["measures"]
    return {key: np.array(value) for key, value in run.items()} | {"env": env}


def dm_control_resets(env: dm_env.Environment, n: int) -> np.ndarray:
    """The physics states (n, P) after each of n successive resets of ``env``."""
    resets = []
    for _ in range(n):
        env.reset()
        resets.append(dm_control_state(env))
    return np.array(resets)


def assert_rewards_are_the_environments(task: Task, run: Run, parts: int = 2) -> None:
    """``task``'s reward of every step of ``run`` is the environment's (to 1e-12), and the same
    scored with the steps split into ``parts`` rows (vectorised over any leading shape)."""
    before, actions, after = run["states"][:-1], run["actions"], run["states"][1:]
    ours = task.transition_reward(before, actions, after)  # steps
    np.testing.assert_allclose(ours, run["rewards"], rtol=0, atol=1e-12)

    def split(x: np.ndarray) -> np.ndarray:
        return x.reshape(parts, len(x) // parts, -1)  # parts x steps / parts x ...

    batched = task.transition_reward(split(before), split(actions), split(after))
    np.testing.assert_array_equal(batched, ours.reshape(parts, -1))


def assert_batch_simulation_steps_as_the_environment(domain: Domain, runs: Sequence[Run]) -> None:
    """A batch simulation of the runs' first states, stepped by their actions in lock-step, is at
    their next physics states at every step (to 1e-9)."""
    sim = BatchSim(domain, len(runs))
    sim.set_states(np.stack([run["states"][0] for run in runs]))
    for t in range(len(runs[0]["actions"])):
        after = sim.step(np.stack([run["actions"][t] for run in runs]))  # runs x P
        expected = np.stack([run["states"][t + 1] for run in runs])  # runs x P
        np.testing.assert_allclose(after, expected, rtol=0, atol=1e-9)
