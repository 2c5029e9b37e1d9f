"""The point-mass maze: geometry, start distribution, rewards, dm_control wrapper."""

import numpy as np
import pytest

from zsrl.envs import BatchSim, domain_names, get_domain
from zsrl.envs import point_mass_maze as maze

DOMAIN = get_domain("point_mass_maze")


def state(x, y, vx=0.0, vy=0.0):
    return np.array([x, y, vx, vy])


def test_registry_lists_the_four_tasks():
    assert "point_mass_maze" in domain_names()
    assert sorted(DOMAIN.tasks) == sorted(
        ["reach_top_left", "reach_top_right", "reach_bottom_left", "reach_bottom_right"]
    )


def test_unknown_names_list_the_valid_choices():
    with pytest.raises(ValueError, match="reach_top_left"):
        DOMAIN.task("reach_middle")
    with pytest.raises(ValueError, match="point_mass_maze"):
        get_domain("cartpole")


@pytest.mark.parametrize("task", sorted(maze.GOALS))
def test_reward_is_one_at_the_goal_without_control(task):
    goal = maze.GOALS[task]
    r = DOMAIN.task(task).reward(state(*goal), np.zeros(2))
    assert r == pytest.approx(1.0)


def test_reward_values_at_known_distances_and_controls():
    reward = DOMAIN.task("reach_top_right").reward
    goal = maze.GOALS["reach_top_right"]
    # inside the target radius the reward is 1
    assert reward(state(goal[0] + 0.01, goal[1]), np.zeros(2)) == pytest.approx(1.0)
    # one margin (0.015) outside the radius: the gaussian tolerance gives 0.1
    assert reward(state(goal[0] + 0.03, goal[1]), np.zeros(2)) == pytest.approx(0.1)
    # full force on both dimensions: control factor (0 + 4) / 5
    assert reward(state(*goal), np.ones(2)) == pytest.approx(0.8)
    # full force on one dimension: mean control tolerance 0.5 → (0.5 + 4) / 5
    assert reward(state(*goal), np.array([0.0, -1.0])) == pytest.approx(0.9)
    # far away: nothing
    assert reward(state(*maze.GOALS["reach_bottom_left"]), np.zeros(2)) < 1e-6


def test_reward_is_vectorised_over_batches():
    reward = DOMAIN.task("reach_top_left").reward
    states = np.stack([state(-0.15, 0.15), state(0.0, 0.25), state(-0.15, 0.18)])
    out = reward(states, np.zeros((3, 2)))
    assert out.shape == (3,)
    assert out == pytest.approx([1.0, 0.0, 0.1], abs=1e-3)


def run(sim: BatchSim, action, steps):
    for _ in range(steps):
        states = sim.step(np.asarray(action, dtype=np.float64)[None])
    return states[0]


def test_interior_walls_block_the_mass():
    sim = BatchSim(DOMAIN, 1)
    sim.set_states(state(-0.1, 0.1)[None])
    end = run(sim, [1.0, 0.0], 300)  # push right into the vertical wall
    assert end[0] == pytest.approx(-(maze.WALL_HALF_THICKNESS + maze.MASS_RADIUS), abs=2e-3)
    sim.set_states(state(-0.1, 0.1)[None])
    end = run(sim, [0.0, -1.0], 300)  # push down into the horizontal wall
    assert end[1] == pytest.approx(maze.WALL_HALF_THICKNESS + maze.MASS_RADIUS, abs=2e-3)


def test_gap_lets_the_mass_through_and_boundary_stops_it():
    sim = BatchSim(DOMAIN, 1)
    sim.set_states(state(-0.1, 0.25)[None])  # above the end of the vertical wall
    end = run(sim, [1.0, 0.0], 500)
    assert end[0] > 0.25  # crossed into the top-right room, stopped by the boundary
    assert end[0] <= maze.ARENA_LIMIT + 1e-3


def test_terminal_speed_matches_max_speed():
    sim = BatchSim(DOMAIN, 1)
    sim.set_states(state(-0.28, 0.25)[None])
    end = run(sim, [1.0, 0.0], 100)
    assert end[2] == pytest.approx(maze.MAX_SPEED, rel=0.02)


def test_start_distribution_is_the_top_left_room():
    starts = DOMAIN.sample_start(np.random.default_rng(0), 1000)
    assert np.all(starts[:, 0] >= -0.29) and np.all(starts[:, 0] <= -0.15)
    assert np.all(starts[:, 1] >= 0.15) and np.all(starts[:, 1] <= 0.29)
    assert np.all(starts[:, 2:] == 0)


def test_free_state_sampler_avoids_walls_and_covers_the_rooms():
    states = DOMAIN.samplers["free"](np.random.default_rng(0), 5000)
    assert np.all(maze.in_free_space(states[:, :2]))
    quadrants = {(bool(x > 0), bool(y > 0)) for x, y in states[:, :2]}
    assert len(quadrants) == 4
    assert np.all(np.abs(states[:, 2:]) <= maze.MAX_SPEED)


def test_dm_control_environment_matches_vectorised_reward():
    env = maze.load("reach_top_left", seed=3)
    ts = env.reset()
    assert set(ts.observation) == {"position", "velocity"}
    total, steps = 0.0, 0
    rng = np.random.default_rng(0)
    while not ts.last():
        action = rng.uniform(-1, 1, 2)
        ts = env.step(action)
        s = np.concatenate([ts.observation["position"], ts.observation["velocity"]])
        assert ts.reward == pytest.approx(float(DOMAIN.task("reach_top_left").reward(s, action)))
        total += ts.reward
        steps += 1
    assert steps == maze.EPISODE_STEPS


def test_dm_control_load_rejects_unknown_task():
    with pytest.raises(ValueError, match="valid tasks"):
        maze.load("reach_centre")
