"""The baselines' maths (SF-LAP, GC-IQL, CQL, TD3) against small tensors computed by hand."""

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from zsrl import baseline_losses as bl
from zsrl.data.episodes import episode_bounds, episode_layout


def t(*rows):
    """A float64 tensor from nested lists, to compare with hand arithmetic tightly."""
    return torch.tensor(rows[0] if len(rows) == 1 else rows, dtype=torch.float64)


# --------------------------------------------------------------------------------------------------
# SF-LAP (reference: ref-sf-lap)


def test_laplacian_feature_loss_by_hand():
    phi = t([1.0, 0.0], [0.0, 1.0], [1.0, 1.0])
    phi_next = t([0.0, 0.0], [0.0, 2.0], [1.0, -1.0])
    # smoothness: squared differences 1, 0 | 0, 1 | 0, 4 → 6 over N·d = 6 entries
    smooth = 6 / 6
    # C = φφᵀ = [[1, 0, 1], [0, 1, 1], [1, 1, 2]]; off-diagonal squares 0, 1, 0, 1, 1, 1
    off = 4 / 6
    diag = (1 + 1 + 2) / 3
    assert bl.laplacian_feature_loss(phi, phi_next).item() == pytest.approx(smooth + off - 2 * diag)
    assert bl.laplacian_feature_loss(phi, phi_next, coefficient=0.5).item() == pytest.approx(
        smooth + 0.5 * (off - 2 * diag)
    )


def test_laplacian_feature_loss_loops_and_gradients():
    torch.manual_seed(0)
    phi = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    phi_next = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    p, q = phi.detach().numpy(), phi_next.detach().numpy()
    smooth = sum((p[i, k] - q[i, k]) ** 2 for i in range(4) for k in range(3)) / 12
    off = sum(np.dot(p[i], p[l]) ** 2 for i in range(4) for l in range(4) if i != l) / 12
    diag = sum(np.dot(p[i], p[i]) for i in range(4)) / 4
    loss = bl.laplacian_feature_loss(phi, phi_next)
    assert loss.item() == pytest.approx(smooth + off - 2 * diag)
    loss.backward()
    assert phi.grad is not None and phi_next.grad is not None  # φ learns from both ends


def test_laplacian_feature_loss_shape_mismatch():
    with pytest.raises(ValueError, match=r"phi_next \(3, 2\)"):
        bl.laplacian_feature_loss(torch.zeros(2, 2), torch.zeros(3, 2))


Z = ([1.0, 0.0], [0.0, 1.0], [1.0, 1.0])
PSI1_NEXT = ([2.0, 5.0], [1.0, 3.0], [0.0, 0.0])  # Q̄_1 = 2, 3, 0
PSI2_NEXT = ([1.0, 9.0], [4.0, 4.0], [1.0, -2.0])  # Q̄_2 = 1, 4, −1
PHI_NEXT = ([0.5, 0.0], [0.0, 2.0], [1.0, 1.0])  # φ(s')ᵀz = 0.5, 2, 2


def test_sf_q_target_by_hand():
    # min Q̄ picks heads 2, 1, 2: 1, 3, −1. Row 2 would give −2 with an elementwise min of the vectors.
    y = bl.sf_q_target(t(*PHI_NEXT), t(*PSI1_NEXT), t(*PSI2_NEXT), t(*Z), 0.5)
    assert_close(y, t([0.5 + 0.5 * 1, 2 + 0.5 * 3, 2 + 0.5 * -1]))
    per_row = bl.sf_q_target(t(*PHI_NEXT), t(*PSI1_NEXT), t(*PSI2_NEXT), t(*Z), t([0.0, 1.0, 0.5]))
    assert_close(per_row, t([0.5, 2 + 3, 2 - 0.5]))


def test_sf_q_target_carries_no_gradient():
    phi_next = t(*PHI_NEXT).requires_grad_()
    psi1 = t(*PSI1_NEXT).requires_grad_()
    y = bl.sf_q_target(phi_next, psi1, t(*PSI2_NEXT), t(*Z), 0.9)
    assert not y.requires_grad  # φ(s') detached, ψ̄ is a target


def test_sf_q_target_shape_mismatch():
    with pytest.raises(ValueError, match=r"z \(3, 3\)"):
        bl.sf_q_target(t(*PHI_NEXT), t(*PSI1_NEXT), t(*PSI2_NEXT), torch.zeros(3, 3), 0.9)


def test_sf_q_loss_by_hand_and_target_detached():
    psi1 = t([1.0, 0.0], [0.0, 1.0], [1.0, 1.0]).requires_grad_()  # Q_1 = 1, 1, 2
    psi2 = t([0.0, 0.0], [2.0, 0.0], [1.0, 0.0])  # Q_2 = 0, 0, 1
    target = t([1.0, 2.0, 3.0]).requires_grad_()
    loss = bl.sf_q_loss(psi1, psi2, t(*Z), target)
    assert loss.item() == pytest.approx((0 + 1 + 1) / 3 + (1 + 4 + 4) / 3)
    loss.backward()
    assert psi1.grad is not None and target.grad is None


def test_sf_z_from_features_by_hand():
    # r = φ w exactly with w = (1, 2): rows 1, 2, 1 + 2 = 3
    z = bl.sf_z_from_features(t([1.0, 0.0], [0.0, 1.0], [1.0, 1.0]), t([1.0, 2.0, 3.0]))
    assert_close(z, math.sqrt(2) * t([1.0, 2.0]) / math.sqrt(5))


def test_sf_z_from_features_recovers_known_z():
    g = torch.Generator().manual_seed(1)
    d = 5
    phi = torch.randn(200, d, generator=g, dtype=torch.float64)
    z_true = torch.randn(d, generator=g, dtype=torch.float64)
    z_true = math.sqrt(d) * z_true / z_true.norm()
    z = bl.sf_z_from_features(phi, 3.0 * phi @ z_true)  # noiseless rewards, any positive scale
    assert_close(z, z_true, rtol=1e-10, atol=1e-10)
    # the reward-weighted mean of FB would not recover it
    mean = (3.0 * phi @ z_true)[:, None] * phi
    mean = math.sqrt(d) * mean.mean(0) / mean.mean(0).norm()
    assert (mean - z_true).norm() > 1e-2


def test_sf_z_from_features_is_the_least_squares_solution_of_badly_conditioned_float32_features():
    """Learned features are nearly collinear (condition numbers ~1e7 on the maze): the solution must
    still be the minimiser of ‖φw − r‖, as numpy's SVD least squares in float64 finds it."""
    g = np.random.default_rng(0)
    n, d = 2000, 20
    U, _ = np.linalg.qr(g.standard_normal((n, d)))
    V, _ = np.linalg.qr(g.standard_normal((d, d)))
    phi = (U * np.logspace(0, -6, d)) @ V.T + 0.5  # n x d: one shared direction, tiny singulars
    r = g.standard_normal(n)
    w = np.linalg.lstsq(phi, r, rcond=None)[0]  # float64 SVD
    expected = math.sqrt(d) * w / np.linalg.norm(w)
    phi32 = torch.as_tensor(phi, dtype=torch.float32)
    z = bl.sf_z_from_features(phi32, torch.as_tensor(r, dtype=torch.float32))
    assert z.dtype == torch.float32
    cosine = float(z.double() @ torch.as_tensor(expected)) / d
    assert cosine > 0.99


def test_sf_z_from_features_bad_shapes():
    with pytest.raises(ValueError, match=r"\(4,\)"):
        bl.sf_z_from_features(torch.zeros(3, 2), torch.zeros(4))


def test_sf_goal_z_by_hand():
    z = bl.sf_goal_z(t([3.0, 4.0]), t([0.0, 0.0], [3.0, 0.0]))
    assert_close(z, math.sqrt(2) * t([0.6, 0.8], [0.0, 1.0]))


def test_sf_mix_z_backward_by_hand():
    phi = t([1.0, 0.0], [0.0, 1.0], [1.0, 1.0]).requires_grad_()
    # C = φᵀφ/3 = [[2, 1], [1, 2]]/3, C⁻¹ = [[2, −1], [−1, 2]]; φC⁻¹ = [[2, −1], [−1, 2], [1, 1]]
    s = math.sqrt(2)
    expected = t(
        [2 * s / math.sqrt(5), -s / math.sqrt(5)], [-s / math.sqrt(5), 2 * s / math.sqrt(5)]
    )
    z = bl.sf_mix_z_backward(phi)
    assert_close(z[:2], expected)
    assert_close(z[2], t([1.0, 1.0]))
    assert not z.requires_grad


def test_sf_mix_z_backward_uses_pseudo_inverse():
    # rank-1 features: C = 2·11ᵀ is singular, C⁺ = 11ᵀ/8, so every row points along ±(1, 1)
    z = bl.sf_mix_z_backward(t([1.0, 1.0], [2.0, 2.0], [-1.0, -1.0]))
    assert_close(z, t([1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]))


# --------------------------------------------------------------------------------------------------
# GC-IQL (reference: ref-gciql)


def test_goal_reward_and_mask_exact_equality():
    obs = t([0.0, 0.0], [1.0, 2.0], [3.0, 3.0])
    goal = t([0.0, 0.0], [1.0, 2.0 + 1e-9], [3.0, 3.0])
    reward, mask = bl.goal_reward_and_mask(obs, goal)
    assert_close(reward, t([0.0, -1.0, 0.0]))
    assert_close(mask, t([0.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match=r"goal \(3, 3\)"):
        bl.goal_reward_and_mask(obs, torch.zeros(3, 3, dtype=torch.float64))


IQL = dict(
    reward=[-1.0, 0.0, -1.0],
    mask=[1.0, 0.0, 1.0],
    target_v1_next=[-2.0, 5.0, 0.0],
    target_v2_next=[-4.0, 7.0, 2.0],
    target_v1=[-3.0, -1.0, 0.0],
    target_v2=[-1.0, -1.0, -2.0],
    v1=[0.0, 0.0, 0.0],
    v2=[-1.0, 1.0, 0.0],
)


def iql_by_loops(gamma, tau):
    """The expectile loss and dL/dV_1 written out with plain Python loops."""
    x = IQL
    loss, grad_v1 = 0.0, []
    for i in range(3):
        b = gamma * x["mask"][i]
        nmin = min(x["target_v1_next"][i], x["target_v2_next"][i])
        adv = x["reward"][i] + b * nmin - (x["target_v1"][i] + x["target_v2"][i]) / 2
        w = tau if adv > 0 else 1 - tau
        q1 = x["reward"][i] + b * x["target_v1_next"][i]
        q2 = x["reward"][i] + b * x["target_v2_next"][i]
        loss += (w * (q1 - x["v1"][i]) ** 2 + w * (q2 - x["v2"][i]) ** 2) / 3
        grad_v1.append(-2 * w * (q1 - x["v1"][i]) / 3)
    return loss, grad_v1


def test_expectile_value_loss_by_hand():
    # advantages: −1 + 0.5·(−4) + 2 = −1 (w 0.3); 0 + 0 + 1 = 1 (w 0.7); −1 + 0 + 1 = 0 (tie: w 0.3)
    # q_1 = −2, 0, −1; q_2 = −3, 0, 0
    # L = (0.3·4 + 0.7·0 + 0.3·1)/3 + (0.3·4 + 0.7·1 + 0.3·0)/3
    x = {k: t(v) for k, v in IQL.items()}
    for k in ("target_v1_next", "target_v2_next", "target_v1", "target_v2"):
        x[k].requires_grad_()
    x["v1"].requires_grad_()
    loss = bl.expectile_value_loss(**x, discount=0.5, expectile=0.7)
    assert loss.item() == pytest.approx(1.5 / 3 + 1.9 / 3)
    expected_loss, expected_grad = iql_by_loops(0.5, 0.7)
    assert loss.item() == pytest.approx(expected_loss)
    loss.backward()
    assert_close(x["v1"].grad, t(expected_grad))  # = 0.4, 0, 0.2
    assert all(
        x[k].grad is None for k in ("target_v1_next", "target_v2_next", "target_v1", "target_v2")
    )


def test_expectile_value_loss_bad_input():
    x = {k: t(v) for k, v in IQL.items()}
    with pytest.raises(ValueError, match="1.5"):
        bl.expectile_value_loss(**x, discount=0.5, expectile=1.5)
    x["mask"] = t([1.0, 0.0])
    with pytest.raises(ValueError, match=r"mask \(2,\)"):
        bl.expectile_value_loss(**x, discount=0.5, expectile=0.7)


def test_awr_weights_by_hand():
    v_mean = t([0.0, 2.0, 0.0]).requires_grad_()
    w = bl.awr_weights(t([0.0, 1.0, 10.0]), v_mean, temperature=1.0)
    assert_close(w, t([1.0, math.exp(-1.0), 100.0]))
    assert not w.requires_grad
    w = bl.awr_weights(t([0.0, 1.0, 10.0]), v_mean, temperature=0.5, max_weight=200.0)
    assert_close(w, t([1.0, math.exp(-0.5), math.exp(5.0)]))


def test_awr_actor_loss_by_hand():
    assert bl.awr_actor_loss(t([-1.0, -2.0]), t([1.0, 3.0])).item() == pytest.approx((1 + 6) / 2)
    per_dim = t([-1.0, -1.0], [0.0, -2.0])
    assert bl.awr_actor_loss(per_dim, t([2.0, 1.0])).item() == pytest.approx((2 + 2 + 0 + 2) / 4)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        bl.awr_actor_loss(t([-1.0, -2.0]), t([1.0, 1.0, 1.0]))


# Three episodes of lengths 10, 300 and 2000, contiguous in the arrays.
EPISODES = np.repeat([7, 3, 5], [10, 300, 2000])
START = np.repeat([0, 10, 310], [10, 300, 2000])
END = np.repeat([9, 309, 2309], [10, 300, 2000])


def test_goal_sampler_proportions_and_episodes():
    rng = np.random.default_rng(0)
    index = rng.integers(0, EPISODES.size, size=20_000)
    goal, source = bl.sample_goal_indices(EPISODES, index, rng)
    for code, p in ((bl.GOAL_FUTURE, 0.5), (bl.GOAL_RANDOM, 0.3), (bl.GOAL_CURRENT, 0.2)):
        assert (source == code).mean() == pytest.approx(p, abs=0.02)
    assert np.all(EPISODES[goal] == EPISODES[index])  # every goal in the transition's episode
    assert np.all((goal >= START[index]) & (goal <= END[index]))
    future = source == bl.GOAL_FUTURE
    at_end = index == END[index]
    assert np.all(goal[future & ~at_end] > index[future & ~at_end])  # strictly later
    assert np.all(goal[future & at_end] == index[future & at_end])  # capped at the episode end
    assert np.all(goal[source == bl.GOAL_CURRENT] == index[source == bl.GOAL_CURRENT])
    # in the 10-step episode, Geometric(0.01) steps nearly always overshoot: goals pile up at index 9
    short = future & (index < 10)
    assert (goal[short] == 9).mean() > 0.9
    # random goals cover the episode, before and after t
    rand = source == bl.GOAL_RANDOM
    assert np.any(goal[rand] < index[rand]) and np.any(goal[rand] > index[rand])


def test_goal_sampler_geometric_offsets_and_uniform_random():
    rng = np.random.default_rng(1)
    long_episode = np.zeros(100_000, dtype=np.int64)
    goal, source = bl.sample_goal_indices(
        long_episode, np.zeros(20_000, dtype=np.int64), rng, 1.0, 0.0, 0.0
    )
    assert np.all(source == bl.GOAL_FUTURE) and goal.min() >= 1
    assert goal.mean() == pytest.approx(1 / 0.01, rel=0.03)  # E[Geometric(p)] = 1/p
    four = np.zeros(4, dtype=np.int64)
    goal, _ = bl.sample_goal_indices(four, np.full(20_000, 2), rng, 0.0, 1.0, 0.0)
    assert np.bincount(goal, minlength=4) / 20_000 == pytest.approx([0.25] * 4, abs=0.02)


def test_goal_sampler_resamples_every_call():
    rng = np.random.default_rng(2)
    index = np.arange(0, 2310, 7)
    first = bl.sample_goal_indices(EPISODES, index, rng).goal
    second = bl.sample_goal_indices(EPISODES, index, rng).goal
    assert not np.array_equal(first, second)
    again = bl.sample_goal_indices(EPISODES, index, np.random.default_rng(2)).goal
    assert np.array_equal(first, again)  # reproducible from the generator's seed


@pytest.mark.parametrize("with_steps", [False, True])
def test_goal_sampler_with_precomputed_layout_matches(with_steps):
    bounds = episode_bounds(EPISODES)
    assert np.array_equal(bounds[0], START) and np.array_equal(bounds[1], END)
    steps = np.arange(EPISODES.size) - START if with_steps else None  # n
    steps = None if steps is None else steps * 2  # gaps: k steps later is not k rows later
    index = np.random.default_rng(3).integers(0, EPISODES.size, size=5000)
    plain = bl.sample_goal_indices(EPISODES, index, np.random.default_rng(4), timesteps=steps)
    layout = episode_layout(EPISODES, steps)
    given = bl.sample_goal_indices(None, index, np.random.default_rng(4), layout=layout)
    assert np.array_equal(plain.goal, given.goal) and np.array_equal(plain.source, given.source)
    with pytest.raises(ValueError, match="exactly one"):
        bl.sample_goal_indices(EPISODES, index, np.random.default_rng(4), layout=layout)
    with pytest.raises(ValueError, match="exactly one"):
        bl.sample_goal_indices(None, index, np.random.default_rng(4))


def test_goal_sampler_bad_input():
    rng = np.random.default_rng(0)
    index = np.array([0, 1])
    with pytest.raises(ValueError, match=r"0\.6"):
        bl.sample_goal_indices(EPISODES, index, rng, p_future=0.6)
    with pytest.raises(ValueError, match=r"-0\.1"):
        bl.sample_goal_indices(EPISODES, index, rng, 0.8, 0.3, -0.1)
    with pytest.raises(ValueError, match=r"episode ids \[0\] are split"):
        bl.sample_goal_indices(np.array([0, 0, 1, 1, 0]), index, rng)
    with pytest.raises(ValueError, match=r"indices \[1\]"):
        steps = np.array([0, 1, 0, 0, 1])  # episode 0 goes back in time after index 1
        bl.sample_goal_indices(np.array([0, 0, 0, 1, 1]), index, rng, timesteps=steps)
    with pytest.raises(ValueError, match="max 2310"):
        bl.sample_goal_indices(EPISODES, np.array([0, 2310]), rng)
    with pytest.raises(ValueError, match="geometric_p"):
        bl.sample_goal_indices(EPISODES, index, rng, geometric_p=0.0)


# --------------------------------------------------------------------------------------------------
# CQL on SAC (reference: ref-cql)


def test_cql_penalty_by_hand():
    q_samples = t([0.0, 2.0], [0.0, -1.0])  # K = 2 samples, N = 2 states
    q_data = t([0.0, 1.0]).requires_grad_()
    # state 0: logsumexp(0, 0, 0) − 0 = ln 3; state 1: logsumexp(2, −1, 1) − 1 (Q(s, a) joins the set)
    expected = (math.log(3) + math.log(math.exp(2) + math.exp(-1) + math.exp(1)) - 1) / 2
    penalty = bl.cql_penalty(q_samples, q_data)
    assert penalty.item() == pytest.approx(expected)
    penalty.backward()
    softmax_data = math.exp(1) / (math.exp(2) + math.exp(-1) + math.exp(1))
    assert_close(q_data.grad, t([(1 / 3 - 1) / 2, (softmax_data - 1) / 2]))


def test_cql_penalty_never_negative_and_bad_shapes():
    torch.manual_seed(0)
    assert bl.cql_penalty(torch.randn(9, 50), torch.randn(50) * 10).item() >= 0.0
    with pytest.raises(ValueError, match=r"\(9, 4\) and \(5,\)"):
        bl.cql_penalty(torch.zeros(9, 4), torch.zeros(5))


def test_sac_critic_target_by_hand_with_terminal():
    alpha = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    q1_next = t([1.0, 5.0, 2.0]).requires_grad_()
    y = bl.sac_critic_target(
        q1_next,
        q2_next=t([3.0, 4.0, 2.0]),
        next_log_prob=t([-1.0, 2.0, 0.0]),
        reward=t([1.0, 0.0, -1.0]),
        not_done=t([1.0, 1.0, 0.0]),  # the last transition is terminal: no bootstrap at all
        discount=0.5,
        entropy_alpha=alpha,
    )
    # soft values: 1 + 0.1, 4 − 0.2, (2 − 0); y = r + 0.5·not_done·soft
    assert_close(y, t([1 + 0.5 * 1.1, 0 + 0.5 * 3.8, -1.0]))
    assert not y.requires_grad


def test_sac_actor_loss_by_hand():
    q1 = t([1.0, 5.0]).requires_grad_()
    alpha = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    loss = bl.sac_actor_loss(q1, t([2.0, 3.0]), t([-1.0, 0.5]), alpha)
    assert loss.item() == pytest.approx(((0.2 * -1 - 1) + (0.2 * 0.5 - 3)) / 2)
    loss.backward()
    assert_close(q1.grad, t([-0.5, 0.0]))  # only where Q_1 is the smaller critic
    assert alpha.grad is None
    with pytest.raises(ValueError, match=r"log_prob \(3,\)"):
        bl.sac_actor_loss(q1, t([2.0, 3.0]), t([1.0, 2.0, 3.0]), 0.2)


def test_sac_temperature_loss_by_hand():
    log_alpha = torch.tensor(math.log(0.1), dtype=torch.float64, requires_grad=True)
    log_prob = t([1.0, -3.0]).requires_grad_()
    # entropy −log π = −1, 3; minus the target −2: 1, 5 → mean 3, times α = 0.1
    loss = bl.sac_temperature_loss(log_alpha, log_prob, target_entropy=-2.0)
    assert loss.item() == pytest.approx(0.3)
    loss.backward()
    assert log_alpha.grad.item() == pytest.approx(0.3)  # entropy above target: descent lowers α
    assert log_prob.grad is None
    log_alpha.grad = None
    bl.sac_temperature_loss(log_alpha, t([5.0, 5.0]), -2.0).backward()
    assert log_alpha.grad.item() == pytest.approx(-0.3)  # entropy below target: α rises


# --------------------------------------------------------------------------------------------------
# Offline TD3 (reference: ref-td3)


def test_td3_critic_target_by_hand():
    q1_next = t([1.0, 4.0, 2.0]).requires_grad_()
    args = dict(q2_next=t([2.0, 3.0, 2.0]), reward=t([0.0, 1.0, 1.0]), not_done=t([1.0, 1.0, 0.0]))
    y = bl.td3_critic_target(q1_next, discount=0.9, **args)
    assert_close(y, t([0.9 * 1, 1 + 0.9 * 3, 1.0]))
    assert not y.requires_grad
    y = bl.td3_critic_target(q1_next, discount=t([0.5, 0.0, 0.9]), **args)
    assert_close(y, t([0.5, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"not_done \(2,\)"):
        bl.td3_critic_target(q1_next, args["q2_next"], args["reward"], t([1.0, 1.0]), 0.9)


def test_td3_actor_loss_and_double_q_mse():
    q = t([1.0, 2.0, 6.0]).requires_grad_()
    loss = bl.td3_actor_loss(q)
    assert loss.item() == pytest.approx(-3.0)
    loss.backward()
    assert_close(q.grad, t([-1 / 3] * 3))
    target = t([1.0, 1.0, 1.0]).requires_grad_()
    mse = bl.double_q_mse(t([1.0, 2.0, 3.0]), t([0.0, 1.0, 1.0]), target)
    assert mse.item() == pytest.approx((0 + 1 + 4) / 3 + (1 + 0 + 0) / 3)
    assert not mse.requires_grad  # the target is detached and the critics here carry no gradient


def test_future_goals_count_time_steps_where_rows_have_gaps():
    """After a subsample, rows of an episode skip time steps: "k steps later" must count time."""
    episode = np.repeat([0, 1], 6)  # 12 rows, two episodes
    steps = np.array([0, 5, 10, 15, 20, 25, 0, 1, 2, 3, 4, 5])  # episode 0 kept every 5th step
    rng = np.random.default_rng(0)
    index = np.zeros(4000, dtype=np.int64)  # always the first row (step 0) of episode 0
    goals = bl.sample_goal_indices(
        episode, index, rng, 1.0, 0.0, 0.0, geometric_p=0.2, timesteps=steps
    ).goal
    offsets = np.random.default_rng(0).geometric(0.2, size=index.size)  # the same draws
    # the first kept row at least k steps later: step 5 for k <= 5, step 10 for k in 6..10, ...
    expected = np.minimum(np.ceil(offsets / 5).astype(np.int64), 5)
    np.testing.assert_array_equal(goals, expected)
    # without timesteps, row arithmetic would have taken k rows (k·5 steps) later
    rows = bl.sample_goal_indices(episode, index, np.random.default_rng(0), 1.0, 0.0, 0.0, 0.2).goal
    assert (rows >= goals).all() and (rows > goals).any()
    # goals never leave the episode, also from its last row
    last = bl.sample_goal_indices(
        episode, np.full(100, 5), np.random.default_rng(1), 1.0, 0.0, 0.0, 0.2, timesteps=steps
    ).goal
    assert (last == 5).all()
