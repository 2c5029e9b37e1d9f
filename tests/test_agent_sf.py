"""SF-LAP (reference: ref-sf-lap): model shapes, update rule, exact resume, least-squares and
per-step goal inference, evaluation on the maze, and the noise σ that evaluation must not change
(reference: ref-bug-sf-maze, ref-bug-sf-noise)."""

import io
import math

import numpy as np
import pytest
import torch

import zsrl.agents.sf as sf
from zsrl import baseline_losses as bl
from zsrl.agents import Batch, build_agent
from zsrl.config import preset
from zsrl.data import collect
from zsrl.data.collect import CollectorSpec
from zsrl.envs import get_domain
from zsrl.evaluate import evaluate
from zsrl.infer import labelled_samples
from zsrl.losses import infer_z_from_rewards
from zsrl.probe import ValueProbe

pytestmark = pytest.mark.usefixtures("one_thread")

CFG = preset("sf-lap", "point_mass_maze", "quick").agent
DOMAIN = get_domain("point_mass_maze")
D = CFG.z_dim


def make_agent(seed=0, cfg=CFG):
    torch.manual_seed(seed)
    return sf.SFAgent(sf.SFModel(4, 2, cfg), cfg)


def random_batch(n=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return Batch(
        torch.randn(n, 4, generator=g),
        torch.rand(n, 2, generator=g) * 2 - 1,
        torch.randn(n, 4, generator=g),
    )


def flat(params):
    return torch.cat([p.detach().flatten() for p in params])


@pytest.fixture(scope="module")
def maze_data():
    return collect(CollectorSpec("point_mass_maze", "random", 5, 100), progress=False)


def test_shapes_norms_and_feature_architecture():
    model = make_agent().model
    obs, act, z = torch.randn(7, 4), torch.rand(7, 2) * 2 - 1, torch.randn(7, D)
    phi = model.features(obs)
    assert phi.shape == (7, D)
    assert torch.allclose(phi.norm(dim=-1), torch.full((7,), math.sqrt(D)), atol=1e-4)
    kinds = [type(m).__name__ for m in model.feature_net]
    # an LN + tanh first layer (reference: ref-sf-lap)
    assert kinds[:3] == ["Linear", "LayerNorm", "Tanh"]
    psi1, psi2 = model.successor_features(obs, act, z)
    assert psi1.shape == psi2.shape == (7, D) and not torch.allclose(psi1, psi2)
    q = model.q_value(obs, act, z)
    assert torch.allclose(q, torch.minimum((psi1 * z).sum(-1), (psi2 * z).sum(-1)))
    a = model.act(obs, z)
    assert a.shape == (7, 2) and torch.all(a.abs() <= 1)


def test_build_agent_and_value_probe():
    agent = build_agent("sf-lap", CFG, 4, 2)
    assert isinstance(agent, sf.SFAgent) and isinstance(agent.model, sf.SFModel)
    probe = ValueProbe.from_arrays(np.random.randn(20, 4), np.random.rand(20, 2), D)
    values = probe(agent.model)
    assert set(values) == {"q_data", "q_uniform", "q_policy"}
    assert all(torch.isfinite(v) for v in values.values())


def test_update_returns_finite_device_scalars_and_moves_only_its_weights():
    agent = make_agent()
    model = agent.model
    lrs = [o.param_groups[0]["lr"] for o in (agent.feature_optimizer, agent.sf_optimizer)]
    assert lrs + [agent.actor_optimizer.param_groups[0]["lr"]] == [
        CFG.lr_features,
        CFG.lr_sf,
        CFG.lr_actor,
    ]
    with torch.no_grad():  # a target unlike ψ, so that the Polyak step is plain to see
        torch._foreach_mul_(agent.target_params, 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    target_before = flat(agent.target_params)
    metrics = agent.update(random_batch())
    assert set(metrics) >= {"sf_loss", "feature_loss", "q_target", "actor_loss", "actor_q"}
    assert set(agent.progress_keys) <= set(metrics)
    for v in metrics.values():
        assert isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad
        assert torch.isfinite(v)
    after = model.state_dict()
    for name, old in before.items():
        if name in ("obs_mean", "obs_std"):
            assert torch.equal(old, after[name]), name  # standardisation is not learnt
        else:
            assert not torch.equal(old, after[name]), name  # every φ, ψ and π weight moves
    # ψ̄ is Polyak-averaged towards ψ, and only ψ̄
    tau = CFG.target_tau
    old_online = torch.cat(
        [before[f"successor_net.{k}"].flatten() for k, _ in model.successor_net.named_parameters()]
    )
    assert not torch.equal(old_online, flat(agent.successor_params))
    expected = (1 - tau) * target_before + tau * flat(agent.successor_params)
    assert torch.allclose(flat(agent.target_params), expected, atol=1e-6)


def test_features_learn_from_the_laplacian_loss_only():
    """φ's step is exactly one clamped Adam step on L_φ: neither the ψ loss nor the actor reach it."""
    agent = make_agent()
    batch = random_batch()
    reference = make_agent()
    phi = reference.model.phi(batch.obs)
    phi_next = reference.model.phi(batch.next_obs)
    loss = bl.laplacian_feature_loss(phi, phi_next, CFG.ortho_coefficient)
    reference.feature_optimizer.zero_grad()
    loss.backward()
    for p in reference.feature_params:
        p.grad.clamp_(-CFG.grad_clamp, CFG.grad_clamp)
    reference.feature_optimizer.step()
    agent.update(batch)
    assert torch.allclose(flat(agent.feature_params), flat(reference.feature_params), atol=1e-6)


def test_gradients_are_clamped_elementwise():
    agent = make_agent()
    batch = random_batch()
    agent.update(Batch(batch.obs * 1e3, batch.action, batch.next_obs * 1e3))
    for p in agent.feature_params + agent.successor_params + agent.actor_params:
        assert p.grad is not None and p.grad.abs().max().item() <= CFG.grad_clamp


def test_mixed_z_come_from_the_features_of_shuffled_next_states():
    cfg = preset("sf-lap", "point_mass_maze", "quick").agent
    cfg.z_mix_ratio = 1.0
    agent = make_agent(cfg=cfg)
    phi_next = agent.model.phi(random_batch().next_obs)  # N x d
    z, from_features = agent.sample_z(phi_next)
    assert from_features.all() and not z.requires_grad
    candidates = bl.sf_mix_z_backward(phi_next)  # N x d, unpermuted
    distance = torch.cdist(z, candidates)  # N x N
    assert torch.all(distance.min(1).values < 1e-2)  # each z is one next state's C⁺ task
    assert not torch.allclose(z, candidates)  # ... of a shuffled state
    cfg.z_mix_ratio = 0.0
    z, from_features = make_agent(cfg=cfg).sample_z(phi_next)
    assert not from_features.any()
    assert torch.allclose(z.norm(dim=-1), torch.full((32,), math.sqrt(D)), atol=1e-4)


def test_resume_through_state_dict_is_exact():
    def run(save_halfway):
        agent = make_agent(seed=3)
        torch.manual_seed(7)
        for i in range(6):
            if save_halfway and i == 3:
                buffer = io.BytesIO()
                torch.save(agent.state_dict(), buffer)
                rng = torch.get_rng_state()
                agent = make_agent(seed=99)  # different weights, overwritten by the checkpoint
                buffer.seek(0)
                agent.load_state_dict(torch.load(buffer, weights_only=True))
                torch.set_rng_state(rng)
            agent.update(random_batch(seed=i))
        return torch.cat(
            [flat(agent.model.parameters()), flat(agent.target_params)]
            + [
                flat(v for s in opt.state.values() for v in s.values())
                for opt in (agent.feature_optimizer, agent.sf_optimizer, agent.actor_optimizer)
            ]
        )

    assert torch.equal(run(False), run(True))


def test_least_squares_inference_recovers_the_task_vector():
    model = make_agent().model
    obs = torch.randn(200, 4)
    phi = model.features(obs)  # 200 x d
    z_true = bl.sf_goal_z(torch.randn(D), torch.zeros(D))  # d, on the √d sphere
    rewards = phi @ z_true  # rewards exactly linear in φ
    z = model.infer_z_from_rewards(obs, rewards)
    assert torch.allclose(z, z_true, atol=1e-3)
    assert torch.allclose(model.infer_z_from_rewards(obs, 3.0 * rewards), z_true, atol=1e-3)
    z_mean = infer_z_from_rewards(phi, rewards)  # FB's reward-weighted mean: not the task
    assert torch.nn.functional.cosine_similarity(z_mean, z_true, dim=0) < 0.99


def test_goal_context_recomputes_z_from_the_current_state_every_step():
    model = make_agent().model
    tasks = [DOMAIN.task("reach_top_left"), DOMAIN.task("reach_bottom_right")]
    context = model.task_contexts(tasks)
    assert isinstance(context, sf.SFContext) and context.is_goal.tolist() == [True, True]
    goals = torch.as_tensor(np.stack([t.goal_observation for t in tasks]), dtype=torch.float32)
    assert torch.allclose(context.goal_features, model.features(goals), atol=1e-6)
    obs = torch.randn(2, 4) * 0.1
    z = bl.sf_goal_z(model.features(goals), model.features(obs))  # per row: φ(g) − φ(s_t)
    assert torch.allclose(model.act(obs, context), model.act(obs, z), atol=1e-6)
    assert torch.allclose(
        model.q_value(obs, torch.zeros(2, 2), context),
        model.q_value(obs, torch.zeros(2, 2), z),
        atol=1e-5,
    )
    moved = obs + torch.tensor([0.1, -0.05, 0.0, 0.0])
    assert not torch.allclose(model.act(moved, context), model.act(obs, context), atol=1e-5)


def test_mixed_context_rows_keep_their_inferred_z(maze_data):
    model = make_agent().model
    tasks = [DOMAIN.task("reach_top_left"), DOMAIN.task("reach_top_right")]
    goal = model.task_contexts(tasks, maze_data, 500, seed=1)
    by_reward = model.task_contexts(tasks, maze_data, 500, seed=1, goal_inference="rewards")
    assert not by_reward.is_goal.any()
    next_obs, rewards = labelled_samples(tasks[1], maze_data, 500, seed=1)
    as_t = lambda x: torch.as_tensor(x, dtype=torch.float32)  # noqa: E731
    z_ls = bl.sf_z_from_features(model.features(as_t(next_obs)), as_t(rewards))
    assert torch.allclose(by_reward.z[1], z_ls, atol=1e-5)  # least squares on labelled samples
    mixed = sf.SFContext(
        torch.stack([goal.z[0], by_reward.z[1]]),
        torch.stack([goal.goal_features[0], goal.goal_features[1]]),
        torch.tensor([True, False]),
    )
    obs = torch.randn(2, 4) * 0.1
    z = torch.stack([bl.sf_goal_z(goal.goal_features[0], model.features(obs[0])), by_reward.z[1]])
    assert torch.allclose(model.act(obs, mixed), model.act(obs, z), atol=1e-6)


def test_evaluates_on_the_maze_by_goals_and_by_rewards(maze_data):
    model = make_agent().model
    results = evaluate(model, DOMAIN, episodes=1)  # every goal task, z recomputed every step
    assert set(results) == set(DOMAIN.tasks) and len(results) == 4
    assert all(np.isfinite(r.score) and r.final_distance is not None for r in results.values())
    results = evaluate(
        model,
        DOMAIN,
        ["reach_top_left"],
        episodes=1,
        dataset=maze_data,
        inference_samples=500,
        goal_inference="rewards",
    )
    assert np.isfinite(results["reach_top_left"].score)
    with pytest.raises(ValueError, match="dataset"):
        model.task_contexts([DOMAIN.task("reach_top_left")], goal_inference="rewards")


def test_training_noise_stays_at_actor_std_after_an_evaluation(monkeypatch):
    """Reference ref-bug-sf-noise: the paper's code trained SF-LAP with σ 0.05 after its first evaluation."""
    agent = make_agent()
    evaluate(agent.model, DOMAIN, ["reach_top_left"], episodes=1)
    stds = []
    original = sf.truncated_normal_sample

    def recording(mean, std, clip):
        stds.append(std)
        return original(mean, std, clip)

    monkeypatch.setattr(sf, "truncated_normal_sample", recording)
    agent.update(random_batch())
    agent.model.act(torch.zeros(3, 4), torch.randn(3, D), noisy=True)
    assert len(stds) == 3  # target action, actor action, noisy act
    assert stds == [CFG.actor_std] * 3 and CFG.actor_std == 0.2
