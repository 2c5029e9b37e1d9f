"""dm_control's planar walker as a zsrl domain, with the tasks ExORL evaluates it on.

The walker is the suite's own (its model file, physics and start distribution), so datasets and
returns here are comparable with ExORL's: 1000 control steps of 0.025 s, each 10 MuJoCo steps of
0.0025 s; observations of 24 numbers, dm_control's ``orientations`` (14), ``height`` (1) and
``velocity`` (9) flattened in that order.

Tasks are the suite's ``stand``, ``walk`` and ``run`` and ExORL's ``flip`` (reference: ref-domains),
flip being stand scaled by how fast the torso's subtree spins about the y axis (its angular momentum about +y,
1 from 5 up, linear to 0 at 0). None depends on the action.

Observations and rewards are functions of the physics state through kinematics (body orientations,
the centre of mass's velocity), so each state is set into one ``MjData`` and ``mj_forward`` is run, as
dm_control does after each step; the numbers are then read with dm_control's own definitions
(``walker.Physics``, ``rewards.tolerance``). The tests check them against dm_control's environments.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import mujoco
import numpy as np
from dm_control import suite
from dm_control.rl import control
from dm_control.suite import walker
from dm_control.utils import rewards

from zsrl.envs.dm_control_domain import reset_states
from zsrl.envs.registry import (
    PHYSICS_STATE,
    Domain,
    make_task,
    register_domain,
    seeded_sampler,
)

XML_PATH = Path(suite.__file__).with_name("walker.xml")

EPISODE_STEPS = 1000  # 25 s, dm_control's time limit
CONTROL_TIMESTEP = 0.025  # dm_control's walker control step
PHYSICS_TIMESTEP = 0.0025  # the model's <option timestep>
PHYSICS_STEPS = 10  # MuJoCo steps per control step
OBS_DIM = 24
ACTION_DIM = 6

STAND_HEIGHT = 1.2  # torso height from which standing is 1 (dm_control)
MOVE_SPEEDS = {"stand": 0.0, "walk": 1.0, "run": 8.0}  # dm_control's target speeds (m/s)
SPIN_SPEED = 5.0  # torso subtree angular momentum about y from which flipping is 1 (ExORL)

TASKS = ("stand", "walk", "run", "flip")

_local = threading.local()


def _scratch() -> tuple[mujoco.MjModel, mujoco.MjData, int]:
    """This thread's walker model, one MjData to set states into (making an MjData costs ~0.5 ms,
    more than observing a small batch) and the torso's body id."""
    if not hasattr(_local, "data"):
        _local.model = mujoco.MjModel.from_xml_path(str(XML_PATH))
        _local.data = mujoco.MjData(_local.model)
        _local.torso = _local.model.body("torso").id
    return _local.model, _local.data, _local.torso


def _forward_each(states: np.ndarray) -> Iterator[tuple[int, mujoco.MjData]]:
    """Set each physics state (n, P) in turn and run ``mj_forward``; yield (row, data)."""
    model, data, _ = _scratch()
    for i, state in enumerate(states):
        mujoco.mj_setState(model, data, state, PHYSICS_STATE)
        mujoco.mj_forward(model, data)
        yield i, data


def observe(states: np.ndarray) -> np.ndarray:
    """Observations (n, 24) of physics states (n, P), as ``walker.PlanarWalker.get_observation``
    flattened: body orientations (the xx and xz entries of every body's frame but the world's),
    torso height, joint velocities."""
    torso = _scratch()[2]
    out = np.empty((len(states), OBS_DIM), dtype=np.float32)  # n x 24
    for i, data in _forward_each(np.asarray(states, dtype=np.float64)):
        out[i, :14] = data.xmat[1:, [0, 2]].ravel()  # 7 bodies x (xx, xz)
        out[i, 14] = data.xpos[torso, 2]
        out[i, 15:] = data.qvel  # 9
    return out


def _measures(states: np.ndarray) -> np.ndarray:
    """What the rewards read from physics states (..., P): (..., 4) torso height, torso upright
    (the zz entry of its frame), the centre of mass's horizontal velocity (the
    ``torso_subtreelinvel`` sensor's x) and the torso subtree's angular momentum about y."""
    states = np.asarray(states, dtype=np.float64)
    lead = states.shape[:-1]
    flat = states.reshape(-1, states.shape[-1])  # n x P
    model, _, torso = _scratch()
    out = np.empty((len(flat), 4))  # n x 4
    for i, data in _forward_each(flat):
        mujoco.mj_subtreeVel(model, data)  # subtree_angmom (the sensor already asks for it)
        out[i] = (
            data.xpos[torso, 2],
            data.xmat[torso, 8],
            data.sensordata[0],
            data.subtree_angmom[torso, 1],
        )
    return out.reshape(*lead, 4)


def stand_reward(height: np.ndarray, upright: np.ndarray) -> np.ndarray:
    """dm_control's stand reward: (3 standing + upright) / 4, standing 1 from a torso height of 1.2
    (a Gaussian tail, 0.1 at 0.6) and upright from 0 (upside down) to 1."""
    standing = rewards.tolerance(
        height, bounds=(STAND_HEIGHT, float("inf")), margin=STAND_HEIGHT / 2
    )
    return (3.0 * standing + (1.0 + upright) / 2.0) / 4.0


def walker_reward(next_state: np.ndarray, action: np.ndarray, task: str) -> np.ndarray:
    """Reward of ``task`` for physics states (..., P) after a step; the action (..., 6) is unused.

    stand: the stand reward; walk, run: stand · (5 move + 1) / 6, move 1 from the target speed and
    linear to 0.5 at half of it (dm_control); flip: the same with move 1 from an angular momentum of
    5 and linear to 0 at 0 (ExORL).
    """
    measures = _measures(next_state)  # ... x 4
    height, upright, speed, spin = np.moveaxis(measures, -1, 0)  # 4 of ...
    stand = stand_reward(height, upright)  # ...
    if task == "stand":
        return stand
    if task == "flip":
        move = rewards.tolerance(
            spin,
            bounds=(SPIN_SPEED, float("inf")),
            margin=SPIN_SPEED,
            value_at_margin=0.0,
            sigmoid="linear",
        )
    else:
        target = MOVE_SPEEDS[task]
        move = rewards.tolerance(
            speed,
            bounds=(target, float("inf")),
            margin=target / 2,
            value_at_margin=0.5,
            sigmoid="linear",
        )
    return stand * (5.0 * move + 1.0) / 6.0


class FlipPhysics(walker.Physics):
    """The walker's physics with the torso subtree's angular momentum, which flipping rewards."""

    def angular_momentum(self) -> float:
        """Angular momentum of the torso's subtree about the world's y axis."""
        return float(self.named.data.subtree_angmom["torso"][1])


class FlipTask(walker.PlanarWalker):
    """ExORL's flip as a dm_control task: the walker's start, observations and stand reward."""

    def __init__(self, random: np.random.RandomState | int | None = None):
        super().__init__(move_speed=0, random=random)

    def get_reward(self, physics: FlipPhysics) -> float:
        stand = stand_reward(physics.torso_height(), physics.torso_upright())
        move = rewards.tolerance(
            physics.angular_momentum(),
            bounds=(SPIN_SPEED, float("inf")),
            margin=SPIN_SPEED,
            value_at_margin=0.0,
            sigmoid="linear",
        )
        return float(stand * (5.0 * move + 1.0) / 6.0)


def load(task: str = "stand", seed: int | None = None) -> control.Environment:
    """A dm_control ``Environment`` of ``task``: the suite's for stand, walk and run; for flip, the
    suite's walker physics with :class:`FlipTask`."""
    if task not in TASKS:
        raise ValueError(f"unknown walker task {task!r}; valid tasks: {sorted(TASKS)}")
    if task != "flip":
        return suite.load("walker", task, task_kwargs={"random": seed})
    physics = FlipPhysics.from_xml_string(*walker.get_model_and_assets())
    return control.Environment(
        physics,
        FlipTask(random=seed),
        time_limit=EPISODE_STEPS * CONTROL_TIMESTEP,
        control_timestep=CONTROL_TIMESTEP,
    )


def start_states(seed: int, n: int) -> np.ndarray:
    """The physics states (n, P) of n successive resets of a walker environment seeded ``seed``:
    dm_control's ``initialize_episode`` (every joint angle uniform over its range, the unlimited
    rotation uniform over [-π, π], the torso at its model height, at rest)."""
    return reset_states(load("stand", seed), n)


DOMAIN = register_domain(
    Domain(
        name="walker",
        xml_path=XML_PATH,
        obs_dim=OBS_DIM,
        action_dim=ACTION_DIM,
        episode_steps=EPISODE_STEPS,
        physics_steps=PHYSICS_STEPS,
        tasks={task: make_task("walker", task, walker_reward, task) for task in TASKS},
        sample_start=seeded_sampler(start_states),
        observe=observe,
        load=load,
    )
)
