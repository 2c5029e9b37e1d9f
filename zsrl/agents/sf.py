"""SF-LAP: universal successor features on Laplacian eigenfunction features (reference: ref-sf-lap).

A zero-shot baseline shaped like FB. Where FB learns the measure F(s, a, z)ᵀB(s⁺), SF-LAP first learns
features φ(s) (norm √d) by a Laplacian loss, smoothness along transitions plus FB's orthonormality
term, and then successor features ψ(s, a, z) by TD on Q = ψᵀz, with φ(s')ᵀz as the reward of task z.
ψ and the actor π(s, z) have FB's forward-net and actor architectures.

Tasks are told to the policy differently from FB (reference: ref-sf-lap, ref-task-inference):

- a reward task, by z = √d·normalise(argmin_w ‖φ(S)w − r‖²), a least-squares regression of the
  labelled rewards on the features (not FB's reward-weighted mean);
- a goal task, by the goal's features φ(g): the policy's z is recomputed at every control step from
  the current state, z = √d·normalise(φ(g) − φ(s_t)). The paper's code crashed on the maze's goal
  tasks (reference: ref-bug-sf-maze); here the context carries φ(g) and :meth:`SFModel.act` recomputes z.

The actor's and the target-smoothing noise is ``cfg.actor_std`` always: evaluation uses the mean
action and changes no noise setting (the paper's code left it at 0.05 after the first evaluation;
reference: ref-bug-sf-noise). One update makes no host synchronisation.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import torch
from torch import Tensor

from zsrl import baseline_losses as bl
from zsrl import losses
from zsrl.agents.base import Agent, Batch, discounts, optimizer_step, soft_update
from zsrl.config import SFConfig
from zsrl.data import Dataset
from zsrl.envs import Task
from zsrl.infer import infer_each_task
from zsrl.model import PolicyModel
from zsrl.nets import Actor, ForwardNet, mlp, orthogonal_init_, truncated_normal_sample


class SFContext(NamedTuple):
    """SF-LAP's task contexts, one row per task (or per rollout, after ``repeat_rows``)."""

    z: Tensor  # T x d: the inferred z of reward tasks (zeros on goal rows, where it is unused)
    goal_features: Tensor  # T x d: φ(g) of goal tasks (zeros on reward rows)
    is_goal: Tensor  # T, bool: the row's z is recomputed from φ(g) and the current state


class SFModel(PolicyModel):
    """Features φ(s), successor features ψ(s, a, z) → (ψ_1, ψ_2), the actor π(s, z), and the
    inference of a task's context from labelled rewards or a goal (reference: ref-sf-lap)."""

    def __init__(self, obs_dim: int, action_dim: int, cfg: SFConfig) -> None:
        super().__init__(obs_dim, action_dim, cfg)
        self.z_dim = cfg.z_dim
        # φ: Linear→LayerNorm→Tanh, then Linear→ReLU layers, then Linear to d (normalised in phi)
        self.feature_net = mlp(
            obs_dim, cfg.feature_hidden, cfg.feature_layers, cfg.z_dim, layernorm_input=True
        )
        self.successor_net = ForwardNet(obs_dim, action_dim, cfg.z_dim, cfg)
        self.actor = Actor(obs_dim, action_dim, cfg.z_dim, cfg)
        if cfg.orthogonal_init:
            orthogonal_init_(self)

    # -------------------------------------------------------------- on standardised observations
    def phi(self, obs: Tensor) -> Tensor:
        """φ(s) of standardised observations, of norm √d: ... x d."""
        return losses.normalize_to_sphere(self.feature_net(obs))  # ... x d

    def task_vectors(self, obs: Tensor, context: Tensor | SFContext) -> Tensor:
        """The z of every row (N x d) at standardised observations ``obs`` (N x O).

        A plain tensor is z itself. An :class:`SFContext` gives its z on reward rows and
        √d·normalise(φ(g) − φ(s)) on goal rows, recomputed from the current state (reference: ref-sf-lap).
        """
        if not isinstance(context, SFContext):
            return context  # N x d
        if not bool(context.is_goal.any()):  # one host sync: skip φ(s) when every task is a reward
            return context.z
        goal_z = bl.sf_goal_z(context.goal_features, self.phi(obs))  # N x d
        return torch.where(context.is_goal[:, None], goal_z, context.z)  # N x d

    # --------------------------------------------------------------------- on raw observations
    def features(self, obs: Tensor) -> Tensor:
        """φ(s) of raw observations, of norm √d: ... x d."""
        return self.phi(self.normalize(obs))

    def successor_features(self, obs: Tensor, action: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """The two heads ψ_1(s, a, z), ψ_2(s, a, z) on raw observations: each ... x d."""
        return self.successor_net(self.normalize(obs), action, z)

    def act(self, obs: Tensor, context: Tensor | SFContext, noisy: bool = False) -> Tensor:
        """π(s, z) for raw observations (N x O): the mean action, or a truncated-normal sample with
        σ = cfg.actor_std when ``noisy``. ``context`` is z (N x d) or an :class:`SFContext`."""
        x = self.normalize(obs)  # N x O
        mean = self.actor(x, self.task_vectors(x, context))  # N x A
        if not noisy:
            return mean
        return truncated_normal_sample(mean, self.cfg.actor_std, self.cfg.actor_std_clip)

    def q_value(self, obs: Tensor, action: Tensor, z: Tensor | SFContext) -> Tensor:
        """Q(s, a, z) = min_j ψ_j(s, a, z)ᵀz on raw observations: N."""
        x = self.normalize(obs)  # N x O
        z = self.task_vectors(x, z)  # N x d
        psi1, psi2 = self.successor_net(x, action, z)  # N x d each
        return torch.minimum((psi1 * z).sum(-1), (psi2 * z).sum(-1))  # N

    @torch.no_grad()
    def infer_z_from_rewards(self, next_obs: Tensor, rewards: Tensor) -> Tensor:
        """z = √d·normalise(least-squares w of φ(S)w ≈ r) from labelled raw states: d (reference:
        ref-sf-lap)."""
        return bl.sf_z_from_features(self.features(next_obs), rewards)

    @torch.no_grad()
    def task_contexts(
        self,
        tasks: list[Task],
        dataset: Dataset | None = None,
        inference_samples: int = 10_000,
        seed: int = 0,
        goal_inference: str = "goal",
    ) -> SFContext:
        """One :class:`SFContext` row per task: least-squares z for reward tasks (and goal tasks
        when ``goal_inference="rewards"``), φ(g) for goal tasks (reference: ref-sf-lap,
        ref-task-inference)."""
        inferred = infer_each_task(
            tasks,
            self.features,  # φ(g)
            self.infer_z_from_rewards,  # least-squares z
            self.device,
            dataset,
            inference_samples,
            seed,
            goal_inference,
        )
        zero = torch.zeros(self.z_dim, device=self.device)  # d
        zs = [zero if goal else v for goal, v in inferred]
        goals = [v if goal else zero for goal, v in inferred]
        is_goal = [goal for goal, _ in inferred]
        return SFContext(
            torch.stack(zs),  # T x d
            torch.stack(goals),  # T x d
            torch.tensor(is_goal, dtype=torch.bool, device=self.device),  # T
        )


class SFAgent(Agent):
    """Optimisers of φ, ψ and π, the target ψ̄, and SF-LAP's update rule (reference: ref-sf-lap).

    One update: draw z (sphere samples, a share from the features of shuffled next states), take an
    Adam step on the Laplacian feature loss, one on the SF TD loss on Q, then an actor step, then
    Polyak-average ψ̄. There is no target φ: φ(s') enters the TD target detached. All three networks'
    gradients are clamped elementwise to ±``grad_clamp``.
    """

    progress_keys = ("sf_loss", "actor_q")

    def __init__(self, model: SFModel, cfg: SFConfig) -> None:
        self.model, self.cfg = model, cfg
        self.batch_size = cfg.batch_size
        self.target_successor = copy.deepcopy(model.successor_net).requires_grad_(False)
        self.feature_params = list(model.feature_net.parameters())
        self.successor_params = list(model.successor_net.parameters())
        self.actor_params = list(model.actor.parameters())
        self.target_params = list(self.target_successor.parameters())
        adam = lambda params, lr: torch.optim.Adam(params, lr=lr, foreach=True)  # noqa: E731
        self.feature_optimizer = adam(self.feature_params, cfg.lr_features)
        self.sf_optimizer = adam(self.successor_params, cfg.lr_sf)
        self.actor_optimizer = adam(self.actor_params, cfg.lr_actor)

    def _noisy(self, mean: Tensor) -> Tensor:
        """A truncated-normal sample around ``mean`` with the configured σ (never changed)."""
        return truncated_normal_sample(mean, self.cfg.actor_std, self.cfg.actor_std_clip)

    def sample_z(self, phi_next: Tensor) -> tuple[Tensor, Tensor]:
        """Task vectors for a batch: sphere samples, a share ``z_mix_ratio`` replaced by
        √d·normalise(φ(s'_perm) C⁺) of shuffled next states (reference: ref-sf-lap).

        phi_next: N x d features of the batch's next states (detached here). Returns z (N x d) and
        the mask of the rows taken from the features (N, bool).
        """
        n = phi_next.shape[0]
        z = losses.sample_sphere(n, self.cfg.z_dim, phi_next.device)  # N x d
        perm = torch.randperm(n, device=phi_next.device)  # N
        z_features = bl.sf_mix_z_backward(phi_next.detach()[perm])  # N x d, no gradient
        return losses.mix_z(z, z_features, self.cfg.z_mix_ratio)

    def update_actor(self, obs: Tensor, z: Tensor) -> dict[str, Tensor]:
        """One DDPG-style actor step on −min_j ψ_j(s, ã, z)ᵀz, ã ~ π(s, z) (reference: ref-sf-lap,
        ref-actor)."""
        action = self._noisy(self.model.actor(obs, z))  # N x A
        psi1, psi2 = self.model.successor_net(obs, action, z)  # N x d each
        loss = losses.actor_loss(psi1, psi2, z)
        optimizer_step(self.actor_optimizer, loss, self.actor_params, self.cfg.grad_clamp)
        return {"actor_loss": loss.detach(), "actor_q": -loss.detach()}

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One SF-LAP update; returns detached device tensors (no host synchronisation)."""
        cfg, model = self.cfg, self.model
        n = batch.obs.shape[0]
        phi_both = model.phi(torch.cat([batch.obs, batch.next_obs]))  # 2N x d: one pass for s, s'
        phi, phi_next = phi_both[:n], phi_both[n:]  # N x d each
        z, _ = self.sample_z(phi_next)  # N x d

        # features: the Laplacian loss (smoothness along transitions + orthonormality)
        feature_loss = bl.laplacian_feature_loss(phi, phi_next, cfg.ortho_coefficient)
        optimizer_step(self.feature_optimizer, feature_loss, self.feature_params, cfg.grad_clamp)

        # successor features: TD on Q = ψᵀz with reward φ(s')ᵀz, φ(s') detached
        with torch.no_grad():
            next_action = self._noisy(model.actor(batch.next_obs, z))  # N x A
            psi1_next, psi2_next = self.target_successor(batch.next_obs, next_action, z)  # N x d
            target = bl.sf_q_target(
                phi_next.detach(), psi1_next, psi2_next, z, discounts(batch, cfg.discount)
            )  # N
        psi1, psi2 = model.successor_net(batch.obs, batch.action, z)  # N x d each
        sf_loss = bl.sf_q_loss(psi1, psi2, z, target)
        optimizer_step(self.sf_optimizer, sf_loss, self.successor_params, cfg.grad_clamp)

        metrics = self.update_actor(batch.obs, z)
        soft_update(self.target_params, self.successor_params, cfg.target_tau)
        return {
            "sf_loss": sf_loss.detach(),
            "feature_loss": feature_loss.detach(),
            "q_target": target.mean(),
            **metrics,
        }

    def state_parts(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "target_successor": self.target_successor,
            "feature_optimizer": self.feature_optimizer,
            "sf_optimizer": self.sf_optimizer,
            "actor_optimizer": self.actor_optimizer,
        }
