"""The maths of the four offline-RL baselines as pure functions, named after their equations.

The paper compares VC-FB and MC-FB with two other zero-shot methods, SF-LAP and GC-IQL, and with two
single-task offline RL methods, CQL and offline TD3 (reference: ref-baselines). This module holds only their
maths: networks, optimisers and the training loop live elsewhere, so that every function here can be
checked against numbers computed by hand (tests/test_baseline_losses.py) and shown in the book by
inclusion.

Notation: a batch of N transitions (s_i, a_i, s'_i), i = 1..N, with rewards r_i and discount γ (a float
or one discount per transition, a tensor of N entries).

- SF-LAP (reference: ref-sf-lap): features φ(s) in R^d, normalised to norm √d; successor features
  ψ(s, a, z) in R^d with two heads ψ_1, ψ_2; task vectors z in R^d; Q(s, a, z) = ψ(s, a, z)ᵀ z.
  Feature batches are N x d.
- GC-IQL (reference: ref-gciql): two goal-conditioned value heads V_1(s, g), V_2(s, g) and their
  targets V̄_k, each a tensor of N values. Goals are indices into the dataset, drawn with numpy for
  every batch.
- CQL and TD3 (reference: ref-cql, ref-td3): two critics Q_1(s, a), Q_2(s, a) and their targets Q̄_k,
  N values each; CQL's K sampled actions per state give K x N values. ``not_done`` is 1 − terminal
  per transition.

Every target (a Bellman target, an advantage weight) is returned detached: it is a regression label,
and a gradient through it would optimise a different objective from the fixed-point iteration.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from zsrl.data.episodes import EpisodeLayout, episode_layout
from zsrl.losses import normalize_to_sphere, orthonormality_loss


def _check_same_shape(**tensors: Tensor) -> None:
    """Raise ValueError naming the arguments and their shapes if the shapes differ."""
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"expected tensors of one shape, got {listed}")


def double_q_mse(q1: Tensor, q2: Tensor, target: Tensor) -> Tensor:
    """MSE(Q_1, y) + MSE(Q_2, y): both critics regress one detached target (reference: ref-sf-lap,
    ref-cql, ref-td3).

    q1, q2, target: N.
    """
    _check_same_shape(q1=q1, q2=q2, target=target)
    target = target.detach()  # N
    return F.mse_loss(q1, target) + F.mse_loss(q2, target)


# ---------------------------------------------------------------------------------------------------
# SF-LAP: universal successor features on Laplacian eigenfunction features (reference: ref-sf-lap).


def laplacian_feature_loss(phi: Tensor, phi_next: Tensor, coefficient: float = 1.0) -> Tensor:
    """Laplacian feature loss of SF-LAP (reference: ref-sf-lap), on features φ normalised to norm √d.

    L_φ = (1/(N·d)) Σ_i ‖φ(s_i) − φ(s'_i)‖² + λ·(mean_{i≠l} (φ(s_i)ᵀφ(s_l))² − 2·mean_i ‖φ(s_i)‖²)

    The first term asks features to change slowly along transitions (the smoothness that the graph
    Laplacian's eigenfunctions minimise); the second is FB's orthonormality term (reference:
    ref-ortho) on C = φ(S)φ(S)ᵀ, which rules out the constant solution.

    The reference (ref-sf-lap) writes the first term "mean ‖φ(s) − φ(s')‖²"; the paper's code averages
    over the batch *and* the d coordinates, i.e. 1/d times the mean squared norm. We follow the code,
    because that factor sets the balance between the two terms. The orthonormality term uses the
    current states' features φ(s), as the code does.

    phi, phi_next: N x d features of s and s'.
    """
    _check_same_shape(phi=phi, phi_next=phi_next)
    smoothness = (phi - phi_next).pow(2).mean()  # scalar: mean over the N x d entries
    return smoothness + orthonormality_loss(phi, coefficient)


def sf_q_target(
    phi_next: Tensor, psi1_next: Tensor, psi2_next: Tensor, z: Tensor, discount: Tensor | float
) -> Tensor:
    """SF Bellman target on Q: y = (φ(s') + γ·ψ̄_min(s', a', z))ᵀ z (reference: ref-sf-lap), detached.

    ψ̄_min is, row by row, the target head with the smaller Q = ψ̄_jᵀz at (s', a' ~ π(s', z)), so
    ψ̄_minᵀz = min_j ψ̄_jᵀz. φ(s') is detached: the features learn from their own loss only.

    phi_next: N x d; psi1_next, psi2_next: N x d target heads; z: N x d; discount: float or N.
    Returns y: N.
    """
    _check_same_shape(phi_next=phi_next, psi1_next=psi1_next, psi2_next=psi2_next, z=z)
    with torch.no_grad():
        q1_next = (psi1_next * z).sum(-1)  # N
        q2_next = (psi2_next * z).sum(-1)  # N
        reward = (phi_next * z).sum(-1)  # N: the "reward" φ(s')ᵀz of task z
        return reward + discount * torch.minimum(q1_next, q2_next)  # N


def sf_q_loss(psi1: Tensor, psi2: Tensor, z: Tensor, target: Tensor) -> Tensor:
    """MSE(ψ_1ᵀz, y) + MSE(ψ_2ᵀz, y): the SF loss on Q, not on the feature vector (reference: ref-sf-lap).

    psi1, psi2: N x d online heads at (s, a, z); z: N x d; target: N, from :func:`sf_q_target`.
    """
    _check_same_shape(psi1=psi1, psi2=psi2, z=z)
    q1 = (psi1 * z).sum(-1)  # N
    q2 = (psi2 * z).sum(-1)  # N
    return double_q_mse(q1, q2, target)


def sf_z_from_features(phi: Tensor, rewards: Tensor) -> Tensor:
    """Task inference of SF-LAP: z = √d·normalise(argmin_w ‖φ(S) w − r‖²) (reference: ref-sf-lap,
    ref-task-inference).

    A least-squares regression of the rewards on the features, not FB's reward-weighted mean: with
    rewards exactly linear in φ it recovers the task's direction. Learned features are badly
    conditioned (condition numbers of 1e7 on the maze), so the regression is solved in float64 on
    the CPU by the SVD-based driver ``gelsd``: torch's default CPU driver (``gelsy``) drops small
    singular values and returns a different, truncated solution, and float32 loses the rest.

    phi: n x d features of the labelled states; rewards: n. Returns z: d.
    """
    if phi.dim() != 2 or rewards.shape != phi.shape[:1]:
        raise ValueError(
            f"expected phi n x d and rewards n, got {tuple(phi.shape)} and {tuple(rewards.shape)}"
        )
    A = phi.detach().double().cpu()  # n x d
    b = rewards.detach().double().cpu()[:, None]  # n x 1
    w = torch.linalg.lstsq(A, b, driver="gelsd").solution[:, 0]  # d
    return normalize_to_sphere(w.to(phi))  # d


def sf_goal_z(phi_goal: Tensor, phi_state: Tensor) -> Tensor:
    """Goal task of SF-LAP: z = √d·normalise(φ(g) − φ(s_t)), recomputed at every step (reference: ref-sf-lap).

    phi_goal: d or N x d; phi_state: N x d or d (broadcast). Returns N x d or d.
    """
    return normalize_to_sphere(phi_goal - phi_state)  # N x d


def sf_mix_z_backward(phi_next: Tensor) -> Tensor:
    """The task vectors SF-LAP mixes into its z batch: √d·normalise(φ(s') C⁺), C = φᵀφ/N (reference:
    ref-sf-lap).

    C is the d x d feature covariance on this batch and C⁺ its pseudo-inverse, so row i is the task
    whose least-squares reward is concentrated on s'_i. The caller permutes the rows (C does not
    change under a permutation) and mixes them into the prior with ``zsrl.losses.mix_z``.
    The result is detached: a task vector is an input to ψ and π, not a path into φ.

    phi_next: N x d. Returns N x d.
    """
    with torch.no_grad():
        C = phi_next.T @ phi_next / phi_next.shape[0]  # d x d
        return normalize_to_sphere(phi_next @ torch.linalg.pinv(C))  # N x d


# ---------------------------------------------------------------------------------------------------
# GC-IQL: goal-conditioned implicit Q-learning with values only (reference: ref-gciql).


def goal_reward_and_mask(obs: Tensor, goal: Tensor) -> tuple[Tensor, Tensor]:
    """Reward r = 0 where the goal equals the state exactly, else −1; mask = 0 there, else 1 (reference:
    ref-gciql).

    The mask stops bootstrapping once the goal is reached. "Exactly" means every coordinate equal, so
    only goals drawn as the current state (or a repeated state) count as reached.

    obs, goal: N x obs_dim. Returns (reward, mask), each N, in obs's dtype.
    """
    _check_same_shape(obs=obs, goal=goal)
    reached = (obs == goal).all(-1)  # N
    reward = reached.to(obs.dtype) - 1.0  # N: 0 where reached, −1 elsewhere
    mask = (~reached).to(obs.dtype)  # N
    return reward, mask


def expectile_value_loss(
    v1: Tensor,
    v2: Tensor,
    target_v1_next: Tensor,
    target_v2_next: Tensor,
    target_v1: Tensor,
    target_v2: Tensor,
    reward: Tensor,
    mask: Tensor,
    discount: Tensor | float,
    expectile: float,
) -> Tensor:
    """GC-IQL's expectile value loss, summed over the two heads (reference: ref-gciql).

    q_k = r + γ·mask·V̄_k(s', g)
    A   = r + γ·mask·min_k V̄_k(s', g) − mean_k V̄_k(s, g)      (target nets only)
    L_V = Σ_k mean_i |τ − 1(A_i ≤ 0)| · (q_k,i − V_k(s_i, g_i))²

    The weight τ on positive advantages and 1 − τ on the others makes V an upper expectile of the
    backed-up value, an in-sample soft maximum over the dataset's actions. The advantage and q_k come
    from the target nets and carry no gradient.

    v1, v2: N online V_k(s, g); target_*: N; reward, mask: N; discount: float or N; expectile τ.
    """
    _check_same_shape(
        v1=v1,
        v2=v2,
        target_v1_next=target_v1_next,
        target_v2_next=target_v2_next,
        target_v1=target_v1,
        target_v2=target_v2,
        reward=reward,
        mask=mask,
    )
    if not 0.0 < expectile < 1.0:
        raise ValueError(f"expectile must lie in (0, 1), got {expectile}")
    with torch.no_grad():
        bootstrap = discount * mask  # N
        next_min = torch.minimum(target_v1_next, target_v2_next)  # N
        advantage = reward + bootstrap * next_min - 0.5 * (target_v1 + target_v2)  # N
        weight = (expectile - (advantage <= 0).to(v1.dtype)).abs()  # N
        q1 = reward + bootstrap * target_v1_next  # N
        q2 = reward + bootstrap * target_v2_next  # N
    return (weight * (q1 - v1).pow(2)).mean() + (weight * (q2 - v2).pow(2)).mean()


def awr_weights(
    v_next_mean: Tensor, v_mean: Tensor, temperature: float, max_weight: float = 100.0
) -> Tensor:
    """Advantage-weighted regression weights w = min(exp(β·(V̄(s', g) − V(s, g))), w_max) (reference:
    ref-gciql).

    v_next_mean: N, mean_k V̄_k(s', g) of the target heads; v_mean: N, mean_k V_k(s, g) of the online
    heads; temperature β; max_weight w_max (100 in the paper's code). Returns N weights, detached.
    """
    _check_same_shape(v_next_mean=v_next_mean, v_mean=v_mean)
    with torch.no_grad():
        advantage = v_next_mean - v_mean  # N
        return torch.exp(temperature * advantage).clamp(max=max_weight)  # N


def awr_actor_loss(log_prob: Tensor, weights: Tensor) -> Tensor:
    """AWR actor loss −mean_i w_i·log π(a_i | s_i, g_i) (reference: ref-gciql).

    log_prob: N (summed over action dimensions) or N x |A| (per dimension, as the paper's code: this
    changes the scale only); weights: N from :func:`awr_weights`.
    """
    if log_prob.shape[:1] != weights.shape or weights.dim() != 1:
        raise ValueError(
            f"expected weights N and log_prob N or N x |A|, got weights {tuple(weights.shape)} "
            f"and log_prob {tuple(log_prob.shape)}"
        )
    w = weights.detach().reshape(-1, *([1] * (log_prob.dim() - 1)))  # N (x 1)
    return -(w * log_prob).mean()


GOAL_FUTURE, GOAL_RANDOM, GOAL_CURRENT = 0, 1, 2


class GoalIndices(NamedTuple):
    goal: np.ndarray  # M, int64: the dataset index of each sampled transition's goal state
    source: np.ndarray  # M, int8: GOAL_FUTURE, GOAL_RANDOM or GOAL_CURRENT


def sample_goal_indices(
    episode_ids: np.ndarray | None,
    index: np.ndarray,
    rng: np.random.Generator,
    p_future: float = 0.5,
    p_random: float = 0.3,
    p_current: float = 0.2,
    geometric_p: float = 0.01,
    timesteps: np.ndarray | None = None,
    layout: EpisodeLayout | None = None,
) -> GoalIndices:
    """Goal states of GC-IQL for the transitions ``index``; call it for every batch (reference: ref-gciql,
    ref-bug-gciql-goals).

    For a transition t of an episode whose last transition is e, the goal is, with probabilities
    p_future / p_random / p_current:

    - a future state min(t + k, e), k ~ Geometric(geometric_p) ≥ 1, capped at the episode's end
      (with ``timesteps``: the first transition of the episode at least k time steps later);
    - a state drawn uniformly from the same episode (as the paper's code; HIQL draws from the dataset);
    - the current state t itself (reward 0, the only way an exact goal match happens).

    The paper's code drew one goal per transition at load time and kept it all training (reference:
    ref-bug-gciql-goals);
    drawing afresh for every batch is HIQL's procedure and what this function is for.

    The episodes are described either by ``episode_ids`` (n) and optional ``timesteps`` (n), checked
    as in :func:`episode_layout` on every call, or by a ``layout`` computed once by it (a training
    loop: the checks cost about as much as the sampling itself on a large dataset); not both.
    ``index``: M dataset indices of the sampled transitions. Returns the M goal indices and sources.
    """
    probs = (p_future, p_random, p_current)
    if min(probs) < 0 or abs(sum(probs) - 1.0) > 1e-6:
        raise ValueError(
            f"goal probabilities (p_future, p_random, p_current) = {probs} must be >= 0 and sum to 1"
        )
    if not 0.0 < geometric_p <= 1.0:
        raise ValueError(f"geometric_p must lie in (0, 1], got {geometric_p}")
    if (layout is None) == (episode_ids is None):
        raise ValueError(
            "give exactly one of episode_ids (with optional timesteps) and a precomputed layout"
        )
    if layout is None:
        layout = episode_layout(episode_ids, timesteps)
    elif timesteps is not None:
        raise ValueError("timesteps belong in the layout when a layout is given")
    start, end = layout.start, layout.end  # n, n
    index = np.asarray(index)
    if index.ndim != 1:
        raise ValueError(f"index must be a 1-D array of dataset indices, got shape {index.shape}")
    if index.size and (index.min() < 0 or index.max() >= start.size):
        raise ValueError(
            f"index values must lie in [0, {start.size}), got min {index.min()}, max {index.max()}"
        )
    t_start, t_end = start[index], end[index]  # M, M
    offset = rng.geometric(geometric_p, size=index.size)  # M, each >= 1
    key = layout.time_key  # n or None
    if key is None:
        future = np.minimum(index + offset, t_end)  # M
    else:  # the first row at least `offset` steps later, capped at the episode's last row
        future = np.minimum(np.searchsorted(key, key[index] + offset, side="left"), t_end)  # M
    random = rng.integers(t_start, t_end + 1)  # M
    u = rng.random(index.size)  # M
    source = np.where(
        u < p_future, GOAL_FUTURE, np.where(u < p_future + p_random, GOAL_RANDOM, GOAL_CURRENT)
    )  # M
    goal = np.choose(source, [future, random, index]).astype(np.int64)  # M
    return GoalIndices(goal, source.astype(np.int8))


# ---------------------------------------------------------------------------------------------------
# CQL on SAC (reference: ref-cql).


def cql_penalty(q_samples: Tensor, q_data: Tensor) -> Tensor:
    """CQL gap for one critic: mean_i [logsumexp(Q over sampled actions and a_i) − Q(s_i, a_i)]
    (reference: ref-cql).

    q_samples: K x N, Q(s_i, ·) at the K sampled actions of each state (in the paper 3 uniform, 3 from
    π(s) and 3 from π(s'), all evaluated at s); q_data: N, Q(s_i, a_i) at the dataset action, which the
    paper's code adds to the log-sum-exp (10 values in all). No importance-sampling correction. The penalty is
    never negative, since the log-sum-exp exceeds each of its terms. The caller sums the two critics.
    """
    if q_samples.dim() != q_data.dim() + 1 or q_samples.shape[1:] != q_data.shape:
        raise ValueError(
            f"expected q_samples K x N and q_data N, got {tuple(q_samples.shape)} and {tuple(q_data.shape)}"
        )
    all_q = torch.cat([q_samples, q_data[None]], 0)  # (K + 1) x N
    return (torch.logsumexp(all_q, 0) - q_data).mean()


def sac_critic_target(
    q1_next: Tensor,
    q2_next: Tensor,
    next_log_prob: Tensor,
    reward: Tensor,
    not_done: Tensor,
    discount: Tensor | float,
    entropy_alpha: Tensor | float,
) -> Tensor:
    """Soft Bellman target y = r + γ·not_done·(min_k Q̄_k(s', a') − α·log π(a' | s')), a' ~ π(s')
    (reference: ref-cql).

    ``not_done`` must be 1 − terminal of *this* transition: zero only where s' is a true terminal (not a
    time-limit truncation), aligned with the transition (the paper's code misaligned it; reference:
    ref-bug-not-done).

    q1_next, q2_next: N target critics at (s', a'); next_log_prob: N (summed over action dimensions);
    reward, not_done: N; discount: float or N; entropy_alpha: the temperature α. Returns y: N, detached.
    """
    _check_same_shape(
        q1_next=q1_next,
        q2_next=q2_next,
        next_log_prob=next_log_prob,
        reward=reward,
        not_done=not_done,
    )
    with torch.no_grad():
        alpha = entropy_alpha.detach() if isinstance(entropy_alpha, Tensor) else entropy_alpha
        soft_value = torch.minimum(q1_next, q2_next) - alpha * next_log_prob  # N
        return reward + discount * not_done * soft_value  # N


def sac_actor_loss(
    q1: Tensor, q2: Tensor, log_prob: Tensor, entropy_alpha: Tensor | float
) -> Tensor:
    """SAC actor loss mean_i [α·log π(ã_i | s_i) − min_k Q_k(s_i, ã_i)], ã_i ~ π(s_i) (reference: ref-cql).

    q1, q2, log_prob: N (the log-prob summed over action dimensions); α is detached.
    """
    _check_same_shape(q1=q1, q2=q2, log_prob=log_prob)
    alpha = entropy_alpha.detach() if isinstance(entropy_alpha, Tensor) else entropy_alpha
    return (alpha * log_prob - torch.minimum(q1, q2)).mean()


def sac_temperature_loss(log_alpha: Tensor, log_prob: Tensor, target_entropy: float) -> Tensor:
    """SAC temperature loss mean_i α·(−log π(ã_i | s_i) − H̄), α = exp(log α) (reference: ref-cql).

    Minimising it over log α raises α while the policy's entropy −log π is below the target H̄ (−|A| in
    the paper) and lowers it above. log_prob (N) is detached: this loss trains α only.
    """
    return (log_alpha.exp() * (-log_prob.detach() - target_entropy)).mean()


# ---------------------------------------------------------------------------------------------------
# Offline TD3, without a behaviour-cloning term (reference: ref-td3).


def td3_critic_target(
    q1_next: Tensor, q2_next: Tensor, reward: Tensor, not_done: Tensor, discount: Tensor | float
) -> Tensor:
    """Clipped double-Q target y = r + γ·not_done·min_k Q̄_k(s', a'), a' = smoothed π(s') (reference: ref-td3).

    a' carries the target policy smoothing noise (σ 0.2, clipped at 0.3), drawn by the caller.
    ``not_done`` as in :func:`sac_critic_target`. All inputs N; returns y: N, detached.
    """
    _check_same_shape(q1_next=q1_next, q2_next=q2_next, reward=reward, not_done=not_done)
    with torch.no_grad():
        return reward + discount * not_done * torch.minimum(q1_next, q2_next)  # N


def td3_actor_loss(q: Tensor) -> Tensor:
    """Offline TD3 actor loss −mean_i Q(s_i, ã_i), with no behaviour-cloning term (reference: ref-td3).

    q: N, the critic at the actor's noisy actions ã_i = π(s_i) + clipped noise: min(Q_1, Q_2), as the
    paper's code takes it (the original TD3 uses Q_1 alone); with no behaviour cloning, the minimum
    of the two critics is the actor's only pessimism.
    """
    return -q.mean()
