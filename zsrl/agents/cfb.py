"""Conservative FB: VC-FB, MC-FB and DVC-FB (reference: ref-conservative).

FB's measure loss bootstraps from F(s', π(s', z), z), and the actor chases whatever F says is best, so
F is queried at actions the dataset never shows; on small or narrow data their values are
overestimated. The conservative variants add a CQL-style penalty to the critic loss: a log-sum-exp
over K action samples per state (uniform, from π at s, from π at s', and the dataset action) minus the
value at the dataset action, on Q = Fᵀz (VC-FB), on the measure M = FᵀB(s⁺) (MC-FB), or on Q for task
vectors taken from B only (DVC-FB). A Lagrange multiplier α holds the penalty near a budget τ.

Cost: the obs-z branch of F is computed once per (state, z), shared by the dataset action and every
sample at that state, and all sampled actions go through F in one batched call. The policy's mean
actions at s and s' are the ones the FB loss and the actor step compute anyway.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from zsrl import losses
from zsrl.agents.base import LagrangeMultiplier
from zsrl.agents.fb import Batch, FBAgent, Forward
from zsrl.config import FBConfig
from zsrl.model import FBModel
from zsrl.nets import truncated_normal_sample

# The penalties: on Q = Fᵀz (VC-FB), on the measure FᵀB(s⁺) (MC-FB), on Q for B's task vectors only
# (DVC-FB). Each names its method.
PENALTIES = ("vcfb", "mcfb", "dvcfb")


class ConservativeFBAgent(FBAgent):
    """FB plus the value- or measure-conservative penalty of ``method`` (vcfb, mcfb or dvcfb)."""

    def __init__(self, model: FBModel, cfg: FBConfig, method: str) -> None:
        if method not in PENALTIES:
            raise ValueError(
                f"unknown conservative method {method!r}; valid choices: {list(PENALTIES)}"
            )
        super().__init__(model, cfg)
        self.method = method
        self.ccfg = cfg.conservative
        self.n_uniform, self.n_policy = self.ccfg.sample_counts()
        c = self.ccfg
        self.multiplier = LagrangeMultiplier(
            c.lagrange, c.target_penalty, c.alpha, c.log_alpha_init, c.lr_alpha, model.device
        )
        self.log_alpha = self.multiplier.log_alpha  # the same tensor, for inspection

    # --------------------------------------------------------------------------- samples
    def sample_actions(
        self, batch: Batch, mean: Tensor, next_mean: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The sampled actions of the penalty (reference: ref-action-samples), drawn without gradient.

        mean, next_mean: N x A policy means π(s, z) and π(s', z). Returns the actions scored at s,
        (n_uniform + n_policy) x N x A (uniform first, then noisy π(s, z)), and those scored at s',
        n_policy x N x A (noisy π(s', z)).
        """
        cfg = self.cfg
        n, a = batch.action.shape
        with torch.no_grad():
            uniform = torch.rand(self.n_uniform, n, a, device=mean.device) * 2 - 1  # U x N x A
            at_s = truncated_normal_sample(
                mean.expand(self.n_policy, n, a), cfg.actor_std, cfg.actor_std_clip
            )  # n_pol x N x A
            at_next = truncated_normal_sample(
                next_mean.expand(self.n_policy, n, a), cfg.actor_std, cfg.actor_std_clip
            )  # n_pol x N x A
        return torch.cat([uniform, at_s]), at_next

    def sampled_forward(
        self, batch: Batch, z: Tensor, fwd: Forward, at_s: Tensor, at_next: Tensor
    ) -> tuple[Tensor, Tensor]:
        """F_1, F_2 at all K samples of every state, K x N x d each, in one batched call.

        The last n_policy samples are copies of the dataset action's F, with gradient (reference:
        ref-action-samples).
        """
        net = self.model.forward_net
        n_s, n_next = at_s.shape[0], at_next.shape[0]
        N, O = batch.obs.shape
        obs = torch.cat([batch.obs.expand(n_s, N, O), batch.next_obs.expand(n_next, N, O)])
        h_sa = net.embed_obs_action(obs, torch.cat([at_s, at_next]))  # (n_s + n_next) x N x P
        h_sz = torch.stack([fwd.h_sz, net.embed_obs_z(batch.next_obs, z)])  # 2 x N x P: s, s'
        F1, F2 = net.heads_shared(h_sa, h_sz, [n_s, n_next])  # (n_s + n_next) x N x d each
        d = F1.shape[-1]
        F1 = torch.cat([F1, fwd.F1.expand(self.n_policy, N, d)])  # K x N x d
        F2 = torch.cat([F2, fwd.F2.expand(self.n_policy, N, d)])  # K x N x d
        return F1, F2

    # ------------------------------------------------------------------------- penalties
    def penalty(
        self, z: Tensor, from_backward: Tensor, fwd: Forward, F1k: Tensor, F2k: Tensor
    ) -> Tensor:
        """The method's penalty from F at the K samples (K x m x d) and at the data (m x d).

        m ≤ N rows carry the samples; MC-FB scores them towards all N states of fwd.B_next.
        """
        if self.method == "mcfb":
            M1k, M2k = F1k @ fwd.B_next.T, F2k @ fwd.B_next.T  # K x m x N each
            return losses.mc_penalty(M1k, M2k, fwd.F1 @ fwd.B_next.T, fwd.F2 @ fwd.B_next.T)
        Q1k, Q2k = (F1k * z).sum(-1), (F2k * z).sum(-1)  # K x m each
        Q1, Q2 = (fwd.F1 * z).sum(-1), (fwd.F2 * z).sum(-1)  # m each
        if self.method == "dvcfb":
            return losses.masked_vc_penalty(Q1k, Q2k, Q1, Q2, from_backward)
        return losses.vc_penalty(Q1k, Q2k, Q1, Q2)

    # ---------------------------------------------------------------------------- update
    def critic_loss(
        self, batch: Batch, z: Tensor, from_backward: Tensor, mean: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """L_FB + L_ortho + α·P, after a dual step on α (reference: ref-conservative-update).

        The penalty is taken over the first ``penalty_states`` share of the batch (all of it by
        default); the batch is drawn at random, so any rows are a uniform subset. MC-FB still scores
        the measure towards every batch state s⁺.
        """
        loss, metrics, fwd = self.fb_terms(batch, z)
        m = max(1, math.ceil(self.ccfg.penalty_states * len(z)))
        if m < len(z):
            batch, z, from_backward, mean = _rows(batch, m), z[:m], from_backward[:m], mean[:m]
            fwd = Forward(fwd.F1[:m], fwd.F2[:m], fwd.h_sz[:m], fwd.B_next, fwd.next_mean[:m])
        at_s, at_next = self.sample_actions(batch, mean, fwd.next_mean)
        F1k, F2k = self.sampled_forward(batch, z, fwd, at_s, at_next)
        penalty = self.penalty(z, from_backward, fwd, F1k, F2k)
        alpha = self.multiplier.step(penalty)
        metrics.update(penalty=penalty.detach(), alpha=alpha)
        return loss + alpha * penalty, metrics

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | self.multiplier.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.multiplier.load_state_dict(state)


def _rows(batch: Batch, m: int) -> Batch:
    """The first m transitions of a batch."""
    return Batch(batch.obs[:m], batch.action[:m], batch.next_obs[:m])
