"""The DIAYN skill-discovery collector: its reward and discriminator, determinism, resumption, the
skills it records and the command line on every domain."""

import math
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from zsrl.cli import main
from zsrl.data import CollectorSpec, Dataset, collect, default_spec, load_or_collect
from zsrl.data import explorer as explorer_module
from zsrl.data.diayn import (
    SCALES,
    DIAYNAgent,
    DIAYNConfig,
    Discriminator,
    diayn_reward,
    explore,
    transition_skills,
)
from zsrl.data.explorer import torch_threads
from zsrl.envs import get_domain

DOMAIN = get_domain("point_mass_maze")
QUICK = SCALES["quick"]
# Two waves of 4 episodes of 300 steps (6 skill segments each); learning from step 1000 on
SPEC = CollectorSpec("point_mass_maze", "diayn", 8, 300, seed=3, scale="quick")


@pytest.fixture(scope="module")
def run():
    """The small run and its trained agent, straight from the explorer."""
    return explore(DOMAIN, SPEC.episodes, SPEC.episode_steps, SPEC.seed, QUICK, progress=False)


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """The same run collected again through the cache (checkpointed after its first wave, saved
    and reloaded)."""
    root = tmp_path_factory.mktemp("data")
    dataset = load_or_collect(SPEC, root=root, progress=False)
    files = sorted(p.name for p in root.iterdir())
    assert files == [f"{SPEC.name}.npz", f"{SPEC.name}.npz.sha256"]  # the checkpoint is gone
    return dataset


def test_dataset_shapes_meta_and_skills(cached):
    n, K = 8 * 300, QUICK.skills
    assert len(cached) == n and cached.observation.shape == (n, DOMAIN.obs_dim)
    assert np.all(np.abs(cached.action) <= 1) and cached.action.dtype == np.float32
    assert re.fullmatch(
        r"point_mass_maze__diayn-quick-[0-9a-f]{8}__8x300__seed3", cached.meta["name"]
    )
    assert cached.meta["diayn"]["skills"] == K == 16 and cached.meta["diayn"]["skill_steps"] == 50
    assert cached.meta["diayn"]["utd"] == QUICK.utd
    assert np.array_equal(cached.observation, DOMAIN.observe(cached.physics))
    same = cached.episode[1:] == cached.episode[:-1]
    assert np.array_equal(cached.next_physics[:-1][same], cached.physics[1:][same])
    # one skill per episode and 50-step segment, drawn uniformly
    skills = transition_skills(cached)  # n
    assert skills.shape == (n,) and skills.min() >= 0 and skills.max() < K
    segments = skills.reshape(8, 6, 50)
    assert np.all(segments == segments[..., :1])
    assert len(np.unique(segments[..., 0])) > 8  # 48 draws from 16 skills
    # read by episode and step, so a subset keeps its rows' skills
    index = np.arange(7, n, 13)
    assert np.array_equal(transition_skills(cached.select(index)), skills[index])


def test_collection_is_deterministic_and_leaves_torch_alone(run, cached):
    dataset, _ = run
    for name in ("observation", "action", "next_observation", "physics", "next_physics"):
        assert np.array_equal(getattr(dataset, name), getattr(cached, name)), name
    assert dataset.meta["skills"] == cached.meta["skills"]
    threads, before = torch.get_num_threads(), torch.random.get_rng_state()
    small = CollectorSpec("point_mass_maze", "diayn", 2, 100, seed=3, scale="quick")
    a, b = collect(small, progress=False), collect(replace(small, seed=4), progress=False)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), before)
    assert not np.array_equal(a.action, b.action)
    assert a.meta["skills"] != b.meta["skills"]


def test_an_interrupted_collection_resumes_to_the_same_bytes(run, tmp_path, monkeypatch):
    """Killed after its first wave, a run started again from the checkpoint ends bitwise where the
    uninterrupted run ends, skills and discriminator included."""
    whole, whole_agent = run
    checkpoint = tmp_path / "run.partial.pt"
    save = explorer_module._save_progress

    def save_then_die(path, identity, state):
        save(path, identity, state)
        raise KeyboardInterrupt

    args = (DOMAIN, SPEC.episodes, SPEC.episode_steps, SPEC.seed, QUICK)
    monkeypatch.setattr(explorer_module, "_save_progress", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        explore(*args, progress=False, checkpoint=checkpoint)
    assert torch.load(checkpoint, weights_only=True)["skills"].shape == (4, 6)
    monkeypatch.setattr(explorer_module, "_save_progress", save)
    resumed, resumed_agent = explore(*args, progress=False, checkpoint=checkpoint)
    for name in ("action", "physics", "next_physics", "observation"):
        assert np.array_equal(getattr(whole, name), getattr(resumed, name)), name
    assert whole.meta == resumed.meta
    pairs = zip(
        whole_agent.intrinsic.discriminator.parameters(),
        resumed_agent.intrinsic.discriminator.parameters(),
        strict=True,
    )
    assert all(torch.equal(a, b) for a, b in pairs)
    with pytest.raises(ValueError, match="belongs to another exploration"):
        explore(DOMAIN, 8, 300, 4, QUICK, progress=False, checkpoint=checkpoint)


def test_the_discriminator_learnt_the_recorded_skills(run):
    """After the short run the discriminator names the skill of its last wave's transitions at
    least twice as often as chance (0.15 to 0.31 over seeds 0 to 5, 1/16 by chance): the
    recorded skills are the ones it was trained on. Skill-conditioned behaviour takes longer than a
    test to learn; the discriminator's own learning is checked on hand-made states below."""
    dataset, agent = run
    skills = transition_skills(dataset)
    last = dataset.episode >= 4
    assert agent.accuracy(dataset.next_observation[last], skills[last]) > 2 / QUICK.skills


def test_diayn_reward_is_log_q_minus_log_p():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 5)) * 3  # 50 x K
    skill = rng.integers(5, size=50)
    q = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)  # softmax
    expected = np.log(q[np.arange(50), skill]) - np.log(1 / 5)
    got = diayn_reward(torch.tensor(logits), torch.tensor(skill)).numpy()
    assert np.allclose(got, expected)
    assert np.allclose(diayn_reward(torch.zeros(3, 5), torch.tensor([0, 2, 4])).numpy(), 0.0)
    sure = torch.full((1, 5), -50.0)
    sure[0, 2] = 50.0
    assert diayn_reward(sure, torch.tensor([2])).item() == pytest.approx(math.log(5))
    assert diayn_reward(sure, torch.tensor([1])).item() < -50


def test_the_discriminator_learns_to_tell_hand_made_skills_apart():
    """Each of 4 skills leads to states around its own room's centre: cross-entropy steps make the
    discriminator name each state's skill, so the matching skill's reward nears log K and a wrong
    skill's is negative; the rewards an update returns are those of the updated discriminator."""
    rng = np.random.default_rng(0)
    centres = np.array([[-0.15, 0.15], [0.15, 0.15], [-0.15, -0.15], [0.15, -0.15]])
    cfg = DIAYNConfig(hidden=32, skills=4, lr=1e-3)

    def batch(n):
        skill = rng.integers(4, size=n)
        s_next = centres[skill] / 0.15 + 0.3 * rng.standard_normal((n, 2))  # standardised
        return torch.tensor(s_next, dtype=torch.float32), torch.tensor(skill)

    with torch_threads(1), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        disc = Discriminator(2, cfg)
        s_test, z_test = batch(400)
        with torch.no_grad():
            before = disc.reward(s_test, z_test).mean()
        for _ in range(300):
            s_next, skill = batch(64)
            reward = disc.update(s_next, skill)
            assert torch.equal(reward, torch.from_numpy(disc.reward(s_next, skill)))
        with torch.no_grad():
            logits = disc.discriminator(s_test)
            after = disc.reward(s_test, z_test).mean()
            wrong = disc.reward(s_test, (z_test + 1) % 4).mean()
    assert abs(before) < 0.5  # an untrained discriminator is near chance: log q ~ log p
    assert (logits.argmax(dim=1) == z_test).float().mean() > 0.95
    assert after > 0.9 * math.log(4) and wrong < 0


def test_the_policy_and_critics_see_the_skill():
    torch.manual_seed(0)
    agent = DIAYNAgent(DOMAIN.obs_dim, DOMAIN.action_dim, QUICK)
    obs = np.zeros((QUICK.skills, DOMAIN.obs_dim), np.float32)  # one state, every skill
    actions = agent.act(obs, np.arange(QUICK.skills))  # K x A
    assert actions.shape == (QUICK.skills, DOMAIN.action_dim)
    assert len(np.unique(actions.round(6), axis=0)) == QUICK.skills
    assert agent.critics[0][0].in_features == DOMAIN.obs_dim + QUICK.skills + DOMAIN.action_dim


def test_bad_settings_and_names_are_clear_errors():
    with pytest.raises(ValueError, match="at least 2 skills"):
        DIAYNConfig(skills=1)
    with pytest.raises(ValueError, match=r"'huge'.*valid scales: \['book', 'quick'\]"):
        default_spec("point_mass_maze", "diayn", scale="huge")
    rnd_like = Dataset(*(np.zeros((2, 1), np.float32),) * 3, None, None, np.zeros(2, np.int32))
    with pytest.raises(ValueError, match="records no skills"):
        transition_skills(rnd_like)


def test_book_scale_is_100k_transitions():
    spec = default_spec("walker", "diayn")
    assert spec.scale == "book" and spec.episodes * spec.episode_steps == 100_000
    assert re.fullmatch(r"walker__diayn-book-[0-9a-f]{8}__100x1000__seed0", spec.name)


@pytest.mark.parametrize("domain", ["point_mass_maze", "walker"])
def test_the_command_line_collects_on_every_domain(domain, tmp_path, capsys):
    """Two episodes of 1000 steps: 1000 random, then learning, on the domain's own sizes."""
    argv = ["collect", "--domain", domain, "--dataset", "diayn", "--scale", "quick"]
    assert main([*argv, "--episodes", "2", "--data-dir", str(tmp_path)]) == 0
    spec = default_spec(domain, "diayn", episodes=2, scale="quick")
    assert spec.name in capsys.readouterr().out
    dataset = Dataset.load(tmp_path / f"{spec.name}.npz")
    dom = get_domain(domain)
    assert dataset.observation.shape == (2000, dom.obs_dim)
    assert dataset.action.shape == (2000, dom.action_dim)
    assert np.array_equal(dataset.next_observation, dom.observe(dataset.next_physics))
    assert transition_skills(dataset).shape == (2000,)
