"""CQL on SAC (reference: ref-cql): the update, exact resume, where the penalty's actions come from,
the Lagrange multiplier, the target schedule, the conservatism itself, and the command line."""

import copy
import io
import json
import math

import pytest
import torch

from zsrl.agents.base import Batch
from zsrl.agents.cql import CQLAgent, CQLModel
from zsrl.cli import main
from zsrl.config import preset

OBS, ACT = 4, 2


def quick(**changes):
    cfg = copy.deepcopy(preset("cql", "point_mass_maze", "quick").agent)
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg


def make_agent(cfg=None, seed=0, obs_dim=OBS, action_dim=ACT):
    cfg = cfg or quick()
    torch.manual_seed(seed)
    return CQLAgent(CQLModel(obs_dim, action_dim, cfg), cfg)


def random_batch(n=32, seed=1, obs_dim=OBS, action_dim=ACT):
    g = torch.Generator().manual_seed(seed)
    return Batch(
        torch.randn(n, obs_dim, generator=g),
        torch.rand(n, action_dim, generator=g) * 2 - 1,
        torch.randn(n, obs_dim, generator=g),
        torch.rand(n, generator=g),
    )


def flat(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_model_acts_with_the_squashed_mean_and_values_with_the_smaller_critic(one_thread):
    model = make_agent().model
    obs = torch.randn(7, OBS)
    assert model.task_contexts(["reach_top_left"]) is None
    mean = model.act(obs)
    assert mean.shape == (7, ACT) and torch.equal(mean, model.act(obs))  # deterministic
    assert torch.equal(mean, torch.tanh(model.actor(obs)[0]))
    noisy = model.act(obs, noisy=True)
    assert noisy.shape == (7, ACT) and noisy.abs().max() < 1 and not torch.equal(noisy, mean)
    action = torch.rand(7, ACT) * 2 - 1
    q1, q2 = model.critic(torch.cat([obs, action], -1))
    assert torch.equal(model.q_value(obs, action, torch.randn(7, 16)), torch.minimum(q1, q2))
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in model.critic.modules())
    # log σ is hard-clamped (reference: ref-bug-cql): raw values pass inside [−5, 2] and stop at its ends
    head = model.actor.net[-1]
    with torch.no_grad():
        head.weight[ACT:] = 0.0
        for raw, log_std in [(1.0, 1.0), (100.0, 2.0), (-100.0, -5.0)]:
            head.bias[ACT:] = raw
            assert torch.all(model.actor(obs)[1] == log_std), raw


def test_update_is_finite_on_device_and_trains_what_it_should(one_thread):
    agent = make_agent()
    model = agent.model
    before = {
        "critic": flat(model.critic),
        "actor": flat(model.actor),
        "target": flat(agent.target_critic),
        "buffers": torch.cat([b.flatten() for b in model.buffers()]),
    }
    log_temperature, log_alpha = agent.log_temperature.item(), agent.log_alpha.item()
    metrics = agent.update(random_batch())
    expected = {"critic_loss", "cql_penalty", "cql_alpha", "temperature", "q_batch", "actor_q"}
    assert expected | {"entropy"} <= set(metrics)
    assert set(agent.progress_keys) <= set(metrics)
    for name, value in metrics.items():
        assert value.dim() == 0 and not value.requires_grad, name
        assert value.device == model.device and torch.isfinite(value), name
    assert not torch.equal(flat(model.critic), before["critic"])
    assert not torch.equal(flat(model.actor), before["actor"])
    assert agent.log_temperature.item() != log_temperature
    assert agent.log_alpha.item() != log_alpha  # Lagrangian by default
    assert torch.equal(flat(agent.target_critic), before["target"])  # quick: every 2nd update
    assert torch.equal(torch.cat([b.flatten() for b in model.buffers()]), before["buffers"])
    assert metrics["cql_penalty"] >= 0  # a log-sum-exp exceeds each of its terms
    assert metrics["temperature"].item() == pytest.approx(0.1, rel=1e-5)  # before its first step


@pytest.mark.parametrize("frozen", ["critic", "actor"])
def test_each_loss_trains_only_its_own_network(frozen, one_thread):
    """With one learning rate at zero, that network stays put and the other still learns."""
    agent = make_agent(quick(**{f"lr_{frozen}": 0.0}))
    other = "actor" if frozen == "critic" else "critic"
    start = {name: flat(getattr(agent.model, name)) for name in ("critic", "actor")}
    for _ in range(3):
        agent.update(random_batch())
    assert torch.equal(flat(getattr(agent.model, frozen)), start[frozen])
    assert not torch.equal(flat(getattr(agent.model, other)), start[other])


def test_resume_through_torch_save_is_exact(one_thread):
    batches = [random_batch(seed=s) for s in range(6)]
    straight = make_agent()
    for batch in batches:
        straight.update(batch)
    split = make_agent()
    for batch in batches[:3]:
        split.update(batch)
    buffer = io.BytesIO()
    torch.save(split.state_dict(), buffer)
    rng = torch.get_rng_state()
    resumed = make_agent(seed=99)  # different initial weights, overwritten by the checkpoint
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    torch.set_rng_state(rng)
    for batch in batches[3:]:  # updates 4, 5 (targets move at 4 and 6 only if the counter resumed)
        resumed.update(batch)
    assert resumed.updates == straight.updates == 6
    for name in ("critic", "actor"):
        assert torch.equal(flat(getattr(resumed.model, name)), flat(getattr(straight.model, name)))
    assert torch.equal(flat(resumed.target_critic), flat(straight.target_critic))
    assert torch.equal(resumed.log_alpha, straight.log_alpha)
    assert torch.equal(resumed.log_temperature, straight.log_temperature)


class Recorder(torch.nn.Module):
    """Wraps a critic and keeps every input it is called on."""

    def __init__(self, critic):
        super().__init__()
        self.critic, self.inputs = critic, []

    def forward(self, x):
        self.inputs.append(x.detach().reshape(-1, x.shape[-1]).clone())
        return self.critic(x)


def test_penalty_actions_come_from_the_three_sources_and_are_all_scored_at_s(one_thread):
    """K uniform, K π(s), K π(s') actions plus the data action, every one paired with s (reference:
    ref-cql)."""
    action_dim, n = 6, 16
    cfg = quick(cql_samples=3)
    agent = make_agent(cfg, obs_dim=OBS, action_dim=action_dim)
    actor = agent.model.actor
    with torch.no_grad():  # a near-deterministic actor (σ = e⁻⁵) whose mean depends strongly on s
        actor.net[-1].weight[:action_dim] *= 20
        actor.net[-1].bias[action_dim:] = -100.0
    batch = random_batch(n, obs_dim=OBS, action_dim=action_dim)
    recorder = Recorder(agent.model.critic)
    agent.model.critic = recorder
    agent.critic_loss(batch)  # the critic step alone: Bellman regression and penalty
    rows = torch.cat(recorder.inputs)  # every (s, a) the online critic scored
    obs, action = rows[:, :OBS], rows[:, OBS:]
    # every row is scored at a current state s_i, never at s'_i
    match = (obs[:, None] == batch.obs[None]).all(-1)  # rows x N
    assert torch.all(match.sum(1) == 1)
    state = match.float().argmax(1)  # rows: which s_i
    with torch.no_grad():
        mean_s = actor.mean_action(batch.obs)[state]  # rows x A
        mean_next = actor.mean_action(batch.next_obs)[state]  # rows x A
    near = lambda a, b: (a - b).abs().max(-1).values < 0.05  # noqa: E731
    is_data = (action == batch.action[state]).all(-1)
    is_s, is_next = near(action, mean_s), near(action, mean_next)
    assert not torch.any(is_s & is_next)  # the two policies' actions are told apart
    is_uniform = ~(is_data | is_s | is_next)
    k = cfg.cql_samples
    for kind, count in [(is_data, 1), (is_s, k), (is_next, k), (is_uniform, k)]:
        per_state = torch.bincount(state[kind], minlength=n)
        assert torch.all(per_state == count), per_state
    uniform = action[is_uniform]
    assert uniform.min() >= -1 and uniform.max() <= 1
    assert uniform.min() < -0.9 and uniform.max() > 0.9
    assert uniform.std().item() == pytest.approx(1 / math.sqrt(3), rel=0.15)


def test_penalty_actions_carry_no_gradient(one_thread):
    agent = make_agent()
    sampled = agent.penalty_actions(random_batch())
    assert sampled.shape == (3 * agent.cfg.cql_samples, 32, ACT) and not sampled.requires_grad


@pytest.mark.parametrize("target, direction", [(-1.0, 1), (1e6, -1)])
def test_lagrangian_alpha_rises_above_the_budget_and_falls_below(target, direction, one_thread):
    """The penalty is never negative: above a budget of −1 α rises, below 10⁶ it falls."""
    agent = make_agent(quick(target_penalty=target))
    alphas = [agent.update(random_batch(seed=s))["cql_alpha"].item() for s in range(5)]
    steps = torch.diff(torch.tensor([math.exp(agent.cfg.log_alpha_init), *alphas]))
    assert torch.all(direction * steps > 0), alphas


@pytest.mark.parametrize("scale, lr", [("paper", 1e-4), ("book", 1e-3)])
def test_dual_variables_fall_by_their_scales_rate_per_update(scale, lr, one_thread):
    """Below the budget and above the target entropy, Adam lowers log α and log β by about lr per
    update: the book preset's 1e-3 lets them travel in 30k updates what the paper's 1e-4 does in
    300k (config.py); the paper scale keeps the paper's 1e-4 (reference: ref-cql)."""
    rates = preset("cql", "point_mass_maze", scale).agent
    assert (rates.lr_alpha, rates.lr_temperature) == (lr, lr)
    agent = make_agent(quick(lr_alpha=rates.lr_alpha, lr_temperature=rates.lr_temperature))
    log_beta = agent.log_temperature.item()
    for s in range(20):
        agent.update(random_batch(seed=s))
    assert agent.cfg.log_alpha_init - agent.log_alpha.item() == pytest.approx(20 * lr, rel=0.05)
    assert log_beta - agent.log_temperature.item() == pytest.approx(20 * lr, rel=0.05)


def test_fixed_alpha_stays_put(one_thread):
    agent = make_agent(quick(lagrange=False, alpha=0.37))
    log_alpha = agent.log_alpha.clone()
    for s in range(3):
        assert agent.update(random_batch(seed=s))["cql_alpha"].item() == pytest.approx(0.37)
    assert torch.equal(agent.log_alpha, log_alpha)


def test_targets_move_only_every_target_update_every_updates(one_thread):
    agent = make_agent(quick(target_update_every=3))
    moved = []
    for s in range(7):
        before = flat(agent.target_critic)
        agent.update(random_batch(seed=s))
        moved.append(not torch.equal(flat(agent.target_critic), before))
    assert moved == [False, False, True, False, False, True, False]


def conservatism_gap(alpha: float) -> tuple[float, float]:
    """Mean Q at the dataset actions minus mean Q at uniform actions, and the latter, after 100
    full-batch updates on a fixed 64-transition dataset with fixed α."""
    n = 64
    cfg = quick(lagrange=False, alpha=alpha, batch_size=n, lr_critic=3e-3, lr_actor=3e-3)
    g = torch.Generator().manual_seed(123)
    obs = torch.randn(n, OBS, generator=g)
    action = torch.rand(n, ACT, generator=g) - 0.5  # the data covers the middle of [-1, 1]²
    batch = Batch(
        obs, action, obs + 0.1 * torch.randn(n, OBS, generator=g), torch.rand(n, generator=g)
    )
    agent = make_agent(cfg)
    for _ in range(100):
        agent.update(batch)
    with torch.no_grad():
        q_data = agent.model.q_value(obs, action).mean()
        uniform = torch.rand(20, n, ACT, generator=g) * 2 - 1  # 20 x N x A
        q_uniform = agent.model.q_value(obs.expand(20, -1, -1), uniform).mean()
    return (q_data - q_uniform).item(), q_uniform.item()


def test_the_penalty_pushes_q_down_at_out_of_distribution_actions(one_thread):
    """The point of CQL: with α = 5 Q at uniform actions ends well below Q at the data's actions;
    with α = 0 (plain SAC, same seed and data) it does not."""
    gap_plain, q_uniform_plain = conservatism_gap(0.0)
    gap_cql, q_uniform_cql = conservatism_gap(5.0)
    assert abs(gap_plain) < 0.1, gap_plain
    assert gap_cql > gap_plain + 0.15, (gap_cql, gap_plain)
    assert q_uniform_cql < q_uniform_plain - 0.15


SMALL = [
    "--set",
    "data.episodes=100",
    "train.steps=10",
    "train.eval_every=10",
    "eval.episodes=1",
    "train.log_every=5",
    "train.checkpoint_every=10",
]


def test_cli_trains_and_evaluates_only_the_task_it_is_given(tmp_path, capsys):
    common = ["train", "--method", "cql", "--scale", "quick", "--dataset", "random"]
    common += ["--data-dir", str(tmp_path / "data"), "--no-progress"]
    out = tmp_path / "run"
    code = main([*common, "--tasks", "reach_top_left", "--out", str(out), *SMALL])
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / "record.json").read_text())
    assert record["complete"] and record["single_task"] == "reach_top_left"
    assert [e["step"] for e in record["evaluations"]] == [0, 10]
    for entry in record["evaluations"]:
        assert set(entry["tasks"]) == {"reach_top_left"}
    header = (out / "metrics.csv").read_text().splitlines()[0]
    columns = header.split(",")
    assert "cql_penalty" in columns and columns[-3:] == ["q_data", "q_uniform", "q_policy"]
    assert len(set(columns)) == len(columns)  # no metric shadows a value-probe column
    capsys.readouterr()

    code = main([*common, "--out", str(tmp_path / "no_task"), *SMALL])
    err = capsys.readouterr().err
    assert code != 0 and "reach_top_left" in err and "reach_bottom_right" in err
