"""dm_control's quadruped as a zsrl domain, with the tasks ExORL evaluates it on.

The model is the one ExORL's stand, jump, roll and roll_fast build, and so the paper's evaluation
environment (ExORL's jump): the suite's ``quadruped.xml`` (ExORL reads its own copy of it) through
dm_control's ``quadruped.make_model`` with a floor of half-size 10 (20 s × 0.5 m/s), no terrain
heightfield geom, no rangefinders and no walls, ball or target. The heightfield asset stays in the
model, unused. A plane collides as an infinite plane whatever its size, so the suite's own walk
(floor 10) and run (floor 100) have the same physics.

1000 control steps of 0.02 s, each 4 MuJoCo steps of 0.005 s. Actions are the 12 raw controls, which
MuJoCo clips to their ranges (yaw [-1, 1], lift [-1, 1.1], extend [-0.8, 0.8]), as in dm_control's
environment and the paper's evaluation; ExORL collected its data through dm_control's
``action_scale`` wrapper instead (reference: ref-bug-quadruped-scale). Observations are 78 numbers,
dm_control's common quadruped observations flattened in their order: ``egocentric_state`` (44: the
16 hinge angles, their 16 velocities, the 12 actuator activations), ``torso_velocity`` (3, the
velocimeter, in the torso's frame), ``torso_upright`` (1), ``imu`` (6: accelerometer, gyro) and
``force_torque`` (24: arcsinh of the four toes' force, then torque, sensors).

Tasks (reference: ref-domains), each ``upright · term`` with dm_control's ``rewards.tolerance``;
``upright`` is dm_control's: 1 when the torso's z axis is within ``deviation`` of the world's, linear
to 0 when upside down (deviation 0°, so ``(1 + zz) / 2``, except for escape):

- stand (ExORL): upright alone;
- walk, run (the suite's ``Move``; URLB and ExORL evaluate them): the torso's forward velocity (the
  velocimeter's x), 1 from 0.5 (walk) or 5 m/s (run), linear to 0.5 at 0, and 0 at minus the speed;
- jump (ExORL): the height of the torso subtree's centre of mass (the ``center_of_mass`` sensor),
  1 from 1 m, linear to 0.5 at 0;
- roll, roll_fast (ExORL): the torso's speed (the velocimeter's norm), 1 from 0.5 or 5 m/s, linear
  to 0.5 at 0;
- escape (dm_control's ``Escape`` reward, which the paper scores on the flat model; the suite's and
  ExORL's escape environments have a bowl terrain and 23 more observations): the distance of
  the ``workspace`` site from the origin, 1 from 30 m (the heightfield's half-size), linear to 0 at
  0, times upright within 20°.

None depends on the action. Every start is dm_control's ``Move.initialize_episode`` (ExORL's stand,
jump and roll share it): a uniformly random orientation, dropped to the first height (in 1 cm steps
from 0) with no contacts, joints at 0, at rest.

Observations and rewards are functions of the physics state: each state is set into one ``MjData``
(reset first, so the constraint solver starts cold and the numbers do not depend on earlier calls)
and ``mj_forward`` is run. dm_control's environment reads the accelerometer and the toes'
force/torque sensors (27 of the 78 numbers) after its last physics step, whose acceleration stage
ran before integrating: those are the previous substep's readings, not the next state's, so there the
environment's observations after a step differ from these (at a reset they agree). The tests check
everything else against dm_control's environments and these against dm_control's own functions.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np
from dm_control import suite
from dm_control.rl import control
from dm_control.suite import common, quadruped
from dm_control.utils import rewards

from zsrl.envs.dm_control_domain import reset_states
from zsrl.envs.registry import (
    PHYSICS_STATE,
    Domain,
    make_task,
    register_domain,
    seeded_sampler,
)

XML_PATH = Path(suite.__file__).with_name("quadruped.xml")  # the file the model is made from

FLOOR_SIZE = 10  # ExORL's floor half-size: 20 s × 0.5 m/s
EPISODE_STEPS = 1000  # 20 s, dm_control's time limit
CONTROL_TIMESTEP = 0.02  # dm_control's quadruped control step
PHYSICS_TIMESTEP = 0.005  # the model's <option timestep>
PHYSICS_STEPS = 4  # MuJoCo steps per control step
OBS_DIM = 78
ACTION_DIM = 12

MOVE_SPEEDS = {"walk": 0.5, "run": 5.0}  # forward speeds from which moving is 1 (dm_control)
ROLL_SPEEDS = {"roll": 0.5, "roll_fast": 5.0}  # speeds from which rolling is 1 (ExORL)
JUMP_HEIGHT = 1.0  # centre-of-mass height from which jumping is 1 (ExORL)
ESCAPE_DEVIATION = 20.0  # escape's upright tolerance, in degrees (dm_control)

TASKS = ("stand", "walk", "run", "jump", "roll", "roll_fast", "escape")
SUITE_TASKS = ("walk", "run")  # loaded from dm_control's suite; the others are ExORL's

_local = threading.local()


def model_xml() -> bytes:
    """ExORL's flat quadruped, made by dm_control from the suite's file."""
    return quadruped.make_model(floor_size=FLOOR_SIZE)


def make_model() -> mujoco.MjModel:
    """The compiled flat quadruped (what ``Domain.model`` returns)."""
    return mujoco.MjModel.from_xml_string(model_xml().decode(), common.ASSETS)


@functools.cache
def _ctrl_range() -> np.ndarray:
    return make_model().actuator_ctrlrange.copy()  # A x 2


def from_action_scale(actions: np.ndarray) -> np.ndarray:
    """The raw controls (n x A) that dm_control's ``action_scale`` wrapper, from [-1, 1], sends for
    the agent's ``actions`` (n x A): low + (high - low)(a + 1)/2 per actuator. ExORL collected its
    quadruped data through that wrapper and stored the agent's actions; this domain takes raw
    controls, so its ExORL reader maps them (reference: ref-bug-quadruped-scale)."""
    low, high = _ctrl_range().T  # A each
    scaled = low + (high - low) * (np.asarray(actions, dtype=np.float64) + 1.0) / 2.0  # n x A
    return scaled.astype(np.asarray(actions).dtype)


@dataclass(frozen=True)
class _Layout:
    """Where the observations and rewards read from ``MjData``, found as dm_control's
    ``quadruped.Physics`` finds them: hinge joints by type, sensors by type in id order."""

    hinge_qpos: np.ndarray  # 16
    hinge_dof: np.ndarray  # 16
    velocimeter: np.ndarray  # 3 sensordata indices
    imu: np.ndarray  # 6: accelerometer, gyro
    force_torque: np.ndarray  # 24: the toes' force, then torque, sensors
    com_height: int  # the center_of_mass sensor's z
    torso: int  # body id
    workspace: int  # site id
    escape_distance: float  # the heightfield's half-size (dm_control's escape bound)


def _sensor_columns(model: mujoco.MjModel, *types: mujoco.mjtSensor) -> np.ndarray:
    ids = np.flatnonzero(np.isin(model.sensor_type, types))
    return np.concatenate(
        [np.arange(model.sensor_adr[i], model.sensor_adr[i] + model.sensor_dim[i]) for i in ids]
    )


def _layout(model: mujoco.MjModel) -> _Layout:
    hinges = np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_HINGE)
    sensor = mujoco.mjtSensor
    velocimeter = model.sensor("velocimeter")
    return _Layout(
        hinge_qpos=model.jnt_qposadr[hinges],
        hinge_dof=model.jnt_dofadr[hinges],
        velocimeter=np.arange(velocimeter.adr[0], velocimeter.adr[0] + 3),
        imu=_sensor_columns(model, sensor.mjSENS_GYRO, sensor.mjSENS_ACCELEROMETER),
        force_torque=_sensor_columns(model, sensor.mjSENS_FORCE, sensor.mjSENS_TORQUE),
        com_height=int(model.sensor("center_of_mass").adr[0]) + 2,
        torso=model.body("torso").id,
        workspace=model.site("workspace").id,
        escape_distance=float(model.hfield_size[0, 0]),
    )


def _scratch() -> tuple[mujoco.MjModel, mujoco.MjData, _Layout]:
    """This thread's model, one MjData to set states into and where to read it."""
    if not hasattr(_local, "data"):
        _local.model = make_model()
        _local.data = mujoco.MjData(_local.model)
        _local.layout = _layout(_local.model)
    return _local.model, _local.data, _local.layout


def _forward_each(states: np.ndarray) -> Iterator[tuple[int, mujoco.MjData]]:
    """Reset, set each physics state (n, P) in turn and run ``mj_forward``; yield (row, data)."""
    model, data, _ = _scratch()
    for i, state in enumerate(states):
        mujoco.mj_resetData(model, data)
        mujoco.mj_setState(model, data, state, PHYSICS_STATE)
        mujoco.mj_forward(model, data)
        yield i, data


def observe(states: np.ndarray) -> np.ndarray:
    """Observations (n, 78) of physics states (n, P): dm_control's common quadruped observations,
    flattened (see the module docstring)."""
    lay = _scratch()[2]
    out = np.empty((len(states), OBS_DIM), dtype=np.float32)  # n x 78
    for i, data in _forward_each(np.asarray(states, dtype=np.float64)):
        out[i] = np.concatenate(
            (
                data.qpos[lay.hinge_qpos],  # 16
                data.qvel[lay.hinge_dof],  # 16
                data.act,  # 12
                data.sensordata[lay.velocimeter],  # 3
                data.xmat[lay.torso, 8:9],  # 1
                data.sensordata[lay.imu],  # 6
                np.arcsinh(data.sensordata[lay.force_torque]),  # 24
            )
        )
    return out


def _measures(states: np.ndarray) -> np.ndarray:
    """What the rewards read from physics states (..., P): (..., 5) torso upright (the zz entry of
    its frame), forward velocity (the velocimeter's x), speed (its norm), the centre of mass's
    height and the ``workspace`` site's distance from the origin."""
    states = np.asarray(states, dtype=np.float64)
    lead = states.shape[:-1]
    flat = states.reshape(-1, states.shape[-1])  # n x P
    lay = _scratch()[2]
    out = np.empty((len(flat), 5))  # n x 5
    for i, data in _forward_each(flat):
        velocity = data.sensordata[lay.velocimeter]  # 3
        out[i] = (
            data.xmat[lay.torso, 8],
            velocity[0],
            np.linalg.norm(velocity),
            data.sensordata[lay.com_height],
            np.linalg.norm(data.site_xpos[lay.workspace]),
        )
    return out.reshape(*lead, 5)


def upright_reward(upright: np.ndarray, deviation: float = 0.0) -> np.ndarray:
    """dm_control's upright term: 1 when the torso's z axis is within ``deviation`` degrees of the
    world's (``upright`` ≥ its cosine), linear to 0 when upside down (``upright`` = -1)."""
    cosine = np.cos(np.deg2rad(deviation))
    return rewards.tolerance(
        upright,
        bounds=(cosine, float("inf")),
        sigmoid="linear",
        margin=1 + cosine,
        value_at_margin=0,
    )


def reach_reward(value: np.ndarray, target: float) -> np.ndarray:
    """1 from ``target`` up, linear to 0.5 at 0 (and 0 at ``-target``): dm_control's move term,
    which ExORL's jump and roll reuse."""
    return rewards.tolerance(
        value, bounds=(target, float("inf")), margin=target, value_at_margin=0.5, sigmoid="linear"
    )


def quadruped_reward(next_state: np.ndarray, action: np.ndarray, task: str) -> np.ndarray:
    """Reward of ``task`` for physics states (..., P) after a step; the action (..., 12) is unused.
    The formulas are in the module docstring."""
    measures = _measures(next_state)  # ... x 5
    upright, forward, speed, height, distance = np.moveaxis(measures, -1, 0)  # 5 of ...
    if task == "escape":
        bound = _scratch()[2].escape_distance
        away = rewards.tolerance(
            distance,
            bounds=(bound, float("inf")),
            margin=bound,
            value_at_margin=0,
            sigmoid="linear",
        )
        return upright_reward(upright, ESCAPE_DEVIATION) * away
    stand = upright_reward(upright)
    if task == "stand":
        return stand
    if task == "jump":
        return stand * reach_reward(height, JUMP_HEIGHT)
    if task in ROLL_SPEEDS:
        return stand * reach_reward(speed, ROLL_SPEEDS[task])
    return stand * reach_reward(forward, MOVE_SPEEDS[task])


class Physics(quadruped.Physics):
    """The quadruped's physics with the centre-of-mass height that ExORL's jump rewards."""

    def com_height(self) -> float:
        """Height of the torso subtree's centre of mass (the ``center_of_mass`` sensor's z)."""
        return float(self.named.data.sensordata["center_of_mass"][2])


class StandTask(quadruped.Move):
    """ExORL's stand as a dm_control task: the suite's ``Move`` start and observations, rewarded
    for being upright (dm_control's own upright term)."""

    def __init__(self, random: np.random.RandomState | int | None = None):
        super().__init__(desired_speed=0.0, random=random)

    def get_reward(self, physics: Physics) -> float:
        return float(quadruped._upright_reward(physics))


class JumpTask(StandTask):
    """ExORL's jump: upright times the centre of mass's height, 1 from 1 m."""

    def get_reward(self, physics: Physics) -> float:
        up = quadruped._upright_reward(physics)
        return float(up * reach_reward(physics.com_height(), JUMP_HEIGHT))


class RollTask(quadruped.Move):
    """ExORL's roll and roll_fast: upright times the torso's speed in any direction."""

    def get_reward(self, physics: Physics) -> float:
        speed = np.linalg.norm(physics.torso_velocity())
        return float(quadruped._upright_reward(physics) * reach_reward(speed, self._desired_speed))


class EscapeTask(StandTask):
    """dm_control's escape reward on the flat model, as the paper scores it: ``Escape.get_reward``
    itself (it reads only the physics), with the ``Move`` start and observations."""

    get_reward = quadruped.Escape.get_reward


def _task(task: str, seed: int | None) -> quadruped.Move:
    if task == "stand":
        return StandTask(random=seed)
    if task == "jump":
        return JumpTask(random=seed)
    if task == "escape":
        return EscapeTask(random=seed)
    return RollTask(desired_speed=ROLL_SPEEDS[task], random=seed)


def load(task: str = "stand", seed: int | None = None) -> control.Environment:
    """A dm_control ``Environment`` of ``task``: the suite's for walk and run; for the others,
    ExORL's flat model with the task's dm_control task class."""
    if task not in TASKS:
        raise ValueError(f"unknown quadruped task {task!r}; valid tasks: {sorted(TASKS)}")
    if task in SUITE_TASKS:
        return suite.load("quadruped", task, task_kwargs={"random": seed})
    return control.Environment(
        Physics.from_xml_string(model_xml(), common.ASSETS),
        _task(task, seed),
        time_limit=EPISODE_STEPS * CONTROL_TIMESTEP,
        control_timestep=CONTROL_TIMESTEP,
    )


def start_states(seed: int, n: int) -> np.ndarray:
    """The physics states (n, P) of n successive resets of a quadruped environment seeded ``seed``:
    dm_control's ``Move.initialize_episode`` (see the module docstring)."""
    return reset_states(load("stand", seed), n)


DOMAIN = register_domain(
    Domain(
        name="quadruped",
        xml_path=XML_PATH,
        build_model=make_model,
        obs_dim=OBS_DIM,
        action_dim=ACTION_DIM,
        episode_steps=EPISODE_STEPS,
        physics_steps=PHYSICS_STEPS,
        tasks={task: make_task("quadruped", task, quadruped_reward, task) for task in TASKS},
        sample_start=seeded_sampler(start_states),
        observe=observe,
        load=load,
        exorl_actions=from_action_scale,
    )
)
