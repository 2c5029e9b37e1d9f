"""What the domains made of dm_control's environments (walker, quadruped, jaco) share: start states
read from an environment's own resets, so that a domain's starts are its task's initialisation.

Each such package defines ``load(task, seed)`` (its dm_control environment) and ``start_states(seed,
n)`` (n successive resets of one environment seeded ``seed``, through :func:`reset_states`), and
registers its :class:`~zsrl.envs.registry.Domain` with ``seeded_sampler(start_states)`` as its
evaluation starts.
"""

from __future__ import annotations

import dm_env
import mujoco
import numpy as np

from zsrl.envs.registry import (
    PHYSICS_STATE,
    physics_state,
)


def reset_states(env: dm_env.Environment, n: int) -> np.ndarray:
    """The physics states (n, P) of n successive resets of the dm_control environment ``env`` (its
    task's ``initialize_episode`` in the physics' reset context), read back with ``mj_getState``."""
    out = np.empty((n, mujoco.mj_stateSize(env.physics.model.ptr, PHYSICS_STATE)))  # n x P
    for row in out:
        env.reset()  # a composer environment compiles a new physics at every reset
        row[:] = physics_state(env.physics.model.ptr, env.physics.data.ptr)
    return out
