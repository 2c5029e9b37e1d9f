"""Assignment 4, a problem set: the failure mode by hand (book chapter "The failure mode").

The student breaks FB on purpose, on the four-rooms gridworld of :mod:`zsrl.tabular_control`, and
measures what breaks. Three functions, three checkers:

Part 1 (:func:`check_data`). ``without_actions(P, removed)`` returns the offline dataset of a
deterministic gridworld that holds every state-action pair once, except the pairs of the removed
actions, as a :class:`~zsrl.tabular_control.Transitions`. The checker compares the transitions (in
any order) with :func:`zsrl.tabular_control.transitions_without` and says what is missing, extra,
repeated or wrong (the removed actions kept, only the removed actions kept, the moves into a wall
dropped, next states not the ones P gives).

Part 2 (:func:`check`). ``measure(fit, P, gamma)`` returns the numbers of :data:`MEASURES` for a
fit (:class:`~zsrl.tabular_control.ControlFit`): the mean estimated value of the pairs the data
holds and of those it lacks, of the greedy actions, the share of greedy actions the data lacks, and
how far the estimated value of the greedy action lies above its exact value under that same greedy
policy. The checker compares them with :func:`reference_measure` on seeded random fits (some data
without one action, some without random pairs, some complete) and names the usual mistakes.

Part 3 (:func:`check_experiment`). ``experiment()`` trains the three fits of :data:`RUNS` (FB on
the full data, and a table and a model that generalises across actions on the data without the left
moves) and returns their measures; the checker runs the same experiment with the reference
functions and compares the numbers, not the explanations.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from zsrl.assignments import Report, call, matches
from zsrl.tabular import (
    ACTIONS,
    Gridworld,
    four_rooms,
    successor_measure,
)
from zsrl.tabular_control import (
    ControlFit,
    Transitions,
    exact_q,
    fit_fb_control,
    goal_rewards,
    optimal_values,
    transitions_without,
)

NAME_DATA = "A4 part 1, the data"
NAME = "A4 part 2, the measures"
NAME_EXPERIMENT = "A4 part 3, the experiment"

MEASURES = ("q_seen", "q_unseen", "q_greedy", "greedy_unseen", "overestimate")
LEFT = ACTIONS.index("left")

# The experiment of part 3: the chapter's four-rooms world without left moves and its ten goals.
GAMMA = 0.9
GOAL_CELLS = ((0, 6), (2, 2), (6, 6), (6, 2), (4, 4), (2, 5), (5, 3), (1, 3), (0, 4), (6, 4))
RUNS = {  # name: (actions removed from the data, model of F)
    "full": ((), "linear"),
    "table": ((LEFT,), "table"),
    "linear": ((LEFT,), "linear"),
}
SEED = 4

Measure = Callable[[ControlFit, np.ndarray, float], dict[str, float]]


# ---------------------------------------------------------------------------------------------------
# Part 1: the data


def _triples(data: Any) -> list[tuple[int, int, int]] | None:
    """The (s, a, s') of every transition, or None if ``data`` is not three integer arrays."""
    try:
        arrays = [np.asarray(getattr(data, name)) for name in ("state", "action", "next_state")]
    except AttributeError:
        return None
    if any(a.ndim != 1 or not np.issubdtype(a.dtype, np.integer) for a in arrays):
        return None
    if len({len(a) for a in arrays}) != 1:
        return None
    return [tuple(int(x) for x in row) for row in zip(*arrays, strict=True)]


def _data_cases() -> list[tuple[str, np.ndarray, tuple[int, ...]]]:
    """(description, P, removed actions) of the worlds ``without_actions`` is checked on."""
    open_grid = Gridworld(3, 4)
    up, right = ACTIONS.index("up"), ACTIONS.index("right")
    return [
        ("four_rooms(5) without left", four_rooms(5).transition_matrix(), (LEFT,)),
        ("four_rooms(7) without up and right", four_rooms(7).transition_matrix(), (up, right)),
        ("a 3 x 4 room, nothing removed", open_grid.transition_matrix(), ()),
    ]


def _example(pairs: Sequence[tuple[int, int, int]]) -> str:
    s, a, s_next = sorted(pairs)[0]
    return f"(s, a, s') = ({s}, {ACTIONS[a]}, {s_next})"


def check_data(student_fn: Callable[[np.ndarray, Sequence[int]], Transitions]) -> Report:
    """Compare ``student_fn(P, removed)`` with the dataset that lacks exactly the removed actions."""
    report = Report(NAME_DATA)
    for description, P, removed in _data_cases():
        context = f" on {description}"
        got = call(report, student_fn, P.copy(), list(removed), label=context)
        if got is None:
            return report
        mine = _triples(got)
        if mine is None:
            return report.fail(
                f"the data{context} is a {type(got).__name__}: return "
                "Transitions(state, action, next_state), three integer arrays of one length"
            )
        want = _triples(transitions_without(P, removed))
        assert want is not None
        if Counter(mine) == Counter(want):
            continue
        repeated = [t for t, n in Counter(mine).items() if n > 1]
        kept_removed = [t for t in mine if t[1] in removed]
        wrong_next = [t for t in mine if P[t[0], t[1]].argmax() != t[2]]
        missing = list((Counter(want) - Counter(mine)).elements())
        if kept_removed and len(kept_removed) == len(mine):
            report.fail(
                f"the data{context} holds only the removed actions: the mask is inverted. Keep "
                "the transitions whose action is NOT in `removed`"
            )
        elif kept_removed:
            report.fail(
                f"the data{context} still holds {len(kept_removed)} transitions of a removed "
                f"action, e.g. {_example(kept_removed)}"
            )
        if wrong_next:
            report.fail(
                f"{len(wrong_next)} next states{context} are not where P sends the agent, e.g. "
                f"{_example(wrong_next)}: s' is the state P[s, a] puts its mass on, "
                "P[s, a].argmax()"
            )
        if repeated:
            report.fail(
                f"{len(repeated)} pairs{context} appear more than once, e.g. "
                f"{_example(repeated)}: each state-action pair once"
            )
        if missing and all(s == s_next for s, _, s_next in missing):
            report.fail(
                f"the data{context} lacks the {len(missing)} moves into a wall (where s' = s), e.g. "
                f"{_example(missing)}: they are transitions too, and without them nothing tells "
                "FB that a wall stops the agent"
            )
        elif missing:
            report.fail(
                f"the data{context} lacks {len(missing)} transitions of actions that were not "
                f"removed, e.g. {_example(missing)}: every pair (s, a) with a kept action, once"
            )
        if report.passed:  # the same multiset cannot differ in none of these ways
            report.fail(f"the data{context} differs from the expected transitions")
        return report
    report.messages.append(
        f"the transitions match on {len(_data_cases())} worlds (one or two actions removed, "
        "or none)"
    )
    return report


# ---------------------------------------------------------------------------------------------------
# Part 2: the measures


def _measure(
    fit: ControlFit,
    P: np.ndarray,
    gamma: float,
    heads: str = "min",
    greedy_over: str = "all",
    truth: str = "policy",  # policy, optimal, optimal_value or uniform
    error: str = "signed",
    error_over: str = "greedy",
    share: str = "share",
) -> dict[str, float]:
    """:func:`reference_measure` with one ingredient changed: the typical mistakes' variants."""
    if heads == "min":
        q = fit.q()  # G x S x A: min_j F_jᵀz
    else:
        q = torch.einsum("gsad,gd->gsa", fit.F1, fit.z()).numpy()  # G x S x A: F_1ᵀz only
    seen = fit.seen  # S x A
    if greedy_over == "all":
        policy = q.argmax(-1)  # G x S
    else:  # the argmax over the data's actions only
        policy = np.where(seen, q, -np.inf).argmax(-1)
    q_greedy = np.take_along_axis(q, policy[..., None], -1)[..., 0]  # G x S
    if truth == "policy":
        q_true = exact_q(P, policy, fit.rewards, gamma)  # G x S x A
    elif truth == "optimal":
        V = optimal_values(P, fit.rewards, gamma)  # G x S
        q_true = np.einsum("sat,gt->gsa", P, fit.rewards + gamma * V)  # G x S x A: Q*
    elif truth == "optimal_value":  # V*(s) for every action: the optimal value of the state
        V = optimal_values(P, fit.rewards, gamma)  # G x S
        q_true = np.repeat(V[..., None], P.shape[1], -1)  # G x S x A
    else:  # the uniform policy's values
        uniform = np.full(P.shape[:2], 1.0 / P.shape[1])  # S x A
        M = successor_measure(P, uniform, gamma)  # S x A x S
        q_true = np.einsum("sat,gt->gsa", M, fit.rewards)  # G x S x A
    if error_over == "greedy":
        gap = q_greedy - np.take_along_axis(q_true, policy[..., None], -1)[..., 0]  # G x S
    else:
        gap = q - q_true  # G x S x A
    unseen_choice = ~seen[np.arange(seen.shape[0]), policy]  # G x S
    unseen = ~seen
    return {
        "q_seen": float(q[:, seen].mean()),
        "q_unseen": float(q[:, unseen].mean()) if unseen.any() else math.nan,
        "q_greedy": float(q_greedy.mean()),
        "greedy_unseen": float(unseen_choice.mean() if share == "share" else unseen_choice.sum()),
        "overestimate": float(np.abs(gap).mean() if error == "absolute" else gap.mean()),
    }


def reference_measure(fit: ControlFit, P: np.ndarray, gamma: float) -> dict[str, float]:
    """The measures of :data:`MEASURES` for one fit.

    With Q̂_g(s, a) = min_j F_j[g, s, a]ᵀ z_g (``fit.q()``, G x S x A), the data's pairs ``fit.seen``
    (S x A) and the greedy policy π_g(s) = argmax_a Q̂_g(s, a) over all actions:

    - q_seen, q_unseen: the mean of Q̂ over every task and every pair the data holds, or lacks
      (NaN when it lacks none);
    - q_greedy: the mean over tasks and states of Q̂_g(s, π_g(s)) = max_a Q̂_g(s, a);
    - greedy_unseen: the share of (task, state) whose greedy action the data lacks at that state;
    - overestimate: the mean over tasks and states of Q̂_g(s, π_g(s)) − Q^π_g(s, π_g(s)), where
      Q^π_g is the exact value of following π_g (``zsrl.tabular_control.exact_q``): how much more
      the agent expects than it gets.
    """
    return _measure(fit, P, gamma)


def typical_mistakes(fit: ControlFit, P: np.ndarray, gamma: float) -> dict[str, dict[str, float]]:
    """The measures the usual wrong answers give on this fit, keyed by the hint that explains each."""
    reference = _measure(fit, P, gamma)
    swapped = dict(reference, q_seen=reference["q_unseen"], q_unseen=reference["q_seen"])
    return {
        "seen and unseen are swapped: fit.seen[s, a] is True where the data HOLDS the pair": (
            swapped
        ),
        "you read Q from the first head only: the agent's value is the minimum over the two "
        "heads, Q̂ = min_j F_jᵀz, which fit.q() returns": _measure(fit, P, gamma, heads="F1"),
        "your greedy action is the best of the data's actions only: the agent's policy maximises "
        "over ALL actions, those the data lacks included, and that is where the failure comes "
        "from": _measure(fit, P, gamma, greedy_over="seen"),
        "you compared with the optimal values Q*: the overestimate is measured against what the "
        "agent's own greedy policy obtains, Q^π from exact_q(P, policy, fit.rewards, gamma)": (
            _measure(fit, P, gamma, truth="optimal")
        ),
        "you compared with the optimal state values V*: the overestimate is measured against what "
        "the agent's own greedy policy obtains, Q^π(s, π(s)) from exact_q(P, policy, fit.rewards, "
        "gamma)": _measure(fit, P, gamma, truth="optimal_value"),
        "you compared with the values of the uniform policy: the overestimate is measured against "
        "the agent's own greedy policy, Q^π from exact_q(P, policy, fit.rewards, gamma)": (
            _measure(fit, P, gamma, truth="uniform")
        ),
        "you averaged |Q̂ − Q^π|: keep the sign, the question is whether the values are too high": (
            _measure(fit, P, gamma, error="absolute")
        ),
        "you averaged Q̂ − Q^π over every action: the overestimate is taken at the greedy action "
        "π(s) of each task and state, the one the agent acts on": _measure(
            fit, P, gamma, error_over="all"
        ),
        "greedy_unseen is a count: it is the share of (task, state) pairs, between 0 and 1": (
            _measure(fit, P, gamma, share="count")
        ),
    }


def random_fit(
    world: Gridworld, seen: np.ndarray, goals: Sequence[int], d: int, seed: int
) -> ControlFit:
    """A fit with random F and B (seeded) on the data that holds the pairs ``seen`` (S x A)."""
    P = world.transition_matrix()  # S x A x S
    state, action = np.nonzero(seen)  # N each
    data = Transitions(state, action, P[state, action].argmax(-1))
    generator = torch.Generator().manual_seed(seed)
    G, (S, A) = len(goals), seen.shape
    F1, F2 = (torch.randn(G, S, A, d, generator=generator) for _ in range(2))  # G x S x A x d
    B = torch.randn(S, d, generator=generator)  # S x d
    rho = np.bincount(data.next_state, minlength=S) / len(data)  # S: the data's next states
    return ControlFit(F1, F2, B, goal_rewards(S, goals), data.seen(S, A), rho)


def measure_cases() -> list[tuple[str, ControlFit, np.ndarray, float]]:
    """(description, fit, P, γ) of the random fits ``measure`` is checked on."""
    rng = np.random.default_rng(SEED)
    small, large = four_rooms(5), four_rooms(7)
    without_left = np.ones((small.n_states, 4), dtype=bool)  # S x A
    without_left[:, LEFT] = False
    some_pairs = rng.random((large.n_states, 4)) > 0.3  # S x A: about 30 % of the pairs missing
    cases = []
    for description, world, seen, goals, gamma in (
        ("four_rooms(5) without left, 3 goals", small, without_left, (0, 7, 19), 0.9),
        (
            "four_rooms(7) without 30 % of the pairs, 4 goals",
            large,
            some_pairs,
            (3, 11, 25, 39),
            0.8,
        ),
        ("four_rooms(5), complete data, 2 goals", small, np.ones_like(without_left), (5, 12), 0.9),
    ):
        fit = random_fit(world, seen, goals, d=6, seed=len(cases))
        cases.append((description, fit, world.transition_matrix(), gamma))
    return cases


def _same(got: Any, want: float) -> bool:
    """Whether a student's number equals the reference's (both NaN counts as equal)."""
    if isinstance(got, bool) or not isinstance(got, (int, float, np.floating, np.integer)):
        value = np.asarray(got) if hasattr(got, "__array__") else None
        if value is None or value.size != 1:
            return False
        got = float(value)
    if math.isnan(want):
        return math.isnan(float(got))
    return matches(float(got), want, rtol=1e-4, atol=1e-6)


def compare_measures(
    report: Report, got: Any, want: dict[str, float], context: str, mistakes: dict | None = None
) -> bool:
    """Whether the dict ``got`` holds every measure of ``want`` with its value; explains the first
    difference, naming a typical mistake (from ``mistakes``: hint -> measures) that reproduces it."""
    if not isinstance(got, dict):
        report.fail(f"the measures{context} are a {type(got).__name__}: return a dict {MEASURES}")
        return False
    missing = [key for key in want if key not in got]
    if missing:
        report.fail(f"the measures{context} lack {missing}: return a dict with keys {MEASURES}")
        return False
    for key, value in want.items():
        if _same(got[key], value):
            continue
        try:
            number = float(np.asarray(got[key]))
        except (TypeError, ValueError):
            report.fail(f"{key}{context} is a {type(got[key]).__name__}, not a number")
            return False
        if math.isnan(value):
            report.fail(
                f"{key}{context} is {number:.6g}: the data lacks no pair here, so there is "
                "nothing to average; return float('nan')"
            )
            return False
        for hint, variant in (mistakes or {}).items():
            if not _same(variant[key], value) and _same(number, variant[key]):
                report.fail(f"{key}{context} is {number:.6g}, expected {value:.6g}: {hint}")
                return False
        report.fail(f"{key}{context} is {number:.6g}, expected {value:.6g}")
        return False
    return True


def check(student_fn: Measure) -> Report:
    """Compare ``student_fn(fit, P, gamma)`` with :func:`reference_measure` on random fits."""
    report = Report(NAME)
    cases = measure_cases()
    for description, fit, P, gamma in cases:
        context = f" on {description}"
        got = call(report, student_fn, fit, P.copy(), gamma, label=context)
        if got is None:
            return report
        want = reference_measure(fit, P, gamma)
        if not compare_measures(report, got, want, context, typical_mistakes(fit, P, gamma)):
            return report
    report.messages.append(
        f"the {len(MEASURES)} measures match on {len(cases)} random fits (one action removed, "
        "random pairs removed, complete data)"
    )
    return report


# ---------------------------------------------------------------------------------------------------
# Part 3: the experiment


def setting() -> tuple[Gridworld, np.ndarray, np.ndarray]:
    """The experiment's world, its P (S x A x S) and the rewards of its ten goals (G x S)."""
    world = four_rooms(7)
    goals = [world.state(*cell) for cell in GOAL_CELLS]
    return world, world.transition_matrix(), goal_rewards(world.n_states, goals)


def run_experiment(
    without_actions: Callable[[np.ndarray, Sequence[int]], Transitions], measure: Measure
) -> dict[str, dict[str, float]]:
    """The experiment of :data:`RUNS` with the given data and measure functions.

    Each run is ``fit_fb_control(data, S, A, rewards, GAMMA, model=model)`` with the library's
    defaults (400 full-batch steps, seed 0), on ``without_actions(P, removed)``.
    """
    world, P, rewards = setting()
    results = {}
    for name, (removed, model) in RUNS.items():
        data = without_actions(P, list(removed))
        fit = fit_fb_control(data, world.n_states, world.n_actions, rewards, GAMMA, model=model)
        results[name] = measure(fit, P, GAMMA)
    return results


@functools.cache
def reference_experiment() -> dict[str, dict[str, float]]:
    """:func:`run_experiment` with the reference functions (computed once per process)."""
    return run_experiment(transitions_without, reference_measure)


def check_experiment(student_fn: Callable[[], dict[str, dict[str, float]]]) -> Report:
    """Run ``student_fn()`` and compare its measures of every run with the reference experiment's."""
    report = Report(NAME_EXPERIMENT)
    got = call(report, student_fn)
    if got is None:
        return report
    if not isinstance(got, dict) or set(got) != set(RUNS):
        keys = sorted(got) if isinstance(got, dict) else type(got).__name__
        return report.fail(f"experiment() returned {keys}: return a dict with keys {list(RUNS)}")
    want = reference_experiment()
    for name in RUNS:
        removed, model = RUNS[name]
        context = f" of the run {name!r} (model {model!r}, removed {[ACTIONS[a] for a in removed]})"
        others = {
            f"these are the measures of the run {other!r}: check the data and the model of "
            f"{name!r}": want[other]
            for other in RUNS
            if other != name
        }
        if not compare_measures(report, got[name], want[name], context, others):
            return report
    report.result = got
    report.messages.append(
        f"the measures of the {len(RUNS)} runs match the reference experiment's ({', '.join(RUNS)})"
    )
    return report
