"""Offline tabular FB with policy improvement, with or without a conservative penalty.

Chapters "The failure mode" and "Conservative FB". :func:`zsrl.tabular.fit_fb` learns F and B for one
fixed policy from every state-action pair; here FB learns from an offline dataset that may lack some
actions, and each task has its own greedy policy, as in the deep agents:

- A task is a reward vector r (length S, received on arrival in s⁺). Its task vector is
  z_r = Σ_s ρ(s) r(s) B(s), the task inference E_ρ[r B] without the normalisation to the sphere,
  so Q_r(s, a) = F(s, a, z_r)ᵀ z_r = Σ_{s⁺} M̂(s, a, s⁺) r(s⁺) with M̂ = F Bᵀ ρ.
- F has one d-vector per (task g, state s, action a) and head j = 1, 2; B is a table B[s] ∈ R^d.
- The policy is greedy: π_g(s) = argmax_a min_j F̄_j[g, s, a]ᵀ z̄_g on the target tables, over ALL
  actions, including those the data never shows; the FB target bootstraps from F̄_j[g, s', π_g(s')].
- Optionally a conservative penalty (:func:`zsrl.losses.vc_penalty` or :func:`zsrl.losses.mc_penalty`)
  times α is added, α fixed or a Lagrange multiplier that dual steps hold near a budget τ, as in the
  deep agents. In a table every action can be scored, so the K "action samples" of the penalty are
  simply all A actions, and its log-sum-exp is exact.

Two models of F (``model``):

- "table": F_j[g, s, a] is a free table entry. An entry whose action never appears at s in the data
  gets no gradient from the FB loss and keeps its random initial value.
- "linear": F_j[g, s, a] = U_j[g, s] + W_j[g, s] u_a + κ T_j[g, s, a], with u_a the move of action a
  (:data:`zsrl.tabular.MOVES`, a 2-vector), a shared part linear in the move and a per-action
  correction T (zero at the start) weighted by κ = ``table_weight``. The shared part makes F
  *generalise* across actions as a network does: with data for up, down and right, the value of
  left is extrapolated, F(s, left) = F(s, up) + F(s, down) − F(s, right)
  + κ (T(s, left) + T(s, right) − T(s, up) − T(s, down)), where T(s, left) gets no FB gradient.

As in :func:`zsrl.tabular.fit_fb`, B is not normalised, d defaults to S (full rank) and the density
that turns F Bᵀ into a measure is the leave-one-out ρ_loo (see
:func:`zsrl.tabular.leave_one_out_density`), which the batch loss actually weights s⁺ with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.func import vmap

from zsrl.losses import (
    fb_measure_loss,
    mc_penalty,
    normalize_to_sphere,
    target_measure,
    vc_penalty,
)
from zsrl.tabular import (
    ACTIONS,
    MOVES,
    Gridworld,
    exhaustive_transitions,
    leave_one_out_density,
    successor_measure,
)

MODELS = ("table", "linear")
PENALTIES = ("vc", "mc")

# A penalty of one task's batch, with the signature of zsrl.losses.vc_penalty or mc_penalty.
PenaltyFn = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
# A dual step: (log α, its optimiser, the penalty, the budget τ) -> α, as zsrl.agents.base.dual_step.
DualStep = Callable[[Tensor, torch.optim.Optimizer, Tensor, float], Tensor]


@dataclass(frozen=True)
class Transitions:
    """An offline dataset of a deterministic gridworld: integer arrays of length N."""

    state: np.ndarray  # N
    action: np.ndarray  # N
    next_state: np.ndarray  # N

    def __len__(self) -> int:
        return len(self.state)

    def seen(self, n_states: int, n_actions: int) -> np.ndarray:
        """S x A booleans: True where the pair (s, a) appears in the data."""
        mask = np.zeros((n_states, n_actions), dtype=bool)  # S x A
        mask[self.state, self.action] = True
        return mask


def transitions_without(P: np.ndarray, removed_actions: Sequence[int]) -> Transitions:
    """Every state-action pair of a deterministic P once, except those whose action is removed."""
    s, a, s_next = exhaustive_transitions(P)  # N each
    keep = ~np.isin(a, removed_actions)  # N
    return Transitions(s[keep], a[keep], s_next[keep])


def goal_rewards(n_states: int, goals: Sequence[int]) -> np.ndarray:
    """One reward vector per goal (G x S): r_g(s⁺) = 1{s⁺ = g}, so Q_g(s, a) = M(s, a, g)."""
    rewards = np.zeros((len(goals), n_states))  # G x S
    rewards[np.arange(len(goals)), goals] = 1.0
    return rewards


@dataclass
class ControlFit:
    """Tabular FB learnt by :func:`fit_fb_control`.

    F1, F2: G x S x A x d, the forward vectors of every task, state and action (for the "linear"
    model, U + W u_a + κ T evaluated); B: S x d; rewards: G x S, the tasks; seen: S x A, the pairs
    in the data; rho_loo: S. ``history`` holds one array (length ``steps``) per quantity logged at
    every step: "loss" (FB loss), "penalty" (unweighted, 0 without one), "alpha" (the penalty's
    weight in that step's loss, 0 without one), and a value probe on the target tables, in return
    units: "q_data" (mean Q over the pairs in the data), "q_missing" (over the pairs not in it) and
    "q_policy" (over the greedy action of every task and state), plus "ood_share" (the share of
    greedy actions, over tasks and the states the data lacks some action of, that the data never
    shows there).
    """

    F1: Tensor
    F2: Tensor
    B: Tensor
    rewards: np.ndarray
    seen: np.ndarray
    rho_loo: np.ndarray
    history: dict[str, np.ndarray] = field(default_factory=dict)

    def z(self) -> Tensor:
        """The task vectors z_r = Σ_s ρ_loo(s) r(s) B(s): G x d."""
        return task_vectors(self.B, self.rewards, self.rho_loo)

    def q(self) -> np.ndarray:
        """Q_g(s, a) = min_j F_j[g, s, a]ᵀ z_g for every task, state and action: G x S x A."""
        return task_q(self.F1, self.F2, self.z()).numpy()  # G x S x A

    def policy(self) -> np.ndarray:
        """The greedy action of every task and state, argmax_a Q_g(s, a): G x S integers."""
        return self.q().argmax(-1)  # G x S

    def measure(self, task: int) -> np.ndarray:
        """M̂(s, a, s⁺) = F1[g, s, a]ᵀB(s⁺) ρ_loo(s⁺) for one task g: S x A x S."""
        FB = torch.einsum("sad,td->sat", self.F1[task], self.B).numpy()  # S x A x S
        return FB * self.rho_loo  # S x A x S


def task_vectors(B: Tensor, rewards: np.ndarray, rho: np.ndarray) -> Tensor:
    """z_r = Σ_s ρ(s) r(s) B(s) for each task's reward (G x d): task inference, not normalised."""
    weights = torch.as_tensor(rewards * rho, dtype=B.dtype)  # G x S
    return weights @ B  # G x d


def task_q(F1: Tensor, F2: Tensor, z: Tensor) -> Tensor:
    """min_j F_j[g, s, a]ᵀ z_g for every task, state and action: G x S x A."""
    Q1 = torch.einsum("gsad,gd->gsa", F1, z)  # G x S x A
    Q2 = torch.einsum("gsad,gd->gsa", F2, z)  # G x S x A
    return torch.minimum(Q1, Q2)


# The library's functions take one task's batch; vmap maps them over the G tasks.
_fb_loss_per_task = vmap(fb_measure_loss, in_dims=(0, 0, None, 0, None))  # G x N x d, ... -> G
_target_per_task = vmap(target_measure, in_dims=(0, 0, None))  # G x N x d, N x d -> G x N x N
_vc_per_task = vmap(vc_penalty)  # G x K x N, G x K x N, G x N, G x N -> G
_mc_per_task = vmap(mc_penalty)  # G x K x N x N, G x K x N x N, G x N x N, G x N x N -> G


def _each_task(function: PenaltyFn) -> Callable[..., Tensor]:
    """``function`` applied to each task's slice of G-leading tensors, stacked: G values.

    A Python loop rather than vmap, so that any function of one batch works (a course assignment's,
    for instance), whatever operations it uses.
    """

    def per_task(*tensors: Tensor) -> Tensor:
        return torch.stack([function(*parts) for parts in zip(*tensors, strict=True)])

    return per_task


def conservative_penalty(
    kind: str,
    F1: Tensor,
    F2: Tensor,
    B: Tensor,
    data: Transitions,
    z: Tensor,
    function: PenaltyFn | None = None,
) -> Tensor:
    """The VC or MC penalty of tabular FB, averaged over the tasks (a scalar).

    The K action samples of each data state s_i are all A actions (K = A), so the log-sum-exp runs
    over every action, the dataset's own included. F1, F2: G x S x A x d online forward vectors;
    B: S x d; z: G x d task vectors (no gradient).

    - "vc": Q_j^(k)[g, i] = F_j[g, s_i, k]ᵀ z_g, penalised by :func:`zsrl.losses.vc_penalty`;
    - "mc": M_j^(k)[g, i, l] = F_j[g, s_i, k]ᵀ B(s'_l) towards every next state of the data,
      penalised by :func:`zsrl.losses.mc_penalty` (the gradient also reaches B).

    ``function`` replaces the library's penalty of one task's batch (same signature and shapes).
    """
    s, a = torch.as_tensor(data.state), torch.as_tensor(data.action)  # N each
    F1k, F2k = F1[:, s].transpose(1, 2), F2[:, s].transpose(1, 2)  # G x K x N x d each (K = A)
    F1d, F2d = F1[:, s, a], F2[:, s, a]  # G x N x d each: the dataset actions
    if kind == "vc":
        Q1k = torch.einsum("gknd,gd->gkn", F1k, z)  # G x K x N
        Q2k = torch.einsum("gknd,gd->gkn", F2k, z)  # G x K x N
        Q1 = torch.einsum("gnd,gd->gn", F1d, z)  # G x N
        Q2 = torch.einsum("gnd,gd->gn", F2d, z)  # G x N
        per_task = _vc_per_task if function is None else _each_task(function)
        return per_task(Q1k, Q2k, Q1, Q2).mean()
    if kind == "mc":
        B_next = B[torch.as_tensor(data.next_state)]  # N x d
        M1k, M2k = F1k @ B_next.T, F2k @ B_next.T  # G x K x N x N each
        M1, M2 = F1d @ B_next.T, F2d @ B_next.T  # G x N x N each
        per_task = _mc_per_task if function is None else _each_task(function)
        return per_task(M1k, M2k, M1, M2).mean()
    raise ValueError(f"unknown penalty {kind!r}; valid choices: {list(PENALTIES)}")


class _Forward:
    """The parameters of F (both heads) for one of :data:`MODELS`, and F evaluated from them."""

    def __init__(
        self, model: str, shape: tuple[int, ...], table_weight: float, generator: torch.Generator
    ) -> None:
        G, S, A, d = shape
        if model == "table":
            self.T = [torch.randn(*shape, generator=generator) for _ in range(2)]  # G x S x A x d
            self.U = self.W = None
        else:  # "linear": shared part random, per-action correction zero
            self.U = [torch.randn(G, S, 1, d, generator=generator) for _ in range(2)]
            self.W = [torch.randn(G, S, 2, d, generator=generator) for _ in range(2)]
            self.T = [torch.zeros(*shape) for _ in range(2)]
        self.weight = 1.0 if model == "table" else table_weight
        self.moves = torch.tensor(MOVES, dtype=torch.float32)  # A x 2: u_a
        for p in self.parameters():
            p.requires_grad_()

    def parameters(self) -> list[Tensor]:
        return [*self.T, *(self.U or []), *(self.W or [])]

    def __call__(self) -> tuple[Tensor, Tensor]:
        """F1, F2: G x S x A x d each."""
        if self.U is None:
            return self.T[0], self.T[1]
        return tuple(  # U: G x S x 1 x d, W u_a: G x S x A x d, T: G x S x A x d
            U + torch.einsum("ak,gskd->gsad", self.moves, W) + self.weight * T
            for U, W, T in zip(self.U, self.W, self.T, strict=True)
        )


def fit_fb_control(
    data: Transitions,
    n_states: int,
    n_actions: int,
    rewards: np.ndarray,
    gamma: float,
    model: str = "table",
    table_weight: float = 0.3,
    penalty: str | None = None,
    alpha: float = 0.03,
    d: int | None = None,
    steps: int = 400,
    lr: float = 0.1,
    tau: float = 0.2,
    seed: int = 0,
    target_penalty: float | None = None,
    lr_alpha: float = 0.05,
    dual_step: DualStep | None = None,
    penalty_fn: PenaltyFn | None = None,
) -> ControlFit:
    """Learn F (see :data:`MODELS`) and B (S x d) offline, each task with its greedy policy.

    rewards: G x S, one task per row. Each step is one full batch (all N transitions of ``data``,
    for every task at once):

    1. without gradient, the greedy policy of every task on the target tables,
       π_g(s) = argmax_a min_j F̄_j[g, s, a]ᵀ z̄_g with z̄_g = Σ_s ρ_loo(s) r_g(s) B̄(s), over all A;
    2. the target M̄_g = target_measure(F̄_1[g, s', π_g(s')], F̄_2[g, s', π_g(s')], B̄(s')), N x N;
    3. the loss: the mean over tasks of :func:`zsrl.losses.fb_measure_loss`, plus α times
       :func:`conservative_penalty` when ``penalty`` is "vc" or "mc", scored with the task vectors
       normalised to the sphere of radius √d as in the deep agents (``penalty_fn``, if given,
       replaces the library's penalty of one task's batch);
    4. an Adam step on F's parameters and B, then Polyak averaging of the target F̄, B̄ (rate ``tau``).

    α is ``alpha``, fixed, unless a budget ``target_penalty`` = τ is given: then α = exp(log α) is a
    Lagrange multiplier that starts at ``alpha`` and, before step 3 uses it, takes one dual step
    (``dual_step``, by default :func:`zsrl.agents.base.dual_step`, with Adam at rate ``lr_alpha``)
    on the step's penalty, as VC-FB and MC-FB do.

    B starts as a standard normal draw; F as described in :data:`MODELS` (seeded by ``seed``).
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; valid choices: {list(MODELS)}")
    if penalty is not None and penalty not in PENALTIES:
        raise ValueError(f"unknown penalty {penalty!r}; valid choices: {[None, *PENALTIES]}")
    if target_penalty is not None and penalty is None:
        raise ValueError("a budget target_penalty needs a penalty ('vc' or 'mc') to hold near it")
    if target_penalty is not None and alpha <= 0:
        raise ValueError(f"a Lagrangian α starts at alpha > 0, got {alpha}")
    if target_penalty is not None and dual_step is None:
        from zsrl.agents.base import dual_step as agents_dual_step  # imports the agents: lazily

        dual_step = agents_dual_step
    d = n_states if d is None else d
    rewards = np.atleast_2d(np.asarray(rewards, dtype=float))  # G x S
    G = rewards.shape[0]
    s, a, s_next = (torch.as_tensor(x) for x in (data.state, data.action, data.next_state))  # N
    rho_loo = leave_one_out_density(data.next_state, n_states)  # S
    seen_np = data.seen(n_states, n_actions)  # S x A
    seen = torch.as_tensor(seen_np)
    narrow = ~seen.all(-1)  # S: the states where the data lacks some action

    generator = torch.Generator().manual_seed(seed)
    forward = _Forward(model, (G, n_states, n_actions, d), table_weight, generator)
    B = torch.randn(n_states, d, generator=generator).requires_grad_()  # S x d
    F1, F2 = forward()
    F1_bar, F2_bar, B_bar = (x.detach().clone() for x in (F1, F2, B))
    optimiser = torch.optim.Adam([*forward.parameters(), B], lr=lr)
    tasks = torch.arange(G)[:, None]  # G x 1
    weight: Tensor | float = alpha  # α of the step: fixed, or after the step's dual update
    if target_penalty is not None:
        log_alpha = torch.tensor(math.log(alpha), requires_grad=True)  # starts at α = alpha
        alpha_optimiser = torch.optim.Adam([log_alpha], lr=lr_alpha)

    names = ("loss", "penalty", "alpha", "q_data", "q_missing", "q_policy", "ood_share")
    history = {name: np.zeros(steps) for name in names}
    for step in range(steps):
        with torch.no_grad():
            Q_bar = task_q(F1_bar, F2_bar, task_vectors(B_bar, rewards, rho_loo))  # G x S x A
            policy = Q_bar.argmax(-1)  # G x S: greedy over all actions
            next_action = policy[:, s_next]  # G x N: π_g(s'_i)
            F1_next = F1_bar[tasks, s_next, next_action]  # G x N x d
            F2_next = F2_bar[tasks, s_next, next_action]  # G x N x d
            target_M = _target_per_task(F1_next, F2_next, B_bar[s_next])  # G x N x N
            greedy_q = Q_bar.gather(-1, policy[..., None])  # G x S x 1
            unseen_choice = ~seen[torch.arange(n_states), policy]  # G x S
            history["q_data"][step] = Q_bar[:, seen].mean().item()
            history["q_missing"][step] = Q_bar[:, ~seen].mean().item() if narrow.any() else np.nan
            history["q_policy"][step] = greedy_q.mean().item()
            history["ood_share"][step] = unseen_choice[:, narrow].float().mean().item()
        F1, F2 = forward()
        fb = _fb_loss_per_task(F1[:, s, a], F2[:, s, a], B[s_next], target_M, gamma)  # G each
        loss = fb.total.mean()
        total = loss
        if penalty is not None:
            with torch.no_grad():  # the task vectors carry no gradient, as in the agents
                z = normalize_to_sphere(task_vectors(B, rewards, rho_loo))  # G x d
            p = conservative_penalty(penalty, F1, F2, B, data, z, penalty_fn)
            if target_penalty is not None:
                weight = dual_step(log_alpha, alpha_optimiser, p, target_penalty)
            total = loss + weight * p
            history["penalty"][step] = p.item()
            history["alpha"][step] = float(weight)
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        with torch.no_grad():
            F1, F2 = forward()
            for online, target in ((F1, F1_bar), (F2, F2_bar), (B, B_bar)):
                target.lerp_(online, tau)
        history["loss"][step] = loss.item()

    with torch.no_grad():
        F1, F2 = (F.detach().clone() for F in forward())
    return ControlFit(F1, F2, B.detach(), rewards, seen_np, rho_loo, history)


def exact_q(P: np.ndarray, policy: np.ndarray, rewards: np.ndarray, gamma: float) -> np.ndarray:
    """The true Q_g(s, a) = Σ_{s⁺} M^{π_g}(s, a, s⁺) r_g(s⁺) of every task's greedy policy: G x S x A.

    policy: G x S actions (e.g. :meth:`ControlFit.policy`); rewards: G x S; P: S x A x S. The first
    action is a, every later one follows π_g (:func:`zsrl.tabular.successor_measure`).
    """
    n_actions = P.shape[1]
    out = []
    for actions, reward in zip(policy, np.atleast_2d(rewards), strict=True):
        pi = np.eye(n_actions)[actions]  # S x A one-hot
        out.append(successor_measure(P, pi, gamma) @ reward)  # S x A
    return np.stack(out)  # G x S x A


def optimal_values(
    P: np.ndarray, rewards: np.ndarray, gamma: float, actions: Sequence[int] | None = None
) -> np.ndarray:
    """V*_g(s) = max_a Q*_g(s, a) by value iteration, using only ``actions`` (all if None): G x S."""
    allowed = list(range(P.shape[1])) if actions is None else list(actions)
    rewards = np.atleast_2d(rewards)  # G x S
    V = np.zeros_like(rewards)  # G x S
    for _ in range(int(np.ceil(np.log(1e-10) / np.log(gamma)))):
        V = np.einsum("sat,gt->gsa", P[:, allowed], rewards + gamma * V).max(-1)  # G x S
    return V


def rollout(P: np.ndarray, actions: np.ndarray, start: int, horizon: int) -> np.ndarray:
    """The states visited by the deterministic policy ``actions`` (S) from ``start``: horizon + 1."""
    states = [start]
    for _ in range(horizon):
        states.append(int(P[states[-1], actions[states[-1]]].argmax()))
    return np.array(states)


def greedy_evaluation(
    fit: ControlFit,
    P: np.ndarray,
    rewards: np.ndarray,
    gamma: float,
    start: int,
    goals: Sequence[int],
    horizon: int = 40,
) -> dict[str, np.ndarray]:
    """A fit's greedy policies, judged exactly: what the book's gridworld chapters print.

    Returns ``q_hat`` (G x S x A, the fit's estimate), ``policy`` (G x S, its greedy actions),
    ``q_true`` (G x S x A, the exact values of those same policies, :func:`exact_q`), ``reached``
    (G, whether each policy reaches its goal from ``start`` within ``horizon`` steps) and ``mass``
    (G x S x A, the total mass of each learned measure, 1 / (1 − γ) for an exact one).
    """
    q_hat = fit.q()  # G x S x A
    policy = q_hat.argmax(-1)  # G x S
    q_true = exact_q(P, policy, rewards, gamma)  # G x S x A
    reached = [goal in rollout(P, policy[k], start, horizon) for k, goal in enumerate(goals)]
    mass = np.stack([fit.measure(k).sum(-1) for k in range(len(goals))])  # G x S x A
    return dict(q_hat=q_hat, q_true=q_true, policy=policy, reached=np.array(reached), mass=mass)


ARROWS = {"up": "↑", "down": "↓", "left": "←", "right": "→"}


def draw_policy(
    ax: Any,
    world: Gridworld,
    P: np.ndarray,
    actions: np.ndarray,
    start: int,
    goal: int,
    title: str,
    highlight: str = "left",
    horizon: int = 25,
) -> None:
    """A deterministic policy (S actions) as arrows on the gridworld, ``highlight``'s in red, its
    path from ``start`` in orange and the goal a star, on axes the caller made."""
    import matplotlib.pyplot as plt

    walls = plt.get_cmap("Greys").with_extremes(bad="0.35")
    ax.imshow(world.image(np.zeros(world.n_states)), cmap=walls, vmin=0, vmax=1)
    for state, (row, col) in enumerate(world.free_cells):
        name = ACTIONS[actions[state]]
        color = "C3" if name == highlight else "k"
        ax.text(col, row, ARROWS[name], ha="center", va="center", fontsize=10, color=color)
    cells = np.array([world.cell(s) for s in rollout(P, actions, start, horizon)])  # steps x 2
    ax.plot(cells[:, 1], cells[:, 0], "-", color="C1", lw=3, alpha=0.5)
    ax.plot(cells[0, 1], cells[0, 0], "o", color="C1", ms=14, alpha=0.5)
    goal_row, goal_col = world.cell(goal)
    ax.plot(goal_col, goal_row, "*", color="gold", mec="k", ms=16)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
