"""Gymnasium's MuJoCo Walker2d-v5 and HalfCheetah-v5 as zsrl domains ``walker2d`` and
``halfcheetah``, the locomotion environments of D4RL (reference: ref-d4rl).

Each is Gymnasium's own: its model file, its control step (``frame_skip`` MuJoCo steps: 4 of 0.002 s
for Walker2d, 5 of 0.01 s for HalfCheetah), its start distribution (the environment's ``reset``) and
its v5 defaults. Episodes are 1000 control steps. The physics state is (qpos, qvel), 9 numbers each,
and the observation (17) is the environment's: qpos without the x position (``rootx``), then qvel,
which Walker2d clips to [-10, 10].

Each has one task, ``forward``, the environment's reward for a step (s, a, s'):

    forward_reward_weight · (x(s') − x(s)) / dt − ctrl_cost_weight · Σ a² (+ healthy_reward · healthy(s'))

the healthy bonus for Walker2d only. The x position is not in the observation and the reward reads
the state before the step, so the task declares ``reward_needs_state``. Walker2d terminates in an
unhealthy state: the torso height (qpos[1]) outside the open interval (0.8, 2) or its angle
(qpos[2]) outside (−1, 1); HalfCheetah never terminates.

Everything here is read from the state vector, without kinematics, so it is vectorised over any
leading shape. The tests check observations, rewards, terminations, stepping and starts against
Gymnasium's environments.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gymnasium
import mujoco
import numpy as np
from gymnasium.envs.mujoco.mujoco_env import expand_model_path

from zsrl.envs.registry import (
    PHYSICS_STATE,
    Domain,
    make_task,
    register_domain,
    seeded_sampler,
)

EPISODE_STEPS = 1000  # Gymnasium's time limit (max_episode_steps)
NQ = NV = 9  # qpos and qvel sizes; the physics state is qpos then qvel (no actuator activations)
OBS_DIM = NQ - 1 + NV  # 17
ACTION_DIM = 6
TASK = "forward"


@dataclass(frozen=True)
class Locomotion:
    """One environment's Gymnasium id, model and v5 defaults."""

    name: str  # the zsrl domain's name, also D4RL's name of the environment
    env_id: str
    xml_file: str
    timestep: float  # the model's <option timestep>
    frame_skip: int  # MuJoCo steps per control step
    forward_reward_weight: float
    ctrl_cost_weight: float
    velocity_clip: float | None = None  # observed qvel clipped to ± this
    healthy_reward: float = 0.0  # earned in every healthy state
    healthy_z_range: tuple[float, float] | None = None  # None: never unhealthy
    healthy_angle_range: tuple[float, float] = (-1.0, 1.0)
    expert_return: float = 1000.0  # D4RL's expert reference return

    @property
    def dt(self) -> float:
        """The control step's duration, as Gymnasium's ``MujocoEnv.dt``."""
        return self.timestep * self.frame_skip


WALKER2D = Locomotion(
    name="walker2d",
    env_id="Walker2d-v5",
    xml_file="walker2d_v5.xml",
    timestep=0.002,
    frame_skip=4,
    forward_reward_weight=1.0,
    ctrl_cost_weight=1e-3,
    velocity_clip=10.0,
    healthy_reward=1.0,
    healthy_z_range=(0.8, 2.0),
    healthy_angle_range=(-1.0, 1.0),
    expert_return=4592.3,
)
HALFCHEETAH = Locomotion(
    name="halfcheetah",
    env_id="HalfCheetah-v5",
    xml_file="half_cheetah.xml",
    timestep=0.01,
    frame_skip=5,
    forward_reward_weight=1.0,
    ctrl_cost_weight=0.1,
    expert_return=12135.0,
)
ENVIRONMENTS = {env.name: env for env in (WALKER2D, HALFCHEETAH)}


def xml_path(env: Locomotion) -> Path:
    """Gymnasium's model file of ``env``."""
    return Path(expand_model_path(env.xml_file))


def observe(states: np.ndarray, env: Locomotion) -> np.ndarray:
    """Observations (..., 17) of physics states (..., P): qpos[1:] then qvel (clipped for Walker2d),
    as the environment's ``_get_obs``."""
    states = np.asarray(states, dtype=np.float64)
    velocity = states[..., NQ : NQ + NV]  # ... x 9
    if env.velocity_clip is not None:
        velocity = np.clip(velocity, -env.velocity_clip, env.velocity_clip)
    return np.concatenate([states[..., 1:NQ], velocity], axis=-1).astype(np.float32)


def is_healthy(states: np.ndarray, env: Locomotion) -> np.ndarray:
    """Whether physics states (..., P) are healthy (...): the torso height (qpos[1]) and angle
    (qpos[2]) strictly inside their ranges, as Walker2d's ``is_healthy``; always, for an environment
    without a healthy range."""
    states = np.asarray(states)
    if env.healthy_z_range is None:
        return np.ones(states.shape[:-1], dtype=bool)
    z, angle = states[..., 1], states[..., 2]  # ... each
    (min_z, max_z), (min_angle, max_angle) = env.healthy_z_range, env.healthy_angle_range
    return (min_z < z) & (z < max_z) & (min_angle < angle) & (angle < max_angle)


def terminated(states: np.ndarray, env: Locomotion) -> np.ndarray:
    """Whether physics states (..., P) end the episode (...): Walker2d's unhealthy states."""
    return ~is_healthy(states, env)


def forward_reward(
    next_state: np.ndarray,
    action: np.ndarray,
    env: Locomotion,
    state: np.ndarray | None = None,
) -> np.ndarray:
    """The environment's reward (...) of steps from physics states ``state`` (..., P) by actions
    (..., 6) to ``next_state`` (..., P): forward velocity of the x position, weighted, plus the
    healthy bonus of the next state, less the control cost, as ``step`` computes them."""
    if state is None:
        raise ValueError(
            f"the {env.name} task {TASK!r} needs the physics state before the step: "
            "call task.transition_reward(state, action, next_state)"
        )
    x_before = np.asarray(state, dtype=np.float64)[..., 0]  # ...
    x_after = np.asarray(next_state, dtype=np.float64)[..., 0]  # ...
    x_velocity = (x_after - x_before) / env.dt  # ...
    healthy = env.healthy_reward * is_healthy(next_state, env)  # ...
    ctrl_cost = env.ctrl_cost_weight * np.sum(np.square(action), axis=-1)  # ...
    return env.forward_reward_weight * x_velocity + healthy - ctrl_cost


def start_states(seed: int, n: int, env: Locomotion) -> np.ndarray:
    """The physics states (n, P) of n successive resets of the Gymnasium environment, the first
    seeded ``seed``: the model's initial qpos and qvel plus the environment's reset noise."""
    gym_env = gymnasium.make(env.env_id)
    model, data = gym_env.unwrapped.model, gym_env.unwrapped.data
    out = np.empty((n, mujoco.mj_stateSize(model, PHYSICS_STATE)))  # n x P
    for i, row in enumerate(out):
        gym_env.reset(seed=seed if i == 0 else None)
        mujoco.mj_getState(model, data, row, PHYSICS_STATE)
    gym_env.close()
    return out


def _domain(env: Locomotion) -> Domain:
    return Domain(
        name=env.name,
        xml_path=xml_path(env),
        obs_dim=OBS_DIM,
        action_dim=ACTION_DIM,
        episode_steps=EPISODE_STEPS,
        tasks={TASK: make_task(env.name, TASK, forward_reward, env, reward_needs_state=True)},
        sample_start=seeded_sampler(partial(start_states, env=env)),
        observe=partial(observe, env=env),
        physics_steps=env.frame_skip,
        # no best return: D4RL's expert return, the top of its normalised score
        max_return=env.expert_return,
        terminated=None if env.healthy_z_range is None else partial(terminated, env=env),
        d4rl_name=env.name,
    )


WALKER2D_DOMAIN = register_domain(_domain(WALKER2D))
HALFCHEETAH_DOMAIN = register_domain(_domain(HALFCHEETAH))
