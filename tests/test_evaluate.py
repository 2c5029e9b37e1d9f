"""Batched zero-shot evaluation: task inference paths, per-task scoring, paired starts."""

import numpy as np
import pytest
import torch

from zsrl.data import collect
from zsrl.data.collect import CollectorSpec
from zsrl.envs import get_domain
from zsrl.evaluate import evaluate, infer_task_vectors
from zsrl.losses import infer_z_from_rewards

DOMAIN = get_domain("point_mass_maze")


class GoalSeeker:
    """A stand-in model: z is the goal observation, and the policy is a PD controller towards it."""

    def __init__(self):
        self.obs_mean = torch.zeros(4)

    def infer_z_from_goal(self, goal):
        return goal.clone()

    def backward(self, obs):
        return obs

    def infer_z_from_rewards(self, next_obs, rewards):
        return infer_z_from_rewards(next_obs, rewards)

    def task_contexts(self, tasks, *args):
        return infer_task_vectors(self, tasks, *args)

    def act(self, obs, z):
        return (40.0 * (z[:, :2] - obs[:, :2]) - 5.0 * obs[:, 2:]).clamp(-1, 1)


def test_rollouts_are_scored_per_task():
    results = evaluate(GoalSeeker(), DOMAIN, episodes=3, seed=0)
    assert set(results) == set(DOMAIN.tasks)
    top_left = results["reach_top_left"]
    assert top_left.score > 800 and max(top_left.final_distance) < 0.01
    # a straight line to the bottom-right goal runs into the walls: never reached
    assert results["reach_bottom_right"].score < 1e-6
    assert min(results["reach_bottom_right"].final_distance) > 0.05


def test_kept_paths_are_the_scored_episodes():
    tasks = ["reach_top_left", "reach_bottom_right"]
    plain = evaluate(GoalSeeker(), DOMAIN, tasks, episodes=2, seed=0)
    kept = evaluate(GoalSeeker(), DOMAIN, tasks, episodes=2, seed=0, keep_paths=True)
    assert plain["reach_top_left"].paths is None
    for name in tasks:
        paths = kept[name].paths  # episodes x steps+1 x P
        assert paths.shape == (2, DOMAIN.episode_steps + 1, 4)
        assert kept[name].returns == plain[name].returns
        final = DOMAIN.tasks[name].distance(paths[:, -1])
        np.testing.assert_allclose(final, plain[name].final_distance)
        start = paths[:, 0, :2]
        assert np.all((start >= [-0.29, 0.15]) & (start <= [-0.15, 0.29]))  # the top-left room
    assert "paths" not in kept["reach_top_left"].to_dict()  # records stay compact


def test_starts_are_paired_and_seeded():
    a = evaluate(GoalSeeker(), DOMAIN, ["reach_top_left"], episodes=2, seed=1)
    b = evaluate(GoalSeeker(), DOMAIN, ["reach_top_left"], episodes=2, seed=1)
    c = evaluate(GoalSeeker(), DOMAIN, ["reach_top_left"], episodes=2, seed=2)
    assert a["reach_top_left"].returns == b["reach_top_left"].returns
    assert a["reach_top_left"].returns != c["reach_top_left"].returns


def test_goal_and_reward_inference():
    tasks = [DOMAIN.task("reach_top_right")]
    z = infer_task_vectors(GoalSeeker(), tasks)
    assert torch.equal(z[0], torch.as_tensor(tasks[0].goal_observation, dtype=torch.float32))
    data = collect(CollectorSpec("point_mass_maze", "uniform-reset", 500, 10), progress=False)
    z_r = infer_task_vectors(
        GoalSeeker(), tasks, data, inference_samples=5000, goal_inference="rewards"
    )
    # B is the identity here, so z_r points at the reward-weighted mean of rewarded states
    assert z_r[0, 0] > 0 and z_r[0, 1] > 0
    assert np.isclose(z_r[0].norm().item(), 2.0, atol=1e-5)  # √d with d = 4
    with pytest.raises(ValueError, match="valid"):
        infer_task_vectors(GoalSeeker(), tasks, goal_inference="oracle")
    with pytest.raises(ValueError, match="dataset"):
        infer_task_vectors(GoalSeeker(), tasks, goal_inference="rewards")
