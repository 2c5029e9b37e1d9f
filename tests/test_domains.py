"""The domain interface: a domain registered from outside is collected, trained and evaluated."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from zsrl.config import apply_overrides, preset
from zsrl.data import collect, collector_names, default_spec
from zsrl.envs import BatchSim, Domain, Task, get_domain, register_domain, unregister_domain
from zsrl.train import Trainer

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
    assert record["dataset"]["transitions"] == 100 * 50
    returns = record["evaluations"][-1]["tasks"]["reach_right"]["returns"]
    assert len(returns) == 2 and all(0 <= r <= 50 for r in returns)
