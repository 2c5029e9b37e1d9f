"""What the domains made of dm_control's environments (walker, quadruped, jaco) share: start states
read from an environment's own resets, and a domain built from the names each such package defines.

Such a package defines ``TASKS`` (its task names), ``OBS_DIM``, ``ACTION_DIM``, ``EPISODE_STEPS``
(control steps per episode), ``PHYSICS_STEPS`` (MuJoCo steps per control step),
``observe(states)``, ``load(task, seed)`` (its dm_control environment) and ``start_states(seed, n)``
(n successive resets of one environment seeded ``seed``, through :func:`reset_states`);
:func:`register_dm_control_domain` makes and registers its :class:`~zsrl.envs.registry.Domain`,
whose evaluation starts are ``start_states`` seeded from the generator.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import dm_env
import mujoco
import numpy as np

from zsrl.envs.registry import (
    PHYSICS_STATE,
    Domain,
    Task,
    make_task,
    physics_state,
    register_domain,
    seeded_sampler,
)


def reset_states(env: dm_env.Environment, n: int) -> np.ndarray:
    """The physics states (n, P) of n successive resets of the dm_control environment ``env`` (its
    task's ``initialize_episode`` in the physics' reset context), read back with ``mj_getState``."""
    out = np.empty((n, mujoco.mj_stateSize(env.physics.model.ptr, PHYSICS_STATE)))  # n x P
    for row in out:
        env.reset()  # a composer environment compiles a new physics at every reset
        row[:] = physics_state(env.physics.model.ptr, env.physics.data.ptr)
    return out


def register_dm_control_domain(
    package: str,
    name: str,
    reward: Callable[[np.ndarray, np.ndarray, str], np.ndarray] | None = None,
    tasks: Mapping[str, Task] | None = None,
    **fields: Any,
) -> Domain:
    """Register domain ``name`` of the dm_control domain package named ``package`` (its
    ``__name__``; the names it defines are in the module docstring). Its tasks are ``tasks`` or,
    without them, each of the package's ``TASKS`` scored by ``reward(next_state, action, task
    name)``; ``fields``: the Domain's other fields (``xml_path``, ``build_model``...)."""
    module = sys.modules[package]
    if (reward is None) == (tasks is None):
        raise ValueError(f"domain {name!r}: give either a reward of the task name or the tasks")
    if tasks is None:
        tasks = {task: make_task(name, task, reward, task) for task in module.TASKS}
    return register_domain(
        Domain(
            name=name,
            obs_dim=module.OBS_DIM,
            action_dim=module.ACTION_DIM,
            episode_steps=module.EPISODE_STEPS,
            physics_steps=module.PHYSICS_STEPS,
            tasks=tasks,
            sample_start=seeded_sampler(module.start_states),
            observe=module.observe,
            load=module.load,
            **fields,
        )
    )
