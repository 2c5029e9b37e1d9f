"""Exact successor measures and tabular FB on small gridworlds (for the theory chapters and tests).

Conventions. A finite MDP has S states and A actions; P[s, a, s'] = Pr(s_{t+1} = s' | s_t = s, a_t = a)
is an S x A x S array and a stochastic policy is an S x A matrix pi[s, a]. The successor measure counts
visits from the *next* state on (the book's M = Σ_{t≥0} γᵗ Pᵗ⁺¹ = P(I − γP)⁻¹):

    M(s, a, s+) = Σ_{t≥0} γᵗ Pr(s_{t+1} = s+ | s_0 = s, a_0 = a, π),   so Σ_{s+} M(s, a, s+) = 1/(1 − γ).

FB writes M(s, a, ds+) = F(s, a)ᵀ B(s+) ρ(ds+) with ρ the distribution of next states in the data.
:func:`fit_fb` learns tabular F and B with :func:`zsrl.losses.fb_measure_loss` on the exhaustive
dataset (every state-action pair once), so its estimate can be compared with the exact M.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from zsrl.losses import fb_measure_loss, target_measure

Cell = tuple[int, int]

ACTIONS: tuple[str, ...] = ("up", "down", "left", "right")
MOVES: tuple[Cell, ...] = ((-1, 0), (1, 0), (0, -1), (0, 1))  # (d_row, d_col) for each action


# ---------------------------------------------------------------------------------------------------
# Gridworlds
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gridworld:
    """A deterministic gridworld: actions up/down/left/right, bumping into a wall or the edge stays.

    States are the free cells (not in ``walls``), numbered row-major over free cells only.
    """

    height: int
    width: int
    walls: frozenset[Cell] = frozenset()

    @property
    def free_cells(self) -> list[Cell]:
        """The free cells in row-major order: ``free_cells[state]`` is the cell of ``state``."""
        return [
            (r, c)
            for r in range(self.height)
            for c in range(self.width)
            if (r, c) not in self.walls
        ]

    @property
    def n_states(self) -> int:
        return len(self.free_cells)

    @property
    def n_actions(self) -> int:
        return len(ACTIONS)

    def cell(self, state: int) -> Cell:
        """(row, col) of a state index."""
        return self.free_cells[state]

    def state(self, row: int, col: int) -> int:
        """State index of a free cell (ValueError for a wall or a cell off the grid)."""
        return self.free_cells.index((row, col))

    def is_free(self, row: int, col: int) -> bool:
        return 0 <= row < self.height and 0 <= col < self.width and (row, col) not in self.walls

    def transition_matrix(self) -> np.ndarray:
        """P of shape S x A x S with one-hot rows: the deterministic effect of each move."""
        cells = self.free_cells
        index = {cell: i for i, cell in enumerate(cells)}
        P = np.zeros((len(cells), self.n_actions, len(cells)))  # S x A x S
        for s, (r, c) in enumerate(cells):
            for a, (dr, dc) in enumerate(MOVES):
                nxt = (r + dr, c + dc) if self.is_free(r + dr, c + dc) else (r, c)
                P[s, a, index[nxt]] = 1.0
        return P

    def image(self, values: np.ndarray) -> np.ndarray:
        """Values on free cells (length S) as a height x width image, NaN on walls (for imshow)."""
        image = np.full((self.height, self.width), np.nan)
        for state, (row, col) in enumerate(self.free_cells):
            image[row, col] = values[state]
        return image

    def render(self, values: np.ndarray | None = None) -> str:
        """Text picture: '#' for walls, '.' for free cells, or ``values`` (length S) per free cell."""
        rows = []
        for r in range(self.height):
            row = []
            for c in range(self.width):
                if (r, c) in self.walls:
                    row.append("  #  " if values is not None else "#")
                elif values is None:
                    row.append(".")
                else:
                    row.append(f"{values[self.state(r, c)]:5.2f}")
            rows.append(" ".join(row) if values is not None else "".join(row))
        return "\n".join(rows)


def four_rooms(size: int = 7) -> Gridworld:
    """A size x size four-rooms world: a wall cross through the middle, one door in each arm.

    size=7 gives 3x3 rooms and S = 40 states; size=5 gives 2x2 rooms and S = 20.
    """
    if size < 5 or size % 2 == 0:
        raise ValueError("four_rooms needs an odd size >= 5")
    mid = size // 2
    cross = {(mid, c) for c in range(size)} | {(r, mid) for r in range(size)}
    doors = {(mid, mid // 2), (mid, mid + 1 + mid // 2), (mid // 2, mid), (mid + 1 + mid // 2, mid)}
    return Gridworld(size, size, frozenset(cross - doors))


# ---------------------------------------------------------------------------------------------------
# Exact measures
# ---------------------------------------------------------------------------------------------------


def uniform_policy(n_states: int, n_actions: int) -> np.ndarray:
    """The uniform random policy pi[s, a] = 1/A (S x A)."""
    return np.full((n_states, n_actions), 1.0 / n_actions)  # S x A


def policy_matrix(P: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """P_pi[s, s'] = Σ_a pi[s, a] P[s, a, s'], the state-to-state transition matrix under π."""
    return np.einsum("sa,sat->st", pi, P)  # S x S


def state_successor_measure(P_pi: np.ndarray, gamma: float) -> np.ndarray:
    """M_pi = Σ_{t≥0} γᵗ P_piᵗ⁺¹ = P_pi (I − γ P_pi)⁻¹ (S x S): discounted visits from s_1 on."""
    n = P_pi.shape[0]
    return np.linalg.solve((np.eye(n) - gamma * P_pi).T, P_pi.T).T  # S x S


def successor_measure(P: np.ndarray, pi: np.ndarray, gamma: float) -> np.ndarray:
    """M(s, a, ·) = Σ_{t≥0} γᵗ Pr(s_{t+1} = · | s_0 = s, a_0 = a, π) = P[s, a, :] (I − γ P_pi)⁻¹.

    The first step is action a, every later one follows π. Shape S x A x S; each M(s, a, ·) sums to
    1/(1 − γ). Book eq. (eq-successor-measure), chapter "Successor measures".
    """
    n = P.shape[0]
    resolvent = np.linalg.inv(np.eye(n) - gamma * policy_matrix(P, pi))  # S x S
    return P @ resolvent  # S x A x S


def q_values(M: np.ndarray, reward: np.ndarray) -> np.ndarray:
    """Q(s, a) = Σ_{s+} M(s, a, s+) r(s+) (S x A), for a reward r (length S) on next states.

    This is the Q-function with the reward received on arrival in s_{t+1}:
    Q(s, a) = E[Σ_{t≥0} γᵗ r(s_{t+1}) | s_0 = s, a_0 = a, π], which satisfies the Bellman equation
    Q(s, a) = Σ_{s'} P(s' | s, a) [r(s') + γ Σ_{a'} π(s', a') Q(s', a')].
    Book eq. (eq-q-from-m), chapter "Successor measures".
    """
    return M @ reward  # S x A


# ---------------------------------------------------------------------------------------------------
# Tabular FB
# ---------------------------------------------------------------------------------------------------


def exhaustive_transitions(P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every state-action pair once with its next state: integer arrays s, a, s' of length S·A.

    P must be deterministic (one-hot rows), so each pair has exactly one next state.
    """
    n_states, n_actions, _ = P.shape
    if not np.allclose(P.max(-1), 1.0):
        raise ValueError("exhaustive_transitions needs a deterministic P (one-hot rows)")
    s, a = np.meshgrid(np.arange(n_states), np.arange(n_actions), indexing="ij")  # S x A each
    s, a = s.ravel(), a.ravel()  # N = S·A
    return s, a, P[s, a].argmax(-1)  # N, N, N


def leave_one_out_density(next_states: np.ndarray, n_states: int) -> np.ndarray:
    """ρ_loo(x) = (c_x − 1)/(N − 1) with c_x the count of next state x among the N transitions.

    Why this and not the empirical ρ(x) = c_x/N: in the batch loss, row i's off-diagonal terms use
    the other N − 1 next states as samples of s+, so at s+ = s'_i it sees only c_x − 1 of the c_x
    samples while its diagonal term still counts fully. The exact minimiser of the batch loss (F, B
    of full rank) is then F(s, a)ᵀB(x) = M(s, a, x)/ρ_loo(x), not M/ρ: F Bᵀ ρ overestimates M by
    the factor c_x(N − 1)/(N(c_x − 1)). That bias is O(1/c_x), not O(1/N): in a deterministic
    gridworld every cell is the next state of exactly 4 state-action pairs, so c_x = 4 and the
    factor is ≈ 4/3. (With continuous states, c_x = 1 and the excluded sample is the one
    positive, which is why the exclusion only costs O(1/N) there.)

    States that are never a next state get density 0: the loss never samples them as s+. A state
    seen exactly once has no estimate at all (its one sample is the excluded positive), so that is
    an error rather than a silent zero.
    """
    counts = np.bincount(next_states, minlength=n_states)  # S
    once = np.flatnonzero(counts == 1)
    if once.size:
        raise ValueError(
            f"next states {once[:10].tolist()}{' …' if once.size > 10 else ''} occur exactly once "
            "among the transitions: their leave-one-out density is 0 and FB Bᵀρ_loo cannot "
            "estimate the measure there; collect more data or drop them"
        )
    return np.maximum(counts - 1, 0) / (len(next_states) - 1)  # S


@dataclass
class FBFit:
    """Tabular FB learnt by :func:`fit_fb`.

    F1, F2: S x A x d forward tables; B: S x d backward table; rho: S, the empirical distribution of
    next states in the dataset; rho_loo: S, the leave-one-out density the batch loss actually
    weights s+ with (see :func:`leave_one_out_density`); M_hat: S x A x S = F1(s, a)ᵀB(s+) ρ_loo(s+),
    the estimate of M; losses: the training loss at every step.
    """

    F1: Tensor
    F2: Tensor
    B: Tensor
    rho: np.ndarray
    rho_loo: np.ndarray
    M_hat: np.ndarray
    losses: np.ndarray

    def measure(self, density: np.ndarray) -> np.ndarray:
        """F1(s, a)ᵀB(s+) density(s+), S x A x S: e.g. ``fit.measure(fit.rho)`` for the naive ρ."""
        FB = torch.einsum("sad,td->sat", self.F1, self.B).numpy()  # S x A x S
        return FB * density  # S x A x S


def fit_fb(
    P: np.ndarray,
    pi: np.ndarray,
    gamma: float,
    d: int | None = None,
    steps: int = 500,
    lr: float = 0.1,
    seed: int = 0,
    tau: float = 0.2,
    loss_fn: Callable = fb_measure_loss,
) -> FBFit:
    """Learn tabular F1, F2 (S x A x d) and B (S x d) for policy π by the FB measure loss.

    Each step is ONE full batch: all N = S·A transitions of :func:`exhaustive_transitions`, with
    B applied to the next states s'. The target is target_measure(F̄1(s', π), F̄2(s', π), B̄(s'))
    with Polyak-averaged tables F̄_j, B̄ (rate ``tau``). As π is fixed and stochastic, the next action
    is not sampled but averaged: F̄_j(s', π) := Σ_{a'} π(s', a') F̄_j(s', a'), its expectation.
    B is NOT normalised (un-normalised tabular case) and d defaults to S (full rank), so F Bᵀ can
    represent M/ρ exactly. Adam on all three tables; F1 and F2 start from different random draws.

    ``loss_fn`` (default :func:`zsrl.losses.fb_measure_loss`, same signature) lets a test break the
    loss. The defaults reach ‖M_hat − M‖_F/‖M‖_F ≤ 1e-3 on :func:`four_rooms` (S = 40) under the
    uniform policy for γ in 0.8–0.9, in about 0.5 s with one torch thread (the matrices are
    160 x 160: more threads do not help, and under CPU contention they slow it down a lot).
    M_hat uses ρ_loo, not ρ: the batch loss excludes i = l from its off-diagonal mean, which on this
    dataset is a bias of order 1/c_x (×4/3 here), not 1/N; see :func:`leave_one_out_density`.
    """
    n_states, n_actions, _ = P.shape
    d = n_states if d is None else d
    s, a, s_next = (torch.as_tensor(x) for x in exhaustive_transitions(P))  # N each
    pi_t = torch.as_tensor(pi, dtype=torch.float32)  # S x A

    generator = torch.Generator().manual_seed(seed)

    def table(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator).requires_grad_()

    F1, F2 = table(n_states, n_actions, d), table(n_states, n_actions, d)  # S x A x d each
    B = table(n_states, d)  # S x d
    F1_bar, F2_bar, B_bar = (x.detach().clone() for x in (F1, F2, B))
    optimiser = torch.optim.Adam([F1, F2, B], lr=lr)

    history = np.empty(steps)
    for step in range(steps):
        with torch.no_grad():
            F1_pi = torch.einsum("sa,sad->sd", pi_t, F1_bar)  # S x d: F̄1(s', π)
            F2_pi = torch.einsum("sa,sad->sd", pi_t, F2_bar)  # S x d: F̄2(s', π)
            target_M = target_measure(F1_pi[s_next], F2_pi[s_next], B_bar[s_next])  # N x N
        loss = loss_fn(F1[s, a], F2[s, a], B[s_next], target_M, gamma).total
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            for online, target in ((F1, F1_bar), (F2, F2_bar), (B, B_bar)):
                target.lerp_(online, tau)
        history[step] = loss.item()

    next_np = s_next.numpy()
    rho = np.bincount(next_np, minlength=n_states) / len(next_np)  # S
    rho_loo = leave_one_out_density(next_np, n_states)  # S
    fit = FBFit(F1.detach(), F2.detach(), B.detach(), rho, rho_loo, np.empty(0), history)
    fit.M_hat = fit.measure(rho_loo)  # S x A x S
    return fit


def relative_error(estimate: np.ndarray, exact: np.ndarray) -> float:
    """‖estimate − exact‖_F / ‖exact‖_F."""
    return float(np.linalg.norm(estimate - exact) / np.linalg.norm(exact))
