"""Videos of rollouts: physics states rendered with MuJoCo's own renderer, written with imageio.

A rollout is a sequence of physics states (steps x P, the layout of ``mjSTATE_PHYSICS``, as
:func:`zsrl.evaluate.evaluate` keeps them), so any registered domain renders the same way: each state
is set into one ``MjData``, ``mj_forward`` places the bodies (and any tracking camera), and
``mujoco.Renderer`` draws the scene from a camera of the domain's model, its first by default (the
maze's ``top``, the walker's ``side``, which follows the walker's centre of mass), or MuJoCo's free
camera for a model without one.

Rendering needs no display: set ``MUJOCO_GL=egl`` (``zsrl.envs`` does, unless it is set already,
before MuJoCo is imported). Without a GPU, OpenGL is Mesa's software renderer and shadows cost most of
a frame (about 50 ms of 60 at 320 x 240 on a CPU core); ``shadows=False`` draws about five times as
fast, and ``every`` draws one state in that many.

Videos are MP4 (H.264 through imageio-ffmpeg; even frame sizes) or GIF (Pillow; GIF frame times are
whole hundredths of a second, so a GIF plays at most 50 frames per second, at the nearest such rate).
By default a video plays in real time: the domain's control step (``opt.timestep`` x
``physics_steps``: 0.02 s on the maze, 0.025 s on the walker) per rendered state.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from zsrl.envs import Domain
from zsrl.envs.registry import PHYSICS_STATE
from zsrl.evaluate import TaskResult, evaluate

if TYPE_CHECKING:
    from zsrl.train import LoadedRun

__all__ = [
    "FORMATS",
    "camera_id",
    "control_timestep",
    "record_video",
    "render",
    "rollout",
    "write_video",
]

FORMATS = (".gif", ".mp4")
FPS_RANGE = (0.1, 240.0)  # frames per second a video may ask for
MAX_SIZE = 4096  # the widest and tallest frame, in pixels


def check_video_options(
    width: int | None = None, height: int | None = None, fps: float | None = None
) -> None:
    """A ValueError naming the value where a frame size or a frame rate is out of range."""
    for name, size in (("width", width), ("height", height)):
        if size is not None and not 1 <= size <= MAX_SIZE:
            raise ValueError(f"{name} must be from 1 to {MAX_SIZE} pixels, got {size}")
    low, high = FPS_RANGE
    if fps is not None and not low <= fps <= high:
        raise ValueError(f"fps must be from {low:g} to {high:g} frames per second, got {fps}")


def camera_id(model: mujoco.MjModel, camera: int | str | None = None) -> int:
    """The id of ``camera`` in ``model``: a name, an id (-1: MuJoCo's free camera) or None for the
    model's first camera (the free camera if it has none). One the model lacks is a ValueError that
    lists the model's cameras."""
    names = [model.camera(i).name for i in range(model.ncam)]
    if camera is None:
        return 0 if model.ncam else -1
    if isinstance(camera, str) and camera in names:
        return names.index(camera)
    if isinstance(camera, int) and -1 <= camera < model.ncam:
        return camera
    raise ValueError(
        f"unknown camera {camera!r}; valid cameras: {names} (or their ids 0-{model.ncam - 1}, "
        "or -1 for the free camera)"
    )


def control_timestep(domain: Domain) -> float:
    """Seconds per control step: the model's ``opt.timestep`` times the domain's ``physics_steps``."""
    return float(domain.model().opt.timestep) * domain.physics_steps


def render(
    domain: Domain,
    states: np.ndarray,
    width: int = 320,
    height: int = 240,
    camera: int | str | None = None,
    shadows: bool = True,
) -> np.ndarray:
    """Frames (steps x height x width x 3, uint8) of physics states (steps x P) of ``domain``, seen
    from ``camera`` (see :func:`camera_id`)."""
    model = domain.model()
    states = np.asarray(states, dtype=np.float64)  # steps x P
    size = mujoco.mj_stateSize(model, PHYSICS_STATE)
    if states.ndim != 2 or states.shape[1] != size:
        raise ValueError(
            f"states must be steps x {size} physics states of {domain.name!r}, got shape "
            f"{states.shape}"
        )
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width} x {height}")
    cam = camera_id(model, camera)
    # the offscreen buffer must hold a frame; the model's own is sized for its usual views
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    data = mujoco.MjData(model)
    frames = np.empty((len(states), height, width, 3), dtype=np.uint8)  # steps x H x W x 3
    # one renderer at a time, closed when done: a second live EGL context renders wrong frames
    with mujoco.Renderer(model, height=height, width=width) as renderer:
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = shadows
        for frame, state in zip(frames, states, strict=True):
            mujoco.mj_setState(model, data, state, PHYSICS_STATE)
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=cam)
            renderer.render(out=frame)
    return frames


def write_video(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """Write frames (n x H x W x 3, uint8) to ``path``, an MP4 or a GIF by its suffix, at ``fps``
    frames per second (a GIF's at the nearest whole hundredths of a second per frame, 2 at least).
    Missing folders are made; the path is returned."""
    import imageio.v3 as iio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"unknown video format {path.suffix!r} of {path}; valid: {list(FORMATS)}")
    check_video_options(fps=fps)
    frames = np.asarray(frames)  # n x H x W x 3
    if frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(f"frames must be n x height x width x 3 with n ≥ 1, got {frames.shape}")
    height, width = frames.shape[1:3]
    if suffix == ".mp4" and (width % 2 or height % 2):
        raise ValueError(f"an MP4 (H.264) needs an even width and height, got {width} x {height}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        hundredths = max(2, round(100 / fps))  # browsers slow shorter delays to 1/10 s
        iio.imwrite(path, frames, plugin="pillow", duration=10 * hundredths, loop=0)
    else:
        # macro_block_size=1: keep the frame size (imageio would rescale to multiples of 16)
        iio.imwrite(path, frames, plugin="FFMPEG", fps=fps, macro_block_size=1)
    return path


def rollout(run: LoadedRun, task: str, episodes: int = 1, seed: int | None = None) -> TaskResult:
    """``episodes`` rollouts of a loaded run's policy (:func:`zsrl.train.load_run`) on ``task``, with
    the physics states of every step (``paths``: episodes x steps+1 x P).

    They are the run's evaluation episodes (:func:`zsrl.evaluate.evaluate` with the run's evaluation
    settings): with the default seed, the start states are the first ``episodes`` of the record's.
    A task the run cannot act on (one of the domain's not learnt by a single-task method) is a
    ValueError listing those it can.
    """
    cfg = run.cfg
    valid = run.task_names if cfg.single_task else list(run.domain.tasks)
    if task not in valid:
        raise ValueError(f"unknown task {task!r} for this {cfg.method} run; valid tasks: {valid}")
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    results = evaluate(
        run.model,
        run.domain,
        [task],
        episodes=episodes,
        seed=cfg.eval.seed if seed is None else seed,
        dataset=run.dataset,
        inference_samples=cfg.eval.inference_samples,
        goal_inference=cfg.eval.goal_inference,
        keep_paths=True,
    )
    return results[task]


def record_video(
    run: LoadedRun,
    task: str,
    path: str | Path,
    episodes: int = 1,
    seed: int | None = None,
    width: int = 320,
    height: int = 240,
    camera: int | str | None = None,
    fps: float | None = None,
    every: int = 1,
    shadows: bool = True,
) -> TaskResult:
    """Roll out a loaded run's policy on ``task`` (:func:`rollout`) and write its episodes, one
    after the other, to one video at ``path`` (MP4 or GIF), rendering one state in ``every``.

    ``fps`` defaults to real time (one control step per state, ``every`` per frame). Returns the
    rollouts (their returns and states).
    """
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    check_video_options(width, height, fps)
    camera_id(run.domain.model(), camera)  # a bad camera is an error before the rollouts
    result = rollout(run, task, episodes, seed)
    paths = result.paths[:, ::every]  # episodes x frames x P
    frames = render(
        run.domain, paths.reshape(-1, paths.shape[-1]), width, height, camera, shadows
    )  # episodes·frames x H x W x 3
    write_video(path, frames, fps or 1.0 / (control_timestep(run.domain) * every))
    return result
