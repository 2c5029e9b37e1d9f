"""Domains and tasks: what the trainer, the collectors and the evaluator need to know of an environment.

A domain owns its MuJoCo model and everything computed from the model's physics state (``qpos, qvel,
act``, the layout of ``mjSTATE_PHYSICS``), so that a stored physics state is all a dataset needs:

- ``physics_steps``: MuJoCo steps per control step (the maze 1; dm_control's walker 10);
- ``observe``: observations from a batch of physics states (it may set the states and call
  ``mj_forward`` where observations need kinematics or sensors);
- ``sample_start``: start states of episodes, through the task's own initialisation where the domain
  has one; ``samplers``: other named state distributions (the maze's ``free``), which collectors ask
  for by name;
- each task's ``reward``: a function of (next physics state, action), vectorised over any leading
  batch shape, so one dataset is relabelled for every task and rollouts are scored in a batch (it too
  may call ``mj_forward`` or the domain's dm_control task code). A reward that also reads the state
  before the step (Gymnasium's forward progress) says so with ``reward_needs_state`` and takes it as
  the keyword ``state``; callers score transitions through ``Task.transition_reward``;
- ``terminated`` (optional): which physics states end an episode (Gymnasium's Walker2d falling).
  Rollouts stop accruing return after such a state and collected episodes end there; a domain
  without it ends episodes at its time limit only.

Anything only one domain has (the maze's drawing, coverage maps, its free-space sampler) lives in that
domain's own package. New domains register themselves here; the trainer never changes. ``make_task``
(a task of the domain's reward function and the task's own arguments) and ``seeded_sampler`` (starts
from seeded resets) are what domains build alike; the domains made of dm_control's environments
register through :mod:`zsrl.envs.dm_control_domain`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
StateSampler = Callable[[np.random.Generator, int], np.ndarray]

PHYSICS_STATE = mujoco.mjtState.mjSTATE_PHYSICS


@dataclass(frozen=True)
class Task:
    """A reward on a domain. ``goal_observation`` is set for goal-reaching tasks."""

    name: str
    domain: str
    reward: RewardFn
    goal_observation: np.ndarray | None = None
    distance: Callable[[np.ndarray], np.ndarray] | None = None  # state -> distance to the goal
    success_distance: float | None = None  # a goal counts as reached within this distance
    # the reward also reads the physics state before the step, as the keyword ``state``
    reward_needs_state: bool = False

    def transition_reward(
        self, state: np.ndarray, action: np.ndarray, next_state: np.ndarray
    ) -> np.ndarray:
        """The reward of transitions (state, action, next_state), each (..., P), (..., A), (..., P):
        ``reward(next_state, action)``, with ``state=state`` for a reward that reads it."""
        if self.reward_needs_state:
            return self.reward(next_state, action, state=state)
        return self.reward(next_state, action)


def make_task(
    domain: str,
    name: str,
    reward: Callable[..., np.ndarray],
    *args: Any,
    distance: Callable[..., np.ndarray] | None = None,
    **fields: Any,
) -> Task:
    """Task ``name`` of ``domain`` scored by the domain's reward function with the task's own
    arguments ``args`` (its name, its goal, its environment): ``reward(next_state, action, *args)``,
    keywords passed on (``state``); where given, its distance is ``distance(state, *args)``.
    ``fields``: the Task's other fields (``success_distance``, ``reward_needs_state``...)."""

    def task_reward(next_state: np.ndarray, action: np.ndarray, **keywords: Any) -> np.ndarray:
        return reward(next_state, action, *args, **keywords)

    def task_distance(state: np.ndarray) -> np.ndarray:
        return distance(state, *args)

    return Task(
        name=name,
        domain=domain,
        reward=task_reward,
        distance=None if distance is None else task_distance,
        **fields,
    )


def physics_state(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """The physics state (P,) that ``data`` holds, as ``mj_getState`` reads it."""
    out = np.empty(mujoco.mj_stateSize(model, PHYSICS_STATE))  # P
    mujoco.mj_getState(model, data, out, PHYSICS_STATE)
    return out


def seeded_sampler(start_states: Callable[[int, int], np.ndarray]) -> StateSampler:
    """The state sampler of a domain whose starts come from seeded resets: a seed drawn from the
    generator, then ``start_states(seed, n)`` (n states, (n, P))."""

    def sample(rng: np.random.Generator, n: int) -> np.ndarray:
        return start_states(int(rng.integers(2**31)), n)

    return sample


@dataclass(frozen=True)
class Domain:
    """An environment family: its model, sizes, start distribution and tasks."""

    name: str
    xml_path: Path | None  # None for a model built in code (``build_model``)
    obs_dim: int
    action_dim: int
    episode_steps: int
    tasks: Mapping[str, Task]
    sample_start: StateSampler  # the evaluation start distribution
    observe: Callable[[np.ndarray], np.ndarray]  # physics states (n, P) -> observations (n, O)
    load: Callable[..., object] | None = None  # task name, seed -> a dm_control Environment
    samplers: Mapping[str, StateSampler] = field(default_factory=dict)  # other named state samplers
    physics_steps: int = 1  # MuJoCo steps per control step
    max_return: float = 1000.0  # the best possible episode return of a task (a reward ≤ 1 per step)
    # (axes, paths: episodes x steps x P physics states, task name) -> episodes drawn on the domain's
    # map; None for a domain without one
    draw_paths: Callable[[Any, np.ndarray, str], None] | None = None
    # the MuJoCo model where it is not the file ``xml_path`` alone: dm_control's quadruped (the
    # suite's file edited by its ``make_model``), jaco (built in code by composer, no file); None:
    # compiled from ``xml_path``
    build_model: Callable[[], mujoco.MjModel] | None = None
    # physics states (..., P) -> bool (...): the state ends its episode (no step follows it); None:
    # episodes end at the time limit only
    terminated: Callable[[np.ndarray], np.ndarray] | None = None
    d4rl_name: str | None = None  # D4RL's name of the environment, for its normalised scores
    # ExORL's stored actions (n, A) -> the controls this domain takes, where ExORL collected through
    # dm_control's action_scale wrapper and the domain takes raw controls (quadruped); None: the same
    exorl_actions: Callable[[np.ndarray], np.ndarray] | None = None
    default_dataset: str = "random"  # the collector a run uses when it names none

    def task(self, name: str) -> Task:
        if name not in self.tasks:
            raise ValueError(
                f"unknown task {name!r} for domain {self.name!r}; valid tasks: {sorted(self.tasks)}"
            )
        return self.tasks[name]

    def model(self) -> mujoco.MjModel:
        if self.build_model is not None:
            return self.build_model()
        return mujoco.MjModel.from_xml_path(str(self.xml_path))

    def sampler(self, name: str) -> StateSampler:
        """The named state sampler; one the domain lacks is an error listing those it has."""
        if name not in self.samplers:
            raise ValueError(
                f"domain {self.name!r} has no state sampler {name!r}; its samplers: "
                f"{sorted(self.samplers)}"
            )
        return self.samplers[name]


_DOMAINS: dict[str, Domain] = {}


def register_domain(domain: Domain, replace: bool = False) -> Domain:
    """Add ``domain``; a name taken by another domain is an error unless ``replace``."""
    if domain.name in _DOMAINS and not replace:
        raise ValueError(f"domain {domain.name!r} is already registered")
    _DOMAINS[domain.name] = domain
    return domain


def unregister_domain(name: str) -> None:
    _DOMAINS.pop(name, None)


def domain_names() -> list[str]:
    return sorted(_DOMAINS)


def get_domain(name: str) -> Domain:
    if name not in _DOMAINS:
        raise ValueError(f"unknown domain {name!r}; valid choices: {domain_names()}")
    return _DOMAINS[name]


class BatchSim:
    """n copies of a domain's physics stepped in lock-step (rollouts batched over tasks and episodes)."""

    def __init__(self, domain: Domain, n: int):
        self.domain = domain
        self.model = domain.model()
        self.datas = [mujoco.MjData(self.model) for _ in range(n)]
        self.state_size = mujoco.mj_stateSize(self.model, PHYSICS_STATE)

    def set_states(self, states: np.ndarray, copies: np.ndarray | None = None) -> None:
        """Set the physics states (n, P) of every copy, or (k, P) of the k ``copies`` named."""
        datas = self.datas if copies is None else [self.datas[i] for i in copies]
        for data, state in zip(datas, states, strict=True):
            mujoco.mj_resetData(self.model, data)
            mujoco.mj_setState(self.model, data, state, PHYSICS_STATE)
            mujoco.mj_forward(self.model, data)

    def states(self) -> np.ndarray:
        out = np.empty((len(self.datas), self.state_size))  # n x P
        for row, data in zip(out, self.datas, strict=True):
            mujoco.mj_getState(self.model, data, row, PHYSICS_STATE)
        return out

    def step(self, actions: np.ndarray) -> np.ndarray:
        """Apply actions (n, A) for one control step (the domain's ``physics_steps`` MuJoCo steps);
        return the next physics states (n, P)."""
        for data, action in zip(self.datas, actions, strict=True):
            data.ctrl[:] = action
            mujoco.mj_step(self.model, data, nstep=self.domain.physics_steps)
        return self.states()
