"""The domain interface: every registered domain meets it alike (its starts are seeded by the
generator; its random data, collected from the command line, step as a batch simulation does and
observe as the domain does; FB trains on them and evaluates every task), and a domain registered
from outside is collected, trained and evaluated. Each domain's own tests check it against its
library's environments."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from dataclasses import replace

import mujoco
import numpy as np
import pytest

from zsrl.cli import main
from zsrl.config import apply_overrides, preset
from zsrl.data import collect, collector_names, default_spec, diayn, load_or_collect, rnd
from zsrl.data.diayn import DIAYNAgent, transition_skills
from zsrl.data.explorer import explore
from zsrl.data.readers import d4rl_normalized_score
from zsrl.data.rnd import RNDAgent
from zsrl.envs import BatchSim, Domain, Task, get_domain, register_domain, unregister_domain
from zsrl.envs.registry import PHYSICS_STATE, domain_names
from zsrl.train import Trainer

EPISODES = 2  # of each domain's random data

# A mass on a rail: one slide joint, one motor; two MuJoCo steps of 0.01 s per control step.
RAIL = """
<mujoco model="rail">
  <option timestep="0.01"/>
  <worldbody>
    <body name="mass">
      <joint name="x" type="slide" axis="1 0 0" range="-1 1" limited="true" damping="1"/>
      <geom type="sphere" size="0.02" mass="0.1"/>
    </body>
  </worldbody>
  <actuator><motor joint="x" gear="1" ctrlrange="-1 1" ctrllimited="true"/></actuator>
</mujoco>
"""


def reach_right(next_state: np.ndarray, action: np.ndarray) -> np.ndarray:
    return (np.abs(next_state[..., 0] - 0.3) < 0.05).astype(np.float64)  # ...


@pytest.fixture
def rail(tmp_path):
    xml = tmp_path / "rail.xml"
    xml.write_text(RAIL)
    domain = register_domain(
        Domain(
            name="rail",
            xml_path=xml,
            obs_dim=2,
            action_dim=1,
            episode_steps=50,
            tasks={
                "reach_right": Task(
                    "reach_right",
                    "rail",
                    reach_right,
                    goal_observation=np.array([0.3, 0.0]),
                    distance=lambda state: np.abs(state[..., 0] - 0.3),
                    success_distance=0.05,
                )
            },
            sample_start=lambda rng, n: np.zeros((n, 2)),
            observe=lambda states: states.astype(np.float32),
            physics_steps=2,
            max_return=50.0,
        )
    )
    yield domain
    unregister_domain("rail")


def test_a_control_step_is_the_domains_physics_steps(rail):
    sim = BatchSim(rail, 1)
    sim.set_states(np.zeros((1, 2)))
    after = sim.step(np.ones((1, 1)))  # 1 x P
    model = rail.model()
    data = mujoco.MjData(model)
    data.ctrl[:] = 1.0
    mujoco.mj_step(model, data)
    one = np.concatenate([data.qpos, data.qvel])
    mujoco.mj_step(model, data)
    two = np.concatenate([data.qpos, data.qvel])
    assert np.array_equal(after[0], two) and not np.array_equal(after[0], one)


def test_open_loop_collection_steps_as_batch_simulation_does(rail):
    data = collect(default_spec("rail", "random", episodes=3), progress=False)
    assert len(data) == 3 * 50
    sim = BatchSim(rail, 3)
    sim.set_states(data.physics[::50])  # each episode's first state
    for t in range(5):
        expected = sim.step(data.action[t::50].astype(np.float64))  # 3 x P
        # the collector stepped the float64 actions it stores as float32: 1e-7 apart at most
        np.testing.assert_allclose(data.next_physics[t::50], expected, rtol=0, atol=1e-7)


def test_collectors_a_domain_cannot_run_are_clear_errors(rail):
    assert "uniform-reset" not in collector_names("rail")
    assert "uniform-reset" in collector_names("point_mass_maze")
    with pytest.raises(ValueError, match=r"'uniform-reset' needs the 'free' state sampler.*'rail'"):
        default_spec("rail", "uniform-reset")
    with pytest.raises(
        ValueError, match=r"domain 'rail' has no state sampler 'free'; its samplers"
    ):
        rail.sampler("free")
    with pytest.raises(ValueError, match="'rail' is already registered"):
        register_domain(rail)
    with pytest.raises(ValueError, match=r"unknown domain 'rial'; valid choices: \[.*'rail'"):
        get_domain("rial")


@pytest.mark.parametrize("method", ["fb", "td3"])
def test_a_domain_registered_from_outside_trains_and_evaluates(rail, tmp_path, method):
    settings = ["data.name='random'", "train.steps=20", "train.eval_every=10", "eval.episodes=2"]
    settings += ["train.log_every=10", "train.checkpoint_every=10", "eval.tasks=['reach_right']"]
    cfg = apply_overrides(preset(method, "rail", "quick"), settings)
    cfg.validate()
    record = Trainer(cfg, tmp_path / "run", data_root=tmp_path / "data", progress=False).run()
    assert record["complete"] and record["domain"] == "rail" and record["tasks"] == ["reach_right"]
    assert record["dataset"]["transitions"] == 100_000  # default: 2000 episodes of 50 steps
    returns = record["evaluations"][-1]["tasks"]["reach_right"]["returns"]
    assert len(returns) == 2 and all(0 <= r <= 50 for r in returns)


@pytest.mark.parametrize("name", domain_names())
def test_starts_are_seeded_by_the_generator(name):
    domain = get_domain(name)
    first = domain.sample_start(np.random.default_rng(0), 2)  # 2 x P
    assert first.shape == (2, mujoco.mj_stateSize(domain.model(), PHYSICS_STATE))
    np.testing.assert_array_equal(first, domain.sample_start(np.random.default_rng(0), 2))
    assert not np.array_equal(first, domain.sample_start(np.random.default_rng(1), 2))


@pytest.mark.parametrize("name", [n for n in domain_names() if get_domain(n).load is not None])
def test_sizes_and_timing_are_the_dm_control_environments(name):
    """A control step is the domain's environment's, and so are the sizes of actions,
    observations and physics states."""
    domain = get_domain(name)
    env = domain.load(next(iter(domain.tasks)), seed=0)
    model = domain.model()
    assert domain.physics_steps * model.opt.timestep == pytest.approx(env.control_timestep())
    assert domain.physics_steps == round(env.control_timestep() / env.physics.timestep())
    assert domain.action_dim == env.action_spec().shape[0] == model.nu
    assert domain.obs_dim == sum(int(np.prod(s.shape)) for s in env.observation_spec().values())
    dm = env.physics.model.ptr
    assert mujoco.mj_stateSize(model, PHYSICS_STATE) == mujoco.mj_stateSize(dm, PHYSICS_STATE)


EXPLORERS = {"rnd": (RNDAgent, rnd.SCALES["quick"]), "diayn": (DIAYNAgent, diayn.SCALES["quick"])}


@pytest.mark.parametrize("explorer", list(EXPLORERS))
@pytest.mark.parametrize("name", domain_names())
def test_every_explorer_explores_every_domain(name, explorer):
    """Two lanes of 40 steps, the first 40 transitions random, then learning: on each domain's
    own sizes, actions in [-1, 1], the domain's observations of its physics, an episode's rows
    consecutive, and an episode ending before its lane's last step only at a terminal state."""
    domain = get_domain(name)
    agent_class, scale = EXPLORERS[explorer]
    skills = {"skill_steps": 10} if explorer == "diayn" else {}  # four skills a lane
    cfg = replace(scale, envs=2, random_steps=40, batch_size=16, **skills)
    data, _ = explore(domain, 2, 40, 0, cfg, agent_class, progress=False)
    assert data.observation.shape[1] == domain.obs_dim and data.action.shape[1] == domain.action_dim
    assert np.abs(data.action).max() <= 1.0 and np.isfinite(data.observation).all()
    np.testing.assert_array_equal(data.observation, domain.observe(data.physics))
    np.testing.assert_array_equal(data.next_observation, domain.observe(data.next_physics))
    np.testing.assert_array_equal(np.diff(data.step)[np.diff(data.episode) == 0], 1)
    if domain.terminated is None:
        assert data.terminal is None and (np.bincount(data.episode) == 40).all()
    else:  # a lane's episodes end at a fall, or at the lane's 40 steps
        np.testing.assert_array_equal(domain.terminated(data.next_physics), data.terminal)
        ends = np.r_[data.episode[1:] != data.episode[:-1], True]
        np.testing.assert_array_equal(data.terminal | data.truncation, ends)
        assert data.truncation.sum() <= 2 and len(data) == 80
    if explorer == "diayn":
        assert transition_skills(data).shape == (len(data),)


@pytest.fixture(scope="module", params=domain_names())
def random_data(request, tmp_path_factory):
    """A registered domain's name, its random dataset of EPISODES episodes collected through the
    command line, what the command printed and the data folder it is cached in."""
    name = request.param
    root = tmp_path_factory.mktemp(f"data-{name}")
    argv = ["collect", "--domain", name, "--dataset", "random", "--episodes", str(EPISODES)]
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert main([*argv, "--data-dir", str(root)]) == 0
    data = load_or_collect(default_spec(name, "random", EPISODES), root=root, progress=False)
    return name, data, printed.getvalue(), root


def test_random_collection_steps_as_batch_simulation_does(random_data):
    name, data, printed, _ = random_data
    domain = get_domain(name)
    T, A = domain.episode_steps, domain.action_dim
    assert f"{default_spec(name, 'random', EPISODES).name}: {len(data)} transitions" in printed
    np.testing.assert_array_equal(np.unique(data.episode), np.arange(EPISODES))
    if domain.terminated is None:  # every episode runs to the time limit
        assert len(data) == EPISODES * T and data.terminal is None and data.truncation is None
    else:  # random actions end some episodes early (Walker2d falls)
        assert len(data) < EPISODES * T and data.terminal.any()
    assert data.observation.shape == (len(data), domain.obs_dim)
    np.testing.assert_array_equal(data.observation, domain.observe(data.physics))
    np.testing.assert_array_equal(data.next_observation, domain.observe(data.next_physics))
    # the collector's float64 actions, of which it stores float32 copies: its generator's first draw
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, size=(EPISODES, T, A))  # E x T x A
    sim = BatchSim(domain, 1)
    for e in range(EPISODES):
        rows = np.flatnonzero(data.episode == e)  # the episode's steps, in order
        np.testing.assert_array_equal(data.action[rows], actions[e, : len(rows)].astype(np.float32))
        sim.set_states(data.physics[rows[:1]])  # the episode's first state
        expected = np.concatenate([sim.step(actions[e, t : t + 1]) for t in range(len(rows))])
        np.testing.assert_allclose(data.next_physics[rows], expected, rtol=0, atol=1e-9)


def test_forward_backward_trains_and_evaluates(random_data, tmp_path):
    """FB trains 20 updates on the random data, from the command line, and evaluates the domain's
    first and last tasks."""
    name, data, _, root = random_data
    domain = get_domain(name)
    names = list(domain.tasks)
    tasks = list(dict.fromkeys([names[0], names[-1]]))  # one or two
    out = tmp_path / "run"
    settings = [f"data.episodes={EPISODES}", "train.steps=20", "train.eval_every=20"]
    settings += ["train.log_every=10", "train.checkpoint_every=20", "eval.episodes=1"]
    settings += ["eval.inference_samples=1000"]
    argv = ["train", "--domain", name, "--dataset", "random", "--data-dir", str(root)]
    argv += ["--method", "fb", "--scale", "quick", "--threads", "1", "--tasks", *tasks]
    argv += ["--no-progress", "--out", str(out), "--set", *settings]
    assert main(argv) == 0
    record = json.loads((out / "record.json").read_text())
    assert record["complete"] and record["domain"] == name and record["tasks"] == tasks
    assert record["dataset"]["transitions"] == len(data)  # the collected data, read back
    for task in tasks:
        result = record["evaluations"][-1]["tasks"][task]
        assert len(result["returns"]) == 1
        if domain.d4rl_name is None:  # rewards in [0, 1]
            assert 0 <= result["returns"][0] <= domain.max_return
        else:
            score = d4rl_normalized_score(name, result["score"])
            assert result["normalized_score"] == pytest.approx(score)
