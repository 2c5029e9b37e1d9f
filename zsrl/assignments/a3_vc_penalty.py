"""Assignment 3: the value-conservative penalty of VC-FB (book eq. (eq-vc-penalty)).

Part 1 (checked by :func:`check`). The student writes ``vc_penalty(Q1_samples, Q2_samples, Q1_data,
Q2_data)`` returning the scalar

    P_VC = Σ_{j=1,2} mean_i logsumexp_k Q_j^(k)(i) − mean_i (Q_1(i) + Q_2(i)),

with Q*_samples: K x N (the two heads' Q = F_jᵀz at K action samples for each of N states) and
Q*_data: N (at the dataset actions). The checker compares the value and the gradients with
:func:`zsrl.losses.vc_penalty` on random inputs (one with values large enough to overflow a naive
log(sum(exp))) and recognises the usual mistakes (max or mean instead of logsumexp, the wrong axis,
one head only, the data term missing or with the wrong sign).

Part 2 (:func:`one_state_experiment`, independent of the checker). A one-state problem whose data
covers half of the actions: without the penalty, a Q-function that generalises across actions
overestimates the actions it never saw and the greedy policy picks one of them; with the penalty it
does not. The assignment pages run it with the student's penalty.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from zsrl.assignments import Report, call, compare, compare_gradients, diagnose, leaves, matches
from zsrl.losses import vc_penalty

NAME = "A3 VC penalty"

# (K samples, N states, scale of the Q values). K ≠ N so that a logsumexp over the wrong axis gives
# another number; the last case has values up to ~200, where exp overflows in float32.
CASES = ((12, 5, 1.0), (4, 9, 3.0), (7, 3, 0.3), (6, 10, 60.0))
SEED = 11

Penalty = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


def make_inputs(k: int, n: int, scale: float, generator: torch.Generator):
    """Random Q1_samples, Q2_samples (K x N) and Q1_data, Q2_data (N), float32."""
    Q1_samples, Q2_samples = (torch.randn(k, n, generator=generator) * scale for _ in range(2))
    Q1_data, Q2_data = (torch.randn(n, generator=generator) * scale for _ in range(2))
    return Q1_samples, Q2_samples, Q1_data, Q2_data


def typical_mistakes(Q1_samples, Q2_samples, Q1_data, Q2_data) -> dict[str, Tensor]:
    """What the usual wrong answers give on these inputs, keyed by the hint that explains each."""
    data = (Q1_data + Q2_data).mean()
    k = Q1_samples.shape[0]

    def per_head(soft_max: Callable[[Tensor], Tensor]) -> Tensor:
        return soft_max(Q1_samples) + soft_max(Q2_samples) - data

    def lse(q: Tensor) -> Tensor:
        return torch.logsumexp(q, 0).mean()

    return {
        "you used the max over the K samples: the penalty uses the soft maximum logsumexp_k Q^(k) "
        "= log Σ_k exp Q^(k), which is smooth and gives every sample a share of the gradient "
        "(the max gives it to one sample only)": per_head(lambda q: q.max(0).values.mean()),
        "logsumexp over the wrong axis: Q*_samples is K x N (samples x states); the soft maximum "
        "is over the K action samples of each state (dim 0), then the mean over the N states": (
            per_head(lambda q: torch.logsumexp(q, 1).mean())
        ),
        "you averaged the K samples (mean instead of logsumexp): that is E_a[Q] under the sampling "
        "distribution, which does not single out the largest, overestimated values; the penalty "
        "pushes down the soft maximum log Σ_k exp Q^(k)": per_head(lambda q: q.mean()),
        "you subtracted log K (a log-mean-exp): the paper's penalty is the plain logsumexp "
        "over the K samples, log K included": per_head(lambda q: lse(q) - math.log(k)),
        "one logsumexp over all K·N values: take it over the K samples of each state (dim 0) "
        "and then the mean over states": per_head(lambda q: torch.logsumexp(q.flatten(), 0)),
        "your penalty uses the first head only: both heads get their own soft maximum, "
        "and the data term sums both heads": lse(Q1_samples) - Q1_data.mean(),
        "one logsumexp of Q1 + Q2: each head gets its own logsumexp, then they are added": (
            torch.logsumexp(Q1_samples + Q2_samples, 0).mean() - data
        ),
        "the data term is missing: subtract mean_i (Q1(s_i, a_i) + Q2(s_i, a_i)), the Q of the "
        "dataset actions, which the penalty pushes up": per_head(lse) + data,
        "the sign is flipped: the penalty is soft-max over the samples MINUS the data term, so "
        "that minimising it lowers the Q of unseen actions and raises the dataset's": -per_head(
            lse
        ),
        "the data term averages the two heads: it is mean_i (Q1 + Q2), the sum of both heads": (
            lse(Q1_samples) + lse(Q2_samples) - data / 2
        ),
        "you summed over the N states: both terms are means over the batch": (
            torch.logsumexp(Q1_samples, 0).sum()
            + torch.logsumexp(Q2_samples, 0).sum()
            - (Q1_data + Q2_data).sum()
        ),
    }


def check(student_fn: Penalty) -> Report:
    """Compare ``student_fn(Q1_samples, Q2_samples, Q1_data, Q2_data)`` with the VC penalty."""
    report = Report(NAME)
    generator = torch.Generator().manual_seed(SEED)
    for index, (k, n, scale) in enumerate(CASES):
        inputs = make_inputs(k, n, scale, generator)
        context = f" on input {index} (K = {k} samples, N = {n} states, Q values ~ ±{scale:g})"
        mine = leaves(*inputs)
        got = call(report, student_fn, *mine, label=context)
        if got is None:
            return report
        if not isinstance(got, Tensor):
            return report.fail(
                f"the penalty{context} is a {type(got).__name__}, not a torch tensor: keep it a "
                "tensor (no .item(), no numpy) so that it can train F"
            )
        if got.dim() != 0:
            return report.fail(
                f"the penalty{context}: shape {tuple(got.shape)}, expected () (a scalar): the "
                "penalty is one number, averaged over the N states"
            )
        reference = leaves(*inputs)
        want = vc_penalty(*reference)
        if not matches(got, want):
            if not torch.isfinite(got):
                report.fail(
                    f"the penalty{context} is {got.item()}: log(sum(exp(Q))) overflows once Q is "
                    "above ~88 in float32; torch.logsumexp subtracts the maximum first and does not"
                )
                return report
            hint = diagnose(got, typical_mistakes(*inputs))
            if hint is not None:
                report.fail(f"the penalty{context} is not P_VC: {hint}")
            compare(report, "the penalty", got, want, context=context)
            return report
        names = ("Q1_samples", "Q2_samples", "Q1_data", "Q2_data")
        named = list(zip(names, mine, reference, strict=True))
        if not compare_gradients(report, "penalty", got, want, named, context):
            return report
    report.messages.append(
        f"value and gradients match vc_penalty on {len(CASES)} random inputs "
        "(K from 4 to 12 samples, Q values up to about 200)"
    )
    return report


# ---------------------------------------------------------------------------------------------------
# Part 2: the penalty against overestimation, on a one-state problem.


@dataclass
class OneStateResult:
    """The learnt Q of :func:`one_state_experiment` next to the true one, per action."""

    actions: np.ndarray  # A: the action values x in [-1, 1]
    in_data: np.ndarray  # A (bool): whether the dataset holds the action
    true_q: np.ndarray  # A: Q*(x) = r(x) + γ max r / (1 − γ)
    q: np.ndarray  # A: the learnt Q, min over the two heads

    @property
    def greedy(self) -> int:
        """Index of the action a greedy policy (an actor maximising the learnt Q) takes."""
        return int(np.argmax(self.q))

    def unseen_overestimate(self) -> float:
        """The largest learnt-minus-true Q over the actions the data never shows."""
        return float((self.q - self.true_q)[~self.in_data].max())


def one_state_experiment(
    penalty: Penalty | None = None,
    alpha: float = 0.3,
    steps: int = 2000,
    gamma: float = 0.9,
    samples: int = 12,
    lr: float = 5.0,
    tau: float = 0.05,
    seed: int = 0,
) -> OneStateResult:
    """TD learning of Q on one state whose data shows only the actions x ≥ 0, with or without a penalty.

    Every action leads back to the single state. There are 21 actions x ∈ {−1, −0.9, …, 1} with reward
    r(x) = 1 − |x|, so the best action is x = 0 and Q*(x) = r(x) + γ/(1 − γ). The dataset holds each
    action x ≥ 0 once (the right half, as in the didactic maze whose data has no "left" actions).

    Two heads Q_j(x) = w_jᵀφ(x), φ a quadratic in x: a linear model that generalises from the actions
    it sees to those it does not (the features are orthonormalised over the data actions, so that
    plain gradient descent converges in a few hundred steps). Each step:

    - target y_i = r(x_i) + γ max_x' min_j Q̄_j(x') over all 21 actions (a perfect actor; Q̄ is a
      Polyak-averaged copy with rate ``tau``);
    - loss ½ Σ_j mean_i (Q_j(x_i) − y_i)² + α·penalty(Q1_samples, Q2_samples, Q1_data, Q2_data),
      the penalty on K = ``samples`` actions drawn uniformly for each data row (none if ``penalty``
      is None);
    - one gradient step (SGD, ``lr``), then the Polyak update.
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.arange(-10, 11, dtype=torch.float64) / 10  # A = 21 actions, x = 0 exactly
    seen = torch.arange(10, 21)  # the actions x ≥ 0: N = 11 data rows
    reward = 1.0 - x[seen].abs()  # N
    raw = torch.stack([torch.ones_like(x), x, x**2], -1)  # A x 3
    _, upper = torch.linalg.qr(raw[seen])  # raw[seen] = Q·R with orthonormal Q
    phi = raw @ torch.linalg.inv(upper)  # A x 3: orthonormal columns on the data rows
    w = (0.1 * torch.randn(2, 3, generator=generator, dtype=torch.float64)).requires_grad_()
    w_target = w.detach().clone()  # 2 x 3
    optimiser = torch.optim.SGD([w], lr=lr)
    for _ in range(steps):
        with torch.no_grad():
            value = (phi @ w_target.T).min(1).values.max()  # max_x' min_j Q̄_j(x')
            y = reward + gamma * value  # N
        Q_data = phi[seen] @ w.T  # N x 2
        loss = 0.5 * ((Q_data - y[:, None]) ** 2).sum(1).mean()
        if penalty is not None:
            index = torch.randint(0, len(x), (samples, len(seen)), generator=generator)  # K x N
            Q_samples = phi[index] @ w.T  # K x N x 2
            loss = loss + alpha * penalty(
                Q_samples[..., 0], Q_samples[..., 1], Q_data[:, 0], Q_data[:, 1]
            )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            w_target.lerp_(w, tau)
    with torch.no_grad():
        q = (phi @ w.T).min(1).values  # A
    in_data = np.zeros(len(x), dtype=bool)
    in_data[seen.numpy()] = True
    true_q = 1.0 - x.abs().numpy() + gamma / (1.0 - gamma)
    return OneStateResult(x.numpy(), in_data, true_q, q.numpy())
