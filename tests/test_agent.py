"""The FB model and agent: shapes, norms, noise, task inference, update rule, determinism."""

import math

import pytest
import torch

from zsrl.agents import Batch, FBAgent
from zsrl.config import preset
from zsrl.model import FBModel
from zsrl.nets import truncated_normal_sample

CFG = preset("fb", "point_mass_maze", "quick").agent


def make_agent(seed=0, cfg=CFG):
    torch.manual_seed(seed)
    return FBAgent(FBModel(4, 2, cfg), cfg)


def random_batch(n=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return Batch(
        torch.randn(n, 4, generator=g),
        torch.rand(n, 2, generator=g) * 2 - 1,
        torch.randn(n, 4, generator=g),
    )


def test_shapes_and_norms():
    model = make_agent().model
    obs, act, z = torch.randn(7, 4), torch.rand(7, 2), torch.randn(7, CFG.z_dim)
    F1, F2 = model(obs, act, z)
    assert F1.shape == F2.shape == (7, CFG.z_dim)
    assert not torch.allclose(F1, F2)  # two separate heads
    B = model.backward(obs)
    assert torch.allclose(B.norm(dim=-1), torch.full((7,), math.sqrt(CFG.z_dim)), atol=1e-4)
    a = model.act(obs, z)
    assert a.shape == (7, 2) and torch.all(a.abs() <= 1)


def test_paper_architecture_parameter_counts():
    """About 7.6 M parameters in F, 0.15 M in B and 5.4 M in the actor for walker (reference:
    ref-fb-architecture)."""
    cfg = preset("fb", "point_mass_maze", "paper").agent
    cfg.z_dim = 50
    model = FBModel(24, 6, cfg)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(model.forward_net) == pytest.approx(7.6e6, rel=0.02)
    assert count(model.backward_net) == pytest.approx(0.15e6, rel=0.05)
    assert count(model.actor) == pytest.approx(5.4e6, rel=0.02)


def test_forward_layernorm_normalises_every_hidden_layer_of_both_heads_only():
    cfg = preset("fb", "point_mass_maze", "quick").agent
    cfg.forward_layers = 2
    cfg.forward_layernorm = True
    net = FBModel(4, 2, cfg).forward_net
    for head in (net.head1, net.head2):
        kinds = [type(m).__name__ for m in head]
        assert kinds == [
            *("Linear", "LayerNorm", "ReLU") * 2,
            "Linear",
        ], kinds
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in net.obs_action)  # quick: no LN input
    F1, F2 = net(torch.randn(3, 4), torch.rand(3, 2), torch.randn(3, cfg.z_dim))
    assert F1.shape == F2.shape == (3, cfg.z_dim)


@pytest.mark.parametrize("cls_name", ["FBModel", "SFModel"])
def test_orthogonal_init_gives_orthonormal_weights_and_zero_biases(cls_name):
    from zsrl.agents.sf import SFModel

    method = {"FBModel": "fb", "SFModel": "sf-lap"}[cls_name]
    cfg = preset(method, "point_mass_maze", "quick").agent
    cfg.orthogonal_init = True
    model = {"FBModel": FBModel, "SFModel": SFModel}[cls_name](4, 2, cfg)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) > 5
    for layer in linears:
        W = layer.weight.detach()  # out x in
        small = W @ W.T if W.shape[0] <= W.shape[1] else W.T @ W  # the smaller Gram matrix
        assert torch.allclose(small, torch.eye(len(small)), atol=1e-5)
        assert torch.count_nonzero(layer.bias) == 0
    cfg.orthogonal_init = False
    default = {"FBModel": FBModel, "SFModel": SFModel}[cls_name](4, 2, cfg)
    assert any(
        torch.count_nonzero(m.bias) > 0 for m in default.modules() if isinstance(m, torch.nn.Linear)
    )


def test_awr_actor_imitates_the_data_and_logs_the_policy_value(one_thread):
    cfg = preset("fb", "point_mass_maze", "quick").agent
    cfg.actor_objective = "awr"
    cfg.lr_actor = 1e-3
    agent = make_agent(cfg=cfg)
    batch = random_batch(64)
    target = torch.tensor([0.6, -0.4])
    batch = batch._replace(action=target.expand(64, 2).clone())
    for _ in range(300):
        metrics = agent.update(batch)
    z = torch.randn(64, cfg.z_dim)
    mean = agent.model.act(batch.obs, z)
    assert torch.allclose(mean, target.expand_as(mean), atol=0.05)
    assert set(metrics) >= {"actor_loss", "actor_q"} and metrics["actor_q"].ndim == 0
    cfg.actor_objective = "greedy"
    run = preset("fb", "point_mass_maze", "quick")
    run.agent = cfg
    with pytest.raises(ValueError, match="unknown actor_objective 'greedy'.*'awr', 'max_q'"):
        run.validate()


def test_awr_advantage_is_the_models_q_on_raw_observations(monkeypatch, one_thread):
    """The batch holds standardised observations: the advantage must not standardise them twice."""
    from zsrl import losses

    cfg = preset("fb", "point_mass_maze", "quick").agent
    cfg.actor_objective, cfg.normalize_obs = "awr", True
    agent = make_agent(cfg=cfg)
    raw = torch.randn(200, 4) * 3 + 5
    agent.model.set_obs_stats(raw)
    seen, original = {}, losses.advantage_weighted_actor_loss

    def spy(mean, data_action, advantage, temperature, max_weight):
        seen["advantage"] = advantage
        return original(mean, data_action, advantage, temperature, max_weight)

    monkeypatch.setattr(losses, "advantage_weighted_actor_loss", spy)
    obs, action = raw[:32], torch.rand(32, 2) * 2 - 1
    z = torch.randn(32, cfg.z_dim)
    with torch.no_grad():
        mean = agent.model.act(obs, z)
        expected = agent.model.q_value(obs, action, z) - agent.model.q_value(obs, mean, z)
    agent.update_actor(agent.model.normalize(obs), z, data_action=action)
    assert torch.allclose(seen["advantage"], expected, atol=1e-5)


def test_truncated_normal_noise_is_clipped_with_straight_through_gradient():
    torch.manual_seed(0)
    mean = torch.full((10_000, 2), 0.5, requires_grad=True)
    action = truncated_normal_sample(mean, 0.2, 0.3)
    assert torch.all((action - 0.5).abs() <= 0.3 + 1e-6)
    assert (action - 0.5).std().item() == pytest.approx(0.2 * 0.87, rel=0.1)  # clipped σ
    edge = torch.full((1000, 1), 0.99, requires_grad=True)
    a = truncated_normal_sample(edge, 0.2, 0.3)
    assert torch.all(a < 1.0)
    a.sum().backward()
    assert torch.all(edge.grad == 1)  # the clamp at the edge does not block the gradient


def test_goal_inference_is_normalised_B_of_the_goal():
    model = make_agent().model
    goal = torch.tensor([-0.15, 0.15, 0.0, 0.0])
    z = model.infer_z_from_goal(goal)
    assert z.norm().item() == pytest.approx(math.sqrt(CFG.z_dim), rel=1e-5)
    assert torch.allclose(z, model.backward(goal), atol=1e-5)


def test_reward_inference_weights_B_by_reward():
    model = make_agent().model
    obs = torch.randn(50, 4)
    rewards = torch.zeros(50)
    rewards[3] = 1.0  # a single rewarded state: z points at B of that state
    z = model.infer_z_from_rewards(obs, rewards)
    assert torch.allclose(z, model.backward(obs[3]), atol=1e-4)


def test_update_returns_device_tensors_and_moves_weights():
    agent = make_agent()
    before = [p.clone() for p in agent.model.parameters()]
    metrics = agent.update(random_batch())
    assert set(metrics) >= {"fb_loss", "fb_off_diag", "fb_diag", "ortho_loss", "actor_loss"}
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in metrics.values())
    changed = [not torch.equal(a, b) for a, b in zip(before, agent.model.parameters(), strict=True)]
    assert all(changed)


def test_polyak_average_of_targets():
    agent = make_agent()
    target_before = [p.clone() for p in agent.target_forward.parameters()]
    agent.update(random_batch())
    tau = CFG.target_tau
    for old, new, online in zip(
        target_before,
        agent.target_forward.parameters(),
        agent.model.forward_net.parameters(),
        strict=True,
    ):
        assert torch.allclose(new, (1 - tau) * old + tau * online, atol=1e-6)


def test_gradients_are_clamped_elementwise():
    agent = make_agent()
    batch = random_batch()
    batch = Batch(batch.obs * 1e3, batch.action, batch.next_obs * 1e3)  # huge gradients
    agent.update(batch)
    for p in agent.critic_params + agent.actor_params:
        assert p.grad.abs().max().item() <= CFG.grad_clamp


def test_actor_step_leaves_forward_gradients_untouched():
    agent = make_agent()
    agent.fb_optimizer.zero_grad(set_to_none=True)
    agent.update_actor(random_batch().obs, torch.randn(32, CFG.z_dim))
    assert all(p.grad is None for p in agent.forward_params)


def test_same_seed_same_weights_after_updates():
    def train(seed):
        agent = make_agent(seed)
        torch.manual_seed(seed + 100)
        for i in range(20):
            agent.update(random_batch(seed=i))
        return torch.cat([p.flatten() for p in agent.model.parameters()])

    assert torch.equal(train(0), train(0))
    assert not torch.equal(train(0), train(1))


def test_tanh_gaussian_log_prob_is_exact_when_tanh_saturates():
    """log π(tanh u) = log N(u) − log(1 − tanh² u), finite with the right gradient for large u."""
    from torch.distributions import Normal

    from zsrl.nets import tanh_gaussian_log_prob

    u = torch.tensor([0.0, 0.5, -3.0, 8.0, 12.0], dtype=torch.float64, requires_grad=True)
    mean, log_std = torch.zeros(5, dtype=torch.float64), torch.full((5,), 0.3, dtype=torch.float64)
    ours = tanh_gaussian_log_prob(u, mean, log_std)
    exact = Normal(mean, log_std.exp()).log_prob(u) - torch.log(1 - torch.tanh(u) ** 2)
    torch.testing.assert_close(ours, exact, rtol=1e-9, atol=1e-6)
    (grad,) = torch.autograd.grad(ours.sum(), u)
    # d/du of −log(1 − tanh² u) is 2 tanh u: about 2 where tanh saturates, not 0
    expected = -(u - mean) / log_std.exp() ** 2 + 2 * torch.tanh(u)
    torch.testing.assert_close(grad, expected.detach())
