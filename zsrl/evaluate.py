"""Zero-shot evaluation: infer z for every task, then roll out all tasks × episodes in one batch.

Every rollout of every task advances together: one actor call on a (tasks·episodes) x O batch per
control step, and one vectorised reward call per task. Episodes of different tasks share their start
states (paired comparisons), drawn from the evaluation seed, never from the training RNG.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from zsrl.data import Dataset
from zsrl.envs import BatchSim, Domain, Task
from zsrl.model import FBModel
from zsrl.stats import iqm

GOAL_INFERENCE = ("goal", "rewards")


@dataclass
class TaskResult:
    returns: list[float]  # one per episode
    score: float  # IQM over episodes (spec §3.5)
    # goal tasks: distance to the goal at the end of each episode
    final_distance: list[float] | None
    # physics states along each episode (episodes x steps+1 x P), only when asked for: not in records
    paths: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {"score": self.score, "returns": self.returns, "final_distance": self.final_distance}


@torch.no_grad()
def infer_task_vectors(
    model: FBModel,
    tasks: list[Task],
    dataset: Dataset | None = None,
    inference_samples: int = 10_000,
    seed: int = 0,
    goal_inference: str = "goal",
) -> torch.Tensor:
    """z for each task (tasks x d): B of the goal for goal tasks, else reward-weighted B (spec §4).

    Reward tasks use ``inference_samples`` transitions of the training data, labelled from their
    stored next physics states. With ``goal_inference="rewards"`` goal tasks are inferred the same
    way, from their reward, instead of from B of the single goal observation.
    """
    if goal_inference not in GOAL_INFERENCE:
        raise ValueError(
            f"unknown goal_inference {goal_inference!r}; valid: {list(GOAL_INFERENCE)}"
        )
    device = model.obs_mean.device
    zs = []
    for task in tasks:
        if task.goal_observation is not None and goal_inference == "goal":
            goal = torch.as_tensor(task.goal_observation, dtype=torch.float32, device=device)
            zs.append(model.infer_z_from_goal(goal))
            continue
        if dataset is None:
            raise ValueError(f"task {task.name!r} needs reward-labelled samples: pass a dataset")
        rng = np.random.default_rng(seed)
        index = rng.integers(0, len(dataset), size=inference_samples)
        sample = dataset.select(index)
        next_obs = torch.as_tensor(sample.next_observation, device=device)
        rewards = torch.as_tensor(sample.rewards(task), device=device)
        zs.append(model.infer_z_from_rewards(next_obs, rewards))
    return torch.stack(zs)  # tasks x d


@torch.no_grad()
def evaluate(
    model: FBModel,
    domain: Domain,
    task_names: list[str] | None = None,
    episodes: int = 10,
    seed: int = 0,
    dataset: Dataset | None = None,
    inference_samples: int = 10_000,
    goal_inference: str = "goal",
    keep_paths: bool = False,
) -> dict[str, TaskResult]:
    """Returns of the deterministic policy π(s, z_task) on every task, episodes per task.

    With ``keep_paths`` each result also holds the physics state at every step of every episode, for
    drawing rollouts.
    """
    tasks = [domain.task(name) for name in (task_names or list(domain.tasks))]
    device = model.obs_mean.device
    z = infer_task_vectors(model, tasks, dataset, inference_samples, seed, goal_inference)  # T x d
    n_tasks, n = len(tasks), len(tasks) * episodes
    z_rows = z.repeat_interleave(episodes, dim=0)  # n x d
    starts = domain.sample_start(np.random.default_rng(seed), episodes)  # episodes x P
    sim = BatchSim(domain, n)
    sim.set_states(np.tile(starts, (n_tasks, 1)))  # n x P
    states = sim.states()
    returns = np.zeros((n_tasks, episodes))
    paths = [states] if keep_paths else []
    for _ in range(domain.episode_steps):
        obs = torch.as_tensor(domain.observe(states), device=device)  # n x O
        action = model.act(obs, z_rows).cpu().numpy().astype(np.float64)  # n x A
        states = sim.step(action)  # n x P
        if keep_paths:
            paths.append(states)
        per_task = states.reshape(n_tasks, episodes, -1)  # tasks x episodes x P
        act_task = action.reshape(n_tasks, episodes, -1)  # tasks x episodes x A
        for k, task in enumerate(tasks):
            returns[k] += task.reward(per_task[k], act_task[k])
    final = states.reshape(n_tasks, episodes, -1)
    if keep_paths:
        # steps+1 x n x P -> tasks x episodes x steps+1 x P
        stacked = np.stack(paths).reshape(len(paths), n_tasks, episodes, -1).transpose(1, 2, 0, 3)
    return {
        task.name: TaskResult(
            returns=returns[k].tolist(),
            score=iqm(returns[k]),
            final_distance=task.distance(final[k]).tolist() if task.distance else None,
            paths=stacked[k] if keep_paths else None,
        )
        for k, task in enumerate(tasks)
    }
