"""Domains and tasks: what the trainer, the collectors and the evaluator need to know of an environment.

A domain is a MuJoCo model plus pure functions of its physics state (``qpos, qvel, act``, the layout of
``mjSTATE_PHYSICS``). A task is a reward function of (next physics state, action), vectorised over any
leading batch shape, so one dataset can be relabelled for every task and rollouts can be scored in a batch.
Later domains (walker, quadruped, jaco, cheetah) register themselves here; the trainer never changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass(frozen=True)
class Domain:
    """An environment family: its model, sizes, start distribution and tasks."""

    name: str
    xml_path: Path
    obs_dim: int
    action_dim: int
    episode_steps: int
    tasks: Mapping[str, Task]
    sample_start: StateSampler  # the evaluation start distribution
    observe: Callable[[np.ndarray], np.ndarray]  # physics states (n, P) -> observations (n, O)
    load: Callable[..., object]  # task name, seed -> dm_control Environment
    samplers: Mapping[str, StateSampler] = field(default_factory=dict)  # other named state samplers

    def task(self, name: str) -> Task:
        if name not in self.tasks:
            raise ValueError(
                f"unknown task {name!r} for domain {self.name!r}; valid tasks: {sorted(self.tasks)}"
            )
        return self.tasks[name]

    def model(self) -> mujoco.MjModel:
        return mujoco.MjModel.from_xml_path(str(self.xml_path))


_DOMAINS: dict[str, Domain] = {}


def register_domain(domain: Domain) -> Domain:
    _DOMAINS[domain.name] = domain
    return domain


def domain_names() -> list[str]:
    return sorted(_DOMAINS)


def get_domain(name: str) -> Domain:
    if name not in _DOMAINS:
        raise ValueError(f"unknown domain {name!r}; valid domains: {domain_names()}")
    return _DOMAINS[name]


class BatchSim:
    """n copies of a domain's physics stepped in lock-step (rollouts batched over tasks and episodes)."""

    def __init__(self, domain: Domain, n: int):
        self.domain = domain
        self.model = domain.model()
        self.datas = [mujoco.MjData(self.model) for _ in range(n)]
        self.state_size = mujoco.mj_stateSize(self.model, PHYSICS_STATE)

    def set_states(self, states: np.ndarray) -> None:
        for data, state in zip(self.datas, states, strict=True):
            mujoco.mj_resetData(self.model, data)
            mujoco.mj_setState(self.model, data, state, PHYSICS_STATE)
            mujoco.mj_forward(self.model, data)

    def states(self) -> np.ndarray:
        out = np.empty((len(self.datas), self.state_size))  # n x P
        for row, data in zip(out, self.datas, strict=True):
            mujoco.mj_getState(self.model, data, row, PHYSICS_STATE)
        return out

    def step(self, actions: np.ndarray) -> np.ndarray:
        """Apply actions (n, A) for one control step; return the next physics states (n, P)."""
        for data, action in zip(self.datas, actions, strict=True):
            data.ctrl[:] = action
            mujoco.mj_step(self.model, data)
        return self.states()
