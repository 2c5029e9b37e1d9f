"""The maths of FB as pure functions of tensors, named after the equations they implement.

Notation (reference: ref-fb): a batch of N transitions (s_i, a_i, s'_i) with task vectors z_i in R^d;
F(s, a, z) in R^d has two heads F_1, F_2; B(s) in R^d is normalised to norm √d. The successor measure
is M(s, a, s+, z) = F(s, a, z)ᵀ B(s+), so a batch gives an N x N matrix of measures from every (s_i, a_i)
towards every s'_l, and Q(s, a, z) = F(s, a, z)ᵀ z.

Each loss function names the equation of the book it implements, as "book eq. (label)": the label of the
equation in the chapter given (for example eq-fb-measure-loss in "FB representations").
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class FBLoss(NamedTuple):
    total: Tensor  # L_FB = off_diag + diag
    off_diag: Tensor  # ½ Σ_j mean_{i≠l} (M_j[i,l] − γ M̄[i,l])²
    diag: Tensor  # −Σ_j mean_i M_j[i,i]


def off_diagonal_mean(matrix: Tensor) -> Tensor:
    """Mean of the entries of a square matrix off its diagonal."""
    n = matrix.shape[-1]
    return (matrix.sum() - matrix.diagonal().sum()) / (n * (n - 1))


TARGET_HEADS = ("min", "mean")


def target_measure(F1_next: Tensor, F2_next: Tensor, B_next: Tensor, heads: str = "min") -> Tensor:
    """M̄[i,l] = min_j F̄_j(s'_i, a'_i, z_i)ᵀ B̄(s'_l), the pessimistic target measure (reference: ref-fb-loss).

    Book eq. (eq-fb-target), chapter "FB representations". ``heads="mean"`` averages the two heads
    instead of taking their minimum, as Meta Motivo's FB does (its actor still takes the minimum):
    the minimum of two noisy estimates is biased low entry by entry, and the bias compounds through
    the bootstrapped measure.

    F1_next, F2_next: N x d target forward heads at (s', a' ~ π(s', z), z); B_next: N x d target B(s').
    """
    M1 = F1_next @ B_next.T  # N x N
    M2 = F2_next @ B_next.T  # N x N
    if heads == "mean":
        return 0.5 * (M1 + M2)  # N x N
    if heads != "min":
        raise ValueError(f"unknown target heads {heads!r}; valid choices: {list(TARGET_HEADS)}")
    return torch.minimum(M1, M2)  # N x N


def fb_measure_loss(
    F1: Tensor, F2: Tensor, B_next: Tensor, target_M: Tensor, discount: Tensor | float
) -> FBLoss:
    """The FB Bellman loss on the successor measure (reference: ref-fb-loss; book eq. (eq-fb-measure-loss)).

    L_FB = ½ Σ_j mean_{i≠l} (F_j(s_i,a_i,z_i)ᵀB(s'_l) − γ_i M̄[i,l])² − Σ_j mean_i F_j(s_i,a_i,z_i)ᵀB(s'_i)

    The off-diagonal entries use the other next states of the batch as samples s+ ~ ρ; the diagonal is
    the "positive" term −2·E[F(s,a,z)ᵀB(s')], its factor 2 absorbed by the ½ on the squares.

    F1, F2: N x d online heads at (s, a, z); B_next: N x d online B(s'); target_M: N x N (no grad);
    discount: γ, a float or an N x 1 column (one discount per transition, multiplying row i).
    """
    off_diag = F1.new_zeros(())
    diag = F1.new_zeros(())
    for F in (F1, F2):
        M = F @ B_next.T  # N x N: measure of every (s_i, a_i) towards every s'_l
        off_diag = off_diag + 0.5 * off_diagonal_mean((M - discount * target_M) ** 2)
        diag = diag - M.diagonal().mean()
    return FBLoss(off_diag + diag, off_diag, diag)


def orthonormality_loss(B: Tensor, coefficient: float = 1.0) -> Tensor:
    """λ·(mean_{i≠l} C[i,l]² − 2·mean_i C[i,i]) with C = B Bᵀ (reference: ref-ortho; book eq.
    (eq-ortho-loss)).

    Pushes E_ρ[B(s)B(s)ᵀ] towards the identity. With B normalised to norm √d the diagonal is the
    constant d, so only the off-diagonal part gives a gradient. B: N x d.
    """
    C = B @ B.T  # N x N
    return coefficient * (off_diagonal_mean(C**2) - 2.0 * C.diagonal().mean())


def q_min(F1: Tensor, F2: Tensor, z: Tensor) -> Tensor:
    """Q = min_j F_jᵀz, the pessimistic value of two forward heads: ... (one per row)."""
    return torch.minimum((F1 * z).sum(-1), (F2 * z).sum(-1))


def actor_loss(F1: Tensor, F2: Tensor, z: Tensor) -> Tensor:
    """L_π = −mean_i min_j F_j(s_i, ã_i, z_i)ᵀ z_i, with ã_i ~ π(s_i, z_i) (reference: ref-actor).

    Book eq. (eq-actor-loss), chapter "FB representations".
    """
    return -q_min(F1, F2, z).mean()


ACTOR_OBJECTIVES = ("max_q", "awr")


def advantage_weighted_actor_loss(
    mean: Tensor, data_action: Tensor, advantage: Tensor, temperature: float, max_weight: float
) -> Tensor:
    """L_π^AW = mean_i w_i ‖a_i − μ(s_i, z_i)‖², w = N·softmax_i(A_i / (β·std(A))) clipped at w_max.

    Book eq. (eq-fb-awr-actor), chapter "FB representations": advantage-weighted regression (AWR, AWAC)
    of the actor's mean towards the dataset's actions, the offline actor that Cetin, Touati & Ollivier
    (RLC 2025) pair with FB. With Gaussian noise of fixed σ, log π(a | s, z) is −‖a − μ‖²/(2σ²) up to
    a constant, so this is AWAC's weighted log-likelihood. The actor only imitates the data's actions,
    weighted towards the better ones, and never asks F about actions the data lack. Dividing A by
    its batch standard deviation makes β independent of the scale of F·z, which drifts in training.

    mean: N x A (with its graph); data_action: N x A; advantage: N, A = Q(s, a) − Q(s, μ) (no grad).
    """
    scaled = advantage / (temperature * advantage.std().clamp_min(1e-6))  # N
    weights = (scaled.softmax(0) * len(scaled)).clamp(max=max_weight).detach()  # N
    return (weights * (data_action - mean).pow(2).sum(-1)).mean()


def normalize_to_sphere(x: Tensor) -> Tensor:
    """√d · x / ‖x‖ along the last dimension (the sphere on which B and every z live)."""
    return x.shape[-1] ** 0.5 * torch.nn.functional.normalize(x, dim=-1)


def sample_sphere(n: int, d: int, device: torch.device | str = "cpu") -> Tensor:
    """n task vectors uniform on the sphere of radius √d: z = √d · g/‖g‖, g ~ N(0, I) (reference:
    ref-z-sampling)."""
    return normalize_to_sphere(torch.randn(n, d, device=device))  # n x d


def mix_z(z_prior: Tensor, z_backward: Tensor, ratio: float) -> tuple[Tensor, Tensor]:
    """Replace each row of ``z_prior`` by the row of ``z_backward`` with probability ``ratio``.

    z_backward holds √d·normalise(B(s_perm(i))) for a random permutation of the batch's states
    (reference: ref-z-sampling). The Bernoulli mask is drawn on the tensors' device: no host synchronisation.
    Returns the mixed task vectors (N x d) and the mask of rows taken from B (N, bool).
    """
    use_backward = torch.rand(z_prior.shape[0], 1, device=z_prior.device) < ratio  # N x 1
    return torch.where(use_backward, z_backward, z_prior), use_backward[:, 0]  # N x d, N


def infer_z_from_rewards(B: Tensor, rewards: Tensor) -> Tensor:
    """Task inference z_r = √d · normalise(mean_k r_k B(s_k)) (reference: ref-task-inference).
    B: n x d, rewards: n.

    Book eq. (eq-z-inference), chapter "FB representations".
    """
    return normalize_to_sphere((rewards[:, None] * B).mean(0))  # d


# ---------------------------------------------------------------------------------------------------
# Conservative FB (reference: ref-conservative). Each function takes the forward heads already
# evaluated at the K action samples of every state (see zsrl.agents.cfb for how they are drawn) and is
# pure.


def vc_penalty(Q1_samples: Tensor, Q2_samples: Tensor, Q1_data: Tensor, Q2_data: Tensor) -> Tensor:
    """The value-conservative penalty of VC-FB (reference: ref-vc-penalty; book eq. (eq-vc-penalty)).

    P_VC = Σ_j mean_i logsumexp_k Q_j^(k)(i) − mean_i Σ_j Q_j(s_i, a_i, z_i), Q_j = F_jᵀz:
    the CQL gap between a soft maximum of Q over sampled actions and Q of the dataset action.
    A plain log-sum-exp over the K samples, with no importance correction (as the paper's code).

    Q*_samples: K x N Q values at the K action samples of each state; Q*_data: N, at (s_i, a_i).
    """
    soft_max = torch.logsumexp(Q1_samples, 0).mean() + torch.logsumexp(Q2_samples, 0).mean()
    return soft_max - (Q1_data + Q2_data).mean()


def mc_penalty(M1_samples: Tensor, M2_samples: Tensor, M1_data: Tensor, M2_data: Tensor) -> Tensor:
    """The measure-conservative penalty of MC-FB (reference: ref-mc-penalty; book eq. (eq-mc-penalty)).

    P_MC = Σ_j mean_{i,l} logsumexp_k M_j^(k)[i,l] − mean_{i,l} Σ_j M_j[i,l], with
    M_j^(k)[i,l] = F_j(x_i^(k), a_i^(k), z_i)ᵀB(s'_l): the same gap as VC-FB, on the successor measure
    towards every batch state s⁺ = s'_l (the s⁺ ~ D marginal: all N² pairs, not only the diagonal).

    M*_samples: K x N x N; M*_data: N x N, the measures of the dataset actions.
    """
    soft_max = torch.logsumexp(M1_samples, 0).mean() + torch.logsumexp(M2_samples, 0).mean()
    return soft_max - (M1_data + M2_data).mean()


def masked_vc_penalty(
    Q1_samples: Tensor, Q2_samples: Tensor, Q1_data: Tensor, Q2_data: Tensor, mask: Tensor
) -> Tensor:
    """The directed penalty of DVC-FB: :func:`vc_penalty` averaged over the rows where ``mask``.

    Book eq. (eq-dvc-penalty), chapter "Conservative FB".

    DVC-FB (not released by the paper; reference: ref-dvc) makes the value conservative only for task vectors
    taken from the backward model, z = B(s⁺) with s⁺ ~ D:

    P_DVC = E_{s, s⁺ ~ D}[ Σ_j logsumexp_k F_j(s, a^(k), B(s⁺))ᵀB(s⁺) − Σ_j F_j(s, a, B(s⁺))ᵀB(s⁺) ].

    The batch rows whose z was drawn from B (the mixing's backward half, ``mask``) are exactly such
    samples, so their mean is an unbiased estimate that reuses the VC-FB computations.

    Q*_samples: K x N; Q*_data: N; mask: N (bool or 0/1). With no masked row the penalty is 0.
    """
    weight = mask.to(Q1_data.dtype)  # N
    gap = torch.logsumexp(Q1_samples, 0) + torch.logsumexp(Q2_samples, 0) - Q1_data - Q2_data  # N
    return (weight * gap).sum() / weight.sum().clamp_min(1.0)


def lagrange_alpha_loss(log_alpha: Tensor, penalty: Tensor, target: float) -> Tensor:
    """Dual loss of the Lagrange multiplier α = exp(log α) (reference: ref-lagrange): −½·α·(P − τ).

    Book eq. (eq-lagrange-alpha), chapter "Conservative FB".

    Minimising it over log α raises α while the penalty P exceeds the budget τ and lowers it below.
    The penalty is detached: the dual step updates α only, and does not back-propagate into the
    critic (the paper's code does, and throws the gradients away, which costs a whole backward pass).
    """
    return -0.5 * log_alpha.exp() * (penalty.detach() - target)
