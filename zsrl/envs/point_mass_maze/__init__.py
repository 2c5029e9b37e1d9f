"""The paper's point-mass maze (reference: ref-maze), as a dm_control domain written here.

The package holds everything only the maze has: its model, tasks and samplers here, and its maps
(walls, rollouts drawn on them, dataset coverage) in :mod:`zsrl.envs.point_mass_maze.maps`.

A 2-D point mass moves through four rooms joined by gaps. Its observation is its physics state,
(x, y, vx, vy), so a stored physics state is all that is needed to relabel a transition for any task.
Rewards are vectorised functions of (next physics state, action): one function scores a dataset
of 100k transitions, a batch of evaluation rollouts, or a single dm_control time step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from dm_control import mujoco as dm_mujoco
from dm_control.rl import control
from dm_control.suite import base
from dm_control.utils import rewards

from zsrl.envs.registry import Domain, make_task, register_domain

XML_PATH = Path(__file__).with_name("point_mass_maze.xml")

EPISODE_STEPS = 1000  # 20 s at 0.02 s per control step
CONTROL_TIMESTEP = 0.02
TARGET_RADIUS = 0.015
MASS_RADIUS = 0.01
ARENA_LIMIT = 0.29  # joint range of both slide joints
WALL_HALF_THICKNESS = 0.02
WALL_HALF_LENGTH = 0.18
MAX_SPEED = 0.1  # terminal speed under full force: gear 0.1 · ctrl 1 / damping 1
START_LOW = np.array([-0.29, 0.15])  # the top-left room (reference: ref-maze)
START_HIGH = np.array([-0.15, 0.29])

GOALS = {
    "reach_top_left": np.array([-0.15, 0.15]),
    "reach_top_right": np.array([0.15, 0.15]),
    "reach_bottom_left": np.array([-0.15, -0.15]),
    "reach_bottom_right": np.array([0.15, -0.15]),
}


def reach_reward(next_state: np.ndarray, action: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Reward of reaching ``goal`` (reference: ref-maze): near · (ctrl + 4) / 5.

    ``near`` is 1 within 0.015 of the goal and decays as a Gaussian (0.1 at a further 0.015);
    ``ctrl`` is the mean over action dimensions of a quadratic tolerance (1 at zero force, 0 at full
    force), so control effort scales the reward by a factor between 0.8 and 1.

    next_state: (..., 4) physics states (x, y, vx, vy) after the step; action: (..., 2).
    """
    distance = np.linalg.norm(next_state[..., :2] - goal, axis=-1)  # ...
    near = rewards.tolerance(distance, bounds=(0.0, TARGET_RADIUS), margin=TARGET_RADIUS)
    small_control = rewards.tolerance(
        action, margin=1.0, value_at_margin=0.0, sigmoid="quadratic"
    ).mean(axis=-1)  # ...
    return near * (small_control + 4.0) / 5.0


def goal_distance(state: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Euclidean distance from the mass to ``goal``; state: (..., 4)."""
    return np.linalg.norm(state[..., :2] - goal, axis=-1)


def in_free_space(xy: np.ndarray) -> np.ndarray:
    """Whether a mass centred at ``xy`` (..., 2) overlaps neither interior wall."""
    reach = WALL_HALF_THICKNESS + MASS_RADIUS
    x, y = np.abs(xy[..., 0]), np.abs(xy[..., 1])
    in_horizontal = (x < WALL_HALF_LENGTH + MASS_RADIUS) & (y < reach)
    in_vertical = (y < WALL_HALF_LENGTH + MASS_RADIUS) & (x < reach)
    return ~(in_horizontal | in_vertical)


def sample_start(rng: np.random.Generator, n: int) -> np.ndarray:
    """n start states (x, y, 0, 0), uniform over the top-left room (reference: ref-maze)."""
    xy = rng.uniform(START_LOW, START_HIGH, size=(n, 2))
    return np.concatenate([xy, np.zeros((n, 2))], axis=1)


def sample_free_states(rng: np.random.Generator, n: int) -> np.ndarray:
    """n states uniform over the free maze: positions off the walls, velocities in ±MAX_SPEED.

    Velocities matter: uniform random actions keep |v| below about 0.04, while a policy pushing at
    full force moves at up to 0.1, so zero-velocity starts would leave those states uncovered.
    """
    out = np.empty((0, 2))
    while len(out) < n:
        xy = rng.uniform(-ARENA_LIMIT, ARENA_LIMIT, size=(2 * n, 2))
        out = np.concatenate([out, xy[in_free_space(xy)]])
    velocity = rng.uniform(-MAX_SPEED, MAX_SPEED, size=(n, 2))
    return np.concatenate([out[:n], velocity], axis=1)


class Physics(dm_mujoco.Physics):
    """Physics with the maze's named quantities."""

    def mass_position(self) -> np.ndarray:
        return self.named.data.qpos[["root_x", "root_y"]].copy()


class ReachTask(base.Task):
    """dm_control task: reach one of the four goals from the top-left room."""

    def __init__(self, goal: np.ndarray, random: np.random.RandomState | int | None = None):
        super().__init__(random=random)
        self._goal = goal

    def initialize_episode(self, physics: Physics) -> None:
        start = sample_start(np.random.default_rng(self.random.randint(2**31)), 1)[0]
        physics.set_state(start)
        super().initialize_episode(physics)

    def get_observation(self, physics: Physics) -> dict[str, np.ndarray]:
        return {"position": physics.position().copy(), "velocity": physics.velocity().copy()}

    def get_reward(self, physics: Physics) -> float:
        state = np.concatenate([physics.position(), physics.velocity()])
        return float(reach_reward(state, physics.control(), self._goal))


def load(task: str = "reach_top_left", seed: int | None = None) -> control.Environment:
    """A dm_control ``Environment`` of the maze for ``task`` (1000 steps of 0.02 s)."""
    if task not in GOALS:
        raise ValueError(f"unknown point_mass_maze task {task!r}; valid tasks: {sorted(GOALS)}")
    physics = Physics.from_xml_path(str(XML_PATH))
    return control.Environment(
        physics,
        ReachTask(GOALS[task], random=seed),
        time_limit=EPISODE_STEPS * CONTROL_TIMESTEP,
        control_timestep=CONTROL_TIMESTEP,
    )


def draw_paths(ax: Any, paths: np.ndarray, task: str) -> None:
    """Episodes' paths (episodes x steps x 4 physics states) drawn on the maze, with the task's goal."""
    from zsrl.envs.point_mass_maze.maps import draw_rollouts  # matplotlib-free until drawn

    draw_rollouts(ax, paths[..., :2], goal=task, color="C3")


DOMAIN = register_domain(
    Domain(
        name="point_mass_maze",
        xml_path=XML_PATH,
        obs_dim=4,
        action_dim=2,
        episode_steps=EPISODE_STEPS,
        tasks={
            name: make_task(
                "point_mass_maze",
                name,
                reach_reward,
                goal,
                goal_observation=np.concatenate([goal, np.zeros(2)]),
                distance=goal_distance,
                success_distance=TARGET_RADIUS,
            )
            for name, goal in GOALS.items()
        },
        sample_start=sample_start,
        samplers={"free": sample_free_states},
        default_dataset="uniform-reset",
        observe=lambda states: states.astype(np.float32),
        load=load,
        draw_paths=draw_paths,
    )
)
