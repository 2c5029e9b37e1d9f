"""Conservative Q-learning on soft actor-critic (reference: ref-cql): the single-task offline RL reference.

Trained on one task's rewards, relabelled from the stored physics states; its policy ignores the task,
so it is evaluated on the task it was trained for only (the paper's normalised plots put it at 100 %).

SAC part: twin ReLU critics Q_1, Q_2(s, a) regress the soft Bellman target
r + γ·(min_k Q̄_k(s', a') − β·log π(a' | s')), a' ~ π(s'), with β SAC's learnable entropy temperature
(target entropy −|A|). The critics bootstrap at every transition but a terminal one: dm_control
episodes end at a time limit, never at a terminal state, and a time limit is not a terminal (the
paper's code misaligned its ``not_done`` flags; reference: ref-bug-not-done); data that record
terminals (D4RL's) stop the bootstrap there. The tanh-Gaussian actor hard-clamps log σ to
[−5, 2], the behaviour of the paper's code before its CQL broke (reference: ref-bug-cql), and is
updated every step.

CQL part: each critic pays the penalty mean_i [logsumexp_j Q(s_i, a_j) − Q(s_i, a_i)] over
``cql_samples`` actions from each of U[−1, 1]^A, π(s) and π(s') — all scored at s, as the paper's code
does — plus the dataset action, with no importance-sampling correction. The two critics' penalties
are summed, weighted by α: a Lagrange multiplier tuned towards ``target_penalty`` (the paper's ExORL
runs, where the command line's ``--lagrange True`` overrides the YAML), or a fixed ``alpha``.

The target critics are Polyak-averaged on every ``target_update_every``-th update (the 2nd, 4th, ...);
the update counter is part of the state, so that a resumed run averages on the same updates.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor

from zsrl import baseline_losses as bl
from zsrl.agents.base import Agent, Batch, LagrangeMultiplier, optimizer_step, soft_update
from zsrl.config import CQLConfig
from zsrl.model import Context, SingleTaskModel
from zsrl.nets import TanhGaussianActor, TwinMLP


class CQLModel(SingleTaskModel):
    """Twin critics Q_1, Q_2(s, a) and a tanh-Gaussian actor π(s); the task context is ignored."""

    def __init__(self, obs_dim: int, action_dim: int, cfg: CQLConfig) -> None:
        super().__init__(obs_dim, action_dim, cfg)
        self.critic = TwinMLP(obs_dim + action_dim, cfg.critic_hidden, cfg.critic_layers, False)
        self.actor = TanhGaussianActor(
            obs_dim,
            action_dim,
            cfg.actor_hidden,
            cfg.actor_layers,
            cfg.log_std_min,
            cfg.log_std_max,
            smooth_log_std=False,  # hard clamp of log σ (reference: ref-cql, ref-bug-cql)
        )

    def act(self, obs: Tensor, context: Context = None, noisy: bool = False) -> Tensor:
        """The squashed mean tanh(μ(s)), or with ``noisy`` a sample of π(s): N x A."""
        x = self.normalize(obs)  # N x O
        return self.actor.sample(x)[0] if noisy else self.actor.mean_action(x)


class CQLAgent(Agent):
    """Optimisers, target critics, entropy temperature and CQL multiplier of CQL on SAC."""

    progress_keys = ("critic_loss", "cql_penalty")

    def __init__(self, model: CQLModel, cfg: CQLConfig) -> None:
        self.model, self.cfg, self.batch_size = model, cfg, cfg.batch_size
        device = model.device
        self.target_critic = copy.deepcopy(model.critic).requires_grad_(False)
        self.critic_params = list(model.critic.parameters())
        self.actor_params = list(model.actor.parameters())
        self.target_params = list(self.target_critic.parameters())
        self.critic_optimizer = torch.optim.Adam(self.critic_params, lr=cfg.lr_critic, foreach=True)
        self.actor_optimizer = torch.optim.Adam(self.actor_params, lr=cfg.lr_actor, foreach=True)
        # SAC's entropy temperature β = exp(log β), learnt towards the target entropy −|A|
        self.log_temperature = torch.tensor(math.log(cfg.init_temperature), device=device)
        self.log_temperature.requires_grad_(True)
        self.temperature_optimizer = torch.optim.Adam([self.log_temperature], lr=cfg.lr_temperature)
        self.target_entropy = -float(model.action_dim)
        # CQL's Lagrange multiplier α = exp(log α); unused (but kept in the state) when fixed
        self.multiplier = LagrangeMultiplier(
            cfg.lagrange, cfg.target_penalty, cfg.alpha, cfg.log_alpha_init, cfg.lr_alpha, device
        )
        self.log_alpha = self.multiplier.log_alpha  # the same tensor, for inspection
        self.updates = 0  # updates done: the targets move on every target_update_every-th

    # --------------------------------------------------------------------------- pieces
    def penalty_actions(self, batch: Batch) -> Tensor:
        """The CQL actions, drawn without gradient: K uniform, K from π(s), K from π(s'). 3K x N x A.

        All of them are scored at s by :meth:`critic_loss`, π(s') ones included (reference: ref-cql).
        """
        k, (n, a) = self.cfg.cql_samples, batch.action.shape
        with torch.no_grad():
            uniform = torch.rand(k, n, a, device=batch.action.device) * 2 - 1  # K x N x A
            at_s = self.model.actor.sample(batch.obs.expand(k, -1, -1))[0]  # K x N x A
            at_next = self.model.actor.sample(batch.next_obs.expand(k, -1, -1))[0]  # K x N x A
        return torch.cat([uniform, at_s, at_next], 0)  # 3K x N x A

    def critic_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """MSE of both critics to the soft Bellman target + α·(CQL penalty of Q_1 + that of Q_2).

        The Lagrangian α takes its dual step on this batch's penalty first (as VC-FB; reference:
        ref-lagrange), and the data action and the 3K sampled ones go through the critics in one call.
        """
        cfg, model = self.cfg, self.model
        temperature = self.log_temperature.detach().exp()  # scalar
        with torch.no_grad():
            next_action, next_log_prob = model.actor.sample(batch.next_obs)  # N x A, N
            q1_next, q2_next = self.target_critic(torch.cat([batch.next_obs, next_action], -1))
            not_done = torch.ones_like(batch.reward) if batch.not_done is None else batch.not_done
            target = bl.sac_critic_target(
                q1_next, q2_next, next_log_prob, batch.reward, not_done, cfg.discount, temperature
            )  # N
        sampled = self.penalty_actions(batch)  # 3K x N x A
        actions = torch.cat([batch.action[None], sampled], 0)  # (3K + 1) x N x A: data action first
        obs = batch.obs.expand(len(actions), -1, -1)  # (3K + 1) x N x O: every action scored at s
        q1_all, q2_all = model.critic(torch.cat([obs, actions], -1))  # (3K + 1) x N each
        q1, q2 = q1_all[0], q2_all[0]  # N: Q_k(s, a_data)
        bellman = bl.double_q_mse(q1, q2, target)
        penalty = bl.cql_penalty(q1_all[1:], q1) + bl.cql_penalty(q2_all[1:], q2)
        alpha = self.multiplier.step(penalty)
        metrics = {
            "critic_loss": bellman.detach(),  # the Bellman part; the total adds α·penalty
            "cql_penalty": penalty.detach(),
            "cql_alpha": alpha,
            # mean min_k Q_k(s, a_data) on this batch; not "q_data", the value probe's name for the
            # same quantity on its fixed states (train.py would write two columns of one name)
            "q_batch": torch.minimum(q1, q2).detach().mean(),
            "q_target": target.mean(),
        }
        return bellman + alpha * penalty, metrics

    # --------------------------------------------------------------------------- update
    def update(self, batch: Batch) -> dict[str, Tensor]:
        cfg, model = self.cfg, self.model
        critic_loss, metrics = self.critic_loss(batch)
        optimizer_step(self.critic_optimizer, critic_loss, self.critic_params)

        action, log_prob = model.actor.sample(batch.obs)  # N x A, N: reparameterised
        q1, q2 = model.critic(torch.cat([batch.obs, action], -1))  # N each
        temperature = self.log_temperature.detach().exp()  # scalar
        actor_loss = bl.sac_actor_loss(q1, q2, log_prob, temperature)
        optimizer_step(self.actor_optimizer, actor_loss, self.actor_params)
        temperature_loss = bl.sac_temperature_loss(
            self.log_temperature, log_prob, self.target_entropy
        )
        optimizer_step(self.temperature_optimizer, temperature_loss, [self.log_temperature])

        self.updates += 1
        if self.updates % cfg.target_update_every == 0:
            soft_update(self.target_params, self.critic_params, cfg.target_tau)
        return metrics | {
            "actor_loss": actor_loss.detach(),
            "actor_q": torch.minimum(q1, q2).detach().mean(),
            "entropy": -log_prob.detach().mean(),
            "temperature": temperature,
        }

    def state_parts(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "target_critic": self.target_critic,
            "critic_optimizer": self.critic_optimizer,
            "actor_optimizer": self.actor_optimizer,
            "temperature_optimizer": self.temperature_optimizer,
        }

    def state_dict(self) -> dict[str, Any]:
        return (
            super().state_dict()
            | self.multiplier.state_dict()
            | {
                "log_temperature": self.log_temperature.detach().clone(),
                "updates": self.updates,
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.multiplier.load_state_dict(state)
        with torch.no_grad():
            self.log_temperature.copy_(state["log_temperature"])
        self.updates = int(state["updates"])
