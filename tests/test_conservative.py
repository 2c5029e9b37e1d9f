"""Conservative FB: the penalties by hand, the Lagrange multiplier, the action samples, the probe."""

import math

import pytest
import torch
from test_agent import random_batch  # tests/ is on sys.path under pytest

from zsrl import losses
from zsrl.agents import ConservativeFBAgent, FBAgent, build_agent
from zsrl.config import ConservativeConfig, apply_overrides, preset
from zsrl.model import FBModel
from zsrl.train import Trainer

CFG = preset("vcfb", "point_mass_maze", "quick").agent


def agent_for(method, seed=0, cfg=None):
    cfg = cfg or preset(method, "point_mass_maze", "quick").agent
    torch.manual_seed(seed)
    return build_agent(method, cfg, 4, 2)


# ----------------------------------------------------------------------------- penalties by hand
def test_vc_penalty_by_hand():
    # K = 2 samples, N = 2 states; head 2 equals head 1 shifted by 1
    Q1k = torch.tensor([[0.0, 1.0], [2.0, 1.0]])  # K x N
    Q1 = torch.tensor([0.5, -1.0])
    lse = [math.log(math.exp(0) + math.exp(2)), math.log(2 * math.exp(1))]
    expected_head1 = (lse[0] + lse[1]) / 2 - (0.5 - 1.0) / 2
    expected = expected_head1 + (expected_head1 + 1 - 1)  # LSE(Q + 1) = LSE(Q) + 1, data + 1
    got = losses.vc_penalty(Q1k, Q1k + 1, Q1, Q1 + 1)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_vc_penalty_of_equal_samples_is_log_k_per_head():
    Q = torch.randn(5)
    samples = Q.expand(12, 5)
    assert losses.vc_penalty(samples, samples, Q, Q).item() == pytest.approx(2 * math.log(12))


def test_mc_penalty_by_hand_averages_all_pairs():
    # K = 2, N = 2: M1k[k, i, l]
    M1k = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 1.0], [0.0, 3.0]]])
    M1 = torch.tensor([[0.0, 1.0], [0.0, 2.0]])
    lse = torch.tensor(
        [
            [math.log(1 + math.e), math.log(2 * math.e)],
            [math.log(math.exp(2) + 1), math.log(2 * math.exp(3))],
        ]
    )
    head = lse.mean().item() - M1.mean().item()  # off-diagonal pairs count too
    zeros = torch.zeros(2, 2, 2)
    expected = head + math.log(2)  # head 2 is all zeros: LSE = log 2, data 0
    got = losses.mc_penalty(M1k, zeros, M1, zeros[0])
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_masked_vc_penalty_uses_only_masked_rows():
    torch.manual_seed(0)
    Q1k, Q2k, Q1, Q2 = torch.randn(4, 6), torch.randn(4, 6), torch.randn(6), torch.randn(6)
    everything = torch.ones(6, dtype=torch.bool)
    assert losses.masked_vc_penalty(Q1k, Q2k, Q1, Q2, everything).item() == pytest.approx(
        losses.vc_penalty(Q1k, Q2k, Q1, Q2).item(), rel=1e-6
    )
    rows = torch.tensor([True, False, True, False, False, False])
    subset = losses.vc_penalty(Q1k[:, rows], Q2k[:, rows], Q1[rows], Q2[rows])
    assert losses.masked_vc_penalty(Q1k, Q2k, Q1, Q2, rows).item() == pytest.approx(
        subset.item(), rel=1e-6
    )
    none = torch.zeros(6, dtype=torch.bool)
    assert losses.masked_vc_penalty(Q1k, Q2k, Q1, Q2, none).item() == 0.0


def test_lagrange_loss_gradient_sign():
    log_alpha = torch.zeros((), requires_grad=True)
    losses.lagrange_alpha_loss(log_alpha, torch.tensor(80.0), 50.0).backward()
    assert log_alpha.grad.item() == pytest.approx(-0.5 * 30)  # descent raises α
    log_alpha.grad = None
    losses.lagrange_alpha_loss(log_alpha, torch.tensor(20.0), 50.0).backward()
    assert log_alpha.grad.item() == pytest.approx(0.5 * 30)  # descent lowers α


# ------------------------------------------------------------------------------------ the agent
@pytest.mark.parametrize("penalty, rises", [(100.0, True), (10.0, False)])
def test_alpha_rises_above_the_budget_and_falls_below(penalty, rises):
    agent = agent_for("vcfb")
    alphas = [agent.multiplier.step(torch.tensor(penalty)).item() for _ in range(50)]
    steps = torch.tensor(alphas).diff()
    assert bool(torch.all(steps > 0)) if rises else bool(torch.all(steps < 0))


def test_dual_step_leaves_the_critics_graph_alone():
    from zsrl.agents.base import dual_step

    leaf = torch.full((3,), 10.0, requires_grad=True)  # stands for the critic's parameters
    penalty = (leaf**2).sum()  # 300, above the budget
    log_alpha = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.SGD([log_alpha], lr=0.01)
    alpha = dual_step(log_alpha, optimizer, penalty, 50.0)
    assert leaf.grad is None  # nothing flowed into the critic
    assert log_alpha.item() == pytest.approx(0.01 * 0.5 * 250)  # SGD: −lr · (−½ α (P − τ))
    assert alpha.item() == pytest.approx(math.exp(log_alpha.item())) and not alpha.requires_grad
    (alpha * penalty).backward()  # the critic's step still has its graph
    torch.testing.assert_close(leaf.grad, alpha * 2 * leaf.detach())


def test_fixed_alpha_does_not_move():
    cfg = apply_overrides(
        preset("vcfb", "point_mass_maze", "quick"), ["agent.conservative.lagrange=False"]
    ).agent
    agent = agent_for("vcfb", cfg=cfg)
    for _ in range(3):
        metrics = agent.update(random_batch())
    assert metrics["alpha"].item() == pytest.approx(0.01)
    assert agent.log_alpha.item() == 0.0


def test_conservative_presets():
    for method in ("vcfb", "mcfb", "dvcfb"):
        cfg = preset(method, "point_mass_maze", "paper").agent
        # reference: ref-conservative-hyperparameters
        assert cfg.lr_actor == 3e-5 and cfg.lr_fb == 1e-4
        c = cfg.conservative
        assert (c.action_samples, c.ood_action_weight, c.target_penalty) == (12, 0.5, 50.0)
        assert c.lagrange and c.log_alpha_init == 0.0 and c.alpha == 0.01
    assert preset("fb", "point_mass_maze", "paper").agent.lr_actor == 1e-4
    assert ConservativeConfig().sample_counts() == (6, 2)
    assert ConservativeConfig(action_samples=8, ood_action_weight=0.25).sample_counts() == (2, 2)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["agent.conservative.ood_action_weight=0.3"], "valid choices"),
        (["agent.conservative.action_samples=13"], "does not split"),
    ],
)
def test_bad_sample_counts_are_clear_errors(overrides, message):
    cfg = apply_overrides(preset("mcfb", "point_mass_maze", "quick"), overrides)
    with pytest.raises(ValueError, match=message):
        cfg.validate()


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"'cfb'.*valid choices: \['fb', 'vcfb'"):
        build_agent("cfb", CFG, 4, 2)
    with pytest.raises(ValueError, match="'cfb'.*valid choices"):
        ConservativeFBAgent(FBModel(4, 2, CFG), CFG, "cfb")
    with pytest.raises(ValueError, match="vcfb"):
        preset("vc-fb")


def test_build_agent_types():
    assert type(agent_for("fb")) is FBAgent
    for method in ("vcfb", "mcfb", "dvcfb"):
        agent = agent_for(method)
        assert isinstance(agent, ConservativeFBAgent) and agent.method == method


def test_action_samples_come_from_the_right_sources():
    agent = agent_for("vcfb")
    batch = random_batch(n=2000)
    mean = torch.full((2000, 2), 0.5)
    next_mean = torch.full((2000, 2), -0.5)
    at_s, at_next = agent.sample_actions(batch, mean, next_mean)
    assert at_s.shape == (6 + 2, 2000, 2) and at_next.shape == (2, 2000, 2)
    uniform = at_s[:6]
    assert uniform.min() >= -1 and uniform.max() <= 1
    assert uniform.mean().item() == pytest.approx(0.0, abs=0.02)
    assert uniform.std().item() == pytest.approx(1 / math.sqrt(3), abs=0.02)  # U(−1, 1)
    assert torch.all((at_s[6:] - 0.5).abs() <= 0.3 + 1e-6)  # noisy π(s, z), σ 0.2 clip 0.3
    assert at_s[6:].std().item() == pytest.approx(0.2 * 0.87, rel=0.1)
    assert torch.all((at_next + 0.5).abs() <= 0.3 + 1e-6)  # noisy π(s', z)
    assert not torch.equal(at_s[6], at_s[7]) and not torch.equal(
        at_next[0], at_next[1]
    )  # own noise


def test_sampled_forward_scores_each_sample_at_its_own_state():
    """Sharing the obs-z branch is exact: each sample equals a plain F call at (x, a, z)."""
    agent = agent_for("mcfb")
    batch = random_batch()
    z, _ = agent.sample_z(batch.obs)
    _, _, fwd = agent.fb_terms(batch, z)
    at_s, at_next = agent.sample_actions(batch, agent.model.actor(batch.obs, z), fwd.next_mean)
    F1k, F2k = agent.sampled_forward(batch, z, fwd, at_s, at_next)
    assert F1k.shape == F2k.shape == (12, 32, CFG.z_dim)
    net = agent.model.forward_net
    for k in range(8):  # uniform and π(s) samples, at s
        F1, F2 = net(batch.obs, at_s[k], z)
        assert torch.allclose(F1k[k], F1, atol=1e-5) and torch.allclose(F2k[k], F2, atol=1e-5)
    for k in range(2):  # π(s') samples, at s'
        F1, F2 = net(batch.next_obs, at_next[k], z)
        assert torch.allclose(F1k[8 + k], F1, atol=1e-5)
    for k in (10, 11):  # two copies of the dataset action
        assert torch.equal(F1k[k], fwd.F1) and torch.equal(F2k[k], fwd.F2)


@pytest.mark.parametrize("method, trains_b", [("vcfb", False), ("mcfb", True), ("dvcfb", False)])
def test_penalty_gradients_reach_f_and_only_mc_reaches_b(method, trains_b):
    agent = agent_for(method)
    batch = random_batch()
    z, from_backward = agent.sample_z(batch.obs)
    _, _, fwd = agent.fb_terms(batch, z)
    with torch.no_grad():
        mean = agent.model.actor(batch.obs, z)
    at_s, at_next = agent.sample_actions(batch, mean, fwd.next_mean)
    F1k, F2k = agent.sampled_forward(batch, z, fwd, at_s, at_next)
    agent.penalty(z, from_backward, fwd, F1k, F2k).backward()
    assert all(p.grad is not None for p in agent.forward_params)
    b_grads = [p.grad for p in agent.backward_params]
    assert all(g is not None and g.abs().sum() > 0 for g in b_grads) == trains_b
    assert all(p.grad is None for p in agent.actor_params)


def test_penalty_at_initialisation_is_near_log_k():
    """At initialisation F barely depends on the action, so each head's LSE ≈ Q + log 12."""
    for method in ("vcfb", "mcfb", "dvcfb"):
        metrics = agent_for(method).update(random_batch(n=64))
        assert metrics["penalty"].item() == pytest.approx(2 * math.log(12), abs=0.5)


def test_conservative_state_round_trip():
    agent = agent_for("vcfb")
    for _ in range(3):
        agent.update(random_batch())
    state = agent.state_dict()
    other = agent_for("vcfb", seed=5)
    other.load_state_dict(state)
    assert other.log_alpha.item() == agent.log_alpha.item() != 0.0
    assert other.multiplier.optimizer.state_dict()["state"][0]["step"] == 3


# ------------------------------------------------------------------ the failure and its fix
def test_narrow_data_out_of_dataset_value_is_lower_under_vcfb(tmp_path):
    """Maze data with every "left" action removed: VC-FB values the unseen actions below FB's."""

    def values_after_training(method):
        cfg = apply_overrides(
            preset(method, "point_mass_maze", "quick"),
            [
                "data.episodes=1000",
                "data.action_filter='no_left'",
                "train.steps=1500",
                "train.log_every=500",
                "train.eval_every=0",
                "train.checkpoint_every=0",
                "eval.episodes=1",
                "eval.tasks=['reach_top_left']",
                "train.threads=1",
            ],
        )
        trainer = Trainer(cfg, tmp_path / method, data_root=tmp_path / "data", progress=False)
        trainer.run()
        probe, model = trainer.probe, trainer.model
        left = probe.uniform.clone()
        left[:, 0] = -left[:, 0].abs()  # push left: never in the data
        with torch.no_grad():
            q_left = model.q_value(probe.obs, left, probe.z).mean().item()
        return q_left, {k: v.item() for k, v in probe(model).items()}

    fb_left, fb = values_after_training("fb")
    vc_left, vc = values_after_training("vcfb")
    assert vc_left - vc["q_data"] < fb_left - fb["q_data"]
    assert vc["q_uniform"] - vc["q_data"] < fb["q_uniform"] - fb["q_data"]


def test_penalty_states_takes_the_penalty_over_a_share_of_the_batch():
    cfg = apply_overrides(
        preset("mcfb", "point_mass_maze", "quick"), ["agent.conservative.penalty_states=0.25"]
    ).agent
    agent = agent_for("mcfb", cfg=cfg)
    seen = {}
    original = agent.penalty

    def spy(z, from_backward, fwd, F1k, F2k):
        seen.update(z=z.shape, F1k=F1k.shape, B_next=fwd.B_next.shape)
        return original(z, from_backward, fwd, F1k, F2k)

    agent.penalty = spy
    agent.update(random_batch(n=64))
    assert seen["z"][0] == 16 and seen["F1k"][:2] == (12, 16)
    assert seen["B_next"][0] == 64  # s⁺ still ranges over the whole batch
    with pytest.raises(ValueError, match="penalty_states"):
        ConservativeConfig(penalty_states=0.0).sample_counts()
