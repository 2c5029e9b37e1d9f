"""The course assignments' checkers: the reference passes, stubs and typical mistakes get named."""

import functools

import numpy as np
import pytest
import torch

from zsrl import losses, tabular
from zsrl.assignments import Report, a1_successor_measure, a2_fb_loss, a3_vc_penalty, call

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
