"""The D4RL-style collectors (medium, medium-replay, medium-expert) and the explorer's terminal
states: one cached, resumable training run feeds the three datasets; episodes end at the walker's
falls exactly where Gymnasium's environment ends them; the agent is trained on the task's own
reward; determinism, resumption, the stop, and clear errors elsewhere than the gym domains."""

from __future__ import annotations

import copy
import re
from dataclasses import replace

import gymnasium
import mujoco
import numpy as np
import pytest
import torch

from zsrl.cli import main
from zsrl.data import (
    CollectorSpec,
    Dataset,
    DatasetError,
    collect,
    default_spec,
    get_collector,
    load_or_collect,
    medium,
)
from zsrl.data import explorer as explorer_module
from zsrl.data.diayn import SCALES as DIAYN_SCALES
from zsrl.data.diayn import DIAYNAgent, transition_skills
from zsrl.data.explorer import Exploration, critic_target, explore, torch_threads
from zsrl.data.readers import D4RL_REFERENCE_RETURNS
from zsrl.envs import get_domain
from zsrl.envs.gym_mujoco import ENVIRONMENTS, TASK
from zsrl.envs.registry import PHYSICS_STATE
from zsrl.evaluate import evaluate
from zsrl.io import checksum_path

QUICK = medium.SCALES["quick"]
KINDS = medium.KINDS


def spec(domain: str, kind: str = "medium", seed: int = 1) -> CollectorSpec:
    """A small quick run: two waves of 4 lanes of 200 steps, learning after 1000 random steps."""
    return CollectorSpec(domain, kind, 8, 200, seed=seed, scale="quick")


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> dict[str, dict]:
    """Per gym domain, the three datasets through the cache (the first trains, the others read)."""
    out = {}
    for domain in ("halfcheetah", "walker2d"):
        root = tmp_path_factory.mktemp(domain)
        out[domain] = {
            k: load_or_collect(spec(domain, k), root=root, progress=False) for k in KINDS
        }
        out[domain]["root"] = root
    return out


def physics_state(env: gymnasium.Env) -> np.ndarray:
    model, data = env.unwrapped.model, env.unwrapped.data
    out = np.empty(mujoco.mj_stateSize(model, PHYSICS_STATE))  # P
    mujoco.mj_getState(model, data, out, PHYSICS_STATE)
    return out


@pytest.mark.parametrize("domain", ["halfcheetah", "walker2d"])
def test_the_three_datasets_come_from_one_cached_run(collected, domain):
    data = collected[domain]
    runs = [data[k].meta["run"] for k in KINDS]
    assert runs[0] == runs[1] == runs[2]
    run = runs[0]
    assert run["name"] == spec(domain).name  # named after the medium dataset
    files = sorted(p.name for p in data["root"].iterdir())
    assert files.count(f"{run['name']}.run.pt") == 1  # the one run, kept
    assert not [f for f in files if f.endswith(".partial.pt")]
    assert run["transitions"] == 8 * 200 and len(run["evaluations"]) == 2  # after each wave
    target = D4RL_REFERENCE_RETURNS[domain][1] / 3
    assert run["target_return"] == pytest.approx(target)
    # the quick run is far from the target: it stops at the end of its budget, and says so
    assert run["stop"]["reached"] is False and run["stop"]["transitions"] == 8 * 200
    assert run["stop"]["return"] == run["end"]["return"] == run["evaluations"][-1]["return"]
    assert "not D4RL's expert" in run["end"]["policy"]
    # medium-replay is the run's transitions up to the stop; medium-expert starts with medium
    assert len(data["medium-replay"]) == run["stop"]["transitions"]
    n = QUICK.policy_transitions
    assert len(data["medium"]) == n and len(data["medium-expert"]) == 2 * n
    for kind in ("medium", "medium-expert"):  # the sizes the grid reader knows beforehand
        assert get_collector(kind).transitions(spec(domain, kind)) == len(data[kind])
    assert get_collector("medium-replay").transitions(spec(domain, "medium-replay")) is None
    first_half = data["medium-expert"].select(np.arange(n))
    for name, array in data["medium"].arrays().items():
        np.testing.assert_array_equal(first_half.arrays()[name], array, err_msg=name)
    assert data["medium-expert"].episode[n] == data["medium"].episode[-1] + 1
    behavior = data["medium-expert"].meta["behavior"]
    assert "not D4RL's expert" in behavior["end_of_budget"]["policy"]
    for kind in KINDS:
        meta = data[kind].meta
        assert meta["reward_task"] == TASK and meta["online"]["utd"] == QUICK.utd
        assert re.fullmatch(rf"{domain}__{kind}-quick-[0-9a-f]{{8}}__8x200__seed1", meta["name"])


@pytest.mark.parametrize("domain", ["halfcheetah", "walker2d"])
def test_stored_rewards_are_the_tasks_transition_rewards(collected, domain):
    """Every dataset's rewards (what the agent was trained on, for medium-replay) are the task's
    transition_reward of its stored transitions, and the physics chains within episodes."""
    task = get_domain(domain).task(TASK)
    for kind in KINDS:
        data = collected[domain][kind]
        expected = task.transition_reward(data.physics, data.action, data.next_physics)
        np.testing.assert_array_equal(data.reward, expected.astype(np.float32), err_msg=kind)
        same = data.episode[1:] == data.episode[:-1]
        np.testing.assert_array_equal(data.next_physics[:-1][same], data.physics[1:][same])
        np.testing.assert_array_equal(data.observation, get_domain(domain).observe(data.physics))


def test_the_replay_trained_on_the_tasks_rewards_and_terminals(collected):
    """The run's replay (in its kept checkpoint) holds, for every transition, the task's reward and
    the terminal flag of the dataset: what the critics were trained on. Rows are in the order of
    collection: wave by wave, step by step, env by env."""
    data = collected["walker2d"]
    run = torch.load(
        data["root"] / f"{data['medium'].meta['run']['name']}.run.pt", weights_only=True
    )
    envs, T = QUICK.envs, 200
    replay = run["replay"]
    run_data = data["medium-replay"]  # the whole run: the stop is at its end
    for column, ours in (("reward", run_data.reward), ("terminal", run_data.terminal)):
        stored = replay[column].numpy()[: len(run_data)]  # waves x T x envs, in collection order
        lane_major = stored.reshape(-1, T, envs).transpose(0, 2, 1).reshape(-1)
        np.testing.assert_array_equal(lane_major, ours, err_msg=column)
    assert run_data.terminal.any()  # the quick walker falls


def test_walker2d_episodes_end_at_its_falls_as_gymnasium_ends_them(collected):
    """In the explorer's data (the training run) and a frozen policy's alike, every episode ends at
    its first terminal state or at its lane's end, flagged; stepping Gymnasium's Walker2d from each
    episode's start with its actions gives the same states, rewards and terminations; an episode
    begun after a fall starts from a reset state."""
    domain = get_domain("walker2d")
    env = gymnasium.make(ENVIRONMENTS["walker2d"].env_id)
    env.reset(seed=0)
    nq = env.unwrapped.model.nq
    init = np.r_[env.unwrapped.init_qpos, env.unwrapped.init_qvel]  # P
    for kind in ("medium-replay", "medium"):
        data = collected["walker2d"][kind]
        ends = np.r_[data.episode[1:] != data.episode[:-1], True]  # n: an episode's last step
        np.testing.assert_array_equal(data.terminal | data.truncation, ends, err_msg=kind)
        assert not (data.terminal & data.truncation).any()
        falls = domain.terminated(data.next_physics)  # n
        np.testing.assert_array_equal(falls, data.terminal)  # no transition after a fall
        assert data.terminal.sum() > 5, kind
        starts = np.r_[True, ends[:-1]]  # n: an episode's first step
        # Gymnasium's reset noise is uniform within ±0.005 on qpos and qvel
        assert np.abs(data.physics[starts] - init).max() <= 0.005 + 1e-12
        for e in np.unique(data.episode)[:12]:
            rows = np.flatnonzero(data.episode == e)
            env.unwrapped.set_state(data.physics[rows[0], :nq], data.physics[rows[0], nq:])
            for row in rows:
                _, reward, terminated, _, _ = env.unwrapped.step(data.action[row])
                np.testing.assert_allclose(physics_state(env), data.next_physics[row], atol=1e-9)
                assert terminated == data.terminal[row]
                assert reward == pytest.approx(float(data.reward[row]), rel=1e-5, abs=1e-5)


def test_halfcheetah_runs_whole_lanes_without_flags(collected):
    data = collected["halfcheetah"]["medium-replay"]
    assert data.terminal is None and data.truncation is None  # as its random data
    np.testing.assert_array_equal(data.episode, np.repeat(np.arange(8), 200))


@pytest.mark.parametrize("domain", ["halfcheetah", "walker2d"])
def test_collections_are_deterministic_for_a_seed(collected, domain, tmp_path):
    again = load_or_collect(spec(domain, "medium-expert"), root=tmp_path, progress=False)
    first = collected[domain]["medium-expert"]
    assert again.meta["sha256"] == first.meta["sha256"]  # the same bytes, trained again
    other = collect(spec(domain, "medium-replay", seed=2), progress=False)
    assert not np.array_equal(other.action, collected[domain]["medium-replay"].action)


@pytest.mark.parametrize("domain", ["halfcheetah", "walker2d"])
def test_an_interrupted_run_resumes_to_the_same_bytes(collected, domain, tmp_path, monkeypatch):
    """Killed after its first wave's checkpoint, the run started again ends bitwise where the
    uninterrupted one ends: the three datasets are the same files."""
    save = explorer_module._save_progress

    def save_then_die(path, identity, state):
        save(path, identity, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(explorer_module, "_save_progress", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        load_or_collect(spec(domain, "medium-replay"), root=tmp_path, progress=False)
    run_file = tmp_path / f"{spec(domain).name}.run.pt"
    assert torch.load(run_file, weights_only=True)["next_episode"] == QUICK.envs
    monkeypatch.setattr(explorer_module, "_save_progress", save)
    for kind in KINDS:
        resumed = load_or_collect(spec(domain, kind), root=tmp_path, progress=False)
        assert resumed.meta["sha256"] == collected[domain][kind].meta["sha256"], kind


def test_a_run_that_reaches_its_target_stops_there_and_trains_on(tmp_path):
    """With a target every policy reaches (a negative share of the expert's return), the stop is
    the first evaluation: medium-replay holds its first wave, medium acts with the stop's policy
    (not the end's), and a run read back from its file gives the same datasets."""
    cfg = replace(QUICK, target_fraction=-1.0)
    args = ("halfcheetah", 8, 200, 1, cfg, "run")
    path = tmp_path / "run.run.pt"
    data = {k: medium.collect(k, *args, progress=False, run_path=path) for k in KINDS}
    run = data["medium"].meta["run"]
    assert run["stop"] == {**run["stop"], "transitions": 4 * 200, "reached": True}
    assert run["stop"]["return"] == run["evaluations"][0]["return"]
    assert len(data["medium-replay"]) == 4 * 200 and run["transitions"] == 8 * 200
    medium_part = data["medium"].action
    end_part = data["medium-expert"].action[len(medium_part) :]
    assert not np.array_equal(medium_part, end_part)  # two policies
    fresh = {k: medium.collect(k, *args, progress=False) for k in KINDS}  # trained in memory
    for kind in KINDS:
        for name, array in data[kind].arrays().items():
            np.testing.assert_array_equal(fresh[kind].arrays()[name], array, err_msg=kind)
        assert fresh[kind].meta == data[kind].meta
    # the finished run's file is checked before it is read again
    assert checksum_path(path).exists()
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DatasetError, match=r"run.run.pt does not match its checksum"):
        medium.collect("medium", *args, progress=False, run_path=path)


def test_evaluation_returns_are_the_projects_evaluation(collected):
    """The run's evaluations score a policy as zsrl.evaluate does, on the same starts."""
    domain = get_domain("walker2d")
    torch.manual_seed(0)
    agent = medium.TaskAgent.for_domain(domain, QUICK)
    agent.obs_moments.update(np.random.default_rng(0).normal(size=(50, 17)))
    policy = medium.Policy.of(agent)

    class Adapter:  # the PolicyModel interface evaluate() calls
        obs_mean = torch.zeros(17)

        def task_contexts(self, tasks, *args):
            return None

        def act(self, obs, context):
            return torch.from_numpy(policy(obs.numpy()))

    expected = evaluate(Adapter(), domain, episodes=4, seed=3)[TASK].returns
    starts = domain.sample_start(np.random.default_rng(3), 4)
    ours = medium.rollouts(domain, policy, starts, domain.episode_steps).returns()
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(
        policy(np.zeros((3, 17), np.float32)), agent.act(np.zeros((3, 17), np.float32))
    )


def test_the_critics_do_not_bootstrap_through_terminal_states():
    reward, next_q = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 20.0, 30.0])
    terminal = torch.tensor([False, True, False])
    np.testing.assert_allclose(critic_target(reward, next_q, 0.5, terminal), [6.0, 2.0, 18.0])
    np.testing.assert_allclose(critic_target(reward, next_q, 0.5), [6.0, 12.0, 18.0])
    # wired into the update: with every next state terminal, the target critics play no part
    torch.manual_seed(0)
    agent = medium.TaskAgent.for_domain(get_domain("halfcheetah"), QUICK)
    other = copy.deepcopy(agent)
    with torch.no_grad():
        for p in other.critics_target.parameters():
            p.add_(1.0)
    gen = torch.Generator().manual_seed(1)
    batch = [torch.randn(16, 17, generator=gen), torch.rand(16, 6, generator=gen) * 2 - 1]
    batch += [torch.randn(16, 17, generator=gen)]
    reward = torch.randn(16, generator=gen)

    def critics_after(a, terminal):
        b = copy.deepcopy(a)
        with torch_threads(1), torch.random.fork_rng():
            torch.manual_seed(2)
            b.update(*batch, None, terminal, reward)
        return [p.detach().clone() for p in b.critics.parameters()]

    ends = torch.ones(16, dtype=torch.bool)
    for p, q in zip(critics_after(agent, ends), critics_after(other, ends), strict=True):
        assert torch.equal(p, q)
    goes_on = torch.zeros(16, dtype=torch.bool)
    first, second = critics_after(agent, goes_on), critics_after(other, goes_on)
    assert not all(torch.equal(p, q) for p, q in zip(first, second, strict=True))


def test_a_fresh_episode_draws_fresh_noise_in_its_env_only():
    cfg = replace(QUICK, noise=1.0, noise_min=0.1, noise_correlation=0.9)
    exploration = Exploration(cfg, 3, 2, np.random.default_rng(0))
    before = exploration.noise.copy()  # 3 x 2
    exploration.restart(np.array([1]))
    np.testing.assert_array_equal(exploration.noise[[0, 2]], before[[0, 2]])
    assert not np.array_equal(exploration.noise[1], before[1])


def test_diayn_on_walker2d_ends_episodes_at_falls_and_keeps_each_transitions_skill():
    """The other explorers honour terminals too; each transition's skill is its lane's at that
    step, read back through the episodes' lanes and starts."""
    domain = get_domain("walker2d")
    T = 200
    data, _ = explore(domain, 4, T, 0, DIAYN_SCALES["quick"], DIAYNAgent, progress=False)
    assert data.terminal.any() and data.episode[-1] + 1 > 4
    np.testing.assert_array_equal(domain.terminated(data.next_physics), data.terminal)
    ends = np.r_[data.episode[1:] != data.episode[:-1], True]
    np.testing.assert_array_equal(data.terminal | data.truncation, ends)
    table = np.asarray(data.meta["skills"]["table"])  # lanes x segments
    rows = np.arange(len(data))  # lane-major: row r is lane r // T at its step r % T
    expected = table[rows // T, (rows % T) // data.meta["skills"]["steps"]]
    np.testing.assert_array_equal(transition_skills(data), expected)


def test_other_domains_are_a_clear_error_listing_the_gym_domains():
    for kind in KINDS:
        with pytest.raises(
            ValueError,
            match=rf"'{kind}' needs one task.*'point_mass_maze'.*'halfcheetah', 'walker2d'",
        ):
            default_spec("point_mass_maze", kind, scale="quick")
    with pytest.raises(ValueError, match=r"supports domains \['halfcheetah', 'walker2d'\]"):
        collect(CollectorSpec("walker", "medium", 2, 100, scale="quick"), progress=False)
    with pytest.raises(ValueError, match=r"domain 'point_mass_maze' has tasks .*'halfcheetah'"):
        medium.objective(get_domain("point_mass_maze"))
    with pytest.raises(ValueError, match="valid ones"):
        medium.collect("medium-random", "walker2d", 1, 10, 0, QUICK, "x", progress=False)


def test_book_scale_names_and_budget():
    book = default_spec("walker2d", "medium")
    assert book.scale == "book" and book.episodes * book.episode_steps == 250_000
    assert re.fullmatch(r"walker2d__medium-book-[0-9a-f]{8}__250x1000__seed0", book.name)
    assert medium.SCALES["book"].utd == 1.0 and medium.SCALES["book"].policy_transitions == 100_000
    # the three share a scale's settings, so one hash
    names = [default_spec("halfcheetah", k).name for k in KINDS]
    assert len({name.split("__")[1].rsplit("-", 1)[1] for name in names}) == 1


def test_the_command_line_collects_medium(tmp_path, capsys):
    argv = ["collect", "--domain", "halfcheetah", "--dataset", "medium", "--scale", "quick"]
    assert main([*argv, "--data-dir", str(tmp_path)]) == 0
    spec_ = default_spec("halfcheetah", "medium", scale="quick")
    assert f"{spec_.name}: {QUICK.policy_transitions} transitions" in capsys.readouterr().out
    assert (tmp_path / f"{spec_.name}.run.pt").exists()
    data = Dataset.load(tmp_path / f"{spec_.name}.npz")
    assert data.meta["run"]["transitions"] == QUICK.episodes * 1000
