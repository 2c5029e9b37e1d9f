"""Goal-conditioned IQL with values only: a zero-shot baseline that reaches goal states (reference:
ref-gciql).

GC-IQL learns the value V(s, g) of reaching a goal observation g from s, with reward −1 per step until
s equals g exactly (then 0, and no bootstrapping). Goals are states of the dataset: for each sampled
transition a future state of its episode (t + Geometric(0.01) steps, capped at the episode's end), a
random state of its episode, or the current state itself (reference: ref-gciql). There is no Q network: the
expectile loss uses the backed-up target values r + γ·V̄(s', g) in place of Q(s, a, g), and the actor is
trained by advantage-weighted regression on the dataset's actions, so the policy never queries a value
at an action outside the data.

Departures from the paper's code, both deliberate (reference: ref-bug-gciql-goals): goals are drawn
afresh for every batch, as HIQL does, where the code drew one goal per transition at load time and
kept it for all of training; and the log-probability of a dataset action at ±1 exactly, infinite
under a tanh-squashed Gaussian, is guarded (:meth:`zsrl.nets.TanhGaussianActor.log_prob`).

At test time the policy is conditioned on a goal observation: the task's own goal for goal-reaching
tasks, and otherwise the reward-labelled sample with the highest reward (reference: ref-gciql, "the
goal at test time").
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zsrl import baseline_losses as bl
from zsrl.agents.base import Agent, Batch, TrainingData, discounts, optimizer_step, soft_update
from zsrl.config import GCIQLConfig
from zsrl.data import Dataset
from zsrl.data.episodes import EpisodeLayout, episode_layout
from zsrl.envs import Task
from zsrl.infer import infer_each_task
from zsrl.model import PolicyModel
from zsrl.nets import TanhGaussianActor, TwinMLP


class GCIQLModel(PolicyModel):
    """Double goal-conditioned values V_1, V_2(s, g) and a tanh-Gaussian actor π(a | s, g).

    Both take the concatenation [s, g] of two standardised observations. The values' first layer is
    Linear→LayerNorm→Tanh; the actor is a plain ReLU MLP whose log σ is squashed smoothly into
    [log_std_min, log_std_max] (reference: ref-gciql). The task context is a goal observation per task.
    """

    def __init__(self, obs_dim: int, action_dim: int, cfg: GCIQLConfig) -> None:
        super().__init__(obs_dim, action_dim, cfg)
        self.value = TwinMLP(2 * obs_dim, cfg.value_hidden, cfg.value_layers, layernorm_input=True)
        self.actor = TanhGaussianActor(
            2 * obs_dim,
            action_dim,
            cfg.actor_hidden,
            cfg.actor_layers,
            cfg.log_std_min,
            cfg.log_std_max,
            smooth_log_std=True,
        )

    def values(self, obs: Tensor, goal: Tensor) -> tuple[Tensor, Tensor]:
        """V_1(s, g), V_2(s, g) on standardised observations and goals (N x O each): N each."""
        return self.value(torch.cat([obs, goal], -1))

    @torch.no_grad()
    def task_contexts(
        self,
        tasks: list[Task],
        dataset: Dataset | None = None,
        inference_samples: int = 10_000,
        seed: int = 0,
        goal_inference: str = "goal",
    ) -> Tensor:
        """A raw goal observation per task (tasks x O; reference: ref-gciql).

        A goal task gives its goal observation (unless ``goal_inference="rewards"``); any other task
        gives the next observation with the highest reward among its ``inference_samples``
        reward-labelled samples (the first one on ties), the one state that best stands for the task.
        """
        inferred = infer_each_task(
            tasks,
            lambda goal: goal,  # O
            lambda next_obs, rewards: next_obs[torch.argmax(rewards)],  # O: the first best
            self.device,
            dataset,
            inference_samples,
            seed,
            goal_inference,
        )
        return torch.stack([goal for _, goal in inferred])  # T x O

    def act(self, obs: Tensor, goal: Tensor, noisy: bool = False) -> Tensor:
        """π(s, g) on raw observations and goals (N x O each): the squashed mean, or a sample when
        ``noisy``. N x A."""
        x = torch.cat([self.normalize(obs), self.normalize(goal)], -1)  # N x 2O
        if noisy:
            return self.actor.sample(x)[0]
        return self.actor.mean_action(x)


class GCIQLAgent(Agent):
    """Value and actor optimisers, the target values and the goal sampler of GC-IQL."""

    progress_keys = ("value_loss", "actor_loss")

    def __init__(self, model: GCIQLModel, cfg: GCIQLConfig) -> None:
        self.model, self.cfg, self.batch_size = model, cfg, cfg.batch_size
        self.target_value = copy.deepcopy(model.value).requires_grad_(False)
        self.value_params = list(model.value.parameters())
        self.actor_params = list(model.actor.parameters())
        self.target_params = list(self.target_value.parameters())
        self.value_optimizer = torch.optim.Adam(self.value_params, lr=cfg.lr_value, foreach=True)
        self.actor_optimizer = torch.optim.Adam(self.actor_params, lr=cfg.lr_actor, foreach=True)
        # ((episode ids, steps), their layout): computed once per dataset, not per batch
        self._layout: tuple[tuple[np.ndarray, np.ndarray | None], EpisodeLayout] | None = None

    def episode_layout(self, data: TrainingData) -> EpisodeLayout:
        """Where each transition's episode lies in ``data`` (checked once), cached for its arrays."""
        arrays = (data.episode, data.step)
        cached = self._layout
        if cached is None or cached[0][0] is not arrays[0] or cached[0][1] is not arrays[1]:
            # "k steps later" is counted in time, also where a subsample left gaps
            cached = self._layout = (arrays, episode_layout(*arrays))
        return cached[1]

    def sample_batch(self, data: TrainingData) -> Batch:
        """``batch_size`` uniform transitions, each with a goal drawn for this batch (reference:
        ref-gciql, ref-bug-gciql-goals).

        The indices and the numpy generator's seed both come from torch's CPU generator, so that a
        checkpoint (which saves torch's RNG state) resumes with the same batches.
        """
        cfg = self.cfg
        index = torch.randint(0, len(data.obs), (self.batch_size,))  # N, on the host
        seed = int(torch.randint(0, 2**62, ()))
        index_np = index.numpy()  # N
        goal_index = bl.sample_goal_indices(
            None,
            index_np,
            np.random.default_rng(seed),
            cfg.p_future,
            cfg.p_random,
            cfg.p_current,
            cfg.geometric_p,
            layout=self.episode_layout(data),
        ).goal  # N
        device = data.obs.device
        index = index.to(device)  # N
        goal = data.obs[torch.from_numpy(goal_index).to(device)]  # N x O, standardised
        return data.transitions(index, goal=goal)

    def update(self, batch: Batch) -> dict[str, Tensor]:
        cfg, model = self.cfg, self.model
        obs, next_obs, goal = batch.obs, batch.next_obs, batch.goal  # N x O each
        with torch.no_grad():
            reward, mask = bl.goal_reward_and_mask(obs, goal)  # N, N
            target_v1_next, target_v2_next = self.target_value(torch.cat([next_obs, goal], -1))
            target_v1, target_v2 = self.target_value(torch.cat([obs, goal], -1))  # N each
        v1, v2 = model.values(obs, goal)  # N each
        value_loss = bl.expectile_value_loss(
            v1,
            v2,
            target_v1_next,
            target_v2_next,
            target_v1,
            target_v2,
            reward,
            mask,
            discounts(batch, cfg.discount),
            cfg.expectile,
        )
        optimizer_step(self.value_optimizer, value_loss, self.value_params)

        # AWR with the values just updated, as the paper's code orders the two steps
        with torch.no_grad():
            v_mean = 0.5 * sum(model.values(obs, goal))  # N
        weights = bl.awr_weights(
            0.5 * (target_v1_next + target_v2_next), v_mean, cfg.temperature, cfg.max_weight
        )  # N
        log_prob = model.actor.log_prob(torch.cat([obs, goal], -1), batch.action)  # N x A
        actor_loss = bl.awr_actor_loss(log_prob, weights)
        optimizer_step(self.actor_optimizer, actor_loss, self.actor_params)
        soft_update(self.target_params, self.value_params, cfg.target_tau)
        return {
            "value_loss": value_loss.detach(),
            "value": v_mean.mean(),
            "goal_reached": (1.0 - mask).mean(),
            "actor_loss": actor_loss.detach(),
            "awr_weight": weights.mean(),
        }

    def state_parts(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "target_value": self.target_value,
            "value_optimizer": self.value_optimizer,
            "actor_optimizer": self.actor_optimizer,
        }
