"""Offline TD3, without a behaviour-cloning term (reference: ref-td3): a single-task baseline.

Trained on one task's rewards, relabelled from the stored physics states; its policy ignores the task,
so it is evaluated on the task it was trained for only. The critics bootstrap at every transition
but a terminal one: dm_control episodes end at a time limit, never at a terminal state, and a time
limit is not a terminal (the paper's code misaligned its ``not_done`` flags; reference:
ref-bug-not-done); data that record terminals (D4RL's) stop the bootstrap there.

As in FB, the next action is the online actor's, with the same truncated-normal smoothing noise
(σ 0.2, clipped at 0.3); there is no target actor. The critics are Polyak-averaged every update.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from zsrl import baseline_losses as bl
from zsrl.agents.base import Agent, Batch, optimizer_step, soft_update
from zsrl.config import TD3Config
from zsrl.model import Context, SingleTaskModel
from zsrl.nets import TwinMLP, mlp, truncated_normal_sample


class TD3Model(SingleTaskModel):
    """Twin critics Q_1, Q_2(s, a) and a deterministic actor π(s); the task context is ignored."""

    def __init__(self, obs_dim: int, action_dim: int, cfg: TD3Config) -> None:
        super().__init__(obs_dim, action_dim, cfg)
        self.critic = TwinMLP(obs_dim + action_dim, cfg.critic_hidden, cfg.critic_layers, True)
        self.actor = mlp(obs_dim, cfg.actor_hidden, 2, action_dim, layernorm_input=True)

    def policy(self, obs: Tensor) -> Tensor:
        """π(s) on standardised observations: the tanh mean, N x A."""
        return torch.tanh(self.actor(obs))

    def act(self, obs: Tensor, context: Context = None, noisy: bool = False) -> Tensor:
        mean = self.policy(self.normalize(obs))  # N x A
        if not noisy:
            return mean
        return truncated_normal_sample(mean, self.cfg.actor_std, self.cfg.actor_std_clip)


class TD3Agent(Agent):
    """Critic and actor optimisers and the target critics of offline TD3."""

    def __init__(self, model: TD3Model, cfg: TD3Config) -> None:
        self.model, self.cfg, self.batch_size = model, cfg, cfg.batch_size
        self.target_critic = copy.deepcopy(model.critic).requires_grad_(False)
        self.critic_params = list(model.critic.parameters())
        self.actor_params = list(model.actor.parameters())
        self.target_params = list(self.target_critic.parameters())
        self.critic_optimizer = torch.optim.Adam(self.critic_params, lr=cfg.lr_critic, foreach=True)
        self.actor_optimizer = torch.optim.Adam(self.actor_params, lr=cfg.lr_actor, foreach=True)

    def _noisy(self, mean: Tensor) -> Tensor:
        return truncated_normal_sample(mean, self.cfg.actor_std, self.cfg.actor_std_clip)

    def update(self, batch: Batch) -> dict[str, Tensor]:
        cfg, model = self.cfg, self.model
        with torch.no_grad():
            next_action = self._noisy(model.policy(batch.next_obs))  # N x A
            q1_next, q2_next = self.target_critic(torch.cat([batch.next_obs, next_action], -1))
            not_done = torch.ones_like(batch.reward) if batch.not_done is None else batch.not_done
            target = bl.td3_critic_target(q1_next, q2_next, batch.reward, not_done, cfg.discount)
        q1, q2 = model.critic(torch.cat([batch.obs, batch.action], -1))  # N each
        critic_loss = bl.double_q_mse(q1, q2, target)
        optimizer_step(self.critic_optimizer, critic_loss, self.critic_params)

        action = self._noisy(model.policy(batch.obs))  # N x A
        q1_actor, q2_actor = model.critic(torch.cat([batch.obs, action], -1))  # N each
        actor_loss = bl.td3_actor_loss(torch.minimum(q1_actor, q2_actor))
        optimizer_step(self.actor_optimizer, actor_loss, self.actor_params)
        soft_update(self.target_params, self.critic_params, cfg.target_tau)
        return {
            "critic_loss": critic_loss.detach(),
            "q_target": target.mean(),
            "actor_loss": actor_loss.detach(),
            "actor_q": -actor_loss.detach(),
        }

    def state_parts(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "target_critic": self.target_critic,
            "critic_optimizer": self.critic_optimizer,
            "actor_optimizer": self.actor_optimizer,
        }
