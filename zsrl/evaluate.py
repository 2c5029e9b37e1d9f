"""Zero-shot evaluation: infer every task's context, then roll out all tasks × episodes in one batch.

Every rollout of every task advances together: one actor call on a (tasks·episodes) x O batch per
control step, and one vectorised reward call per task. Episodes of different tasks share their start
states (paired comparisons), drawn from the evaluation seed, never from the training RNG.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from zsrl.data import Dataset
from zsrl.data.readers import d4rl_normalized_score
from zsrl.envs import BatchSim, Domain
from zsrl.infer import GOAL_INFERENCE, infer_task_vectors
from zsrl.model import Context, PolicyModel
from zsrl.stats import iqm

__all__ = ["GOAL_INFERENCE", "TaskResult", "evaluate", "infer_task_vectors", "repeat_rows"]


@dataclass
class TaskResult:
    returns: list[float]  # one per episode
    score: float  # IQM over episodes (reference: ref-evaluation)
    # goal tasks: distance to the goal at the end of each episode
    final_distance: list[float] | None
    # physics states along each episode (episodes x steps+1 x P), only when asked for: not in records
    paths: np.ndarray | None = None
    # D4RL's normalised score of ``score``, for a domain with a D4RL name (reference: ref-d4rl)
    normalized_score: float | None = None

    def to_dict(self) -> dict:
        out = {"score": self.score, "returns": self.returns, "final_distance": self.final_distance}
        if self.normalized_score is not None:
            out["normalized_score"] = self.normalized_score
        return out


def repeat_rows(context: Context, n: int) -> Context:
    """Each row of a task context repeated n times in place (a tensor, a tuple of them, or None)."""
    if context is None:
        return None
    if isinstance(context, torch.Tensor):
        return context.repeat_interleave(n, dim=0)
    return type(context)(*(repeat_rows(part, n) for part in context))


@torch.no_grad()
def evaluate(
    model: PolicyModel,
    domain: Domain,
    task_names: list[str] | None = None,
    episodes: int = 10,
    seed: int = 0,
    dataset: Dataset | None = None,
    inference_samples: int = 10_000,
    goal_inference: str = "goal",
    keep_paths: bool = False,
) -> dict[str, TaskResult]:
    """Returns of the model's deterministic policy on every task, episodes per task.

    The model is told about each task by its ``task_contexts`` (z for FB, see :mod:`zsrl.infer`).

    With ``keep_paths`` each result also holds the physics state at every step of every episode, for
    drawing rollouts. On a domain with terminal states an episode's return stops at its first one
    (that step's reward included); once every episode has ended, the rollouts stop early unless the
    paths are kept. On a domain with a D4RL name each result also holds D4RL's normalised score.
    """
    tasks = [domain.task(name) for name in (task_names or list(domain.tasks))]
    device = model.obs_mean.device
    contexts = model.task_contexts(
        tasks, dataset, inference_samples, seed, goal_inference
    )  # T rows
    n_tasks, n = len(tasks), len(tasks) * episodes
    rows = repeat_rows(contexts, episodes)  # n rows
    starts = domain.sample_start(np.random.default_rng(seed), episodes)  # episodes x P
    sim = BatchSim(domain, n)
    sim.set_states(np.tile(starts, (n_tasks, 1)))  # n x P
    states = sim.states()
    returns = np.zeros((n_tasks, episodes))
    # episodes not yet ended by a terminal state; None for a domain without them
    running = np.ones((n_tasks, episodes), dtype=bool) if domain.terminated else None
    paths = [states] if keep_paths else []
    for _ in range(domain.episode_steps):
        obs = torch.as_tensor(domain.observe(states), device=device)  # n x O
        action = model.act(obs, rows).cpu().numpy().astype(np.float64)  # n x A
        before = states.reshape(n_tasks, episodes, -1)  # tasks x episodes x P
        states = sim.step(action)  # n x P
        if keep_paths:
            paths.append(states)
        per_task = states.reshape(n_tasks, episodes, -1)  # tasks x episodes x P
        act_task = action.reshape(n_tasks, episodes, -1)  # tasks x episodes x A
        for k, task in enumerate(tasks):
            reward = task.transition_reward(before[k], act_task[k], per_task[k])  # episodes
            returns[k] += reward if running is None else np.where(running[k], reward, 0.0)
        if running is not None:
            running &= ~domain.terminated(per_task)  # the terminal step's reward counts
            if not running.any() and not keep_paths:
                break
    final = states.reshape(n_tasks, episodes, -1)
    if keep_paths:
        # steps+1 x n x P -> tasks x episodes x steps+1 x P
        stacked = np.stack(paths).reshape(len(paths), n_tasks, episodes, -1).transpose(1, 2, 0, 3)
    scores = [iqm(row) for row in returns]  # one per task
    return {
        task.name: TaskResult(
            returns=returns[k].tolist(),
            score=scores[k],
            final_distance=task.distance(final[k]).tolist() if task.distance else None,
            paths=stacked[k] if keep_paths else None,
            normalized_score=d4rl_normalized_score(domain.d4rl_name, scores[k])
            if domain.d4rl_name
            else None,
        )
        for k, task in enumerate(tasks)
    }
