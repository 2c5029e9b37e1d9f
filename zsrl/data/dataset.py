"""The one on-disk dataset format: transitions in an ``.npz`` (no pickle) plus a JSON metadata string.

Each row is a transition (s_t, a_t, s_{t+1}) with the physics states on both sides, so rewards for any
task are recomputed from ``next_physics`` (reference: ref-transitions, ref-bug-labels) instead of
being stored as the only truth. Files are written atomically and carry a SHA-256 checksum in a
sidecar, checked on load.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from zsrl.data.episodes import steps_within_episodes
from zsrl.envs import Task
from zsrl.io import ChecksumError, atomic_writer, sha256_file, stored_checksum, write_checksum

# Every array a dataset may hold, in the order files store them; the first three and ``episode`` are
# required, the others optional.
ARRAYS = (
    "observation",
    "action",
    "next_observation",
    "physics",
    "next_physics",
    "episode",
    "reward",
    "terminal",
    "truncation",
)
REQUIRED = ("observation", "action", "next_observation", "episode")


class DatasetError(RuntimeError):
    """A dataset file is missing, truncated, corrupt or inconsistent."""


@dataclass
class Dataset:
    """A set of transitions; every array has the same first dimension n.

    Collected data hold the physics states on both sides of every transition, so rewards for any
    task are recomputed from them. Data read from other formats may lack them and hold instead the
    rewards of the one task they were recorded for (``reward``, with ``meta["reward_task"]``),
    terminal flags (s' ends the episode: no bootstrapping from it) and truncations (the episode was
    cut after this transition by a time limit: bootstrapping continues).
    """

    observation: np.ndarray  # n x O
    action: np.ndarray  # n x A
    next_observation: np.ndarray  # n x O
    physics: np.ndarray | None  # n x P, or None: the data cannot be relabelled
    next_physics: np.ndarray | None  # n x P
    episode: np.ndarray  # n, episode id of each transition
    meta: dict[str, Any] = field(default_factory=dict)
    # n, the time step of each transition within its episode. Collected data hold whole episodes in
    # time order, so it is derived when not given; subsets carry their rows' steps along, which keeps
    # "k steps later" meaningful after a subsample or an action filter has left gaps (GC-IQL's goals).
    step: np.ndarray | None = None
    reward: np.ndarray | None = None  # n: stored rewards of the task meta["reward_task"]
    terminal: np.ndarray | None = None  # n, bool: s' is terminal
    truncation: np.ndarray | None = None  # n, bool: a time limit ended the episode after this row

    def __post_init__(self) -> None:
        n = len(self.observation)
        if self.step is None:
            self.step = steps_within_episodes(self.episode)
        if (self.physics is None) != (self.next_physics is None):
            raise DatasetError("physics and next_physics must be given together")
        for name in (*ARRAYS, "step"):
            array = getattr(self, name)
            if array is not None and len(array) != n:
                raise DatasetError(f"array {name!r} has {len(array)} rows, expected {n}")
        if self.reward is not None and not self.meta.get("reward_task"):
            raise DatasetError("stored rewards need meta['reward_task'], the task they are for")

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays the dataset holds, in file order (absent optional ones left out)."""
        return {name: getattr(self, name) for name in ARRAYS if getattr(self, name) is not None}

    def __len__(self) -> int:
        return len(self.observation)

    def select(self, index: np.ndarray, **meta: Any) -> Dataset:
        """The transitions at ``index`` (indices or a boolean mask), with ``meta`` added."""
        arrays = {name: array[index] for name, array in self.arrays().items()}
        return Dataset(**_with_absent(arrays), meta={**self.meta, **meta}, step=self.step[index])

    def subsample(self, n: int, seed: int = 42) -> Dataset:
        """n transitions drawn uniformly without replacement with a private RNG (reference: ref-subsets).

        The seed is the dataset's own, independent of the training seed, so every method and every
        training seed sees the same transitions.
        """
        if n > len(self):
            raise ValueError(f"cannot subsample {n} transitions from a dataset of {len(self)}")
        index = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return self.select(index, subsample={"n": n, "seed": seed})

    def filter_actions(self, name: str) -> Dataset:
        """Keep the transitions whose action passes the named filter (reference: ref-didactic)."""
        keep = get_action_filter(name)(self.action)
        return self.select(keep, action_filter=name)

    def rewards(self, task: Task) -> np.ndarray:
        """r(s_{t+1}, a_t) for ``task`` (or r(s_t, a_t, s_{t+1}) for a reward that reads the state
        before the step): (n,). Computed from the physics states where the data hold them; otherwise
        the stored rewards, if they are this task's; otherwise an error."""
        if self.next_physics is not None:
            reward = task.transition_reward(self.physics, self.action, self.next_physics)  # n
            return reward.astype(np.float32)
        if self.reward is not None and self.meta.get("reward_task") == task.name:
            return self.reward.astype(np.float32)
        stored = self.meta.get("reward_task")
        raise DatasetError(
            f"dataset {self.meta.get('name', '')!r} holds no physics states, so it cannot be "
            f"relabelled for task {task.name!r}; "
            + (f"it holds the rewards of {stored!r} only" if stored else "it holds no rewards")
        )

    def save(self, path: Path) -> str:
        """Write atomically; return the file's SHA-256 (also written to ``<path>.sha256``)."""
        path = Path(path)
        arrays = self.arrays()
        if not np.array_equal(self.step, steps_within_episodes(self.episode)):
            arrays["step"] = self.step  # a subset's steps cannot be derived again: keep them
        with atomic_writer(path) as f:
            np.savez(f, meta=np.array(json.dumps(self.meta)), **arrays)
        return write_checksum(path)

    @staticmethod
    def load(path: Path, verify: bool = True) -> Dataset:
        """Read a dataset written by :meth:`save`; a damaged file is a :class:`DatasetError`."""
        path = Path(path)
        if not path.exists():
            raise DatasetError(f"dataset file {path} does not exist")
        try:
            expected = stored_checksum(path) if verify else None
        except ChecksumError as error:
            raise DatasetError(f"{error} (regenerate the dataset with --regenerate)") from None
        if expected is not None and sha256_file(path) != expected:
            raise DatasetError(
                f"dataset file {path} does not match its checksum (truncated or corrupt); "
                "delete it or regenerate it with --regenerate"
            )
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = [k for k in (*REQUIRED, "meta") if k not in npz.files]
                if missing:
                    raise DatasetError(f"dataset file {path} lacks arrays {missing}")
                arrays = _with_absent({k: npz[k] for k in ARRAYS if k in npz.files})
                step = npz["step"] if "step" in npz.files else None
                meta = json.loads(str(npz["meta"]))
        except DatasetError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as error:
            raise DatasetError(f"dataset file {path} is truncated or corrupt: {error}") from error
        return Dataset(**arrays, meta=meta, step=step)

    def with_meta(self, **meta: Any) -> Dataset:
        return replace(self, meta={**self.meta, **meta})


def _with_absent(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray | None]:
    """``arrays`` with None for every optional array it lacks (physics and next_physics included)."""
    return {name: arrays.get(name) for name in ARRAYS}


ActionFilter = Callable[[np.ndarray], np.ndarray]

# Named filters on the action; each returns the mask of transitions to keep. "no_left" is the
# didactic experiment's (reference: ref-didactic): keep a[0] > 0, i.e. drop every action pushing left.
ACTION_FILTERS: dict[str, ActionFilter] = {
    "no_left": lambda a: a[:, 0] > 0,
    "no_right": lambda a: a[:, 0] < 0,
    "no_up": lambda a: a[:, 1] < 0,
    "no_down": lambda a: a[:, 1] > 0,
}


def get_action_filter(name: str) -> ActionFilter:
    if name not in ACTION_FILTERS:
        raise ValueError(f"unknown action filter {name!r}; valid filters: {sorted(ACTION_FILTERS)}")
    return ACTION_FILTERS[name]


def rewarded_fraction(dataset: Dataset, task: Task, threshold: float = 0.1) -> float:
    """The share of transitions whose reward r(s_{t+1}, a_t) for ``task`` is at least ``threshold``.

    Single-task offline RL (CQL) can learn a task only from transitions that earn its reward. On the
    maze a reach reward of 0.1 or more means the next state is within twice the target's radius of the
    goal (the Gaussian tolerance is 0.1 a radius beyond the target).
    """
    return float((dataset.rewards(task) >= threshold).mean())
