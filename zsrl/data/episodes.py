"""Episodes in a dataset's arrays: where each transition's episode starts and ends, and its step.

Collectors write whole episodes in time order; subsets (a subsample, an action filter) keep each row's
step, so that "k steps later" stays meaningful across the gaps they leave. GC-IQL draws its goals from
these layouts (:func:`zsrl.baseline_losses.sample_goal_indices`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def steps_within_episodes(episode: np.ndarray) -> np.ndarray:
    """Each transition's position within its run of equal episode ids (n), for whole episodes stored
    in time order, as every collector writes them."""
    episode = np.asarray(episode)
    if episode.size == 0:
        return np.zeros(0, dtype=np.int64)
    is_start = np.r_[True, episode[1:] != episode[:-1]]  # n
    starts = np.flatnonzero(is_start)  # E
    run = np.cumsum(is_start) - 1  # n
    return np.arange(episode.size, dtype=np.int64) - starts[run]  # n


def steps_until_terminal(done: np.ndarray) -> np.ndarray:
    """Which steps (E, T) of episodes remain when each ends at its first terminal step: every step
    up to and including it, all of an episode without one. ``done`` (E, T): the step's next state is
    terminal."""
    done = np.asarray(done, dtype=bool)
    before = np.cumsum(done, axis=1) - done  # E x T: terminal steps before this one
    return before == 0


def episode_bounds(episode_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last dataset index of every transition's episode (each array has the ids' length).

    Raises ValueError if an episode's transitions are not contiguous in the arrays (an id that comes
    back after another episode), since goals are drawn by index arithmetic within an episode.
    """
    ids = np.asarray(episode_ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"episode_ids must be a non-empty 1-D array, got shape {ids.shape}")
    is_start = np.r_[True, ids[1:] != ids[:-1]]  # n: a new run of ids starts here
    starts = np.flatnonzero(is_start)  # E
    run_ids, counts = np.unique(ids[starts], return_counts=True)  # E'
    if run_ids.size != starts.size:
        split = run_ids[counts > 1].tolist()
        raise ValueError(
            f"episodes must be contiguous in the arrays; episode ids {split} are split"
        )
    ends = np.r_[starts[1:] - 1, ids.size - 1]  # E: last index of every episode
    run = np.cumsum(is_start) - 1  # n: which run each index belongs to
    return starts[run], ends[run]


class EpisodeLayout(NamedTuple):
    """Where every transition's episode lies in the dataset arrays, for drawing goals by index."""

    start: np.ndarray  # n: first index of the transition's episode
    end: np.ndarray  # n: last index of the transition's episode
    time_key: np.ndarray | None  # n: (episode, step) as one increasing number; None: rows are steps


def episode_layout(episode_ids: np.ndarray, timesteps: np.ndarray | None = None) -> EpisodeLayout:
    """The :class:`EpisodeLayout` of a dataset, checked once (a training loop caches it).

    Transitions of one episode must be contiguous and in time order in the arrays. Contiguity is
    checked from ``episode_ids`` (n); time order is checked when ``timesteps`` (n, each transition's
    step within its episode) is given. Give them whenever episodes may have gaps (a subsample, an
    action filter): "k steps later" is then counted in time, not in rows.
    """
    start, end = episode_bounds(episode_ids)  # n, n
    if timesteps is None:
        return EpisodeLayout(start, end, None)
    steps = np.asarray(timesteps)
    if steps.shape != start.shape:
        raise ValueError(f"timesteps has shape {steps.shape}, episode_ids {start.shape}")
    same_episode = start[1:] == start[:-1]  # n - 1
    bad = np.flatnonzero(same_episode & (np.diff(steps) <= 0))
    if bad.size:
        raise ValueError(
            f"episodes must be in time order; timesteps do not increase after indices {bad[:5].tolist()}"
        )
    # (episode start, step) as one key that increases along the arrays, so that "the first row at
    # least k steps later" is a binary search
    time_key = start.astype(np.int64) * (int(steps.max()) + 2) + steps  # n
    return EpisodeLayout(start, end, time_key)
