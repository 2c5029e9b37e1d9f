"""Exact successor measures on gridworlds, and tabular FB recovering them."""

import numpy as np
import pytest
import torch

from zsrl import losses, tabular

GAMMA = 0.85
FB_TOLERANCE = 0.01  # measured ≤ 1e-3 (γ 0.8–0.9, several seeds); broken losses give ≥ 0.6


@pytest.fixture(scope="module")
def world():
    g = tabular.four_rooms()
    P = g.transition_matrix()  # S x A x S
    pi = tabular.uniform_policy(g.n_states, g.n_actions)  # S x A
    return g, P, pi


def random_policy(n_states, n_actions, seed=0):
    return np.random.default_rng(seed).dirichlet(np.ones(n_actions), size=n_states)  # S x A


# --- gridworld -------------------------------------------------------------------------------------


def test_four_rooms_layout(world):
    g, P, _ = world
    assert g.n_states == 40 and g.n_actions == 4
    assert P.shape == (40, 4, 40)
    assert tabular.four_rooms(5).n_states == 20
    for s in range(g.n_states):
        assert g.state(*g.cell(s)) == s
    with pytest.raises(ValueError):
        g.state(0, 3)  # a wall


def test_image_puts_values_on_free_cells_and_nan_on_walls(world):
    g = world[0]
    image = g.image(np.arange(g.n_states, dtype=float))
    assert image.shape == (g.height, g.width)
    assert np.isnan(image).sum() == g.height * g.width - g.n_states
    for state, (row, col) in enumerate(g.free_cells):
        assert image[row, col] == state


def test_transition_rows_are_one_hot(world):
    _, P, _ = world
    np.testing.assert_allclose(P.sum(-1), 1.0)
    assert set(np.unique(P)) == {0.0, 1.0}


def test_moves_walls_and_edges(world):
    g, P, _ = world
    up, down, left, right = range(4)

    def nxt(r, c, a):
        return g.cell(P[g.state(r, c), a].argmax())

    # (0, 2) has the wall (0, 3) on its right and the edge above: both leave it in place
    assert nxt(0, 2, right) == (0, 2)
    assert nxt(0, 2, up) == (0, 2)
    assert nxt(0, 2, left) == (0, 1)
    assert nxt(0, 2, down) == (1, 2)
    # (1, 3) is a door: it opens left and right, walls above and below
    assert nxt(1, 3, left) == (1, 2) and nxt(1, 3, right) == (1, 4)
    assert nxt(1, 3, up) == (1, 3) and nxt(1, 3, down) == (1, 3)


def test_every_cell_is_the_next_state_of_four_pairs(world):
    # each direction either enters x from a free neighbour or bumps from x: c_x = 4 for every x
    _, P, _ = world
    _, _, s_next = tabular.exhaustive_transitions(P)
    assert np.all(np.bincount(s_next, minlength=P.shape[0]) == 4)


# --- exact measures --------------------------------------------------------------------------------


def test_policy_matrix(world):
    _, P, _ = world
    pi = random_policy(P.shape[0], P.shape[1])
    P_pi = tabular.policy_matrix(P, pi)
    np.testing.assert_allclose(P_pi.sum(-1), 1.0)
    s = 7
    np.testing.assert_allclose(P_pi[s], sum(pi[s, a] * P[s, a] for a in range(4)))


def test_successor_measure_is_the_power_series(world):
    _, P, _ = world
    pi = random_policy(P.shape[0], P.shape[1], seed=1)
    M = tabular.successor_measure(P, pi, GAMMA)
    P_pi = tabular.policy_matrix(P, pi)
    series, term = np.zeros_like(M), P.copy()  # term = γᵗ P_sa P_piᵗ
    for _ in range(300):  # 0.85³⁰⁰ ≈ 1e-21
        series += term
        term = GAMMA * term @ P_pi
    np.testing.assert_allclose(M, series, atol=1e-10)
    np.testing.assert_allclose(M.sum(-1), 1 / (1 - GAMMA))
    assert M.min() >= 0


def test_state_successor_measure_identity():
    rng = np.random.default_rng(0)
    P = rng.random((6, 6))
    P /= P.sum(-1, keepdims=True)  # a random stochastic matrix
    M = tabular.state_successor_measure(P, 0.7)
    np.testing.assert_allclose(M @ (np.eye(6) - 0.7 * P), P, atol=1e-12)  # M(I − γP) = P
    np.testing.assert_allclose(M, P + 0.7 * P @ M, atol=1e-12)  # M = P + γPM
    np.testing.assert_allclose(M.sum(-1), 1 / (1 - 0.7))


def test_state_measure_is_policy_average_of_action_measure(world):
    _, P, _ = world
    pi = random_policy(P.shape[0], P.shape[1], seed=2)
    M = tabular.successor_measure(P, pi, GAMMA)
    M_pi = tabular.state_successor_measure(tabular.policy_matrix(P, pi), GAMMA)
    np.testing.assert_allclose(np.einsum("sa,sat->st", pi, M), M_pi, atol=1e-10)


def test_q_values_satisfy_bellman_with_reward_on_arrival(world):
    g, P, _ = world
    pi = random_policy(P.shape[0], P.shape[1], seed=3)
    reward = np.random.default_rng(4).normal(size=g.n_states)  # S
    Q = tabular.q_values(tabular.successor_measure(P, pi, GAMMA), reward)  # S x A
    V = (pi * Q).sum(-1)  # S
    np.testing.assert_allclose(Q, P @ (reward + GAMMA * V), atol=1e-10)
    # a goal reward: Q is the discounted visits to the goal, largest when stepping onto it
    goal = g.state(0, 0)
    Q_goal = tabular.q_values(tabular.successor_measure(P, pi, GAMMA), np.eye(g.n_states)[goal])
    assert Q_goal[g.state(0, 1)].argmax() == 2  # left, from the goal's right neighbour


def test_exhaustive_transitions(world):
    _, P, _ = world
    s, a, s_next = tabular.exhaustive_transitions(P)
    assert len(s) == P.shape[0] * P.shape[1]
    assert len(set(zip(s.tolist(), a.tolist(), strict=True))) == len(s)  # every pair exactly once
    assert np.all(P[s, a, s_next] == 1.0)
    with pytest.raises(ValueError):
        tabular.exhaustive_transitions(np.full((2, 1, 2), 0.5))


# --- tabular FB ------------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.8, 0.9])
def test_fit_fb_recovers_the_measure(world, one_thread, gamma):
    _, P, pi = world
    M = tabular.successor_measure(P, pi, gamma)
    fit = tabular.fit_fb(P, pi, gamma)
    S, A = P.shape[:2]
    assert fit.F1.shape == fit.F2.shape == (S, A, S) and fit.B.shape == (S, S)
    assert fit.M_hat.shape == M.shape
    assert tabular.relative_error(fit.M_hat, M) < FB_TOLERANCE
    # both heads reach the same measure
    assert tabular.relative_error(fit.measure(fit.rho_loo), M) < FB_TOLERANCE
    F2_measure = torch.einsum("sad,td->sat", fit.F2, fit.B).numpy() * fit.rho_loo
    assert tabular.relative_error(F2_measure, M) < FB_TOLERANCE


def test_fit_fb_naive_density_has_the_leave_one_out_bias(world, one_thread):
    # with ρ = c/N instead of ρ_loo = (c − 1)/(N − 1), F Bᵀ ρ = M · c(N − 1)/(N(c − 1)): c = 4 here
    _, P, pi = world
    fit = tabular.fit_fb(P, pi, GAMMA, seed=1)
    M = tabular.successor_measure(P, pi, GAMMA)
    N, c = P.shape[0] * P.shape[1], 4
    np.testing.assert_allclose(fit.rho, 1 / P.shape[0])
    np.testing.assert_allclose(fit.rho_loo, (c - 1) / (N - 1))
    factor = c * (N - 1) / (N * (c - 1))  # ≈ 4/3
    assert tabular.relative_error(fit.measure(fit.rho), M) > 0.3
    assert tabular.relative_error(fit.measure(fit.rho), factor * M) < FB_TOLERANCE


def test_leave_one_out_density_of_unseen_and_once_seen_states():
    # counts 3, 2, 0 of states 0, 1, 2 among N = 5: (c − 1)/(N − 1), and 0 (not −1/4) when unseen
    rho = tabular.leave_one_out_density(np.array([0, 0, 0, 1, 1]), n_states=3)
    np.testing.assert_allclose(rho, [2 / 4, 1 / 4, 0.0])
    with pytest.raises(ValueError, match=r"next states \[2\] occur exactly once"):
        tabular.leave_one_out_density(np.array([0, 0, 1, 1, 2]), n_states=3)


def test_fit_fb_with_a_non_uniform_policy(world, one_thread):
    _, P, _ = world
    pi = random_policy(P.shape[0], P.shape[1], seed=5)
    fit = tabular.fit_fb(P, pi, GAMMA, seed=2)
    assert tabular.relative_error(fit.M_hat, tabular.successor_measure(P, pi, GAMMA)) < FB_TOLERANCE


def half_discount_loss(F1, F2, B_next, target_M, discount):
    return losses.fb_measure_loss(F1, F2, B_next, target_M, 0.5 * discount)


def no_diagonal_loss(F1, F2, B_next, target_M, discount):
    out = losses.fb_measure_loss(F1, F2, B_next, target_M, discount)
    return losses.FBLoss(out.off_diag, out.off_diag, torch.zeros(()))


@pytest.mark.parametrize("broken", [half_discount_loss, no_diagonal_loss])
def test_fit_fb_with_a_broken_loss_misses_the_measure(world, one_thread, broken):
    _, P, pi = world
    fit = tabular.fit_fb(P, pi, GAMMA, loss_fn=broken)
    # measured: 0.60 with γ/2 in the target, 1.00 without the positive diagonal term
    assert tabular.relative_error(fit.M_hat, tabular.successor_measure(P, pi, GAMMA)) > 0.3
