"""Assignment 1: the successor measure of a finite MDP (book eq. (eq-successor-measure)).

The student writes ``successor_measure(P, pi, gamma)``: P is S x A x S with
P[s, a, s'] = Pr(s' | s, a), pi is S x A with pi[s, a] = π(a | s), and the answer is the S x A x S array

    M(s, a, s+) = Σ_{t≥0} γᵗ Pr(s_{t+1} = s+ | s_0 = s, a_0 = a, π) = P[s, a, :] (I − γ P_π)⁻¹,

compared here with :func:`zsrl.tabular.successor_measure` on random MDPs. Besides the values, the
checker tests that every M(s, a, ·) sums to 1/(1 − γ), and it recognises the usual mistakes (the
t = 0 term counted, the first action forgotten, the resolvent on the wrong side, a transposed P_π,
one factor γ too many, a truncated series) and says which one it sees.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from zsrl.assignments import Report, as_array, call, compare, diagnose
from zsrl.tabular import policy_matrix, successor_measure

NAME = "A1 successor measure"

# (S, A, γ) of the test MDPs. S ≠ A everywhere, so that an array with two axes swapped has the wrong
# shape; γ up to 0.99, where a series truncated after a few hundred terms is visibly short.
SIZES = ((3, 2, 0.5), (4, 3, 0.9), (6, 2, 0.8), (5, 4, 0.95), (9, 3, 0.99), (7, 5, 0.7))
SEED = 2024


def random_mdp(rng: np.random.Generator, n_states: int, n_actions: int):
    """A random stochastic P (S x A x S) and a random stochastic policy π (S x A)."""
    P = rng.dirichlet(np.full(n_states, 0.5), size=(n_states, n_actions))  # S x A x S
    pi = rng.dirichlet(np.ones(n_actions), size=n_states)  # S x A
    return P, pi


def cases() -> list[tuple[np.ndarray, np.ndarray, float]]:
    """The (P, pi, gamma) every check uses (seeded: the same on every call)."""
    rng = np.random.default_rng(SEED)
    return [(*random_mdp(rng, s, a), gamma) for s, a, gamma in SIZES]


def typical_mistakes(P: np.ndarray, pi: np.ndarray, gamma: float) -> dict[str, np.ndarray]:
    """What the usual wrong answers give on (P, pi, gamma), keyed by the hint that explains each."""
    n_states, n_actions, _ = P.shape
    P_pi = policy_matrix(P, pi)  # S x S
    resolvent = np.linalg.inv(np.eye(n_states) - gamma * P_pi)  # S x S: Σ_t γᵗ P_πᵗ
    M = P @ resolvent  # S x A x S
    start = np.broadcast_to(np.eye(n_states)[:, None, :], M.shape)  # S x A x S: 1{s+ = s}
    per_state = np.broadcast_to(resolvent[:, None, :], M.shape)  # S x A x S, a ignored
    per_state_next = np.broadcast_to((P_pi @ resolvent)[:, None, :], M.shape)  # S x A x S
    return {
        "your M counts the start state s itself (the t = 0 term, Pr(s_0 = s+) = 1{s+ = s}): "
        "you computed Σ_t γᵗ Pr(s_t = s+), which starts one step too early. The book's M starts "
        "at s_1: M = Σ_{t≥0} γᵗ Pr(s_{t+1} = s+ | s, a) = P[s, a] (I − γ P_π)⁻¹": start + gamma * M,
        "M(s, a, ·) does not depend on a: you used (I − γ P_π)⁻¹, the measure of the policy from "
        "state s, which both counts the t = 0 term (the identity) and forgets the first action. "
        "The first step takes action a (P[s, a, :]); only the later steps follow π": per_state,
        "M(s, a, ·) does not depend on a: you forgot the first action. Every row uses "
        "P_π (I − γ P_π)⁻¹, as if the first step also followed π; it must take action a, so "
        "the first factor is P[s, a, :], not P_π[s, :]": per_state_next,
        "the resolvent is on the wrong side: (I − γ P_π)⁻¹ P[:, a, :] follows π first and "
        "takes action a last. The first step takes a, then π: multiply the row vector "
        "P[s, a, :] by (I − γ P_π)⁻¹ from the right": np.einsum("sx,xat->sat", resolvent, P),
        "a transpose: you used (I − γ P_πᵀ)⁻¹ (or the transposed inverse). P_π[s, s'] = "
        "Σ_a π(a | s) P(s' | s, a) has rows that sum to 1 and is applied to row vectors "
        "from the right": P @ np.linalg.inv(np.eye(n_states) - gamma * P_pi.T),
        "one factor γ too many: the first step s_1 gets weight γ⁰ = 1, so M = Σ_{t≥0} γᵗ P^{t+1}, "
        "not Σ_{t≥0} γ^{t+1} P^{t+1}": gamma * M,
    }


def _row_sum_message(sums: np.ndarray, gamma: float) -> str | None:
    """Why the row sums Σ_{s+} M(s, a, s+) are not all 1/(1 − γ), or None if they are."""
    want = 1.0 / (1.0 - gamma)
    if np.allclose(sums, want, rtol=1e-4):
        return None
    low, high = float(sums.min()), float(sums.max())
    message = (
        f"the rows M(s, a, ·) must each sum to 1/(1 − γ) = {want:.4f} (discounted visits of one "
        f"trajectory: Σ_t γᵗ · 1); yours sum to {low:.4f}"
        + ("" if high - low < 1e-6 * want else f" … {high:.4f}")
    )
    if np.allclose(sums, gamma * want, rtol=1e-4):
        message += ", that is γ/(1 − γ): one factor γ too many"
    elif np.allclose(sums, 1.0, rtol=1e-4):
        message += ", that is 1: a probability distribution, not a discounted sum of them"
    elif high - low > 1e-6 * want:
        message += " (different rows, different sums: look for a transposed matrix)"
    elif low < want:
        message += " (too small: is the series Σ_t (γ P_π)ᵗ truncated too early?)"
    return message


def check(student_fn: Callable[[np.ndarray, np.ndarray, float], np.ndarray]) -> Report:
    """Compare ``student_fn(P, pi, gamma)`` with the exact successor measure on random MDPs."""
    report = Report(NAME)
    mdps = cases()
    for index, (P, pi, gamma) in enumerate(mdps):
        n_states, n_actions, _ = P.shape
        context = f" on MDP {index} (S = {n_states}, A = {n_actions}, γ = {gamma:.3f})"
        got = call(report, student_fn, P.copy(), pi.copy(), gamma, label=context)
        if got is None:
            return report
        got_array = as_array(got)
        if got_array is None:
            return report.fail(f"M{context}: got a {type(got).__name__}, expected an array")
        want = successor_measure(P, pi, gamma)  # S x A x S
        if got_array.shape != want.shape:
            hint = ""
            if got_array.shape == (n_states, n_states):
                hint = (
                    ": one row per state, so the action is missing. M has one row per "
                    "(s, a) pair: M[s, a, :] = P[s, a, :] (I − γ P_π)⁻¹"
                )
            elif sorted(got_array.shape) == sorted(want.shape):
                hint = ": the axes are in another order; M[s, a, s+] is indexed like P[s, a, s']"
            return report.fail(
                f"M{context}: shape {got_array.shape}, expected (S, A, S) = {want.shape}{hint}"
            )
        if not np.all(np.isfinite(got_array)):
            return report.fail(f"M{context}: contains NaN or infinite values")
        if np.allclose(got_array, want, rtol=1e-4, atol=1e-6):
            continue
        hint = diagnose(got_array, typical_mistakes(P, pi, gamma), rtol=1e-4, atol=1e-6)
        if hint is not None:
            report.fail(f"M{context} is not the successor measure: {hint}")
        row_sums = _row_sum_message(got_array.sum(-1), gamma)
        if row_sums is not None:
            report.fail(f"M{context}: {row_sums}")
        compare(report, "M", got_array, want, rtol=1e-4, atol=1e-6, context=context)
        return report
    report.messages.append(
        f"matches the exact M = P (I − γ P_π)⁻¹ on {len(mdps)} random MDPs "
        f"(S from {min(s for s, *_ in SIZES)} to {max(s for s, *_ in SIZES)}, "
        f"γ from {min(g for *_, g in SIZES)} to {max(g for *_, g in SIZES)}), "
        "every row summing to 1/(1 − γ)"
    )
    return report
