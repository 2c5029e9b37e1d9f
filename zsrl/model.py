"""Models: networks plus task inference, separate from the agents that train them.

Everything a user of a trained model needs lives in its model and takes raw observations; optimisers
and target networks live in :mod:`zsrl.agents`. Every model offers the evaluation the same two calls:

- ``task_contexts(tasks, dataset, inference_samples, seed, goal_inference)``: what the policy is told
  about each task, one row per task (FB: z; SF-LAP: z or goal features; GC-IQL: a goal observation;
  single-task methods: ``None``);
- ``act(obs, context)``: the deterministic action for each observation and its row of the context.

This module holds the base class and the FB model; the baselines' models sit beside their agents.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from zsrl.config import FBConfig
from zsrl.data import Dataset
from zsrl.envs import Task
from zsrl.infer import infer_task_vectors
from zsrl.losses import infer_z_from_rewards, normalize_to_sphere, q_min
from zsrl.nets import Actor, BackwardNet, ForwardNet, orthogonal_init_, truncated_normal_sample

# A task context: a tensor with one row per task, a tuple of such tensors, or None.
Context = Any


class PolicyModel(nn.Module):
    """The base of every model: observation standardisation and the evaluation's two calls."""

    def __init__(self, obs_dim: int, action_dim: int, cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_dim, self.action_dim = obs_dim, action_dim
        # Observation standardisation (identity unless set from a dataset, see set_obs_stats).
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))

    @property
    def device(self) -> torch.device:
        return self.obs_mean.device

    def task_contexts(
        self,
        tasks: list[Task],
        dataset: Dataset | None = None,
        inference_samples: int = 10_000,
        seed: int = 0,
        goal_inference: str = "goal",
    ) -> Context:
        """What the policy is told about each task: one row per task (see the module docstring)."""
        raise NotImplementedError

    def act(self, obs: Tensor, context: Context, noisy: bool = False) -> Tensor:
        """The action for each observation (N x O) and its context row: N x A."""
        raise NotImplementedError

    def set_obs_stats(self, obs: Tensor) -> None:
        """Standardise inputs with the mean and std of ``obs`` (n x O), when the config asks for it."""
        if self.cfg.normalize_obs:
            self.obs_mean.copy_(obs.mean(0))
            self.obs_std.copy_(obs.std(0).clamp_min(1e-6))

    def normalize(self, obs: Tensor) -> Tensor:
        return (obs - self.obs_mean) / self.obs_std


class SingleTaskModel(PolicyModel):
    """A model trained on one task's rewards (CQL, TD3): twin critics ``self.critic`` on (s, a).

    The task context is ignored: the evaluation asks it for no task but its own.
    """

    critic: nn.Module  # (s, a) -> (Q_1, Q_2), each N

    def task_contexts(
        self,
        tasks: list[Task],
        dataset: Dataset | None = None,
        inference_samples: int = 10_000,
        seed: int = 0,
        goal_inference: str = "goal",
    ) -> Context:
        return None  # one task, learnt from its rewards

    def q_value(self, obs: Tensor, action: Tensor, context: Context = None) -> Tensor:
        """min_k Q_k(s, a): N. The value probe compares it at dataset, uniform and policy actions."""
        q1, q2 = self.critic(torch.cat([self.normalize(obs), action], -1))  # N, N
        return torch.minimum(q1, q2)


class FBModel(PolicyModel):
    """F(s, a, z), B(s), π(s, z) and the inference of z from rewards or a goal."""

    def __init__(self, obs_dim: int, action_dim: int, cfg: FBConfig) -> None:
        super().__init__(obs_dim, action_dim, cfg)
        self.z_dim = cfg.z_dim
        self.forward_net = ForwardNet(obs_dim, action_dim, cfg.z_dim, cfg)
        self.backward_net = BackwardNet(obs_dim, cfg.z_dim, cfg)
        self.actor = Actor(obs_dim, action_dim, cfg.z_dim, cfg)
        if cfg.orthogonal_init:
            orthogonal_init_(self)

    def task_contexts(
        self,
        tasks: list[Task],
        dataset: Dataset | None = None,
        inference_samples: int = 10_000,
        seed: int = 0,
        goal_inference: str = "goal",
    ) -> Tensor:
        """z for each task (tasks x d; reference: ref-task-inference): see
        :func:`zsrl.infer.infer_task_vectors`."""
        return infer_task_vectors(self, tasks, dataset, inference_samples, seed, goal_inference)

    def forward(self, obs: Tensor, action: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """The two forward heads F_1(s, a, z), F_2(s, a, z): each ... x d."""
        return self.forward_net(self.normalize(obs), action, z)

    def backward(self, obs: Tensor) -> Tensor:
        """B(s), of norm √d: ... x d."""
        return self.backward_net(self.normalize(obs))

    def act(self, obs: Tensor, z: Tensor, noisy: bool = False) -> Tensor:
        """π(s, z): the mean action, or a truncated-normal sample when ``noisy``."""
        mean = self.actor(self.normalize(obs), z)  # ... x A
        if not noisy:
            return mean
        return truncated_normal_sample(mean, self.cfg.actor_std, self.cfg.actor_std_clip)

    def q_value(self, obs: Tensor, action: Tensor, z: Tensor) -> Tensor:
        """Q(s, a, z) = min_j F_j(s, a, z)ᵀ z: ... ."""
        return q_min(*self(obs, action, z), z)

    @torch.no_grad()
    def infer_z_from_rewards(self, next_obs: Tensor, rewards: Tensor) -> Tensor:
        """z_r = √d·normalise(mean_k r_k B(s_k)) from reward-labelled states: d (reference:
        ref-task-inference)."""
        return infer_z_from_rewards(self.backward(next_obs), rewards)

    @torch.no_grad()
    def infer_z_from_goal(self, goal_obs: Tensor) -> Tensor:
        """z_g = √d·normalise(B(g)) for a goal observation (or a batch of them): ... x d."""
        return normalize_to_sphere(self.backward(goal_obs))
