"""The FB agent: trains an :class:`~zsrl.model.FBModel` offline from reward-free transitions.

One update (reference: ref-fb-update): draw and mix task vectors, take an Adam step on the FB
measure loss plus the orthonormality loss, then an actor step, then Polyak-average the target F̄ and
B̄. The update makes no host synchronisation: its metrics come back as device tensors for the
trainer to gather every k steps. Gradient clamping and target averaging use the ``torch._foreach_*``
kernels, with no Python loop over parameters (:mod:`zsrl.agents.base`).
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import torch
from torch import Tensor

from zsrl import losses
from zsrl.agents.base import Agent, Batch, discounts, optimizer_step, soft_update
from zsrl.config import FBConfig
from zsrl.model import FBModel
from zsrl.nets import truncated_normal_sample


class Forward(NamedTuple):
    """Network outputs of the FB loss that a penalty may reuse."""

    F1: Tensor  # N x d: F_1(s, a, z) at the dataset actions
    F2: Tensor  # N x d
    h_sz: Tensor  # N x P: the obs-z branch of F at (s, z)
    B_next: Tensor  # N x d: online B(s')
    next_mean: Tensor  # N x A: the policy's mean action π(s', z), no gradient


class FBAgent(Agent):
    """Optimisers, target networks and the update rule of FB around a model."""

    progress_keys = ("fb_loss", "actor_q")

    def __init__(self, model: FBModel, cfg: FBConfig) -> None:
        self.model, self.cfg = model, cfg
        self.batch_size = cfg.batch_size
        self.target_forward = copy.deepcopy(model.forward_net).requires_grad_(False)
        self.target_backward = copy.deepcopy(model.backward_net).requires_grad_(False)
        self.forward_params = list(model.forward_net.parameters())
        self.backward_params = list(model.backward_net.parameters())
        self.critic_params = self.forward_params + self.backward_params
        self.actor_params = list(model.actor.parameters())
        self._online = self.critic_params
        self._target = list(self.target_forward.parameters()) + list(
            self.target_backward.parameters()
        )
        self.fb_optimizer = torch.optim.Adam(
            [
                {"params": self.forward_params},
                {"params": self.backward_params, "lr": cfg.lr_fb * cfg.lr_b_coefficient},
            ],
            lr=cfg.lr_fb,
            foreach=True,
        )
        self.actor_optimizer = torch.optim.Adam(self.actor_params, lr=cfg.lr_actor, foreach=True)

    def sample_z(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Task vectors for a batch: sphere samples, half replaced by B of shuffled batch states.

        Returns z (N x d) and the mask of the rows taken from B (N, bool).
        """
        n = obs.shape[0]
        z = losses.sample_sphere(n, self.cfg.z_dim, obs.device)  # N x d
        with torch.no_grad():
            z_backward = self.model.backward_net(obs[torch.randperm(n, device=obs.device)])  # N x d
        return losses.mix_z(z, z_backward, self.cfg.z_mix_ratio)

    def fb_terms(self, batch: Batch, z: Tensor) -> tuple[Tensor, dict[str, Tensor], Forward]:
        """L_FB + L_ortho on a batch, its terms for logging, and the network outputs it used."""
        cfg, model = self.cfg, self.model
        with torch.no_grad():
            next_mean = model.actor(batch.next_obs, z)  # N x A
            next_action = truncated_normal_sample(next_mean, cfg.actor_std, cfg.actor_std_clip)
            F1_next, F2_next = self.target_forward(batch.next_obs, next_action, z)  # N x d each
            B_next_target = self.target_backward(batch.next_obs)  # N x d
            target_M = losses.target_measure(F1_next, F2_next, B_next_target, cfg.target_heads)
        forward_net = model.forward_net
        h_sz = forward_net.embed_obs_z(batch.obs, z)  # N x P
        F1, F2 = forward_net.heads(forward_net.embed_obs_action(batch.obs, batch.action), h_sz)
        B_next = model.backward_net(batch.next_obs)  # N x d
        gamma = discounts(batch, cfg.discount)  # a float, or N where s' may be terminal
        gamma = gamma if isinstance(gamma, float) else gamma[:, None]  # N x 1: multiplies row i
        fb = losses.fb_measure_loss(F1, F2, B_next, target_M, gamma)
        ortho = losses.orthonormality_loss(B_next, cfg.ortho_coefficient)
        metrics = {
            "fb_loss": fb.total,
            "fb_off_diag": fb.off_diag,
            "fb_diag": fb.diag,
            "ortho_loss": ortho,
            "target_M": target_M.mean(),
        }
        return fb.total + ortho, metrics, Forward(F1, F2, h_sz, B_next, next_mean)

    def critic_loss(
        self, batch: Batch, z: Tensor, from_backward: Tensor, mean: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss that trains F and B (here L_FB + L_ortho), and its terms for logging.

        ``from_backward`` (N, bool) marks the rows whose z came from B and ``mean`` is π(s, z)
        (N x A, detached); FB uses neither, the conservative variants do.
        """
        loss, metrics, _ = self.fb_terms(batch, z)
        return loss, metrics

    def update_actor(
        self,
        obs: Tensor,
        z: Tensor,
        mean: Tensor | None = None,
        data_action: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """One actor step: DDPG-style on −min_j F_j(s, ã, z)ᵀz, ã ~ π(s, z) (reference: ref-actor), or, with
        ``actor_objective="awr"``, advantage-weighted regression towards the dataset's actions.

        ``mean``: π(s, z) with its graph, if the caller computed it already (N x A);
        ``data_action``: the batch's actions (N x A), which the "awr" objective needs.
        """
        cfg = self.cfg
        mean = self.model.actor(obs, z) if mean is None else mean  # N x A
        if cfg.actor_objective == "awr":
            if data_action is None:
                raise ValueError("actor_objective 'awr' needs the batch's actions")
            with torch.no_grad():  # obs is standardised already: F directly, not model.q_value
                q_policy = losses.q_min(*self.model.forward_net(obs, mean.detach(), z), z)  # N
                q_data = losses.q_min(*self.model.forward_net(obs, data_action, z), z)  # N
                advantage = q_data - q_policy  # N
            loss = losses.advantage_weighted_actor_loss(
                mean, data_action, advantage, cfg.awr_temperature, cfg.awr_max_weight
            )
            actor_q = q_policy.mean()
        else:
            action = truncated_normal_sample(mean, cfg.actor_std, cfg.actor_std_clip)
            F1, F2 = self.model.forward_net(obs, action, z)  # N x d each
            loss = losses.actor_loss(F1, F2, z)
            actor_q = -loss.detach()
        # no weight gradients for F: they would be unused
        optimizer_step(self.actor_optimizer, loss, self.actor_params, cfg.grad_clamp)
        return {"actor_loss": loss.detach(), "actor_q": actor_q}

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One FB update; returns detached device tensors (no host synchronisation)."""
        z, from_backward = self.sample_z(batch.obs)
        mean = self.model.actor(batch.obs, z)  # N x A; the critic step leaves the actor unchanged
        loss, metrics = self.critic_loss(batch, z, from_backward, mean.detach())
        optimizer_step(self.fb_optimizer, loss, self.critic_params, self.cfg.grad_clamp)
        metrics.update(self.update_actor(batch.obs, z, mean, batch.action))
        soft_update(self._target, self._online, self.cfg.target_tau)
        return {k: v.detach() for k, v in metrics.items()}

    def state_parts(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "target_forward": self.target_forward,
            "target_backward": self.target_backward,
            "fb_optimizer": self.fb_optimizer,
            "actor_optimizer": self.actor_optimizer,
        }
