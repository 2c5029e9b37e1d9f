"""The domains made of dm_control's environments (:mod:`zsrl.envs.dm_control_domain`): a package's
starts are the resets of every one of its tasks' environments, and its registered domain has the
sizes the package declares."""

from __future__ import annotations

import numpy as np
import pytest
from environment_episodes import dm_control_resets

from zsrl.envs import get_domain, jaco, quadruped, walker

PACKAGES = [jaco, quadruped, walker]
IDS = [package.DOMAIN.name for package in PACKAGES]


@pytest.mark.parametrize("package", PACKAGES, ids=IDS)
def test_starts_are_every_tasks_environments_resets(package):
    """The domain's starts are ``start_states`` of a seed drawn from the generator: resets of an
    environment so seeded, whichever task it is of."""
    starts = package.DOMAIN.sample_start(np.random.default_rng(0), 2)  # 2 x P
    seed = int(np.random.default_rng(0).integers(2**31))  # the sampler's draw
    np.testing.assert_array_equal(starts, package.start_states(seed, 2))
    for task in package.TASKS:
        np.testing.assert_array_equal(starts, dm_control_resets(package.load(task, seed=seed), 2))


@pytest.mark.parametrize("package", PACKAGES, ids=IDS)
def test_the_domain_has_the_packages_sizes(package):
    domain = package.DOMAIN
    assert get_domain(domain.name) is domain and list(domain.tasks) == list(package.TASKS)
    sizes = (domain.obs_dim, domain.action_dim, domain.episode_steps, domain.physics_steps)
    assert sizes == (
        package.OBS_DIM,
        package.ACTION_DIM,
        package.EPISODE_STEPS,
        package.PHYSICS_STEPS,
    )
    assert domain.observe is package.observe and domain.load is package.load
