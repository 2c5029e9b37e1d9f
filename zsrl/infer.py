"""Zero-shot task inference: what a model is told about a task before it acts (reference: ref-task-inference).

A reward task is described by reward-labelled samples: ``inference_samples`` transitions of the
training data, drawn with the evaluation seed, labelled from their stored next physics states (never
by re-stepping a simulator; reference: ref-bug-labels). A goal task is described by its goal
observation, or, with ``goal_inference="rewards"``, by its reward like any other task. Each method
turns that description into its own task context: FB a task vector z, SF-LAP a least-squares z or
goal features, GC-IQL a goal observation; single-task methods need none.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from zsrl.data import Dataset
from zsrl.envs import Task

GOAL_INFERENCE = ("goal", "rewards")


def check_goal_inference(goal_inference: str) -> None:
    if goal_inference not in GOAL_INFERENCE:
        raise ValueError(
            f"unknown goal_inference {goal_inference!r}; valid: {list(GOAL_INFERENCE)}"
        )


def uses_goal(task: Task, goal_inference: str) -> bool:
    """Whether ``task`` is inferred from its goal observation rather than from labelled rewards."""
    check_goal_inference(goal_inference)
    return task.goal_observation is not None and goal_inference == "goal"


def labelled_samples(
    task: Task, dataset: Dataset | None, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` transitions of ``dataset`` drawn with replacement by ``seed``: (next observations n x O,
    rewards n), the reward r(s', a) of ``task`` computed from the stored next physics state."""
    if dataset is None:
        raise ValueError(f"task {task.name!r} needs reward-labelled samples: pass a dataset")
    index = np.random.default_rng(seed).integers(0, len(dataset), size=n)
    sample = dataset.select(index)
    return sample.next_observation, sample.rewards(task)


def infer_each_task(
    tasks: list[Task],
    from_goal: Callable[[Tensor], Tensor],
    from_rewards: Callable[[Tensor, Tensor], Tensor],
    device: torch.device,
    dataset: Dataset | None = None,
    inference_samples: int = 10_000,
    seed: int = 0,
    goal_inference: str = "goal",
) -> list[tuple[bool, Tensor]]:
    """For each task, (True, ``from_goal(goal observation)``) if it is inferred from its goal, else
    (False, ``from_rewards(next observations n x O, rewards n)``) on its labelled samples."""
    check_goal_inference(goal_inference)
    as_tensor = lambda x: torch.as_tensor(x, dtype=torch.float32, device=device)  # noqa: E731
    inferred = []
    for task in tasks:
        if uses_goal(task, goal_inference):
            inferred.append((True, from_goal(as_tensor(task.goal_observation))))
            continue
        next_obs, rewards = labelled_samples(task, dataset, inference_samples, seed)  # n x O, n
        inferred.append((False, from_rewards(as_tensor(next_obs), as_tensor(rewards))))
    return inferred


@torch.no_grad()
def infer_task_vectors(
    model,
    tasks: list[Task],
    dataset: Dataset | None = None,
    inference_samples: int = 10_000,
    seed: int = 0,
    goal_inference: str = "goal",
) -> Tensor:
    """FB's z for each task (tasks x d): √d·normalise(B(goal)) for goal tasks, else the
    reward-weighted mean of B over the labelled samples, normalised (reference: ref-task-inference).

    ``model`` is an :class:`~zsrl.model.FBModel` or anything with its ``infer_z_from_goal``,
    ``infer_z_from_rewards`` and ``obs_mean`` buffer.
    """
    inferred = infer_each_task(
        tasks,
        model.infer_z_from_goal,
        model.infer_z_from_rewards,
        model.obs_mean.device,
        dataset,
        inference_samples,
        seed,
        goal_inference,
    )
    return torch.stack([z for _, z in inferred])  # tasks x d
