"""The RND exploration collector, its scales and cache names, and maze coverage."""

import importlib.util
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from zsrl.cli import main
from zsrl.data import CollectorSpec, collect, default_spec, load_or_collect, rnd
from zsrl.data.collect import COLLECTORS
from zsrl.data.dataset import Dataset, rewarded_fraction
from zsrl.data.explorer import Exploration, Replay, torch_threads
from zsrl.data.rnd import SCALES, RNDAgent, explore
from zsrl.envs import BatchSim, get_domain
from zsrl.envs.point_mass_maze.maps import (
    coverage_histogram,
    free_cells,
    plot_coverage,
    room_shares,
    visited_fraction,
)

DOMAIN = get_domain("point_mass_maze")
QUICK = SCALES["quick"]
SHORT = CollectorSpec("point_mass_maze", "rnd", 4, 400, seed=3, scale="quick")  # learns 200 steps


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The quick-scale maze RND dataset, through the cache (so it has been saved and reloaded)."""
    spec = default_spec("point_mass_maze", "rnd", scale="quick")
    return load_or_collect(spec, root=tmp_path_factory.mktemp("data"), progress=False)


def test_quick_dataset_shapes_episodes_and_meta(quick):
    T = DOMAIN.episode_steps
    assert len(quick) == QUICK.episodes * T == 4000
    assert quick.observation.shape == quick.next_observation.shape == (len(quick), 4)
    assert quick.action.shape == (len(quick), 2) and quick.action.dtype == np.float32
    assert quick.physics.shape == quick.next_physics.shape == (len(quick), 4)
    assert np.array_equal(quick.episode, np.repeat(np.arange(QUICK.episodes), T))
    assert np.all(np.abs(quick.action) <= 1)
    assert re.fullmatch(
        r"point_mass_maze__rnd-quick-[0-9a-f]{8}__4x1000__seed0", quick.meta["name"]
    )
    assert quick.meta["spec"]["scale"] == "quick"
    assert quick.meta["rnd"]["hidden"] == QUICK.hidden and quick.meta["rnd"]["utd"] == QUICK.utd


def test_quick_dataset_physics_is_consistent(quick):
    """Observations are the physics states; transitions chain; stepping reproduces every next state."""
    assert np.array_equal(quick.observation, DOMAIN.observe(quick.physics))
    assert np.array_equal(quick.next_observation, DOMAIN.observe(quick.next_physics))
    same = quick.episode[1:] == quick.episode[:-1]
    assert np.array_equal(quick.next_physics[:-1][same], quick.physics[1:][same])
    starts = quick.physics[:: DOMAIN.episode_steps]  # every episode starts in the top-left room
    assert np.all(starts[:, 0] <= -0.15) and np.all(starts[:, 1] >= 0.15)
    assert np.all(starts[:, 2:] == 0)
    idx = np.arange(0, len(quick), 3)  # a third of the transitions, every episode and phase
    sim = BatchSim(DOMAIN, len(idx))
    sim.set_states(quick.physics[idx])
    # Against a wall the contact solver's warm start (not part of the physics state) moves the
    # re-stepped velocity by up to ~1e-5; away from walls the match is exact.
    next_physics = sim.step(quick.action[idx].astype(np.float64))  # len(idx) x 4
    assert np.allclose(next_physics, quick.next_physics[idx], atol=1e-4)


def test_exploration_noise_is_correlated_with_a_scale_per_env():
    cfg = replace(QUICK, noise=1.0, noise_min=0.1, noise_correlation=0.9)
    exploration = Exploration(cfg, 5, 2, np.random.default_rng(0))
    policy = np.zeros((5, 2))  # 5 envs x 2
    noise, actions = [], []
    for _ in range(20_000):
        actions.append(exploration(policy))
        noise.append(exploration.noise)
    noise, actions = np.array(noise), np.array(actions)  # steps x 5 x 2
    assert np.allclose(noise.std(axis=(0, 2)), np.geomspace(0.1, 1.0, 5), rtol=0.05)
    lag1 = np.mean(noise[1:] * noise[:-1], axis=(0, 2)) / noise.var(axis=(0, 2))  # 5
    assert np.allclose(lag1, 0.9, atol=0.02)
    assert np.all(np.abs(actions) <= 1) and np.allclose(actions[:, 0], noise[:, 0])


def test_collection_is_reproducible_and_leaves_torch_alone():
    threads = torch.get_num_threads()
    before = torch.random.get_rng_state()
    a, b = collect(SHORT, progress=False), collect(SHORT, progress=False)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), before)
    for name in ("action", "physics", "next_physics"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    c = collect(replace(SHORT, seed=4), progress=False)
    assert not np.array_equal(a.action, c.action)


def test_intrinsic_reward_is_lower_on_trained_states():
    """The predictor learns the states it is trained on, so they pay less than novel ones."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    agent = RNDAgent(4, 2, QUICK)
    seen = DOMAIN.sample_start(rng, 2000).astype(np.float32)  # top-left room, at rest
    novel = seen.copy()
    novel[:, :2] *= -1  # the bottom-right room
    novel[:, 2:] = rng.uniform(-0.1, 0.1, size=(2000, 2))  # and moving
    agent.obs_moments.update(np.concatenate([seen, novel]))  # fixed standardisation
    replay = Replay(len(seen), 4, 2)
    replay.add(seen, np.zeros((len(seen), 2), np.float32), seen)
    before = agent.intrinsic_reward(seen).mean() / agent.intrinsic_reward(novel).mean()
    with torch_threads(1):
        for _ in range(150):
            agent.update(*replay.sample(rng, 64))
    after = agent.intrinsic_reward(seen).mean() / agent.intrinsic_reward(novel).mean()
    assert before > 0.5  # an untrained predictor finds both sets about as novel
    assert after < 0.05  # the predictor learnt the seen states, not the novel ones


def test_collecting_agent_finds_its_own_states_familiar():
    """The agent that explored pays less for the states it saw than for far-away ones."""
    dataset, agent = explore(DOMAIN, SHORT.episodes, SHORT.episode_steps, 3, QUICK, progress=False)
    rng = np.random.default_rng(1)
    free = DOMAIN.samplers["free"](rng, 500).astype(np.float32)  # anywhere, any velocity
    data = dataset.observation  # what this agent saw
    nearest = np.min(
        np.linalg.norm(free[:, None, :2] - data[None, ::10, :2], axis=-1), axis=1
    )  # 500
    novel = free[nearest > 0.15]
    assert len(novel) > 50
    assert agent.intrinsic_reward(data).mean() < agent.intrinsic_reward(novel).mean()


def hand_made(xy: np.ndarray) -> Dataset:
    physics = np.concatenate([xy, np.zeros_like(xy)], axis=1)  # n x 4
    n = len(xy)
    return Dataset(
        physics.astype(np.float32),
        np.zeros((n, 2), np.float32),
        physics.astype(np.float32),
        physics,
        physics,
        np.zeros(n, np.int32),
    )


def test_coverage_of_a_hand_made_dataset():
    # 5 x 5 cells of width 0.12 with centres -0.24, -0.12, 0, 0.12, 0.24: the five centres on the
    # "+" of walls are blocked, the gaps (0, +-0.24) and (+-0.24, 0) are free: 20 free cells.
    free = free_cells(5)
    assert free.sum() == 20 and not free[2, 2] and not free[2, 1] and free[2, 4] and free[0, 2]
    xy = np.array([[-0.24, -0.24], [-0.25, -0.2], [-0.2, -0.28], [0.24, 0.24], [0.0, 0.0]])
    counts = coverage_histogram(hand_made(xy), bins=5)
    assert counts.shape == (5, 5) and counts.sum() == 5
    assert counts[0, 0] == 3 and counts[4, 4] == 1 and counts[2, 2] == 1
    assert visited_fraction(hand_made(xy), bins=5) == pytest.approx(2 / 20)  # the wall cell is out
    # rooms are the quadrants: the three states near (-0.24, -0.24) are bottom-left, (0, 0) top-right
    shares = room_shares(hand_made(xy))
    assert shares == {"top_left": 0.0, "top_right": 0.4, "bottom_left": 0.6, "bottom_right": 0.0}


def test_rewarded_fraction_counts_next_states_near_the_goal():
    # top-left goal (-0.15, 0.15); zero action, so the reward is the Gaussian "near" term alone:
    # 1 within 0.015, 0.1 at 0.03, below 0.1 further out. Rewards come from the *next* states.
    goal = np.array([-0.15, 0.15])
    offsets = np.array([0.0, 0.01, 0.029, 0.031, 0.1, 0.4])  # along x
    data = hand_made(goal + offsets[:, None] * np.array([1.0, 0.0]))
    task = DOMAIN.task("reach_top_left")
    assert rewarded_fraction(data, task) == pytest.approx(3 / 6)
    assert rewarded_fraction(data, task, threshold=0.99) == pytest.approx(2 / 6)
    assert rewarded_fraction(data, DOMAIN.task("reach_bottom_right")) == 0.0
    moved = replace(data, next_physics=np.zeros_like(data.next_physics))  # all next states at 0, 0
    assert rewarded_fraction(moved, task) == 0.0


def test_coverage_of_the_quick_rnd_dataset_matches_a_direct_count(quick):
    bins, width = 30, 0.6 / 30
    counts = coverage_histogram(quick, bins)
    cells = np.floor((quick.physics[:, :2] + 0.3) / width).astype(int)  # n x 2
    expected = np.zeros((bins, bins), int)
    np.add.at(expected, (cells[:, 0], cells[:, 1]), 1)
    assert np.array_equal(counts, expected)
    free = free_cells(bins)
    visited = {tuple(c) for c in cells if free[c[0], c[1]]}
    assert visited_fraction(quick, bins) == pytest.approx(len(visited) / free.sum())
    assert 0 < visited_fraction(quick, bins) < 1


def test_coverage_script_writes_a_figure_and_numbers(tmp_path, quick):
    pytest.importorskip("matplotlib")
    path = tmp_path / "rnd.npz"
    quick.save(path)
    spec = importlib.util.spec_from_file_location(
        "coverage_script", Path(__file__).parents[1] / "scripts" / "coverage.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "fig.png"
    argv = [str(path), "--bins", "20", "--tasks", "all", "--out", str(out)]
    assert script.main(argv) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["visited_fraction"][str(path)] == pytest.approx(visited_fraction(quick, 20))
    assert record["room_share"][str(path)] == pytest.approx(room_shares(quick))
    rewarded = record["rewarded_fraction"][str(path)]
    assert list(rewarded) == list(DOMAIN.tasks)
    for name, share in rewarded.items():
        assert share == pytest.approx(float((quick.rewards(DOMAIN.task(name)) >= 0.1).mean()))
    assert record["command"].endswith("--out " + str(out))
    assert out.stat().st_size > 1000
    assert script.main(["rdn"]) == 2
    assert script.main([str(path), "--tasks", "reach_middle"]) == 2
    # NAME:N is the runs' --n-transitions N subsample (seed 42)
    argv = [f"{path}:1000", "--bins", "20", "--out", str(out)]
    assert script.main(argv) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    sub = quick.subsample(1000, 42)
    assert record["visited_fraction"][f"{path}:1000"] == pytest.approx(visited_fraction(sub, 20))
    assert record["datasets"][f"{path}:1000"]["transitions"] == 1000
    assert script.main([f"{path}:0"]) == 2 and script.main([f"{path}:x"]) == 2


def test_plot_coverage_writes_a_png(tmp_path, quick):
    pytest.importorskip("matplotlib")
    plot_coverage({"a": quick, "b": quick}, tmp_path / "c.png", bins=10)
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_cache_names_encode_scale_settings_episodes_and_seed(monkeypatch):
    book = default_spec("point_mass_maze", "rnd")
    assert book.scale == "book" and book.episodes * book.episode_steps == 1_000_000
    assert re.fullmatch(r"point_mass_maze__rnd-book-[0-9a-f]{8}__1000x1000__seed0", book.name)
    short = default_spec("point_mass_maze", "rnd-short")
    assert short.scale == "book" and short.episodes * short.episode_steps == 100_000
    assert re.fullmatch(r"point_mass_maze__rnd-short-book-[0-9a-f]{8}__100x1000__seed0", short.name)
    other = default_spec("point_mass_maze", "rnd", episodes=7, seed=2, scale="quick")
    assert re.fullmatch(r"point_mass_maze__rnd-quick-[0-9a-f]{8}__7x1000__seed2", other.name)
    # the open-loop collectors keep their names
    assert (
        default_spec("point_mass_maze", "random").name == "point_mass_maze__random__100x1000__seed0"
    )
    # a change of a scale's settings names another file: the cache never serves data made otherwise
    before = book.name
    changed = {**rnd.LONG_SCALES, "book": replace(rnd.LONG_SCALES["book"], updates=3)}
    monkeypatch.setitem(COLLECTORS, "rnd", replace(COLLECTORS["rnd"], scales=changed))
    assert default_spec("point_mass_maze", "rnd").name != before


def test_bad_collector_and_scale_names_are_clear_errors(capsys, tmp_path):
    with pytest.raises(ValueError, match=r"'huge'.*valid scales: \['book', 'quick'\]"):
        default_spec("point_mass_maze", "rnd", scale="huge")
    with pytest.raises(ValueError, match="'quick'.*'random'.*no scales"):
        default_spec("point_mass_maze", "random", scale="quick")
    with pytest.raises(ValueError, match=r"'rdn'.*valid datasets: .*'rnd'"):
        default_spec("point_mass_maze", "rdn")
    with pytest.raises(ValueError, match="needs a scale"):
        collect(replace(SHORT, scale=None), progress=False)
    argv = ["collect", "--dataset", "rnd", "--scale", "huge", "--data-dir", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "'huge'" in err and "book" in err and "quick" in err
    assert not list(tmp_path.iterdir())  # nothing collected


def test_an_interrupted_long_exploration_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    """Killed after its second wave (the agent already learning), a run started again from the
    checkpoint ends bitwise where an uninterrupted run ends; the checkpoint loads without pickles."""
    from zsrl.data import explorer

    cfg = rnd.LONG_SCALES["quick"]  # waves of 4 episodes: 12 episodes are three waves
    args = (DOMAIN, 12, 200, 5, cfg)
    whole, whole_agent = explore(*args, progress=False)

    checkpoint = tmp_path / "run.partial.pt"
    save, saves = explorer._save_progress, []

    def save_then_die(path, identity, state):
        save(path, identity, state)
        saves.append(state.next_episode)
        if len(saves) == 2:
            raise KeyboardInterrupt  # a kill right after the second checkpoint

    monkeypatch.setattr(explorer, "_save_progress", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        explore(*args, progress=False, checkpoint=checkpoint)
    assert saves == [4, 8] and checkpoint.exists()
    assert torch.load(checkpoint, weights_only=True)["seen"] == 8 * 200
    resumed, resumed_agent = explore(*args, progress=False, checkpoint=checkpoint)
    assert saves == [4, 8]  # the resumed run only ran the last wave, which writes no checkpoint
    for name in ("action", "physics", "next_physics", "observation"):
        assert np.array_equal(getattr(whole, name), getattr(resumed, name)), name
    for a, b in zip(whole_agent.actor.parameters(), resumed_agent.actor.parameters(), strict=True):
        assert torch.equal(a, b)
    # a checkpoint of another exploration is refused, naming the file
    with pytest.raises(ValueError, match="run.partial.pt belongs to another exploration"):
        explore(DOMAIN, 12, 200, 6, cfg, progress=False, checkpoint=checkpoint)


def test_the_cache_removes_the_checkpoint_once_the_dataset_is_saved(tmp_path):
    spec = CollectorSpec("point_mass_maze", "rnd", 8, 50, seed=1, scale="quick")
    dataset = load_or_collect(spec, root=tmp_path, progress=False)
    assert len(dataset) == 400
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{spec.name}.npz",
        f"{spec.name}.npz.sha256",
    ]


# The files two small quick-scale explorations (two waves of 4 episodes, learning after 1000 random
# steps, a checkpoint between the waves) wrote before the explorer was shared with DIAYN, and the
# versions that wrote them: a refactor of the explorer must leave every byte as it was.
RECORDED_BYTES = {
    "versions": {"torch": "2.13.0+cpu", "numpy": "2.4.6", "mujoco": "3.17.0"},
    "sha256": {
        "rnd": "5d916a855d434dbbcdcf241bc28719554218c16b58b5bd5456793cd077243594",
        "rnd-short": "e02e444511e48ad4b0f9ab57d114c4f357397c063a1edcf336a64711684c651e",
    },
}


@pytest.mark.parametrize("collector", ["rnd", "rnd-short"])
def test_a_small_exploration_writes_the_recorded_bytes(collector, tmp_path):
    import mujoco

    versions = {"torch": torch.__version__, "numpy": np.__version__, "mujoco": mujoco.__version__}
    if versions != RECORDED_BYTES["versions"]:
        pytest.skip(f"bytes recorded with {RECORDED_BYTES['versions']}, this is {versions}")
    spec = CollectorSpec("point_mass_maze", collector, 8, 300, seed=3, scale="quick")
    dataset = load_or_collect(spec, root=tmp_path, progress=False)
    assert dataset.meta["sha256"] == RECORDED_BYTES["sha256"][collector]


def test_cache_names_of_the_rnd_scales_are_the_recorded_ones():
    """The names hash the scales' settings: the same settings keep naming the cached files."""
    names = {
        ("rnd", "book"): "point_mass_maze__rnd-book-00beda7a__1000x1000__seed0",
        ("rnd", "quick"): "point_mass_maze__rnd-quick-f4b6b902__4x1000__seed0",
        ("rnd-short", "book"): "point_mass_maze__rnd-short-book-29086556__100x1000__seed0",
        ("rnd-short", "quick"): "point_mass_maze__rnd-short-quick-f4b6b902__4x1000__seed0",
    }
    for (collector, scale), name in names.items():
        assert default_spec("point_mass_maze", collector, scale=scale).name == name
