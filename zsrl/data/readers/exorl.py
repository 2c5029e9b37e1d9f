"""ExORL datasets: a directory of episode files, read as one :class:`Dataset` with physics states.

ExORL (reference: ref-exorl) keeps each exploration run as ``<domain>/<agent>/buffer/*.npz``, one
file per episode, named so that sorting the names sorts the episodes in time. Each file holds arrays
of T + 1 rows:

- ``observation`` (T+1, O), ``physics`` (T+1, P): the states s_0 .. s_T (row 0 is the reset);
- ``action`` (T+1, A): row t >= 1 is the action taken in s_{t-1}; row 0 is a dummy (no action led
  to the reset state);
- ``reward`` (T+1, 1), ``discount`` (T+1, 1): of the task the data were collected on; not read,
  since every task's rewards are recomputed from the physics states.

So transition t (t = 0 .. T-1) is (observation[t], action[t+1], observation[t+1]) with physics[t]
and physics[t+1]. Because the physics states are kept, the dataset is relabelled for any task of the
run's domain, as our own collected data are. The reader checks the arrays' widths against the
domain and that the domain's ``observe`` gives back the stored observations from the stored physics
(what evaluation sees must be what training saw), and records the latter in the metadata.

ExORL stored the agent's actions, in [-1, 1]. Where it collected through dm_control's
``action_scale`` wrapper and our domain takes raw controls (quadruped: ``Domain.exorl_actions``),
the reader maps them to the controls the simulator received, so that the data's actions mean what
the domain's do in evaluation (the paper's code fed them raw; reference: ref-bug-quadruped-scale).
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from zsrl.config import RunConfig
from zsrl.data.dataset import Dataset, DatasetError
from zsrl.data.readers.common import (
    ActionBox,
    action_box,
    check_arrays,
    data_path,
    observe_check,
)
from zsrl.data.sources import register_source
from zsrl.envs import Domain, get_domain
from zsrl.envs.registry import BatchSim

KEYS = ("observation", "action", "physics")  # the arrays read from every episode file


def episode_files(path: Path) -> list[Path]:
    """The episode files of an ExORL directory, in sorted order.

    ``path`` is either the directory holding the ``*.npz`` files or its parent with a ``buffer/``
    subfolder (ExORL's ``<domain>/<agent>``).
    """
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"ExORL data {str(path)!r} is not a directory of episode files")
    folder = path / "buffer" if (path / "buffer").is_dir() else path
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise DatasetError(f"ExORL directory {str(folder)!r} holds no episode files (*.npz)")
    return files


def read_episode(
    file: Path, domain: Domain, physics_size: int, box: ActionBox | None = None
) -> dict[str, np.ndarray]:
    """One episode file's ``observation``, ``action`` and ``physics`` arrays (each T+1 rows),
    checked against ``domain`` (and its action ``box``, computed once per directory where not
    given); a damaged file, a shape mismatch, a value that is not finite or an action outside the
    box is a :class:`DatasetError`."""
    try:
        with np.load(file, allow_pickle=False) as npz:
            missing = [key for key in KEYS if key not in npz.files]
            if missing:
                raise DatasetError(f"ExORL episode file {file} lacks arrays {missing}")
            arrays = {key: npz[key] for key in KEYS}
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DatasetError(f"ExORL episode file {file} is truncated or corrupt: {error}") from None
    widths = {"observation": domain.obs_dim, "action": domain.action_dim, "physics": physics_size}
    rows = len(arrays["observation"])
    for key, width in widths.items():
        array = arrays[key]
        if array.ndim != 2 or array.shape[1] != width:
            raise DatasetError(
                f"ExORL episode file {file}: {key} has shape {array.shape}, but domain "
                f"{domain.name!r} has {key} width {width}: (T+1, {width}) expected "
                "(data of another domain?)"
            )
        if len(array) != rows:
            raise DatasetError(
                f"ExORL episode file {file}: {key} has {len(array)} rows, observation {rows}"
            )
    if rows < 2:
        raise DatasetError(f"ExORL episode file {file} holds {rows} step(s): no transition")
    check_arrays(  # row 0's action is the reset's dummy one: not data
        f"ExORL episode file {file}",
        {"observation": arrays["observation"], "physics": arrays["physics"]},
        arrays["action"][1:],
        box or action_box(domain),
        action_row=1,
    )
    return arrays


def read_exorl(path: Path, domain: str, name: str | None = None) -> Dataset:
    """Every transition of the ExORL directory ``path`` (see the module docstring), for ``domain``.

    Episodes are numbered 0, 1, ... in the files' sorted order. ``meta`` holds the name (by default
    the ExORL agent folder's), the path, ``source: "exorl"``, the numbers of episodes and
    transitions, and ``observe_check``: whether the domain's ``observe`` reproduces the stored
    observations (a warning when it does not).
    """
    path = Path(path)
    dom = get_domain(domain)
    physics_size = BatchSim(dom, 1).state_size
    files = episode_files(path)
    box = action_box(dom)
    obs, next_obs, actions, physics, next_physics, episode = [], [], [], [], [], []
    for index, file in enumerate(files):
        arrays = read_episode(file, dom, physics_size, box)
        steps = len(arrays["observation"]) - 1  # T
        obs.append(arrays["observation"][:-1])  # T x O: s_t
        next_obs.append(arrays["observation"][1:])  # T x O: s_{t+1}
        actions.append(arrays["action"][1:])  # T x A: row 0 is the reset's dummy action
        physics.append(arrays["physics"][:-1])  # T x P
        next_physics.append(arrays["physics"][1:])  # T x P
        episode.append(np.full(steps, index, dtype=np.int32))  # T
    action = np.concatenate(actions).astype(np.float32)  # n x A: as stored
    if dom.exorl_actions is not None:  # ExORL's agent actions -> the domain's controls
        action = dom.exorl_actions(action)
    observation = np.concatenate(obs).astype(np.float32)  # n x O
    next_observation = np.concatenate(next_obs).astype(np.float32)  # n x O
    physics_states = np.concatenate(physics).astype(np.float64)  # n x P
    next_physics_states = np.concatenate(next_physics).astype(np.float64)  # n x P
    check = observe_check(dom, next_physics_states, next_observation, f"ExORL data {str(path)!r}")
    folder = path.parent if path.name == "buffer" else path
    return Dataset(
        observation=observation,
        action=action,
        next_observation=next_observation,
        physics=physics_states,
        next_physics=next_physics_states,
        episode=np.concatenate(episode),  # n
        meta={
            "name": name or f"exorl-{folder.name}",
            "path": str(path),
            "source": "exorl",
            "episodes": len(files),
            "transitions": int(sum(len(e) for e in episode)),
            "observe_check": check,
            "actions": "mapped to raw controls from ExORL's action_scale [-1, 1]"
            if dom.exorl_actions is not None
            else "as stored",
        },
    )


def _exorl_source(cfg: RunConfig, root: Path | None, progress: bool) -> Dataset:
    """The ``exorl`` data source: the ExORL directory ``cfg.data.path``, for ``cfg.domain``."""
    return read_exorl(data_path(cfg, "an ExORL directory of episode files"), cfg.domain)


register_source("exorl", _exorl_source)
