"""Assignment 5: the measure-conservative penalty of MC-FB and its Lagrangian weight.

Part 1 (checked by :func:`check`). The student writes ``mc_penalty(M1_samples, M2_samples, M1_data,
M2_data)`` returning the scalar of book eq. (eq-mc-penalty),

    P_MC = Σ_{j=1,2} mean_{i,l} logsumexp_k M_j^(k)[i, l] − mean_{i,l} (M_1[i, l] + M_2[i, l]),

with M*_samples: K x N x N (the measures F_j(x_i^(k), a_i^(k), z_i)ᵀB(s'_l) of K action samples of
each of N states towards every next state of the batch) and M*_data: N x N (at the dataset actions).
The checker compares the value and the gradients with :func:`zsrl.losses.mc_penalty` and recognises
the usual mistakes, first among them averaging the diagonal pairs (i, i) only.

Part 2 (:func:`check_dual_step`). The student writes ``dual_step(log_alpha, optimizer, penalty,
target)``: one step of ``optimizer`` on log α for the loss −½ α (sg[P] − τ) of book eq.
(eq-lagrange-alpha), returning the new α, detached, for the critic. The checker runs a few steps with
an SGD optimiser (whose step shows the gradient's size) on penalties computed from stand-ins for the
critic's parameters, against :func:`zsrl.agents.base.dual_step`. It recognises back-propagating the
dual loss into the critic, a missing ``zero_grad``, the wrong sign, log α where α belongs, a
missing ½ or budget, and returning α before the step, log α, or α with a gradient.

Part 3 (:func:`budget_experiment`, independent of the checkers). Tabular MC-FB on the four-rooms
gridworld without left moves (the failing set-up of assignment 4), with the student's penalty and
dual step and a Lagrangian α, for several budgets τ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zsrl.agents.base import dual_step
from zsrl.assignments import Report, call, compare, compare_gradients, diagnose, leaves, matches
from zsrl.assignments.a4_failure_mode import GAMMA, LEFT, reference_measure, setting
from zsrl.losses import lagrange_alpha_loss, mc_penalty
from zsrl.tabular_control import ControlFit, fit_fb_control, rollout, transitions_without

NAME = "A5 MC penalty"
NAME_DUAL = "A5 dual step"

# (K samples, N states, scale of the measures). K ≠ N so that a logsumexp over a wrong axis gives
# another number; the last case has values up to ~200, where exp overflows in float32.
CASES = ((5, 4, 1.0), (3, 6, 2.0), (8, 3, 0.5), (4, 5, 60.0))
SEED = 5

Penalty = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
DualStep = Callable[[Tensor, torch.optim.Optimizer, Tensor, float], Any]


# ---------------------------------------------------------------------------------------------------
# Part 1: the penalty


def make_inputs(k: int, n: int, scale: float, generator: torch.Generator):
    """Random M1_samples, M2_samples (K x N x N) and M1_data, M2_data (N x N), float32."""
    M1_samples, M2_samples = (torch.randn(k, n, n, generator=generator) * scale for _ in range(2))
    M1_data, M2_data = (torch.randn(n, n, generator=generator) * scale for _ in range(2))
    return M1_samples, M2_samples, M1_data, M2_data


def typical_mistakes(M1_samples, M2_samples, M1_data, M2_data) -> dict[str, Tensor]:
    """What the usual wrong answers give on these inputs, keyed by the hint that explains each."""
    k = M1_samples.shape[0]
    data = (M1_data + M2_data).mean()

    def lse(m: Tensor) -> Tensor:  # K x N x N -> the mean over (i, l) of logsumexp_k
        return torch.logsumexp(m, 0).mean()

    def diag(m: Tensor) -> Tensor:  # the diagonal l = i of the last two axes
        return m.diagonal(dim1=-2, dim2=-1)

    def per_head(soft_max: Callable[[Tensor], Tensor]) -> Tensor:
        return soft_max(M1_samples) + soft_max(M2_samples) - data

    data_diagonal = (diag(M1_data) + diag(M2_data)).mean()
    soft_diagonal = lse(diag(M1_samples)[..., None]) + lse(diag(M2_samples)[..., None])
    everywhere = (
        "MC-FB penalises the measure towards every batch state s⁺ = s'_l: all N² pairs (i, l)"
    )
    return {
        "you averaged only the diagonal pairs (i, i): " + everywhere + ". The diagonal alone is "
        "the positive pair of the FB loss, and the measure towards every other state would stay "
        "free to grow": soft_diagonal - data_diagonal,
        "the data term averages only the diagonal pairs (i, i): " + everywhere + ", in both "
        "terms": lse(M1_samples) + lse(M2_samples) - data_diagonal,
        "the soft maximum averages only the diagonal pairs (i, i): " + everywhere + ", in both "
        "terms": soft_diagonal - data,
        "you used the max over the K samples: the penalty uses the soft maximum "
        "logsumexp_k M^(k) = log Σ_k exp M^(k), smooth, with a share of the gradient for every "
        "sample": per_head(lambda m: m.max(0).values.mean()),
        "logsumexp over the wrong axis (dim 1, the states s_i): M*_samples is K x N x N; the soft "
        "maximum is over the K samples (dim 0) of each pair (i, l)": per_head(
            lambda m: torch.logsumexp(m, 1).mean()
        ),
        "logsumexp over the wrong axis (dim 2, the future states s'_l): M*_samples is K x N x N; "
        "the soft maximum is over the K samples (dim 0) of each pair (i, l)": per_head(
            lambda m: torch.logsumexp(m, 2).mean()
        ),
        "you averaged the K samples (mean instead of logsumexp): that does not single out the "
        "largest, overestimated measures": per_head(lambda m: m.mean()),
        "you subtracted log K (a log-mean-exp): the paper's penalty is the plain logsumexp over "
        "the K samples": per_head(lambda m: lse(m) - math.log(k)),
        "your penalty uses the first head only: both heads get their own soft maximum, and the "
        "data term sums both": lse(M1_samples) - M1_data.mean(),
        "the data term is missing: subtract mean_{i,l} (M1 + M2)[i, l], the measures of the "
        "dataset actions, which the penalty pushes up": per_head(lse) + data,
        "the sign is flipped: soft maximum over the samples MINUS the data term": -per_head(lse),
        "you summed over the N² pairs: both terms are means over (i, l)": (
            torch.logsumexp(M1_samples, 0).sum()
            + torch.logsumexp(M2_samples, 0).sum()
            - (M1_data + M2_data).sum()
        ),
    }


def check(student_fn: Penalty) -> Report:
    """Compare ``student_fn(M1_samples, M2_samples, M1_data, M2_data)`` with the MC penalty."""
    report = Report(NAME)
    generator = torch.Generator().manual_seed(SEED)
    for index, (k, n, scale) in enumerate(CASES):
        inputs = make_inputs(k, n, scale, generator)
        context = f" on input {index} (K = {k} samples, N = {n} states, measures ~ ±{scale:g})"
        mine = leaves(*inputs)
        got = call(report, student_fn, *mine, label=context)
        if got is None:
            return report
        if not isinstance(got, Tensor):
            return report.fail(
                f"the penalty{context} is a {type(got).__name__}, not a torch tensor: keep it a "
                "tensor (no .item(), no numpy) so that it can train F and B"
            )
        if got.dim() != 0:
            return report.fail(
                f"the penalty{context}: shape {tuple(got.shape)}, expected () (a scalar): the "
                "penalty is one number, averaged over the N² pairs (i, l)"
            )
        reference = leaves(*inputs)
        want = mc_penalty(*reference)
        if not matches(got, want):
            if not torch.isfinite(got):
                return report.fail(
                    f"the penalty{context} is {got.item()}: log(sum(exp(M))) overflows once M is "
                    "above ~88 in float32; torch.logsumexp subtracts the maximum first and does not"
                )
            hint = diagnose(got, typical_mistakes(*inputs))
            if hint is not None:
                report.fail(f"the penalty{context} is not P_MC: {hint}")
            compare(report, "the penalty", got, want, context=context)
            return report
        names = ("M1_samples", "M2_samples", "M1_data", "M2_data")
        named = list(zip(names, mine, reference, strict=True))
        if not compare_gradients(report, "penalty", got, want, named, context):
            return report
    report.messages.append(
        f"value and gradients match mc_penalty on {len(CASES)} random inputs "
        "(K from 3 to 8 samples, N from 3 to 6 states, measures up to about 200)"
    )
    return report


# ---------------------------------------------------------------------------------------------------
# Part 2: the dual step

# The dual steps every check takes, in order, with one optimiser: (log α before the first step,
# the penalty's scale, the budget τ). The penalties lie above, below, then above the budget.
DUAL_START = 0.4  # log α at the start: α ≈ 1.49, so that α and log α differ
DUAL_STEPS = ((30.0, 10.0), (2.0, 10.0), (25.0, 5.0))
DUAL_LR = 0.01


def _critic(step: int) -> Tensor:
    """A stand-in for the critic's parameters at a step: a K x N x N block of measures (leaf)."""
    generator = torch.Generator().manual_seed(100 + step)
    return torch.randn(4, 3, 3, generator=generator).requires_grad_()


def _penalty_of(critic: Tensor, scale: float) -> Tensor:
    """An MC penalty computed from ``critic`` with its graph, shifted to about ``scale``."""
    M1k, M2k = critic, critic * 0.5  # K x N x N each
    M1, M2 = critic[0] * 0.9, critic[1] * 0.9  # N x N each
    base = mc_penalty(M1k, M2k, M1, M2)
    return base - base.detach() + scale  # the value ``scale``, the gradient of the penalty


def _variant_step(log_alpha: Tensor, optimizer, penalty: Tensor, target: float, mistake: str):
    """One dual step with one typical mistake (a log α the caller owns), returning nothing."""
    p = penalty.detach()
    losses = {
        "sign": 0.5 * log_alpha.exp() * (p - target),
        "log_alpha": -0.5 * log_alpha * (p - target),
        "half": -log_alpha.exp() * (p - target),
        "budget": -0.5 * log_alpha.exp() * p,
    }
    if mistake == "no_zero_grad":
        lagrange_alpha_loss(log_alpha, penalty, target).backward()
    else:
        optimizer.zero_grad()
        losses[mistake].backward()
    optimizer.step()


DUAL_MISTAKES = {
    "sign": "log α moved the wrong way: the loss is −½ α (P − τ), so that descent raises α while "
    "the penalty exceeds the budget and lowers it below",
    "log_alpha": "you used log α where α belongs: the loss is −½ α (P − τ) with α = exp(log α); "
    "its gradient in log α is −½ α (P − τ), not −½ (P − τ)",
    "half": "the ½ of −½ α (P − τ) is missing (the step is twice the reference's)",
    "budget": "the budget τ is missing: the loss is −½ α (P − τ); without τ, α rises whenever the "
    "penalty is positive, which it always is",
    "no_zero_grad": "the gradient of log α accumulates over the steps: call optimizer.zero_grad() "
    "before loss.backward(), or each step also repeats all the earlier ones",
}


def check_dual_step(student_fn: DualStep) -> Report:
    """Run ``student_fn(log_alpha, optimizer, penalty, target)`` for the steps of :data:`DUAL_STEPS`
    with one SGD optimiser and compare log α and the returned α with the library's dual step."""
    report = Report(NAME_DUAL)
    mine = torch.tensor(DUAL_START, requires_grad=True)
    mine_optimizer = torch.optim.SGD([mine], lr=DUAL_LR)
    ref = torch.tensor(DUAL_START, requires_grad=True)
    ref_optimizer = torch.optim.SGD([ref], lr=DUAL_LR)
    variants = {}
    for mistake in DUAL_MISTAKES:
        log_alpha = torch.tensor(DUAL_START, requires_grad=True)
        variants[mistake] = (log_alpha, torch.optim.SGD([log_alpha], lr=DUAL_LR))
    for step, (scale, target) in enumerate(DUAL_STEPS):
        context = f" at step {step + 1} (penalty {scale:g}, budget τ = {target:g})"
        before = mine.item()
        critic = _critic(step)
        penalty = _penalty_of(critic, scale)
        got = call(report, student_fn, mine, mine_optimizer, penalty, target, label=context)
        if got is None:
            return report
        want = dual_step(ref, ref_optimizer, _penalty_of(_critic(step), scale), target)
        for mistake, (log_alpha, optimizer) in variants.items():
            _variant_step(log_alpha, optimizer, _penalty_of(_critic(step), scale), target, mistake)
        if critic.grad is not None:
            return report.fail(
                f"your dual step{context} back-propagated the dual loss into the critic: gradients "
                "reached the critic's parameters. Only log α learns from this loss; detach the "
                "penalty (penalty.detach()), which also spares a whole backward pass through F"
            )
        if isinstance(got, Tensor) and got.requires_grad:
            return report.fail(
                f"the α you return{context} carries a gradient: the critic's loss α·P would "
                "back-propagate into log α too. Return log_alpha.detach().exp()"
            )
        try:
            (got * penalty).backward()  # the critic's step that follows, on its term α·P
        except Exception as error:  # noqa: BLE001 - whatever the student returned
            return report.fail(
                f"the critic cannot take its step with the α you return{context} (α·P, then "
                f"backward: {type(error).__name__}: {error}): return α as a scalar tensor"
            )
        if not matches(mine.detach(), ref.detach(), rtol=1e-5, atol=1e-7):
            if abs(mine.item() - before) < 1e-12:
                return report.fail(f"log α did not move{context}: call optimizer.step()")
            for mistake, hint in DUAL_MISTAKES.items():
                if matches(mine.detach(), variants[mistake][0].detach(), rtol=1e-5, atol=1e-7):
                    return report.fail(f"log α{context} is {mine.item():.6g}: {hint}")
            return report.fail(
                f"log α{context} is {mine.item():.6g}, expected {ref.item():.6g} (it was "
                f"{before:.6g} before the step)"
            )
        if matches(got, math.exp(before), rtol=1e-5, atol=1e-7):
            return report.fail(
                f"you returned α from before the step{context}: take the dual step first, then "
                "return the new α = exp(log α) for the critic"
            )
        if matches(got, mine.detach(), rtol=1e-5, atol=1e-7):
            return report.fail(f"you returned log α{context}: the critic needs α = exp(log α)")
        if not compare(report, "the returned α", got, want, rtol=1e-5, atol=1e-7, context=context):
            return report
    report.messages.append(
        f"log α and α match the library's dual step over {len(DUAL_STEPS)} steps (penalty above, "
        "below, above the budget); the critic's graph is left intact"
    )
    return report


# ---------------------------------------------------------------------------------------------------
# Part 3: the budget


BUDGETS = (3.0, 10.0, 100.0)
START_CELL = (0, 0)


@dataclass
class BudgetRun:
    """One Lagrangian MC-FB fit of :func:`budget_experiment` and what it achieved."""

    target: float  # the budget τ
    fit: ControlFit
    measures: dict[str, float]  # assignment 4's measures of the fit
    reached: int  # goals the greedy policies reach from the start cell within 40 steps

    @property
    def penalty(self) -> np.ndarray:
        """The penalty at every step (the history of the fit)."""
        return self.fit.history["penalty"]

    @property
    def alpha(self) -> np.ndarray:
        """α at every step, after that step's dual update."""
        return self.fit.history["alpha"]


def budget_experiment(
    penalty: Penalty = mc_penalty,
    step: DualStep = dual_step,
    budgets: Sequence[float] = BUDGETS,
    lr_alpha: float = 0.05,
    steps: int = 400,
) -> list[BudgetRun]:
    """Tabular MC-FB on assignment 4's world without left moves, one run per budget τ.

    Each run is ``fit_fb_control(data, S, A, rewards, γ, model="linear", penalty="mc", alpha=1.0,
    target_penalty=τ, lr_alpha=lr_alpha, dual_step=step, penalty_fn=penalty)``: α starts at 1 and
    every step takes one dual step (Adam on log α) before the critic's step.
    """
    world, P, rewards = setting()
    data = transitions_without(P, [LEFT])
    start = world.state(*START_CELL)
    goals = rewards.argmax(-1)  # G: each task's goal state
    runs = []
    for target in budgets:
        fit = fit_fb_control(
            data,
            world.n_states,
            world.n_actions,
            rewards,
            GAMMA,
            model="linear",
            penalty="mc",
            alpha=1.0,
            steps=steps,
            target_penalty=target,
            lr_alpha=lr_alpha,
            dual_step=step,
            penalty_fn=penalty,
        )
        policy = fit.policy()  # G x S
        reached = sum(int(g in rollout(P, policy[k], start, 40)) for k, g in enumerate(goals))
        runs.append(BudgetRun(target, fit, reference_measure(fit, P, GAMMA), reached))
    return runs
