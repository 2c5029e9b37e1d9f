"""ExORL's jaco reaching domain as a zsrl domain: dm_control's Jaco arm and hand reaching a site.

ExORL builds jaco from dm_control's manipulation suite (reference: ref-domains): the Kinova Jaco arm
with its three-finger hand over the standard arena, a prop-less reach task whose target is a fixed
site, 250 control steps of 0.04 s (10 s), each 20 MuJoCo steps of 0.002 s; 9 actions (six arm joint
velocities, three finger velocities) in [-1, 1], which dm_control's ``action_scale`` wrapper maps
linearly to the actuators' control ranges; observations of 42 numbers, dm_control's feature
observables flattened in the environment's order: the arm's ``joints_pos`` (the sine and cosine of
each of its 6 joints, 12), ``joints_torque`` (6), ``joints_vel`` (6), then the hand's
``joints_pos`` (3), ``joints_vel`` (3), ``pinch_site_pos`` (3) and ``pinch_site_rmat`` (9).

Tasks are ExORL's four reach tasks, one target each, on the table at (±0.09, ±0.09, 0.001): top is
+y, left is -x. Each rewards the hand's tool-centre point (its pinch site) for being within 0.05 of
its own target (1 there, a Gaussian tail to 0.1 at a further 0.05): dm_control's reach reward. (The
paper's released code scores ``reach_top_right`` with the bottom-right target, ref-bug-jaco; here
every task uses its own.) None depends on the action.

Here the task is dm_control's own ``reach.Reach`` with its target box collapsed onto the task's
target and its ``target_position`` observable off, as ExORL's task has none. Its actuators take the
[-1, 1] actions themselves (:func:`take_unit_actions`: each gain multiplied by half its control
range), so that collectors and rollouts step the model with the agent's actions; the dynamics are
those of ExORL's scaled actions up to rounding (the tests check one step against dm_control's own
environment under ``action_scale``). The model is built in code (MJCF), so the domain builds it
through ``Domain.build_model``: a copy of the environment's compiled model.

A physics state (qpos, qvel: 18 numbers) is enough for the rewards and for all observations but the
joint torques: after a step, the environment's torque sensors read forces of the last MuJoCo
sub-step under the last action, which no physics state holds. ``observe`` reads them as dm_control
does after a reset, from ``mj_forward`` of the state with actuation disabled ("no meaningful control
inputs yet"), so they equal the environment's at resets and differ after steps; the other 36
numbers and every reward equal dm_control's at every step. The tests check all three.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import mujoco
import numpy as np
from dm_control import composer, mjcf
from dm_control.manipulation import reach
from dm_control.manipulation.shared import arenas, constants, observations, robots, workspaces
from dm_control.utils import rewards

from zsrl.envs.dm_control_domain import reset_states
from zsrl.envs.registry import (
    PHYSICS_STATE,
    Domain,
    make_task,
    register_domain,
    seeded_sampler,
)

EPISODE_STEPS = 250  # 10 s, ExORL's time limit
CONTROL_TIMESTEP = constants.CONTROL_TIMESTEP  # 0.04 s, dm_control's manipulation control step
PHYSICS_TIMESTEP = 0.002  # the arena's <option timestep>
PHYSICS_STEPS = 20  # MuJoCo steps per control step
OBS_DIM = 42
ACTION_DIM = 9
TARGET_RADIUS = 0.05  # within this distance of the target the reward is 1 (dm_control, ExORL)
TABLE_HEIGHT = 0.001  # the targets' height: ExORL's (and dm_control's) prop z offset

TARGETS = {  # ExORL's reach targets (x, y, z); top is +y, left is -x
    "reach_top_left": np.array([-0.09, 0.09, TABLE_HEIGHT]),
    "reach_top_right": np.array([0.09, 0.09, TABLE_HEIGHT]),
    "reach_bottom_left": np.array([-0.09, -0.09, TABLE_HEIGHT]),
    "reach_bottom_right": np.array([0.09, -0.09, TABLE_HEIGHT]),
}
TASKS = tuple(TARGETS)

_local = threading.local()


def take_unit_actions(model: mujoco.MjModel) -> None:
    """Make ``model``'s actuators (fixed gain, affine bias) take actions in [-1, 1] in place:
    ``action_scale`` sets ctrl = mid + half · a, so the gain becomes gain · half, mid · gain joins
    the bias and the control range becomes [-1, 1]."""
    low, high = model.actuator_ctrlrange.T  # nu each
    half, mid = (high - low) / 2.0, (high + low) / 2.0
    model.actuator_biasprm[:, 0] += model.actuator_gainprm[:, 0] * mid
    model.actuator_gainprm[:, 0] *= half
    model.actuator_ctrlrange[:] = (-1.0, 1.0)


class UnitReach(reach.Reach):
    """dm_control's reach task whose compiled model takes actions in [-1, 1] (composer recompiles
    the model at every reset, so the actuators are rescaled after every compilation)."""

    def after_compile(self, physics: mjcf.Physics, random_state: np.random.RandomState) -> None:
        super().after_compile(physics, random_state)
        take_unit_actions(physics.model.ptr)


def reach_task(target: np.ndarray) -> UnitReach:
    """dm_control's site-reaching task (its arena, arm, hand, hand start box and reward) with the
    target fixed at ``target`` (3,) and no target observable, as ExORL's reach tasks are, acting
    in [-1, 1]."""
    settings = observations.PERFECT_FEATURES
    target = np.asarray(target, dtype=np.float64)
    workspace = reach._SITE_WORKSPACE._replace(
        target_bbox=workspaces.BoundingBox(lower=target, upper=target)
    )
    task = UnitReach(
        arena=arenas.Standard(),
        arm=robots.make_arm(obs_settings=settings),
        hand=robots.make_hand(obs_settings=settings),
        prop=None,
        obs_settings=settings,
        workspace=workspace,
        control_timestep=CONTROL_TIMESTEP,
    )
    task.observables["target_position"].enabled = False
    return task


def load(task: str = "reach_top_left", seed: int | None = None) -> composer.Environment:
    """A dm_control (composer) environment of ``task``, 10 s long, acting in [-1, 1]."""
    if task not in TARGETS:
        raise ValueError(f"unknown jaco task {task!r}; valid tasks: {sorted(TARGETS)}")
    return composer.Environment(
        reach_task(TARGETS[task]),
        time_limit=EPISODE_STEPS * CONTROL_TIMESTEP,
        random_state=seed,
    )


@dataclass(frozen=True)
class Layout:
    """Where the observed and rewarded quantities sit in the domain's model and its ``MjData``."""

    arm_qpos: np.ndarray  # 6 qpos addresses of the arm's joints
    arm_qvel: np.ndarray  # 6 dof addresses
    hand_qpos: np.ndarray  # 3 of the fingers
    hand_qvel: np.ndarray  # 3
    torque: np.ndarray  # 6 x 3 sensordata addresses of the arm's joint torque sensors
    axes: np.ndarray  # 6 x 3 the arm's joint axes, onto which the torques are projected
    tcp: int  # site id of the hand's tool-centre point (its pinch site)


@functools.cache
def _template() -> tuple[mujoco.MjModel, Layout]:
    """The domain's model (an environment's, compiled) and its layout, built once per process."""
    env = load(TASKS[0], seed=0)  # the target site is only drawn: one model for every task
    task = env.task
    model = copy.copy(env.physics.model.ptr)  # composer frees its physics at recompilation

    def joints(entity: composer.Entity) -> list[int]:
        return [model.joint(joint.full_identifier).id for joint in entity.joints]

    arm, hand = joints(task.arm), joints(task.hand)
    sensors = [model.sensor(s.full_identifier) for s in task.arm.joint_torque_sensors]
    layout = Layout(
        arm_qpos=model.jnt_qposadr[arm],
        arm_qvel=model.jnt_dofadr[arm],
        hand_qpos=model.jnt_qposadr[hand],
        hand_qvel=model.jnt_dofadr[hand],
        torque=np.array([s.adr[0] + np.arange(3) for s in sensors]),
        axes=model.jnt_axis[arm].copy(),
        tcp=model.site(task.hand.tool_center_point.full_identifier).id,
    )
    return model, layout


def build_model() -> mujoco.MjModel:
    """A fresh copy of the domain's model: dm_control's jaco reach model whose actuators take
    actions in [-1, 1] (``Domain.build_model``)."""
    return copy.copy(_template()[0])


def _scratch() -> tuple[mujoco.MjModel, mujoco.MjData, Layout]:
    """This thread's model with actuation disabled (what is read from it depends on the state
    alone), one MjData to set states into and the layout."""
    if not hasattr(_local, "data"):
        _local.model = build_model()
        _local.model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_ACTUATION
        _local.data = mujoco.MjData(_local.model)
    return _local.model, _local.data, _template()[1]


def _set_each(states: np.ndarray, stage: str) -> Iterator[tuple[int, mujoco.MjData]]:
    """Set each physics state (n, P) in turn, with no solver warm start (as after dm_control's
    reset), and run ``mj_forward`` (``stage`` "forward") or only ``mj_kinematics``
    ("kinematics"); yield (row, data)."""
    model, data, _ = _scratch()
    step = mujoco.mj_forward if stage == "forward" else mujoco.mj_kinematics
    for i, state in enumerate(states):
        mujoco.mj_setState(model, data, state, PHYSICS_STATE)
        data.qacc_warmstart[:] = 0.0  # so a state's torques do not depend on the state before
        step(model, data)
        yield i, data


def symlog1p(x: np.ndarray) -> np.ndarray:
    """dm_control's scaling of force and torque observations: sign(x) · log(1 + |x|)."""
    return np.sign(x) * np.log1p(np.abs(x))


def observe(states: np.ndarray) -> np.ndarray:
    """Observations (n, 42) of physics states (n, P), dm_control's features flattened in the
    environment's order (see the module docstring), the joint torques without actuation."""
    states = np.asarray(states, dtype=np.float64)
    layout = _scratch()[2]
    n = len(states)
    qpos, qvel = np.empty((n, 9)), np.empty((n, 9))  # n x 9: arm then hand
    torque = np.empty((n, 6, 3))  # n x 6 x 3: each torque sensor's 3 axes
    tcp_pos, tcp_mat = np.empty((n, 3)), np.empty((n, 9))  # n x 3, n x 9
    arm_hand_qpos = np.concatenate([layout.arm_qpos, layout.hand_qpos])  # 9
    arm_hand_qvel = np.concatenate([layout.arm_qvel, layout.hand_qvel])  # 9
    for i, data in _set_each(states, "forward"):
        qpos[i], qvel[i] = data.qpos[arm_hand_qpos], data.qvel[arm_hand_qvel]
        torque[i] = data.sensordata[layout.torque]
        tcp_pos[i], tcp_mat[i] = data.site_xpos[layout.tcp], data.site_xmat[layout.tcp]
    arm_angles = np.stack([np.sin(qpos[:, :6]), np.cos(qpos[:, :6])], axis=-1)  # n x 6 x 2
    arm_torque = np.einsum("nij,ij->ni", torque, layout.axes)  # n x 6: about each joint's axis
    parts = [arm_angles.reshape(n, 12), symlog1p(arm_torque), qvel[:, :6]]
    parts += [qpos[:, 6:], qvel[:, 6:], tcp_pos, tcp_mat]
    return np.concatenate(parts, axis=1).astype(np.float32)  # n x 42


def tool_center_point(states: np.ndarray) -> np.ndarray:
    """The hand's tool-centre point (its pinch site) (..., 3) in physics states (..., P)."""
    states = np.asarray(states, dtype=np.float64)
    flat = states.reshape(-1, states.shape[-1])  # n x P
    tcp = _scratch()[2].tcp
    out = np.empty((len(flat), 3))  # n x 3
    for i, data in _set_each(flat, "kinematics"):
        out[i] = data.site_xpos[tcp]
    return out.reshape(*states.shape[:-1], 3)


def target_distance(states: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Distance (...) from the hand's tool-centre point to ``target`` (3,) in states (..., P)."""
    return np.linalg.norm(tool_center_point(states) - target, axis=-1)


def reach_reward(next_state: np.ndarray, action: np.ndarray, target: np.ndarray) -> np.ndarray:
    """dm_control's reach reward for physics states (..., P) after a step: 1 within 0.05 of
    ``target``, a Gaussian tail beyond (0.1 at a distance of 0.1); the action (..., 9) is unused."""
    distance = target_distance(next_state, target)  # ...
    return rewards.tolerance(distance, bounds=(0.0, TARGET_RADIUS), margin=TARGET_RADIUS)


def start_states(seed: int, n: int) -> np.ndarray:
    """The physics states (n, P) of n successive resets of a jaco environment seeded ``seed``:
    dm_control's reach initialisation (the fingers closed by a uniform fraction, the tool-centre
    point placed by inverse kinematics uniformly in the box from (-0.2, -0.2, 0.02) to (0.2, 0.2,
    0.4) pointing down, at rest). Every task starts alike."""
    return reset_states(load(TASKS[0], seed), n)


DOMAIN = register_domain(
    Domain(
        name="jaco",
        xml_path=None,
        build_model=build_model,
        obs_dim=OBS_DIM,
        action_dim=ACTION_DIM,
        episode_steps=EPISODE_STEPS,
        physics_steps=PHYSICS_STEPS,
        tasks={
            name: make_task(
                "jaco",
                name,
                reach_reward,
                target,
                distance=target_distance,
                success_distance=TARGET_RADIUS,
            )
            for name, target in TARGETS.items()
        },
        sample_start=seeded_sampler(start_states),
        observe=observe,
        load=load,
        max_return=float(EPISODE_STEPS),
    )
)
