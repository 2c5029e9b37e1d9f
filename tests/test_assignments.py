"""The course assignments' checkers: the reference passes, stubs and typical mistakes get named."""

import functools
from dataclasses import astuple

import numpy as np
import pytest
import torch

from zsrl import losses, stats, tabular, tabular_control
from zsrl.agents.base import dual_step
from zsrl.assignments import (
    Report,
    a1_successor_measure,
    a2_fb_loss,
    a3_vc_penalty,
    a4_failure_mode,
    a5_mc_penalty,
    a6_task_inference,
    a7_judging_results,
    call,
)
from zsrl.infer import infer_task_vectors

pytestmark = pytest.mark.usefixtures("one_thread")


def text(report: Report) -> str:
    return repr(report)


def not_implemented(*args):
    raise NotImplementedError


# --- the base -------------------------------------------------------------------------------------


def test_report_prints_and_is_falsy_when_failed():
    report = Report("X")
    assert report and "all checks passed" in text(report)
    report.fail("something")
    assert not report and "not yet" in text(report) and "something" in text(report)


def test_call_reports_none_and_exceptions():
    report = Report("X")
    assert call(report, lambda: None) is None and "returned None" in text(report)
    report = Report("X")
    assert call(report, lambda: 1 / 0) is None and "ZeroDivisionError" in text(report)


def test_call_tells_a_stub_from_a_not_implemented_error_inside_the_students_code():
    def helper():
        raise NotImplementedError("this feature of the helper is missing")

    def student_function():
        return helper()

    report = Report("X")
    assert call(report, not_implemented) is None and "is not implemented yet" in text(report)
    report = Report("X")
    assert call(report, student_function) is None
    assert "not implemented yet" not in text(report)
    assert "from inside: NotImplementedError('this feature of the helper is missing')" in text(
        report
    )

    @functools.wraps(not_implemented)
    def wrapped(*args):
        return not_implemented(*args)

    report = Report("X")  # a decorated stub is still a stub
    assert call(report, wrapped) is None and "is not implemented yet" in text(report)


# --- A1: successor measure ------------------------------------------------------------------------


def resolvent(P, pi, gamma):
    n = P.shape[0]
    return np.linalg.inv(np.eye(n) - gamma * tabular.policy_matrix(P, pi))


def test_a1_reference_passes():
    report = a1_successor_measure.check(tabular.successor_measure)
    assert report, text(report)


def test_a1_stub_is_reported_not_implemented():
    report = a1_successor_measure.check(not_implemented)
    assert not report and "not implemented" in text(report)


def test_a1_identity_included():
    def wrong(P, pi, gamma):  # Σ_t γᵗ Pr(s_t = ·): counts s_0
        start = np.eye(P.shape[0])[:, None, :]
        return start + gamma * P @ resolvent(P, pi, gamma)

    report = a1_successor_measure.check(wrong)
    assert not report and "t = 0 term" in text(report)


def test_a1_first_action_forgotten():
    def wrong(P, pi, gamma):
        P_pi = tabular.policy_matrix(P, pi)
        M = P_pi @ resolvent(P, pi, gamma)  # S x S
        return np.repeat(M[:, None, :], P.shape[1], axis=1)

    report = a1_successor_measure.check(wrong)
    assert not report and "forgot the first action" in text(report)


def test_a1_transposed_policy_matrix_and_row_sums():
    def wrong(P, pi, gamma):
        P_pi = np.einsum("sa,sat->ts", pi, P)  # transposed
        return P @ np.linalg.inv(np.eye(P.shape[0]) - gamma * P_pi)

    message = text(a1_successor_measure.check(wrong))
    assert "transpose" in message and "sum to 1/(1 − γ)" in message


def test_a1_extra_gamma_named_by_row_sums():
    message = text(
        a1_successor_measure.check(lambda P, pi, g: g * tabular.successor_measure(P, pi, g))
    )
    assert "γ/(1 − γ)" in message and "one factor γ too many" in message


def test_a1_truncated_series():
    def wrong(P, pi, gamma):
        P_pi, M, term = tabular.policy_matrix(P, pi), np.zeros_like(P), P.copy()
        for t in range(100):
            M += gamma**t * term
            term = term @ P_pi
        return M

    assert "truncated" in text(a1_successor_measure.check(wrong))


def test_a1_state_measure_and_resolvent_on_the_wrong_side():
    def per_state(P, pi, gamma):  # (I − γ P_π)⁻¹ for every action: t = 0 counted, a forgotten
        return np.repeat(resolvent(P, pi, gamma)[:, None, :], P.shape[1], axis=1)

    def wrong_side(P, pi, gamma):  # (I − γ P_π)⁻¹ P[:, a, :]: π first, a last
        return np.einsum("sx,xat->sat", resolvent(P, pi, gamma), P)

    report = a1_successor_measure.check(per_state)
    assert not report and "you used (I − γ P_π)⁻¹, the measure of the policy" in text(report)
    report = a1_successor_measure.check(wrong_side)
    assert not report and "the resolvent is on the wrong side" in text(report)


def test_a1_shape_mismatch():
    report = a1_successor_measure.check(lambda P, pi, g: resolvent(P, pi, g))  # S x S
    assert not report and "shape (3, 3), expected (S, A, S) = (3, 2, 3)" in text(report)
    assert "the action is missing" in text(report)


# --- A2: FB loss ----------------------------------------------------------------------------------


def fb_loss(*args):
    return losses.fb_measure_loss(*args).total


def off_diagonal_loss(F1, F2, B_next, target_M, discount, half=0.5, with_diagonal=False, heads=2):
    n = B_next.shape[0]
    mask = torch.ones(n, n) if with_diagonal else 1 - torch.eye(n)
    count = n * n if with_diagonal else n * (n - 1)
    total = 0
    for F in (F1, F2)[:heads]:
        M = F @ B_next.T
        total = total + half * (((M - discount * target_M) ** 2) * mask).sum() / count
        total = total - M.diagonal().mean()
    return total


def test_a2_reference_passes():
    report = a2_fb_loss.check(fb_loss)
    assert report, text(report)


def test_a2_stub_is_reported_not_implemented():
    report = a2_fb_loss.check(not_implemented)
    assert not report and "not implemented" in text(report)


def test_a2_diagonal_in_the_off_diagonal_mean():
    report = a2_fb_loss.check(lambda *a: off_diagonal_loss(*a, with_diagonal=True))
    assert not report and "diagonal is inside your off-diagonal mean" in text(report)


def test_a2_missing_half():
    report = a2_fb_loss.check(lambda *a: off_diagonal_loss(*a, half=1.0))
    assert not report and "½" in text(report) and "missing" in text(report)


def test_a2_one_head():
    report = a2_fb_loss.check(lambda *a: off_diagonal_loss(*a, heads=1))
    assert not report and "first forward head only" in text(report)


def test_a2_discount_on_columns():
    def wrong(F1, F2, B_next, target_M, discount):
        if isinstance(discount, torch.Tensor):
            discount = discount.T
        return fb_loss(F1, F2, B_next, target_M, discount)

    report = a2_fb_loss.check(wrong)
    assert not report and "discount multiplies columns" in text(report)


def n_squared_divisor(F1, F2, B_next, target_M, discount):
    """The FB loss with the off-diagonal squares summed without the diagonal but divided by N²."""
    n, total = B_next.shape[0], 0
    for F in (F1, F2):
        M = F @ B_next.T  # N x N
        squares = (M - discount * target_M) ** 2  # N x N
        total = total + 0.5 * (squares.sum() - squares.diagonal().sum()) / n**2
        total = total - M.diagonal().mean()
    return total


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (n_squared_divisor, "divided by N²"),
        (lambda F1, F2, B, T, g: fb_loss(F1, F1, B, T, g), "first forward head twice"),
        (
            lambda F1, F2, B, T, g: (
                fb_loss(F1, F2, B, T, g) + 2 * sum((F @ B.T).diagonal().mean() for F in (F1, F2))
            ),
            "the positive (diagonal) term has the wrong sign",
        ),
        (
            lambda F1, F2, B, T, g: (
                losses.fb_measure_loss(F1, F2, B, T, g).off_diag
                - sum((F @ B.T - g * T).diagonal().mean() for F in (F1, F2))
            ),
            "on the residual",
        ),
        (lambda F1, F2, B, T, g: fb_loss(F1, F2, B, T, 1.0), "the discount is missing"),
    ],
)
def test_a2_more_mistakes_are_named(wrong, message):
    report = a2_fb_loss.check(wrong)
    assert not report and message in text(report), text(report)


def test_a2_shape_and_type_mismatches():
    def per_row(F1, F2, B_next, target_M, discount):
        return (F1 @ B_next.T).diagonal()  # N values

    report = a2_fb_loss.check(per_row)
    assert not report and "shape (6,), expected ()" in text(report)
    report = a2_fb_loss.check(lambda *a: fb_loss(*a).item())
    assert not report and "not a torch tensor" in text(report)


def test_a2_detached_input_loses_gradient():
    report = a2_fb_loss.check(lambda F1, F2, B, T, g: fb_loss(F1, F2, B.detach(), T, g))
    assert not report and "no gradient reaches B_next" in text(report)


# --- A3: VC penalty -------------------------------------------------------------------------------


def test_a3_reference_passes():
    report = a3_vc_penalty.check(losses.vc_penalty)
    assert report, text(report)


def test_a3_stub_is_reported_not_implemented():
    report = a3_vc_penalty.check(not_implemented)
    assert not report and "not implemented" in text(report)


def soft_max_penalty(soft_max):
    def penalty(Q1_samples, Q2_samples, Q1_data, Q2_data):
        return soft_max(Q1_samples) + soft_max(Q2_samples) - (Q1_data + Q2_data).mean()

    return penalty


def test_a3_max_instead_of_logsumexp():
    report = a3_vc_penalty.check(soft_max_penalty(lambda q: q.max(0).values.mean()))
    assert not report and "max over the K samples" in text(report)


def test_a3_logsumexp_over_the_wrong_axis():
    report = a3_vc_penalty.check(soft_max_penalty(lambda q: torch.logsumexp(q, 1).mean()))
    assert not report and "wrong axis" in text(report)


def test_a3_mean_instead_of_logsumexp():
    report = a3_vc_penalty.check(soft_max_penalty(lambda q: q.mean()))
    assert not report and "mean instead of logsumexp" in text(report)


def test_a3_naive_logsumexp_overflows():
    report = a3_vc_penalty.check(soft_max_penalty(lambda q: q.exp().sum(0).log().mean()))
    assert not report and "overflows" in text(report)


def data_term(Q1_data, Q2_data):
    return (Q1_data + Q2_data).mean()


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (
            soft_max_penalty(lambda q: torch.logsumexp(q, 0).mean() - np.log(q.shape[0])),
            "log-mean-exp",
        ),
        (
            soft_max_penalty(lambda q: torch.logsumexp(q.flatten(), 0)),
            "one logsumexp over all K·N values",
        ),
        (
            lambda q1, q2, d1, d2: torch.logsumexp(q1, 0).mean() - d1.mean(),
            "uses the first head only",
        ),
        (
            lambda q1, q2, d1, d2: torch.logsumexp(q1 + q2, 0).mean() - data_term(d1, d2),
            "one logsumexp of Q1 + Q2",
        ),
        (
            lambda q1, q2, d1, d2: torch.logsumexp(q1, 0).mean() + torch.logsumexp(q2, 0).mean(),
            "the data term is missing",
        ),
        (lambda *q: -losses.vc_penalty(*q), "the sign is flipped"),
        (
            lambda q1, q2, d1, d2: losses.vc_penalty(q1, q2, d1, d2) + data_term(d1, d2) / 2,
            "the data term averages the two heads",
        ),
        (
            lambda q1, q2, d1, d2: (
                torch.logsumexp(q1, 0).sum() + torch.logsumexp(q2, 0).sum() - (d1 + d2).sum()
            ),
            "you summed over the N states",
        ),
    ],
)
def test_a3_more_mistakes_are_named(wrong, message):
    report = a3_vc_penalty.check(wrong)
    assert not report and message in text(report), text(report)


def test_a3_shape_mismatch():
    report = a3_vc_penalty.check(lambda q1, q2, d1, d2: torch.logsumexp(q1, 0) - d1)  # N values
    assert not report and "shape (5,), expected ()" in text(report)


def test_a3_experiment_penalty_removes_overestimation():
    plain = a3_vc_penalty.one_state_experiment(None, steps=1500)
    penalised = a3_vc_penalty.one_state_experiment(losses.vc_penalty, steps=1500)
    assert plain.unseen_overestimate() > 5  # unseen actions far above their true value
    assert not plain.in_data[plain.greedy]  # the greedy policy picks an action never seen
    assert penalised.unseen_overestimate() < 0  # below the true value everywhere unseen
    assert penalised.in_data[penalised.greedy]


# --- A4: the failure mode, by hand ----------------------------------------------------------------


def test_a4_reference_data_passes():
    report = a4_failure_mode.check_data(tabular_control.transitions_without)
    assert report, text(report)


def test_a4_data_stub_is_reported_not_implemented():
    report = a4_failure_mode.check_data(not_implemented)
    assert not report and "not implemented" in text(report)


def every_pair(P, keep):
    """Transitions of every (s, a) with keep(s, a, s'), once, in row-major order."""
    triples = [
        (s, a, int(P[s, a].argmax()))
        for s in range(P.shape[0])
        for a in range(P.shape[1])
        if keep(s, a, int(P[s, a].argmax()))
    ]
    return tabular_control.Transitions(*np.array(triples).T)  # state, action, next_state


def stay_put(data):
    """The data with every next state replaced by the state itself (the move forgotten)."""
    return tabular_control.Transitions(data.state, data.action, data.state.copy())


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda P, removed: every_pair(P, lambda s, a, n: a in removed), "the mask is inverted"),
        (lambda P, removed: every_pair(P, lambda s, a, n: True), "still holds 20 transitions"),
        (
            lambda P, removed: every_pair(P, lambda s, a, n: a not in removed and n != s),
            "lacks the 24 moves into a wall",
        ),
        (
            lambda P, removed: every_pair(P, lambda s, a, n: a not in removed and a != 0),
            "lacks 20 transitions of actions that were not removed",
        ),
        (
            lambda P, removed: tabular_control.Transitions(
                *(np.tile(x, 2) for x in astuple(tabular_control.transitions_without(P, removed)))
            ),
            "appear more than once",
        ),
        (
            lambda P, removed: stay_put(tabular_control.transitions_without(P, removed)),
            "are not where P sends the agent",
        ),
        (lambda P, removed: list(P.shape), "return Transitions(state, action, next_state)"),
    ],
)
def test_a4_data_mistakes_are_named(wrong, message):
    report = a4_failure_mode.check_data(wrong)
    assert not report and message in text(report), text(report)


def test_a4_reference_measure_passes():
    report = a4_failure_mode.check(a4_failure_mode.reference_measure)
    assert report, text(report)


def test_a4_measure_stub_is_reported_not_implemented():
    report = a4_failure_mode.check(not_implemented)
    assert not report and "not implemented" in text(report)


def measure_with(**changes):
    """The reference measure with each key computed by a function of (reference, fit, P, gamma)."""

    def measure(fit, P, gamma):
        reference = a4_failure_mode.reference_measure(fit, P, gamma)
        return dict(reference, **{k: f(reference, fit, P, gamma) for k, f in changes.items()})

    return measure


def greedy_gap(fit, P, gamma, q, truth):
    """Mean over (g, s) of q at the greedy action of q minus ``truth`` there."""
    policy = q.argmax(-1)  # G x S
    at = lambda x: np.take_along_axis(x, policy[..., None], -1)[..., 0]  # noqa: E731
    return float((at(q) - at(truth)).mean())


def exact(fit, P, gamma, q):
    return tabular_control.exact_q(P, q.argmax(-1), fit.rewards, gamma)


def first_head_q(fit):
    return torch.einsum("gsad,gd->gsa", fit.F1, fit.z()).numpy()


def first_head(reference, fit, P, gamma):
    return float(first_head_q(fit)[:, fit.seen].mean())


def seen_only_greedy(fit):
    return np.where(fit.seen, fit.q(), -np.inf)  # G x S x A: only the data's actions can win


def optimal_state_value(reference, fit, P, gamma):
    V = tabular_control.optimal_values(P, fit.rewards, gamma)  # G x S
    return float((fit.q().max(-1) - V).mean())


def optimal_truth(reference, fit, P, gamma):
    V = tabular_control.optimal_values(P, fit.rewards, gamma)  # G x S
    q_star = np.einsum("sat,gt->gsa", P, fit.rewards + gamma * V)  # G x S x A
    return greedy_gap(fit, P, gamma, fit.q(), q_star)


def uniform_truth(reference, fit, P, gamma):
    pi = tabular.uniform_policy(*P.shape[:2])
    q_pi = np.einsum("sat,gt->gsa", tabular.successor_measure(P, pi, gamma), fit.rewards)
    return greedy_gap(fit, P, gamma, fit.q(), q_pi)


def absolute_error(reference, fit, P, gamma):
    q = fit.q()
    policy = q.argmax(-1)
    gap = q.max(-1) - np.take_along_axis(exact(fit, P, gamma, q), policy[..., None], -1)[..., 0]
    return float(np.abs(gap).mean())


def every_action_error(reference, fit, P, gamma):
    q = fit.q()
    return float((q - exact(fit, P, gamma, q)).mean())


def greedy_unseen_count(reference, fit, P, gamma):
    policy = fit.q().argmax(-1)
    return float((~fit.seen[np.arange(fit.seen.shape[0]), policy]).sum())


@pytest.mark.parametrize(
    ("wrong", "key", "message"),
    [
        (
            measure_with(q_seen=lambda r, *_: r["q_unseen"], q_unseen=lambda r, *_: r["q_seen"]),
            "q_seen",
            "seen and unseen are swapped",
        ),
        (measure_with(q_seen=first_head), "q_seen", "first head only"),
        (
            measure_with(greedy_unseen=lambda r, *_: 0.0),
            "greedy_unseen",
            "best of the data's actions only",
        ),
        (
            measure_with(q_greedy=lambda r, fit, P, g: float(seen_only_greedy(fit).max(-1).mean())),
            "q_greedy",
            "best of the data's actions only",
        ),
        (measure_with(overestimate=optimal_state_value), "overestimate", "optimal state values V*"),
        (measure_with(overestimate=optimal_truth), "overestimate", "optimal values Q*"),
        (measure_with(overestimate=uniform_truth), "overestimate", "uniform policy"),
        (measure_with(overestimate=absolute_error), "overestimate", "keep the sign"),
        (measure_with(overestimate=every_action_error), "overestimate", "over every action"),
        (measure_with(greedy_unseen=greedy_unseen_count), "greedy_unseen", "is a count"),
    ],
)
def test_a4_measure_mistakes_are_named(wrong, key, message):
    report = a4_failure_mode.check(wrong)
    assert not report and text(report).startswith(f"A4 part 2, the measures: not yet\n  - {key}")
    assert message in text(report), text(report)


def test_a4_measure_needs_nan_where_nothing_is_missing_and_every_key():
    def zero_if_empty(fit, P, gamma):
        measures = a4_failure_mode.reference_measure(fit, P, gamma)
        return {k: 0.0 if np.isnan(v) else v for k, v in measures.items()}

    report = a4_failure_mode.check(zero_if_empty)
    assert not report and "complete data" in text(report) and "float('nan')" in text(report)
    report = a4_failure_mode.check(measure_with())  # the reference itself
    assert report, text(report)

    def four_keys(fit, P, gamma):
        measures = a4_failure_mode.reference_measure(fit, P, gamma)
        del measures["overestimate"]
        return measures

    report = a4_failure_mode.check(four_keys)
    assert not report and "lack ['overestimate']" in text(report)


def test_a4_reference_experiment_passes_and_keeps_its_numbers():
    def experiment():
        return a4_failure_mode.run_experiment(
            tabular_control.transitions_without, a4_failure_mode.reference_measure
        )

    report = a4_failure_mode.check_experiment(experiment)
    assert report, text(report)
    linear, table = report.result["linear"], report.result["table"]
    # measured: linear 1665 and 15.5 %, table −0.09 and 1 %; nothing can exceed 1/(1 − γ) = 10
    assert linear["overestimate"] > 100 and linear["greedy_unseen"] > 0.05
    assert abs(table["overestimate"]) < 1 and linear["q_unseen"] < linear["q_seen"]


def test_a4_experiment_mistakes_are_named():
    assert "not implemented" in text(a4_failure_mode.check_experiment(not_implemented))
    reference = a4_failure_mode.reference_experiment()
    report = a4_failure_mode.check_experiment(lambda: {"linear": reference["linear"]})
    assert not report and "return a dict with keys ['full', 'table', 'linear']" in text(report)
    report = a4_failure_mode.check_experiment(lambda: dict(reference, linear=reference["full"]))
    assert not report and "run 'linear'" in text(report)
    assert "these are the measures of the run 'full'" in text(report)


# --- A5: MC penalty and the dual step -------------------------------------------------------------


def test_a5_reference_passes():
    report = a5_mc_penalty.check(losses.mc_penalty)
    assert report, text(report)


def test_a5_stub_is_reported_not_implemented():
    report = a5_mc_penalty.check(not_implemented)
    assert not report and "not implemented" in text(report)


def soft_max_mc(soft_max, data=lambda m: m.mean()):
    def penalty(M1_samples, M2_samples, M1_data, M2_data):
        return soft_max(M1_samples) + soft_max(M2_samples) - data(M1_data + M2_data)

    return penalty


def diagonal(m):
    return m.diagonal(dim1=-2, dim2=-1)


def lse(m):
    return torch.logsumexp(m, 0).mean()


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (
            soft_max_mc(lambda m: lse(diagonal(m)), data=lambda m: diagonal(m).mean()),
            "you averaged only the diagonal pairs (i, i)",
        ),
        (soft_max_mc(lse, data=lambda m: diagonal(m).mean()), "data term averages only the diag"),
        (soft_max_mc(lambda m: lse(diagonal(m))), "soft maximum averages only the diagonal"),
        (soft_max_mc(lambda m: m.max(0).values.mean()), "max over the K samples"),
        (soft_max_mc(lambda m: torch.logsumexp(m, 1).mean()), "wrong axis (dim 1"),
        (soft_max_mc(lambda m: torch.logsumexp(m, 2).mean()), "wrong axis (dim 2"),
        (soft_max_mc(lambda m: m.mean()), "mean instead of logsumexp"),
        (soft_max_mc(lambda m: lse(m) - np.log(m.shape[0])), "log-mean-exp"),
        (lambda M1k, M2k, M1, M2: lse(M1k) - M1.mean(), "first head only"),
        (soft_max_mc(lse, data=lambda m: 0 * m.sum()), "data term is missing"),
        (lambda *m: -soft_max_mc(lse)(*m), "sign is flipped"),
        (
            soft_max_mc(lambda m: torch.logsumexp(m, 0).sum(), data=lambda m: m.sum()),
            "summed over the N² pairs",
        ),
        (soft_max_mc(lambda m: m.exp().sum(0).log().mean()), "overflows"),
        (soft_max_mc(lambda m: torch.logsumexp(m, 0).mean(0), data=lambda m: m.mean(0)), "shape"),
        (lambda *m: losses.mc_penalty(*m).item(), "not a torch tensor"),
        (lambda M1k, M2k, M1, M2: losses.mc_penalty(M1k, M2k.detach(), M1, M2), "M2_samples"),
    ],
)
def test_a5_penalty_mistakes_are_named(wrong, message):
    report = a5_mc_penalty.check(wrong)
    assert not report and message in text(report), text(report)


def test_a5_reference_dual_step_passes():
    report = a5_mc_penalty.check_dual_step(dual_step)
    assert report, text(report)


def test_a5_dual_step_stub_is_reported_not_implemented():
    report = a5_mc_penalty.check_dual_step(not_implemented)
    assert not report and "not implemented" in text(report)


def step_with(loss=None, zero_grad=True, step=True, returned="alpha"):
    """A dual step with one ingredient changed: the loss (of log α, P, τ), the zero_grad, the step,
    or what it returns."""
    loss = loss or (lambda log_alpha, p, t: -0.5 * log_alpha.exp() * (p.detach() - t))

    def dual(log_alpha, optimizer, penalty, target):
        before = log_alpha.detach().exp()
        if zero_grad:
            optimizer.zero_grad()
        loss(log_alpha, penalty, target).backward()
        if step:
            optimizer.step()
        return {
            "alpha": log_alpha.detach().exp(),
            "before": before,
            "log_alpha": log_alpha.detach().clone(),
            "attached": log_alpha.exp(),
            "text": "1.0",
        }[returned]

    return dual


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (
            step_with(loss=lambda a, p, t: -0.5 * a.exp() * (p - t)),
            "back-propagated the dual loss into the critic",
        ),
        (step_with(returned="attached"), "carries a gradient"),
        (step_with(step=False), "did not move"),
        (step_with(loss=lambda a, p, t: 0.5 * a.exp() * (p.detach() - t)), "moved the wrong way"),
        (step_with(loss=lambda a, p, t: -0.5 * a * (p.detach() - t)), "log α where α belongs"),
        (step_with(loss=lambda a, p, t: -a.exp() * (p.detach() - t)), "½ of −½ α (P − τ)"),
        (step_with(loss=lambda a, p, t: -0.5 * a.exp() * p.detach()), "budget τ is missing"),
        (step_with(zero_grad=False), "accumulates"),
        (step_with(returned="before"), "from before the step"),
        (step_with(returned="log_alpha"), "you returned log α"),
        (step_with(returned="text"), "cannot take its step"),
    ],
)
def test_a5_dual_step_mistakes_are_named(wrong, message):
    report = a5_mc_penalty.check_dual_step(wrong)
    assert not report and message in text(report), text(report)


def test_a5_no_zero_grad_shows_from_the_second_step():
    report = a5_mc_penalty.check_dual_step(step_with(zero_grad=False))
    assert "at step 2" in text(report)


def test_a5_budget_experiment_holds_a_reachable_budget():
    (run,) = a5_mc_penalty.budget_experiment(budgets=(10.0,), steps=200)
    # measured: the penalty 14.4 at the start, 8.2–13.2 after step 100 (median 10.7); α 1 → 3.2
    assert abs(np.median(run.penalty[100:]) - 10.0) < 3.0 and run.alpha[-1] > 1.0
    assert run.measures["greedy_unseen"] < 0.05 and run.measures["overestimate"] < 1.0


# --- A6: zero-shot task inference -----------------------------------------------------------------


def z_rewards(B_next, rewards):
    return losses.infer_z_from_rewards(B_next, rewards)


def test_a6_reference_passes():
    report = a6_task_inference.check(z_rewards, losses.normalize_to_sphere)
    assert report, text(report)


def test_a6_stubs_are_reported_not_implemented():
    report = a6_task_inference.check(not_implemented, losses.normalize_to_sphere)
    assert not report and "not implemented" in text(report)
    report = a6_task_inference.check(z_rewards, not_implemented)
    assert not report and "not implemented" in text(report)


def mean_of(B_next, rewards):
    return (rewards[:, None] * B_next).mean(0)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (mean_of, "z_r on 50 samples, d = 8 is not the task vector: z is not normalised"),
        (lambda B, r: mean_of(B, r) / mean_of(B, r).norm(), "z has norm 1"),
        (lambda B, r: losses.normalize_to_sphere(B.mean(0)), "the rewards are missing"),
        (lambda B, r: losses.normalize_to_sphere(B[r > 0].mean(0)), "rewards as a 0/1 mask"),
        (lambda B, r: (r[:, None] * B).mean(1), "shape (50,), one number per sample"),
    ],
)
def test_a6_reward_mistakes_are_named(wrong, message):
    report = a6_task_inference.check(wrong, losses.normalize_to_sphere)
    assert not report and message in text(report), text(report)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda B: B, "z_g on one goal, d = 6 is not the task vector: z is not normalised"),
        (lambda B: B / B.norm(dim=-1, keepdim=True), "z has norm 1"),
        (lambda B: B * 6**0.5 / B.norm(), "normalised the batch of goals as one vector"),
    ],
)
def test_a6_goal_mistakes_are_named(wrong, message):
    report = a6_task_inference.check(z_rewards, wrong)
    assert not report and message in text(report), text(report)


@pytest.fixture(scope="module")
def maze_model():
    """The assignment's provided model (trained once per test session: about 15 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    model = a6_task_inference.provided_model()
    torch.set_num_threads(before)
    return model


def library_task_vectors(model, tasks, dataset, how, n, seed):
    return infer_task_vectors(model, tasks, dataset, n, seed, how)


def test_a6_reference_task_vectors_pass(maze_model):
    report = a6_task_inference.check_task_vectors(library_task_vectors)
    assert report, text(report)
    assert "not implemented" in text(a6_task_inference.check_task_vectors(not_implemented))


def labelled_z(index_of, at="next_observation"):
    """Task vectors from labelled samples, the indices of each task drawn by ``index_of(n, size)``
    and B taken at ``at``; goals as the library does."""

    def task_vectors(model, tasks, dataset, how, n, seed):
        if how == "goal":
            return library_task_vectors(model, tasks, dataset, how, n, seed)
        draw = index_of(seed, len(dataset), n)
        rows = []
        for task in tasks:
            sample = dataset.select(draw())
            obs = torch.as_tensor(getattr(sample, at))
            rows.append(model.infer_z_from_rewards(obs, torch.as_tensor(sample.rewards(task))))
        return torch.stack(rows)

    return task_vectors


def fresh(seed, size, n):
    return lambda: np.random.default_rng(seed).integers(0, size, size=n)


def shared(seed, size, n):
    rng = np.random.default_rng(seed)
    return lambda: rng.integers(0, size, size=n)


def without_replacement(seed, size, n):
    return lambda: np.random.default_rng(seed).choice(size, size=n, replace=False)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (labelled_z(fresh, at="observation"), "you evaluated B at the states s of the samples"),
        (labelled_z(shared), "the first task's z is right, the others are not"),
        (labelled_z(without_replacement), "without replacement"),
        (
            lambda m, tasks, d, how, n, s: library_task_vectors(m, tasks, d, how, n, s)[0],
            "has shape (16,), expected (tasks, d) = (4, 16)",
        ),
        (
            lambda m, tasks, d, how, n, s: library_task_vectors(m, tasks, d, how, n, s).flip(0),
            "differs from the library's, first for task",
        ),
    ],
)
def test_a6_task_vector_mistakes_are_named(maze_model, wrong, message):
    report = a6_task_inference.check_task_vectors(wrong)
    assert not report and message in text(report), text(report)


def test_a6_reference_evaluation_passes_and_keeps_its_numbers(maze_model):
    report = a6_task_inference.check_evaluation(a6_task_inference.rollouts)
    assert report, text(report)
    returns, distances = report.result
    assert returns.shape == distances.shape == (4, a6_task_inference.EPISODES)
    assert returns.max() > 1.0  # some reward on the start room's goal: the returns can tell
    assert "not implemented" in text(a6_task_inference.check_evaluation(not_implemented))


@pytest.mark.parametrize("mistake", list(a6_task_inference.ROLLOUT_MISTAKES))
def test_a6_evaluation_mistakes_are_named(maze_model, mistake):
    def wrong(model, domain, z, episodes, seed):
        return a6_task_inference.rollouts(model, domain, z, episodes, seed, mistake)

    report = a6_task_inference.check_evaluation(wrong)
    hint = a6_task_inference.ROLLOUT_MISTAKES[mistake]
    assert not report and hint in text(report), text(report)


def test_a6_noisy_or_malformed_evaluations_are_named(maze_model):
    def noisy(model, domain, z, episodes, seed):
        act = model.act
        model.act = functools.partial(act, noisy=True)  # the exploration noise left on
        try:
            return a6_task_inference.rollouts(model, domain, z, episodes, seed)
        finally:
            model.act = act

    report = a6_task_inference.check_evaluation(noisy)
    assert not report and "gave different returns" in text(report), text(report)
    report = a6_task_inference.check_evaluation(lambda *args: a6_task_inference.rollouts(*args)[0])
    assert not report and "return a pair (returns, final_distance)" in text(report)


# --- A7: judging results --------------------------------------------------------------------------


def test_a7_references_pass():
    for check, reference in (
        (a7_judging_results.check_iqm, stats.iqm),
        (a7_judging_results.check_bootstrap, stats.stratified_bootstrap_ci),
        (a7_judging_results.check_improvement, stats.probability_of_improvement),
    ):
        report = check(reference)
        assert report, text(report)
        assert "not implemented" in text(check(not_implemented))


def trimmed(cut_of, upper=True):
    """A trimmed mean of the pooled scores dropping cut_of(n) at the bottom (and top if upper)."""

    def mean(scores):
        pooled = np.sort(scores.ravel())
        cut = cut_of(len(pooled))
        return float(pooled[cut : len(pooled) - cut if upper else None].mean())

    return mean


def percentile_bounds(scores):
    low, high = np.percentile(scores, [25, 75])
    return float(scores[(scores >= low) & (scores <= high)].mean())


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda s: stats.iqm(s.mean(0)), "you averaged before trimming"),
        (lambda s: np.mean([stats.iqm(c) for c in s.T]), "trimmed each task separately"),
        (lambda s: np.mean([stats.iqm(r) for r in s]), "trimmed each run separately"),
        (trimmed(lambda n: round(n / 4)), "rounded n/4 to the nearest integer"),
        (trimmed(lambda n: -(-n // 4)), "rounded n/4 up"),
        (percentile_bounds, "between the 25th and 75th percentiles"),
        (trimmed(lambda n: n // 4, upper=False), "trimmed the lowest quarter only"),
        (trimmed(lambda n: n // 8), "dropped 12.5 % at each end"),
        (lambda s: float(s.mean()), "that is the mean of all scores"),
        (lambda s: float(np.median(s)), "that is the median"),
        (lambda s: np.sort(s.ravel())[len(s.ravel()) // 4 :], "shape"),
    ],
)
def test_a7_iqm_mistakes_are_named(wrong, message):
    report = a7_judging_results.check_iqm(wrong)
    assert not report and message in text(report), text(report)


def bootstrap_with(resample="stratified", percentiles=None, point="table", rng_seed=None):
    """A bootstrap with one ingredient changed: how it resamples, its percentiles (a function of
    the confidence), its point estimate, or a generator that ignores the seed."""

    def bootstrap(scores, statistic, reps, confidence, seed):
        rng = np.random.default_rng(seed if rng_seed is None else rng_seed())
        runs, tasks = scores.shape
        if resample == "stratified":
            index = rng.integers(0, runs, size=(reps, runs, tasks))
            replicates = np.take_along_axis(scores[None], index, axis=1)
        elif resample == "pooled":
            flat = scores.ravel()
            replicates = flat[rng.integers(0, flat.size, size=(reps, flat.size))].reshape(
                reps, runs, tasks
            )
        elif resample == "rows":
            replicates = scores[rng.integers(0, runs, size=(reps, runs))]
        else:
            replicates = scores[:, rng.integers(0, tasks, size=(reps, tasks))].transpose(1, 0, 2)
        values = np.array([statistic(r) for r in replicates])
        tail = 100 * (1 - confidence) / 2
        low, high = np.percentile(
            values, (percentiles or (lambda c: [tail, 100 - tail]))(confidence)
        )
        estimate = statistic(scores) if point == "table" else float(values.mean())
        return (estimate, low, high) if point != "middle" else (low, statistic(scores), high)

    return bootstrap


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (bootstrap_with("pooled"), "without stratification, resampling the pooled"),
        (bootstrap_with("rows"), "resampled whole runs"),
        (bootstrap_with("tasks"), "resampled the tasks"),
        (bootstrap_with(percentiles=lambda c: [100 * (1 - c), 100 * c]), "percentiles are wrong"),
        (
            bootstrap_with(percentiles=lambda c: [(1 - c) / 2, (1 + c) / 2]),
            "np.percentile takes percents",
        ),
        (bootstrap_with(point="replicates"), "not of the replicates"),
        (bootstrap_with(point="middle"), "the point estimate first"),
        (bootstrap_with(rng_seed=lambda: None), "gave different intervals"),
        (lambda *args: stats.stratified_bootstrap_ci(*args)[1:], "three finite numbers"),
    ],
)
def test_a7_bootstrap_mistakes_are_named(wrong, message):
    report = a7_judging_results.check_bootstrap(wrong)
    assert not report and message in text(report), text(report)


def test_a7_any_correct_stratified_bootstrap_passes():
    other_draws = bootstrap_with(rng_seed=lambda: 12345)  # correct, but not the library's draws
    report = a7_judging_results.check_bootstrap(
        lambda s, f, reps, c, seed: other_draws(s, f, reps, c, seed)
    )
    assert report and "within Monte Carlo error" in text(report), text(report)


def wins(x, y, tie=0.5):
    return (x > y) + tie * (x == y)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda x, y: wins(x[:, None], y[None], 0.0).mean(), "ties count as losses"),
        (lambda x, y: wins(x[:, None], y[None], 1.0).mean(), "ties count as wins"),
        (lambda x, y: wins(x.ravel()[:, None], y.ravel()[None]).mean(), "you pooled the tasks"),
        (lambda x, y: wins(x.mean(0), y.mean(0)).mean(), "compared the tasks' mean scores"),
        (lambda x, y: wins(y[:, None], x[None]).mean(), "the probability that Y improves on X"),
        (lambda x, y: wins(x, y).mean(), "you paired run i of X with run i of Y"),
    ],
)
def test_a7_improvement_mistakes_are_named(wrong, message):
    report = a7_judging_results.check_improvement(wrong)
    assert not report and message in text(report), text(report)


def test_a7_book_results_hold_every_method_of_the_rnd_aggregate():
    tables, aggregate = a7_judging_results.book_results()
    assert set(tables) == set(aggregate["methods"]) and "FB" in tables and "CQL" in tables
    assert all(table.shape == (3, 4) for table in tables.values())
    point, low, high = stats.stratified_bootstrap_ci(tables["CQL"], stats.iqm, reps=10_000, seed=0)
    book = aggregate["methods"]["CQL"]["best"]["aggregates"]["iqm"]
    np.testing.assert_allclose([point, low, high], [book["point"], *book["ci95"]])
