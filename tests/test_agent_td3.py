"""Offline TD3 (reference: ref-td3): architecture, critic target, actor step without behaviour
cloning, resume."""

import io

import pytest
import torch

from zsrl.agents import Batch, build_agent
from zsrl.agents.td3 import TD3Agent, TD3Model
from zsrl.config import preset

CFG = preset("td3", "point_mass_maze", "quick").agent


def make_agent(seed: int = 0, cfg=CFG) -> TD3Agent:
    torch.manual_seed(seed)
    return build_agent("td3", cfg, 4, 2)


def batch(n: int = 32, seed: int = 1) -> Batch:
    g = torch.Generator().manual_seed(seed)
    obs, next_obs = torch.randn(n, 4, generator=g), torch.randn(n, 4, generator=g)
    action = torch.rand(n, 2, generator=g) * 2 - 1
    return Batch(obs, action, next_obs, reward=torch.rand(n, generator=g))


def flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_paper_architecture():
    """Q: [1024 LN-tanh, 1024] twice; actor: [1024 LN-tanh, 1024 ReLU] and a tanh mean (reference:
    ref-td3)."""
    model = TD3Model(24, 6, preset("td3", "point_mass_maze", "paper").agent)
    kinds = lambda net: [type(m).__name__ for m in net]  # noqa: E731
    expected = ["Linear", "LayerNorm", "Tanh", "Linear", "ReLU", "Linear"]
    assert kinds(model.critic.net1) == kinds(model.critic.net2) == expected
    assert kinds(model.actor) == expected
    assert model.critic.net1[0].in_features == 30 and model.critic.net1[0].out_features == 1024
    action = model.act(torch.randn(5, 24), None)
    assert action.shape == (5, 6) and action.abs().max() < 1


def test_update_trains_critics_then_actor_and_moves_the_targets_by_tau():
    agent = make_agent()
    critic, actor, target = (
        flat(agent.model.critic),
        flat(agent.model.actor),
        flat(agent.target_critic),
    )
    metrics = agent.update(batch())
    assert all(v.dim() == 0 and torch.isfinite(v) for v in metrics.values())
    new_critic = flat(agent.model.critic)
    assert not torch.equal(new_critic, critic) and not torch.equal(flat(agent.model.actor), actor)
    tau = CFG.target_tau
    torch.testing.assert_close(flat(agent.target_critic), target + tau * (new_critic - target))


def test_critic_target_bootstraps_every_transition_from_the_target_critics(monkeypatch):
    """y = r + γ·min_k Q̄_k(s', a'): no transition is treated as terminal (dm_control has none)."""
    import zsrl.agents.td3 as td3

    agent = make_agent()
    seen = {}
    original = td3.bl.double_q_mse

    def spy(q1, q2, target):
        seen["target"] = target
        return original(q1, q2, target)

    monkeypatch.setattr(td3.bl, "double_q_mse", spy)
    # fix the smoothing noise at zero so that a' = π(s') exactly
    monkeypatch.setattr(td3, "truncated_normal_sample", lambda mean, std, clip: mean)
    b = batch()
    with torch.no_grad():
        next_action = agent.model.policy(b.next_obs)
        q1, q2 = agent.target_critic(torch.cat([b.next_obs, next_action], -1))
        expected = b.reward + CFG.discount * torch.minimum(q1, q2)
    agent.update(b)
    torch.testing.assert_close(seen["target"], expected)


def test_actor_climbs_the_critic_with_no_behaviour_cloning():
    """With the critic frozen at Q(s, a) = −‖a − (0.5, −0.5)‖², the actor moves to (0.5, −0.5) even
    though every dataset action is (−1, 1): no behaviour-cloning term pulls it back."""
    cfg = preset("td3", "point_mass_maze", "quick").agent
    cfg.lr_actor = 1e-2
    agent = make_agent(cfg=cfg)
    best = torch.tensor([0.5, -0.5])

    class Bowl(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, x):
            q = -self.scale * ((x[:, 4:] - best) ** 2).sum(-1)
            return q, q

    agent.model.critic, agent.target_critic = Bowl(), Bowl()
    agent.critic_params = [agent.model.critic.scale]
    agent.target_params = [agent.target_critic.scale]
    agent.critic_optimizer = torch.optim.SGD(agent.critic_params, lr=0.0)  # the critic stays put
    b = batch()
    b = b._replace(action=torch.tensor([-1.0, 1.0]).expand(len(b.obs), 2))
    for _ in range(300):
        agent.update(b)
    mean = agent.model.act(b.obs, None)
    assert torch.allclose(mean.mean(0), best, atol=0.1)


def test_state_dict_resumes_exactly():
    a = make_agent()
    for _ in range(3):
        a.update(batch())
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    c = make_agent(seed=7)
    buffer.seek(0)
    c.load_state_dict(torch.load(buffer, weights_only=True))
    assert not torch.equal(flat(a.model), flat(make_agent(seed=7).model))
    for agent in (a, c):
        torch.manual_seed(5)
        agent.update(batch(seed=2))
    assert torch.equal(flat(a.model), flat(c.model))
    assert torch.equal(flat(a.target_critic), flat(c.target_critic))
    assert (
        a.actor_optimizer.state_dict()["state"].keys()
        == c.actor_optimizer.state_dict()["state"].keys()
    )


def test_context_is_ignored_and_wrong_config_is_refused():
    agent = make_agent()
    obs = torch.randn(3, 4)
    assert agent.model.task_contexts([]) is None
    torch.testing.assert_close(agent.model.act(obs, None), agent.model.act(obs, torch.zeros(3, 8)))
    with pytest.raises(ValueError, match="TD3Config"):
        build_agent("td3", preset("fb", "point_mass_maze", "quick").agent, 4, 2)
