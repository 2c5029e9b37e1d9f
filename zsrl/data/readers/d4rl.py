"""D4RL datasets: one HDF5 file of logged steps, read as transitions the way D4RL's
``qlearning_dataset`` reads them, and D4RL's normalised score.

A D4RL file (reference: ref-d4rl) holds N logged steps, episodes one after another:

- ``observations`` (N, O), ``actions`` (N, A), ``rewards`` (N,): s_i, a_i and r(s_i, a_i) of the
  one task the data were logged for;
- ``terminals`` (N,): s_{i+1} ends the episode (no bootstrapping from it);
- ``timeouts`` (N,): a time limit ended the episode after step i;
- ``next_observations`` (N, O), in some files only: s_{i+1}.

Row i becomes the transition (observations[i], actions[i], next observation), the next observation
being ``next_observations[i]`` where the file has them, else ``observations[i+1]`` (so the last row,
which has none, is dropped). As in ``qlearning_dataset``, rows with ``timeouts[i]`` set are dropped:
without ``next_observations`` their successor is the next episode's first state. A terminal row's
successor is that too where the file has no ``next_observations`` (kept, as ``qlearning_dataset``
keeps it, with a warning: FB's loss sees it). Actions outside the domain's action box and values
that are not finite are errors. ``terminal`` is
``terminals``; ``truncation`` marks the last kept transition of an episode that a time limit (or the
end of the file) cut without a terminal. Episode ids start at 0 and increase after each terminal or
timeout. There are no physics states, so the dataset stores the rewards with the task they are for
(``meta["reward_task"]``): single-task methods train on them, and relabelling them for another task
is an error (:meth:`Dataset.rewards`).

D4RL's walker2d and halfcheetah data are those of the domains ``walker2d`` and ``halfcheetah``
(:mod:`zsrl.envs.gym_mujoco`, whose ``d4rl_name`` says so), with the same 17 observations and the
rewards of their one task, ``forward``; :func:`d4rl_domain` finds the domain from a dataset's name.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from zsrl.config import RunConfig
from zsrl.data.dataset import Dataset, DatasetError
from zsrl.data.readers.common import action_box, check_arrays, data_path
from zsrl.data.sources import register_source
from zsrl.envs import domain_names, get_domain
from zsrl.io import sha256_file

REQUIRED = ("observations", "actions", "rewards", "terminals", "timeouts")

# D4RL's reference returns (min: a random policy's, max: an expert's) of its locomotion tasks, by
# environment name; a dataset name such as "walker2d-medium-v2" finds its environment's entry.
D4RL_REFERENCE_RETURNS: dict[str, tuple[float, float]] = {
    "walker2d": (1.629008, 4592.3),
    "halfcheetah": (-280.178953, 12135.0),
}


def d4rl_environment(name: str) -> str:
    """The environment part of a D4RL name: "walker2d" of "walker2d-medium-v2" or of its file's
    stem "walker2d_medium-v2"."""
    return name if name in D4RL_REFERENCE_RETURNS else re.split(r"[-_]", name)[0].lower()


def d4rl_domain(name: str) -> str | None:
    """The zsrl domain of D4RL data named ``name`` (a dataset name or a file's stem, see
    :func:`d4rl_environment`): the registered domain of that D4RL environment, or None."""
    environment = d4rl_environment(name)
    for domain in domain_names():
        if get_domain(domain).d4rl_name == environment:
            return domain
    return None


def d4rl_normalized_score(name: str, returns: float | np.ndarray) -> float | np.ndarray:
    """D4RL's normalised score ``100 * (R - min) / (max - min)`` of episode returns ``R`` (a number
    or an array) on environment ``name`` ("walker2d", or a dataset name like "walker2d-medium-v2"):
    0 is a random policy's return, 100 an expert's."""
    key = d4rl_environment(name)
    if key not in D4RL_REFERENCE_RETURNS:
        raise ValueError(
            f"no D4RL reference returns for {name!r}; known: {sorted(D4RL_REFERENCE_RETURNS)}"
        )
    low, high = D4RL_REFERENCE_RETURNS[key]
    score = 100.0 * (np.asarray(returns, dtype=np.float64) - low) / (high - low)
    return float(score) if score.ndim == 0 else score


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The D4RL arrays of the HDF5 file ``path`` (``next_observations`` when present)."""
    try:
        import h5py
    except ImportError:  # a dependency of zsrl; only a broken install lacks it
        raise DatasetError("reading D4RL files needs h5py: pip install h5py") from None
    try:
        with h5py.File(path, "r") as f:
            missing = [key for key in REQUIRED if key not in f]
            if missing:
                raise DatasetError(f"D4RL file {path} lacks arrays {missing}")
            keys = [*REQUIRED, *(["next_observations"] if "next_observations" in f else [])]
            return {key: np.asarray(f[key][()]) for key in keys}
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise DatasetError(f"D4RL file {path} is truncated or corrupt: {error}") from None


def read_d4rl(
    path: Path, reward_task: str, domain: str | None = None, name: str | None = None
) -> Dataset:
    """The transitions of the D4RL file ``path`` (see the module docstring), its rewards stored as
    those of ``reward_task``. With ``domain``, the observation and action widths are checked
    against it. ``meta`` holds the name (by default the file's stem), the path and its SHA-256,
    ``source: "d4rl"``, the numbers of episodes, transitions and rows, and the reward task."""
    path = Path(path)
    arrays = _read_arrays(path)
    observations = arrays["observations"]  # N x O
    actions = arrays["actions"]  # N x A
    rows = len(observations)  # N
    if observations.ndim != 2 or actions.ndim != 2 or len(actions) != rows:
        raise DatasetError(
            f"D4RL file {path}: observations {observations.shape} and actions {actions.shape} "
            "must be N x O and N x A"
        )
    per_row = {}  # rewards, terminals, timeouts: N each
    for key in ("rewards", "terminals", "timeouts"):
        if arrays[key].shape not in ((rows,), (rows, 1)):
            raise DatasetError(
                f"D4RL file {path}: {key} has shape {arrays[key].shape}, expected ({rows},)"
            )
        per_row[key] = arrays[key].reshape(rows)
    next_observations = arrays.get("next_observations")  # N x O or None
    if next_observations is not None and next_observations.shape != observations.shape:
        raise DatasetError(
            f"D4RL file {path}: next_observations has shape {next_observations.shape}, "
            f"observations {observations.shape}"
        )
    dom = get_domain(domain) if domain is not None else None
    if dom is not None:
        for key, width in {"observations": dom.obs_dim, "actions": dom.action_dim}.items():
            if arrays[key].shape[1] != width:
                raise DatasetError(
                    f"D4RL file {path}: {key} has width {arrays[key].shape[1]}, but domain "
                    f"{domain!r} has width {width} (data of another domain?)"
                )
    stored = {"observations": observations, "rewards": per_row["rewards"]}
    if next_observations is not None:
        stored["next_observations"] = next_observations
    check_arrays(f"D4RL file {path}", stored, actions, action_box(dom) if dom else None)
    terminals = per_row["terminals"].astype(bool)  # N
    timeouts = per_row["timeouts"].astype(bool)  # N
    # rows with a successor state, less those a time limit ended
    candidates = np.arange(rows if next_observations is not None else max(rows - 1, 0))  # N'
    kept = candidates[~timeouts[candidates]]  # n
    if len(kept) == 0:
        raise DatasetError(f"D4RL file {path} holds no transition (rows: {rows})")
    ends = terminals | timeouts  # N: the episode ends after this row
    episode_of_row = np.cumsum(ends) - ends  # N: episodes ended before the row
    _, episode = np.unique(episode_of_row[kept], return_inverse=True)  # n: 0, 1, ...
    terminal = terminals[kept]  # n
    if next_observations is None and terminal.any():
        warnings.warn(
            f"D4RL file {path} has no next_observations: the next state of each of its "
            f"{int(terminal.sum())} terminal transitions is the following row, the next episode's "
            "first state (as in D4RL's qlearning_dataset); the TD methods ignore it (no "
            "bootstrapping from a terminal), but FB's measure term and reward inference see it",
            stacklevel=2,
        )
    last_of_episode = np.r_[episode[1:] != episode[:-1], True]  # n
    next_obs = next_observations[kept] if next_observations is not None else observations[kept + 1]
    return Dataset(
        observation=observations[kept].astype(np.float32),  # n x O
        action=actions[kept].astype(np.float32),  # n x A
        next_observation=next_obs.astype(np.float32),  # n x O
        physics=None,
        next_physics=None,
        episode=episode.astype(np.int32),  # n
        reward=per_row["rewards"][kept].astype(np.float32),  # n
        terminal=terminal,
        truncation=last_of_episode & ~terminal,  # n
        meta={
            "name": name or path.stem,
            "path": str(path),
            "sha256": sha256_file(path),
            "source": "d4rl",
            "episodes": int(episode.max()) + 1,
            "transitions": len(kept),
            "rows": rows,
            "reward_task": reward_task,
        },
    )


def _d4rl_source(cfg: RunConfig, root: Path | None, progress: bool) -> Dataset:
    """The ``d4rl`` data source: the D4RL file ``cfg.data.path``, its rewards those of the run's
    task (``cfg.eval.tasks[0]``, or the domain's only task). A file named after a D4RL environment
    ("walker2d_medium-v2.hdf5") must be the run domain's."""
    tasks = cfg.eval.tasks or list(get_domain(cfg.domain).tasks)
    if len(tasks) != 1 and not cfg.eval.tasks:
        raise DatasetError(
            "a D4RL file holds the rewards of one task and no physics states to relabel them: "
            "name the task they are for (--tasks NAME or eval.tasks=['NAME'])"
        )
    path = data_path(cfg, "a D4RL HDF5 file")
    named = d4rl_domain(path.stem)
    if named is not None and named != cfg.domain:
        raise DatasetError(
            f"D4RL file {path} holds data of domain {named!r} (by its name), "
            f"but the run's domain is {cfg.domain!r}"
        )
    return read_d4rl(path, tasks[0], cfg.domain)


register_source("d4rl", _d4rl_source)
