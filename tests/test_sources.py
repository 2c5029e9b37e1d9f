"""Data sources: datasets without physics, stored rewards and terminals, a source registered from outside."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zsrl import baseline_losses as bl
from zsrl import losses
from zsrl.agents import TrainingData, build_agent
from zsrl.agents.base import discounts
from zsrl.config import apply_overrides, preset
from zsrl.data import Dataset, DatasetError, get_source, register_source, source_names
from zsrl.data.sources import SOURCES
from zsrl.envs import get_domain
from zsrl.train import Trainer, load_run

MAZE = get_domain("point_mass_maze")


def stored(n: int = 400, seed: int = 0) -> Dataset:
    """Maze-shaped transitions as a file format without physics would give them: the rewards of
    reach_top_left, terminals at every 50th row, a time-limit truncation at every 100th."""
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-0.29, 0.29, (n, 4)).astype(np.float32)
    return Dataset(
        observation=obs,
        action=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
        next_observation=obs + 0.01,
        physics=None,
        next_physics=None,
        episode=np.repeat(np.arange(n // 50), 50),
        reward=rng.uniform(0, 1, n).astype(np.float32),
        terminal=(np.arange(n) % 50 == 49),
        truncation=(np.arange(n) % 100 == 99),
        meta={"name": "stored", "reward_task": "reach_top_left"},
    )


def test_a_dataset_without_physics_gives_its_stored_rewards_and_nothing_else(tmp_path):
    data = stored()
    np.testing.assert_array_equal(data.rewards(MAZE.task("reach_top_left")), data.reward)
    with pytest.raises(
        DatasetError, match="no physics states.*'reach_top_right'.*of 'reach_top_left"
    ):
        data.rewards(MAZE.task("reach_top_right"))
    with pytest.raises(DatasetError, match="need meta\\['reward_task'\\]"):
        Dataset(data.observation, data.action, data.next_observation, None, None, data.episode,
                reward=data.reward)  # fmt: skip
    data.save(tmp_path / "d.npz")
    back = Dataset.load(tmp_path / "d.npz")
    assert back.physics is None and back.next_physics is None
    for name in ("reward", "terminal", "truncation", "episode"):
        np.testing.assert_array_equal(getattr(back, name), getattr(data, name))
    kept = back.subsample(100, seed=1)
    assert kept.terminal.shape == (100,) and kept.physics is None


def test_terminals_stop_the_bootstrap_in_every_target(monkeypatch):
    data = stored(100)
    not_done = 1.0 - torch.as_tensor(data.terminal, dtype=torch.float32)
    seen = {}

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            seen[name] = args
            return fn(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(bl, "td3_critic_target", spy("td3", bl.td3_critic_target))
    monkeypatch.setattr(losses, "fb_measure_loss", spy("fb", losses.fb_measure_loss))
    monkeypatch.setattr(bl, "sf_q_target", spy("sf", bl.sf_q_target))
    obs = torch.as_tensor(data.observation)
    batches = {}
    for method in ("td3", "fb", "sf-lap"):
        cfg = preset(method, "point_mass_maze", "quick").agent
        agent = build_agent(method, cfg, 4, 2)
        reward = torch.as_tensor(data.reward) if method == "td3" else None
        training = TrainingData(
            obs, torch.as_tensor(data.action), obs + 0.01, reward, data.episode, data.step, not_done
        )
        batch = batches[method] = agent.sample_batch(training)
        assert batch.not_done is not None and set(batch.not_done.tolist()) <= {0.0, 1.0}
        agent.update(batch)
    assert torch.equal(seen["td3"][3], batches["td3"].not_done)
    expected = (
        cfg.discount * batches["sf-lap"].not_done
    )  # N: γ where s' continues, 0 where terminal
    assert torch.equal(seen["sf"][4], expected)
    fb_gamma = seen["fb"][4]  # N x 1, multiplying row i of the measure's target
    assert fb_gamma.shape == (len(batches["fb"].obs), 1)
    gamma_fb = preset("fb", "point_mass_maze", "quick").agent.discount
    assert torch.equal(fb_gamma[:, 0], gamma_fb * batches["fb"].not_done)
    assert discounts(batch._replace(not_done=None), 0.9) == 0.9  # no terminals: γ itself


@pytest.fixture
def memory_source():
    register_source("memory", lambda cfg, root, progress: stored(2000))
    yield
    SOURCES.pop("memory")


def test_a_source_registered_from_outside_feeds_the_trainer(memory_source, tmp_path):
    assert "memory" in source_names() and get_source("memory")
    settings = ["data.source='memory'", "data.name='stored'", "eval.tasks=['reach_top_left']"]
    settings += ["train.steps=20", "train.eval_every=10", "train.log_every=10"]
    settings += ["train.checkpoint_every=10", "eval.episodes=1"]
    cfg = apply_overrides(preset("td3", "point_mass_maze", "quick"), settings)
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    assert trainer.data.not_done is not None and float(trainer.data.not_done.sum()) == 2000 - 40
    record = trainer.run()
    assert record["complete"] and record["dataset"]["transitions"] == 2000
    run, step = load_run(tmp_path / "run", "last")
    assert step == 20 and run.dataset.physics is None and run.probe is not None
    other = apply_overrides(cfg, ["eval.tasks=['reach_top_right']"])
    with pytest.raises(DatasetError, match="cannot be relabelled for task 'reach_top_right'"):
        Trainer(other, tmp_path / "other", progress=False)


def test_unknown_sources_and_taken_names_are_clear_errors():
    with pytest.raises(
        ValueError, match=r"unknown data source 'exrol'; valid choices: \['collect'"
    ):
        get_source("exrol")
    with pytest.raises(ValueError, match="'collect' is already registered"):
        register_source("collect", lambda *a: None)
    cfg = apply_overrides(preset("fb", "point_mass_maze", "quick"), ["data.source='exrol'"])
    with pytest.raises(ValueError, match="unknown data source 'exrol'"):
        cfg.validate()
