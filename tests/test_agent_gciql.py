"""GC-IQL (reference: ref-gciql): goal sampling per batch, the update rule, test-time goals, exact resume."""

import dataclasses
import io

import numpy as np
import pytest
import torch

from zsrl import baseline_losses as bl
from zsrl.agents import TrainingData, build_agent
from zsrl.agents.gciql import GCIQLAgent, GCIQLModel
from zsrl.config import preset
from zsrl.data import collect
from zsrl.data.collect import CollectorSpec
from zsrl.data.episodes import episode_bounds
from zsrl.envs import get_domain
from zsrl.evaluate import evaluate

CFG = preset("gciql", "point_mass_maze", "quick").agent
DOMAIN = get_domain("point_mass_maze")


def make_agent(seed=0, cfg=CFG):
    torch.manual_seed(seed)
    return GCIQLAgent(GCIQLModel(4, 2, cfg), cfg)


def tiny_data(episodes=6, steps=50, seed=0):
    """Random standardised transitions in contiguous episodes of ``steps`` transitions each."""
    g = torch.Generator().manual_seed(seed)
    n = episodes * steps
    return TrainingData(
        obs=torch.randn(n, 4, generator=g),
        action=torch.rand(n, 2, generator=g) * 2 - 1,
        next_obs=torch.randn(n, 4, generator=g),
        reward=None,
        episode=np.repeat(np.arange(episodes) + 10, steps),
        step=np.tile(np.arange(steps), episodes),
    )


@pytest.fixture(scope="module")
def maze_data():
    return collect(CollectorSpec("point_mass_maze", "uniform-reset", 20, 50), progress=False)


def flat(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def row_index(data, rows):
    """The dataset index of each row of ``rows`` (N x O), matched exactly against ``data.obs``."""
    match = (rows[:, None, :] == data.obs[None]).all(-1)  # N x n
    assert torch.all(match.sum(1) >= 1)
    return match.float().argmax(1).numpy()


def test_shapes_and_no_q_value():
    model = make_agent().model
    obs, goal = torch.randn(7, 4), torch.randn(7, 4)
    v1, v2 = model.values(obs, goal)
    assert v1.shape == v2.shape == (7,) and not torch.allclose(v1, v2)
    a = model.act(obs, goal)
    assert a.shape == (7, 2) and torch.all(a.abs() < 1)
    noisy = model.act(obs, goal, noisy=True)
    assert noisy.shape == (7, 2) and not torch.equal(noisy, a)
    assert not hasattr(model, "q_value")  # value-only: the trainer skips the value probe
    log_std = model.actor(torch.randn(1000, 8) * 100)[1]
    assert log_std.min() >= CFG.log_std_min and log_std.max() <= CFG.log_std_max


def test_act_normalises_observation_and_goal():
    model = make_agent().model
    obs, goal = torch.randn(5, 4) * 3 + 1, torch.randn(5, 4) * 3 + 1
    expected = model.act(obs, goal)
    model.obs_mean.fill_(1.0)
    model.obs_std.fill_(3.0)
    moved = model.act(obs * 3 + 1, goal * 3 + 1)
    assert torch.allclose(moved, expected, atol=1e-5)


def test_batch_goals_are_in_the_episode_and_redrawn_every_batch():
    agent, data = make_agent(), tiny_data()
    torch.manual_seed(3)
    first, second = agent.sample_batch(data), agent.sample_batch(data)
    for batch in (first, second):
        assert batch.goal.shape == batch.obs.shape == (CFG.batch_size, 4)
        index, goal_index = row_index(data, batch.obs), row_index(data, batch.goal)
        assert np.all(data.episode[goal_index] == data.episode[index])
        assert (goal_index == index).mean() > 0.05  # the current-state share (0.2)
        assert (goal_index > index).mean() > 0.3  # future goals (0.5) and later random ones
    assert not torch.equal(first.goal, second.goal)
    # a transition drawn in several batches gets different goals: goals are not fixed at load time
    pairs = set()
    for _ in range(20):
        batch = agent.sample_batch(data)
        pairs |= set(zip(row_index(data, batch.obs), row_index(data, batch.goal), strict=True))
    transitions = [t for t, _ in pairs]
    assert len(pairs) > 1.5 * len(set(transitions))
    layout = agent.episode_layout(data)
    assert agent.episode_layout(data) is layout  # computed once per dataset
    assert np.array_equal(layout.start, episode_bounds(data.episode)[0])


def test_sampling_is_reproducible_from_torch_seed():
    data = tiny_data()
    torch.manual_seed(5)
    a = make_agent().sample_batch(data)
    torch.manual_seed(5)
    b = make_agent().sample_batch(data)
    assert torch.equal(a.obs, b.obs) and torch.equal(a.goal, b.goal)
    # the goal draws themselves change with torch's RNG: in one long episode, which rows get their
    # own state as the goal differs from batch to batch
    agent, data = make_agent(), tiny_data(episodes=1, steps=5000)
    current = [(lambda b: (b.obs == b.goal).all(-1))(agent.sample_batch(data)) for _ in range(2)]
    assert not torch.equal(*current)


def test_current_state_goals_give_reward_zero_only_there():
    agent, data = make_agent(), tiny_data()
    torch.manual_seed(0)
    batch = agent.sample_batch(data)
    reward, mask = bl.goal_reward_and_mask(batch.obs, batch.goal)
    current = row_index(data, batch.obs) == row_index(data, batch.goal)
    assert current.any() and not current.all()
    assert torch.equal(reward == 0, torch.from_numpy(current))
    assert torch.equal(mask, -reward)
    assert agent.update(batch)["goal_reached"].item() == pytest.approx(current.mean())


def test_update_returns_device_tensors_and_moves_only_its_weights():
    agent, data = make_agent(), tiny_data()
    torch.manual_seed(1)
    batch = agent.sample_batch(data)
    value, actor, target = (
        flat(agent.model.value),
        flat(agent.model.actor),
        flat(agent.target_value),
    )
    metrics = agent.update(batch)
    assert set(agent.progress_keys) <= set(metrics)
    for v in metrics.values():
        assert isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad
        assert torch.isfinite(v)
    assert torch.all(flat(agent.model.value) != value)  # every value weight moves
    assert torch.all(flat(agent.model.actor) != actor)
    tau = CFG.target_tau  # V̄ ← V̄ + τ (V − V̄), every update
    assert torch.allclose(
        flat(agent.target_value), target + tau * (flat(agent.model.value) - target)
    )
    assert torch.equal(agent.model.obs_mean, torch.zeros(4))  # buffers untouched


def test_actor_loss_is_weighted_log_prob_of_dataset_actions():
    # the weights use V after this update's value step: with lr_value 0 that is V before it
    agent, data = make_agent(cfg=dataclasses.replace(CFG, lr_value=0.0)), tiny_data()
    torch.manual_seed(2)
    batch = agent.sample_batch(data)
    batch = batch._replace(action=batch.action.sign())  # |a| = 1 exactly: guarded, stays finite
    model = agent.model
    x_next, x = torch.cat([batch.next_obs, batch.goal], -1), torch.cat([batch.obs, batch.goal], -1)
    with torch.no_grad():
        weights = torch.exp(
            CFG.temperature
            * (
                torch.stack(agent.target_value(x_next)).mean(0)
                - torch.stack(model.value(x)).mean(0)
            )
        ).clamp(max=CFG.max_weight)
        expected = -(weights[:, None] * model.actor.log_prob(x, batch.action)).mean()
    metrics = agent.update(batch)
    assert torch.isfinite(metrics["actor_loss"])
    assert metrics["actor_loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_value_loss_decreases_on_a_fixed_dataset():
    """Batches (and their goals) redrawn from 100 fixed transitions; a larger lr than the paper's so
    that 50 updates suffice."""
    agent, data = make_agent(cfg=dataclasses.replace(CFG, lr_value=1e-3)), tiny_data(4, 25)
    torch.manual_seed(0)
    losses = [agent.update(agent.sample_batch(data))["value_loss"].item() for _ in range(50)]
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])


def test_exact_resume_through_state_dict():
    data = tiny_data()

    def run(save_at=None):
        agent = make_agent(0)
        torch.manual_seed(7)
        for step in range(10):
            if step == save_at:
                buffer = io.BytesIO()
                torch.save(agent.state_dict(), buffer)
                rng = torch.get_rng_state()
                buffer.seek(0)
                agent = make_agent(1)  # different fresh weights, overwritten by the load
                agent.load_state_dict(torch.load(buffer, weights_only=True))
                torch.set_rng_state(rng)
            agent.update(agent.sample_batch(data))
        return torch.cat([flat(agent.model), flat(agent.target_value)])

    straight = run()
    assert torch.equal(straight, run(save_at=5))
    assert not torch.equal(straight, flat(make_agent(0).model))


def test_build_agent_makes_gciql():
    agent = build_agent("gciql", CFG, 4, 2)
    assert isinstance(agent, GCIQLAgent) and isinstance(agent.model, GCIQLModel)
    assert agent.batch_size == CFG.batch_size


def test_test_time_goal_is_goal_observation_or_argmax_reward_state(maze_data):
    model = make_agent().model
    tasks = [DOMAIN.task("reach_top_right"), DOMAIN.task("reach_bottom_left")]
    goals = model.task_contexts(tasks, maze_data, inference_samples=500, seed=3)
    assert goals.shape == (2, 4) and goals.dtype == torch.float32
    for row, task in zip(goals, tasks, strict=True):
        assert torch.equal(row, torch.as_tensor(task.goal_observation, dtype=torch.float32))
    by_reward = model.task_contexts(
        tasks, maze_data, inference_samples=500, seed=3, goal_inference="rewards"
    )
    index = np.random.default_rng(3).integers(0, len(maze_data), size=500)
    sample = maze_data.select(index)
    for row, task in zip(by_reward, tasks, strict=True):
        rewards = sample.rewards(task)
        best = sample.next_observation[np.argmax(rewards)]
        assert torch.equal(row, torch.as_tensor(best, dtype=torch.float32))
        # it is a state of the labelled samples with the highest reward, not the task's goal
        matches = np.all(sample.next_observation == row.numpy(), axis=1)
        assert rewards[matches].max() == rewards.max()
    with pytest.raises(ValueError, match="dataset"):
        model.task_contexts(tasks, None, goal_inference="rewards")


def test_evaluate_runs_on_all_maze_tasks(maze_data):
    model = make_agent().model
    results = evaluate(model, DOMAIN, episodes=1, seed=0, dataset=maze_data, inference_samples=200)
    assert set(results) == set(DOMAIN.tasks)
    assert all(np.isfinite(r.score) for r in results.values())


def test_future_goals_follow_time_steps_not_rows():
    """Rows 1000 steps apart (a sparse subsample): a future goal is the next row, never further."""
    data = tiny_data(episodes=2, steps=50)
    data = data._replace(step=data.step * 1000)
    agent = make_agent()
    torch.manual_seed(0)
    batch = agent.sample_batch(data)
    row = lambda x: int((data.obs == x).all(-1).nonzero()[0, 0])  # noqa: E731
    hops = [row(g) - row(s) for s, g in zip(batch.obs, batch.goal, strict=True)]
    # current goals hop 0 rows; future ones exactly 1 (or 0 at an episode's last row); random ones
    # anywhere in the episode, so only the share of 1-row hops is checked against p_future
    ones = np.mean([h == 1 for h in hops])
    assert ones > 0.4 and max(h for h in hops if h > 0) > 1  # random goals still roam
