"""What every agent shares: the batch it trains on, the training data it samples from, and the
small protocol the trainer drives (``sample_batch``, ``update``, ``state_dict``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from zsrl.losses import lagrange_alpha_loss
from zsrl.model import PolicyModel


class Batch(NamedTuple):
    obs: Tensor  # N x O, already standardised by the model's statistics
    action: Tensor  # N x A
    next_obs: Tensor  # N x O, standardised
    reward: Tensor | None = None  # N: the single task's reward r(s', a) (CQL, TD3)
    goal: Tensor | None = None  # N x O: a goal observation per transition, standardised (GC-IQL)
    not_done: Tensor | None = (
        None  # N: 0 where s' is terminal, else 1; None: data without terminals
    )


class TrainingData(NamedTuple):
    """A run's transitions, resident on the training device; agents draw their batches from it."""

    obs: Tensor  # n x O, standardised
    action: Tensor  # n x A
    next_obs: Tensor  # n x O, standardised
    reward: Tensor | None  # n: the reward of the run's single task, or None for zero-shot methods
    episode: np.ndarray  # n: the episode id of every transition (host memory, for goal sampling)
    step: np.ndarray  # n: each transition's time step within its episode (host memory)
    not_done: Tensor | None = None  # n: 0 where s' is terminal; None: data without terminals

    def transitions(self, index: Tensor, **extra: Tensor) -> Batch:
        """The batch of transitions at ``index`` (N), with the reward and the terminal flags when
        the data have them."""
        reward = None if self.reward is None else self.reward[index]
        if self.not_done is not None:
            extra = {**extra, "not_done": self.not_done[index]}
        return Batch(self.obs[index], self.action[index], self.next_obs[index], reward, **extra)


def discounts(batch: Batch, discount: float) -> Tensor | float:
    """γ for every transition of ``batch``: 0 where s' is terminal (N), or γ itself (a float) for
    data without terminals, which keeps their targets' arithmetic exactly as it was."""
    return discount if batch.not_done is None else discount * batch.not_done


def clamp_grads(params: list[Tensor], bound: float) -> None:
    """Clamp every gradient elementwise to ±bound in place (0 disables), in one fused kernel."""
    grads = [p.grad for p in params if p.grad is not None]
    if bound > 0 and grads:
        torch._foreach_clamp_min_(grads, -bound)
        torch._foreach_clamp_max_(grads, bound)


def optimizer_step(
    optimizer: torch.optim.Optimizer, loss: Tensor, params: list[Tensor], clamp: float = 0.0
) -> None:
    """One step of ``optimizer`` on ``loss`` for ``params`` only: no weight gradients reach other
    networks the loss passes through. ``clamp`` > 0 clamps the gradients elementwise first."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward(inputs=params)
    clamp_grads(params, clamp)
    optimizer.step()


def soft_update(target: list[Tensor], online: list[Tensor], tau: float) -> None:
    """Polyak averaging θ̄ ← θ̄ + τ (θ − θ̄), in one fused kernel."""
    with torch.no_grad():
        torch._foreach_lerp_(target, online, tau)


ALPHA_MAX = 1e6  # the largest α a dual step hands to the critic


def dual_step(
    log_alpha: Tensor, optimizer: torch.optim.Optimizer, penalty: Tensor, target: float
) -> Tensor:
    """One dual step on log α towards the budget τ = ``target``, then α for the critic.

    (reference: ref-lagrange)

    Book eq. (eq-lagrange-alpha), chapter "Conservative FB": a step of ``optimizer`` (which holds
    ``log_alpha``) on :func:`zsrl.losses.lagrange_alpha_loss`, which raises α while the penalty
    exceeds τ and lowers it below. The penalty is detached there, so the step leaves the critic's
    graph untouched and the critic can back-propagate α·P afterwards. Returns the new α, detached
    (a constant weight for the critic) and clamped to [0, ALPHA_MAX].
    """
    loss = lagrange_alpha_loss(log_alpha, penalty, target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return log_alpha.detach().exp().clamp(0.0, ALPHA_MAX)


class LagrangeMultiplier:
    """A penalty weight α = exp(log α), tuned by dual steps towards a budget τ, or fixed (reference:
    ref-lagrange).

    VC-FB, MC-FB, DVC-FB and CQL share it. The dual step on a batch's penalty (:func:`dual_step`)
    comes before α weights that penalty in the critic loss; the α it returns is detached and
    clamped to [0, ALPHA_MAX].
    """

    ALPHA_MAX = ALPHA_MAX

    def __init__(
        self,
        lagrange: bool,
        target: float,
        alpha: float,
        log_alpha_init: float,
        lr: float,
        device: torch.device | str,
    ) -> None:
        self.lagrange, self.target, self.alpha = lagrange, target, alpha
        self.log_alpha = torch.tensor(float(log_alpha_init), device=device, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.log_alpha], lr=lr)

    def step(self, penalty: Tensor) -> Tensor:
        """One dual step on log α (when Lagrangian), then the detached α for the critic loss."""
        if not self.lagrange:
            return torch.full_like(penalty, self.alpha).detach()
        return dual_step(self.log_alpha, self.optimizer, penalty, self.target)

    def state_dict(self) -> dict[str, Any]:
        return {
            "log_alpha": self.log_alpha.detach().clone(),
            "alpha_optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.optimizer.load_state_dict(state["alpha_optimizer"])


class Agent:
    """The trainer's view of an agent: a model, a batch sampler, an update rule and its state.

    ``update`` returns detached device tensors (no host synchronisation); ``progress_keys`` name the
    two metrics shown on the progress bar. ``state_parts`` names every network, target and optimiser,
    so that a checkpoint resumes exactly; agents with other state (counters, multipliers) extend
    ``state_dict`` and ``load_state_dict``.
    """

    model: PolicyModel
    batch_size: int
    progress_keys: tuple[str, str] = ("critic_loss", "actor_q")

    def sample_batch(self, data: TrainingData) -> Batch:
        """``batch_size`` transitions drawn uniformly with replacement (torch's global RNG)."""
        index = torch.randint(0, len(data.obs), (self.batch_size,), device=data.obs.device)  # N
        return data.transitions(index)

    def update(self, batch: Batch) -> dict[str, Tensor]:
        raise NotImplementedError

    def state_parts(self) -> dict[str, Any]:
        """The model, targets and optimisers by name: each has ``state_dict``/``load_state_dict``."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {name: part.state_dict() for name, part in self.state_parts().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, part in self.state_parts().items():
            part.load_state_dict(state[name])
