"""Datasets: collectors, the file format, checksums, subsampling, filters, relabelling."""

import numpy as np
import pytest

from zsrl.data import (
    Dataset,
    DatasetError,
    collect,
    default_spec,
    get_collector,
    load_or_collect,
    medium,
)
from zsrl.data.collect import CollectorSpec
from zsrl.envs import BatchSim, get_domain
from zsrl.io import checksum_path

DOMAIN = get_domain("point_mass_maze")


@pytest.fixture(scope="module")
def small():
    return collect(
        CollectorSpec("point_mass_maze", "uniform-reset", 20, 50, seed=1), progress=False
    )


def test_collected_transitions_chain_within_episodes(small):
    assert len(small) == 20 * 50
    same_episode = small.episode[1:] == small.episode[:-1]
    assert np.allclose(small.next_physics[:-1][same_episode], small.physics[1:][same_episode])
    assert np.allclose(small.observation, small.physics)  # the maze observes its physics state
    assert np.all(np.abs(small.action) <= 1)


def test_collector_reproduces_mujoco_stepping(small):
    """Each stored next state is what stepping the stored state with the stored action gives."""
    sim = BatchSim(DOMAIN, 10)
    idx = np.arange(0, len(small), len(small) // 10)[:10]
    sim.set_states(small.physics[idx])
    assert np.allclose(sim.step(small.action[idx].astype(np.float64)), small.next_physics[idx])


def test_random_collector_starts_in_top_left_room():
    data = collect(CollectorSpec("point_mass_maze", "random", 3, 20), progress=False)
    starts = data.physics[::20]
    assert np.all(starts[:, 0] <= -0.15) and np.all(starts[:, 1] >= 0.15)


def test_default_specs_are_100k_transitions():
    for name in ("random", "uniform-reset"):
        spec = default_spec("point_mass_maze", name)
        assert spec.episodes * spec.episode_steps == 100_000
    with pytest.raises(ValueError, match="valid datasets"):
        default_spec("point_mass_maze", "rnd-10m")


@pytest.mark.parametrize("name", ["random", "rnd-short", "diayn"])
def test_default_specs_hold_as_many_transitions_on_every_domain(name):
    """Jaco's episodes are 250 steps, so its defaults are four times as many episodes."""
    for domain in ("walker", "quadruped", "jaco"):
        spec = default_spec(domain, name)
        assert spec.episodes * spec.episode_steps == 100_000
        assert get_collector(name).transitions(spec) == 100_000
    assert default_spec("jaco", name).episodes == 400
    assert default_spec("jaco", name, episodes=3).episodes == 3  # asked for: as asked
    long = default_spec("jaco", "rnd")
    assert long.episodes * long.episode_steps == default_spec("walker", "rnd").episodes * 1000


def test_dataset_sizes_known_before_collecting():
    """Falls end random walker2d episodes early, and medium-replay is as long as the run's first
    part: their sizes are known only once collected; explorers keep stepping their lanes after a
    fall, and D4RL-style medium data fix theirs."""
    assert get_collector("random").transitions(default_spec("walker2d", "random")) is None
    for name in ("rnd-short", "diayn"):
        assert get_collector(name).transitions(default_spec("walker2d", name)) == 100_000
    sizes = {k: get_collector(k).transitions(default_spec("halfcheetah", k)) for k in medium.KINDS}
    cfg = medium.SCALES["book"]
    assert sizes == {
        "medium": cfg.policy_transitions,
        "medium-replay": None,
        "medium-expert": 2 * cfg.policy_transitions,
    }
    quick = default_spec("walker2d", "medium", scale="quick")
    assert get_collector("medium").transitions(quick) == medium.SCALES["quick"].policy_transitions


def test_round_trip(tmp_path, small):
    path = tmp_path / "d.npz"
    digest = small.save(path)
    assert checksum_path(path).read_text().split()[0] == digest
    loaded = Dataset.load(path)
    for name in ("observation", "action", "next_observation", "physics", "next_physics", "episode"):
        assert np.array_equal(getattr(loaded, name), getattr(small, name))
    assert loaded.meta["name"] == small.meta["name"]


def test_corrupt_file_is_a_clear_error(tmp_path, small):
    path = tmp_path / "d.npz"
    small.save(path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=str(path)):
        Dataset.load(path)


def test_truncated_file_is_a_clear_error(tmp_path, small):
    path = tmp_path / "d.npz"
    small.save(path)
    path.write_bytes(path.read_bytes()[:1000])
    checksum_path(path).unlink()  # even without its checksum, a truncated file is caught
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        Dataset.load(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        Dataset.load(tmp_path / "nope.npz")


def test_subsample_is_fixed_by_its_own_seed(small):
    a, b = small.subsample(100, seed=42), small.subsample(100, seed=42)
    c = small.subsample(100, seed=7)
    assert len(a) == 100 and np.array_equal(a.physics, b.physics)
    assert not np.array_equal(a.physics, c.physics)
    assert len(np.unique(a.physics, axis=0)) == 100  # without replacement
    assert a.meta["subsample"] == {"n": 100, "seed": 42}
    with pytest.raises(ValueError, match="cannot subsample"):
        small.subsample(len(small) + 1)


def test_action_filter_drops_left_actions(small):
    kept = small.filter_actions("no_left")
    assert np.all(kept.action[:, 0] > 0)
    assert len(kept) == int((small.action[:, 0] > 0).sum())
    assert kept.meta["action_filter"] == "no_left"
    with pytest.raises(ValueError, match="valid filters"):
        small.filter_actions("no_sideways")


def test_relabelled_rewards_match_the_environment(small):
    """Rewards from stored next physics equal rewards of re-simulated steps, for every task."""
    sim = BatchSim(DOMAIN, len(small))
    sim.set_states(small.physics)
    next_states = sim.step(small.action.astype(np.float64))
    for task in DOMAIN.tasks.values():
        expected = task.reward(next_states, small.action)
        assert np.allclose(small.rewards(task), expected, atol=1e-6)


def test_relabelling_finds_goal_rewards():
    data = collect(CollectorSpec("point_mass_maze", "uniform-reset", 200, 100), progress=False)
    for task in DOMAIN.tasks.values():
        r = data.rewards(task)
        assert r.shape == (len(data),) and r.max() > 0.5 and r.min() >= 0


def test_cache_reuses_and_regenerates(tmp_path):
    spec = CollectorSpec("point_mass_maze", "uniform-reset", 5, 10)
    first = load_or_collect(spec, root=tmp_path, progress=False)
    path = tmp_path / f"{spec.name}.npz"
    mtime = path.stat().st_mtime_ns
    again = load_or_collect(spec, root=tmp_path, progress=False)
    assert path.stat().st_mtime_ns == mtime and again.meta["sha256"] == first.meta["sha256"]
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DatasetError, match="checksum"):
        load_or_collect(spec, root=tmp_path, progress=False)
    fixed = load_or_collect(spec, root=tmp_path, regenerate=True, progress=False)
    assert fixed.meta["sha256"] == first.meta["sha256"]  # collection is deterministic


def test_steps_within_episodes_survive_subsets_and_saving(tmp_path):
    from zsrl.data.episodes import steps_within_episodes

    data = collect(CollectorSpec("point_mass_maze", "random", 3, 20), progress=False)
    np.testing.assert_array_equal(data.step, np.tile(np.arange(20), 3))
    np.testing.assert_array_equal(steps_within_episodes(np.array([4, 4, 2, 2, 2])), [0, 1, 0, 1, 2])
    subset = data.subsample(15, seed=0)
    rows = np.sort(np.random.default_rng(0).choice(len(data), size=15, replace=False))
    np.testing.assert_array_equal(subset.step, data.step[rows])  # the rows' own steps
    kept = data.filter_actions("no_left")
    assert np.all(np.diff(kept.step)[np.diff(kept.episode) == 0] > 0)  # time order, with gaps
    assert not np.array_equal(kept.step, steps_within_episodes(kept.episode))
    path = tmp_path / "kept.npz"
    kept.save(path)
    np.testing.assert_array_equal(Dataset.load(path).step, kept.step)
    # whole episodes save exactly the arrays they always did (no step array: it is derived)
    data.save(tmp_path / "whole.npz")
    with np.load(tmp_path / "whole.npz") as npz:
        assert "step" not in npz.files
