"""Environments: the domain/task registry and the domains written for zsrl."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; set before dm_control is imported

from zsrl.envs import (  # noqa: E402, F401  (register their domains)
    gym_mujoco,
    jaco,
    point_mass_maze,
    quadruped,
    walker,
)
from zsrl.envs.registry import (
    BatchSim,
    Domain,
    Task,
    domain_names,
    get_domain,
    register_domain,
    unregister_domain,
)

__all__ = [
    "BatchSim",
    "Domain",
    "Task",
    "domain_names",
    "get_domain",
    "register_domain",
    "unregister_domain",
]
